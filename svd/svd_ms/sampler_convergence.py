"""Euler EDM vs DPM-Solver++ 2M on one SVD model: the sampler runs of a convergence measurement.

:func:`runner` fixes the picture, its conditioning (both branches, the per-frame guidance ramp) and the start
noise, compiles the denoiser once (``ms.jit``) and returns ``run(sampler, steps) -> final latent`` for
:func:`common.schedulers.convergence.convergence_errors` (samplers ``"euler"`` and ``"dpmpp_2m"`` of
:func:`svd_ms.sampling.sample_svd`, on the config's EDM sigmas). Used by the tests and
``scripts/sampler_convergence.py``.
"""
from __future__ import annotations

from collections.abc import Callable

import mindspore as ms
import numpy as np

from .sampling import sample_svd


def runner(model, frames: int = 3, size: tuple[int, int] = (64, 64), fps_id: float = 6.0,
           motion_bucket_id: float = 127.0, noise_aug_strength: float = 0.02, seed: int = 0
           ) -> Callable[[str, int], np.ndarray]:
    """``run(sampler, steps)`` on ``model`` (an :class:`~svd_ms.model.SVDModel`) with everything but the sampler
    fixed: a random picture of ``size`` pixels, ``frames`` frames, the micro-conditions given, numpy ``seed``."""
    rng = np.random.default_rng(seed)
    image = rng.uniform(-1, 1, (1, 3) + tuple(size)).astype(np.float32)
    aug = image + noise_aug_strength * rng.standard_normal(image.shape).astype(np.float32)
    cond, uncond = model.conditioner.get_conditioning(ms.Tensor(image), ms.Tensor(aug), frames, fps_id,
                                                      motion_bucket_id, noise_aug_strength)
    f = model.downscale
    noise = ms.Tensor(rng.standard_normal((frames, model.latent_channels, size[0] // f, size[1] // f))
                      .astype(np.float32))
    compiled = ms.jit(model.denoiser.construct)
    s = model.cfg.sampler

    def run(sampler: str, steps: int) -> np.ndarray:
        z, _ = sample_svd(compiled, noise, cond, uncond, frames, steps, s.sigma_min, s.sigma_max, s.rho, s.min_scale,
                          s.max_scale, disable=True, sampler=sampler)
        return z.asnumpy()

    return run
