"""The original's sampler: ``GaussianDiffusion.ddim_sample_loop`` with classifier-free guidance, built from
:mod:`common.schedulers`.

* Betas ``linear_sd``: ``linspace(sqrt(0.00085), sqrt(0.012), 1000, float64) ** 2`` (hard-coded in
  ``inference_single.py``), coefficients in float64 cast to float32.
* Steps ``(1 + arange(0, 1000, 1000//S)).clamp(0, 999)`` reversed (S=3 -> 999, 667, 334, 1).
* ``a_prev = alphas_cumprod[(t - 1000//S).clamp(0)]`` (``prev_rule="stride"``, no alpha of 1 at the end).
* Guidance ``u + s * (c - u)`` (s = 9.0 in the original) with the unconditional branch the original builds:
  ``y = zero_y``, ``image = zeros`` (still through ``pre_image_condition``), every spatial condition kept.
"""
from __future__ import annotations

from functools import partial

import numpy as np
from mindspore import ops

from common.schedulers import cfg, guided_denoiser, ldm_alphas_cumprod, make_ddim_schedule, sample_ddim

#: the original's hard-coded betas and guidance scale.
INIT_BETA, LAST_BETA = 0.00085, 0.012
GUIDE_SCALE = 9.0


def videocomposer_schedule(num_steps: int, num_timesteps: int = 1000, eta: float = 0.0, clamp: float | None = None):
    """The :class:`~common.schedulers.DDIMSchedule` of ``ddim_sample_loop(ddim_timesteps=num_steps, eta=eta,
    clamp=clamp)`` (``clamp``: x0 clipped to [-clamp, clamp] and eps re-derived from it; the original's
    inference passes None)."""
    ac = ldm_alphas_cumprod("linear", num_timesteps, INIT_BETA, LAST_BETA)
    return make_ddim_schedule(ac, num_steps, spacing="uniform", eta=eta, prev_rule="stride", set_alpha_to_one=False,
                              clip_x0=clamp)


def uncond_kwargs(cond: dict, zero_y) -> dict:
    """The original's unconditional branch: ``y`` -> ``zero_y`` repeated over the batch, ``image`` -> zeros,
    every other condition unchanged."""
    out = dict(cond)
    b = cond["y"].shape[0]
    out["y"] = ops.broadcast_to(zero_y, (b,) + tuple(zero_y.shape[1:]))
    if cond.get("image") is not None:
        out["image"] = ops.zeros_like(cond["image"])
    return out


def sample(unet, noise, cond: dict, zero_y, num_steps: int, *, guide_scale: float = GUIDE_SCALE, eta: float = 0.0,
           num_timesteps: int = 1000, clamp: float | None = None, callback=None, progress: bool = True):
    """DDIM from ``noise`` (b, 4, f, h, w) with guidance.

    Args:
        unet: :class:`~.unet.UNetSDTemporal`.
        cond: the conditional UNet kwargs (``y`` required; ``image``, spatial conditions as given).
        zero_y: (1, 77, 1024) text context of ``""``.
        num_steps: ``ddim_timesteps`` S. guide_scale: CFG scale. eta: DDIM eta. clamp: x0 clip (None).
        callback: called after each step with ``{"x", "i", "t", "denoised"}``. progress: show a bar.
    Returns: the final latent (b, 4, f, h, w).
    """
    branches = (uncond_kwargs(cond, zero_y), cond)

    def model_fn(x, t, k):
        return unet(x, t, **branches[k])

    den = guided_denoiser(model_fn, ("uncond", "cond"), partial(cfg, scale=guide_scale), prediction="eps",
                          split=True)
    schedule = videocomposer_schedule(num_steps, num_timesteps, eta, clamp)
    return sample_ddim(den, noise, schedule, callback=callback, disable=not progress), schedule


def step_list(num_steps: int, num_timesteps: int = 1000) -> np.ndarray:
    """The timesteps the sampler visits (descending)."""
    return videocomposer_schedule(num_steps, num_timesteps).timesteps
