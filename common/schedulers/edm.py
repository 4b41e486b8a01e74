"""EDM noise levels and the Euler sampler of Karras et al. (2022), "Elucidating the Design Space of
Diffusion-Based Generative Models" (k-diffusion style: plain functions, schedule built apart).

* :func:`edm_sigmas`: the rho-schedule of eq. (5), ``sigma_i = (s_max^(1/rho) + i/(n-1) (s_min^(1/rho) -
  s_max^(1/rho)))^rho``, decreasing, with a final 0 appended (sgm ``EDMDiscretization``).
* :func:`sample_euler_edm`: Algorithm 2 with Euler steps only (no Heun correction), the optional
  "churn" noise injection of ``s_churn`` / ``s_tmin`` / ``s_tmax`` / ``s_noise`` (sgm
  ``EulerEDMSampler``; with ``s_churn = 0`` the loop is deterministic).

The model is a :class:`~common.schedulers.denoiser.Denoiser` of ``time="sigma"`` (k-diffusion's convention,
``denoiser(x, sigma, **extra_args)`` with ``sigma`` a (N,) tensor of the batch size) returning the denoised
estimate D(x; sigma) (``prediction="x0"``) or the noise (``"eps"``, ``D = x - sigma eps``). A discrete-time
VP model (``time="timestep"``) is refused: its Euler step in these coordinates is deterministic DDIM
(:func:`common.schedulers.ddim.sample_ddim` with eta = 0), and evaluating it between its training timesteps
(churn) would need a sigma -> timestep interpolation the originals never use. Guidance is folded into the
denoiser (:mod:`common.schedulers.guidance`).
"""
from __future__ import annotations

import math
from collections.abc import Callable

import mindspore as ms
import numpy as np
from mindspore import ops
from tqdm.auto import tqdm

from .denoiser import Denoiser, as_denoiser, time_input, to_denoised


def edm_sigmas(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
               append_zero: bool = True) -> np.ndarray:
    """The Karras et al. (2022) noise levels, from ``sigma_max`` down to ``sigma_min``.

    Args:
        n: number of sampling steps (noise levels before the appended zero), >= 1. With n = 1 the
            single level is ``sigma_max``.
        sigma_min: lowest level (SVD: 0.002).
        sigma_max: highest level (SVD: 700).
        rho: schedule curvature (7).
        append_zero: append the final level 0 (sgm's default).
    Returns:
        float32 array of ``n`` (+1) levels, decreasing.
    """
    if int(n) < 1:
        raise ValueError(f"edm_sigmas: the number of steps must be >= 1, got {n}")
    if not (0 < sigma_min <= sigma_max):
        raise ValueError(f"edm_sigmas: need 0 < sigma_min <= sigma_max, got {sigma_min}, {sigma_max}")
    ramp = np.linspace(0.0, 1.0, int(n), dtype=np.float64)
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    sig = (hi + ramp * (lo - hi)) ** rho
    if append_zero:
        sig = np.concatenate([sig, [0.0]])
    return sig.astype(np.float32)


def sample_euler_edm(denoiser: Denoiser, x, sigmas, *, extra_args: dict | None = None,
                     callback: Callable | None = None, disable: bool = False, s_churn: float = 0.0,
                     s_tmin: float = 0.0, s_tmax: float = float("inf"), s_noise: float = 1.0,
                     noise_sampler: Callable | None = None, desc: str = "sampling"):
    """Euler EDM sampler (Karras et al. 2022, Algorithm 2 without the 2nd-order correction).

    For each level ``sigma_i`` with ``gamma = min(s_churn/(n-1), sqrt(2)-1)`` inside ``[s_tmin, s_tmax]``
    (else 0): ``sigma_hat = sigma_i (1 + gamma)``; if gamma > 0, ``x += eps * s_noise *
    sqrt(sigma_hat^2 - sigma_i^2)``; ``d = (x - D(x; sigma_hat)) / sigma_hat``;
    ``x += (sigma_{i+1} - sigma_hat) d``. The last step to sigma 0 returns the denoised estimate.

    Args:
        denoiser: :class:`~common.schedulers.denoiser.Denoiser` with ``time="sigma"`` and prediction ``"x0"``
            (or ``"eps"``): ``denoiser(x, sigma, **extra_args)`` (sigma: (N,) float tensor).
        x: the start, already at the first noise level (sgm/SVD: ``noise * sqrt(1 + sigma_0^2)``;
            k-diffusion: ``noise * sigma_0``). Not modified.
        sigmas: (n+1,) decreasing levels ending at 0 (:func:`edm_sigmas`), array or list.
        extra_args: keyword arguments for ``model_fn``.
        callback: called after each step with ``{"x", "i", "sigma", "sigma_hat", "denoised"}``.
        disable: hide the progress bar.
        s_churn / s_tmin / s_tmax / s_noise: stochasticity (0 / 0 / inf / 1: deterministic).
        noise_sampler: ``noise_sampler(x) -> N(0, 1) tensor like x`` for the churn noise
            (default: MindSpore's global RNG).
        desc: progress-bar label.
    Returns:
        the sample, same shape/dtype as ``x``.
    """
    denoiser = as_denoiser(denoiser, "sample_euler_edm", time="sigma", predictions=("x0", "eps"))
    extra_args = extra_args or {}
    sig = np.asarray(sigmas.asnumpy() if isinstance(sigmas, ms.Tensor) else sigmas, dtype=np.float64)
    if sig.ndim != 1 or sig.size < 2:
        raise ValueError(f"sample_euler_edm: sigmas must be a 1-D list of at least 2 levels, got shape {sig.shape}")
    steps = sig.size - 1
    if noise_sampler is None:
        def noise_sampler(t):
            return ops.standard_normal(t.shape).astype(t.dtype)
    for i in tqdm(range(steps), disable=disable, desc=desc):
        s, s_next = float(sig[i]), float(sig[i + 1])
        gamma = min(s_churn / steps, math.sqrt(2.0) - 1.0) if s_tmin <= s <= s_tmax else 0.0
        s_hat = s * (gamma + 1.0)
        if gamma > 0:
            x = x + noise_sampler(x) * s_noise * math.sqrt(s_hat ** 2 - s ** 2)
        denoised = to_denoised(x, denoiser(x, time_input(x, s_hat), **extra_args), denoiser.prediction, 1.0, s_hat)
        d = (x - denoised) / s_hat
        x = x + d * (s_next - s_hat)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": s, "sigma_hat": s_hat, "denoised": denoised})
    return x
