"""VideoComposer behind the front door: text + source video (motion, depth, sketch) + first frame + style image
-> video (``videocomposer/``). The release is the original's experiment config (its ``guidances`` pick the
conditions); the size is the config's (``misc_size``)."""
from __future__ import annotations

from pathlib import Path

from common.cli import InputError

from .spec import REPO, ModelSpec, Param, step_callback

HERE = REPO / "videocomposer"
_EXPS = ("exp02_motion_transfer_vs_style", "exp02_motion_transfer", "exp01_vidcomposer_full",
         "exp03_sketch2video_style", "exp04_sketch2video_wo_style", "exp05_text_depths_wo_style",
         "exp06_text_depths_vs_style")
_DEMO = HERE / "demo_video"


def _release():
    return dict(num_inference_steps=50, guidance_scale=9.0, seed=8888, fps=8, mode="pynative", attention_chunk_size=0,
                num_frames=16)


class VideoComposerSpec(ModelSpec):
    def config_path(self, weights, release) -> Path:
        return HERE / "configs" / (f"{release}.yaml" if weights else "demo_tiny.yaml")

    def config(self, weights, release, s):
        from videocomposer_ms.config import load_config

        over = {"seed": s["seed"]}
        if s["num_frames"] is not None:
            over["max_frames"] = s["num_frames"]
        return load_config(self.config_path(weights, release), over)

    def check_model(self, s, weights, release):
        cfg = self.config(weights, release, s)
        g = set(cfg.guidances)
        for flag, needed in (("image", cfg.read_image and "local_image" in g),
                             ("style_image", cfg.read_style and "image" in g),
                             ("sketch", cfg.read_sketch and bool(g & {"sketch", "single_sketch"}))):
            if needed and not s[flag]:
                raise InputError(f"{release} reads --{flag} (guidances {cfg.guidances}) but none was given (--{flag})")
        if not s["prompt"]:
            raise InputError("a prompt is required (--prompt)")

    def cache_key(self, weights, release, s):
        return super().cache_key(weights, release, s) + (s["num_frames"],)

    def load(self, weights, release, s):
        from videocomposer_ms.pipeline import VideoComposerPipeline

        from common.nn import set_attention

        pipe = VideoComposerPipeline(self.config(weights, release, s), weights or None)
        if s["attention_chunk_size"]:
            for part in (pipe.unet, pipe.clip, pipe.vae, pipe.midas):
                if part is not None:
                    set_attention(part, chunk_size=s["attention_chunk_size"])
        return pipe

    def generate(self, pipe, s, callback):
        steps = s["num_inference_steps"] or pipe.cfg.ddim_timesteps
        out = pipe(s["prompt"], video=s["input_video"], image_path=s["image"], style_image=s["style_image"],
                   sketch_path=s["sketch"], num_inference_steps=steps, guidance_scale=s["guidance_scale"],
                   seed=s["seed"], progress=False, callback=step_callback(callback, steps))
        return out.frames[0]


SPEC = VideoComposerSpec(
    name="videocomposer", title="VideoComposer",
    task="text + a source video's motion / depth / sketch + a first frame + a style image -> video",
    releases={e: f"configs/{e}.yaml (the original's task)" for e in _EXPS},
    weights_help="the folder of the six released files (non_ema_228000.pth, open_clip_pytorch_model.bin, "
                 "v2-1_512-ema-pruned.ckpt, midas_v3_dpt_large.pth, table5_pidinet.pth, "
                 "sketch_simplification_gan.pth; .ckpt conversions accepted)",
    uses=("prompt", "image", "num_frames", "num_inference_steps", "guidance_scale", "seed", "fps", "mode",
          "attention_chunk_size"),
    extras=(Param("input_video", str, "source video: its motion vectors, depth, sketches, frames", kind="video"),
            Param("style_image", str, "style image (configs that read one)", kind="picture"),
            Param("sketch", str, "a single sketch picture (exp03 / exp04)", kind="picture")),
    tiny=dict(_release(), num_frames=4, num_inference_steps=4, seed=182, input_video=str(_DEMO / "moving_sun.mp4"),
              image=str(_DEMO / "sun_first_frame.png"), style_image=str(_DEMO / "style_gradient.png"),
              prompt="A yellow sun moving across the sky"),
    release_defaults={e: _release() for e in _EXPS},
    graph_context=True,
    converter="videocomposer/tools/convert_weight.py",
)
