"""Sliding context windows (common.schedulers.context) and FreeInit (common.schedulers.freeinit)."""
from __future__ import annotations

import itertools

import mindspore as ms
import numpy as np
import pytest

from common.schedulers.context import context_windows, fuse_weights, windowed_denoiser
from common.schedulers.denoiser import Denoiser
from common.schedulers.freeinit import fast_sampling_steps, freeinit_filter, freeinit_reinit


@pytest.mark.parametrize("schedule", ["uniform", "static"])
def test_windows_cover_every_frame_with_full_length_windows(schedule):
    for n, length, overlap, step in itertools.product((1, 7, 16, 17, 24, 33, 48, 61), (4, 8, 16), (0, 1, 3),
                                                      range(6)):
        if overlap >= length:
            continue
        ws = context_windows(n, length, overlap, schedule=schedule, step=step)
        covered = np.zeros(n, int)
        for w in ws:
            assert w == list(range(w[0], w[0] + len(w)))  # consecutive frames
            assert len(w) == min(n, length) and 0 <= w[0] and w[-1] < n
            covered[w] += 1
        assert covered.min() >= 1, (n, length, overlap, step)
        assert len({tuple(w) for w in ws}) == len(ws)  # no window twice


def test_static_windows_and_the_uniform_shift():
    assert context_windows(24, 16, 4, schedule="static") == [list(range(0, 16)), list(range(8, 24))]
    assert context_windows(40, 16, 4, schedule="static") == [list(range(0, 16)), list(range(12, 28)),
                                                              list(range(24, 40))]
    # uniform: step 0 unshifted, step 1 shifted by half the video (20 of 40 frames)
    assert context_windows(40, 16, 4, schedule="uniform", step=0) == context_windows(40, 16, 4, schedule="static")
    starts = [w[0] for w in context_windows(40, 16, 4, schedule="uniform", step=1)]
    assert starts == [0, 4, 16, 20, 24]  # 20, 32 -> 24 (moved back to the end), 44 -> 4, 56 -> 16, and 0
    with pytest.raises(ValueError, match="context_overlap"):
        context_windows(40, 16, 16)
    with pytest.raises(ValueError, match="schedule"):
        context_windows(40, 16, 4, schedule="looped")


def test_fuse_weights():
    assert fuse_weights(4, "pyramid").tolist() == [1, 2, 2, 1]
    assert fuse_weights(5, "pyramid").tolist() == [1, 2, 3, 2, 1]
    assert fuse_weights(3, "flat").tolist() == [1, 1, 1]


def _framewise(x, t):
    # each frame's output depends only on that frame (and t): every window agrees on it
    f = x.shape[2]
    return x * 2.0 + ms.Tensor(np.float32(0.5)) * ms.Tensor(np.ones((1, 1, f, 1, 1), np.float32)) * t[0]


def test_windowed_denoiser_is_exact_where_windows_agree():
    rng = np.random.default_rng(0)
    x = ms.Tensor(rng.standard_normal((2, 3, 23, 4, 5)).astype(np.float32))
    t = ms.Tensor(np.array([7, 7], np.int64))
    plain = Denoiser(_framewise, "eps")
    built = []

    def make(idx):
        built.append(tuple(idx))
        return plain

    for schedule, fuse in (("uniform", "pyramid"), ("static", "flat")):
        win = windowed_denoiser(make, 23, 8, 3, schedule=schedule, fuse=fuse)
        assert win.prediction == "eps"
        for _ in range(3):  # the uniform windows move from step to step
            np.testing.assert_allclose(win(x, t).asnumpy(), plain(x, t).asnumpy(), rtol=1e-6, atol=1e-6)
    assert len(set(built)) > 3


def test_windowed_denoiser_weights_and_one_window():
    # a window-dependent output: the fused value is the weighted mean of the windows that hold the frame
    x = np.zeros((1, 1, 6, 1, 1), np.float32)

    def make(idx):
        return Denoiser(lambda z, t: np.full(z.shape, float(idx[0]), np.float32), "x0")

    out = windowed_denoiser(make, 6, 4, 2, fuse="pyramid", windows=[[0, 1, 2, 3], [2, 3, 4, 5]])(x, None)
    w = fuse_weights(4, "pyramid")  # frame 2: weight w[2] in window 0 (value 0), w[0] in window 2 (value 2)
    assert out[0, 0, 2, 0, 0] == pytest.approx(2 * w[0] / (w[2] + w[0]))
    assert out[0, 0, :2].ravel().tolist() == [0, 0] and out[0, 0, 4:].ravel().tolist() == [2, 2]
    one = windowed_denoiser(make, 6, 8, 2)  # the video fits one window: the plain call, unchanged
    assert np.array_equal(one(x, None), make([0])(x, None))


def test_freeinit_filter_and_mix():
    lpf = freeinit_filter((1, 4, 3, 6, 8), "butterworth", 4, 0.25, 0.25)
    assert lpf.shape == (1, 4, 3, 6, 8)
    t, h, w = 1, 2, 5  # d^2 at one point, by the formula
    d2 = (2 * t / 3 - 1) ** 2 + (2 * h / 6 - 1) ** 2 + (2 * w / 8 - 1) ** 2
    assert lpf[0, 0, t, h, w] == pytest.approx(1 / (1 + (d2 / 0.25 ** 2) ** 4))
    assert freeinit_filter((2, 2, 2), "ideal", 4, 0.25, 0.25).max() == 1
    assert not freeinit_filter((2, 2, 2), spatial_stop_frequency=0).any()
    rng = np.random.default_rng(1)
    lat, noise, fresh = (rng.standard_normal((1, 2, 3, 4, 4)) for _ in range(3))
    a = 0.3
    np.testing.assert_allclose(freeinit_reinit(lat, noise, fresh, a, np.ones(lat.shape)),
                               np.sqrt(a) * lat + np.sqrt(1 - a) * noise, atol=1e-5)
    np.testing.assert_allclose(freeinit_reinit(lat, noise, fresh, a, np.zeros(lat.shape)), fresh, atol=1e-5)
    assert [fast_sampling_steps(25, 3, i) for i in range(3)] == [8, 16, 25]
