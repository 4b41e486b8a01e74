"""Sinusoidal embeddings shared by the UNets."""
from __future__ import annotations

import math

import mindspore as ms
import numpy as np
from mindspore import nn, ops

from .layers import linear


def timestep_embedding(timesteps, dim: int, max_period: float = 10000.0, flip_sin_to_cos: bool = True,
                       downscale_freq_shift: float = 0.0, scale: float = 1.0):
    """Sinusoidal embedding of (N,) values, float32 (N, dim).

    ``freqs_i = exp(-ln(max_period) * i / (dim/2 - downscale_freq_shift))``, i < dim/2;
    ``[cos(t f), sin(t f)]`` when ``flip_sin_to_cos`` (LDM's ``timestep_embedding`` and diffusers'
    ``Timesteps(flip_sin_to_cos=True, freq_shift=0)``), else ``[sin, cos]``. An odd ``dim`` gets a
    zero column at the end.
    """
    half = dim // 2
    exponent = -math.log(max_period) * np.arange(half, dtype=np.float32) / np.float32(half - downscale_freq_shift)
    freqs = ms.Tensor(np.exp(exponent).astype(np.float32))
    args = timesteps.astype(ms.float32).reshape(-1, 1) * freqs.reshape(1, -1) * scale  # (N, half)
    cos, sin = ops.cos(args), ops.sin(args)
    emb = ops.concat([cos, sin] if flip_sin_to_cos else [sin, cos], axis=-1)
    if dim % 2:
        emb = ops.concat([emb, ops.zeros((emb.shape[0], 1), ms.float32)], axis=-1)
    return emb


class TimestepEmbedding(nn.Cell):
    """diffusers ``TimestepEmbedding``: ``linear_1`` -> SiLU -> ``linear_2``."""

    def __init__(self, in_channels: int, time_embed_dim: int, out_dim: int | None = None):
        super().__init__()
        self.linear_1 = linear(in_channels, time_embed_dim)
        self.act = nn.SiLU()
        self.linear_2 = linear(time_embed_dim, out_dim or time_embed_dim)

    def construct(self, x):
        return self.linear_2(self.act(self.linear_1(x)))


def sinusoidal_position_table(length: int, dim: int, max_period: float = 10000.0) -> np.ndarray:
    """Fixed (length, dim) table with ``pe[p, 2k] = sin(p w_k)``, ``pe[p, 2k+1] = cos(p w_k)``,
    ``w_k = exp(-2k ln(max_period) / dim)`` (Vaswani et al. 2017), float32."""
    pos = np.arange(length, dtype=np.float32)[:, None]
    div = np.exp(np.arange(0, dim, 2, dtype=np.float32) * np.float32(-math.log(max_period) / dim))
    pe = np.zeros((length, dim), dtype=np.float32)
    pe[:, 0::2] = np.sin(pos * div)
    pe[:, 1::2] = np.cos(pos * div)
    return pe
