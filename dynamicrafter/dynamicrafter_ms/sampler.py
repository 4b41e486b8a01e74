"""DynamiCrafter's side of sampling (``lvdm.models.samplers.ddim.DDIMSampler``): its schedule and its denoiser.

The DDIM schedule is built from the model's own float32 buffers, as the original does:
``alphas = alphas_cumprod[ts]``, ``alphas_prev`` = the next lower step's alpha and
``alphas_cumprod[0]`` for the last step, sigmas in float64 from those; v-prediction uses the
``sqrt_alphas_cumprod`` / ``sqrt_one_minus_alphas_cumprod`` buffers; dynamic rescale
(512/1024) uses ``scale_arr``. The denoiser calls the UNet on every guidance branch in one batch
(``[cond, uncond, uncond_img]``) and combines them with :mod:`common.schedulers.guidance`
(``cfg`` or ``cfg_two_scale``, then guidance rescale, on the raw output: v for v-models).
The loop itself is :func:`common.schedulers.sample_ddim` (or any sampler the parameterisation allows).
"""
from __future__ import annotations

import dataclasses
import functools

import mindspore as ms
import numpy as np
from mindspore import ops

from common.schedulers.ddim import DDIMSchedule, make_ddim_schedule
from common.schedulers.denoiser import Denoiser
from common.schedulers.guidance import cfg, cfg_two_scale, guided_denoiser

#: the timestep spacings of the original sampler.
SPACINGS = ("uniform", "uniform_trailing")


def make_schedule(model, steps: int, spacing: str = "uniform", eta: float = 1.0) -> DDIMSchedule:
    """``DDIMSampler.make_schedule(steps, spacing, eta)`` from the buffers of ``model`` (a DynamiCrafter)."""
    if spacing not in SPACINGS and spacing != "quad":
        raise ValueError(f"timestep_spacing {spacing!r}: expected one of {SPACINGS}")
    if spacing == "quad":
        raise ValueError("timestep_spacing 'quad' is not supported (use 'uniform' or 'uniform_trailing')")
    if steps < 1 or steps > model.num_timesteps:
        raise ValueError(f"ddim_steps must be in [1, {model.num_timesteps}], got {steps}")
    ac = model.buffer("alphas_cumprod")
    scale_arr = model.buffer("scale_arr") if model.use_dynamic_rescale else None
    sched = make_ddim_schedule(ac, steps, spacing=spacing, eta=eta, prev_rule="ldm", scale_arr=scale_arr)
    if model.parameterization == "v":  # the original reads these two buffers of the model
        ts = sched.timesteps
        sched = dataclasses.replace(sched, sqrt_alphas=model.buffer("sqrt_alphas_cumprod")[ts],
                                    sqrt_one_minus_alphas=model.buffer("sqrt_one_minus_alphas_cumprod")[ts])
    return sched


def _tile(x, n: int):
    """(b, ...) -> (n*b, ...) by concatenating n copies along the batch."""
    return x if n == 1 else ops.concat([x] * n, axis=0)


def denoiser(model, cond, uncond=None, guidance_scale: float = 1.0, guidance_rescale: float = 0.0,
             uncond_img=None, cfg_img: float | None = None) -> Denoiser:
    """The guided :class:`~common.schedulers.denoiser.Denoiser` of DynamiCrafter (prediction = the model's
    ``parameterization``, eps or v; int timesteps), every branch in ONE UNet call.

    Args:
        model: DynamiCrafter.
        cond: dict with ``context`` (b, L, D), ``c_concat`` (b, 4, T, h, w), ``fs`` (b,) int.
        uncond: same for the unconditional branch ("" + zero-image tokens), or None (no guidance).
        guidance_scale: ``unconditional_guidance_scale`` (no guidance at 1.0, as the original).
        guidance_rescale: 0 = off.
        uncond_img / cfg_img: two-scale guidance (``DDIMSampler_multicond``, :func:`cfg_two_scale`):
            ``u + cfg_img (u_img - u) + g (c - u_img)`` with ``u_img`` = text "" + the real image tokens
            (``cfg_img`` None: the guidance scale).
    """
    branches = {"cond": cond}
    guidance = None
    if uncond is not None and guidance_scale != 1.0:
        branches["uncond"] = uncond
        if uncond_img is None:
            guidance = functools.partial(cfg, scale=guidance_scale, rescale=guidance_rescale)
        else:
            branches["uncond_img"] = uncond_img
            guidance = functools.partial(cfg_two_scale, scale=guidance_scale, rescale=guidance_rescale,
                                         image_scale=guidance_scale if cfg_img is None else cfg_img)
    n = len(branches)
    conds = list(branches.values())
    stacked = {k: ops.concat([br[k] for br in conds], axis=0) for k in ("context", "c_concat", "fs")}

    def model_fn(x, t, branch):
        c, k = (stacked, n) if branch is None else (conds[branch], 1)
        return model.apply_model(_tile(x, k), _tile(t, k), c["c_concat"], c["context"], c["fs"])  # (k*b, 4, T, h, w)

    return guided_denoiser(model_fn, tuple(branches), guidance, prediction=model.parameterization)


def step_noise(shape, noise=None, generator: np.random.Generator | None = None):
    """The per-step N(0, 1) draws of DDIM with eta > 0, as ``sample_ddim``'s ``noise(i)`` (i = loop step).

    Args:
        shape: the latent's shape (b, 4, T, h, w).
        noise: recorded draws ``noise[i]`` (array / sequence), or None to draw.
        generator: numpy ``Generator`` for the draws (reproducible; None: fresh entropy).
    """
    if noise is not None:
        return lambda i: ms.Tensor(np.asarray(noise[i], np.float32))
    rng = generator if generator is not None else np.random.default_rng()
    return lambda i: ms.Tensor(rng.standard_normal(tuple(shape)).astype(np.float32))
