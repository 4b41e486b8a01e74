"""AutoencoderKL: golden parity (DynamiCrafter vae_encode / vae_decode), graph mode, chunking, errors."""
import os
import subprocess
import sys
import textwrap

import mindspore as ms
import numpy as np
import pytest
import torch
import yaml

from common import golden
from common.config import ConfigError
from common.nn import GroupNorm
from common.vae import (
    SD_SCALE_FACTOR,
    AttnBlock,
    AutoencoderKL,
    DDConfig,
    Decoder,
    DiagonalGaussian,
    ResnetBlock,
    upsample_nearest2x,
)

S = SD_SCALE_FACTOR  # the tiny VAEs' latent scale (passed explicitly: the VAE has no default)
_DC_CASES = golden.cases_with("dynamicrafter", "vae_encode")  # the cases recording vae_encode and vae_decode

# tiny in-code config: 2 levels (one down/upsample, a width change -> nin_shortcut), attention at 16
TINY = dict(double_z=True, z_channels=4, resolution=16, in_channels=3, out_ch=3, ch=32, ch_mult=[1, 2],
            num_res_blocks=1, attn_resolutions=[8], dropout=0.0)


def load_dc_vae(case):
    """The case's first_stage_model, built from config.yaml and loaded from model.ckpt (every key)."""
    cfg = yaml.safe_load(case.config_path.read_text())["model"]["params"]["first_stage_config"]
    sd = torch.load(case.path(case.manifest.get("checkpoint", "model.ckpt")), weights_only=True)["state_dict"]
    pre = "first_stage_model."
    sd = {k[len(pre):]: v.numpy() for k, v in sd.items() if k.startswith(pre)}
    vae = AutoencoderKL(cfg["params"]["ddconfig"], cfg["params"]["embed_dim"])
    load_numpy(vae, sd)
    return vae


def load_numpy(cell, sd):
    """Load a name -> array dict, asserting names and shapes match exactly."""
    params = dict(cell.parameters_and_names())
    assert set(params) == set(sd), (sorted(set(sd) - set(params)), sorted(set(params) - set(sd)))
    for k, p in params.items():
        assert tuple(p.shape) == tuple(sd[k].shape), (k, p.shape, sd[k].shape)
        p.set_data(ms.Tensor(sd[k].astype(np.float32)))


def state_numpy(cell):
    return {k: p.asnumpy() for k, p in cell.parameters_and_names()}


def assert_golden(name, ours, ref, tol):
    ok, line = golden.compare(name, ours, ref, tol)
    assert ok, line


def test_dynamicrafter_cases_found():
    assert len(_DC_CASES) >= 2, f"expected the DynamiCrafter golden cases under {golden.golden_root()}"


@pytest.fixture(scope="module", params=_DC_CASES, ids=lambda c: c.name)
def dc_case(request):
    case = request.param
    return case, load_dc_vae(case)


def test_golden_vae_encode(dc_case):
    case, vae = dc_case
    chk = case.check("vae_encode")
    chunk = 1 if chk.params.get("perframe_ae") else None
    z = vae.encode_video(chk.inputs["video"], noise=chk.inputs["noise"], chunk_size=chunk,
                         scale_factor=chk.params["scale_factor"]).asnumpy()
    assert_golden("z", z, chk.expected["z"], chk.tol)


def test_golden_vae_decode(dc_case):
    case, vae = dc_case
    chk = case.check("vae_decode")
    ref = chk.expected["video"]
    for chunk in (None, 1):  # batched and per-frame (perframe_ae) give the recorded numbers
        video = vae.decode_video(chk.inputs["z"], scale_factor=chk.params["scale_factor"], chunk_size=chunk)
        assert_golden(f"video[chunk={chunk}]", video.asnumpy(), ref, chk.tol)


@pytest.fixture(scope="module")
def tiny_vae():
    ms.set_seed(0)
    return AutoencoderKL(TINY, embed_dim=4)


def _video(b=1, t=3, h=16, w=24, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (b, 3, t, h, w)).astype(np.float32)


def test_key_names_are_ldm(tiny_vae):
    p = {k: tuple(v.shape) for k, v in tiny_vae.parameters_and_names()}
    assert p["encoder.conv_in.weight"] == (32, 3, 3, 3)
    assert p["encoder.down.0.downsample.conv.weight"] == (32, 32, 3, 3)
    assert "encoder.down.1.downsample.conv.weight" not in p
    assert p["encoder.down.1.block.0.nin_shortcut.weight"] == (64, 32, 1, 1)
    assert p["encoder.down.1.attn.0.q.weight"] == (64, 64, 1, 1)  # 8 = 16 / 2 is in attn_resolutions
    assert "encoder.down.0.attn.0.q.weight" not in p
    for part in ("encoder", "decoder"):
        for m in ("q", "k", "v", "proj_out"):
            assert p[f"{part}.mid.attn_1.{m}.weight"] == (64, 64, 1, 1)
        assert p[f"{part}.mid.attn_1.norm.weight"] == (64,)
    assert p["encoder.conv_out.weight"] == (8, 64, 3, 3)
    assert p["quant_conv.weight"] == (8, 8, 1, 1)
    assert p["post_quant_conv.weight"] == (4, 4, 1, 1)
    assert p["decoder.conv_in.weight"] == (64, 4, 3, 3)
    assert p["decoder.up.1.upsample.conv.weight"] == (64, 64, 3, 3)
    assert "decoder.up.0.upsample.conv.weight" not in p
    assert p["decoder.up.0.block.0.nin_shortcut.weight"] == (32, 64, 1, 1)
    assert "decoder.up.0.block.2.conv1.weight" not in p and "decoder.up.0.block.1.conv1.weight" in p
    assert p["decoder.up.1.attn.1.proj_out.weight"] == (64, 64, 1, 1)
    assert p["decoder.conv_out.weight"] == (3, 32, 3, 3)


def test_shapes_odd_sizes(tiny_vae):
    x = _video(h=15, w=9)
    m, lv = tiny_vae.encode_moments(x[:, :, 0])
    assert tuple(m.shape) == (1, 4, 7, 4) == (1, 4) + tiny_vae.latent_size(15, 9)
    z = tiny_vae.encode_video(x, generator=0, scale_factor=S)
    assert tuple(z.shape) == (1, 4, 3, 7, 4)
    assert tuple(tiny_vae.decode_video(z, S).shape) == (1, 3, 3, 14, 8)


def test_chunked_decode_equals_batched(tiny_vae):
    z = np.random.default_rng(1).standard_normal((2, 4, 2, 4, 6)).astype(np.float32)
    full = tiny_vae.decode_video(z, S).asnumpy()
    for chunk in (1, 3):  # per frame, uneven last chunk
        np.testing.assert_allclose(tiny_vae.decode_video(z, S, chunk_size=chunk).asnumpy(), full, rtol=0, atol=2e-5)
    frames = tiny_vae.decode_frames(z.transpose(0, 2, 1, 3, 4).reshape(4, 4, 4, 6), S, chunk_size=100).asnumpy()
    np.testing.assert_allclose(frames.reshape(2, 2, 3, 8, 12).transpose(0, 2, 1, 3, 4), full, atol=2e-5)


def test_encode_sampling_and_chunks(tiny_vae):
    x = _video(b=2, t=2)
    mean_z = tiny_vae.encode_video(x, sample=False, scale_factor=S).asnumpy()
    a = tiny_vae.encode_video(x, generator=7, scale_factor=S).asnumpy()
    b = tiny_vae.encode_video(x, generator=np.random.default_rng(7), chunk_size=1, scale_factor=S).asnumpy()
    np.testing.assert_allclose(a, b, atol=2e-6)  # the draws do not depend on chunking
    assert np.abs(a - mean_z).max() > 1e-3  # ... and they are used
    noise = np.random.default_rng(3).standard_normal(a.shape).astype(np.float32)
    m, lv = tiny_vae.encode_moments(x.transpose(0, 2, 1, 3, 4).reshape(4, 3, 16, 24))
    m = m.asnumpy().reshape(2, 2, 4, 8, 12).transpose(0, 2, 1, 3, 4)
    lv = lv.asnumpy().reshape(2, 2, 4, 8, 12).transpose(0, 2, 1, 3, 4)
    want = 0.18215 * (m + np.exp(0.5 * lv) * noise)
    got = tiny_vae.encode_video(x, noise=noise, chunk_size=3, scale_factor=S).asnumpy()
    np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_allclose(mean_z, 0.18215 * m, atol=1e-6)


def test_diagonal_gaussian():
    mean = ms.Tensor(np.zeros((1, 2, 1, 2), np.float32))
    logvar = ms.Tensor(np.array([-100.0, 0.0, 2.0, 100.0], np.float32).reshape(1, 2, 1, 2))
    post = DiagonalGaussian(mean, logvar)
    np.testing.assert_allclose(post.logvar.asnumpy().ravel(), [-30, 0, 2, 20])
    noise = np.ones((1, 2, 1, 2), np.float32)
    np.testing.assert_allclose(post.sample(noise).asnumpy().ravel(), np.exp(0.5 * np.array([-30, 0, 2, 20])),
                               rtol=1e-5)
    np.testing.assert_array_equal(post.mode().asnumpy(), 0)
    r1 = post.sample(generator=np.random.RandomState(5)).asnumpy()
    r2 = post.sample(generator=np.random.RandomState(5)).asnumpy()
    np.testing.assert_array_equal(r1, r2)
    with pytest.raises(ValueError, match="noise has shape"):
        post.sample(np.ones((1, 2, 2, 2), np.float32))


def test_upsample_matches_torch_nearest():
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 7)).astype(np.float32)
    ref = torch.nn.functional.interpolate(torch.from_numpy(x), scale_factor=2.0, mode="nearest").numpy()
    np.testing.assert_array_equal(upsample_nearest2x(ms.Tensor(x)).asnumpy(), ref)


def test_attention_chunking_and_torch_reference():
    ms.set_seed(1)
    blk = AttnBlock(32)
    x = np.random.default_rng(2).standard_normal((2, 32, 6, 5)).astype(np.float32)
    full = blk(ms.Tensor(x)).asnumpy()
    blk.chunk_size = 7  # 30 queries in 5 chunks, the last one shorter
    np.testing.assert_allclose(blk(ms.Tensor(x)).asnumpy(), full, atol=1e-5)
    # the LDM formulation in torch: bmm(q, k) * C**-0.5, softmax over keys, bmm(v, w^T)
    sd = {k: torch.from_numpy(v) for k, v in state_numpy(blk).items()}
    xt = torch.from_numpy(x)
    h = torch.nn.functional.group_norm(xt, 32, sd["norm.weight"], sd["norm.bias"], 1e-6)
    q, k, v = (torch.nn.functional.conv2d(h, sd[f"{n}.weight"], sd[f"{n}.bias"]).reshape(2, 32, 30)
               for n in ("q", "k", "v"))
    w = torch.softmax(torch.bmm(q.permute(0, 2, 1), k) * 32 ** -0.5, dim=2)
    o = torch.bmm(v, w.permute(0, 2, 1)).reshape(2, 32, 6, 5)
    ref = xt + torch.nn.functional.conv2d(o, sd["proj_out.weight"], sd["proj_out.bias"])
    np.testing.assert_allclose(full, ref.numpy(), atol=2e-5)


def test_config_errors():
    with pytest.raises(ConfigError, match="ddconfig: bogus: unknown key"):
        AutoencoderKL(dict(TINY, bogus=1), embed_dim=4)
    with pytest.raises(ValueError, match="double_z"):
        AutoencoderKL(dict(TINY, double_z=False), embed_dim=4)
    with pytest.raises(ValueError, match="embed_dim is required"):
        AutoencoderKL(TINY)
    with pytest.raises(ValueError, match="attn_type"):
        DDConfig.read(dict(TINY, attn_type="linear"))
    with pytest.raises(ConfigError, match="ddconfig: ch_mult: level width 24 .* not divisible into the 32 GroupNorm"):
        DDConfig.read(dict(TINY, ch=24))
    with pytest.raises(ConfigError, match="ddconfig: norm_num_groups: expected int"):
        DDConfig.read(dict(TINY, norm_num_groups="8"))


def test_scale_factor_has_no_default(tiny_vae):
    z = np.zeros((1, 4, 1, 8, 8), np.float32)
    with pytest.raises(TypeError, match="scale_factor"):
        tiny_vae.decode_video(z)
    with pytest.raises(TypeError, match="scale_factor"):
        tiny_vae.encode_video(_video())
    with pytest.raises(ValueError, match="positive number"):
        tiny_vae.decode_video(z, None)


def test_other_group_count_builds_runs_and_matches_torch():
    """norm_num_groups from the config (diffusers' vae/config.json key) reaches every GroupNorm: a VAE of
    width 8 (impossible with 32 groups) with 4 groups runs, and its res block matches torch's group_norm(4)."""
    ms.set_seed(3)
    cfg = dict(TINY, ch=8, ch_mult=[1, 2], norm_num_groups=4)
    vae = AutoencoderKL(cfg, embed_dim=4)
    groups = {c.num_groups for _, c in vae.cells_and_names() if isinstance(c, GroupNorm)}
    assert groups == {4}
    x = _video(h=16, w=16)
    z = vae.encode_video(x, generator=0, scale_factor=0.5)
    assert tuple(z.shape) == (1, 4, 3, 8, 8)
    assert tuple(vae.decode_video(z, 0.5).shape) == (1, 3, 3, 16, 16)
    blk = vae.decoder.up[0].block[0]  # 16 -> 8 channels: norm1 over 16, norm2 over 8, nin_shortcut
    h = np.random.default_rng(5).standard_normal((2, 16, 5, 6)).astype(np.float32)
    sd = {k: torch.from_numpy(v) for k, v in state_numpy(blk).items()}
    F = torch.nn.functional
    t = F.conv2d(F.silu(F.group_norm(torch.from_numpy(h), 4, sd["norm1.weight"], sd["norm1.bias"], 1e-6)),
                 sd["conv1.weight"], sd["conv1.bias"], padding=1)
    t = F.conv2d(F.silu(F.group_norm(t, 4, sd["norm2.weight"], sd["norm2.bias"], 1e-6)),
                 sd["conv2.weight"], sd["conv2.bias"], padding=1)
    ref = F.conv2d(torch.from_numpy(h), sd["nin_shortcut.weight"], sd["nin_shortcut.bias"]) + t
    np.testing.assert_allclose(blk(ms.Tensor(h)).asnumpy(), ref.numpy(), atol=2e-5)


def test_input_errors(tiny_vae):
    with pytest.raises(ValueError, match="noise has shape"):
        tiny_vae.encode_video(_video(), noise=np.zeros((1, 4, 3, 8, 8), np.float32), scale_factor=S)
    with pytest.raises(ValueError, match=r"video must be \(B, C, T, H, W\)"):
        tiny_vae.encode_video(_video()[:, :, 0], scale_factor=S)
    with pytest.raises(ValueError, match=r"z must be \(B, 4, T, h, w\)"):
        tiny_vae.decode_video(np.zeros((1, 3, 2, 8, 8), np.float32), S)
    with pytest.raises(ValueError, match="chunk_size"):
        tiny_vae.decode_video(np.zeros((1, 4, 2, 8, 8), np.float32), S, chunk_size=0)
    with pytest.raises(ValueError, match=r"x must be \(N, 3, H, W\)"):
        tiny_vae.encode_moments(np.zeros((1, 4, 8, 8), np.float32))


class _CountingBlock(ResnetBlock):
    """A res block that adds its extra argument (the frame count) to the output."""

    def construct(self, x, *args):
        return super().construct(x) + args[0]


class _CountingConv(ms.nn.Conv2d):
    """conv_out that adds its extra argument too."""

    def construct(self, x, *args):
        return super().construct(x) + args[0]


class _FrameDecoder(Decoder):
    def make_resblock(self, in_channels, out_channels):
        return _CountingBlock(in_channels, out_channels)


class _ConvOutDecoder(Decoder):
    conv_out_takes_args = True

    def make_conv_out(self, in_channels, out_channels):
        return _CountingConv(in_channels, out_channels, 3, pad_mode="pad", padding=1, has_bias=True)


class _FrameVAE(AutoencoderKL):
    def decode_chunk(self, z):
        return self.decode(z, z.shape[0])


def test_decoder_extension_hooks():
    """Decoder factories + decode_chunk let a subclass pass the chunk's frame count to its blocks."""
    ms.set_seed(0)
    cfg = dict(TINY, attn_resolutions=[], use_linear_attn=False)
    vae = _FrameVAE(cfg, embed_dim=4, decoder_class=_FrameDecoder, use_quant_conv=False)
    assert "quant_conv.weight" not in dict(vae.parameters_and_names())
    assert isinstance(vae.decoder.mid.block_1, _CountingBlock) and isinstance(vae.decoder.up[0].block[1], _CountingBlock)
    plain = AutoencoderKL(cfg, embed_dim=4, use_quant_conv=False)
    load_numpy(plain, state_numpy(vae))
    z = np.random.default_rng(0).standard_normal((1, 4, 3, 2, 2)).astype(np.float32)
    diff = vae.decode_video(z, S, chunk_size=2).asnumpy() - plain.decode_video(z, S, chunk_size=2).asnumpy()
    assert np.abs(diff).max() > 1e-3  # the frame counts (2, then 1) reached the blocks
    conv_vae = _FrameVAE(cfg, embed_dim=4, decoder_class=_ConvOutDecoder, use_quant_conv=False)
    load_numpy(conv_vae, state_numpy(plain))
    diff = conv_vae.decode_video(z, S, chunk_size=2).asnumpy() - plain.decode_video(z, S, chunk_size=2).asnumpy()
    np.testing.assert_allclose(diff[:, :, :2], 2.0, atol=1e-5)  # conv_out got the frame count
    np.testing.assert_allclose(diff[:, :, 2], 1.0, atol=1e-5)
    a = vae.decode_video(z, S, chunk_size=2).asnumpy()[:, :, 2]
    b = vae.decode_video(z[:, :, 2:], S, chunk_size=1).asnumpy()[:, :, 0]
    np.testing.assert_allclose(a, b, atol=1e-5)  # last chunk of 1 frame == a 1-frame call


_GRAPH_SCRIPT = textwrap.dedent("""
    import sys, numpy as np, mindspore as ms
    ms.set_context(mode=ms.GRAPH_MODE)
    from common.vae import AutoencoderKL
    d = np.load(sys.argv[1], allow_pickle=False)
    cfg = dict(double_z=True, z_channels=4, resolution=16, in_channels=3, out_ch=3, ch=32, ch_mult=[1, 2],
               num_res_blocks=1, attn_resolutions=[8], dropout=0.0)
    vae = AutoencoderKL(cfg, embed_dim=4)
    for k, p in vae.parameters_and_names():
        p.set_data(ms.Tensor(d["p:" + k]))
    video = vae.decode_video(d["z"], 0.18215).asnumpy()
    whole = vae(ms.Tensor(d["z2d"])).asnumpy()
    mean, logvar = vae.encode_moments(d["x"])
    np.savez(sys.argv[2], video=video, whole=whole, mean=mean.asnumpy(), logvar=logvar.asnumpy())
""")


def test_graph_mode_matches_pynative(tiny_vae, tmp_path):
    rng = np.random.default_rng(4)
    z = rng.standard_normal((1, 4, 2, 8, 8)).astype(np.float32)
    z2d = rng.standard_normal((2, 4, 8, 8)).astype(np.float32)
    x = rng.uniform(-1, 1, (2, 3, 16, 16)).astype(np.float32)
    np.savez(tmp_path / "in.npz", z=z, z2d=z2d, x=x, **{"p:" + k: v for k, v in state_numpy(tiny_vae).items()})
    env = dict(os.environ, GLOG_v="3")
    res = subprocess.run([sys.executable, "-c", _GRAPH_SCRIPT, str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
                         capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    g = np.load(tmp_path / "out.npz")
    np.testing.assert_allclose(g["video"], tiny_vae.decode_video(z, S).asnumpy(), atol=1e-5)
    np.testing.assert_allclose(g["whole"], tiny_vae.decode(z2d).asnumpy(), atol=1e-5)
    mean, logvar = tiny_vae.encode_moments(x)
    np.testing.assert_allclose(g["mean"], mean.asnumpy(), atol=1e-5)
    np.testing.assert_allclose(g["logvar"], logvar.asnumpy(), atol=1e-5)
