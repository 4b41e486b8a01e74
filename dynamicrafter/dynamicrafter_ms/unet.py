"""DynamiCrafter's 3D UNet (``lvdm.modules.networks.openaimodel3d.UNetModel``).

Frames are processed as a batch of 2D images ``(b*t, c, h, w)``; temporal mixing comes from a
``TemporalConvBlock`` after every ResBlock and a ``TemporalTransformer`` after every spatial
transformer (plus the ``init_attn`` one after the first conv). Parameter names equal the original
state dict (``model.diffusion_model.`` stripped), including its ``temopral_conv`` spelling.
"""
from __future__ import annotations

import math

import mindspore as ms
from mindspore import Parameter, nn, ops
from mindspore.common.initializer import HeUniform, Uniform, initializer

from common.nn import (
    Downsample,
    GroupNorm,
    ResBlock,
    TemporalConv,
    Upsample,
    conv2d,
    linear,
    timestep_embedding,
)

from .attention import TEXT_CONTEXT_LEN, DCSpatialTransformer, TemporalTransformer
from .config import UNetConfig

#: image tokens per frame that the UNet recognises in the context (hard-coded 16 in the original).
IMAGE_TOKENS_PER_FRAME = 16


def _to_video(x, num_frames: int):
    """(b*t, c, h, w) -> (b, c, t, h, w)."""
    bt, c, h, w = x.shape
    return x.reshape(bt // num_frames, num_frames, c, h, w).transpose(0, 2, 1, 3, 4)


def _to_frames(x):
    """(b, c, t, h, w) -> (b*t, c, h, w)."""
    b, c, t, h, w = x.shape
    return x.transpose(0, 2, 1, 3, 4).reshape(b * t, c, h, w)


class TemporalConvBlock(nn.Cell):
    """Four (GroupNorm(32), SiLU, [Dropout], Conv3d (3,1,1)) stages on (b, c, t, h, w), then identity + result.

    Keys ``conv1.{0,2}``, ``conv2..4.{0,3}`` (conv1 has no dropout). Args: channels; dropout (0.1, training only).
    """

    def __init__(self, channels: int, dropout: float = 0.1):
        super().__init__()
        self.conv1 = nn.SequentialCell([GroupNorm(32, channels, 1e-5), nn.SiLU(), TemporalConv(channels, channels, 3)])
        self.conv2 = nn.SequentialCell([GroupNorm(32, channels, 1e-5), nn.SiLU(), nn.Dropout(p=dropout),
                                        TemporalConv(channels, channels, 3)])
        self.conv3 = nn.SequentialCell([GroupNorm(32, channels, 1e-5), nn.SiLU(), nn.Dropout(p=dropout),
                                        TemporalConv(channels, channels, 3)])
        self.conv4 = nn.SequentialCell([GroupNorm(32, channels, 1e-5), nn.SiLU(), nn.Dropout(p=dropout),
                                        TemporalConv(channels, channels, 3)])

    def construct(self, x):
        # x (b, c, t, h, w)
        return x + self.conv4(self.conv3(self.conv2(self.conv1(x))))


class DCResBlock(ResBlock):
    """LDM ResBlock on (b*t, c, h, w) with a per-frame embedding (b*t, E), then the TemporalConvBlock
    (key ``temopral_conv``, as spelled in the original) over the frames of each video."""

    def __init__(self, channels: int, emb_channels: int, out_channels: int | None = None, dropout: float = 0.0,
                 temporal_conv: bool = True):
        super().__init__(channels, emb_channels, out_channels, dropout=dropout, dims=2)
        self.use_temporal_conv = temporal_conv
        if temporal_conv:
            self.temopral_conv = TemporalConvBlock(out_channels or channels, dropout=0.1)

    def construct(self, x, emb=None, context=None, num_frames=1):
        h = super().construct(x, emb)
        if self.use_temporal_conv:
            h = _to_frames(self.temopral_conv(_to_video(h, num_frames)))
        return h


class DCDownsample(Downsample):
    """Stride-2 3x3 conv (key ``op``) with the block-layer signature."""

    def construct(self, x, emb=None, context=None, num_frames=1):
        return self.op(x)


class DCUpsample(Upsample):
    """Nearest x2 + 3x3 conv (key ``conv``) with the block-layer signature."""

    def construct(self, x, emb=None, context=None, num_frames=1):
        return super().construct(x)


class InputConv(nn.Cell):
    """The first 3x3 conv (``input_blocks.0.0.weight`` / ``.bias``) with the block-layer signature."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        fan_in = in_channels * 9
        self.weight = Parameter(initializer(HeUniform(math.sqrt(5)), (out_channels, in_channels, 3, 3), ms.float32),
                                name="weight")
        self.bias = Parameter(initializer(Uniform(1.0 / math.sqrt(fan_in)), (out_channels,), ms.float32), name="bias")
        self.conv = ops.Conv2D(out_channels, 3, pad_mode="pad", pad=1)

    def construct(self, x, emb=None, context=None, num_frames=1):
        # bias_add, not a broadcast add (which keeps extra buffers in graph mode on CPU)
        return ops.bias_add(self.conv(x, self.weight.astype(x.dtype)), self.bias.astype(x.dtype))


class TimestepEmbedSequential(nn.SequentialCell):
    """A UNet block: layers called in order with ``(x, emb, context, num_frames)`` (keys ``0``, ``1``, ...)."""

    def construct(self, x, emb, context, num_frames):
        for layer in self.cell_list:
            x = layer(x, emb, context, num_frames)
        return x


class UNetModel(nn.Cell):
    """The DynamiCrafter denoiser.

    ``construct(x, timesteps, context, fs)``:
        x: (b, in_channels, t, h, w) -- noisy latent concatenated with the image latent.
        timesteps: (b,) int. context: (b, 77 + 16*t, context_dim) ([text | per-frame image tokens]),
            or any (b, L, context_dim) that is then shared by every frame.
        fs: (b,) int frame stride / fps (ignored without ``fs_condition``).
    Returns (b, out_channels, t, h, w). h and w must be divisible by 2**(levels-1).
    """

    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        mc = cfg.model_channels
        ted = mc * 4
        self.model_channels = mc
        self.out_channels = cfg.out_channels
        self.fs_condition = cfg.fs_condition
        self.addition_attention = cfg.addition_attention
        self.default_fs = cfg.default_fs
        self.num_levels = len(cfg.channel_mult)
        self.time_embed = nn.SequentialCell([linear(mc, ted), nn.SiLU(), linear(ted, ted)])
        if cfg.fs_condition:
            self.fps_embedding = nn.SequentialCell([linear(mc, ted), nn.SiLU(), linear(ted, ted)])

        def transformers(ch):
            heads, dim_head = cfg.heads_for(ch)
            layers = [DCSpatialTransformer(ch, heads, dim_head, depth=cfg.transformer_depth,
                                           context_dim=cfg.context_dim, use_linear=cfg.use_linear,
                                           image_cross_attention=cfg.image_cross_attention,
                                           image_cross_attention_scale_learnable=cfg.image_cross_attention_scale_learnable)]
            if cfg.temporal_attention:
                layers.append(TemporalTransformer(ch, heads, dim_head, depth=cfg.transformer_depth,
                                                  use_linear=cfg.use_linear))
            return layers

        def res(cin, cout=None):
            return DCResBlock(cin, ted, cout, dropout=cfg.dropout, temporal_conv=cfg.temporal_conv)

        self.input_blocks = nn.CellList([TimestepEmbedSequential([InputConv(cfg.in_channels, mc)])])
        if cfg.addition_attention:
            self.init_attn = TimestepEmbedSequential([
                TemporalTransformer(mc, 8, cfg.num_head_channels, depth=cfg.transformer_depth, use_linear=False)])
        chans = [mc]
        ch, ds = mc, 1
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers = [res(ch, mult * mc)]
                ch = mult * mc
                if ds in cfg.attention_resolutions:
                    layers += transformers(ch)
                self.input_blocks.append(TimestepEmbedSequential(layers))
                chans.append(ch)
            if level != len(cfg.channel_mult) - 1:
                self.input_blocks.append(TimestepEmbedSequential([DCDownsample(ch, cfg.conv_resample)]))
                chans.append(ch)
                ds *= 2
        self.middle_block = TimestepEmbedSequential([res(ch)] + transformers(ch) + [res(ch)])
        self.output_blocks = nn.CellList()
        for level, mult in list(enumerate(cfg.channel_mult))[::-1]:
            for i in range(cfg.num_res_blocks + 1):
                layers = [res(ch + chans.pop(), mc * mult)]
                ch = mc * mult
                if ds in cfg.attention_resolutions:
                    layers += transformers(ch)
                if level and i == cfg.num_res_blocks:
                    layers.append(DCUpsample(ch, cfg.conv_resample))
                    ds //= 2
                self.output_blocks.append(TimestepEmbedSequential(layers))
        self.out = nn.SequentialCell([GroupNorm(32, ch, 1e-5), nn.SiLU(), conv2d(mc, cfg.out_channels, 3, padding=1)])

    @staticmethod
    def _repeat_frames(x, t: int):
        """(b, ...) -> (b*t, ...), each row repeated t times in place (``repeat_interleave``)."""
        shape = x.shape
        y = ops.broadcast_to(x.reshape((shape[0], 1) + shape[1:]), (shape[0], t) + shape[1:])
        return y.reshape((shape[0] * t,) + shape[1:])

    def per_frame_context(self, context, t: int):
        """(b, L, D) -> (b*t, L', D): text repeated per frame, image tokens split per frame when
        ``L == 77 + 16*t`` (the original's rule), else the whole context repeated per frame."""
        b, length, d = context.shape
        if length == TEXT_CONTEXT_LEN + t * IMAGE_TOKENS_PER_FRAME:
            text = self._repeat_frames(context[:, :TEXT_CONTEXT_LEN], t)  # (b*t, 77, D)
            image = context[:, TEXT_CONTEXT_LEN:].reshape(b * t, IMAGE_TOKENS_PER_FRAME, d)  # (b*t, 16, D)
            return ops.concat([text, image], axis=1)
        return self._repeat_frames(context, t)

    def construct(self, x, timesteps, context, fs):
        b, _, t, h, w = x.shape
        dtype = x.dtype
        emb = self.time_embed(timestep_embedding(timesteps, self.model_channels).astype(dtype))  # (b, 4mc)
        if self.fs_condition:
            emb = emb + self.fps_embedding(timestep_embedding(fs, self.model_channels).astype(dtype))
        emb = self._repeat_frames(emb, t)  # (b*t, 4mc)
        context = self.per_frame_context(context.astype(dtype), t)
        hs = []
        hcur = _to_frames(x)  # (b*t, c, h, w)
        first = True
        for block in self.input_blocks:
            hcur = block(hcur, emb, context, t)
            if first and self.addition_attention:
                hcur = self.init_attn(hcur, emb, context, t)
            first = False
            hs.append(hcur)
        hcur = self.middle_block(hcur, emb, context, t)
        skip = len(hs)
        for block in self.output_blocks:
            skip -= 1
            hcur = block(ops.concat([hcur, hs[skip]], axis=1), emb, context, t)
        y = self.out(hcur)
        return _to_video(y, t)  # (b, out, t, h, w)
