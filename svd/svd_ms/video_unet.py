"""SVD's VideoUNet (Blattmann et al. 2023, "Stable Video Diffusion"; the VideoLDM layout of
"Align your Latents", 2023): an LDM UNet whose every ResBlock and SpatialTransformer is followed
by a temporal counterpart, blended with a learned per-layer mix factor.

Parameter names are the original state-dict names under ``model.diffusion_model.``:
``time_embed.{0,2}``, ``label_emb.0.{0,2}``, ``input_blocks.N.M``, ``middle_block.M``,
``output_blocks.N.M``, ``out.{0,2}``; a VideoResBlock adds ``time_stack.*`` (3-D ResBlock) and
``time_mixer.mix_factor``; a SpatialVideoTransformer adds ``time_stack.N.*`` (VideoTransformerBlock),
``time_pos_embed.{0,2}`` and ``time_mixer.mix_factor``.

Video tensors are frame-major flattened, ``(B*T, C, h, w)`` with index ``b*T + t``;
``image_only_indicator`` is ``(B, T)`` (1 = treat this frame as an image: temporal path off).
"""
from __future__ import annotations

import math

import mindspore as ms
from mindspore import Parameter, nn, ops
from mindspore.common.initializer import HeUniform, Uniform

from common.nn import (
    Attention,
    Downsample,
    FeedForward,
    GroupNorm,
    LayerNorm,
    ResBlock,
    SpatialTransformer,
    Upsample,
    conv2d,
    linear,
    timestep_embedding,
)

from .config import VideoUNetConfig


class AlphaBlender(nn.Cell):
    """Blend a spatial and a temporal branch: ``alpha * x_spatial + (1 - alpha) * x_temporal``.

    Args:
        alpha: initial ``mix_factor`` (the logit for the learned strategies).
        merge_strategy: ``"fixed"`` (alpha = mix_factor, not trained), ``"learned"``
            (alpha = sigmoid(mix_factor)) or ``"learned_with_images"`` (as learned, but alpha = 1
            for frames whose ``image_only_indicator`` is nonzero).
        layout: ``"video"`` for (B, C, T, h, w) inputs, ``"tokens"`` for (B*T, L, C) inputs.
    """

    def __init__(self, alpha: float = 0.5, merge_strategy: str = "learned_with_images", layout: str = "tokens"):
        super().__init__()
        self.merge_strategy = merge_strategy
        self.layout = layout
        self.mix_factor = Parameter(ms.Tensor([alpha], ms.float32), name="mix_factor",
                                    requires_grad=merge_strategy != "fixed")

    def get_alpha(self, image_only_indicator):
        """(B, T) indicator -> alpha broadcastable to the layout: (B, 1, T, 1, 1) or (B*T, 1, 1)."""
        b, t = image_only_indicator.shape
        if self.merge_strategy == "fixed":
            a = ops.broadcast_to(self.mix_factor.reshape(1, 1), (b, t))
        else:
            a = ops.broadcast_to(ops.sigmoid(self.mix_factor).reshape(1, 1), (b, t))
            if self.merge_strategy == "learned_with_images":
                a = ops.where(image_only_indicator != 0, ops.ones_like(a), a)
        if self.layout == "video":
            return a.reshape(b, 1, t, 1, 1)
        return a.reshape(b * t, 1, 1)

    def construct(self, x_spatial, x_temporal, image_only_indicator):
        alpha = self.get_alpha(image_only_indicator).astype(x_spatial.dtype)
        return alpha * x_spatial + (1.0 - alpha) * x_temporal


class VideoResBlock(ResBlock):
    """Spatial LDM ResBlock, then a temporal ResBlock (``time_stack``: (k,1,1) convs, per-frame
    time embedding), blended by ``time_mixer`` (AlphaBlender, alpha on the spatial output).

    Args: channels / emb_channels / out_channels / dropout / use_scale_shift_norm as ResBlock;
    video_kernel_size: temporal kernel k; merge_strategy / merge_factor: AlphaBlender settings.
    """

    def __init__(self, channels: int, emb_channels: int, out_channels: int | None = None, dropout: float = 0.0,
                 video_kernel_size: int = 3, merge_strategy: str = "fixed", merge_factor: float = 0.5,
                 use_scale_shift_norm: bool = False):
        super().__init__(channels, emb_channels, out_channels, dropout=dropout,
                         use_scale_shift_norm=use_scale_shift_norm)
        out = out_channels or channels
        self.time_stack = ResBlock(out, emb_channels, out, dropout=dropout, dims=3, kernel_size=video_kernel_size)
        self.time_mixer = AlphaBlender(merge_factor, merge_strategy, layout="video")

    def construct(self, x, emb, context=None, image_only_indicator=None):
        # x (b*t, c, h, w), emb (b*t, E), image_only_indicator (b, t)
        t = image_only_indicator.shape[1]
        x = super().construct(x, emb)
        bt, c, h, w = x.shape
        b = bt // t
        x = x.reshape(b, t, c, h, w).transpose(0, 2, 1, 3, 4)  # (b, c, t, h, w)
        x_t = self.time_stack(x, emb.reshape(b, t, -1))
        x = self.time_mixer(x, x_t, image_only_indicator)
        return x.transpose(0, 2, 1, 3, 4).reshape(bt, c, h, w)


class VideoTransformerBlock(nn.Cell):
    """Temporal transformer block: attends over the T frames at every spatial position.

    ``norm_in``/``ff_in`` (GEGLU feed-forward, residual when widths agree), self-attention
    ``attn1`` (``norm1``), cross-attention ``attn2`` on the context (``norm2``; absent when
    ``disable_temporal_crossattention``), feed-forward ``ff`` (``norm3``).

    Args:
        dim: token width. heads / dim_head: attention shape. context_dim: cross-attention width
        (None: attn2 attends to the tokens). ff_in: add the input feed-forward (always on when
        ``inner_dim`` is given, as in the original). inner_dim: width inside the block (default dim).
        disable_self_attn: attn1 attends to the context. switch_temporal_ca_to_sa: attn2 is a
        self-attention.
    """

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float = 0.0, context_dim: int | None = None,
                 gated_ff: bool = True, ff_in: bool = False, inner_dim: int | None = None,
                 disable_self_attn: bool = False, disable_temporal_crossattention: bool = False,
                 switch_temporal_ca_to_sa: bool = False):
        super().__init__()
        self.has_ff_in = ff_in or inner_dim is not None
        inner_dim = inner_dim if inner_dim is not None else dim
        if heads * dim_head != inner_dim:
            raise ValueError(f"VideoTransformerBlock: heads*dim_head = {heads * dim_head} != inner_dim {inner_dim}")
        self.is_res = inner_dim == dim
        if self.has_ff_in:
            self.norm_in = LayerNorm(dim)
            self.ff_in = FeedForward(dim, dim_out=inner_dim, glu=gated_ff, dropout=dropout)
        self.disable_self_attn = disable_self_attn
        self.attn1 = Attention(inner_dim, context_dim if disable_self_attn else None, heads, dim_head, dropout)
        self.ff = FeedForward(inner_dim, dim_out=dim, glu=gated_ff, dropout=dropout)
        self.has_attn2 = not disable_temporal_crossattention
        self.ca_to_sa = switch_temporal_ca_to_sa
        if self.has_attn2:
            self.norm2 = LayerNorm(inner_dim)
            self.attn2 = Attention(inner_dim, None if switch_temporal_ca_to_sa else context_dim, heads, dim_head,
                                   dropout)
        self.norm1 = LayerNorm(inner_dim)
        self.norm3 = LayerNorm(inner_dim)

    def construct(self, x, context, num_frames: int):
        # x (b*t, s, c) -> (b*s, t, c); context (b*s, L, D) or None
        bt, s, c = x.shape
        b = bt // num_frames
        x = x.reshape(b, num_frames, s, c).transpose(0, 2, 1, 3).reshape(b * s, num_frames, c)
        if self.has_ff_in:
            h = self.ff_in(self.norm_in(x))
            x = h + x if self.is_res else h
        x = self.attn1(self.norm1(x), context if self.disable_self_attn else None) + x
        if self.has_attn2:
            x = self.attn2(self.norm2(x), None if self.ca_to_sa else context) + x
        h = self.ff(self.norm3(x))
        x = h + x if self.is_res else h
        c2 = x.shape[-1]
        return x.reshape(b, s, num_frames, c2).transpose(0, 2, 1, 3).reshape(bt, s, c2)


class SpatialVideoTransformer(SpatialTransformer):
    """SpatialTransformer whose every block is followed by a VideoTransformerBlock.

    The temporal branch sees ``x + time_pos_embed(timestep_embedding(frame index))`` and, with
    ``use_spatial_context``, cross-attends to the first frame's context of each video
    (``context[::T]``, repeated over h*w). Spatial and temporal outputs are blended by
    ``time_mixer`` (alpha on the spatial branch), then ``proj_out`` and the residual.

    Args: in_channels / heads / dim_head / depth / context_dim / dropout / use_linear as
    SpatialTransformer (GroupNorm eps 1e-6); time_context_dim: temporal cross-attention width
    (context_dim with use_spatial_context); ff_in: VideoTransformerBlock input feed-forward;
    merge_strategy / merge_factor: AlphaBlender; max_time_embed_period: frame-index embedding period.
    """

    def __init__(self, in_channels: int, heads: int, dim_head: int, depth: int = 1, context_dim: int | None = None,
                 dropout: float = 0.0, use_linear: bool = False, use_spatial_context: bool = False,
                 time_context_dim: int | None = None, ff_in: bool = False, merge_strategy: str = "fixed",
                 merge_factor: float = 0.5, disable_self_attn: bool = False,
                 disable_temporal_crossattention: bool = False, max_time_embed_period: int = 10000):
        super().__init__(in_channels, heads, dim_head, depth=depth, context_dim=context_dim, dropout=dropout,
                         use_linear=use_linear, norm_eps=1e-6,
                         block_kwargs={"disable_self_attn": disable_self_attn})
        inner = heads * dim_head
        if use_spatial_context:
            time_context_dim = context_dim
        self.use_spatial_context = use_spatial_context
        self.in_channels = in_channels
        self.max_time_embed_period = max_time_embed_period
        self.time_stack = nn.CellList([
            VideoTransformerBlock(inner, heads, dim_head, dropout=dropout, context_dim=time_context_dim,
                                  ff_in=ff_in, inner_dim=inner, disable_self_attn=disable_self_attn,
                                  disable_temporal_crossattention=disable_temporal_crossattention)
            for _ in range(depth)])
        self.time_pos_embed = nn.SequentialCell([linear(in_channels, in_channels * 4), nn.SiLU(),
                                                 linear(in_channels * 4, in_channels)])
        self.time_mixer = AlphaBlender(merge_factor, merge_strategy, layout="tokens")

    def construct(self, x, emb=None, context=None, image_only_indicator=None):
        # x (b*t, c, h, w), context (b*t, L, D), image_only_indicator (b, t)
        t = image_only_indicator.shape[1]
        bt, c, h, w = x.shape
        b = bt // t
        time_context = None
        if self.use_spatial_context:
            first = context.reshape(b, t, context.shape[1], context.shape[2])[:, 0]  # (b, L, D)
            time_context = ops.broadcast_to(first.reshape(b, 1, first.shape[1], first.shape[2]),
                                            (b, h * w, first.shape[1], first.shape[2]))
            time_context = time_context.reshape(b * h * w, first.shape[1], first.shape[2])
        x_in = x
        x = self.norm(x)
        if not self.use_linear:
            x = self.proj_in(x)
        x = x.reshape(bt, x.shape[1], h * w).transpose(0, 2, 1)  # (b*t, h*w, inner)
        if self.use_linear:
            x = self.proj_in(x)
        frames = ops.tile(ops.arange(t).astype(ms.float32), (b,))  # (b*t,)
        pos = self.time_pos_embed(timestep_embedding(frames, self.in_channels,
                                                     max_period=self.max_time_embed_period))
        pos = pos.reshape(bt, 1, -1).astype(x.dtype)  # (b*t, 1, c)
        for block, mix_block in zip(self.transformer_blocks, self.time_stack):
            x = block(x, context)
            x_mix = mix_block(x + pos, time_context, t)
            x = self.time_mixer(x, x_mix, image_only_indicator)
        if self.use_linear:
            x = self.proj_out(x)
        x = x.transpose(0, 2, 1).reshape(bt, x.shape[2], h, w)
        if not self.use_linear:
            x = self.proj_out(x)
        return x + x_in


class _Conv2dIn(nn.Conv2d):
    """The UNet's input 3x3 conv (``input_blocks.0.0``), with the block call signature."""

    def __init__(self, cin: int, cout: int):
        fan_in = cin * 9
        super().__init__(cin, cout, 3, pad_mode="pad", padding=1, has_bias=True,
                         weight_init=HeUniform(math.sqrt(5)), bias_init=Uniform(1.0 / math.sqrt(fan_in)))

    def construct(self, x, emb=None, context=None, image_only_indicator=None):
        return super().construct(x)


class _Down(Downsample):
    """Downsample with the block call signature (key ``op``)."""

    def construct(self, x, emb=None, context=None, image_only_indicator=None):
        return self.op(x)


class _Up(Upsample):
    """Upsample with the block call signature (key ``conv``)."""

    def construct(self, x, emb=None, context=None, image_only_indicator=None):
        return super().construct(x)


class TimestepEmbedSequential(nn.SequentialCell):
    """The layers of one UNet block (keys ``0``, ``1``, ...), each called as
    ``layer(x, emb, context, image_only_indicator)``."""

    def construct(self, x, emb, context, image_only_indicator):
        for layer in self.cell_list:
            x = layer(x, emb, context, image_only_indicator)
        return x


class VideoUNet(nn.Cell):
    """The SVD denoising network (``sgm.modules.diffusionmodules.video_model.VideoUNet``).

    Built from a :class:`VideoUNetConfig`; every size comes from it. ``construct(x, timesteps,
    context, y, image_only_indicator, num_video_frames=None)``:

    * x: (B*T, in_channels, h, w), frame-major (the 4 noisy + 4 concat channels for SVD).
    * timesteps: (B*T,) the EDM ``c_noise = 0.25 ln(sigma)`` (may differ per frame).
    * context: (B*T, L, context_dim) cross-attention tokens (SVD: the CLIP image embedding, L = 1).
    * y: (B*T, adm_in_channels) the ``vector`` conditioning (fps_id, motion_bucket_id, cond_aug).
    * image_only_indicator: (B, T), 1 where a frame is treated as an independent image. T is read
      from its shape; ``num_video_frames``, when given, must equal it.

    Returns (B*T, out_channels, h, w).

    ``recompute_blocks`` (False): gradient checkpointing for training. When True, every input,
    middle and output block is run under :func:`mindspore.recompute`: its activations are not kept
    for the backward pass but computed again there, one block at a time (same gradients; the
    forward pass is run about twice). Set it with :meth:`set_recompute`.
    """

    def __init__(self, cfg: VideoUNetConfig):
        super().__init__()
        self.cfg = cfg
        self.recompute_blocks = False
        mc = cfg.model_channels
        ted = mc * 4
        self.model_channels = mc
        self.time_embed = nn.SequentialCell([linear(mc, ted), nn.SiLU(), linear(ted, ted)])
        self.num_classes = cfg.num_classes
        if cfg.num_classes is not None:
            if cfg.num_classes != "sequential":
                raise ValueError(f"VideoUNet: num_classes={cfg.num_classes!r} is not supported (SVD: 'sequential')")
            if cfg.adm_in_channels is None:
                raise ValueError("VideoUNet: num_classes='sequential' needs adm_in_channels")
            self.label_emb = nn.SequentialCell([nn.SequentialCell([linear(cfg.adm_in_channels, ted), nn.SiLU(),
                                                                   linear(ted, ted)])])

        def res(ch, out):
            return VideoResBlock(ch, ted, out, dropout=cfg.dropout, video_kernel_size=cfg.video_kernel_size,
                                 merge_strategy=cfg.merge_strategy, merge_factor=cfg.merge_factor,
                                 use_scale_shift_norm=cfg.use_scale_shift_norm)

        def attn(ch, depth):
            heads, dim_head = cfg.heads_at(ch)
            return SpatialVideoTransformer(
                ch, heads, dim_head, depth=depth, context_dim=cfg.context_dim, dropout=cfg.dropout,
                use_linear=cfg.use_linear_in_transformer, use_spatial_context=cfg.use_spatial_context,
                time_context_dim=cfg.time_context_dim, ff_in=cfg.extra_ff_mix_layer,
                merge_strategy=cfg.merge_strategy, merge_factor=cfg.merge_factor,
                disable_temporal_crossattention=cfg.disable_temporal_crossattention,
                max_time_embed_period=cfg.max_ddpm_temb_period)

        if cfg.resblock_updown:
            raise ValueError("VideoUNet: resblock_updown=True is not supported (SVD uses conv resampling)")
        blocks = [TimestepEmbedSequential([_Conv2dIn(cfg.in_channels, mc)])]
        chans = [mc]
        ch, ds = mc, 1
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers = [res(ch, mult * mc)]
                ch = mult * mc
                if ds in cfg.attention_resolutions:
                    layers.append(attn(ch, cfg.transformer_depth[level]))
                blocks.append(TimestepEmbedSequential(layers))
                chans.append(ch)
            if level != len(cfg.channel_mult) - 1:
                ds *= 2
                blocks.append(TimestepEmbedSequential([_Down(ch, cfg.conv_resample, ch)]))
                chans.append(ch)
        self.input_blocks = nn.CellList(blocks)
        self.middle_block = TimestepEmbedSequential([res(ch, None), attn(ch, cfg.transformer_depth_middle),
                                                     res(ch, None)])
        out_blocks = []
        for level, mult in list(enumerate(cfg.channel_mult))[::-1]:
            for i in range(cfg.num_res_blocks + 1):
                ich = chans.pop()
                layers = [res(ch + ich, mc * mult)]
                ch = mc * mult
                if ds in cfg.attention_resolutions:
                    layers.append(attn(ch, cfg.transformer_depth[level]))
                if level and i == cfg.num_res_blocks:
                    ds //= 2
                    layers.append(_Up(ch, cfg.conv_resample, ch))
                out_blocks.append(TimestepEmbedSequential(layers))
        self.output_blocks = nn.CellList(out_blocks)
        self.out = nn.SequentialCell([GroupNorm(32, ch, 1e-5), nn.SiLU(),
                                      conv2d(mc, cfg.out_channels, 3, padding=1)])

    def set_recompute(self, enabled: bool = True) -> VideoUNet:
        """Turn gradient checkpointing of the UNet blocks on or off (see the class doc)."""
        self.recompute_blocks = bool(enabled)
        return self

    def _block(self, block, h, emb, context, image_only_indicator):
        if self.recompute_blocks:
            return ms.recompute(block, h, emb, context, image_only_indicator)
        return block(h, emb, context, image_only_indicator)

    def construct(self, x, timesteps, context, y, image_only_indicator, num_video_frames=None):
        if num_video_frames is not None and num_video_frames != image_only_indicator.shape[1]:
            raise ValueError("VideoUNet: num_video_frames differs from image_only_indicator.shape[1]")
        emb = self.time_embed(timestep_embedding(timesteps, self.model_channels).astype(x.dtype))
        if self.num_classes is not None:
            emb = emb + self.label_emb(y.astype(x.dtype))
        hs = []
        h = x
        for block in self.input_blocks:
            h = self._block(block, h, emb, context, image_only_indicator)
            hs.append(h)
        h = self._block(self.middle_block, h, emb, context, image_only_indicator)
        skip = len(hs) - 1
        for block in self.output_blocks:
            h = ops.concat([h, hs[skip]], axis=1)
            skip -= 1
            h = self._block(block, h, emb, context, image_only_indicator)
        return self.out(h)


def temporal_parameter_names(unet: VideoUNet) -> list[str]:
    """Names of the UNet's temporal parameters (what ``temporal_only`` fine-tuning trains):
    ``time_stack``, ``time_mixer`` and ``time_pos_embed`` of every video block."""
    keys = (".time_stack.", ".time_mixer.", ".time_pos_embed.")
    return [p.name for p in unet.get_parameters() if any(k in "." + p.name for k in keys)]
