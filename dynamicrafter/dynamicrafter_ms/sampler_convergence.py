"""DDIM vs DPM-Solver++ 2M on one DynamiCrafter: the sampler runs of a convergence measurement.

:func:`runner` fixes the start noise and the conditioning of both guidance branches (a prompt and a random
picture through the pipeline's encoders: text + image tokens, image latent, fs), builds the pipeline's guided denoiser (CFG, plus guidance rescale for 512/1024-style
models) on one ``ms.jit`` compiled UNet call, and returns ``run(sampler, steps) -> final latent`` for
:func:`common.schedulers.convergence.convergence_errors`: ``"ddim"`` = the original's DDIM with eta 0 at the
model's spacing, ``"dpmpp_2m"`` = :func:`~dynamicrafter_ms.pipeline.make_dpm_schedule`. Used by the tests
and ``scripts/sampler_convergence.py``.
"""
from __future__ import annotations

from collections.abc import Callable

import mindspore as ms
import numpy as np

from .pipeline import DynamiCrafterPipeline, denoiser, sample, sampler_schedule


def runner(model, frames: int = 2, size: tuple[int, int] = (64, 64), guidance_scale: float = 7.5,
           guidance_rescale: float | None = None, spacing: str | None = None, fs: int | None = None,
           prompt: str = "a fish swimming", seed: int = 0) -> Callable[[str, int], np.ndarray]:
    """``run(sampler, steps)`` on ``model`` with everything but the sampler fixed.

    Args:
        model: a :class:`~dynamicrafter_ms.model.DynamiCrafter` (eval mode).
        frames / size: the video (a random picture of ``size`` pixels held for ``frames`` frames).
        guidance_scale: CFG scale (7.5, the release's).
        guidance_rescale: None = the release's choice: 0.7 for v-prediction (512/1024), else 0.
        spacing: DDIM spacing; None = ``uniform_trailing`` for v-prediction (512/1024), else ``uniform``.
        fs: frame stride / fps condition (None = the UNet's default_fs).
        prompt: the text; seed: numpy seed of the picture, the VAE draw and the start noise.
    """
    v = model.parameterization == "v"
    rescale = (0.7 if v else 0.0) if guidance_rescale is None else guidance_rescale
    spacing = spacing or ("uniform_trailing" if v else "uniform")
    rng = np.random.default_rng(seed)
    picture = rng.uniform(-1, 1, (1, 3, 1) + tuple(size)).astype(np.float32)
    videos = ms.Tensor(np.repeat(picture, frames, axis=2))  # (1, 3, T, H, W)
    cond, uncond, _ = DynamiCrafterPipeline(model).encode_conditions(
        [prompt], videos, guidance_scale=guidance_scale, frame_stride=fs, generator=rng)
    fn = denoiser(model, cond, uncond, guidance_scale, rescale, apply=ms.jit(model.model.construct))
    x_t = ms.Tensor(rng.standard_normal(tuple(cond["c_concat"].shape)).astype(np.float32))  # (1, 4, T, h, w)

    def run(sampler: str, steps: int) -> np.ndarray:
        eta = 0.0 if sampler == "ddim" else None
        return sample(fn, x_t, sampler_schedule(model, sampler, steps, spacing, eta), progress=False).asnumpy()

    return run
