"""Blocks of common/ added for CogVideoX-style models: 3D RoPE, gated AdaLN, the causal 3D VAE's cache and chunks,
T5 position buckets and tokenizer."""
from __future__ import annotations

import io

import mindspore as ms
import numpy as np
import pytest

from common.nn.adaln import AdaLayerNorm, LayerNormZero
from common.nn.rope import apply_rotary, resize_crop_region_for_grid, rotary_3d
from common.text import T5Tokenizer, t5_relative_buckets
from common.vae3d import CausalConv3d, _chunks, resize_nearest_3d

if ms.get_context("device_target") == "CPU":
    ms.runtime.launch_blocking()  # synchronous launch: the tiny VAE runs ~10x faster on a few cores; same numbers


def test_apply_rotary_is_a_complex_rotation_of_interleaved_pairs():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 8)).astype(np.float32)
    ang = rng.standard_normal((5, 4)).astype(np.float32)
    cos, sin = np.repeat(np.cos(ang), 2, 1), np.repeat(np.sin(ang), 2, 1)
    out = apply_rotary(ms.Tensor(x), ms.Tensor(cos), ms.Tensor(sin)).asnumpy()
    z = (x[..., 0::2] + 1j * x[..., 1::2]) * np.exp(1j * ang)
    np.testing.assert_allclose(out[..., 0::2], z.real, atol=1e-5)
    np.testing.assert_allclose(out[..., 1::2], z.imag, atol=1e-5)


def test_rotary_3d_splits_time_rows_columns():
    cos, _ = rotary_3d(16, ((0, 0), (4, 6)), (2, 3), 4)  # t: 4 dims, h: 6, w: 6
    c = cos.reshape(4, 2, 3, 16)
    assert np.allclose(c[:, :, :, :4], c[:, :1, :1, :4])  # time part depends on the frame only
    assert np.allclose(c[:, :, :, 4:10], c[:1, :, :1, 4:10])  # row part on the row only
    assert np.allclose(c[:, :, :, 10:], c[:1, :1, :, 10:])  # column part on the column only
    assert np.allclose(c[0, 0, 0], 1)  # position 0 everywhere at the origin
    assert resize_crop_region_for_grid((30, 45), 45, 30) == ((0, 0), (30, 45))


def test_gated_adaln_zero_with_zero_linear_is_plain_norm():
    ln = LayerNormZero(4, 8)
    ln.linear.weight.set_data(ms.Tensor(np.zeros((48, 4), np.float32)))
    ln.linear.bias.set_data(ms.Tensor(np.zeros(48, np.float32)))
    x = ms.Tensor(np.random.default_rng(0).standard_normal((2, 5, 8)).astype(np.float32))
    ctx = ms.Tensor(np.random.default_rng(1).standard_normal((2, 3, 8)).astype(np.float32))
    nx, nc, gate, cgate = ln(x, ctx, ms.Tensor(np.ones((2, 4), np.float32)))
    assert np.allclose(nx.asnumpy().mean(-1), 0, atol=1e-5) and np.allclose(gate.asnumpy(), 0)
    assert nc.shape == (2, 3, 8) and cgate.shape == (2, 1, 8)
    ada = AdaLayerNorm(4, 8)
    bias = np.concatenate([np.full(8, 2.0), np.full(8, -1.0)]).astype(np.float32)  # shift 2, then scale -1
    ada.linear.weight.set_data(ms.Tensor(np.zeros((16, 4), np.float32)))
    ada.linear.bias.set_data(ms.Tensor(bias))
    np.testing.assert_allclose(ada(x, ms.Tensor(np.ones((2, 4), np.float32))).asnumpy(), 2.0, atol=1e-6)


def test_causal_conv_cache_makes_chunks_equal_one_call():
    ms.set_seed(0)
    conv = CausalConv3d(3, 4, 3)
    x = ms.Tensor(np.random.default_rng(0).standard_normal((1, 3, 9, 6, 6)).astype(np.float32))
    whole = conv(x).asnumpy()
    conv.reset()
    parts = [conv(x[:, :, a:b]).asnumpy() for a, b in _chunks(9, 4)]
    conv.reset()
    np.testing.assert_allclose(np.concatenate(parts, 2), whole, atol=1e-5)
    assert whole.shape == (1, 4, 9, 6, 6)


def test_original_chunks_and_nearest_index():
    assert _chunks(9, 4) == [(0, 5), (5, 9)] and _chunks(13, 4) == [(0, 5), (5, 9), (9, 13)]
    assert _chunks(3, 2) == [(0, 3)] and _chunks(4, 2) == [(0, 2), (2, 4)] and _chunks(1, 4) == [(0, 1)]
    x = ms.Tensor(np.arange(3, dtype=np.float32).reshape(1, 1, 3, 1, 1))
    assert resize_nearest_3d(x, (6, 1, 1)).asnumpy().ravel().tolist() == [0, 0, 1, 1, 2, 2]


def test_t5_buckets():
    b = t5_relative_buckets(1, 300)[0]  # key minus query = 0..299
    assert b[0] == 0 and b[1] == 17 and b[7] == 23 and b[299] == 31
    assert t5_relative_buckets(2, 1)[1, 0] == 1  # key one before the query


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(["a cat sits on a mat", "the dog runs"] * 20),
                                   model_writer=buf, vocab_size=30, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                   hard_vocab_limit=False, minloglevel=2, num_threads=1)
    folder = tmp_path_factory.mktemp("tok")
    (folder / "spiece.model").write_bytes(buf.getvalue())
    return T5Tokenizer(folder)


def test_tokenizer_truncates_appends_eos_pads_and_keeps_extra_ids(tokenizer):
    ids = tokenizer(["a cat", "a cat sits on a mat the dog runs"], 6)
    plain = tokenizer.sp.encode("a cat")
    assert ids[0].tolist() == plain + [1] + [0] * (5 - len(plain))
    assert ids[1, -1] == 1 and (ids[1] != 0).all()
    extra0 = len(tokenizer) - 1
    assert tokenizer.encode("a <extra_id_0> cat") == tokenizer.sp.encode("a") + [extra0] + tokenizer.sp.encode("cat")


def test_tiled_decode_is_exact_for_a_pixelwise_decoder():
    from common.vae3d import tiled_decode

    z = np.random.default_rng(0).standard_normal((1, 2, 3, 7, 11)).astype(np.float32)
    up = lambda t: np.repeat(np.repeat(t, 4, -2), 4, -1)  # noqa: E731 - decodes each latent on its own
    for tile, overlap in (((3, 4), (1, 1)), ((4, 5), (2, 2)), ((2, 3), (0, 1)), ((5, 5), (3, 2)), ((9, 20), (2, 2))):
        np.testing.assert_allclose(tiled_decode(up, z, tile, overlap, 4), up(z), atol=1e-6)
    with pytest.raises(ValueError, match="tile"):
        tiled_decode(up, z, (2, 2), (2, 0), 4)


def test_vae_decode_with_one_tile_equals_untiled():
    from common.vae3d import AutoencoderKLCausal3D, CausalVAEConfig

    ms.set_seed(0)
    vae = AutoencoderKLCausal3D(CausalVAEConfig(block_out_channels=(8, 8), layers_per_block=1, norm_num_groups=4,
                                                latent_channels=4, temporal_compression_ratio=2,
                                                down_block_types=("CogVideoXDownBlock3D",) * 2,
                                                up_block_types=("CogVideoXUpBlock3D",) * 2))
    z = ms.Tensor(np.random.default_rng(0).standard_normal((1, 4, 3, 4, 5)).astype(np.float32))
    ref = vae.decode(z).asnumpy()
    assert ref.shape == (1, 3, 5, 8, 10)
    np.testing.assert_allclose(vae.decode(z, (4, 5), (0, 0)).asnumpy(), ref, atol=1e-6)
    assert vae.decode(z, (2, 3), (1, 1)).shape == ref.shape
