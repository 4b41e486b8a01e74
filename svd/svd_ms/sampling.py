"""SVD sampling: LinearPredictionGuider around the EDM denoiser, run by the Euler EDM sampler.

Each step evaluates both branches in one batch, unconditional first (``cat([uc, c])``) - or, with
``split_cfg``, as two calls of half the batch (half the activation memory, the same work) - and
blends them per frame: ``out = x_u + scale_t (x_c - x_u)`` with ``scale_t = linspace(min_scale,
max_scale, T)[t]`` (sgm ``LinearPredictionGuider``): later frames follow the image more strongly.
The start is ``noise * sqrt(1 + sigma_0^2)`` (sgm ``prepare_sampling_loop``).
"""
from __future__ import annotations

from collections.abc import Callable

import mindspore as ms
import numpy as np
from mindspore import ops

from common.schedulers.edm import edm_sigmas, sample_euler_edm

COND_KEYS = ("crossattn", "vector", "concat")


def linear_guidance_scale(num_frames: int, min_scale: float, max_scale: float) -> np.ndarray:
    """(T,) per-frame guidance weights ``linspace(min_scale, max_scale, T)`` (float32)."""
    return np.linspace(min_scale, max_scale, int(num_frames), dtype=np.float64).astype(np.float32)


class LinearPredictionGuidedDenoiser:
    """k-diffusion style model function ``fn(x, sigma) -> guided denoised`` for SVD.

    Args:
        denoiser: ``denoiser(x, sigma, crossattn, vector, concat, image_only_indicator)`` (e.g. the
            :class:`~svd_ms.denoiser.Denoiser`, or its ``ms.jit`` compiled form).
        cond / uncond: dicts with ``crossattn``, ``vector``, ``concat`` (B*T leading axis).
        num_frames: T.
        min_scale / max_scale: the guidance ramp over the frames.
        image_only_indicator: (2B, T) for the doubled batch (default zeros).
        split_cfg: run the unconditional and the conditional branch as two denoiser calls of B videos
            each instead of one call of 2B (in graph mode both calls run one compiled graph).
    """

    def __init__(self, denoiser: Callable, cond: dict, uncond: dict, num_frames: int, min_scale: float = 1.0,
                 max_scale: float = 2.5, image_only_indicator=None, split_cfg: bool = False):
        for name, d in (("cond", cond), ("uncond", uncond)):
            missing = [k for k in COND_KEYS if k not in d]
            if missing:
                raise ValueError(f"guided denoiser: {name} lacks {missing}")
        self.denoiser = denoiser
        self.num_frames = int(num_frames)
        n = cond["vector"].shape[0]
        if n % self.num_frames:
            raise ValueError(f"guided denoiser: batch {n} is not a multiple of num_frames {num_frames}")
        b2 = 2 * (n // self.num_frames)
        self.indicator = (image_only_indicator if image_only_indicator is not None
                          else ms.Tensor(np.zeros((b2, self.num_frames), np.float32)))
        self.split_cfg = bool(split_cfg)
        if self.split_cfg:
            self.branches = (uncond, cond)
            self.indicators = ops.chunk(self.indicator, 2, axis=0)  # (B, T) each
        else:
            self.batch = {k: ops.concat([uncond[k], cond[k]], axis=0) for k in COND_KEYS}
        self.scale = ms.Tensor(linear_guidance_scale(num_frames, min_scale, max_scale).reshape(1, -1, 1, 1, 1))

    def __call__(self, x, sigma):
        # x (B*T, C, h, w), sigma (B*T,)
        if self.split_cfg:
            x_u, x_c = (self.denoiser(x, sigma, b["crossattn"], b["vector"], b["concat"], ind)
                        for b, ind in zip(self.branches, self.indicators))
        else:
            out = self.denoiser(ops.concat([x, x], axis=0), ops.concat([sigma, sigma], axis=0),
                                self.batch["crossattn"], self.batch["vector"], self.batch["concat"], self.indicator)
            x_u, x_c = ops.chunk(out, 2, axis=0)
        n, c, h, w = x_u.shape
        t = self.num_frames
        x_u = x_u.reshape(n // t, t, c, h, w)
        x_c = x_c.reshape(n // t, t, c, h, w)
        return (x_u + self.scale.astype(x_u.dtype) * (x_c - x_u)).reshape(n, c, h, w)


def sample_svd(denoiser: Callable, noise, cond: dict, uncond: dict, num_frames: int, num_steps: int,
               sigma_min: float = 0.002, sigma_max: float = 700.0, rho: float = 7.0, min_scale: float = 1.0,
               max_scale: float = 2.5, s_churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = float("inf"),
               s_noise: float = 1.0, disable: bool = False, callback: Callable | None = None, split_cfg: bool = False):
    """EulerEDMSampler + EDMDiscretization + LinearPredictionGuider, as sgm's ``sampler(denoiser, noise, c, uc)``.

    Args:
        denoiser: see :class:`LinearPredictionGuidedDenoiser`.
        noise: (B*T, 4, h, w) N(0, 1) draw (not yet scaled).
        cond / uncond: conditioning dicts. num_frames: T. num_steps: sampler steps.
        sigma_min / sigma_max / rho: the EDM discretization. min_scale / max_scale: guidance ramp.
        s_churn / s_tmin / s_tmax / s_noise: EDM churn (0 = deterministic, the release).
        disable: hide the progress bar. callback: per-step callback (see ``sample_euler_edm``).
        split_cfg: the two guidance branches as two denoiser calls (see :class:`LinearPredictionGuidedDenoiser`).
    Returns:
        (samples (B*T, 4, h, w), sigmas (num_steps + 1,) np.float32).
    """
    sigmas = edm_sigmas(num_steps, sigma_min, sigma_max, rho)
    fn = LinearPredictionGuidedDenoiser(denoiser, cond, uncond, num_frames, min_scale, max_scale, split_cfg=split_cfg)
    x = noise * float(np.sqrt(1.0 + np.float64(sigmas[0]) ** 2))
    x = sample_euler_edm(fn, x, sigmas, s_churn=s_churn, s_tmin=s_tmin, s_tmax=s_tmax, s_noise=s_noise,
                         disable=disable, callback=callback, desc="SVD sampling")
    return x, sigmas
