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
