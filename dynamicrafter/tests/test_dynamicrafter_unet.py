"""UNet, attention and Resampler pieces against NumPy re-derivations of the original formulas."""
from __future__ import annotations

import dataclasses
import math

import mindspore as ms
import numpy as np
import pytest
from dynamicrafter_ms.attention import ImageCrossAttention, TemporalTransformer
from dynamicrafter_ms.config import DynamiCrafterConfig, ResamplerConfig, UNetConfig
from dynamicrafter_ms.resampler import Resampler
from dynamicrafter_ms.unet import UNetModel

from common.config import ConfigError


def _np(t):
    return t.asnumpy()


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _mha(q, k, v, heads):
    b, lq, c = q.shape
    d = c // heads
    qh = q.reshape(b, lq, heads, d).transpose(0, 2, 1, 3)
    kh = k.reshape(b, -1, heads, d).transpose(0, 2, 1, 3)
    vh = v.reshape(b, -1, heads, d).transpose(0, 2, 1, 3)
    out = _softmax(qh @ kh.transpose(0, 1, 3, 2) * d ** -0.5) @ vh
    return out.transpose(0, 2, 1, 3).reshape(b, lq, c)


def _lin(cell, x):
    w = _np(cell.weight)
    y = x @ w.T
    return y + _np(cell.bias) if getattr(cell, "has_bias", False) else y


@pytest.mark.parametrize("learnable", [True, False])
def test_image_cross_attention_formula(learnable):
    attn = ImageCrossAttention(12, 8, heads=2, dim_head=4, image_cross_attention=True,
                               image_cross_attention_scale_learnable=learnable)
    randomize(attn, seed=3, std=0.5)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 12)).astype(np.float32)
    ctx = rng.standard_normal((2, 77 + 7, 8)).astype(np.float32)
    out = _np(attn(ms.Tensor(x), ms.Tensor(ctx)))
    q = _lin(attn.to_q, x)
    txt = _mha(q, _lin(attn.to_k, ctx[:, :77]), _lin(attn.to_v, ctx[:, :77]), 2)
    img = _mha(q, _lin(attn.to_k_ip, ctx[:, 77:]), _lin(attn.to_v_ip, ctx[:, 77:]), 2)
    gate = np.tanh(_np(attn.alpha)) + 1 if learnable else 1.0
    ref = _lin(attn.to_out[0], txt + gate * img)
    np.testing.assert_allclose(out, ref, atol=2e-5)
    # self-attention when no context is given (attn1)
    sa = ImageCrossAttention(12, None, heads=2, dim_head=4)
    randomize(sa, seed=9, std=0.5)
    qs = _lin(sa.to_q, x)
    self_ref = _lin(sa.to_out[0], _mha(qs, _lin(sa.to_k, x), _lin(sa.to_v, x), 2))
    np.testing.assert_allclose(_np(sa(ms.Tensor(x))), self_ref, atol=2e-5)
    # a context without image tokens: the image branch adds nothing
    short = ctx[:, :30]
    ref_short = _lin(attn.to_out[0], _mha(q, _lin(attn.to_k, short), _lin(attn.to_v, short), 2))
    np.testing.assert_allclose(_np(attn(ms.Tensor(x), ms.Tensor(short))), ref_short, atol=2e-5)


def test_text_only_attention_cuts_the_context_to_77_tokens():
    attn = ImageCrossAttention(12, 8, heads=2, dim_head=4, image_cross_attention=False)
    randomize(attn, seed=4, std=0.5)
    rng = np.random.default_rng(1)
    x = ms.Tensor(rng.standard_normal((1, 3, 12)).astype(np.float32))
    ctx = rng.standard_normal((1, 90, 8)).astype(np.float32)
    a = _np(attn(x, ms.Tensor(ctx)))
    ctx2 = ctx.copy()
    ctx2[:, 77:] = 100.0  # tokens past 77 are ignored
    np.testing.assert_array_equal(a, _np(attn(x, ms.Tensor(ctx2))))


def test_temporal_transformer_mixes_frames_only():
    tt = TemporalTransformer(32, 2, 8, use_linear=False)
    randomize(tt, seed=6, std=0.3)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2 * 3, 32, 2, 2)).astype(np.float32)
    out = _np(tt(ms.Tensor(x), 3))
    x2 = x.copy()
    x2[3:] = rng.standard_normal(x2[3:].shape)  # change the second video only
    out2 = _np(tt(ms.Tensor(x2), 3))
    np.testing.assert_allclose(out[:3], out2[:3], atol=1e-6)  # per-video GroupNorm, attention over its frames
    assert np.abs(out[3:] - out2[3:]).max() > 1e-2
    assert tt.proj_in.weight.shape == (16, 32, 1)  # Conv1d(k=1) layout of init_attn


@pytest.fixture(autouse=True)
def _helpers(dc):
    global randomize, tiny_config
    randomize, tiny_config = dc.randomize, dc.tiny_config


def _tiny_unet(**changes):
    cfg = DynamiCrafterConfig.from_dict(tiny_config("256")).unet
    unet = UNetModel(dataclasses.replace(cfg, **changes))
    randomize(unet, seed=7, std=0.15)
    unet.set_train(False)
    return unet


def _unet_inputs(b=2, t=3, h=8, w=8, length=None, seed=0):
    rng = np.random.default_rng(seed)
    length = length or 77 + 16 * t
    return (ms.Tensor(rng.standard_normal((b, 8, t, h, w)).astype(np.float32)),
            ms.Tensor(np.array([999, 10][:b], np.int64)),
            ms.Tensor(rng.standard_normal((b, length, 16)).astype(np.float32)),
            ms.Tensor(np.array([3, 24][:b], np.int64)))


def test_per_frame_context_split():
    unet = _tiny_unet()
    rng = np.random.default_rng(4)
    ctx = rng.standard_normal((2, 77 + 16 * 3, 16)).astype(np.float32)
    out = _np(unet.per_frame_context(ms.Tensor(ctx), 3))  # (b*t, 77 + 16, D)
    assert out.shape == (6, 93, 16)
    for b in range(2):
        for f in range(3):
            np.testing.assert_array_equal(out[b * 3 + f, :77], ctx[b, :77])
            np.testing.assert_array_equal(out[b * 3 + f, 77:], ctx[b, 77 + 16 * f: 77 + 16 * (f + 1)])
    other = rng.standard_normal((2, 50, 16)).astype(np.float32)
    rep = _np(unet.per_frame_context(ms.Tensor(other), 3))
    np.testing.assert_array_equal(rep, np.repeat(other, 3, axis=0))


@pytest.mark.parametrize("t,h,w", [(3, 8, 12), (1, 4, 4), (5, 8, 8)])
def test_unet_any_frames_and_aspect(t, h, w):
    unet = _tiny_unet()
    x, ts, ctx, fs = _unet_inputs(t=t, h=h, w=w)
    out = _np(unet(x, ts, ctx, fs))
    assert out.shape == (2, 4, t, h, w) and np.isfinite(out).all()
    # batch items are independent (CFG runs cond and uncond as one batch)
    one = _np(unet(x[1:], ts[1:], ctx[1:], fs[1:]))
    np.testing.assert_allclose(out[1:], one, atol=1e-4)


def test_fs_conditioning():
    unet = _tiny_unet()
    x, ts, ctx, fs = _unet_inputs(b=1, t=1, h=4, w=4)
    a = _np(unet(x, ts, ctx, fs))
    b = _np(unet(x, ts, ctx, ms.Tensor(np.array([10], np.int64))))
    assert np.abs(a - b).max() > 1e-4
    plain = _tiny_unet(fs_condition=False)
    assert not hasattr(plain, "fps_embedding")
    np.testing.assert_array_equal(_np(plain(x, ts, ctx, fs)), _np(plain(x, ts, ctx, ms.Tensor(np.array([10])))))


def test_unet_options_change_the_layout():
    names = {n for n, _ in _tiny_unet().parameters_and_names()}
    assert all(p.name == n for n, p in _tiny_unet().parameters_and_names())  # Parameter.name agrees
    assert "init_attn.0.proj_in.weight" in names and "input_blocks.1.0.temopral_conv.conv4.3.weight" in names
    assert "input_blocks.1.1.transformer_blocks.0.attn2.alpha" in names
    plain = {n for n, _ in _tiny_unet(addition_attention=False, temporal_conv=False, temporal_attention=False,
                                      image_cross_attention=False).parameters_and_names()}
    assert not any(k.startswith("init_attn") or "temopral_conv" in k or "to_k_ip" in k for k in plain)
    assert "input_blocks.1.2.norm.weight" not in plain  # no temporal transformer
    heads = _tiny_unet(num_head_channels=-1, num_heads=2, addition_attention=False)
    assert heads.input_blocks[1][1].transformer_blocks[0].attn1.heads == 2


def test_unet_graph_mode_equals_pynative():
    unet = _tiny_unet()
    x, ts, ctx, fs = _unet_inputs(t=2, h=4, w=8)
    eager = _np(unet(x, ts, ctx, fs))
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        graph = _np(unet(x, ts, ctx, fs))
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)
    np.testing.assert_allclose(graph, eager, atol=1e-5)


def test_resampler_formula():
    cfg = ResamplerConfig(dim=8, depth=1, dim_head=4, heads=2, num_queries=3, embedding_dim=6, output_dim=5,
                          ff_mult=2, video_length=2)
    rs = Resampler(cfg)
    randomize(rs, seed=8, std=0.5)
    x = np.random.default_rng(5).standard_normal((2, 7, 6)).astype(np.float32)
    out = _np(rs(ms.Tensor(x)))
    assert out.shape == (2, 6, 5)

    def ln(v, cell):
        m = v.mean(-1, keepdims=True)
        s = ((v - m) ** 2).mean(-1, keepdims=True)
        return (v - m) / np.sqrt(s + 1e-5) * _np(cell.weight) + _np(cell.bias)

    lat = np.repeat(_np(rs.latents), 2, axis=0)
    h = _lin(rs.proj_in, x)
    attn, ff = rs.layers[0][0], rs.layers[0][1]
    xn, ln_ = ln(h, attn.norm1), ln(lat, attn.norm2)
    q = ln_ @ _np(attn.to_q.weight).T
    kv = np.concatenate([xn, ln_], 1) @ _np(attn.to_kv.weight).T
    k, v = kv[..., :8], kv[..., 8:]
    lat = _mha(q, k, v, 2) @ _np(attn.to_out.weight).T + lat
    erf = np.vectorize(math.erf)
    g = ln(lat, ff[0]) @ _np(ff[1].weight).T
    g = 0.5 * g * (1 + erf(g / np.sqrt(2)))
    lat = g @ _np(ff[3].weight).T + lat
    ref = ln(_lin(rs.proj_out, lat), rs.norm_out)
    np.testing.assert_allclose(out, ref, atol=2e-5)


def test_config_refuses_unsupported_options(tiny_cfg_dict):
    tiny_cfg_dict["model"]["params"]["unet_config"]["params"]["use_relative_position"] = True
    with pytest.raises(ConfigError, match="use_relative_position"):
        DynamiCrafterConfig.from_dict(tiny_cfg_dict)
    with pytest.raises(ConfigError, match="image_proj_stage_config"):
        DynamiCrafterConfig.from_dict({"model": {"target": "lvdm.models.ddpm3d.LatentVisualDiffusion",
                                                 "params": {"unet_config": {}, "first_stage_config": {},
                                                            "cond_stage_config": {}, "img_cond_stage_config": {}}}})
    with pytest.raises(ConfigError, match="num_heads or num_head_channels"):
        UNetConfig(num_head_channels=-1, num_heads=-1)
    tiny_cfg_dict["model"]["params"]["unet_config"]["params"]["use_relative_position"] = False
    tiny_cfg_dict["model"]["params"]["unet_config"]["params"]["num_head_chanels"] = 8
    with pytest.raises(ConfigError) as e:
        DynamiCrafterConfig.from_dict(tiny_cfg_dict, "configs/x.yaml")
    assert str(e.value) == ("configs/x.yaml: model.params.unet_config.params.num_head_chanels: unknown key "
                            "(did you mean 'num_head_channels'?)")
    del tiny_cfg_dict["model"]["params"]["unet_config"]["params"]["num_head_chanels"]
    del tiny_cfg_dict["model"]["params"]["scale_factor"]
    with pytest.raises(ConfigError, match=r"^configs/x.yaml: model.params.scale_factor: missing"):
        DynamiCrafterConfig.from_dict(tiny_cfg_dict, "configs/x.yaml")
