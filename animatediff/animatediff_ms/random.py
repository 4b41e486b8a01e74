"""``torch.manual_seed(seed); torch.randn(shape)`` on CPU, reproduced in NumPy (no torch import).

``scripts/animate.py`` of the original draws the initial latents this way, so the same seed in a prompt
config gives the same starting noise here (to ~1 float32 ulp: torch's AVX2 path uses vectorised
log/sin/cos). The algorithm (``at::native::normal_fill``): torch's mt19937 is seeded with the low
32 bits of the seed (MT19937's standard ``init_genrand``); every element first gets a uniform
``(u32 & 0xFFFFFF) * 2**-24``; then each block of 16 is turned into normals by Box-Muller, element j
and j+8 (j < 8) sharing one pair: ``r = sqrt(-2 ln(1 - u_j))``, ``theta = 2 pi u_{j+8}``,
``z_j = r cos theta``, ``z_{j+8} = r sin theta``. When the count is not a multiple of 16, the last 16
elements are re-drawn and transformed again (tensors of fewer than 16 elements use a different path
and are not supported).
"""
from __future__ import annotations

import numpy as np


def torch_uniform_u24(seed: int, n: int) -> np.ndarray:
    """The first ``n`` float32 uniforms of torch's CPU generator after ``manual_seed(seed)``."""
    bg = np.random.MT19937()
    bg._legacy_seeding(int(seed) & 0xFFFFFFFF)
    raw = bg.random_raw(n).astype(np.uint64)
    return ((raw & np.uint64(0xFFFFFF)).astype(np.float64) * 2.0 ** -24).astype(np.float32)


def _box_muller16(u: np.ndarray) -> np.ndarray:
    # u (k, 16) float32 -> normals (k, 16)
    u1 = np.float32(1) - u[:, :8]
    u2 = u[:, 8:]
    radius = np.sqrt(np.float32(-2) * np.log(u1))
    theta = np.float32(2.0 * np.pi) * u2
    return np.concatenate([radius * np.cos(theta), radius * np.sin(theta)], axis=1).astype(np.float32)


def torch_randn(seed: int, shape) -> np.ndarray:
    """``torch.manual_seed(seed); torch.randn(shape, dtype=torch.float32)`` (CPU) as a NumPy array.

    Args:
        seed: any non-negative integer (torch accepts up to 2**64 - 1; only its low 32 bits seed MT19937).
        shape: the tensor shape; at least 16 elements.
    """
    shape = tuple(int(s) for s in shape)
    n = int(np.prod(shape))
    if n < 16:
        raise ValueError(f"torch_randn needs at least 16 elements, got shape {shape}")
    if int(seed) < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    tail = n % 16
    u = torch_uniform_u24(seed, n + (16 if tail else 0))
    out = np.empty(n, np.float32)
    body = n - tail
    out[:body] = _box_muller16(u[:body].reshape(-1, 16)).reshape(-1)
    if tail:
        out[n - 16:] = _box_muller16(u[n:n + 16].reshape(1, 16)).reshape(-1)
    return out.reshape(shape)
