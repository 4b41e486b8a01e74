"""CLIP image preprocessing: bicubic matrices vs torch, Gaussian antialias vs a NumPy reference,
and the whole kornia-style resize + normalisation vs a torch composition of the same steps."""
from __future__ import annotations

import mindspore as ms
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from common.clip.preprocess import (
    CLIP_MEAN,
    CLIP_STD,
    CLIPImagePreprocess,
    antialias_params,
    bicubic_matrix,
    clip_preprocess,
    gaussian_blur_matrix,
    resize_matrices,
)

RNG = np.random.RandomState(0)


@pytest.mark.parametrize("in_size,out_size", [(64, 224), (300, 224), (224, 224), (7, 3), (1, 4), (5, 1)])
@pytest.mark.parametrize("align_corners", [True, False])
def test_bicubic_matrix_matches_torch(in_size, out_size, align_corners):
    x = RNG.randn(2, 3, in_size, 9).astype(np.float32)
    ref = F.interpolate(torch.from_numpy(x), size=(out_size, 9), mode="bicubic", align_corners=align_corners).numpy()
    m = bicubic_matrix(in_size, out_size, align_corners)
    ours = np.einsum("oi,bcij->bcoj", m, x.astype(np.float64))
    assert np.abs(ours - ref).max() < 1e-5


def _np_gaussian_blur_1d(x: np.ndarray, ksize: int, sigma: float) -> np.ndarray:
    """Reference: reflect-pad the last axis, correlate with the normalised Gaussian."""
    offsets = np.arange(ksize) - ksize // 2
    g = np.exp(-(offsets.astype(np.float64) ** 2) / (2 * sigma * sigma))
    g /= g.sum()
    p = ksize // 2
    xp = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(p, p)], mode="reflect")
    return sum(g[j] * xp[..., j:j + x.shape[-1]] for j in range(ksize))


@pytest.mark.parametrize("size,ksize,sigma", [(20, 3, 0.5), (33, 5, 1.2), (12, 7, 1.786), (9, 3, 0.001)])
def test_gaussian_blur_matrix_matches_numpy(size, ksize, sigma):
    x = RNG.randn(4, size)
    ours = x @ gaussian_blur_matrix(size, ksize, sigma).T
    np.testing.assert_allclose(ours, _np_gaussian_blur_1d(x, ksize, sigma), atol=1e-12)


def test_antialias_params_follow_kornia():
    assert antialias_params(448, 224) == (3, 0.5)
    assert antialias_params(576, 224)[0] == 3 and antialias_params(1024, 224)[0] == 7  # real DynamiCrafter input
    assert antialias_params(800, 224)[0] == 5
    assert antialias_params(64, 224) == (3, 0.001)  # upscaling axis: identity blur


def _torch_reference(x: np.ndarray, size=(224, 224), antialias=True) -> np.ndarray:
    """kornia.geometry.resize(bicubic, align_corners=True, antialias) + (x+1)/2 + CLIP normalisation, in torch."""
    t = torch.from_numpy(x).double()
    h, w = t.shape[-2:]
    if antialias and max(h / size[0], w / size[1]) > 1:
        for axis, (n, m) in enumerate(((h, size[0]), (w, size[1]))):
            k, s = antialias_params(n, m)
            off = torch.arange(k, dtype=torch.float64) - k // 2
            g = torch.exp(-off ** 2 / (2 * s * s))
            g = (g / g.sum()).to(t.dtype)
            c = t.shape[1]
            if axis == 0:
                t = F.conv2d(F.pad(t, (0, 0, k // 2, k // 2), mode="reflect"), g.view(1, 1, k, 1).repeat(c, 1, 1, 1),
                             groups=c)
            else:
                t = F.conv2d(F.pad(t, (k // 2, k // 2, 0, 0), mode="reflect"), g.view(1, 1, 1, k).repeat(c, 1, 1, 1),
                             groups=c)
    t = F.interpolate(t.float(), size=size, mode="bicubic", align_corners=True).double()
    t = (t + 1) / 2
    mean = torch.tensor(CLIP_MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=torch.float64).view(1, 3, 1, 1)
    return ((t - mean) / std).numpy()


@pytest.mark.parametrize("hw", [(64, 64), (48, 80), (448, 160), (96, 800), (230, 240)])
def test_clip_preprocess_matches_torch(hw):
    x = np.tanh(RNG.randn(2, 3, *hw)).astype(np.float32)
    ours = clip_preprocess(ms.Tensor(x)).asnumpy()
    ref = _torch_reference(x)
    assert ours.shape == (2, 3, 224, 224)
    assert np.abs(ours - ref).max() < 5e-5
    if max(hw) >= 400:  # the antialias step is really exercised (sigma >= 0.4)
        assert np.abs(_torch_reference(x, antialias=False) - ref).max() > 1e-2


def test_resize_matrices_rows_sum_to_one_and_cache():
    ah, aw = resize_matrices((96, 800))
    np.testing.assert_allclose(ah.sum(1), 1, atol=1e-5)
    np.testing.assert_allclose(aw.sum(1), 1, atol=1e-5)
    assert resize_matrices((96, 800)) is resize_matrices((96, 800))


def test_preprocess_cell_checks_shape_and_other_sizes():
    cell = CLIPImagePreprocess((40, 30), size=(28, 28), antialias=False)
    x = np.tanh(RNG.randn(1, 3, 40, 30)).astype(np.float32)
    np.testing.assert_allclose(cell(ms.Tensor(x)).asnumpy(), _torch_reference(x, (28, 28), False), atol=5e-5)
    with pytest.raises(ValueError, match=r"built for \(B, C, 40, 30\)"):
        cell(ms.Tensor(np.zeros((1, 3, 30, 40), np.float32)))
