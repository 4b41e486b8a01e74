"""AnimateDiff behind the front door: a prompt -> video with an SD-1.5 model and a motion module (``animatediff/``).

The weights folder is the original's ``models/`` folder: ``StableDiffusion/stable-diffusion-v1-5/`` (diffusers
layout), ``Motion_Module/`` (``mm_sd_v15.ckpt``, ``mm_sd_v15_v2.ckpt``, ``v3_sd15_mm.ckpt``), ``DreamBooth_LoRA/``
(community base models and LoRAs). ``--base_model`` / ``--motion_module`` / ``--lora`` name files there (or give paths).
"""
from __future__ import annotations

from pathlib import Path

from common.cli import InputError

from .spec import REPO, ModelSpec, Param, step_callback

HERE = REPO / "animatediff"
_MOTION = {"v1": "mm_sd_v15.ckpt", "v2": "mm_sd_v15_v2.ckpt", "v3": "v3_sd15_mm.ckpt"}
_SD = "StableDiffusion/stable-diffusion-v1-5"


def _release(version):
    return dict(height=512, width=512, num_frames=16, num_inference_steps=25, guidance_scale=7.5, seed=42, fps=8,
                mode="pynative", attention_chunk_size=0, negative_prompt="", motion_module=_MOTION[version],
                base_model="", lora="", lora_alpha=0.8, sampler="ddim")


def _in(folder: Path, sub: str, name: str) -> Path:
    """A file named in the app / on the command line: a path as given, else ``<weights>/<sub>/<name>``."""
    p = Path(name).expanduser()
    return p if p.is_absolute() or p.exists() else folder / sub / name


class AnimateDiffSpec(ModelSpec):
    def sd_folder(self, weights) -> Path:
        """``<weights>/StableDiffusion/stable-diffusion-v1-5``, or the only folder in ``StableDiffusion/``."""
        w = Path(weights)
        if not (w / _SD).is_dir() and (w / "StableDiffusion").is_dir():
            found = [d for d in (w / "StableDiffusion").iterdir() if d.is_dir()]
            if len(found) == 1:
                return found[0]
        return w / _SD

    def files(self, weights, s) -> dict[str, Path | None]:
        w = Path(weights)
        return {"sd": self.sd_folder(weights), "motion_module": _in(w, "Motion_Module", s["motion_module"]) if s["motion_module"] else None,
                "base_model": _in(w, "DreamBooth_LoRA", s["base_model"]) if s["base_model"] else None,
                "lora": _in(w, "DreamBooth_LoRA", s["lora"]) if s["lora"] else None}

    def weight_paths(self, weights, release, s):
        return [str(p) for p in self.files(weights, s).values() if p is not None] if weights else []

    def inference_config(self, release) -> Path:
        return HERE / "configs" / "inference" / f"inference-{release}.yaml"

    def check_model(self, s, weights, release):
        for k in ("height", "width"):
            if s[k] % 8:
                raise InputError(f"--{k} {s[k]}: AnimateDiff needs a multiple of 8")
        if not s["prompt"]:
            raise InputError("a prompt is required (--prompt)")
        if not weights:
            for k in ("motion_module", "base_model", "lora"):
                if s[k]:
                    raise InputError(f"--{k} needs a weights folder (--weights or ${self.env_var}); without one "
                                     "the tiny random model runs")
            return
        for k, p in self.files(weights, s).items():
            if p is not None and not p.exists():
                raise InputError(f"{k} not found: {p} (--{'weights' if k == 'sd' else k})")
        if not s["motion_module"]:
            raise InputError("a motion module is required with weights (--motion_module)")

    def cache_key(self, weights, release, s):
        return super().cache_key(weights, release, s) + tuple(
            s[k] for k in ("motion_module", "base_model", "lora", "lora_alpha"))

    def load(self, weights, release, s):
        from animatediff_ms.config import InferenceConfig

        from common.nn import set_attention

        jit = s["mode"] == "graph"
        if not weights:
            from animatediff_ms.demo import tiny_random_pipeline

            pipe = tiny_random_pipeline(InferenceConfig.load(str(self.inference_config(release))), jit=jit)
        else:
            from animatediff_ms.prompt_config import PromptEntry
            from animatediff_ms.runner import build_entry_pipeline

            f = self.files(weights, s)
            entry = PromptEntry(index=0, inference_config=str(self.inference_config(release)),
                                motion_module=str(f["motion_module"] or ""), dreambooth_path=str(f["base_model"] or ""),
                                lora_model_path=str(f["lora"] or ""), lora_alpha=float(s["lora_alpha"]))
            pipe = build_entry_pipeline(entry, f["sd"], jit=jit, log=None)
        for cell in (pipe.unet, pipe.vae, pipe.text_encoder):
            set_attention(cell, "math", s["attention_chunk_size"] or None)
        return pipe

    def generate(self, pipe, s, callback):
        out = pipe(s["prompt"], num_frames=s["num_frames"], height=s["height"], width=s["width"],
                   num_inference_steps=s["num_inference_steps"], guidance_scale=s["guidance_scale"],
                   negative_prompt=s["negative_prompt"] or None, seed=s["seed"], sampler=s["sampler"], progress=False,
                   callback=step_callback(callback, s["num_inference_steps"]))
        return out.frames[0]


SPEC = AnimateDiffSpec(
    name="animatediff", title="AnimateDiff", task="a prompt -> video (any SD-1.5 model + a motion module, LoRA)",
    releases={"v2": "motion module v2 (guoyww/animatediff mm_sd_v15_v2.ckpt)",
              "v1": "motion module v1 (mm_sd_v15.ckpt / mm_sd_v14.ckpt)",
              "v3": "motion module v3 (v3_sd15_mm.ckpt)"},
    weights_help="the original's models/ folder: StableDiffusion/stable-diffusion-v1-5/ (diffusers SD-1.5; or the "
                 "only folder in StableDiffusion/), "
                 "Motion_Module/ (mm_sd_v15_v2.ckpt, ...), DreamBooth_LoRA/ (base models and LoRAs)",
    uses=("prompt", "negative_prompt", "num_frames", "height", "width", "num_inference_steps", "guidance_scale",
          "seed", "fps", "mode", "attention_chunk_size"),
    extras=(Param("motion_module", str, "motion module file (in <weights>/Motion_Module/, or a path)"),
            Param("base_model", str, "DreamBooth / community SD-1.5 model file (in <weights>/DreamBooth_LoRA/, or a "
                  "path; empty = SD-1.5 itself)"),
            Param("lora", str, "LoRA file (in <weights>/DreamBooth_LoRA/, or a path; empty = none)"),
            Param("lora_alpha", float, "LoRA weight", lo=0, hi=10),
            Param("sampler", str, "sampler", choices=("ddim", "dpmpp_2m"))),
    tiny=dict(_release("v2"), height=64, width=64, num_frames=8, num_inference_steps=3, motion_module="",
              prompt="a corgi running on the beach, golden hour, best quality",
              negative_prompt="worst quality, low quality"),
    release_defaults={v: _release(v) for v in _MOTION},
    converter="animatediff/tools/convert_weight.py",
)
