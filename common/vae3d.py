"""Causal 3D VAE of CogVideoX (Yang et al. 2024, arXiv:2408.06072) as DropletVideo releases it.

Parameter names are diffusers' ``AutoencoderKLCogVideoX`` ones (= DropletVideo's ``AutoencoderKLDropletVideo``):
``encoder.conv_in.conv``, ``encoder.down_blocks.N.resnets.M.{norm1,conv1.conv,norm2,conv2.conv,conv_shortcut}``,
``...downsamplers.0.conv`` (a 2D conv), ``encoder.mid_block``, ``encoder.norm_out``, ``encoder.conv_out.conv``;
the decoder likewise with ``SpatialNorm3D`` norms (``norm_layer``, ``conv_y.conv``, ``conv_b.conv``) and
``up_blocks.N.upsamplers.0.conv``.

Behaviour reproduced from the original (``vae.py`` of IEIT-AGI/DropletVideo on diffusers 0.32):

* A causal conv pads time in front only: the first call replicates frame 0 ``k_t - 1`` times; afterwards the
  last ``k_t - 1`` (padded) input frames of the previous call are its front context (the *cache*), so a video
  processed in frame chunks sees the same left context as one processed whole. GroupNorm statistics are per
  chunk (so chunking changes the numbers; the chunk sizes are part of the model).
* :meth:`AutoencoderKLCausal3D.encode` runs frames ``[0, 4 + F % 4)`` then 4 at a time; :meth:`decode` runs
  latent frames ``[0, 2 + f % 2)`` then 2 at a time; caches are cleared after each call.
* Temporal down-sampling (the first ``log2(temporal_compression_ratio)`` levels): odd T keeps frame 0 and
  averages the rest in pairs, even T averages pairs; spatial: pad (0,1,0,1), 3x3 stride-2 conv.
  Temporal up-sampling: odd T>1 up-samples frame 0 in space only and the rest x2 in time and space; even T
  (or T == 1: space only) x2 (nearest), then a 3x3 conv per frame.
* The decoder's spatial norm conditions on the chunk's latents, nearest-resized to each feature map (frame 0
  separately when the feature's frame count is odd).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import mindspore as ms
import numpy as np
from mindspore import nn, ops
from mindspore.common.initializer import HeUniform, Uniform

from common.config import ConfigError, unused
from common.nn.layers import conv2d
from common.nn.norm import GroupNorm

__all__ = ["CausalVAEConfig", "AutoencoderKLCausal3D", "CausalConv3d", "resize_nearest_3d", "tiled_decode"]


@dataclass
class CausalVAEConfig:
    """``vae/config.json`` (every key the release writes).

    Attributes:
        in_channels / out_channels: pixel channels (3).
        latent_channels: C of the latents.
        block_out_channels: widths per level; the spatial factor is ``2 ** (levels - 1)``.
        layers_per_block: resnets per encoder level (the decoder has one more).
        norm_num_groups / norm_eps: GroupNorm groups and the resnets' epsilon.
        temporal_compression_ratio: time factor; the first ``log2`` of it levels compress time.
        scaling_factor: latents are multiplied by it after encoding (the pipeline does it).
        down_block_types / up_block_types: one name per level (the CogVideoX/DropletVideo 3D blocks).
        act_fn: ``silu``.
    """

    in_channels: int = 3
    out_channels: int = 3
    latent_channels: int = 16
    block_out_channels: tuple[int, ...] = (128, 256, 256, 512)
    layers_per_block: int = 3
    norm_num_groups: int = 32
    norm_eps: float = 1e-6
    temporal_compression_ratio: int = 4
    scaling_factor: float = 1.15258426
    down_block_types: tuple[str, ...] = ("DropletVideoDownBlock3D",) * 4
    up_block_types: tuple[str, ...] = ("DropletVideoUpBlock3D",) * 4
    act_fn: str = "silu"
    use_quant_conv: bool = False
    use_post_quant_conv: bool = False
    shift_factor: float | None = unused("the DropletVideo pipeline does not shift latents", None)
    latents_mean: list | None = unused("not used by the pipeline", None)
    latents_std: list | None = unused("not used by the pipeline", None)
    force_upcast: bool = unused("everything runs in the dtype chosen by the caller", True)
    sample_height: int = unused("default tile size of the original's tiling (not the untiled path)", 480)
    sample_width: int = unused("default tile size of the original's tiling (not the untiled path)", 720)
    invert_scale_latents: bool = unused("CogVideoX-1.5 key; must be false here", False)
    _class_name: str = unused("diffusers class name", "AutoencoderKLDropletVideo")
    _diffusers_version: str = unused("writer version", "")
    _name_or_path: str = unused("origin", "")

    def __post_init__(self):
        n = len(self.block_out_channels)
        for key, names, ok in (("down_block_types", self.down_block_types, ("DropletVideoDownBlock3D",
                                                                            "CogVideoXDownBlock3D")),
                               ("up_block_types", self.up_block_types, ("DropletVideoUpBlock3D",
                                                                        "CogVideoXUpBlock3D"))):
            if len(names) != n:
                raise ConfigError(f"{key}: {len(names)} entries for {n} block_out_channels")
            bad = [b for b in names if b not in ok]
            if bad:
                raise ConfigError(f"{key}: unknown block type {bad[0]!r} (expected one of {ok})")
        if self.act_fn not in ("silu", "swish"):
            raise ConfigError(f"act_fn: {self.act_fn!r} is not supported (silu)")
        if self.invert_scale_latents:
            raise ConfigError("invert_scale_latents: true (CogVideoX-1.5) is not supported")
        if self.use_quant_conv or self.use_post_quant_conv:
            raise ConfigError("use_quant_conv / use_post_quant_conv: true is not supported (the release has none)")
        r = self.temporal_compression_ratio
        if r < 1 or r & (r - 1) or int(math.log2(r)) > n - 1:
            raise ConfigError(f"temporal_compression_ratio: {r} is not a power of two <= 2**{n - 1}")
        for c in self.block_out_channels:
            if c % self.norm_num_groups:
                raise ConfigError(f"block_out_channels: {c} is not divisible by norm_num_groups {self.norm_num_groups}")

    @property
    def spatial_factor(self) -> int:
        return 2 ** (len(self.block_out_channels) - 1)


def _conv3d(cin: int, cout: int, k: int, padding=0) -> nn.Conv3d:
    """``torch.nn.Conv3d`` (weight (out, in, k, k, k), bias; torch's default init)."""
    pad_mode, pad = ("pad", padding) if padding else ("valid", 0)
    return nn.Conv3d(cin, cout, k, pad_mode=pad_mode, padding=pad, has_bias=True,
                     weight_init=HeUniform(math.sqrt(5)), bias_init=Uniform(1.0 / math.sqrt(cin * k ** 3)))


def _nearest_index(n_in: int, n_out: int) -> np.ndarray:
    """torch ``interpolate(mode="nearest")`` source index: ``min(floor(i * (in/out)), in-1)`` in float32."""
    scale = np.float32(n_in) / np.float32(n_out)
    return np.minimum(np.floor(np.arange(n_out, dtype=np.float32) * scale).astype(np.int32), n_in - 1)


def resize_nearest_3d(x, size: tuple[int, int, int]):
    """Nearest resize of (B, C, T, H, W) to ``size`` = (T', H', W') (torch's index rule)."""
    for axis, n_out in zip((2, 3, 4), size):
        n_in = x.shape[axis]
        if n_in != n_out:
            x = ops.gather(x, ms.Tensor(_nearest_index(n_in, n_out)), axis)
    return x


def _repeat2(x, axis: int):
    """Nearest x2 along ``axis`` (each element twice)."""
    shape = x.shape
    x = x.expand_dims(axis + 1)
    x = ops.broadcast_to(x, shape[: axis + 1] + (2,) + shape[axis + 1:])
    return x.reshape(shape[:axis] + (2 * shape[axis],) + shape[axis + 1:])


def _per_frame_conv(conv, x):
    # x (B, C, T, H, W) -> conv2d on every frame -> (B, C', T, H', W')
    b, c, t, h, w = x.shape
    y = conv(x.transpose(0, 2, 1, 3, 4).reshape(b * t, c, h, w))
    return y.reshape(b, t, y.shape[1], y.shape[2], y.shape[3]).transpose(0, 2, 1, 3, 4)


class CausalConv3d(nn.Cell):
    """3D conv, zero 'same' padding in space, causal in time with a cache carried across calls (key ``conv``).

    Call :meth:`reset` (or the VAE's ``reset_cache``) before a new video. The cache is Python state of the cell,
    so the VAE runs in PyNative (pipelines compile only their denoiser).
    """

    def __init__(self, cin: int, cout: int, kernel_size: int = 3):
        super().__init__()
        self.kt = kernel_size
        p = kernel_size // 2
        self.conv = _conv3d(cin, cout, kernel_size, padding=(0, 0, p, p, p, p) if p else 0)
        self.cache = None

    def reset(self):
        self.cache = None

    def construct(self, x):
        # x (B, C, T, H, W)
        if self.kt > 1:
            front = self.cache if self.cache is not None else ops.tile(x[:, :, :1], (1, 1, self.kt - 1, 1, 1))
            x = ops.concat([front, x], axis=2)
            self.cache = x[:, :, -(self.kt - 1):]
        return self.conv(x)


class SpatialNorm3D(nn.Cell):
    """``GroupNorm(f) * conv_y(zq) + conv_b(zq)`` with ``zq`` nearest-resized to f (Zhao et al. 2022, MoVQ)."""

    def __init__(self, f_channels: int, zq_channels: int, groups: int):
        super().__init__()
        self.norm_layer = GroupNorm(groups, f_channels, eps=1e-6)
        self.conv_y = CausalConv3d(zq_channels, f_channels, 1)
        self.conv_b = CausalConv3d(zq_channels, f_channels, 1)

    def construct(self, f, zq):
        t = f.shape[2]
        if t > 1 and t % 2 == 1:
            first = resize_nearest_3d(zq[:, :, :1], (1,) + tuple(f.shape[3:]))
            rest = resize_nearest_3d(zq[:, :, 1:], (t - 1,) + tuple(f.shape[3:]))
            zq = ops.concat([first, rest], axis=2)
        else:
            zq = resize_nearest_3d(zq, tuple(f.shape[2:]))
        return self.norm_layer(f) * self.conv_y(zq) + self.conv_b(zq)


class ResnetBlock3D(nn.Cell):
    """norm -> SiLU -> causal conv, twice, plus the (1x1x1 conv) shortcut. ``zq`` selects spatial norms."""

    def __init__(self, cin: int, cout: int, groups: int, eps: float, zq_channels: int | None = None):
        super().__init__()
        if zq_channels is None:
            self.norm1, self.norm2 = GroupNorm(groups, cin, eps), GroupNorm(groups, cout, eps)
        else:
            self.norm1 = SpatialNorm3D(cin, zq_channels, groups)
            self.norm2 = SpatialNorm3D(cout, zq_channels, groups)
        self.spatial = zq_channels is not None
        self.conv1 = CausalConv3d(cin, cout, 3)
        self.conv2 = CausalConv3d(cout, cout, 3)
        self.has_shortcut = cin != cout
        if self.has_shortcut:
            self.conv_shortcut = _conv3d(cin, cout, 1)

    def _norm(self, norm, x, zq):
        return norm(x, zq) if self.spatial else norm(x)

    def construct(self, x, zq=None):
        h = self.conv1(ops.silu(self._norm(self.norm1, x, zq)))
        h = self.conv2(ops.silu(self._norm(self.norm2, h, zq)))
        return h + (self.conv_shortcut(x) if self.has_shortcut else x)


class Downsample3D(nn.Cell):
    """Optional pairwise time average (frame 0 kept for odd T), then pad (0,1,0,1) + 3x3 stride-2 conv per frame."""

    def __init__(self, channels: int, compress_time: bool):
        super().__init__()
        self.compress_time = compress_time
        self.conv = conv2d(channels, channels, 3, stride=2, padding=0)

    def construct(self, x):
        t = x.shape[2]
        if self.compress_time:
            if t % 2 == 1:
                rest = x[:, :, 1:]
                if t > 1:
                    rest = (rest[:, :, 0::2] + rest[:, :, 1::2]) / 2
                    x = ops.concat([x[:, :, :1], rest], axis=2)
            else:
                x = (x[:, :, 0::2] + x[:, :, 1::2]) / 2
        x = ops.pad(x, (0, 1, 0, 1))
        return _per_frame_conv(self.conv, x)


class Upsample3D(nn.Cell):
    """Nearest x2 in space (and in time for ``compress_time``; frame 0 of odd T stays one frame), 3x3 conv per frame."""

    def __init__(self, channels: int, compress_time: bool):
        super().__init__()
        self.compress_time = compress_time
        self.conv = conv2d(channels, channels, 3, stride=1, padding=1)

    def construct(self, x):
        t = x.shape[2]
        x = _repeat2(_repeat2(x, 3), 4)  # space x2
        if self.compress_time and t > 1:
            if t % 2 == 1:
                x = ops.concat([x[:, :, :1], _repeat2(x[:, :, 1:], 2)], axis=2)
            else:
                x = _repeat2(x, 2)
        return _per_frame_conv(self.conv, x)


class _Level(nn.Cell):
    """One encoder/decoder level: ``resnets`` then an optional ``downsamplers.0`` / ``upsamplers.0``."""

    def __init__(self, cin, cout, layers, groups, eps, zq_channels, sampler, sampler_name):
        super().__init__()
        self.resnets = nn.CellList([ResnetBlock3D(cin if i == 0 else cout, cout, groups, eps, zq_channels)
                                    for i in range(layers)])
        self.has_sampler = sampler is not None
        if sampler is not None:
            setattr(self, sampler_name, nn.CellList([sampler]))
        self.sampler_name = sampler_name

    def construct(self, x, zq=None):
        for r in self.resnets:
            x = r(x, zq)
        if self.has_sampler:
            x = getattr(self, self.sampler_name)[0](x)
        return x


class Encoder3D(nn.Cell):
    def __init__(self, c: CausalVAEConfig):
        super().__init__()
        boc, g, eps = c.block_out_channels, c.norm_num_groups, c.norm_eps
        level_t = int(math.log2(c.temporal_compression_ratio))
        self.conv_in = CausalConv3d(c.in_channels, boc[0], 3)
        blocks, prev = [], boc[0]
        for i, ch in enumerate(boc):
            last = i == len(boc) - 1
            blocks.append(_Level(prev, ch, c.layers_per_block, g, eps, None,
                                 None if last else Downsample3D(ch, i < level_t), "downsamplers"))
            prev = ch
        self.down_blocks = nn.CellList(blocks)
        self.mid_block = _Level(boc[-1], boc[-1], 2, g, eps, None, None, "")
        self.norm_out = GroupNorm(g, boc[-1], eps=1e-6)
        self.conv_out = CausalConv3d(boc[-1], 2 * c.latent_channels, 3)

    def construct(self, x):
        h = self.conv_in(x)
        for blk in self.down_blocks:
            h = blk(h)
        h = self.mid_block(h)
        return self.conv_out(ops.silu(self.norm_out(h)))


class Decoder3D(nn.Cell):
    def __init__(self, c: CausalVAEConfig):
        super().__init__()
        rev, g, eps, zc = list(reversed(c.block_out_channels)), c.norm_num_groups, c.norm_eps, c.latent_channels
        level_t = int(math.log2(c.temporal_compression_ratio))
        self.conv_in = CausalConv3d(zc, rev[0], 3)
        self.mid_block = _Level(rev[0], rev[0], 2, g, eps, zc, None, "")
        blocks, prev = [], rev[0]
        for i, ch in enumerate(rev):
            last = i == len(rev) - 1
            blocks.append(_Level(prev, ch, c.layers_per_block + 1, g, eps, zc,
                                 None if last else Upsample3D(ch, i < level_t), "upsamplers"))
            prev = ch
        self.up_blocks = nn.CellList(blocks)
        self.norm_out = SpatialNorm3D(rev[-1], zc, g)
        self.conv_out = CausalConv3d(rev[-1], c.out_channels, 3)

    def construct(self, z):
        h = self.mid_block(self.conv_in(z), z)
        for blk in self.up_blocks:
            h = blk(h, z)
        return self.conv_out(ops.silu(self.norm_out(h, z)))


def _chunks(n: int, size: int) -> list[tuple[int, int]]:
    """The original's frame chunks: ``[0, size + n % size)``, then ``size`` at a time (one chunk when n == 1)."""
    if n == 1:
        return [(0, 1)]
    r = n % size
    return [(size * i + (0 if i == 0 else r), size * (i + 1) + r) for i in range(n // size)]


class AutoencoderKLCausal3D(nn.Cell):
    """The causal 3D VAE. Tensors are (B, C, T, H, W); pixels in [-1, 1].

    Args:
        config: :class:`CausalVAEConfig`.
        encode_chunk_frames: frames per encoder call (4 in the original: part of the numbers).
        decode_chunk_latents: latent frames per decoder call (2 in the original).
    """

    def __init__(self, config: CausalVAEConfig, encode_chunk_frames: int = 4, decode_chunk_latents: int = 2):
        super().__init__()
        self.config = config
        self.encode_chunk_frames = encode_chunk_frames
        self.decode_chunk_latents = decode_chunk_latents
        self.encoder = Encoder3D(config)
        self.decoder = Decoder3D(config)

    def reset_cache(self):
        """Forget the causal convs' carried frames (done after every encode / decode)."""
        for _, cell in self.cells_and_names():
            if isinstance(cell, CausalConv3d):
                cell.reset()

    def _run(self, net, x, size):
        n = x.shape[2]
        if 1 < n < size:
            raise ValueError(f"{n} frames: the chunked causal VAE needs 1 or at least {size} frames per call")
        self.reset_cache()
        try:
            outs = [net(x[:, :, a:b]) for a, b in _chunks(n, size)]
        finally:
            self.reset_cache()
        return outs[0] if len(outs) == 1 else ops.concat(outs, axis=2)

    def encode(self, x):
        """(B, 3, F, H, W) -> posterior ``(mean, logvar)``, each (B, C, f, H/s, W/s); logvar clamped to [-30, 20].
        ``mean`` is the posterior mode."""
        h = self._run(self.encoder, x, self.encode_chunk_frames)
        mean, logvar = ops.split(h, h.shape[1] // 2, axis=1)
        return mean, ops.clamp(logvar, -30.0, 20.0)

    def decode(self, z, tile: tuple[int, int] | None = None, overlap: tuple[int, int] | None = None,
               margin: tuple[int, int] | None = None):
        """(B, C, f, h, w) unscaled latents -> (B, 3, F_out, h*s, w*s), not clamped.

        Args:
            z: the latents.
            tile: (th, tw) latent rows/columns per spatial tile (a memory knob beyond the original's untiled
                default; None = untiled). Each tile is decoded whole in time (with the usual chunks and caches)
                and neighbours overlap by ``overlap`` latents (:func:`tiled_decode`). GroupNorm statistics are
                per tile and the convolutions see zeros past a tile's edge, so the result differs from the
                untiled one (dropletvideo/README.md has the figures).
            overlap: (oh, ow) latents shared by neighbouring tiles (default a quarter of the tile).
            margin: (mh, mw) pixels at each shared tile edge that are discarded (weight 0) because the
                convolutions' zero padding corrupts them; the rest of the overlap is blended linearly. Default
                a quarter of the overlap, so half the overlap is blended.
        """
        if tile is None:
            return self._run(self.decoder, z, self.decode_chunk_latents)
        th, tw = tile
        oh, ow = overlap if overlap is not None else (th // 4, tw // 4)
        s = self.config.spatial_factor
        mh, mw = margin if margin is not None else (oh * s // 4, ow * s // 4)
        dec = lambda t: self._run(self.decoder, ms.Tensor(np.ascontiguousarray(t)), self.decode_chunk_latents).asnumpy()  # noqa: E731
        return ms.Tensor(tiled_decode(dec, z.asnumpy(), (th, tw), (oh, ow), s, (mh, mw)))


def _blend_weights(n: int, margin: int, blend: int, head: bool, tail: bool) -> np.ndarray:
    """(n,) weights of one tile along one axis. At an edge shared with a neighbour (``head``: one before it,
    ``tail``: one after it) the outer ``margin`` samples get weight 0 and the next ``blend`` a linear ramp up
    to 1; the neighbour's ramp runs the other way over the same samples when the overlap is
    ``2 * margin + blend`` (the caller divides by the summed weights in any case)."""
    w = np.ones(n, np.float32)
    ramp = np.concatenate([np.zeros(margin, np.float32), (np.arange(blend, dtype=np.float32) + 0.5) / max(blend, 1)])
    k = margin + blend
    if k > 0:
        if head:
            w[:k] *= ramp
        if tail:
            w[-k:] *= ramp[::-1]
    return w


def tiled_decode(decode, z: np.ndarray, tile: tuple[int, int], overlap: tuple[int, int], scale: int,
                 margin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Decode ``z`` (B, C, f, h, w) in overlapping spatial tiles and blend them.

    Args:
        decode: latents (B, C, f, th, tw) -> pixels (B, 3, F, th*scale, tw*scale) (numpy in, numpy out).
        tile / overlap: tile size and overlap in latents per axis (overlap < tile). Tiles start every
            ``tile - overlap`` latents; the last one is moved back to end at the frame's edge (every tile is
            whole, so its GroupNorm statistics come from a full tile).
        scale: pixels per latent.
        margin: (default 0) pixels per axis dropped at each shared tile edge, ``2 * margin < overlap * scale``:
            the pixels nearest a tile's inner edge are the ones its convolutions' zero padding corrupts. The
            remaining ``overlap * scale - 2 * margin`` pixels of each overlap are blended with linear ramps.
    Returns:
        (B, 3, F, h*scale, w*scale): sum over tiles of (tile pixels x weights) / sum of weights, so a decoder
        that works pixel by pixel gives exactly the untiled result, and a decoder whose receptive field reaches
        less than ``margin`` pixels (with the same normalisation statistics) does too.
    """
    h, w = z.shape[-2:]
    starts = []
    for n, t, o, m in ((h, tile[0], overlap[0], margin[0]), (w, tile[1], overlap[1], margin[1])):
        if t <= 0 or not 0 <= o < t:
            raise ValueError(f"tile {tile} / overlap {overlap}: need tile > overlap >= 0")
        if m < 0 or (m > 0 and 2 * m >= o * scale):
            raise ValueError(f"margin {margin}: need 0 <= 2 * margin < overlap * scale ({overlap} x {scale})")
        s = list(range(0, max(n - o, 1), t - o))
        starts.append([min(a, max(n - t, 0)) for a in s])
    out = weight = None
    for i in sorted(set(starts[0])):
        for j in sorted(set(starts[1])):
            zt = z[..., i:i + tile[0], j:j + tile[1]]
            px = decode(zt)
            if out is None:
                out = np.zeros(px.shape[:3] + (h * scale, w * scale), np.float32)
                weight = np.zeros((h * scale, w * scale), np.float32)
            ph, pw = px.shape[-2:]
            wy = _blend_weights(ph, margin[0], overlap[0] * scale - 2 * margin[0], i > 0, i + tile[0] < h)
            wx = _blend_weights(pw, margin[1], overlap[1] * scale - 2 * margin[1], j > 0, j + tile[1] < w)
            ww = wy[:, None] * wx[None, :]
            out[..., i * scale:i * scale + ph, j * scale:j * scale + pw] += px * ww
            weight[i * scale:i * scale + ph, j * scale:j * scale + pw] += ww
    return out / weight
