"""Bilinear resizing as two matmuls with precomputed matrices (torch ``F.interpolate(mode='bilinear')``
numbers to float32 rounding; MindSpore's CPU resize kernels differ from torch's at the borders)."""
from __future__ import annotations

from functools import lru_cache

import mindspore as ms
import numpy as np
from mindspore import ops


@lru_cache(maxsize=64)
def bilinear_matrix(in_size: int, out_size: int, align_corners: bool) -> np.ndarray:
    """(out_size, in_size) float32 matrix of torch's 1-D linear interpolation.

    ``align_corners=True``: ``src = dst * (in-1)/(out-1)``; False: ``src = (dst+0.5) * in/out - 0.5``,
    clamped at 0 (torch's size-given rule).
    """
    m = np.zeros((out_size, in_size), np.float64)
    for d in range(out_size):
        if align_corners:
            src = d * (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
        else:
            src = max((d + 0.5) * in_size / out_size - 0.5, 0.0)
        i0 = min(int(np.floor(src)), in_size - 1)
        i1 = min(i0 + 1, in_size - 1)
        f = src - i0
        m[d, i0] += 1 - f
        m[d, i1] += f
    return m.astype(np.float32)


def resize_bilinear(x, size: tuple[int, int], align_corners: bool):
    """(N, C, H, W) -> (N, C, size[0], size[1]) bilinear (``F.interpolate(x, size, mode='bilinear', ...)``)."""
    n, c, h, w = x.shape
    oh, ow = int(size[0]), int(size[1])
    mh = ms.Tensor(bilinear_matrix(h, oh, align_corners)).astype(x.dtype)  # (oh, h)
    mw = ms.Tensor(bilinear_matrix(w, ow, align_corners).T.copy()).astype(x.dtype)  # (w, ow)
    y = ops.matmul(x.reshape(n * c, h, w), ops.broadcast_to(mw, (n * c, w, ow)))  # (n*c, h, ow)
    y = ops.matmul(ops.broadcast_to(mh, (n * c, oh, h)), y)  # (n*c, oh, ow)
    return y.reshape(n, c, oh, ow)
