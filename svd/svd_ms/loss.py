"""The sgm training objective of SVD (``StandardDiffusionLoss`` with ``EDMSampling`` and ``EDMWeighting``).

Per frame (element of the B*T batch): ``log sigma ~ N(p_mean, p_std^2)`` (EDMSampling),
``noised = latents + noise * sigma``, ``D = denoiser(noised, sigma, cond)``,
``w = (sigma^2 + sigma_data^2) / (sigma * sigma_data)^2`` (EDMWeighting), and
``loss = mean_{C,h,w}(w (D - latents)^2)`` (``l2``) or ``w |D - latents|`` (``l1``).
DiffusionEngine's training loss is the mean over the batch.
"""
from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import nn, ops

from .denoiser import Denoiser


def edm_weighting(sigma, sigma_data: float):
    """EDMWeighting: ``(s^2 + sd^2) / (s sd)^2``."""
    return (sigma * sigma + sigma_data ** 2) / (sigma * sigma_data) ** 2


def sample_edm_sigmas(n: int, p_mean: float, p_std: float, rng: np.random.Generator) -> np.ndarray:
    """EDMSampling: ``exp(p_mean + p_std * N(0, 1))`` for n frames (float32)."""
    return np.exp(p_mean + p_std * rng.standard_normal(n)).astype(np.float32)


class SVDDiffusionLoss(nn.Cell):
    """``construct(latents, crossattn, vector, concat, sigmas, noise, image_only_indicator) -> (B*T,)`` per-frame loss.

    Args:
        denoiser: the :class:`~svd_ms.denoiser.Denoiser`.
        sigma_data: EDMWeighting's sigma_data (SVD training configs: 0.5 or 1.0).
        loss_type: ``"l2"`` or ``"l1"``.

    Random draws (sigmas, noise) are inputs, so a training step is reproducible from its seed.
    The cell does not rename the parameters (``auto_prefix=False``).
    """

    def __init__(self, denoiser: Denoiser, sigma_data: float = 0.5, loss_type: str = "l2"):
        super().__init__(auto_prefix=False)
        if loss_type not in ("l2", "l1"):
            raise ValueError(f"SVDDiffusionLoss: loss_type {loss_type!r} is not supported (expected 'l2' or 'l1')")
        self.denoiser = denoiser
        self.sigma_data = float(sigma_data)
        self.loss_type = loss_type

    def construct(self, latents, crossattn, vector, concat, sigmas, noise, image_only_indicator):
        n = latents.shape[0]
        s = sigmas.astype(ms.float32)
        noised = latents + noise * s.reshape(n, 1, 1, 1).astype(latents.dtype)
        d = self.denoiser(noised, s, crossattn, vector, concat, image_only_indicator).astype(ms.float32)
        w = edm_weighting(s, self.sigma_data).reshape(n, 1, 1, 1)
        err = d - latents.astype(ms.float32)
        err = err * err if self.loss_type == "l2" else ops.abs(err)
        return (w * err).reshape(n, -1).mean(axis=1)  # (B*T,)


class SVDMeanLoss(nn.Cell):
    """The scalar training loss: ``SVDDiffusionLoss(...).mean()`` (DiffusionEngine.forward)."""

    def __init__(self, loss: SVDDiffusionLoss):
        super().__init__(auto_prefix=False)
        self.loss = loss

    def construct(self, latents, crossattn, vector, concat, sigmas, noise, image_only_indicator):
        return self.loss(latents, crossattn, vector, concat, sigmas, noise, image_only_indicator).mean()
