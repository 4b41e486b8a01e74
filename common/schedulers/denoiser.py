"""The one model contract every sampler takes: a :class:`Denoiser`.

A denoiser is the model function ``denoiser(x, t, **extra_args) -> out`` plus two declarations:

* ``prediction`` -- what ``out`` is: ``"eps"`` (the noise), ``"v"`` (``alpha eps - sigma x0``,
  Salimans & Ho 2022) or ``"x0"`` (the denoised sample, k-diffusion's and EDM's ``D(x; sigma)``);
* ``time`` -- what ``t`` is: ``"timestep"`` (int64 ``(B,)`` indices into a discrete VP training
  schedule, ``x_t = alpha_t x0 + sigma_t eps`` with ``alpha_t^2 + sigma_t^2 = 1``) or ``"sigma"``
  (float ``(B,)`` EDM noise levels, ``x = x0 + sigma eps``).

The sampler converts ``out`` to what its update needs (:func:`to_denoised`) with the coefficients of
its own schedule, so the model's raw output is never rescaled by the model side, and samplers run
whatever parameterisation they can: see the table in :mod:`common.schedulers`.
Guidance is not a sampler's business: it is folded into the denoiser once
(:func:`common.schedulers.guidance.guided_denoiser`).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["Denoiser", "PREDICTIONS", "TIMES", "as_denoiser", "to_denoised", "time_input"]

PREDICTIONS = ("eps", "v", "x0")
TIMES = ("timestep", "sigma")


class Denoiser:
    """A model function with its parameterisation declared.

    Args:
        fn: ``fn(x, t, **extra_args) -> out`` (MindSpore tensors or numpy arrays; ``t`` of shape ``(B,)``).
        prediction: ``"eps"`` (default), ``"v"`` or ``"x0"``: what ``fn`` returns.
        time: ``"timestep"`` (default; int64 discrete VP timesteps) or ``"sigma"`` (float EDM noise levels).
    """

    def __init__(self, fn: Callable, prediction: str = "eps", time: str = "timestep"):
        if prediction not in PREDICTIONS:
            raise ValueError(f"Denoiser: prediction must be one of {PREDICTIONS}, got {prediction!r}")
        if time not in TIMES:
            raise ValueError(f"Denoiser: time must be one of {TIMES}, got {time!r}")
        self.fn = fn
        self.prediction = prediction
        self.time = time

    def __call__(self, x, t, **extra_args):
        return self.fn(x, t, **extra_args)

    def __repr__(self) -> str:
        return f"Denoiser({getattr(self.fn, '__name__', type(self.fn).__name__)}, prediction={self.prediction!r}, " \
               f"time={self.time!r})"


def as_denoiser(denoiser, sampler: str, *, time: str | None = None, predictions=PREDICTIONS) -> Denoiser:
    """Check that ``denoiser`` follows the contract and that ``sampler`` can run it (one-line ValueError/TypeError)."""
    if not isinstance(denoiser, Denoiser):
        raise TypeError(f"{sampler}: the model must be a common.schedulers.Denoiser (wrap it: "
                        f"Denoiser(fn, prediction='eps'|'v'|'x0', time='timestep'|'sigma')), got {type(denoiser).__name__}")
    if time is not None and denoiser.time != time:
        raise ValueError(f"{sampler}: needs a denoiser of time={time!r}, got {denoiser!r}")
    if denoiser.prediction not in predictions:
        raise ValueError(f"{sampler}: runs prediction in {tuple(predictions)}, got {denoiser!r}")
    return denoiser


def to_denoised(x, out, prediction: str, alpha: float, sigma: float):
    """The x0 estimate from a raw output at ``x = alpha x0 + sigma eps`` (Python-float coefficients).

    ``eps``: ``(x - sigma out) / alpha``; ``v`` (needs ``alpha^2 + sigma^2 = 1``): ``alpha x - sigma out``;
    ``x0``: ``out``.
    """
    if prediction == "eps":
        return (x - out * sigma) / alpha
    if prediction == "v":
        return x * alpha - out * sigma
    if prediction == "x0":
        return out
    raise ValueError(f"unknown prediction {prediction!r} {PREDICTIONS}")


def is_mindspore(x) -> bool:
    return type(x).__module__.startswith("mindspore")


def time_input(x, value):
    """The ``t`` a denoiser receives: ``value`` repeated over x's batch, int64 for an int timestep, else
    float32 cast to x's dtype; a MindSpore tensor for MindSpore ``x``, else numpy (host-built: no device sync)."""
    b = x.shape[0]
    if isinstance(value, (int, np.integer)):
        arr = np.full((b,), int(value), np.int64)
    else:
        arr = np.full((b,), float(value), np.float32)
    if is_mindspore(x):
        import mindspore as ms

        t = ms.Tensor(arr)
        return t if arr.dtype == np.int64 else t.astype(x.dtype)
    return arr if arr.dtype == np.int64 else arr.astype(x.dtype)
