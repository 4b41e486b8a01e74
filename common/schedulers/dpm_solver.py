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

The schedule is built apart (:func:`make_dpmpp_2m_schedule`, :func:`dpmpp_2m_schedule_from_diffusers`);
the sampler (:func:`sample_dpmpp_2m`) has the signature of :func:`common.schedulers.ddim.sample_ddim`.
The step arithmetic uses Python-float coefficients, so it runs on MindSpore tensors and numpy arrays.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .ddim import cfg_combine, ddim_timesteps, diffusers_alphas_cumprod

__all__ = ["DPMSolverSchedule", "make_dpmpp_2m_schedule", "dpmpp_2m_schedule_from_diffusers", "dpmpp_2m_step",
           "sample_dpmpp_2m"]


@dataclass
class DPMSolverSchedule:
    """Per-step coefficients in loop order (element 0 = the noisiest step).

    Attributes:
        timesteps: ``(S,)`` int64 model timesteps (descending).
        alphas: ``(S,)`` float64 ``alphas_cumprod[t_i]``.
        alphas_next: ``(S,)`` float64 the alpha each step moves to (the last one 1.0: sigma = 0, a clean sample).
    """

    timesteps: np.ndarray
    alphas: np.ndarray
    alphas_next: np.ndarray

    def __len__(self) -> int:
        return int(self.timesteps.shape[0])

    def coefficients(self, i: int) -> dict:
        """``alpha, sigma, lambda`` at both ends of step i (``lambda_next = inf`` for sigma = 0)."""
        a, an = float(self.alphas[i]), float(self.alphas_next[i])
        out = {"alpha": math.sqrt(a), "sigma": math.sqrt(1 - a), "alpha_next": math.sqrt(an),
               "sigma_next": math.sqrt(max(1 - an, 0.0))}
        out["lambda"] = math.log(out["alpha"] / out["sigma"])
        out["lambda_next"] = math.inf if out["sigma_next"] == 0 else math.log(out["alpha_next"] / out["sigma_next"])
        return out


def make_dpmpp_2m_schedule(alphas_cumprod: np.ndarray, num_steps: int, *, spacing: str = "linspace",
                           steps_offset: int = 0, timesteps=None, final_alpha: float = 1.0) -> DPMSolverSchedule:
    """Build a :class:`DPMSolverSchedule`.

    Args:
        alphas_cumprod: ``(n,)`` training schedule (e.g. :func:`common.schedulers.ddim.diffusers_alphas_cumprod`).
        num_steps: S, the number of model calls.
        spacing: step list of :func:`common.schedulers.ddim.ddim_timesteps` (``"linspace"``: from n-1 down,
            diffusers' DPM-Solver default; ``"leading"`` with ``steps_offset``: the DDIM grid of AnimateDiff;
            ``"trailing"``).
        steps_offset: diffusers ``steps_offset`` (``"leading"`` only).
        timesteps: explicit descending step list instead of ``spacing``.
        final_alpha: alpha the last step goes to (1.0 = a clean sample; ``alphas_cumprod[0]`` = diffusers 0.11's
            final step to t = 0).
    """
    ac = np.asarray(alphas_cumprod, np.float64)
    n = ac.shape[0]
    if timesteps is not None:
        ts = np.asarray(timesteps, np.int64)
    elif spacing == "linspace":  # diffusers' DPMSolverMultistepScheduler: S+1 points from n-1 to 0, last dropped
        if not 1 <= num_steps <= n:
            raise ValueError(f"num_steps must be in [1, {n}], got {num_steps}")
        ts = np.linspace(0, n - 1, num_steps + 1).round()[::-1][:-1].astype(np.int64)
    else:
        ts = ddim_timesteps(num_steps, spacing, n, steps_offset)
    if ts.size == 0 or ts.min() < 0 or ts.max() >= n or np.any(np.diff(ts) >= 0):
        raise ValueError(f"timesteps must be strictly descending within [0, {n}), got {ts.tolist()}")
    alphas = ac[ts]
    alphas_next = np.concatenate([alphas[1:], [float(final_alpha)]])
    if not 0 < final_alpha <= 1:
        raise ValueError(f"final_alpha must be in (0, 1], got {final_alpha}")
    return DPMSolverSchedule(timesteps=ts, alphas=alphas, alphas_next=alphas_next)


def dpmpp_2m_schedule_from_diffusers(config: Mapping[str, Any], num_steps: int, *, spacing: str = "linspace"
                                     ) -> DPMSolverSchedule:
    """The schedule of a diffusers scheduler config (``noise_scheduler_kwargs``: beta_start/end, beta_schedule,
    num_train_timesteps, steps_offset, prediction_type epsilon); ``spacing`` as in :func:`make_dpmpp_2m_schedule`
    (``steps_offset`` applies to ``"leading"`` only)."""
    c = dict(config)
    if c.get("prediction_type", "epsilon") != "epsilon":
        raise ValueError("DPM-Solver++ 2M here supports prediction_type 'epsilon' only")
    ac = diffusers_alphas_cumprod(c.get("beta_schedule", "linear"), c.get("num_train_timesteps", 1000),
                                  c.get("beta_start", 1e-4), c.get("beta_end", 0.02),
                                  rescale_betas_zero_snr=c.get("rescale_betas_zero_snr", False),
                                  trained_betas=c.get("trained_betas"))
    return make_dpmpp_2m_schedule(ac, num_steps, spacing=spacing,
                                  steps_offset=c.get("steps_offset", 0) if spacing == "leading" else 0)


def dpmpp_2m_step(x, eps, i: int, schedule: DPMSolverSchedule, prev_denoised=None, prev_h: float | None = None):
    """One DPM-Solver++(2M) step at loop index i.

    Args:
        x: latent at ``t_i``; eps: the (guided) noise prediction there.
        prev_denoised / prev_h: ``D_{i-1}`` and ``h_{i-1}`` of the previous step (None on the first step).
    Returns:
        ``(x_next, denoised, h)``.
    """
    c = schedule.coefficients(i)
    denoised = (x - eps * c["sigma"]) / c["alpha"]
    if c["sigma_next"] == 0:  # last step to a clean sample: first order, x_next = alpha_next * D
        return denoised * c["alpha_next"], denoised, math.inf
    h = c["lambda_next"] - c["lambda"]
    d = denoised
    if prev_denoised is not None and prev_h is not None and math.isfinite(prev_h):
        r = prev_h / h
        d = denoised * (1 + 1 / (2 * r)) - prev_denoised * (1 / (2 * r))
    x_next = x * (c["sigma_next"] / c["sigma"]) - d * (c["alpha_next"] * math.expm1(-h))
    return x_next, denoised, h


def sample_dpmpp_2m(model_fn: Callable, x, schedule: DPMSolverSchedule, *, extra_args: Mapping[str, Any] | None = None,
                    callback: Callable[[dict], None] | None = None, disable: bool = False,
                    guidance_scale: float | None = None, guidance_rescale: float = 0.0):
    """DPM-Solver++(2M) sampling loop (same signature as :func:`common.schedulers.ddim.sample_ddim`).

    Args:
        model_fn: ``model_fn(x, t, **extra_args)`` -> eps, or ``(eps_uncond, eps_cond)`` when
            ``guidance_scale`` is given (combined by :func:`common.schedulers.ddim.cfg_combine`);
            ``t`` is int64 ``(B,)``.
        x: initial latent, used as is (sigma_T ~ 1 for VP schedules).
        schedule: :class:`DPMSolverSchedule`.
        extra_args: forwarded to ``model_fn``. callback: called after each step with
            ``{"x", "i", "t", "denoised"}``. disable: no progress bar.
        guidance_scale / guidance_rescale: classifier-free guidance (None = model_fn is already guided).
    Returns:
        the final latent.
    """
    from tqdm.auto import trange

    extra_args = dict(extra_args or {})
    is_ms = type(x).__module__.startswith("mindspore")
    b = x.shape[0]
    prev_d, prev_h = None, None
    for i in trange(len(schedule), desc="DPM++ 2M", disable=disable):
        t_val = int(schedule.timesteps[i])
        if is_ms:
            import mindspore as ms

            t = ms.Tensor(np.full((b,), t_val, np.int64))
        else:
            t = np.full((b,), t_val, np.int64)
        out = model_fn(x, t, **extra_args)
        if guidance_scale is not None:
            if not (isinstance(out, (tuple, list)) and len(out) == 2):
                raise ValueError("with guidance_scale set, model_fn must return (uncond_out, cond_out)")
            out = cfg_combine(out[0], out[1], guidance_scale, guidance_rescale)
        x, prev_d, prev_h = dpmpp_2m_step(x, out, i, schedule, prev_d, prev_h)
        if callback is not None:
            callback({"x": x, "i": i, "t": t_val, "denoised": prev_d})
    return x
