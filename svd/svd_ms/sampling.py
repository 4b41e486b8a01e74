"""SVD's side of sampling: its guided denoiser and sgm's sampler composition.

The denoiser evaluates both branches in one batch, unconditional first (``cat([uc, c])``) - or, with
``split_cfg``, as two calls of half the batch (half the activation memory, the same work) - and
blends them per frame with :func:`common.schedulers.guidance.cfg_per_frame`: ``out = x_u + scale_t (x_c - x_u)``
with ``scale_t = linspace(min_scale, max_scale, T)[t]`` (sgm ``LinearPredictionGuider``): later frames
follow the image more strongly. It is an EDM denoiser (``prediction="x0"``, ``time="sigma"``), so it runs
under :func:`common.schedulers.sample_euler_edm` (the release) and :func:`common.schedulers.sample_dpmpp_2m`
(:func:`common.schedulers.dpmpp_2m_schedule_from_sigmas`). The start is ``noise * sqrt(1 + sigma_0^2)``
(sgm ``prepare_sampling_loop``).
"""
from __future__ import annotations

from collections.abc import Callable

import mindspore as ms
import numpy as np
from mindspore import ops

from common.schedulers.denoiser import Denoiser
from common.schedulers.dpm_solver import dpmpp_2m_schedule_from_sigmas, sample_dpmpp_2m
from common.schedulers.edm import edm_sigmas, sample_euler_edm
from common.schedulers.guidance import cfg_per_frame, guided_denoiser, linear_frame_scales

COND_KEYS = ("crossattn", "vector", "concat")
#: ``euler`` = sgm's EulerEDMSampler (the release); ``dpmpp_2m`` = DPM-Solver++ 2M on the same EDM sigmas.
SAMPLERS = ("euler", "dpmpp_2m")


def denoiser(model_denoiser: Callable, cond: dict, uncond: dict, num_frames: int, min_scale: float = 1.0,
             max_scale: float = 2.5, image_only_indicator=None, split_cfg: bool = False) -> Denoiser:
    """The guided :class:`~common.schedulers.denoiser.Denoiser` of SVD: ``fn(x, sigma) -> guided denoised``.

    Args:
        model_denoiser: ``model_denoiser(x, sigma, crossattn, vector, concat, image_only_indicator)`` (e.g. the
            :class:`~svd_ms.denoiser.Denoiser`, or its ``ms.jit`` compiled form).
        cond / uncond: dicts with ``crossattn``, ``vector``, ``concat`` (B*T leading axis).
        num_frames: T.
        min_scale / max_scale: the guidance ramp over the frames.
        image_only_indicator: (2B, T) for the doubled batch (default zeros).
        split_cfg: run the unconditional and the conditional branch as two denoiser calls of B videos
            each instead of one call of 2B (in graph mode both calls run one compiled graph).
    """
    for name, d in (("cond", cond), ("uncond", uncond)):
        missing = [k for k in COND_KEYS if k not in d]
        if missing:
            raise ValueError(f"guided denoiser: {name} lacks {missing}")
    t = int(num_frames)
    n = cond["vector"].shape[0]
    if n % t:
        raise ValueError(f"guided denoiser: batch {n} is not a multiple of num_frames {num_frames}")
    indicator = (image_only_indicator if image_only_indicator is not None
                 else ms.Tensor(np.zeros((2 * (n // t), t), np.float32)))
    branches = (uncond, cond)
    indicators = ops.chunk(indicator, 2, axis=0)  # (B, T) each
    batch = {k: ops.concat([uncond[k], cond[k]], axis=0) for k in COND_KEYS}
    scale = ms.Tensor(linear_frame_scales(t, min_scale, max_scale).reshape(1, -1, 1, 1, 1))

    def model_fn(x, sigma, branch):  # x (B*T, C, h, w), sigma (B*T,)
        if branch is None:
            return model_denoiser(ops.concat([x, x], axis=0), ops.concat([sigma, sigma], axis=0), batch["crossattn"],
                                  batch["vector"], batch["concat"], indicator)
        b = branches[branch]
        return model_denoiser(x, sigma, b["crossattn"], b["vector"], b["concat"], indicators[branch])

    def guidance(uncond, cond):
        return cfg_per_frame(uncond, cond, scale.astype(uncond.dtype))

    return guided_denoiser(model_fn, ("uncond", "cond"), guidance, prediction="x0", time="sigma", split=split_cfg)


def sample_svd(model_denoiser: Callable, noise, cond: dict, uncond: dict, num_frames: int, num_steps: int,
               sigma_min: float = 0.002, sigma_max: float = 700.0, rho: float = 7.0, min_scale: float = 1.0,
               max_scale: float = 2.5, s_churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = float("inf"),
               s_noise: float = 1.0, disable: bool = False, callback: Callable | None = None, split_cfg: bool = False,
               sampler: str = "euler"):
    """EulerEDMSampler + EDMDiscretization + LinearPredictionGuider, as sgm's ``sampler(denoiser, noise, c, uc)``;
    or DPM-Solver++ 2M (``sampler="dpmpp_2m"``) on the same sigmas, start and guided denoiser.

    Args:
        model_denoiser: see :func:`denoiser`.
        noise: (B*T, 4, h, w) N(0, 1) draw (not yet scaled).
        cond / uncond: conditioning dicts. num_frames: T. num_steps: sampler steps.
        sigma_min / sigma_max / rho: the EDM discretization. min_scale / max_scale: guidance ramp.
        s_churn / s_tmin / s_tmax / s_noise: EDM churn (0 = deterministic, the release).
        disable: hide the progress bar. callback: per-step callback (see ``sample_euler_edm``).
        split_cfg: the two guidance branches as two denoiser calls (see :func:`denoiser`).
        sampler: ``"euler"`` (sgm's EulerEDMSampler, the release) or ``"dpmpp_2m"`` (deterministic: refuses
            ``s_churn > 0``; its callback gets ``{"x", "i", "t", "sigma", "denoised"}``, ``t`` = sigma).
    Returns:
        (samples (B*T, 4, h, w), sigmas (num_steps + 1,) np.float32).
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler {sampler!r}: expected one of {SAMPLERS}")
    if sampler == "dpmpp_2m" and s_churn > 0:
        raise ValueError(f"s_churn={s_churn}: dpmpp_2m is deterministic; EDM churn needs the euler sampler")
    sigmas = edm_sigmas(num_steps, sigma_min, sigma_max, rho)
    fn = denoiser(model_denoiser, cond, uncond, num_frames, min_scale, max_scale, split_cfg=split_cfg)
    x = noise * float(np.sqrt(1.0 + np.float64(sigmas[0]) ** 2))
    if sampler == "dpmpp_2m":
        cb = None if callback is None else (lambda d: callback({**d, "sigma": d["t"]}))
        return sample_dpmpp_2m(fn, x, dpmpp_2m_schedule_from_sigmas(sigmas), disable=disable, callback=cb), sigmas
    x = sample_euler_edm(fn, x, sigmas, s_churn=s_churn, s_tmin=s_tmin, s_tmax=s_tmax, s_noise=s_noise,
                         disable=disable, callback=callback, desc="SVD sampling")
    return x, sigmas
