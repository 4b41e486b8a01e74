"""DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
Probabilistic Models", arXiv:2211.01095, Algorithm 2), for eps-prediction models on a discrete VP schedule.

With ``alpha_t = sqrt(alphas_cumprod[t])``, ``sigma_t = sqrt(1 - alphas_cumprod[t])`` and
``lambda_t = log(alpha_t / sigma_t)``, the data prediction is ``D_i = (x_i - sigma_i eps) / alpha_i`` and
one step from ``t_i`` to ``t_{i+1}`` (``h_i = lambda_{i+1} - lambda_i``) is

    x_{i+1} = (sigma_{i+1} / sigma_i) x_i - alpha_{i+1} (exp(-h_i) - 1) D'_i,
    D'_i = D_i                                           (first step, and the last step to sigma = 0)
    D'_i = (1 + 1/(2 r_i)) D_i - 1/(2 r_i) D_{i-1},  r_i = h_{i-1} / h_i   (otherwise)

i.e. diffusers' ``DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2,
solver_type="midpoint", lower_order_final=True, final_sigmas_type="zero")`` and k-diffusion's
``sample_dpmpp_2m``. It solves the same probability-flow ODE as deterministic DDIM (which is its
first-order special case), with a second-order error: about twice fewer model calls for the same result.

The same update in EDM coordinates (``alpha = 1``, ``x = x0 + sigma eps``, ``lambda = -log sigma``) is
k-diffusion's ``sample_dpmpp_2m`` on sigmas: :func:`dpmpp_2m_schedule_from_sigmas` builds that schedule for
an EDM denoiser (``time="sigma"``, e.g. SVD's).

The schedule is built apart (:func:`make_dpmpp_2m_schedule`, :func:`dpmpp_2m_schedule_from_diffusers`,
:func:`dpmpp_2m_schedule_from_sigmas`); the sampler (:func:`sample_dpmpp_2m`) takes any
:class:`~common.schedulers.denoiser.Denoiser` whose ``time`` matches the schedule's and converts its
prediction (eps / v / x0) to the data prediction ``D``.
Two extensions, both exact limits of the update above (first-order steps are DDIM's, see the tests):

* zero terminal SNR (Lin et al. 2023): ``alpha_0 = 0`` at the first step makes ``lambda_0 = -inf`` and ``h_0 = inf``:
  the step is its limit ``x_1 = (sigma_1 / sigma_0) x_0 + alpha_1 D_0`` (``exp(-inf) = 0``), the deterministic
  DDIM step from ``alphas_cumprod = 0``, and the next step starts the multistep history afresh (first order,
  ``r = inf``). diffusers gets nearly the same by clamping that ``alphas_cumprod`` to ``2**-24`` (finite
  ``lambda_0 ~ -8.3``). Only v- and x0-prediction define ``D`` there; eps-prediction is refused.
* a time-dependent data scale ``s_t`` (DynamiCrafter's ``use_dynamic_rescale``: the model was trained on
  ``x_t = alpha_t s_t x0 + sigma_t eps``, so its data prediction estimates ``s_t x0``; its DDIM multiplies that
  estimate by ``s_prev / s_t``): the ODE is the one of the noise schedule ``(alpha_t s_t, sigma_t)`` with the data
  prediction ``D / s_t``, so ``lambda_t = log(alpha_t s_t / sigma_t)``. With ``s = 1`` (the default) nothing changes.

The step arithmetic uses Python-float coefficients, so it runs on MindSpore tensors and numpy arrays.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .ddim import ddim_timesteps, diffusers_alphas_cumprod, diffusers_prediction
from .denoiser import Denoiser, as_denoiser, time_input, to_denoised

__all__ = ["DPMSolverSchedule", "make_dpmpp_2m_schedule", "logsnr_timesteps", "dpmpp_2m_schedule_from_diffusers",
           "dpmpp_2m_schedule_from_sigmas", "dpmpp_2m_step", "sample_dpmpp_2m"]


@dataclass
class DPMSolverSchedule:
    """Per-step coefficients in loop order (element 0 = the noisiest step); ``x = alpha x0 + sigma eps``.

    Attributes:
        timesteps: ``(S,)`` what the denoiser gets as ``t``: int64 model timesteps (descending) for
            ``time="timestep"``, float sigmas for ``time="sigma"``.
        alpha / sigma: ``(S+1,)`` float64 signal and noise scales at the S steps and at the end point
            (VP: ``sqrt(ac)``, ``sqrt(1 - ac)``; EDM: 1, sigma). ``sigma[-1] = 0`` ends at a clean sample.
        time: ``"timestep"`` or ``"sigma"``, the :class:`~common.schedulers.denoiser.Denoiser` time it serves.
        scale: ``(S+1,)`` data scale ``s`` at the steps and the end point (DynamiCrafter's dynamic rescale,
            ``scale_arr[t]``), or None (= 1). The model's own ``alpha`` / ``sigma`` convert its output to its data
            prediction ``D``; the ODE runs on ``(alpha s, sigma)`` with ``D / s`` (module docstring).
    """

    timesteps: np.ndarray
    alpha: np.ndarray
    sigma: np.ndarray
    time: str = "timestep"
    scale: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.timesteps.shape[0])

    def coefficients(self, i: int) -> dict:
        """``alpha, sigma, scale`` at both ends of step i and ``lambda = log(alpha scale / sigma)``
        (``lambda_next = inf`` for sigma = 0; ``lambda = -inf`` for alpha = 0, zero terminal SNR)."""
        s = (1.0, 1.0) if self.scale is None else (float(self.scale[i]), float(self.scale[i + 1]))
        out = {"alpha": float(self.alpha[i]), "sigma": float(self.sigma[i]), "alpha_next": float(self.alpha[i + 1]),
               "sigma_next": float(self.sigma[i + 1]), "scale": s[0], "scale_next": s[1]}

        def lam(alpha, sigma, scale):
            if sigma == 0:
                return math.inf
            return -math.inf if alpha == 0 else math.log(alpha * scale / sigma)

        out["lambda"] = lam(out["alpha"], out["sigma"], s[0])
        out["lambda_next"] = lam(out["alpha_next"], out["sigma_next"], s[1])
        return out


def make_dpmpp_2m_schedule(alphas_cumprod: np.ndarray, num_steps: int, *, spacing: str = "linspace",
                           steps_offset: int = 0, timesteps=None, final_alpha: float = 1.0,
                           scale_arr=None) -> DPMSolverSchedule:
    """Build a :class:`DPMSolverSchedule`.

    Args:
        alphas_cumprod: ``(n,)`` training schedule (e.g. :func:`common.schedulers.ddim.diffusers_alphas_cumprod`).
        num_steps: S, the number of model calls.
        spacing: ``"linspace"`` (from n-1 down, uniform in t: diffusers' DPM-Solver default), ``"logsnr"``
            (uniform in lambda = log(alpha / sigma), Lu et al.'s grid: :func:`logsnr_timesteps`) or a step list of
            :func:`common.schedulers.ddim.ddim_timesteps` (``"leading"`` with ``steps_offset``: the DDIM grid of
            AnimateDiff; ``"trailing"``).
        steps_offset: diffusers ``steps_offset`` (``"leading"`` only).
        timesteps: explicit descending step list instead of ``spacing``.
        final_alpha: alpha the last step goes to (1.0 = a clean sample; ``alphas_cumprod[0]`` = diffusers 0.11's
            final step to t = 0, and LDM's DDIM end point).
        scale_arr: DynamiCrafter's dynamic-rescale ``scale_arr`` (:func:`common.schedulers.ddim.dynamic_rescale_arr`,
            indexed by timestep) or None: the schedule's ``scale`` is ``scale_arr[t]`` at the steps and
            ``scale_arr[0]`` (the data scale at t = 0, 1.0) at the end point.
    """
    ac = np.asarray(alphas_cumprod, np.float64)
    n = ac.shape[0]
    if timesteps is not None:
        ts = np.asarray(timesteps, np.int64)
    elif spacing == "logsnr":
        ts = logsnr_timesteps(ac, num_steps, final_alpha)
    elif spacing == "linspace":  # diffusers' DPMSolverMultistepScheduler: S+1 points from n-1 to 0, last dropped
        if not 1 <= num_steps <= n:
            raise ValueError(f"num_steps must be in [1, {n}], got {num_steps}")
        ts = np.linspace(0, n - 1, num_steps + 1).round()[::-1][:-1].astype(np.int64)
    else:
        ts = ddim_timesteps(num_steps, spacing, n, steps_offset)
    if ts.size == 0 or ts.min() < 0 or ts.max() >= n or np.any(np.diff(ts) >= 0):
        raise ValueError(f"timesteps must be strictly descending within [0, {n}), got {ts.tolist()}")
    if not 0 < final_alpha <= 1:
        raise ValueError(f"final_alpha must be in (0, 1], got {final_alpha}")
    a = np.concatenate([ac[ts], [float(final_alpha)]])  # alphas_cumprod at the steps and the end point
    scale = None
    if scale_arr is not None:
        sa = np.asarray(scale_arr, np.float64)
        if sa.ndim != 1 or sa.shape[0] < n or np.any(sa <= 0):
            raise ValueError(f"scale_arr must be 1-D, positive, with >= {n} entries, got shape {sa.shape}")
        scale = np.concatenate([sa[ts], sa[:1]])
    return DPMSolverSchedule(timesteps=ts, alpha=np.sqrt(a), sigma=np.sqrt(np.maximum(1 - a, 0.0)), scale=scale)


def logsnr_timesteps(alphas_cumprod, num_steps: int, final_alpha: float = 1.0) -> np.ndarray:
    """``num_steps`` descending int timesteps from ``n-1`` whose log-SNR ``lambda = log(alpha / sigma)`` is
    uniform (DPM-Solver's "logSNR" grid, diffusers' ``use_lu_lambdas``) between ``lambda(n-1)`` and the end
    point's (``final_alpha``; a clean end, 1.0, takes ``lambda`` of ``alphas_cumprod[0]``), each rounded to
    the nearest timestep and kept strictly descending and >= 1. The grid starts no lower than ``-lambda_end``
    (a window symmetric about lambda = 0, where data of unit scale and noise are equal): with zero terminal
    SNR (``alphas_cumprod[n-1] = 0``, lambda = -inf, -7.7 one timestep later) a grid from there would spend a
    third of its steps where the data prediction hardly moves; the first step still starts at ``n-1`` and covers
    the rest exactly to first order. (Measured on DynamiCrafter's tiny 512-style model: 25 steps 9.0e-3 instead
    of 1.7e-2 from lambda(n-2).) A time-uniform grid gives the last steps long lambda strides (``lambda`` grows
    like ``-log(t)/2`` near t = 0); this one does not."""
    ac = np.asarray(alphas_cumprod, np.float64)
    n = ac.shape[0]
    if not 1 <= num_steps < n:
        raise ValueError(f"num_steps must be in [1, {n - 1}], got {num_steps}")
    with np.errstate(divide="ignore"):
        lam = 0.5 * (np.log(ac) - np.log1p(-np.minimum(ac, 1 - 1e-16)))  # -inf at ac = 0
    end_ac = final_alpha if final_alpha < 1 else ac[0]
    end = 0.5 * (np.log(end_ac) - np.log1p(-end_ac))
    start = max(lam[-1] if np.isfinite(lam[-1]) else lam[-2], -end)
    targets = np.linspace(start, end, num_steps + 1)[1:-1]  # the points after the start, before the end
    ts = [n - 1]
    for k, v in enumerate(targets, start=1):
        t = min(int(np.argmin(np.abs(lam - v))), ts[-1] - 1)
        ts.append(max(t, num_steps - k))
    return np.asarray(ts, np.int64)


def dpmpp_2m_schedule_from_diffusers(config: Mapping[str, Any], num_steps: int, *, spacing: str = "linspace"
                                     ) -> DPMSolverSchedule:
    """The schedule of a diffusers scheduler config (``noise_scheduler_kwargs``: beta_start/end, beta_schedule,
    num_train_timesteps, steps_offset, prediction_type epsilon); ``spacing`` as in :func:`make_dpmpp_2m_schedule`
    (``steps_offset`` applies to ``"leading"`` only). Its ``prediction_type`` is the denoiser's
    (:func:`common.schedulers.ddim.diffusers_prediction`)."""
    c = dict(config)
    diffusers_prediction(c)  # validated
    ac = diffusers_alphas_cumprod(c.get("beta_schedule", "linear"), c.get("num_train_timesteps", 1000),
                                  c.get("beta_start", 1e-4), c.get("beta_end", 0.02),
                                  rescale_betas_zero_snr=c.get("rescale_betas_zero_snr", False),
                                  trained_betas=c.get("trained_betas"))
    return make_dpmpp_2m_schedule(ac, num_steps, spacing=spacing,
                                  steps_offset=c.get("steps_offset", 0) if spacing == "leading" else 0)


def dpmpp_2m_schedule_from_sigmas(sigmas) -> DPMSolverSchedule:
    """The schedule of EDM noise levels (e.g. :func:`common.schedulers.edm.edm_sigmas`: decreasing, ending at 0)
    for a ``time="sigma"`` denoiser: ``alpha = 1``, ``sigma`` = the levels; the denoiser gets ``t = sigma_i``.
    The start ``x`` is at ``sigma_0`` (``noise * sigma_0``; SVD's sgm start ``noise * sqrt(1 + sigma_0^2)``)."""
    sig = np.asarray(sigmas, np.float64)
    if sig.ndim != 1 or sig.size < 2 or np.any(np.diff(sig) >= 0) or sig[-1] < 0 or sig[-2] <= 0:
        raise ValueError(f"sigmas must be a decreasing 1-D list of >= 2 levels >= 0, got {sig.tolist()}")
    return DPMSolverSchedule(timesteps=np.asarray(sigmas, np.float32)[:-1], alpha=np.ones_like(sig), sigma=sig,
                             time="sigma")


def dpmpp_2m_step(x, out, i: int, schedule: DPMSolverSchedule, prev_denoised=None, prev_h: float | None = None,
                  prediction: str = "eps"):
    """One DPM-Solver++(2M) step at loop index i.

    Args:
        x: latent at ``t_i``; out: the (guided) model output there, a ``prediction`` (eps / v / x0).
        prev_denoised / prev_h: ``D_{i-1}`` and ``h_{i-1}`` of the previous step (None on the first step).
    Returns:
        ``(x_next, denoised, h)``; ``denoised`` is the data prediction divided by the schedule's ``scale``.
    """
    c = schedule.coefficients(i)
    if c["alpha"] == 0 and prediction == "eps":
        raise ValueError(f"sample_dpmpp_2m: eps-prediction at a step with alpha = 0 (t={schedule.timesteps[i]}): "
                         "x0 is undefined; zero-terminal-SNR schedules need v- or x0-prediction")
    denoised = to_denoised(x, out, prediction, c["alpha"], c["sigma"])  # the model's D (estimates s_t x0)
    if c["scale"] != 1.0:
        denoised = denoised * (1.0 / c["scale"])
    alpha_next = c["alpha_next"] * c["scale_next"]  # the ODE's alpha (alpha s)
    if c["sigma_next"] == 0:  # last step to a clean sample: first order, x_next = alpha_next * D
        return denoised * alpha_next, denoised, math.inf
    h = c["lambda_next"] - c["lambda"]  # inf from alpha = 0 (zero SNR): exp(-h) = 0, a first-order step
    d = denoised
    if prev_denoised is not None and prev_h is not None and math.isfinite(prev_h) and math.isfinite(h):
        r = prev_h / h
        d = denoised * (1 + 1 / (2 * r)) - prev_denoised * (1 / (2 * r))
    x_next = x * (c["sigma_next"] / c["sigma"]) - d * (alpha_next * math.expm1(-h))
    return x_next, denoised, h


def sample_dpmpp_2m(denoiser: Denoiser, x, schedule: DPMSolverSchedule, *,
                    extra_args: Mapping[str, Any] | None = None, callback: Callable[[dict], None] | None = None,
                    disable: bool = False):
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2) sampling loop.

    Args:
        denoiser: :class:`~common.schedulers.denoiser.Denoiser` of the schedule's ``time`` (int64 timesteps on a
            VP schedule, float sigmas on an EDM one) and any prediction (eps / v / x0; v only on VP
            schedules); called ``denoiser(x, t, **extra_args)`` with ``t`` of shape ``(B,)``.
        x: initial latent, used as is (VP: sigma_T ~ 1; EDM: at ``sigma_0``).
        schedule: :class:`DPMSolverSchedule`.
        extra_args: forwarded to ``denoiser``. callback: called after each step with
            ``{"x", "i", "t", "denoised"}``. disable: no progress bar.
    Returns:
        the final latent.
    """
    from tqdm.auto import trange

    preds = ("eps", "v", "x0") if schedule.time == "timestep" else ("eps", "x0")
    denoiser = as_denoiser(denoiser, "sample_dpmpp_2m", time=schedule.time, predictions=preds)
    extra_args = dict(extra_args or {})
    prev_d, prev_h = None, None
    for i in trange(len(schedule), desc="DPM++ 2M", disable=disable):
        t_val = schedule.timesteps[i].item()  # int timestep or float sigma (numpy scalar -> Python)
        out = denoiser(x, time_input(x, t_val), **extra_args)
        x, prev_d, prev_h = dpmpp_2m_step(x, out, i, schedule, prev_d, prev_h, denoiser.prediction)
        if callback is not None:
            callback({"x": x, "i": i, "t": t_val, "denoised": prev_d})
    return x
