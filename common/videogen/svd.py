"""Stable Video Diffusion behind the front door: a picture -> video (``svd/``)."""
from __future__ import annotations

from pathlib import Path

from common.cli import InputError

from .spec import REPO, ModelSpec, Param, find_weight_file, step_callback

HERE = REPO / "svd"
_FILES = {"svd": "svd", "svd_xt": "svd_xt", "svd_xt_1_1": "svd_xt_1_1"}


def _release(frames, steps):
    return dict(height=576, width=1024, num_frames=frames, num_inference_steps=steps, fps=7, motion_bucket_id=127,
                noise_aug_strength=0.02, decode_chunk_size=7, seed=42, mode="pynative", attention_chunk_size=0,
                sampler="euler")


class SVDSpec(ModelSpec):
    def config_path(self, weights, release) -> Path:
        return HERE / "configs" / (f"{release}.yaml" if weights else "svd_tiny.yaml")

    def checkpoint(self, weights, release) -> Path:
        stem = _FILES[release]
        return find_weight_file(Path(weights), (f"{stem}.safetensors", f"{stem}.ckpt"), f"SVD checkpoint of {release}")

    def weight_paths(self, weights, release, s):
        return [str(self.checkpoint(weights, release))] if weights else []

    def check_model(self, s, weights, release):
        from svd_ms.config import load_svd_config

        cfg = load_svd_config(self.config_path(weights, release))
        multiple = 2 ** (len(cfg.first_stage_encoder.ch_mult) - 1) * 2 ** (len(cfg.unet.channel_mult) - 1)
        for k in ("height", "width"):
            if s[k] % multiple:
                raise InputError(f"--{k} {s[k]}: SVD needs a multiple of {multiple}")
        if s["image"] is None:
            raise InputError("a picture is required (--image)")
        if weights:
            self.checkpoint(weights, release)

    def load(self, weights, release, s):
        from svd_ms.model import load_svd_model
        from svd_ms.pipeline import SVDPipeline

        from common.nn import set_attention

        model, _ = load_svd_model(self.config_path(weights, release),
                                  str(self.checkpoint(weights, release)) if weights else None)
        if s["attention_chunk_size"]:
            set_attention(model, "math", s["attention_chunk_size"])
        return SVDPipeline(model, mode=s["mode"])

    def generate(self, pipe, s, callback):
        import numpy as np

        from common.video_io import load_image, resize_center_crop

        img = np.asarray(resize_center_crop(load_image(s["image"]), (s["height"], s["width"])), np.float32) / 255.0
        image = (img.transpose(2, 0, 1)[None] * 2.0 - 1.0).astype(np.float32)  # (1, 3, H, W) in [-1, 1]
        out = pipe(image, num_frames=s["num_frames"], num_inference_steps=s["num_inference_steps"], fps=s["fps"],
                   motion_bucket_id=s["motion_bucket_id"], noise_aug_strength=s["noise_aug_strength"],
                   decode_chunk_size=s["decode_chunk_size"] or None, seed=s["seed"], progress=False, sampler=s["sampler"],
                   callback=step_callback(callback, s["num_inference_steps"]))
        return out.frames[0]


SPEC = SVDSpec(
    name="svd", title="Stable Video Diffusion", task="a picture -> video",
    releases={"svd": "SVD, 14 frames (stabilityai/stable-video-diffusion-img2vid, svd.safetensors)",
              "svd_xt": "SVD-XT, 25 frames (stabilityai/stable-video-diffusion-img2vid-xt, svd_xt.safetensors)",
              "svd_xt_1_1": "SVD-XT 1.1 (stabilityai/stable-video-diffusion-img2vid-xt-1-1, svd_xt_1_1.safetensors)"},
    weights_help="the folder holding svd.safetensors / svd_xt.safetensors / svd_xt_1_1.safetensors (or their "
                 ".ckpt from tools/convert_weight.py); or the file itself",
    uses=("image", "num_frames", "height", "width", "num_inference_steps", "seed", "fps", "mode",
          "attention_chunk_size"),
    extras=(Param("motion_bucket_id", float, "amount of motion, 0..255 (higher = more motion)", lo=0, hi=255),
            Param("noise_aug_strength", float, "noise added to the picture (higher = less like it, more motion)",
                  lo=0, hi=10),
            Param("decode_chunk_size", int, "frames per VAE decode call (0 = all at once)", lo=0),
            Param("sampler", str, "euler = sgm's Euler EDM (the release); dpmpp_2m = DPM-Solver++ 2M on the same sigmas "
                  "(about half the steps for the same result)", choices=("euler", "dpmpp_2m"))),
    tiny=dict(_release(6, 4), height=64, width=64, decode_chunk_size=0, image=str(HERE / "assets" / "demo.png")),
    release_defaults={"svd": _release(14, 25), "svd_xt": _release(25, 30), "svd_xt_1_1": _release(25, 30)},
    fps_is_condition=True,
    converter="svd/tools/convert_weight.py",
)
