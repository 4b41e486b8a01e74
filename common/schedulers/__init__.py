"""Samplers as plain functions, their noise schedules, the denoiser contract and guidance.

Contract (k-diffusion's shape): every sampler is

    sample_<name>(denoiser, x, schedule, *, extra_args=None, callback=None, disable=False, **sampler_options)

* ``denoiser`` is a :class:`Denoiser`: the model function ``denoiser(x, t, **extra_args)`` returning the
  model's RAW output, with its parameterisation declared once by the model's wrapper:
  ``prediction`` in ``eps`` / ``v`` / ``x0`` and ``time`` in ``timestep`` (int64 (B,) discrete VP
  timesteps) / ``sigma`` (float (B,) EDM noise levels). Each sampler converts the output itself
  (:func:`to_denoised`), with its schedule's coefficients, so no model rescales its output for a sampler.
* ``schedule`` is built apart: :func:`make_ddim_schedule` / :func:`ddim_schedule_from_diffusers`
  (:class:`DDIMSchedule`), :func:`make_dpmpp_2m_schedule` / :func:`dpmpp_2m_schedule_from_diffusers` /
  :func:`dpmpp_2m_schedule_from_sigmas` (:class:`DPMSolverSchedule`; ``spacing="logsnr"``:
  :func:`logsnr_timesteps`), :func:`edm_sigmas` (an array).
* ``callback(dict)`` after every step (``x``, ``i``, ``denoised`` and the step's ``t`` / ``sigma``);
  ``disable`` hides the tqdm bar; the docstring names the paper and algorithm.
* Guidance is never in a sampler loop: it is folded into the denoiser once
  (:func:`guided_denoiser` with :func:`cfg`, :func:`cfg_two_scale`, :func:`rescale_guidance`,
  :func:`cfg_per_frame`).

Which sampler runs which denoiser (anything else raises a one-line ValueError naming both):

    sampler            time="timestep" (VP)     time="sigma" (EDM)
    sample_ddim        eps, v, x0               refused (DDIM's alphas are a discrete VP schedule;
                                                its EDM twin is sample_euler_edm)
    sample_dpmpp_2m    eps, v, x0               eps, x0 (dpmpp_2m_schedule_from_sigmas)
    sample_euler_edm   refused (= sample_ddim   eps, x0
                       with eta 0 on the grid)

DynamiCrafter (eps / v), AnimateDiff (eps) and SVD (x0 on sigma) thus each run two samplers.
:mod:`common.schedulers.convergence` measures how close a few steps get to a many-step reference.
"""
from .ddim import (
    DDIMSchedule,
    alphas_cumprod_from_betas,
    ddim_schedule_from_diffusers,
    ddim_step,
    ddim_timesteps,
    diffusers_alphas_cumprod,
    diffusers_prediction,
    dynamic_rescale_arr,
    ldm_alphas_cumprod,
    make_betas,
    make_ddim_schedule,
    rescale_zero_terminal_snr,
    sample_ddim,
)
from .denoiser import Denoiser, to_denoised
from .dpm_solver import (
    DPMSolverSchedule,
    dpmpp_2m_schedule_from_diffusers,
    dpmpp_2m_schedule_from_sigmas,
    logsnr_timesteps,
    make_dpmpp_2m_schedule,
    sample_dpmpp_2m,
)
from .edm import edm_sigmas, sample_euler_edm
from .guidance import cfg, cfg_per_frame, cfg_two_scale, guided_denoiser, linear_frame_scales, rescale_guidance

__all__ = [
    "Denoiser", "to_denoised",
    "DDIMSchedule", "alphas_cumprod_from_betas", "ddim_schedule_from_diffusers", "ddim_step", "ddim_timesteps",
    "diffusers_alphas_cumprod", "diffusers_prediction", "dynamic_rescale_arr", "ldm_alphas_cumprod", "make_betas",
    "make_ddim_schedule", "rescale_zero_terminal_snr", "sample_ddim",
    "DPMSolverSchedule", "make_dpmpp_2m_schedule", "dpmpp_2m_schedule_from_diffusers",
    "dpmpp_2m_schedule_from_sigmas", "logsnr_timesteps", "sample_dpmpp_2m",
    "edm_sigmas", "sample_euler_edm",
    "cfg", "cfg_two_scale", "cfg_per_frame", "rescale_guidance", "linear_frame_scales", "guided_denoiser",
]
