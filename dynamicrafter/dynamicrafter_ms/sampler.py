"""DynamiCrafter's DDIM sampler (``lvdm.models.samplers.ddim.DDIMSampler``) on common.schedulers.ddim.

The schedule is built from the model's own float32 buffers, as the original does:
``alphas = alphas_cumprod[ts]``, ``alphas_prev`` = the next lower step's alpha and
``alphas_cumprod[0]`` for the last step, sigmas in float64 from those; v-prediction uses the
``sqrt_alphas_cumprod`` / ``sqrt_one_minus_alphas_cumprod`` buffers; dynamic rescale
(512/1024) uses ``scale_arr``. Guidance: ``u + g (c - u)`` (or the multi-condition form with
``cfg_img``), then ``guidance_rescale`` on the raw model output (v for v-models).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import mindspore as ms
import numpy as np
from mindspore import ops

from common.schedulers.ddim import DDIMSchedule, cfg_combine, make_ddim_schedule, sample_ddim

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
    sched = make_ddim_schedule(ac, steps, spacing=spacing, eta=eta, prev_rule="ldm", scale_arr=scale_arr,
                               prediction=model.parameterization)
    if model.parameterization == "v":  # the original reads these two buffers of the model
        ts = sched.timesteps
        sched = dataclasses.replace(sched, sqrt_alphas=model.buffer("sqrt_alphas_cumprod")[ts],
                                    sqrt_one_minus_alphas=model.buffer("sqrt_one_minus_alphas_cumprod")[ts])
    return sched


def _tile(x, n: int):
    """(b, ...) -> (n*b, ...) by concatenating n copies along the batch."""
    return x if n == 1 else ops.concat([x] * n, axis=0)


def guided_denoiser(model, cond, uncond=None, guidance_scale: float = 1.0, guidance_rescale: float = 0.0,
                    uncond_img=None, cfg_img: float | None = None) -> Callable:
    """``model_fn(x, t)`` returning the guided model output, with every branch in ONE UNet call.

    Args:
        model: DynamiCrafter.
        cond: dict with ``context`` (b, L, D), ``c_concat`` (b, 4, T, h, w), ``fs`` (b,) int.
        uncond: same for the unconditional branch ("" + zero-image tokens), or None (no guidance).
        guidance_scale: ``unconditional_guidance_scale`` (no guidance at 1.0, as the original).
        guidance_rescale: 0 = off.
        uncond_img / cfg_img: multi-condition guidance (``DDIMSampler_multicond``):
            ``u + cfg_img (u_img - u) + g (c - u_img)`` with ``u_img`` = text "" + the real image tokens.
    """
    branches = [cond]
    use_cfg = uncond is not None and guidance_scale != 1.0
    if use_cfg:
        branches.append(uncond)
        if uncond_img is not None:
            branches.append(uncond_img)
    n = len(branches)
    context = ops.concat([br["context"] for br in branches], axis=0)
    c_concat = ops.concat([br["c_concat"] for br in branches], axis=0)
    fs = ops.concat([br["fs"] for br in branches], axis=0)

    def model_fn(x, t):
        b = x.shape[0]
        out = model.apply_model(_tile(x, n), _tile(t, n), c_concat, context, fs)  # (n*b, 4, T, h, w)
        if not use_cfg:
            return out
        c, u = out[:b], out[b:2 * b]
        if n == 2:
            return cfg_combine(u, c, guidance_scale, guidance_rescale)
        u_img = out[2 * b:]
        g_img = guidance_scale if cfg_img is None else cfg_img
        guided = u + (u_img - u) * float(g_img) + (c - u_img) * float(guidance_scale)
        return cfg_combine(guided, c, 0.0, guidance_rescale) if guidance_rescale > 0 else guided

    return model_fn


def ddim_sample(model, x_T, schedule: DDIMSchedule, model_fn: Callable, noise=None, generator=None,
                progress: bool = True, callback=None):
    """Run the DDIM loop from ``x_T`` (b, 4, T, h, w).

    Args:
        noise: per-step N(0,1) draws ``noise[i]`` (loop step i, 0 = noisiest) used when eta > 0, or None.
        generator: numpy ``Generator`` for the per-step draws when ``noise`` is None (reproducible).
        progress: tqdm bar over the steps.
    Returns the final latent (b, 4, T, h, w) as a MindSpore tensor.
    """
    x = x_T if isinstance(x_T, ms.Tensor) else ms.Tensor(np.asarray(x_T, np.float32))
    if noise is None and schedule.eta > 0:
        rng = generator if generator is not None else np.random.default_rng()
        shape = tuple(x.shape)

        def noise(i):  # noqa: F811 - drawn lazily, one array per step
            return ms.Tensor(rng.standard_normal(shape).astype(np.float32))
    elif noise is not None and not callable(noise):
        arr = noise
        noise = lambda i: ms.Tensor(np.asarray(arr[i], np.float32))  # noqa: E731
    return sample_ddim(model_fn, x, schedule, noise=noise, disable=not progress, callback=callback)
