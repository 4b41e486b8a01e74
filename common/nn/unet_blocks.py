"""Blocks of the LDM UNets (``openaimodel`` family) shared by DynamiCrafter, SVD and VideoComposer.

Keys follow the original state dicts:

* ``ResBlock``: ``in_layers.{0: norm, 2: conv}``, ``emb_layers.1``, ``out_layers.{0: norm, 3: conv}``,
  ``skip_connection`` (1x1 conv when channels change).
* ``TemporalConvBlock``: ``conv1.{0,2}``, ``conv2..4.{0,3}`` (the temporal convs after a video ResBlock).
* ``Downsample``: ``op`` (3x3 stride 2); ``Upsample``: nearest x2 then ``conv``.
* ``BasicTransformerBlock``: ``attn1``, ``attn2``, ``ff``, ``norm1..3``; ``SpatialTransformer``: ``norm``,
  ``proj_in``, ``transformer_blocks.N``, ``proj_out``.

Models extend them (temporal convolutions, image cross-attention, video mixing) in their own package.
"""
from __future__ import annotations

from mindspore import nn, ops

from .attention import Attention
from .frames import image_to_tokens, tokens_to_image
from .layers import FeedForward, TemporalConv, conv2d, linear
from .norm import GroupNorm, LayerNorm


def _conv(dims: int, cin: int, cout: int, kernel, padding):
    """2-D conv for ``dims=2``; a (k,1,1) temporal conv for ``dims=3``."""
    if dims == 2:
        return conv2d(cin, cout, kernel, padding=padding)
    if dims == 3:
        return TemporalConv(cin, cout, kernel)
    raise ValueError(f"ResBlock: dims must be 2 or 3, got {dims}")


class ResBlock(nn.Cell):
    """LDM ``ResBlock`` (Ho et al. 2020 residual block with a time embedding); ``construct(x, emb)``.

    Args:
        channels: input channels.
        emb_channels: width of the time embedding.
        out_channels: output channels (default ``channels``).
        dropout: dropout before the last conv (training only).
        dims: 2 (input (N, C, H, W), emb (N, E)) or 3 (input (B, C, T, H, W), temporal (k,1,1) convs,
            emb (B, T, E): one embedding per frame, as SVD's ``time_stack``).
        kernel_size: 3 for ``dims=2``; the temporal k (or (k,1,1)) for ``dims=3``.
        use_scale_shift_norm: FiLM the second norm with the embedding instead of adding it.
        use_conv_skip: 3x3 instead of 1x1 skip conv when channels change.
        norm_eps: GroupNorm eps (LDM: 1e-5). ``groups``: GroupNorm groups (32).
    """

    unet_args = ("emb",)

    def __init__(self, channels: int, emb_channels: int, out_channels: int | None = None, dropout: float = 0.0,
                 dims: int = 2, kernel_size=3, use_scale_shift_norm: bool = False, use_conv_skip: bool = False,
                 norm_eps: float = 1e-5, groups: int = 32):
        super().__init__()
        out_channels = out_channels or channels
        self.dims = dims
        self.use_scale_shift_norm = use_scale_shift_norm
        pad = 1 if dims == 2 else 0
        self.in_layers = nn.SequentialCell([GroupNorm(groups, channels, norm_eps), nn.SiLU(),
                                            _conv(dims, channels, out_channels, kernel_size, pad)])
        self.emb_layers = nn.SequentialCell([nn.SiLU(),
                                             linear(emb_channels, 2 * out_channels if use_scale_shift_norm
                                                    else out_channels)])
        self.out_layers = nn.SequentialCell([GroupNorm(groups, out_channels, norm_eps), nn.SiLU(),
                                             nn.Dropout(p=dropout),
                                             _conv(dims, out_channels, out_channels, kernel_size, pad)])
        if out_channels == channels:
            self.skip_connection = nn.Identity()
        elif dims == 2:
            self.skip_connection = conv2d(channels, out_channels, 3 if use_conv_skip else 1,
                                          padding=1 if use_conv_skip else 0)
        else:
            self.skip_connection = TemporalConv(channels, out_channels, kernel_size if use_conv_skip else 1)

    def construct(self, x, emb):
        h = self.in_layers(x)
        e = self.emb_layers(emb).astype(h.dtype)
        if self.dims == 2:
            e = e.reshape(e.shape[0], e.shape[1], 1, 1)  # (N, C, 1, 1)
        else:
            e = e.transpose(0, 2, 1).reshape(e.shape[0], e.shape[2], e.shape[1], 1, 1)  # (B, C, T, 1, 1)
        if self.use_scale_shift_norm:
            scale, shift = ops.chunk(e, 2, axis=1)
            norm, rest = self.out_layers[0], self.out_layers[1:]
            h = rest(norm(h) * ops.broadcast_to(1 + scale, h.shape) + ops.broadcast_to(shift, h.shape))
        else:
            # explicit broadcast_to: an implicit broadcast add keeps extra buffers in graph mode on CPU
            h = self.out_layers(h + ops.broadcast_to(e, h.shape))
        return self.skip_connection(x) + h


class TemporalConvBlock(nn.Cell):
    """ModelScope-T2V's ``TemporalConvBlock_v2`` (VideoComposer, DynamiCrafter): ``x + conv4(conv3(conv2(conv1(x))))``
    on (B, C, T, H, W), each stage GroupNorm(32, eps 1e-5) over (C/32, T, H, W) -- the frames share the
    statistics --, SiLU, [Dropout,] a (3, 1, 1) temporal conv. Keys ``conv1.{0,2}``, ``conv2..4.{0,3}``.

    Args:
        channels: C. dropout: before the conv of stages 2-4 (training only; the originals use 0.1).
    """

    def __init__(self, channels: int, dropout: float = 0.1):
        super().__init__()

        def stage(drop: bool):
            mid = [nn.Dropout(p=dropout)] if drop else []
            return nn.SequentialCell([GroupNorm(32, channels, 1e-5), nn.SiLU()] + mid
                                     + [TemporalConv(channels, channels, 3)])

        self.conv1 = stage(False)
        self.conv2 = stage(True)
        self.conv3 = stage(True)
        self.conv4 = stage(True)

    def construct(self, x):
        # x (b, c, t, h, w)
        return x + self.conv4(self.conv3(self.conv2(self.conv1(x))))


class Downsample(nn.Cell):
    """Stride-2 3x3 conv (key ``op``), or 2x2 average pooling when ``use_conv`` is False."""

    def __init__(self, channels: int, use_conv: bool = True, out_channels: int | None = None, padding: int = 1):
        super().__init__()
        self.use_conv = use_conv
        if use_conv:
            self.op = conv2d(channels, out_channels or channels, 3, stride=2, padding=padding)
        else:
            self.op = nn.AvgPool2d(kernel_size=2, stride=2)

    def construct(self, x):
        return self.op(x)


def upsample_nearest2x(x):
    """Nearest-neighbour x2 on the last two axes of (N, C, H, W); exactly torch's ``interpolate(scale_factor=2)``."""
    n, c, h, w = x.shape
    x = ops.broadcast_to(x.reshape(n, c, h, 1, w, 1), (n, c, h, 2, w, 2))
    return x.reshape(n, c, h * 2, w * 2)


class Upsample(nn.Cell):
    """Nearest x2 then an optional 3x3 conv (key ``conv``)."""

    def __init__(self, channels: int, use_conv: bool = True, out_channels: int | None = None, padding: int = 1):
        super().__init__()
        self.use_conv = use_conv
        if use_conv:
            self.conv = conv2d(channels, out_channels or channels, 3, padding=padding)

    def construct(self, x):
        x = upsample_nearest2x(x)
        return self.conv(x) if self.use_conv else x


class BasicTransformerBlock(nn.Cell):
    """Pre-LN transformer block: self-attention, cross-attention, GEGLU feed-forward, each residual.

    Args:
        dim: token width. heads / dim_head: attention shape.
        context_dim: width of the cross-attention context (None: attn2 attends to ``x``).
        dropout: attention/ff dropout. gated_ff: GEGLU (True, LDM) or GELU feed-forward.
        disable_self_attn: attn1 attends to the context too (LDM option).
        attn_cls: the attention class for ``attn1``/``attn2`` (a model may pass its own variant,
            e.g. DynamiCrafter's text+image cross-attention); built as ``attn_cls(query_dim, context_dim,
            heads, dim_head, dropout, **attn2_kwargs)`` for attn2.
        attn2_kwargs: extra constructor arguments of attn2 only.
        ff_inner_dim: hidden width of the feed-forward (default 4*dim).
    """

    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: int | None = None, dropout: float = 0.0,
                 gated_ff: bool = True, disable_self_attn: bool = False, attn_cls=Attention,
                 attn2_kwargs: dict | None = None, ff_inner_dim: int | None = None, attn2_self: bool = False):
        super().__init__()
        self.disable_self_attn = disable_self_attn
        self.attn2_self = attn2_self
        self.attn1 = attn_cls(dim, context_dim if disable_self_attn else None, heads, dim_head, dropout)
        self.ff = FeedForward(dim, mult=4, glu=gated_ff, dropout=dropout, inner_dim=ff_inner_dim)
        self.attn2 = attn_cls(dim, None if attn2_self else context_dim, heads, dim_head, dropout,
                              **(attn2_kwargs or {}))
        self.norm1 = LayerNorm(dim)
        self.norm2 = LayerNorm(dim)
        self.norm3 = LayerNorm(dim)

    def construct(self, x, context=None):
        # x (N, L, dim), context (N, Lc, context_dim)
        x = self.attn1(self.norm1(x), context if self.disable_self_attn else None) + x
        x = self.attn2(self.norm2(x), None if self.attn2_self else context) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Cell):
    """LDM ``SpatialTransformer``: GroupNorm, ``proj_in``, transformer blocks over h*w tokens, ``proj_out``, residual.

    The three stages are methods, so a model overrides only the one that differs:
    :meth:`project_in` (norm + ``proj_in`` + pixels to tokens), :meth:`run_blocks` (the transformer blocks)
    and :meth:`project_out` (tokens to pixels + ``proj_out`` + residual). ``construct(x, context)`` chains them.

    Args:
        in_channels: channels of the feature map. heads / dim_head: attention shape (inner = heads*dim_head).
        depth: number of blocks. context_dim: cross-attention width.
        use_linear: Linear projections (True) or 1x1 convs (False).
        norm_eps: GroupNorm eps (1e-6). groups: GroupNorm groups (32).
        block_kwargs: extra block arguments. block_cls: the block class (:class:`BasicTransformerBlock`),
            built as ``block_cls(inner, heads, dim_head, context_dim=..., dropout=..., **block_kwargs)``.
    """

    unet_args = ("context",)

    def __init__(self, in_channels: int, heads: int, dim_head: int, depth: int = 1, context_dim: int | None = None,
                 dropout: float = 0.0, use_linear: bool = False, norm_eps: float = 1e-6, groups: int = 32,
                 block_kwargs: dict | None = None, block_cls=None):
        super().__init__()
        inner = heads * dim_head
        block_cls = block_cls or BasicTransformerBlock
        self.use_linear = use_linear
        self.norm = GroupNorm(groups, in_channels, norm_eps)
        self.proj_in = linear(in_channels, inner) if use_linear else conv2d(in_channels, inner, 1)
        self.transformer_blocks = nn.CellList([
            block_cls(inner, heads, dim_head, context_dim=context_dim, dropout=dropout, **(block_kwargs or {}))
            for _ in range(depth)])
        self.proj_out = linear(inner, in_channels) if use_linear else conv2d(inner, in_channels, 1)

    def project_in(self, x):
        """(N, C, H, W) -> (N, H*W, inner): GroupNorm, ``proj_in`` (1x1 conv before / Linear after the fold)."""
        x = self.norm(x)
        if not self.use_linear:
            x = self.proj_in(x)
        x = image_to_tokens(x)  # (N, h*w, inner)
        if self.use_linear:
            x = self.proj_in(x)
        return x

    def run_blocks(self, x, context=None):
        """(N, L, inner) through every transformer block with the cross-attention ``context``."""
        for block in self.transformer_blocks:
            x = block(x, context)
        return x

    def project_out(self, x, x_in):
        """(N, H*W, inner) -> (N, C, H, W): ``proj_out``, back to pixels, plus the input ``x_in`` (N, C, H, W)."""
        if self.use_linear:
            x = self.proj_out(x)
        x = tokens_to_image(x, x_in.shape[2], x_in.shape[3])
        if not self.use_linear:
            x = self.proj_out(x)
        return x + x_in

    def construct(self, x, context=None):
        # x (N, C, H, W), context (N, L, context_dim)
        return self.project_out(self.run_blocks(self.project_in(x), context), x)
