"""DDIM vs DPM-Solver++ 2M on one AnimateDiff pipeline: the sampler runs of a convergence measurement.

:func:`runner` fixes the prompt embeddings (both CFG branches) and the start noise and returns
``run(sampler, steps) -> final latent`` through :meth:`AnimationPipeline.denoise` (``"ddim"`` = diffusers'
DDIMScheduler of ``noise_scheduler_kwargs`` with eta 0, ``"dpmpp_2m"`` = DPM-Solver++ 2M on the same
schedule), for :func:`common.schedulers.convergence.convergence_errors`. Used by the tests and
``scripts/sampler_convergence.py``.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np


def runner(pipe, frames: int = 3, size: tuple[int, int] = (64, 64), guidance_scale: float = 7.5,
           prompt: str = "a fish swimming", negative_prompt: str = "", seed: int = 0
           ) -> Callable[[str, int], np.ndarray]:
    """``run(sampler, steps)`` on ``pipe`` (an :class:`~animatediff_ms.pipeline.AnimationPipeline`, ideally with
    ``jit=True``) with everything but the sampler fixed: ``frames`` frames of ``size`` pixels, numpy ``seed``."""
    emb = pipe.encode_prompt(prompt, negative_prompt, guidance_scale > 1.0)
    x_t = np.random.default_rng(seed).standard_normal(pipe.latent_shape(frames, *size)).astype(np.float32)

    def run(sampler: str, steps: int) -> np.ndarray:
        return pipe.denoise(x_t, emb, steps, guidance_scale, eta=0.0, sampler=sampler, progress=False).asnumpy()

    return run
