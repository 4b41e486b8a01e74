"""Rotary position embeddings (Su et al. 2021, "RoFormer", arXiv:2104.09864) for video tokens.

3D form of CogVideoX / DropletVideo (diffusers ``get_3d_rotary_pos_embed`` with ``use_real=True``): the head
width is split ``dim/4`` (time), ``3*dim/8`` (rows), ``3*dim/8`` (columns); each part is a 1D RoPE of its own
axis with ``theta`` 10000, frequencies repeated pairwise (interleaved pairs). The spatial positions are not
``0..n-1``: the grid is placed in a fixed base grid (the training resolution) by
:func:`resize_crop_region_for_grid`, and ``n`` positions are spread over the crop, ``linspace(start, stop*(n-1)/n, n)``
(diffusers 0.32's form: for a crop not starting at 0 this is NOT ``endpoint=False`` spacing). Tokens are ordered (frame, row, column).

:func:`apply_rotary` rotates ``x`` (..., L, D) by the tables: ``x*cos + rot(x)*sin`` with
``rot(x)[2i] = -x[2i+1]``, ``rot(x)[2i+1] = x[2i]``.
"""
from __future__ import annotations

import numpy as np
from mindspore import ops

__all__ = ["resize_crop_region_for_grid", "rotary_1d", "rotary_3d", "apply_rotary"]


def resize_crop_region_for_grid(src_hw: tuple[int, int], tgt_width: int, tgt_height: int):
    """Where an (h, w) grid sits when resized to fit a ``tgt_height x tgt_width`` base grid (aspect kept,
    centred): ``((top, left), (bottom, right))`` in base-grid units, Python ``round`` (half to even)."""
    h, w = src_hw
    if h / w > tgt_height / tgt_width:
        rh, rw = tgt_height, int(round(tgt_height / h * w))
    else:
        rw, rh = tgt_width, int(round(tgt_width / w * h))
    top = int(round((tgt_height - rh) / 2.0))
    left = int(round((tgt_width - rw) / 2.0))
    return (top, left), (top + rh, left + rw)


def rotary_1d(dim: int, pos: np.ndarray, theta: float = 10000.0) -> tuple[np.ndarray, np.ndarray]:
    """(len(pos), dim) cos and sin tables, each frequency ``theta^(-2i/dim)`` repeated twice (float32)."""
    freqs = 1.0 / (np.float32(theta) ** (np.arange(0, dim, 2, dtype=np.float32)[: dim // 2] / np.float32(dim)))
    ang = np.outer(np.asarray(pos, np.float32), freqs.astype(np.float32)).astype(np.float32)  # (n, dim/2)
    return np.repeat(np.cos(ang), 2, axis=1), np.repeat(np.sin(ang), 2, axis=1)


def rotary_3d(head_dim: int, crops_coords, grid_size: tuple[int, int], num_frames: int,
              theta: float = 10000.0) -> tuple[np.ndarray, np.ndarray]:
    """cos, sin tables (num_frames*gh*gw, head_dim) float32 for tokens ordered (frame, row, column).

    Args:
        head_dim: attention head width (a multiple of 8... as the split t/h/w = dim/4, 3dim/8, 3dim/8 needs).
        crops_coords: ``((top, left), (bottom, right))`` from :func:`resize_crop_region_for_grid`.
        grid_size: (gh, gw) token grid.
        num_frames: latent frames (positions 0..F-1).
        theta: RoPE base.
    """
    (top, left), (bottom, right) = crops_coords
    gh, gw = grid_size
    # diffusers 0.32: linspace(start, stop * (n - 1) / n, n) -- the stop is scaled, not the span
    ph = np.linspace(top, bottom * (gh - 1) / gh, gh, dtype=np.float64).astype(np.float32)
    pw = np.linspace(left, right * (gw - 1) / gw, gw, dtype=np.float64).astype(np.float32)
    pt = np.arange(num_frames, dtype=np.float32)
    dt, dh = head_dim // 4, head_dim // 8 * 3
    dw = dh
    tabs = [rotary_1d(dt, pt, theta), rotary_1d(dh, ph, theta), rotary_1d(dw, pw, theta)]
    out = []
    for k in (0, 1):
        t, h, w = (tab[k] for tab in tabs)
        full = np.concatenate([
            np.broadcast_to(t[:, None, None, :], (num_frames, gh, gw, dt)),
            np.broadcast_to(h[None, :, None, :], (num_frames, gh, gw, dh)),
            np.broadcast_to(w[None, None, :, :], (num_frames, gh, gw, dw)),
        ], axis=-1)
        out.append(np.ascontiguousarray(full.reshape(num_frames * gh * gw, dt + dh + dw)))
    return out[0], out[1]


def apply_rotary(x, cos, sin):
    """``x * cos + rot(x) * sin`` on interleaved pairs. x (..., L, D); cos / sin (L, D) (broadcast)."""
    shape = x.shape
    pairs = x.reshape(shape[:-1] + (shape[-1] // 2, 2))
    rot = ops.stack([-pairs[..., 1], pairs[..., 0]], axis=-1).reshape(shape)
    return x * cos + rot * sin
