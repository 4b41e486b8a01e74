"""The DDPM schedule buffers of ``LatentVisualDiffusion`` (``DDPM.register_schedule`` + ``scale_arr``).

Computed in float64 and cast to float32, as the original ``register_buffer`` calls do, so the
values equal the released checkpoints' buffers.
"""
from __future__ import annotations

import numpy as np

from common.schedulers.ddim import dynamic_rescale_arr, make_betas, rescale_zero_terminal_snr

from .config import DiffusionConfig

#: buffer names in the order of the original state dict.
BUFFER_NAMES = ("betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
                "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
                "sqrt_recipm1_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
                "posterior_mean_coef1", "posterior_mean_coef2")


def ddpm_buffers(cfg: DiffusionConfig) -> dict[str, np.ndarray]:
    """``{name: float32 array}``: the 12 schedule buffers, plus ``scale_arr`` (length turning_step +
    timesteps) when ``use_dynamic_rescale``. For v-prediction ``sqrt_recip(m1)_alphas_cumprod`` are zeros
    (as the original registers them)."""
    betas = make_betas(cfg.beta_schedule, cfg.timesteps, cfg.linear_start, cfg.linear_end, convention="ldm")
    if cfg.rescale_betas_zero_snr:
        betas = rescale_zero_terminal_snr(betas, dtype=np.float64)
    alphas = 1.0 - betas
    ac = np.cumprod(alphas)
    ac_prev = np.append(1.0, ac[:-1])
    with np.errstate(divide="ignore", invalid="ignore"):
        post_var = betas * (1.0 - ac_prev) / (1.0 - ac)
        out = {
            "betas": betas, "alphas_cumprod": ac, "alphas_cumprod_prev": ac_prev,
            "sqrt_alphas_cumprod": np.sqrt(ac), "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - ac),
            "log_one_minus_alphas_cumprod": np.log(1.0 - ac),
            "sqrt_recip_alphas_cumprod": np.sqrt(1.0 / ac) if cfg.parameterization != "v" else np.zeros_like(ac),
            "sqrt_recipm1_alphas_cumprod": (np.sqrt(1.0 / ac - 1) if cfg.parameterization != "v"
                                            else np.zeros_like(ac)),
            "posterior_variance": post_var,
            "posterior_log_variance_clipped": np.log(np.maximum(post_var, 1e-20)),
            "posterior_mean_coef1": betas * np.sqrt(ac_prev) / (1.0 - ac),
            "posterior_mean_coef2": (1.0 - ac_prev) * np.sqrt(alphas) / (1.0 - ac),
        }
    if cfg.use_dynamic_rescale:
        out["scale_arr"] = dynamic_rescale_arr(cfg.base_scale, cfg.turning_step, cfg.timesteps)
    return {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}
