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
    ResBlock,
    TemporalConvBlock,
    TimestepEmbedSequential,
    UNetSkeleton,
    batch_to_frames,
    frames_to_batch,
    linear,
    repeat_interleave,
    timestep_embedding,
)

from .attention import TEXT_CONTEXT_LEN, DCSpatialTransformer, TemporalTransformer
from .config import UNetConfig

#: image tokens per frame that the UNet recognises in the context (hard-coded 16 in the original).
IMAGE_TOKENS_PER_FRAME = 16


class DCResBlock(ResBlock):
    """LDM ResBlock on (b*t, c, h, w) with a per-frame embedding (b*t, E), then the TemporalConvBlock
    (key ``temopral_conv``, as spelled in the original) over the frames of each video.
    ``construct(x, emb, num_frames)``."""

    unet_args = ("emb", "extra")

    def __init__(self, channels: int, emb_channels: int, out_channels: int | None = None, dropout: float = 0.0,
                 temporal_conv: bool = True):
        super().__init__(channels, emb_channels, out_channels, dropout=dropout, dims=2)
        self.use_temporal_conv = temporal_conv
        if temporal_conv:
            self.temopral_conv = TemporalConvBlock(out_channels or channels, dropout=0.1)

    def construct(self, x, emb, num_frames: int):
        h = super().construct(x, emb)
        if self.use_temporal_conv:
            h = frames_to_batch(self.temopral_conv(batch_to_frames(h, num_frames)))
        return h


class InputConv(nn.Cell):
    """The first 3x3 conv (``input_blocks.0.0.weight`` / ``.bias``), weights cast to the input dtype."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        fan_in = in_channels * 9
        self.weight = Parameter(initializer(HeUniform(math.sqrt(5)), (out_channels, in_channels, 3, 3), ms.float32),
                                name="weight")
        self.bias = Parameter(initializer(Uniform(1.0 / math.sqrt(fan_in)), (out_channels,), ms.float32), name="bias")
        self.conv = ops.Conv2D(out_channels, 3, pad_mode="pad", pad=1)

    def construct(self, x):
        # bias_add, not a broadcast add (which keeps extra buffers in graph mode on CPU)
        return ops.bias_add(self.conv(x, self.weight.astype(x.dtype)), self.bias.astype(x.dtype))


class UNetModel(UNetSkeleton):
    """The DynamiCrafter denoiser: :class:`common.nn.UNetSkeleton` with DynamiCrafter's blocks.

    ``construct(x, timesteps, context, fs)``:
        x: (b, in_channels, t, h, w) -- noisy latent concatenated with the image latent.
        timesteps: (b,) int. context: (b, 77 + 16*t, context_dim) ([text | per-frame image tokens]),
            or any (b, L, context_dim) that is then shared by every frame.
        fs: (b,) int frame stride / fps (ignored without ``fs_condition``).
    Returns (b, out_channels, t, h, w). h and w must be divisible by 2**(levels-1).
    """

    def __init__(self, cfg: UNetConfig):
        mc = cfg.model_channels
        ted = mc * 4

        def res(cin, cout):
            return DCResBlock(cin, ted, cout, dropout=cfg.dropout, temporal_conv=cfg.temporal_conv)

        def spatial(ch, heads, dim_head, depth):
            return DCSpatialTransformer(ch, heads, dim_head, depth=depth, context_dim=cfg.context_dim,
                                        use_linear=cfg.use_linear, image_cross_attention=cfg.image_cross_attention,
                                        image_cross_attention_scale_learnable=cfg.image_cross_attention_scale_learnable)

        def temporal(ch, heads, dim_head, depth):
            return TemporalTransformer(ch, heads, dim_head, depth=depth, use_linear=cfg.use_linear)

        def fps_embedding():
            return nn.SequentialCell([linear(mc, ted), nn.SiLU(), linear(ted, ted)])

        def init_attn():
            return TimestepEmbedSequential([
                TemporalTransformer(mc, 8, cfg.num_head_channels, depth=cfg.transformer_depth, use_linear=False)])

        super().__init__(in_channels=cfg.in_channels, model_channels=mc, out_channels=cfg.out_channels,
                         channel_mult=cfg.channel_mult, num_res_blocks=cfg.num_res_blocks,
                         attention_resolutions=cfg.attention_resolutions, res_block=res, attention=spatial,
                         temporal=temporal if cfg.temporal_attention else None, num_heads=cfg.num_heads,
                         num_head_channels=cfg.num_head_channels, transformer_depth=cfg.transformer_depth,
                         input_layers=lambda cin, cout: [InputConv(cin, cout)], conv_resample=cfg.conv_resample,
                         extra_embeddings={"fps_embedding": fps_embedding} if cfg.fs_condition else None,
                         after_input_conv=("init_attn", init_attn) if cfg.addition_attention else None)
        self.cfg = cfg
        self.out_channels = cfg.out_channels
        self.fs_condition = cfg.fs_condition
        self.addition_attention = cfg.addition_attention
        self.default_fs = cfg.default_fs
        self.num_levels = len(cfg.channel_mult)

    def per_frame_context(self, context, t: int):
        """(b, L, D) -> (b*t, L', D): text repeated per frame, image tokens split per frame when
        ``L == 77 + 16*t`` (the original's rule), else the whole context repeated per frame."""
        b, length, d = context.shape
        if length == TEXT_CONTEXT_LEN + t * IMAGE_TOKENS_PER_FRAME:
            text = repeat_interleave(context[:, :TEXT_CONTEXT_LEN], t)  # (b*t, 77, D)
            image = context[:, TEXT_CONTEXT_LEN:].reshape(b * t, IMAGE_TOKENS_PER_FRAME, d)  # (b*t, 16, D)
            return ops.concat([text, image], axis=1)
        return repeat_interleave(context, t)

    def construct(self, x, timesteps, context, fs):
        t = x.shape[2]
        dtype = x.dtype
        emb = self.embed_time(timesteps, dtype)  # (b, 4mc)
        if self.fs_condition:
            emb = emb + self.fps_embedding(timestep_embedding(fs, self.model_channels).astype(dtype))
        emb = repeat_interleave(emb, t)  # (b*t, 4mc)
        context = self.per_frame_context(context.astype(dtype), t)
        y = self.run_blocks(frames_to_batch(x), emb, context, t)  # (b*t, out, h, w)
        return batch_to_frames(y, t)  # (b, out, t, h, w)
