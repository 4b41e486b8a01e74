"""DynamiCrafter behind the front door: a picture + a prompt -> video (``dynamicrafter/``)."""
from __future__ import annotations

from pathlib import Path

from common.cli import InputError

from .spec import REPO, ModelSpec, Param, find_weight_file, step_callback

HERE = REPO / "dynamicrafter"
_CONFIGS = {"256": "inference_256_v1.0.yaml", "512": "inference_512_v1.0.yaml", "1024": "inference_1024_v1.0.yaml",
            "512_interp": "inference_512_interp_v1.0.yaml"}
#: the interpolation model's applications (the original's run_application.sh): "none" = plain image-to-video
APPLICATIONS = ("none", "loop", "interp")
_LATER = {"timestep_spacing": "uniform_trailing", "guidance_rescale": 0.7}  # the 512 / 1024 settings


def _release(h, w, fs, **more):
    d = dict(height=h, width=w, frame_stride=fs, num_frames=16, num_inference_steps=50, guidance_scale=7.5,
             eta=1.0, seed=123, fps=8, mode="pynative", attention_chunk_size=0, negative_prompt="",
             timestep_spacing="uniform", guidance_rescale=0.0, application="none", sampler="ddim")
    d.update(more)
    return d


class DynamiCrafterSpec(ModelSpec):
    def config_path(self, weights, release, s=None) -> Path:
        if weights:
            return HERE / "configs" / _CONFIGS[release]
        two = (s or {}).get("application") not in (None, "none") or release == "512_interp"
        return HERE / "configs" / ("inference_512_interp_tiny_demo.yaml" if two else "inference_256_tiny_demo.yaml")

    def cache_key(self, weights, release, s):
        return super().cache_key(weights, release, s) + (str(self.config_path(weights, release, s)),)

    def check_model(self, s, weights, release):
        from dynamicrafter_ms.config import DynamiCrafterConfig
        from dynamicrafter_ms.inference import two_frame_model

        config = self.config_path(weights, release, s)
        cfg = DynamiCrafterConfig.from_yaml(config)
        app = s["application"]
        if app != "none" and not two_frame_model(cfg):
            raise InputError(f"--application {app} needs the interpolation model (--release 512_interp)")
        if app == "interp":
            if not s["end_image"]:
                raise InputError("--application interp needs the last frame's picture (--end_image)")
            if s["num_frames"] % 2:
                raise InputError(f"--application interp needs an even --num_frames, got {s['num_frames']}")
        elif s["end_image"]:
            raise InputError("--end_image is the last frame of --application interp only (--end_image)")
        need = 8 * 2 ** (len(cfg.unet.channel_mult) - 1)
        for k in ("height", "width"):
            if s[k] % need:
                raise InputError(f"--{k} {s[k]}: DynamiCrafter's UNet needs a multiple of {need}")
        frames = cfg.resampler.video_length
        if frames is not None and s["num_frames"] != frames:
            raise InputError(f"--num_frames {s['num_frames']}: this DynamiCrafter makes {frames} frames (its image "
                             "resampler has queries for exactly that many)")
        if s["image"] is None:
            raise InputError("a picture is required (--image)")
        if s["sampler"] == "dpmpp_2m" and s["num_inference_steps"] >= cfg.diffusion.timesteps:
            raise InputError(f"--num_inference_steps {s['num_inference_steps']}: dpmpp_2m takes at most "
                             f"{cfg.diffusion.timesteps - 1} steps")
        if weights:
            find_weight_file(Path(weights), ("model.ckpt", "model.safetensors"), "DynamiCrafter checkpoint")

    def weight_paths(self, weights, release, s):
        return [str(find_weight_file(Path(weights), ("model.ckpt", "model.safetensors"), "checkpoint"))] if weights else []

    def load(self, weights, release, s):
        from dynamicrafter_ms.config import DynamiCrafterConfig
        from dynamicrafter_ms.model import DynamiCrafter
        from dynamicrafter_ms.pipeline import DynamiCrafterPipeline
        from dynamicrafter_ms.weights import load_weights

        from common.nn import set_attention

        config = self.config_path(weights, release, s)
        cfg = DynamiCrafterConfig.from_yaml(config)
        model = DynamiCrafter(cfg)
        model.set_train(False)
        if weights:
            load_weights(model, self.weight_paths(weights, release, s)[0], str(config))
        model.perframe_ae = bool(cfg.diffusion.perframe_ae or (weights and release != "256"))
        set_attention(model, "math", chunk_size=s["attention_chunk_size"] or None)
        return DynamiCrafterPipeline(model)

    def generate(self, pipe, s, callback):
        import numpy as np
        from dynamicrafter_ms.data import load_frame

        size, t, app = (s["height"], s["width"]), s["num_frames"], s["application"]
        first = load_frame(s["image"], size)  # (3, H, W) in [-1, 1]
        if app == "interp":  # the two key frames, each held for half the frames (the original's input video)
            last = load_frame(s["end_image"], size)
            video = np.concatenate([np.repeat(first[:, None], t // 2, 1), np.repeat(last[:, None], t // 2, 1)], 1)
        else:
            video = np.repeat(first[:, None], t, 1)  # (3, T, H, W)
        out = pipe(s["prompt"] or "", video[None], num_frames=t, negative_prompt=s["negative_prompt"] or None,
                   num_inference_steps=s["num_inference_steps"], guidance_scale=s["guidance_scale"],
                   sampler=s["sampler"], eta=s["eta"] if s["sampler"] == "ddim" else None,
                   timestep_spacing=s["timestep_spacing"], guidance_rescale=s["guidance_rescale"],
                   frame_stride=s["frame_stride"], seed=s["seed"], loop=app == "loop", interp=app == "interp",
                   progress=False, callback=step_callback(callback, s["num_inference_steps"]))
        if app == "loop":
            return out.frames[0][:-1]  # the last frame repeats the first: a seamless loop (as inference.py)
        return out.frames[0]


SPEC = DynamiCrafterSpec(
    name="dynamicrafter", title="DynamiCrafter", task="a picture (+ prompt) -> video",
    releases={"256": "DynamiCrafter 256x256 (Doubiiu/DynamiCrafter, model.ckpt)",
              "512": "DynamiCrafter 320x512 (Doubiiu/DynamiCrafter_512, model.ckpt)",
              "1024": "DynamiCrafter 576x1024 (Doubiiu/DynamiCrafter_1024, model.ckpt)",
              "512_interp": "DynamiCrafter 320x512 interpolation / looping (Doubiiu/DynamiCrafter_512_Interp, "
                            "model.ckpt; --application loop|interp)"},
    weights_help="the folder holding the release's model.ckpt (PyTorch, read as is) or a converted model.ckpt; "
                 "or the file itself",
    uses=("prompt", "negative_prompt", "image", "num_frames", "height", "width", "num_inference_steps",
          "guidance_scale", "seed", "fps", "mode", "attention_chunk_size"),
    extras=(Param("frame_stride", int, "frame stride (256: larger = more motion, 1..6) or FPS condition (512 / 1024: "
                  "smaller = more motion)", lo=1, hi=1000),
            Param("sampler", str, "ddim = the original's DDIM; dpmpp_2m = DPM-Solver++ 2M, deterministic (DDIM eta 0's "
                  "result in about half the steps; eta and timestep_spacing do not apply)", choices=("ddim", "dpmpp_2m")),
            Param("eta", float, "DDIM eta (0 = deterministic; ddim only: dpmpp_2m is always deterministic)", lo=0, hi=1),
            Param("timestep_spacing", str, "DDIM timestep spacing (ddim only)", choices=("uniform", "uniform_trailing")),
            Param("guidance_rescale", float, "guidance rescale (0 = off; 512 / 1024: 0.7)", lo=0, hi=1),
            Param("application", str, "the interpolation model's uses (release 512_interp): loop = a looping video "
                  "of the picture (one frame fewer), interp = from --image to --end_image", choices=APPLICATIONS),
            Param("end_image", str, "the last frame (--application interp)", kind="picture")),
    tiny=dict(_release(64, 64, 3), num_inference_steps=4, mode="pynative", application="none",
              image=str(HERE / "prompts" / "256" / "astronaut.jpg"), prompt="an astronaut floating in space"),
    release_defaults={"256": _release(256, 256, 3), "512": _release(320, 512, 24, **_LATER),
                      "1024": _release(576, 1024, 10, **_LATER),
                      "512_interp": _release(320, 512, 5, seed=234, application="loop", **_LATER)},
    graph_context=True,
    converter="dynamicrafter/tools/convert_weight.py",
)
