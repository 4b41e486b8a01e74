"""Guidance, built once around the model function (never inside a sampler loop).

The combination formulas work on MindSpore tensors and numpy arrays alike (``+ - *`` with Python floats):

* :func:`cfg` -- classifier-free guidance (Ho & Salimans 2022): ``u + s (c - u)``.
* :func:`rescale_guidance` -- guidance rescale (Lin et al. 2023, "Common Diffusion Noise Schedules and
  Sample Steps are Flawed", Sec. 3.4; DynamiCrafter ``rescale_noise_cfg`` = diffusers):
  ``r * g * std(c) / std(g) + (1 - r) * g``, unbiased std over all axes but the batch axis.
* :func:`cfg_two_scale` -- two-scale guidance (InstructPix2Pix, Brooks et al. 2023, Eq. 3; DynamiCrafter's
  ``multiple_cond_cfg``): ``u + s_img (u_img - u) + s (c - u_img)`` with ``u_img`` = no text, real image.
* :func:`cfg_per_frame` -- SVD's ``LinearPredictionGuider``: ``u + s_t (c - u)`` with one scale per frame
  (:func:`linear_frame_scales`, ``linspace(min, max, T)``), on the ``(B*T, ...)`` layout.

:func:`guided_denoiser` turns a model function that evaluates its conditioning branches (all in one
batch, or one branch a call) into a :class:`~common.schedulers.denoiser.Denoiser` returning the guided
output; any sampler then runs it.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .denoiser import Denoiser

__all__ = ["cfg", "rescale_guidance", "cfg_two_scale", "cfg_per_frame", "linear_frame_scales", "guided_denoiser"]


def _std_per_sample(t):
    """Unbiased std over all axes but the first, keeping dims (torch ``.std(dim=1..)``)."""
    axes = tuple(range(1, t.ndim))
    return t.std(axis=axes, ddof=1, keepdims=True)


def rescale_guidance(guided, cond, rescale: float):
    """``rescale * guided * std(cond) / std(guided) + (1 - rescale) * guided`` per sample; ``guided``
    unchanged for ``rescale == 0``."""
    if rescale <= 0:
        return guided
    return guided * (_std_per_sample(cond) / _std_per_sample(guided)) * float(rescale) + guided * float(1 - rescale)


def cfg(uncond, cond, scale: float, rescale: float = 0.0):
    """Classifier-free guidance ``uncond + scale * (cond - uncond)``, then :func:`rescale_guidance`."""
    return rescale_guidance(uncond + (cond - uncond) * float(scale), cond, rescale)


def cfg_two_scale(uncond, uncond_img, cond, scale: float, image_scale: float, rescale: float = 0.0):
    """``uncond + image_scale * (uncond_img - uncond) + scale * (cond - uncond_img)``, then
    :func:`rescale_guidance` against ``cond``.

    Args:
        uncond: no text, no image (zero image); uncond_img: no text, the real image; cond: both.
        scale: text guidance scale; image_scale: image guidance scale.
    """
    guided = uncond + (uncond_img - uncond) * float(image_scale) + (cond - uncond_img) * float(scale)
    return rescale_guidance(guided, cond, rescale)


def linear_frame_scales(num_frames: int, min_scale: float, max_scale: float) -> np.ndarray:
    """(T,) per-frame guidance scales ``linspace(min_scale, max_scale, T)`` (float32; sgm's LinearPredictionGuider)."""
    return np.linspace(min_scale, max_scale, int(num_frames), dtype=np.float64).astype(np.float32)


def cfg_per_frame(uncond, cond, scales):
    """``uncond + scales[t] * (cond - uncond)`` for outputs laid out ``(B*T, C, h, w)``.

    Args:
        scales: ``(1, T, 1, 1, 1)`` tensor/array of the per-frame scales (:func:`linear_frame_scales`),
            in the outputs' dtype.
    """
    n, c, h, w = uncond.shape
    t = scales.shape[1]
    u = uncond.reshape(n // t, t, c, h, w)
    return (u + scales * (cond.reshape(n // t, t, c, h, w) - u)).reshape(n, c, h, w)


def guided_denoiser(model_fn: Callable, branches: Sequence[str], guidance: Callable | None = None, *,
                    prediction: str, time: str = "timestep", split: bool = False) -> Denoiser:
    """A :class:`Denoiser` returning ``guidance(**{branch: output})`` of the model's conditioning branches.

    Args:
        model_fn: ``model_fn(x, t, branch)``; ``branch=None``: every branch in one call, stacked along the
            batch axis in ``branches`` order (the model side repeats x, t and stacks its conditions),
            returning ``(n*B, ...)``; ``branch=k``: branch ``k`` alone, ``(B, ...)``.
        branches: branch names in batch order, the keyword names of ``guidance`` (e.g. ``("uncond", "cond")``).
        guidance: combination of the branch outputs (e.g. ``functools.partial(cfg, scale=7.5)``); None with a
            single branch: that branch's output, unguided.
        prediction / time: the model's parameterisation (see :class:`Denoiser`); guidance combines raw outputs.
        split: one model call per branch instead of one call of the stacked batch (less activation
            memory, the same work).
    """
    names = tuple(branches)
    n = len(names)
    if guidance is None and n != 1:
        raise ValueError(f"guided_denoiser: {n} branches {names} need a guidance function")

    def fn(x, t):
        if guidance is None:
            return model_fn(x, t, None)
        if split:
            outs = [model_fn(x, t, k) for k in range(n)]
        else:
            out = model_fn(x, t, None)  # (n*B, ...)
            b = x.shape[0]
            outs = [out[k * b:(k + 1) * b] for k in range(n)]
        return guidance(**dict(zip(names, outs)))

    return Denoiser(fn, prediction=prediction, time=time)
