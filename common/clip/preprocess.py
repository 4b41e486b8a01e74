"""CLIP image preprocessing of the OpenCLIP image embedders (DynamiCrafter, SVD).

Both wrap ``kornia.geometry.resize(x, (224, 224), interpolation='bicubic', align_corners=True,
antialias=True)``, then ``(x + 1) / 2`` and CLIP mean/std normalisation. kornia's resize is
(kornia 0.6.9 .. 0.9):

1. antialias, only if some axis shrinks (``factor = in / out > 1`` on either axis): a separable
   Gaussian blur on BOTH axes with ``sigma = max((factor - 1) / 2, 0.001)`` per axis and kernel
   ``int(max(4 * sigma, 3))`` made odd, ``exp(-n^2 / (2 sigma^2))`` normalised, REFLECT padding
   (a non-shrinking axis gets sigma 0.001, i.e. the identity);
2. ``torch.nn.functional.interpolate(mode='bicubic', align_corners=True)``: cubic convolution with
   a = -0.75 at ``src = dst * (in - 1) / (out - 1)``, neighbour indices clamped to the image.

Both steps are linear and separable, so each axis is one precomputed (out, in) matrix
(blur folded in) and the resize is two matmuls: ``A_h @ x @ A_w^T``. The matrices are built with
NumPy for the static input size (tap positions in float32 as torch computes them, products in
float64) and cached.
"""
from __future__ import annotations

from functools import lru_cache

import mindspore as ms
import numpy as np
from mindspore import nn, ops

#: CLIP normalisation (OpenAI / open_clip).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _cubic_weights(t: np.ndarray, a) -> list[np.ndarray]:
    """torch's ``get_cubic_upsample_coefficients``: weights of taps base-1 .. base+2 at fraction t."""
    one = t.dtype.type(1)

    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + one

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return [far(t + one), near(t), near(one - t), far(2 * one - t)]


def bicubic_matrix(in_size: int, out_size: int, align_corners: bool = True, a: float = -0.75,
                   dtype=np.float32) -> np.ndarray:
    """(out, in) float64 matrix of torch's 1-D bicubic interpolation (``F.interpolate(mode='bicubic')``).

    Source positions and tap weights are computed in ``dtype`` (float32 = what torch's CPU kernel
    does for float32 images: it matches torch to ~3e-6 where float64 positions differ by ~1e-4 on
    large upscales); out-of-range taps are clamped to the border pixel, as in torch.

    Args:
        in_size / out_size: lengths of the axis.
        align_corners: torch's flag (True: ``src = dst * (in-1)/(out-1)``; False: half-pixel centres).
        a: cubic coefficient (torch: -0.75).
        dtype: arithmetic of positions and weights (np.float32 or np.float64).
    """
    if in_size < 1 or out_size < 1:
        raise ValueError(f"bicubic_matrix: sizes must be positive, got in={in_size}, out={out_size}")
    f = np.dtype(dtype).type
    dst = np.arange(out_size).astype(dtype)
    if align_corners:
        scale = f(in_size - 1) / f(out_size - 1) if out_size > 1 else f(0)
        src = (dst * scale).astype(dtype)
    else:  # torch evaluates scale * (dst + 0.5) - 0.5 as one fused multiply-add: one rounding
        scale = f(in_size) / f(out_size)
        src = ((dst + f(0.5)).astype(np.float64) * np.float64(scale) - 0.5).astype(dtype)
    base = np.floor(src)
    t = (src - base).astype(dtype)
    m = np.zeros((out_size, in_size), dtype=np.float64)
    rows = np.arange(out_size)
    for k, w in zip(range(-1, 3), _cubic_weights(t, f(a))):
        idx = np.clip(base + k, 0, in_size - 1).astype(np.int64)
        np.add.at(m, (rows, idx), w.astype(np.float64))
    return m


def gaussian_kernel1d(ksize: int, sigma: float) -> np.ndarray:
    """kornia ``get_gaussian_kernel1d``: ``exp(-x^2 / 2 sigma^2)`` at x = i - ksize//2 (+0.5 if even), normalised."""
    x = np.arange(ksize, dtype=np.float64) - ksize // 2
    if ksize % 2 == 0:
        x = x + 0.5
    g = np.exp(-(x ** 2) / (2.0 * sigma ** 2))
    return g / g.sum()


def gaussian_blur_matrix(size: int, ksize: int, sigma: float) -> np.ndarray:
    """(size, size) matrix of a 1-D Gaussian blur with REFLECT padding (``F.pad(mode='reflect')``)."""
    pad = ksize // 2
    if pad >= size:
        raise ValueError(f"gaussian blur: kernel {ksize} is too large for an axis of {size} pixels (reflect pad)")
    g = gaussian_kernel1d(ksize, sigma)
    m = np.zeros((size, size), dtype=np.float64)
    for i in range(size):
        for j, w in enumerate(g):
            p = i + j - pad
            if p < 0:
                p = -p
            elif p >= size:
                p = 2 * (size - 1) - p
            m[i, p] += w
    return m


def antialias_params(in_size: int, out_size: int) -> tuple[int, float]:
    """kornia's (kernel size, sigma) for one axis: ``sigma = max((in/out - 1)/2, 0.001)``, odd ``k >= 3``."""
    sigma = max((in_size / out_size - 1.0) / 2.0, 0.001)
    k = int(max(2.0 * 2 * sigma, 3))
    if k % 2 == 0:
        k += 1
    return k, sigma


@lru_cache(maxsize=32)
def resize_matrices(in_hw: tuple[int, int], out_hw: tuple[int, int] = (224, 224), antialias: bool = True,
                    align_corners: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(A_h (out_h, in_h), A_w (out_w, in_w)) float32 of kornia's bicubic resize (blur folded in).

    ``resized = A_h @ image @ A_w^T`` for every (B, C) plane.
    """
    (ih, iw), (oh, ow) = tuple(in_hw), tuple(out_hw)
    ah, aw = bicubic_matrix(ih, oh, align_corners), bicubic_matrix(iw, ow, align_corners)
    if antialias and max(ih / oh, iw / ow) > 1:  # kornia blurs both axes once any axis shrinks
        kh, sh = antialias_params(ih, oh)
        kw, sw = antialias_params(iw, ow)
        ah = ah @ gaussian_blur_matrix(ih, kh, sh)
        aw = aw @ gaussian_blur_matrix(iw, kw, sw)
    return ah.astype(np.float32), aw.astype(np.float32)


class CLIPImagePreprocess(nn.Cell):
    """kornia bicubic resize + ``(x+1)/2`` + CLIP mean/std, for a fixed input size (graph-mode friendly).

    Args:
        input_hw: (H, W) of the images this cell receives.
        size: output (h, w), default (224, 224).
        antialias: kornia's antialias flag (DynamiCrafter / SVD: True).
        mean / std: per-channel normalisation after ``(x + 1) / 2``.
        from_minus_one: inputs are in [-1, 1] and get ``(x + 1) / 2`` (True, both embedders).

    Input (B, 3, H, W) float -> (B, 3, h, w).
    """

    def __init__(self, input_hw, size=(224, 224), antialias: bool = True, mean=CLIP_MEAN, std=CLIP_STD,
                 from_minus_one: bool = True):
        super().__init__()
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        ah, aw = resize_matrices(self.input_hw, (int(size[0]), int(size[1])), antialias)
        self.a_h = ms.Tensor(ah)  # (h, H)
        self.a_w_t = ms.Tensor(np.ascontiguousarray(aw.T))  # (W, w)
        self.mean = ms.Tensor(np.asarray(mean, np.float32).reshape(1, -1, 1, 1))
        self.std = ms.Tensor(np.asarray(std, np.float32).reshape(1, -1, 1, 1))
        self.from_minus_one = from_minus_one

    def construct(self, x):
        if x.ndim != 4 or tuple(x.shape[2:]) != self.input_hw:
            raise ValueError(f"CLIPImagePreprocess built for (B, C, {self.input_hw[0]}, {self.input_hw[1]}), "
                             f"got {tuple(x.shape)}")
        x = ops.matmul(ops.matmul(self.a_h, x.astype(ms.float32)), self.a_w_t)  # (B, C, h, w)
        if self.from_minus_one:
            x = (x + 1.0) / 2.0
        return (x - self.mean) / self.std


_CELLS: dict = {}


def clip_preprocess(x, size=(224, 224), antialias: bool = True, mean=CLIP_MEAN, std=CLIP_STD):
    """Functional :class:`CLIPImagePreprocess` for any input size (PyNative; cells cached per size).

    Args:
        x: (B, 3, H, W) MindSpore tensor in [-1, 1].
    Returns:
        (B, 3, size[0], size[1]) float32 normalised pixels for the open_clip vision tower.
    """
    key = (tuple(x.shape[2:]), tuple(size), bool(antialias), tuple(mean), tuple(std))
    cell = _CELLS.get(key)
    if cell is None:
        if len(_CELLS) >= 16:
            _CELLS.clear()
        cell = CLIPImagePreprocess(x.shape[2:], size, antialias, mean, std)
        _CELLS[key] = cell
    return cell(x)
