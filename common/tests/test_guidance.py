"""Guidance (common.schedulers.guidance) against hand-written formulas; the guided denoiser's batching."""
import functools

import mindspore as ms
import numpy as np
import pytest

from common.schedulers import Denoiser, to_denoised
from common.schedulers.guidance import (
    cfg,
    cfg_per_frame,
    cfg_two_scale,
    guided_denoiser,
    linear_frame_scales,
    rescale_guidance,
)

RNG = np.random.default_rng(2)
U, C, UI = (RNG.standard_normal((2, 3, 4, 5)).astype(np.float32) for _ in range(3))


def _std(z):  # unbiased per-sample std
    return z.reshape(z.shape[0], -1).std(axis=1, ddof=1).reshape((-1,) + (1,) * (z.ndim - 1))


def test_cfg_and_rescale_by_hand_on_numpy_and_mindspore():
    out = U + 5.0 * (C - U)
    np.testing.assert_allclose(cfg(U, C, 5.0), out, rtol=1e-6)
    want = 0.7 * out * _std(C) / _std(out) + 0.3 * out
    np.testing.assert_allclose(cfg(ms.Tensor(U), ms.Tensor(C), 5.0, 0.7).asnumpy(), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rescale_guidance(out, C, 0.7), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_std(cfg(U, C, 5.0, 1.0)), _std(C), rtol=1e-5)  # full rescale: std of cond
    assert rescale_guidance(out, C, 0.0) is out


def test_two_scale_cfg_by_hand():
    want = U + 2.0 * (UI - U) + 7.5 * (C - UI)
    np.testing.assert_allclose(cfg_two_scale(U, UI, C, 7.5, 2.0), want, rtol=1e-5, atol=1e-5)
    r = cfg_two_scale(ms.Tensor(U), ms.Tensor(UI), ms.Tensor(C), 7.5, 2.0, rescale=0.7).asnumpy()
    np.testing.assert_allclose(r, 0.7 * want * _std(C) / _std(want) + 0.3 * want, rtol=1e-4, atol=1e-4)
    # equal scales: plain CFG
    np.testing.assert_allclose(cfg_two_scale(U, UI, C, 3.0, 3.0), cfg(U, C, 3.0), rtol=1e-5, atol=1e-5)


def test_per_frame_ramp_by_hand():
    t = 4
    s = linear_frame_scales(t, 1.0, 2.5)
    np.testing.assert_allclose(s, [1.0, 1.5, 2.0, 2.5])
    u = RNG.standard_normal((2 * t, 3, 2, 2)).astype(np.float32)  # (B*T, C, h, w), B = 2
    c = RNG.standard_normal((2 * t, 3, 2, 2)).astype(np.float32)
    got = cfg_per_frame(ms.Tensor(u), ms.Tensor(c), ms.Tensor(s.reshape(1, -1, 1, 1, 1))).asnumpy()
    want = np.stack([u[k] + s[k % t] * (c[k] - u[k]) for k in range(2 * t)])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("split", [False, True])
def test_guided_denoiser_batches_or_splits_the_branches(split):
    offsets = {"uncond": 0.0, "cond": 1.0, "uncond_img": 0.5}
    names = ("cond", "uncond", "uncond_img")
    calls = []

    def model_fn(x, t, branch):  # each branch adds its offset
        calls.append(branch)
        if branch is None:
            return np.concatenate([x + offsets[n] for n in names])
        return x + offsets[names[branch]]

    g = guided_denoiser(model_fn, names, functools.partial(cfg_two_scale, scale=3.0, image_scale=2.0),
                        prediction="v", split=split)
    assert isinstance(g, Denoiser) and g.prediction == "v" and g.time == "timestep"
    x = RNG.standard_normal((2, 3)).astype(np.float32)
    out = g(x, np.zeros(2, np.int64))
    np.testing.assert_allclose(out, cfg_two_scale(x, x + 0.5, x + 1.0, 3.0, 2.0), rtol=1e-6)
    assert calls == ([0, 1, 2] if split else [None])
    single = guided_denoiser(model_fn, ("cond",), prediction="eps")
    np.testing.assert_array_equal(single(x, None), np.concatenate([x + offsets[n] for n in names]))
    with pytest.raises(ValueError, match="need a guidance function"):
        guided_denoiser(model_fn, names, prediction="eps")


def test_denoiser_contract_errors_and_conversions():
    with pytest.raises(ValueError, match="prediction must be one of"):
        Denoiser(lambda x, t: x, "epsilon")
    with pytest.raises(ValueError, match="time must be one of"):
        Denoiser(lambda x, t: x, "eps", time="continuous")
    x, e = np.float64(0.3), np.float64(-1.2)
    a, s = np.sqrt(0.64), np.sqrt(0.36)
    x0 = to_denoised(x, e, "eps", a, s)
    assert to_denoised(x, a * e - s * x0, "v", a, s) == pytest.approx(x0)
    assert to_denoised(x, x0, "x0", a, s) == x0
