"""Golden-parity adapter (``common/golden.py``; cases in ``../shared/golden/videocomposer/``).

Each part of a case is built from its ``config.yaml`` and loaded from the released-layout file in
``model_weights/`` through the same loaders as inference, only when a check needs it.
"""
from __future__ import annotations

from functools import cached_property

import mindspore as ms
import numpy as np

from common.golden import GoldenAdapter, GoldenCase, GoldenError

from . import model as M
from .config import load_config


def _t(a, dtype=np.float32) -> ms.Tensor:
    return ms.Tensor(np.asarray(a, dtype=dtype))


class Adapter(GoldenAdapter):
    """Runs the checks of one case."""

    def __init__(self, case: GoldenCase):
        super().__init__(case)
        if ms.get_context("device_target") == "CPU":
            ms.runtime.launch_blocking()  # synchronous launch: several times faster PyNative on few cores; same numbers
        self.cfg = load_config(case.config_path)
        self.weights = case.root / "model_weights"

    @cached_property
    def clip(self):
        return M.build_clip(self.cfg, self.weights / M.CLIP_FILE)

    @cached_property
    def vae(self):
        return M.build_vae(self.cfg, self.weights / M.VAE_FILE)

    @cached_property
    def unet(self):
        return M.build_unet(self.cfg, self.weights / M.UNET_FILE)

    def _scale(self, c):
        if abs(float(c.params["scale_factor"]) - self.cfg.scale_factor) > 1e-12:
            raise GoldenError(f"scale_factor {c.params['scale_factor']} != config {self.cfg.scale_factor}")
        return self.cfg.scale_factor

    # ---- checks ---------------------------------------------------------------------------
    def check_text_encoder(self, c):
        layer = c.params.get("layer", self.cfg.clip_layer)
        return {"z": self.clip.encode_with_transformer(_t(c.inputs["tokens"], np.int32), layer=layer)}

    def check_style_encoder(self, c):
        emb = self.clip.encode_image(_t(c.inputs["image"])).expand_dims(1)  # (N, 1, D)
        return {"embedding": emb, "token": self.unet.style_token(emb)}

    def check_vae_encode(self, c):
        s = self._scale(c)
        mean, logvar = self.vae.encode_moments(_t(c.inputs["x"]))
        z = (mean + (logvar * 0.5).exp() * _t(c.inputs["noise"])) * s
        return {"mean": mean, "logvar": logvar, "z": z}

    def check_vae_decode(self, c):
        return {"video": self.vae.decode_video(_t(c.inputs["z"]), self._scale(c), chunk_size=1)}

    def check_condition_encoders(self, c):
        return {name: self.unet.encode_condition(name, _t(x)) for name, x in c.inputs.items()}

    def check_unet(self, c):
        i = dict(c.inputs)
        kwargs = {k: _t(v) for k, v in i.items() if k not in ("x", "t")}
        missing = [g for g in c.params["guidances"] if g not in kwargs]
        if missing:
            raise GoldenError(f"guidances {missing} have no input")
        return {"out": self.unet(_t(i["x"]), _t(i["t"], np.int64), **kwargs)}

    def check_ddim_sample(self, c):
        from .pipeline import sample, step_list

        p, i = c.params, c.inputs
        if p["beta_schedule"] != "linear_sd" or (p["init_beta"], p["last_beta"]) != (0.00085, 0.012):
            raise GoldenError(f"unexpected betas {p['beta_schedule']} {p['init_beta']}..{p['last_beta']}")
        if list(step_list(int(p["ddim_timesteps"]), int(p["num_timesteps"]))) != list(p["timesteps"]):
            raise GoldenError(f"step list {step_list(int(p['ddim_timesteps']))} != {p['timesteps']}")
        if p.get("percentile") is not None or p.get("mean_type", "eps") != "eps":
            raise GoldenError(f"percentile {p.get('percentile')} / mean_type {p.get('mean_type')}: not supported")
        cond = {k: _t(v) for k, v in i.items() if k not in ("noise", "zero_y")}
        steps = []
        out, _ = sample(self.unet, _t(i["noise"]), cond, _t(i["zero_y"]), int(p["ddim_timesteps"]),
                        guide_scale=float(p["guide_scale"]), eta=float(p["eta"]),
                        num_timesteps=int(p["num_timesteps"]), clamp=p.get("clamp"), callback=lambda d: steps.append(d["x"].asnumpy()),
                        progress=False)
        return {"out": out, "xt_steps": np.stack(steps)}

    def check_depth_extractor(self, c):
        p = c.params
        if (p["depth_std"], p["depth_clamp"]) != (self.cfg.depth_std, self.cfg.depth_clamp):
            raise GoldenError(f"depth_std/clamp {p['depth_std']}/{p['depth_clamp']} differ from the config")
        midas = M.build_midas(self.cfg, self.weights / M.MIDAS_FILE)
        raw = midas(_t(c.inputs["image"]) * 2.0 - 1.0)
        return {"raw": raw, "depth": (raw / self.cfg.depth_std).clip(0.0, self.cfg.depth_clamp)}

    def check_sketch_extractor(self, c):
        p = c.params
        if list(p["sketch_mean"]) != list(self.cfg.sketch_mean) or list(p["sketch_std"]) != list(self.cfg.sketch_std):
            raise GoldenError("sketch_mean/std differ from the config")
        net = M.build_sketch(self.cfg, self.weights / M.PIDINET_FILE, self.weights / M.SKETCH_FILE)
        edges, sketch = net(_t(c.inputs["image"]))
        return {"edges": edges, "sketch": sketch}
