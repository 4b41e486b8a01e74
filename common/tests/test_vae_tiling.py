"""Spatial tiling of the causal 3D VAE decode (``common.vae3d.tiled_decode``) against the untiled decode.

Why a tiled decode differs from the untiled one (measured on the tiny random VAE of the golden case ``wide_13f``,
dropletvideo/README.md "VAE tiling" has the figures): (1) every GroupNorm computes its statistics over the tile
instead of the whole frame; (2) every 3x3 convolution sees zeros past the tile's inner edges, an error that is
largest at the edge and decays inwards over the decoder's receptive field. The causal time cache and the frame
chunks are the same in every tile (tiles are whole in time), and the blend weights sum to one.

The test removes (1) exactly, by normalising every tile with the statistics the untiled decode computed (a
test-only replay of ``GroupNorm``), and removes (2) exactly, by discarding a margin at each shared tile edge that
is wider than the receptive field. What is left is float32 rounding, so the tolerance is a rounding bound.
"""
from __future__ import annotations

import mindspore as ms
import numpy as np
import pytest
from mindspore import ops

from common.nn.norm import GroupNorm
from common.vae3d import AutoencoderKLCausal3D, CausalVAEConfig, tiled_decode

if ms.get_context("device_target") == "CPU":
    ms.runtime.launch_blocking()


class _StatsReplay:
    """Records each GroupNorm call's (mean, var) per sample and group, then replays them in call order."""

    def __init__(self):
        self.recorded: dict[int, list] = {}
        self.mode = None
        self.calls: dict[int, int] = {}

    def construct(self, norm, x, original):
        if self.mode is None:
            return original(norm, x)
        b, c = x.shape[:2]
        xg = x.reshape(b, norm.num_groups, -1)  # (b, groups, c/g * t * h * w)
        if self.mode == "record":
            xn = xg.asnumpy().astype(np.float64)
            self.recorded.setdefault(id(norm), []).append((xn.mean(-1, keepdims=True).astype(np.float32),
                                                           xn.var(-1, keepdims=True).astype(np.float32)))
        i = self.calls.get(id(norm), 0)
        self.calls[id(norm)] = i + 1
        mean, var = (ms.Tensor(a) for a in self.recorded[id(norm)][i])
        y = ((xg - mean) / ops.sqrt(var + norm.eps)).reshape(x.shape)
        shape = (1, c) + (1,) * (x.ndim - 2)
        return y * norm.weight.reshape(shape) + norm.bias.reshape(shape)


@pytest.fixture(scope="module")
def vae():
    ms.set_seed(1)
    # two levels (8 pixels -> 2x), one resnet per decoder level: a receptive field small enough to out-margin
    return AutoencoderKLCausal3D(CausalVAEConfig(block_out_channels=(8, 8), layers_per_block=0, norm_num_groups=4,
                                                 latent_channels=4, temporal_compression_ratio=2,
                                                 down_block_types=("CogVideoXDownBlock3D",) * 2,
                                                 up_block_types=("CogVideoXUpBlock3D",) * 2))


def test_tiled_decode_equals_untiled_with_the_frame_statistics_and_a_margin_beyond_the_receptive_field(
        vae, monkeypatch):
    """Tiled == untiled to float32 rounding when tiles share the frame's GroupNorm statistics and drop a margin
    wider than the decoder's receptive field.

    Receptive field (radius, in output pixels) of this decoder (2 levels, scale 2, one resnet per level): at
    latent resolution conv_in (1) + mid block (2 resnets x 2 convs = 4) + level 0 (1 resnet x 2 convs = 2) = 7
    latents; after the nearest x2 upsampling the upsampler conv (1) + level 1 (2) + conv_out (1) = 4 pixels,
    which reach back ceil(4 / 2) = 2 more latents; the spatial norms are pointwise. An output pixel therefore
    depends on latents within 9 (+1 for the nearest-upsampling floor) = 10 latents = 20 pixels. With a margin of
    24 pixels at each shared edge, every pixel that gets a non-zero weight in a tile was computed from the same
    inputs as in the untiled decode.

    Tolerance: the same float32 operations on the same numbers, except that a convolution's accumulation order
    may change with the tensor's width (oneDNN blocking), worth a few ulp (6e-8 relative) per layer, and the blend
    ``sum(w_i x_i) / sum(w_i)`` of values equal up to that, another 2 ulp. Over the decoder's 11 convolutions with
    gains of order one that is < 1e-6 x max|ref|; 1e-5 x max|ref| leaves a factor 10 for platform differences
    (e.g. AVX-512 versus AVX2 kernels); measured 2e-8. The margin is what makes it exact: the difference is
    1e-2 x max|ref| at margin 0 (blend ramps at the tile edges, where the zero padding acts), 3e-4 at 8 pixels,
    1e-6 at 16 and rounding from 18 on, as the receptive field predicts; the test asserts > 1e-3 at margin 0.
    """
    replay = _StatsReplay()
    original = GroupNorm.construct
    monkeypatch.setattr(GroupNorm, "construct", lambda self, x: replay.construct(self, x, original))
    # (1, C, f, h, w): 4 latent frames = 2 decode chunks with the causal cache carried between them
    z = np.random.default_rng(0).standard_normal((1, 4, 4, 44, 44)).astype(np.float32)

    def decode(t):
        replay.calls = {}  # every tile replays the untiled decode's statistics from its first call
        return vae._run(vae.decoder, ms.Tensor(np.ascontiguousarray(t)), vae.decode_chunk_latents).asnumpy()

    replay.mode = "record"
    ref = decode(z)  # (1, 3, 7, 88, 88)
    replay.mode = "replay"
    untiled = decode(z)
    bound = 1e-5 * np.abs(ref).max()
    assert np.abs(untiled - ref).max() <= bound  # the replay itself is the untiled decode
    # tiles of 36 latents every 8: 2 x 2 tiles overlapping by 28 latents = 56 pixels = margins 2 x 24 + blend 8
    tiled = tiled_decode(decode, z, (36, 36), (28, 28), 2, (24, 24))
    assert np.abs(tiled - untiled).max() <= bound
    seams = tiled_decode(decode, z, (36, 36), (28, 28), 2, (0, 0))
    assert np.abs(seams - untiled).max() > 1e-3 * np.abs(ref).max()


def test_margin_is_checked_and_a_pixelwise_decoder_stays_exact():
    z = np.random.default_rng(0).standard_normal((1, 2, 1, 9, 13)).astype(np.float32)
    up = lambda t: np.repeat(np.repeat(t, 4, -2), 4, -1)  # noqa: E731 - decodes each latent on its own
    for tile, overlap, margin in (((4, 5), (2, 2), (3, 1)), ((5, 6), (3, 4), (5, 7)), ((9, 6), (2, 3), (0, 5))):
        np.testing.assert_allclose(tiled_decode(up, z, tile, overlap, 4, margin), up(z), atol=1e-6)
    with pytest.raises(ValueError, match="margin"):
        tiled_decode(up, z, (4, 5), (1, 1), 4, (2, 0))
