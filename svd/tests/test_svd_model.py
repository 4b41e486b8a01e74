"""Behaviour of the SVD model parts on tiny random configs (graph mode, temporal mixing, variants, conditioning)."""
import math

import mindspore as ms
import numpy as np
import pytest

from common.config import ConfigError
from svd_ms.config import VideoUNetConfig
from svd_ms.video_unet import VideoUNet, temporal_parameter_names

rng = np.random.default_rng(0)


def _t(a):
    return ms.Tensor(np.asarray(a, np.float32))


def _unet_inputs(b, t, cin=8, h=8, w=8, ctx=32, adm=24, indicator=0.0):
    n = b * t
    return (_t(rng.standard_normal((n, cin, h, w))), _t(rng.uniform(-1, 1, n)), _t(rng.standard_normal((n, 1, ctx))),
            _t(rng.standard_normal((n, adm))), _t(np.full((b, t), indicator)))


def _small_cfg(**kw):
    base = dict(in_channels=8, model_channels=32, out_channels=4, num_res_blocks=1, attention_resolutions=[2, 1],
                channel_mult=[1, 2], num_head_channels=16, context_dim=32, adm_in_channels=24, num_classes="sequential",
                use_linear_in_transformer=True, extra_ff_mix_layer=True, use_spatial_context=True,
                merge_strategy="learned_with_images", video_kernel_size=[3, 1, 1])
    base.update(kw)
    return VideoUNetConfig(**base)


def test_denoiser_graph_mode_equals_pynative(tiny_model):
    b, t = 2, 3
    x, _, ctx, y, ind = _unet_inputs(b, t)
    x = x[:, :4]
    sigma = _t(np.exp(rng.standard_normal(b * t)))
    concat = _t(rng.standard_normal((b * t, 4, 8, 8)))
    eager = tiny_model.denoiser(x, sigma, ctx, y, concat, ind).asnumpy()
    graph = ms.jit(tiny_model.denoiser.construct)(x, sigma, ctx, y, concat, ind).asnumpy()
    np.testing.assert_allclose(graph, eager, rtol=1e-4, atol=1e-5)


def test_image_only_indicator_switches_the_temporal_layers_off():
    ms.set_seed(1)
    net = VideoUNet(_small_cfg(channel_mult=[1], attention_resolutions=[1]))
    inputs = _unet_inputs(1, 3, h=4, w=4, indicator=1.0)
    before = net(*inputs).asnumpy()
    names = set(temporal_parameter_names(net))
    for p in net.get_parameters():
        if p.name in names and not p.name.endswith("mix_factor"):
            p.set_data(p + 0.5)
    after = net(*inputs).asnumpy()
    np.testing.assert_allclose(after, before, atol=1e-5)  # images only: the temporal path is blended out
    video = (inputs[0], inputs[1], inputs[2], inputs[3], _t(np.zeros((1, 3))))
    changed = net(*video).asnumpy()
    assert np.abs(changed - before).max() > 1e-3


def test_frames_mix_within_a_video_only():
    ms.set_seed(2)
    net = VideoUNet(_small_cfg())
    x, ts, ctx, y, ind = _unet_inputs(2, 3)
    out = net(x, ts, ctx, y, ind).asnumpy()
    x2 = x.asnumpy().copy()
    x2[0] += 1.0  # video 0, frame 0
    out2 = net(_t(x2), ts, ctx, y, ind).asnumpy()
    diff = np.abs(out2 - out).reshape(2, 3, -1).max(-1)
    assert np.all(diff[0] > 1e-4)  # every frame of video 0 moves (temporal convs/attention)
    np.testing.assert_allclose(diff[1], 0.0, atol=1e-6)  # video 1 is untouched


@pytest.mark.parametrize("kw", [
    dict(num_head_channels=-1, num_heads=2),
    dict(transformer_depth=2, use_linear_in_transformer=False),
    dict(merge_strategy="learned", use_spatial_context=False),
    dict(merge_strategy="fixed", disable_temporal_crossattention=True, extra_ff_mix_layer=False),
    dict(num_res_blocks=2, channel_mult=[1, 1, 2], attention_resolutions=[4], video_kernel_size=5),
])
def test_unet_variants_build_and_run(kw):
    cfg = _small_cfg(**kw)
    net = VideoUNet(cfg)
    h = 4 * 2 ** (len(cfg.channel_mult) - 1)
    out = net(*_unet_inputs(1, 2, h=h, w=h)).asnumpy()
    assert out.shape == (2, 4, h, h) and np.all(np.isfinite(out))
    names = {p.name: tuple(p.shape) for p in net.get_parameters()}
    if kw.get("use_linear_in_transformer") is False:
        assert len(names["input_blocks.1.1.proj_in.weight"]) == 4  # 1x1 conv
    if kw.get("disable_temporal_crossattention"):
        assert not [n for n in names if ".time_stack.0.attn2." in n]
    if kw.get("video_kernel_size") == 5:
        assert names["input_blocks.1.0.time_stack.in_layers.2.weight"][2:] == (5, 1, 1)
    if kw.get("transformer_depth") == 2:
        assert "input_blocks.1.1.time_stack.1.ff.net.2.weight" in names


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="num_heads or num_head_channels"):
        _small_cfg(num_head_channels=-1)
    with pytest.raises(ConfigError, match="merge_strategy"):
        _small_cfg(merge_strategy="average")
    with pytest.raises(ConfigError, match="video_kernel_size"):
        _small_cfg(video_kernel_size=[3, 3, 3])


def test_temporal_parameters_are_the_time_layers(tiny_model):
    names = [p.name for p in tiny_model.temporal_parameters()]
    assert names and all(any(k in n for k in ("time_stack", "time_mixer", "time_pos_embed")) for n in names)
    assert "model.diffusion_model.input_blocks.1.0.time_mixer.mix_factor" in names
    assert "model.diffusion_model.input_blocks.1.0.in_layers.2.weight" not in names
    assert all(n.startswith("model.diffusion_model.") for n in names)


def test_vector_is_cos_sin_in_config_order(tiny_model):
    cond = tiny_model.conditioner
    vals = {"fps_id": np.array([6.0, 3.0]), "motion_bucket_id": np.array([127.0, 10.0]), "cond_aug": np.array([0.02, 0.5])}
    out = cond.vector({k: _t(v) for k, v in vals.items()}).asnumpy()

    def emb(v, d):
        f = np.exp(-math.log(10000) * np.arange(d // 2) / (d // 2))
        return np.concatenate([np.cos(v[:, None] * f), np.sin(v[:, None] * f)], axis=1)

    ref = np.concatenate([emb(vals[k], d) for k, d in zip(cond.cfg.vector_keys, cond.cfg.vector_outdims)], axis=1)
    assert cond.cfg.vector_keys == ["fps_id", "motion_bucket_id", "cond_aug"]
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_unconditional_branch_zeroes_image_inputs(tiny_model):
    img = _t(rng.uniform(-1, 1, (1, 3, 64, 64)))
    c, uc = tiny_model.conditioner.get_conditioning(img, img, 3, 6, 127, 0.02)
    assert c["crossattn"].shape == (3, 1, 32) and c["concat"].shape == (3, 4, 8, 8) and c["vector"].shape == (3, 24)
    assert np.all(uc["crossattn"].asnumpy() == 0) and np.all(uc["concat"].asnumpy() == 0)
    np.testing.assert_array_equal(uc["vector"].asnumpy(), c["vector"].asnumpy())
    ca = c["crossattn"].asnumpy()
    np.testing.assert_array_equal(ca[0], ca[2])  # one image embedding repeated over the frames


def test_decode_chunks_mix_frames_only_inside_a_chunk(tiny_model):
    z = _t(rng.standard_normal((4, 4, 4, 4)))
    whole = tiny_model.decode_latents(z).asnumpy()
    np.testing.assert_allclose(tiny_model.decode_latents(z, 4).asnumpy(), whole, atol=1e-6)
    chunked = tiny_model.decode_latents(z, 3).asnumpy()
    first3 = tiny_model.decode_latents(z[:3]).asnumpy()
    np.testing.assert_allclose(chunked[:3], first3, atol=1e-6)
    assert np.abs(chunked - whole).max() > 1e-4  # the last frame is decoded alone
    assert whole.shape == (4, 3, 32, 32)
