"""Samplers as plain functions and their noise schedules (see each module's docstring)."""
from .ddim import (
    DDIMSchedule,
    alphas_cumprod_from_betas,
    cfg_combine,
    ddim_schedule_from_diffusers,
    ddim_step,
    ddim_timesteps,
    diffusers_alphas_cumprod,
    dynamic_rescale_arr,
    ldm_alphas_cumprod,
    make_betas,
    make_ddim_schedule,
    rescale_zero_terminal_snr,
    sample_ddim,
)

__all__ = [
    "DDIMSchedule", "alphas_cumprod_from_betas", "cfg_combine", "ddim_schedule_from_diffusers", "ddim_step",
    "ddim_timesteps", "diffusers_alphas_cumprod", "dynamic_rescale_arr", "ldm_alphas_cumprod", "make_betas",
    "make_ddim_schedule", "rescale_zero_terminal_snr", "sample_ddim",
]
from .dpm_solver import (  # noqa: E402
    DPMSolverSchedule,
    dpmpp_2m_schedule_from_diffusers,
    make_dpmpp_2m_schedule,
    sample_dpmpp_2m,
)
from .edm import edm_sigmas, sample_euler_edm  # noqa: E402

__all__ += ["DPMSolverSchedule", "make_dpmpp_2m_schedule", "dpmpp_2m_schedule_from_diffusers", "sample_dpmpp_2m",
            "edm_sigmas", "sample_euler_edm"]
