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

import mindspore as ms
from mindspore import Parameter, nn, ops

from common.nn import (
    Attention,
    FeedForward,
    LayerNorm,
    ResBlock,
    SpatialTransformer,
    UNetSkeleton,
    batch_to_frames,
    frames_to_batch,
    linear,
    repeat_interleave,
    space_to_time_tokens,
    time_to_space_tokens,
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
    ``construct(x, emb, image_only_indicator)``.
    """

    unet_args = ("emb", "extra")

    def __init__(self, channels: int, emb_channels: int, out_channels: int | None = None, dropout: float = 0.0,
                 video_kernel_size: int = 3, merge_strategy: str = "fixed", merge_factor: float = 0.5,
                 use_scale_shift_norm: bool = False):
        super().__init__(channels, emb_channels, out_channels, dropout=dropout,
                         use_scale_shift_norm=use_scale_shift_norm)
        out = out_channels or channels
        self.time_stack = ResBlock(out, emb_channels, out, dropout=dropout, dims=3, kernel_size=video_kernel_size)
        self.time_mixer = AlphaBlender(merge_factor, merge_strategy, layout="video")

    def construct(self, x, emb, image_only_indicator):
        # x (b*t, c, h, w), emb (b*t, E), image_only_indicator (b, t)
        b, t = image_only_indicator.shape
        x = batch_to_frames(super().construct(x, emb), t)  # (b, c, t, h, w)
        x_t = self.time_stack(x, emb.reshape(b, t, -1))
        return frames_to_batch(self.time_mixer(x, x_t, image_only_indicator))


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
        s = x.shape[1]
        x = space_to_time_tokens(x, num_frames)
        if self.has_ff_in:
            h = self.ff_in(self.norm_in(x))
            x = h + x if self.is_res else h
        x = self.attn1(self.norm1(x), context if self.disable_self_attn else None) + x
        if self.has_attn2:
            x = self.attn2(self.norm2(x), None if self.ca_to_sa else context) + x
        h = self.ff(self.norm3(x))
        x = h + x if self.is_res else h
        return time_to_space_tokens(x, s)  # (b*t, s, c)


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
    ``construct(x, context, image_only_indicator)``; :meth:`run_blocks` is where it differs from the
    SpatialTransformer it extends.
    """

    unet_args = ("context", "extra")

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

    def run_blocks(self, x, context=None, time_context=None, pos=None, image_only_indicator=None):
        """(b*t, h*w, inner) through every spatial block, each followed by its time-mixing block on
        ``x + pos`` (``time_context`` for its cross-attention) and the ``time_mixer`` blend."""
        t = image_only_indicator.shape[1]
        for block, mix_block in zip(self.transformer_blocks, self.time_stack):
            x = block(x, context)
            x_mix = mix_block(x + pos, time_context, t)
            x = self.time_mixer(x, x_mix, image_only_indicator)
        return x

    def construct(self, x, context, image_only_indicator):
        # x (b*t, c, h, w), context (b*t, L, D), image_only_indicator (b, t)
        b, t = image_only_indicator.shape
        bt, _, h, w = x.shape
        time_context = None
        if self.use_spatial_context:
            first = context.reshape(b, t, context.shape[1], context.shape[2])[:, 0]  # (b, L, D)
            time_context = repeat_interleave(first, h * w)  # (b*h*w, L, D)
        tokens = self.project_in(x)  # (b*t, h*w, inner)
        frames = ops.tile(ops.arange(t).astype(ms.float32), (b,))  # (b*t,)
        pos = self.time_pos_embed(timestep_embedding(frames, self.in_channels,
                                                     max_period=self.max_time_embed_period))
        pos = pos.reshape(bt, 1, -1).astype(tokens.dtype)  # (b*t, 1, c)
        tokens = self.run_blocks(tokens, context, time_context, pos, image_only_indicator)
        return self.project_out(tokens, x)


class VideoUNet(UNetSkeleton):
    """The SVD denoising network (``sgm.modules.diffusionmodules.video_model.VideoUNet``):
    :class:`common.nn.UNetSkeleton` with VideoResBlocks and SpatialVideoTransformers.

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
        mc = cfg.model_channels
        ted = mc * 4
        extra = None
        if cfg.num_classes is not None:
            if cfg.num_classes != "sequential":
                raise ValueError(f"VideoUNet: num_classes={cfg.num_classes!r} is not supported (SVD: 'sequential')")
            if cfg.adm_in_channels is None:
                raise ValueError("VideoUNet: num_classes='sequential' needs adm_in_channels")
            extra = {"label_emb": lambda: nn.SequentialCell([nn.SequentialCell([
                linear(cfg.adm_in_channels, ted), nn.SiLU(), linear(ted, ted)])])}
        if cfg.resblock_updown:
            raise ValueError("VideoUNet: resblock_updown=True is not supported (SVD uses conv resampling)")

        def res(cin, cout):
            return VideoResBlock(cin, ted, cout, dropout=cfg.dropout, video_kernel_size=cfg.video_kernel_size,
                                 merge_strategy=cfg.merge_strategy, merge_factor=cfg.merge_factor,
                                 use_scale_shift_norm=cfg.use_scale_shift_norm)

        def attn(ch, heads, dim_head, depth):
            return SpatialVideoTransformer(
                ch, heads, dim_head, depth=depth, context_dim=cfg.context_dim, dropout=cfg.dropout,
                use_linear=cfg.use_linear_in_transformer, use_spatial_context=cfg.use_spatial_context,
                time_context_dim=cfg.time_context_dim, ff_in=cfg.extra_ff_mix_layer,
                merge_strategy=cfg.merge_strategy, merge_factor=cfg.merge_factor,
                disable_temporal_crossattention=cfg.disable_temporal_crossattention,
                max_time_embed_period=cfg.max_ddpm_temb_period)

        super().__init__(in_channels=cfg.in_channels, model_channels=mc, out_channels=cfg.out_channels,
                         channel_mult=cfg.channel_mult, num_res_blocks=cfg.num_res_blocks,
                         attention_resolutions=cfg.attention_resolutions, res_block=res, attention=attn,
                         num_heads=cfg.num_heads, num_head_channels=cfg.num_head_channels,
                         transformer_depth=cfg.transformer_depth,
                         transformer_depth_middle=cfg.transformer_depth_middle, conv_resample=cfg.conv_resample,
                         extra_embeddings=extra)
        self.cfg = cfg
        self.num_classes = cfg.num_classes

    def construct(self, x, timesteps, context, y, image_only_indicator, num_video_frames=None):
        if num_video_frames is not None and num_video_frames != image_only_indicator.shape[1]:
            raise ValueError("VideoUNet: num_video_frames differs from image_only_indicator.shape[1]")
        emb = self.embed_time(timesteps, x.dtype)  # (b*t, 4mc)
        if self.num_classes is not None:
            emb = emb + self.label_emb(y.astype(x.dtype))
        return self.run_blocks(x, emb, context, image_only_indicator)


def temporal_parameter_names(unet: VideoUNet) -> list[str]:
    """Names of the UNet's temporal parameters (what ``temporal_only`` fine-tuning trains):
    ``time_stack``, ``time_mixer`` and ``time_pos_embed`` of every video block."""
    keys = (".time_stack.", ".time_mixer.", ".time_pos_embed.")
    return [p.name for p in unet.get_parameters() if any(k in "." + p.name for k in keys)]
