"""The LDM ``AutoencoderKL`` (Stable Diffusion VAE) with the original state-dict key names.

Used by DynamiCrafter, SVD (encoder side, the conditioner's encoder; its temporal decoder
subclasses :class:`Decoder`), AnimateDiff (its converter maps diffusers names to these) and
VideoComposer. Keys are LDM's: ``encoder.conv_in``, ``encoder.down.{i}.block.{j}.{norm1,conv1,
norm2,conv2,nin_shortcut}``, ``encoder.down.{i}.downsample.conv``, ``encoder.mid.{block_1,attn_1,
block_2}`` (``attn_1``: ``norm``, ``q``, ``k``, ``v``, ``proj_out`` as 1x1 convs), ``encoder.norm_out``,
``encoder.conv_out``, ``quant_conv``, ``post_quant_conv``, ``decoder.conv_in``, ``decoder.mid.*``,
``decoder.up.{i}.block.{j}``, ``decoder.up.{i}.upsample.conv``, ``decoder.norm_out``, ``decoder.conv_out``.

Extending the decoder (SVD's ``VideoDecoder``): subclass :class:`Decoder` and override its factory
methods :meth:`Decoder.make_resblock`, :meth:`Decoder.make_attn`, :meth:`Decoder.make_upsample`,
:meth:`Decoder.make_conv_out`; ``Decoder.construct(z, *args)`` hands ``args`` (e.g. the number of
frames) to every res block and attention block, and to ``conv_out`` when the class sets
``conv_out_takes_args = True``. Subclass :class:`DDConfig` for extra
config keys (``self.config`` is set before any block is built). :class:`AutoencoderKL` decodes each
chunk through :meth:`AutoencoderKL.decode_chunk`, the hook to override for decoders that need the
chunk's frame count.
"""
from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass, field
from typing import Any

import mindspore as ms
import numpy as np
from mindspore import nn, ops

from common.config import ConfigError, from_mapping, unused
from common.nn import (  # noqa: F401
    AttentionOptions,
    GroupNorm,
    Upsample,
    batch_to_frames,
    conv2d,
    frames_to_batch,
    scaled_dot_product_attention,
    upsample_nearest2x,
)

#: The SD VAE's latent scale (LDM ``scale_factor``, diffusers ``scaling_factor``). Not a default of this
#: module: every caller passes the value its config names (AnimateDiff's original hard-codes this one).
SD_SCALE_FACTOR = 0.18215


@dataclass
class DDConfig:
    """LDM ``ddconfig`` of the autoencoder (keys as in the original YAML).

    Args:
        double_z: the encoder outputs mean and logvar (2 * z_channels); required by AutoencoderKL.
        z_channels: latent channels at the encoder output / decoder input.
        resolution: nominal image size; only used to place attention (``attn_resolutions``).
        in_channels: image channels into the encoder.
        out_ch: image channels out of the decoder.
        ch: base width; level i has ``ch * ch_mult[i]`` channels.
        ch_mult: width multipliers, one per level (len - 1 down/upsamplings).
        num_res_blocks: res blocks per encoder level (the decoder has one more per level).
        attn_resolutions: resolutions (``resolution / 2**level``) that get an AttnBlock after each
            res block (the mid blocks always have one).
        dropout: dropout inside the res blocks (training only).
        resamp_with_conv: conv in Downsample / Upsample (LDM default True; False = avg-pool / plain
            nearest upsampling).
        attn_type: ``"vanilla"`` or ``"vanilla-xformers"`` (same numbers) or ``"none"`` (identity).
        give_pre_end: the decoder returns the features before ``norm_out`` (default False).
        tanh_out: tanh on the decoder output (default False).
        use_linear_attn: LDM's linear attention switch; only False is supported.
        norm_num_groups: groups of every GroupNorm. Not an LDM key (LDM's ``Normalize`` hard-codes 32,
            the default); diffusers' ``vae/config.json`` names it ``norm_num_groups``.
    """

    double_z: bool = True
    z_channels: int = 4
    resolution: int = 256
    in_channels: int = 3
    out_ch: int = 3
    ch: int = 128
    ch_mult: tuple = (1, 2, 4, 4)
    num_res_blocks: int = 2
    attn_resolutions: tuple = field(default_factory=tuple)
    dropout: float = 0.0
    resamp_with_conv: bool = True
    attn_type: str = "vanilla"
    give_pre_end: bool = False
    tanh_out: bool = False
    use_linear_attn: bool = False
    norm_num_groups: int = 32

    def __post_init__(self):
        self.ch_mult = tuple(int(m) for m in self.ch_mult)
        self.attn_resolutions = tuple(int(r) for r in self.attn_resolutions)
        if not self.ch_mult:
            raise ConfigError("ch_mult: must list at least one level")
        if self.attn_type not in ("vanilla", "vanilla-xformers", "none"):
            raise ConfigError(f"attn_type: {self.attn_type!r} is not supported: "
                              "expected 'vanilla', 'vanilla-xformers' or 'none'")
        if self.use_linear_attn:
            raise ConfigError("use_linear_attn: true (LDM linear attention) is not supported")
        if self.norm_num_groups < 1:
            raise ConfigError(f"norm_num_groups: {self.norm_num_groups} is not positive")
        for c in sorted({self.ch * m for m in self.ch_mult}):
            if c % self.norm_num_groups:
                raise ConfigError(f"ch_mult: level width {c} (ch {self.ch} x ch_mult) is not divisible "
                                  f"into the {self.norm_num_groups} GroupNorm groups")

    @classmethod
    def read(cls, d, where: str = "ddconfig"):
        """A YAML ``ddconfig`` mapping read by :func:`common.config.from_mapping` (unknown keys refused),
        an instance of this class unchanged, or the common fields of another DDConfig."""
        if isinstance(d, cls):
            return d
        if isinstance(d, DDConfig):
            d = {f.name: getattr(d, f.name) for f in dataclasses.fields(d) if f.name in cls.__dataclass_fields__}
        return from_mapping(cls, d, where)


@dataclass
class AutoencoderKLParams:
    """``first_stage_config.params`` of the LDM / sgm ``AutoencoderKL`` (DynamiCrafter, SVD's image decoders,
    VideoComposer): ``ddconfig`` and ``embed_dim``.

    ddconfig: the encoder/decoder layout (:class:`DDConfig`; a model may narrow the type to a subclass).
    embed_dim: latent channels after ``quant_conv`` (4).
    """

    ddconfig: DDConfig
    embed_dim: int = 4
    monitor: Any = unused("validation metric of the training code")
    lossconfig: Any = unused("the autoencoder's training loss (torch.nn.Identity in the releases)")
    ckpt_path: Any = unused("weights come from the model checkpoint")
    ignore_keys: Any = unused("weights come from the model checkpoint", [])
    image_key: Any = unused("dataset key of the training code", "image")
    colorize_nlabels: Any = unused("segmentation-map training only")


def nonlinearity(x):
    """swish / SiLU: ``x * sigmoid(x)``."""
    return x * ops.sigmoid(x)


def vae_norm(channels: int, eps: float = 1e-6, num_groups: int = 32) -> GroupNorm:
    """The VAE's normalisation: GroupNorm(``num_groups``, eps 1e-6), affine (LDM's ``Normalize``: 32 groups)."""
    return GroupNorm(num_groups, channels, eps=eps)


class ResnetBlock(nn.Cell):
    """LDM ResnetBlock without time embedding (the autoencoder's ``temb_ch`` is 0).

    ``x + conv2(dropout(silu(norm2(conv1(silu(norm1(x)))))))``; when the width changes the skip is
    a 1x1 conv ``nin_shortcut``.

    Args:
        in_channels: input width.
        out_channels: output width (default ``in_channels``).
        dropout: dropout probability before ``conv2`` (training only).
        eps: GroupNorm epsilon (1e-6 in the VAE).
        num_groups: GroupNorm groups (``DDConfig.norm_num_groups``; LDM 32).
    """

    def __init__(self, in_channels: int, out_channels: int | None = None, dropout: float = 0.0, eps: float = 1e-6,
                 num_groups: int = 32):
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.norm1 = vae_norm(in_channels, eps, num_groups)
        self.conv1 = conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = vae_norm(out_channels, eps, num_groups)
        self.dropout = nn.Dropout(p=dropout)
        self.conv2 = conv2d(out_channels, out_channels, 3, padding=1)
        self.has_shortcut = in_channels != out_channels
        if self.has_shortcut:
            self.nin_shortcut = conv2d(in_channels, out_channels, 1)

    def construct(self, x, *args):
        # x (N, C_in, H, W); extra args are ignored (they serve subclasses such as video blocks)
        h = self.conv1(nonlinearity(self.norm1(x)))
        h = self.conv2(self.dropout(nonlinearity(self.norm2(h))))
        if self.has_shortcut:
            x = self.nin_shortcut(x)
        return x + h  # (N, C_out, H, W)


class AttnBlock(AttentionOptions, nn.Cell):
    """LDM's single-head spatial self-attention over the H*W positions of each image.

    ``norm``; ``q``, ``k``, ``v``, ``proj_out`` are 1x1 convs; scores scaled by ``C**-0.5``, softmax
    in float32 (:func:`common.nn.scaled_dot_product_attention`); residual add.

    Args:
        channels: C.
        chunk_size: query chunk of the attention (None = none; :func:`common.nn.set_attention` sets it for a
            whole model); bounds the (H*W)^2 score matrix of big frames.
        eps: GroupNorm epsilon.
        num_groups: GroupNorm groups (``DDConfig.norm_num_groups``; LDM 32).
    """

    def __init__(self, channels: int, chunk_size: int | None = None, eps: float = 1e-6, num_groups: int = 32):
        super().__init__()
        self.channels = channels
        self.set_attention_options(chunk_size=chunk_size)
        self.norm = vae_norm(channels, eps, num_groups)
        self.q = conv2d(channels, channels, 1)
        self.k = conv2d(channels, channels, 1)
        self.v = conv2d(channels, channels, 1)
        self.proj_out = conv2d(channels, channels, 1)

    def construct(self, x, *args):
        # x (N, C, H, W); extra args are ignored
        n, c, h, w = x.shape
        y = self.norm(x)
        q = self.q(y).reshape(n, 1, c, h * w).transpose(0, 1, 3, 2)  # (N, 1, HW, C)
        k = self.k(y).reshape(n, 1, c, h * w).transpose(0, 1, 3, 2)
        v = self.v(y).reshape(n, 1, c, h * w).transpose(0, 1, 3, 2)
        o = scaled_dot_product_attention(q, k, v, chunk_size=self.chunk_size, backend=self.attn_backend)  # (N, 1, HW, C)
        o = o.transpose(0, 1, 3, 2).reshape(n, c, h, w)
        return x + self.proj_out(o)


class Identity(nn.Cell):
    """Identity that accepts (and ignores) extra arguments; ``attn_type: none``."""

    def construct(self, x, *args):
        return x


class Downsample(nn.Cell):
    """Halve H and W: pad (0, 1, 0, 1) (right/bottom) then conv 3x3 stride 2 pad 0 (key ``conv``),
    or 2x2 average pooling when ``with_conv`` is False."""

    def __init__(self, channels: int, with_conv: bool = True):
        super().__init__()
        self.with_conv = with_conv
        if with_conv:
            self.conv = conv2d(channels, channels, 3, stride=2, padding=0)
        else:
            self.pool = nn.AvgPool2d(kernel_size=2, stride=2)

    def construct(self, x):
        # x (N, C, H, W) -> (N, C, ceil(H/2), ceil(W/2)) (conv) / (N, C, H//2, W//2) (pool)
        if self.with_conv:
            return self.conv(ops.pad(x, (0, 1, 0, 1)))
        return self.pool(x)


class _Mid(nn.Cell):
    """Key container ``mid.{block_1, attn_1, block_2}`` (called by the Encoder/Decoder)."""

    def __init__(self, block_1, attn_1, block_2):
        super().__init__()
        self.block_1 = block_1
        self.attn_1 = attn_1
        self.block_2 = block_2


class _Level(nn.Cell):
    """Key container of one resolution level: ``block`` / ``attn`` lists and ``downsample`` / ``upsample``."""

    def __init__(self, blocks, attns):
        super().__init__()
        self.block = nn.CellList(blocks)
        self.attn = nn.CellList(attns)
        self.has_attn = len(attns) > 0
        self.has_resample = False


class Encoder(nn.Cell):
    """LDM encoder: image (N, in_channels, H, W) -> (N, 2*z_channels or z_channels, H/f, W/f), f = 2**(levels-1).

    Args:
        config: :class:`DDConfig` or a ddconfig mapping.
        attn_chunk_size: query chunk of the attention blocks (None = none; see :func:`common.nn.set_attention`).
    """

    def __init__(self, config, attn_chunk_size: int | None = None):
        super().__init__()
        cfg = DDConfig.read(config)
        self.config = cfg
        self.attn_chunk_size = attn_chunk_size
        self.num_resolutions = len(cfg.ch_mult)
        self.conv_in = conv2d(cfg.in_channels, cfg.ch, 3, padding=1)
        in_mult = (1,) + cfg.ch_mult
        curr_res = cfg.resolution
        levels = []
        for i, mult in enumerate(cfg.ch_mult):
            block_in = cfg.ch * in_mult[i]
            block_out = cfg.ch * mult
            blocks, attns = [], []
            for _ in range(cfg.num_res_blocks):
                blocks.append(self.make_resblock(block_in, block_out))
                block_in = block_out
                if curr_res in cfg.attn_resolutions:
                    attns.append(self.make_attn(block_in))
            level = _Level(blocks, attns)
            if i != self.num_resolutions - 1:
                level.downsample = self.make_downsample(block_in)
                level.has_resample = True
                curr_res //= 2
            levels.append(level)
        self.down = nn.CellList(levels)
        self.mid = _Mid(self.make_resblock(block_in, block_in), self.make_attn(block_in),
                        self.make_resblock(block_in, block_in))
        self.norm_out = vae_norm(block_in, num_groups=cfg.norm_num_groups)
        self.conv_out = conv2d(block_in, 2 * cfg.z_channels if cfg.double_z else cfg.z_channels, 3, padding=1)

    def make_resblock(self, in_channels: int, out_channels: int) -> nn.Cell:
        """Factory of every res block (levels and mid)."""
        return ResnetBlock(in_channels, out_channels, dropout=self.config.dropout, num_groups=self.config.norm_num_groups)

    def make_downsample(self, channels: int) -> nn.Cell:
        """Factory of the per-level Downsample (key ``down.{i}.downsample``)."""
        return Downsample(channels, self.config.resamp_with_conv)

    def make_attn(self, channels: int) -> nn.Cell:
        """Factory of every attention block (levels at ``attn_resolutions`` and mid)."""
        if self.config.attn_type == "none":
            return Identity()
        return AttnBlock(channels, chunk_size=self.attn_chunk_size, num_groups=self.config.norm_num_groups)

    def construct(self, x):
        h = self.conv_in(x)  # (N, ch, H, W)
        for level in self.down:
            for j, block in enumerate(level.block):
                h = block(h)
                if level.has_attn:
                    h = level.attn[j](h)
            if level.has_resample:
                h = level.downsample(h)
        h = self.mid.block_1(h)
        h = self.mid.attn_1(h)
        h = self.mid.block_2(h)
        return self.conv_out(nonlinearity(self.norm_out(h)))  # (N, 2z or z, h, w)


class Decoder(nn.Cell):
    """LDM decoder: latent (N, z_channels, h, w) -> image (N, out_ch, h*f, w*f).

    ``up[i]`` is level i (``up[0]`` the full resolution); it runs from the deepest level up, each
    level with ``num_res_blocks + 1`` res blocks, then Upsample (except level 0).

    Args:
        config: :class:`DDConfig` (or subclass) or a ddconfig mapping.
        attn_chunk_size: query chunk of the attention blocks (None = none; see :func:`common.nn.set_attention`).
    """

    #: the config dataclass a subclass reads its extra keys from.
    config_class = DDConfig
    #: hand ``construct``'s extra args to ``conv_out`` too (True when ``make_conv_out`` returns a
    #: cell that takes them, e.g. SVD's conv + time_mix_conv); the plain 2-D conv takes none.
    conv_out_takes_args = False

    def __init__(self, config, attn_chunk_size: int | None = None):
        super().__init__()
        cfg = self.config_class.read(config)
        self.config = cfg
        self.attn_chunk_size = attn_chunk_size
        self.num_resolutions = len(cfg.ch_mult)
        self.give_pre_end = cfg.give_pre_end
        self.tanh_out = cfg.tanh_out
        block_in = cfg.ch * cfg.ch_mult[-1]
        curr_res = cfg.resolution // 2 ** (self.num_resolutions - 1)
        self.conv_in = conv2d(cfg.z_channels, block_in, 3, padding=1)
        self.mid = _Mid(self.make_resblock(block_in, block_in), self.make_attn(block_in),
                        self.make_resblock(block_in, block_in))
        levels = [None] * self.num_resolutions
        for i in reversed(range(self.num_resolutions)):
            block_out = cfg.ch * cfg.ch_mult[i]
            blocks, attns = [], []
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(self.make_resblock(block_in, block_out))
                block_in = block_out
                if curr_res in cfg.attn_resolutions:
                    attns.append(self.make_attn(block_in))
            level = _Level(blocks, attns)
            if i != 0:
                level.upsample = self.make_upsample(block_in)
                level.has_resample = True
                curr_res *= 2
            levels[i] = level
        self.up = nn.CellList(levels)
        self.norm_out = vae_norm(block_in, num_groups=cfg.norm_num_groups)
        self.conv_out = self.make_conv_out(block_in, cfg.out_ch)

    def make_resblock(self, in_channels: int, out_channels: int) -> nn.Cell:
        """Factory of every res block (mid and levels); called as ``block(h, *args)``."""
        return ResnetBlock(in_channels, out_channels, dropout=self.config.dropout, num_groups=self.config.norm_num_groups)

    def make_attn(self, channels: int) -> nn.Cell:
        """Factory of every attention block; called as ``attn(h, *args)``."""
        if self.config.attn_type == "none":
            return Identity()
        return AttnBlock(channels, chunk_size=self.attn_chunk_size, num_groups=self.config.norm_num_groups)

    def make_upsample(self, channels: int) -> nn.Cell:
        """Factory of the per-level Upsample (key ``up.{i}.upsample``); called as ``upsample(h)``."""
        return Upsample(channels, self.config.resamp_with_conv)

    def make_conv_out(self, in_channels: int, out_channels: int) -> nn.Cell:
        """Factory of ``conv_out`` (3x3, pad 1); called as ``conv_out(h)`` (``conv_out(h, *args)`` when
        :attr:`conv_out_takes_args`)."""
        return conv2d(in_channels, out_channels, 3, padding=1)

    def construct(self, z, *args):
        # z (N, z_channels, h, w); args are handed to the res/attention blocks and conv_out
        h = self.conv_in(z)
        h = self.mid.block_1(h, *args)
        h = self.mid.attn_1(h, *args)
        h = self.mid.block_2(h, *args)
        for i in range(self.num_resolutions - 1, -1, -1):
            level = self.up[i]
            for j, block in enumerate(level.block):
                h = block(h, *args)
                if level.has_attn:
                    h = level.attn[j](h, *args)
            if level.has_resample:
                h = level.upsample(h)
        if self.give_pre_end:
            return h
        h = nonlinearity(self.norm_out(h))
        h = self.conv_out(h, *args) if self.conv_out_takes_args else self.conv_out(h)  # (N, out_ch, H, W)
        if self.tanh_out:
            h = ops.tanh(h)
        return h


def _to_tensor(x, name: str):
    if isinstance(x, ms.Tensor):
        return x.astype(ms.float32) if x.dtype != ms.float32 else x
    if isinstance(x, np.ndarray):
        return ms.Tensor(x.astype(np.float32, copy=False))
    raise TypeError(f"{name} must be a mindspore Tensor or numpy array, got {type(x).__name__}")


def _draw_normal(shape, generator) -> np.ndarray:
    if isinstance(generator, (int, np.integer)):
        generator = np.random.default_rng(int(generator))
    elif generator is None:
        generator = np.random.default_rng()
    if isinstance(generator, np.random.RandomState):
        return generator.standard_normal(shape).astype(np.float32)
    if isinstance(generator, np.random.Generator):
        return generator.standard_normal(shape, dtype=np.float32)
    raise TypeError(f"generator must be None, an int seed, np.random.Generator or RandomState, "
                    f"got {type(generator).__name__}")


class DiagonalGaussian:
    """LDM's ``DiagonalGaussianDistribution`` over latents: ``mean``, ``logvar`` (clamped to [-30, 20]).

    Args:
        mean: (N, z, h, w) Tensor.
        logvar: (N, z, h, w) Tensor (clamped here).
    """

    def __init__(self, mean, logvar):
        self.mean = mean
        self.logvar = ops.clamp(logvar, -30.0, 20.0)
        self.std = ops.exp(0.5 * self.logvar)

    @classmethod
    def from_moments(cls, moments):
        """Split (N, 2z, h, w) moments into mean | logvar along channels."""
        mean, logvar = ops.chunk(moments, 2, axis=1)
        return cls(mean, logvar)

    def mode(self):
        """The mean (deterministic latent)."""
        return self.mean

    def sample(self, noise=None, generator=None):
        """``mean + std * noise``.

        Args:
            noise: N(0, 1) draws shaped like ``mean`` (Tensor or array); drawn when None.
            generator: for drawing: None (fresh), an int seed, np.random.Generator or RandomState.
        """
        if noise is None:
            noise = _draw_normal(tuple(self.mean.shape), generator)
        noise = _to_tensor(noise, "noise")
        if tuple(noise.shape) != tuple(self.mean.shape):
            raise ValueError(f"posterior noise has shape {tuple(noise.shape)}, expected {tuple(self.mean.shape)}")
        return self.mean + self.std * noise


def _check_scale(scale_factor):
    if isinstance(scale_factor, bool) or not isinstance(scale_factor, numbers.Real) or not scale_factor > 0:
        raise ValueError(f"scale_factor must be a positive number (the config's scale_factor), got {scale_factor!r}")


def _check_chunk(chunk_size):
    if chunk_size is not None and (not isinstance(chunk_size, (int, np.integer)) or chunk_size <= 0):
        raise ValueError(f"chunk_size must be None (all frames at once) or a positive int, got {chunk_size!r}")


def _chunks(n: int, chunk_size):
    step = n if chunk_size is None else int(chunk_size)
    return [(s, min(s + step, n)) for s in range(0, n, max(step, 1))]


class AutoencoderKL(nn.Cell):
    """LDM ``AutoencoderKL``: encoder -> ``quant_conv`` -> posterior; ``post_quant_conv`` -> decoder.

    Args:
        ddconfig: :class:`DDConfig` or the YAML ``ddconfig`` mapping (``double_z`` must be True).
        embed_dim: latent channels after ``quant_conv`` (SD: 4).
        use_quant_conv: build ``quant_conv`` / ``post_quant_conv`` (LDM True; sgm's
            ``AutoencodingEngine``, i.e. SVD's first stage, has neither: False).
        attn_chunk_size: query chunk of the attention blocks (None = none; see :func:`common.nn.set_attention`).
        decoder_class: the decoder to build (e.g. a temporal subclass of :class:`Decoder`).
    """

    def __init__(self, ddconfig, embed_dim: int | None = None, use_quant_conv: bool = True,
                 attn_chunk_size: int | None = None, decoder_class: type = Decoder):
        super().__init__()
        dec_cfg = decoder_class.config_class.read(ddconfig)
        enc_cfg = DDConfig.read(dec_cfg)
        if not enc_cfg.double_z:
            raise ConfigError("ddconfig.double_z: AutoencoderKL needs true (the encoder outputs mean and logvar)")
        self.config = dec_cfg
        self.use_quant_conv = use_quant_conv
        if use_quant_conv:
            if embed_dim is None:
                raise ValueError("AutoencoderKL: embed_dim is required when use_quant_conv is True")
            self.embed_dim = int(embed_dim)
        else:
            self.embed_dim = enc_cfg.z_channels
        self.encoder = Encoder(enc_cfg, attn_chunk_size=attn_chunk_size)
        self.decoder = decoder_class(dec_cfg, attn_chunk_size=attn_chunk_size)
        if use_quant_conv:
            self.quant_conv = conv2d(2 * enc_cfg.z_channels, 2 * self.embed_dim, 1)
            self.post_quant_conv = conv2d(self.embed_dim, enc_cfg.z_channels, 1)
        self.downscale = 2 ** (len(enc_cfg.ch_mult) - 1)  # f: pixels per latent along H and W

    def latent_size(self, height: int, width: int) -> tuple[int, int]:
        """Latent (h, w) of a (height, width) image: every Downsample halves with floor."""
        h, w = int(height), int(width)
        for _ in range(len(self.encoder.config.ch_mult) - 1):
            h, w = h // 2, w // 2
        return h, w

    # ---- images (N, C, H, W) -------------------------------------------------------------
    def _check_image(self, x, name="x"):
        x = _to_tensor(x, name)
        c = self.encoder.config.in_channels
        if x.ndim != 4 or x.shape[1] != c:
            raise ValueError(f"{name} must be (N, {c}, H, W), got {tuple(x.shape)}")
        return x

    def encode_moments(self, x):
        """Images (N, C, H, W) in [-1, 1] -> (mean, logvar), each (N, embed_dim, H/f, W/f); logvar clamped to [-30, 20]."""
        x = self._check_image(x)
        moments = self.encoder(x)
        if self.use_quant_conv:
            moments = self.quant_conv(moments)
        post = DiagonalGaussian.from_moments(moments)
        return post.mean, post.logvar

    def posterior(self, x) -> DiagonalGaussian:
        """Images (N, C, H, W) -> :class:`DiagonalGaussian` over the latents."""
        return DiagonalGaussian(*self.encode_moments(x))

    def encode(self, x, noise=None, sample: bool = True, generator=None):
        """Images -> latents (unscaled): ``mean + exp(0.5*logvar) * noise`` (``sample``) or ``mean``.

        Args:
            x: (N, C, H, W) in [-1, 1].
            noise: (N, embed_dim, h, w) N(0,1) draws for the posterior sample (drawn when None).
            sample: sample the posterior (LDM ``encode_first_stage``) or return its mode.
            generator: how to draw the noise when it is None (int seed, np Generator/RandomState).
        """
        post = self.posterior(x)
        return post.sample(noise, generator) if sample else post.mode()

    def decode(self, z, *decoder_args):
        """Unscaled latents (N, embed_dim, h, w) -> images (N, out_ch, H, W) (not clamped)."""
        z = _to_tensor(z, "z")
        if z.ndim != 4 or z.shape[1] != self.embed_dim:
            raise ValueError(f"z must be (N, {self.embed_dim}, h, w), got {tuple(z.shape)}")
        if self.use_quant_conv:
            z = self.post_quant_conv(z)
        return self.decoder(z, *decoder_args)

    def decode_chunk(self, z):
        """Decode one chunk of frames (N, embed_dim, h, w); the hook temporal decoders override
        (e.g. ``return self.decode(z, z.shape[0])`` to pass the chunk's frame count)."""
        return self.decode(z)

    def construct(self, z):
        """``decode(z)`` (so ``ms.jit`` / graph mode compiles post_quant_conv + decoder as one graph)."""
        if self.use_quant_conv:
            z = self.post_quant_conv(z)
        return self.decoder(z)

    # ---- frame batches (N, C, H, W), chunked ------------------------------------------------
    def encode_frames(self, x, noise=None, sample: bool = True, generator=None, chunk_size: int | None = None, *,
                      scale_factor: float):
        """Frames (N, C, H, W) -> ``scale_factor * latents`` (N, embed_dim, h, w), ``chunk_size`` frames at a time.

        ``scale_factor`` is the config's (LDM ``scale_factor``, diffusers ``scaling_factor``); no default.

        ``noise`` is (N, embed_dim, h, w); when None and ``sample`` it is drawn for all N frames at
        once from ``generator`` (so chunking does not change the draws).
        """
        _check_chunk(chunk_size)
        _check_scale(scale_factor)
        x = self._check_image(x)
        n = x.shape[0]
        if sample and noise is None:
            noise = _draw_normal((n, self.embed_dim) + self.latent_size(x.shape[2], x.shape[3]), generator)
        if noise is not None:
            noise = _to_tensor(noise, "noise")
        outs = []
        for s, e in _chunks(n, chunk_size):
            outs.append(self.encode(x[s:e], noise[s:e] if sample else None, sample=sample))
        z = outs[0] if len(outs) == 1 else ops.concat(outs, axis=0)
        return z * scale_factor

    def decode_frames(self, z, scale_factor: float, chunk_size: int | None = None):
        """Scaled latents (N, embed_dim, h, w) -> frames (N, out_ch, H, W): ``decode_chunk(z / scale_factor)``
        for ``chunk_size`` frames at a time (None = all at once; SVD's ``decode_chunk_size``)."""
        _check_chunk(chunk_size)
        _check_scale(scale_factor)
        z = _to_tensor(z, "z")
        if z.ndim != 4:
            raise ValueError(f"z must be (N, {self.embed_dim}, h, w), got {tuple(z.shape)}")
        z = z / scale_factor
        outs = [self.decode_chunk(z[s:e]) for s, e in _chunks(z.shape[0], chunk_size)]
        return outs[0] if len(outs) == 1 else ops.concat(outs, axis=0)

    # ---- videos (B, C, T, H, W) -----------------------------------------------------------
    def encode_video(self, x, noise=None, sample: bool = True, generator=None, chunk_size: int | None = None, *,
                     scale_factor: float):
        """Video (B, C, T, H, W) in [-1, 1] -> ``scale_factor * latents`` (B, embed_dim, T, h, w).

        Frames are encoded as images in (b t) order (DynamiCrafter ``encode_first_stage``).

        Args:
            x: the video.
            noise: (B, embed_dim, T, h, w) posterior draws (drawn from ``generator`` when None).
            sample: sample the posterior (True, as the originals) or use its mean.
            generator: int seed / np Generator / RandomState for drawing noise.
            chunk_size: frames per encoder call (None = all B*T at once; 1 = ``perframe_ae``).
            scale_factor: latent scale from the config (no default; the SD VAE's is 0.18215).
        """
        x = _to_tensor(x, "video")
        if x.ndim != 5:
            raise ValueError(f"video must be (B, C, T, H, W), got {tuple(x.shape)}")
        b, c, t, hh, ww = x.shape
        frames = frames_to_batch(x)  # (b*t, c, H, W)
        if noise is not None:
            noise = _to_tensor(noise, "noise")
            h, w = self.latent_size(hh, ww)
            want = (b, self.embed_dim, t, h, w)
            if tuple(noise.shape) != want:
                raise ValueError(f"noise has shape {tuple(noise.shape)}, expected {want} (B, C, T, h, w)")
            noise = frames_to_batch(noise)
        z = self.encode_frames(frames, noise, sample, generator, chunk_size, scale_factor=scale_factor)  # (b*t, e, h, w)
        return batch_to_frames(z, t)

    def decode_video(self, z, scale_factor: float, chunk_size: int | None = None):
        """Scaled latents (B, embed_dim, T, h, w) -> video (B, out_ch, T, H, W), not clamped.

        Args:
            z: latents (e.g. the sampler's output).
            scale_factor: latent scale from the config; the decoder sees ``z / scale_factor``.
            chunk_size: frames per decoder call: None = all B*T frames batched, 1 = per frame
                (DynamiCrafter ``perframe_ae``), k = k frames at a time (memory bound).
        """
        z = _to_tensor(z, "z")
        if z.ndim != 5 or z.shape[1] != self.embed_dim:
            raise ValueError(f"z must be (B, {self.embed_dim}, T, h, w), got {tuple(z.shape)}")
        frames = self.decode_frames(frames_to_batch(z), scale_factor, chunk_size)  # (b*t, c, H, W)
        return batch_to_frames(frames, z.shape[2])
