"""DropletVideo behind the front door: a picture + a prompt -> video with FPS (motion) control (``dropletvideo/``)."""
from __future__ import annotations

import tempfile
from pathlib import Path

from common.cli import InputError

from .spec import REPO, ModelSpec, Param, step_callback

HERE = REPO / "dropletvideo"
_TINY: dict[int, Path] = {}  # seed -> the tiny random weights folder written for this process


def _release():
    return dict(height=384, width=672, num_frames=85, num_inference_steps=50, guidance_scale=6.0, seed=42, fps=16,
                mode="pynative", attention_chunk_size=0, max_sequence_length=400, prompt_suffix=None,
                negative_prompt=None)


class DropletVideoSpec(ModelSpec):
    def resolve(self, settings, weights, release):
        """As :meth:`ModelSpec.resolve`; unset prompt suffix / negative prompt: the original CLI's texts (recorded)."""
        from dropletvideo_ms import inference as cli  # light: argparse and numpy

        s, release = super().resolve(settings, weights, release)
        if s["prompt_suffix"] is None:
            s["prompt_suffix"] = cli.QUALITY_SUFFIX
        if s["negative_prompt"] is None:
            s["negative_prompt"] = cli.NEGATIVE_PROMPT
        return s, release

    def folder(self, weights) -> Path:
        if weights:
            return Path(weights)
        if 0 not in _TINY:
            from dropletvideo_ms.tiny import write_tiny_weights

            _TINY[0] = write_tiny_weights(Path(tempfile.mkdtemp(prefix="videogen_dropletvideo_")) / "tiny", seed=0)
        return _TINY[0]

    def check_model(self, s, weights, release):
        for k in ("height", "width"):
            if s[k] % 16:
                raise InputError(f"--{k} {s[k]}: DropletVideo needs a multiple of 16")
        if not 1 <= s["fps"] <= 32:
            raise InputError(f"--fps {s['fps']:g}: DropletVideo's FPS condition is 1..32")
        if s["image"] is None:
            raise InputError("a picture is required (--image)")
        if not s["prompt"]:
            raise InputError("a prompt is required (--prompt)")
        if weights:
            from dropletvideo_ms import weights as w

            w.check_folder(weights)

    def load(self, weights, release, s):
        from dropletvideo_ms.pipeline import DropletVideoPipeline

        from common.nn import set_attention

        folder = self.folder(weights)
        pipe = DropletVideoPipeline.from_pretrained(folder, mode=s["mode"], text_encoder=False)
        if s["attention_chunk_size"]:
            set_attention(pipe.transformer, "math", s["attention_chunk_size"])
        pipe.videogen_folder = folder
        return pipe

    def generate(self, pipe, s, callback):
        from dropletvideo_ms import inference as cli
        from dropletvideo_ms import weights as w

        folder = pipe.videogen_folder
        tcfg, vcfg = w.read_config(folder, "transformer"), w.read_config(folder, "vae")
        ratio = vcfg.temporal_compression_ratio
        length = (s["num_frames"] - 1) // ratio * ratio + 1  # as the original rounds it
        suffix = s["prompt_suffix"]
        prompt = f"{s['prompt']} {suffix}" if suffix else s["prompt"]
        negative = s["negative_prompt"]
        pos, neg = cli.encode_prompts(folder, tcfg.text_embed_dim, [prompt, negative], s["max_sequence_length"])
        image = cli.read_image(s["image"], s["width"], s["height"])
        out = pipe(None, image, prompt_embeds=pos, negative_prompt_embeds=neg, height=s["height"], width=s["width"],
                   num_frames=length, num_inference_steps=s["num_inference_steps"], guidance_scale=s["guidance_scale"],
                   fps=int(s["fps"]), seed=s["seed"], max_sequence_length=s["max_sequence_length"], progress=False,
                   callback=step_callback(callback, s["num_inference_steps"]))
        return out.frames[0]


SPEC = DropletVideoSpec(
    name="dropletvideo", title="DropletVideo", task="a picture + a prompt -> video, FPS = motion strength",
    releases={"v1.0": "DropletVideo-5B (DropletX/DropletVideo-5B, the DropletVideo-V1.0-weights folder)"},
    weights_help="the released DropletVideo-V1.0-weights folder, read as it is (model_index.json, scheduler/, "
                 "text_encoder/, tokenizer/, transformer/, vae/); no conversion needed",
    uses=("prompt", "negative_prompt", "image", "num_frames", "height", "width", "num_inference_steps",
          "guidance_scale", "seed", "fps", "mode", "attention_chunk_size"),
    extras=(Param("max_sequence_length", int, "T5 tokens of the prompt", lo=1, hi=2048),
            Param("prompt_suffix", str, "appended to the prompt (default: the original's quality sentence)")),
    tiny=dict(_release(), height=64, width=96, num_frames=9, num_inference_steps=4, max_sequence_length=32,
              image=str(HERE / "assets" / "demo.png"),
              prompt="A red panda sits on a mossy log in a quiet forest while soft light filters through the trees."),
    release_defaults={"v1.0": _release()},
    fps_is_condition=True,
    converter=None,
)
