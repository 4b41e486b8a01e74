"""Spatial transformer of the inflated UNet (``Transformer3DModel``), applied per frame.

Keys (diffusers 0.11 ``Transformer2DModel``): ``norm``, ``proj_in``, ``transformer_blocks.k.{attn1, attn2,
ff.net.{0.proj,2}, norm1..3}``, ``proj_out``. The cross-attention of every frame of a video attends to
that video's text embedding; instead of repeating the ``(b, L, D)`` context per frame (as the original),
the queries of all frames of a video are attended together against one copy -- every query row sees the
same keys, so the numbers are the same and the key/value projections run once per video.
"""
from __future__ import annotations

from mindspore import nn

from common.nn import BasicTransformerBlock, GroupNorm, conv2d, linear


class FrameTransformerBlock(BasicTransformerBlock):
    """``BasicTransformerBlock`` (self-attn, cross-attn, GEGLU ff) on ``(b*f, h*w, dim)`` tokens."""

    def construct(self, x, context, num_frames: int):
        # x (b*f, h*w, dim); context (b, L, context_dim)
        bf, n, c = x.shape
        x = self.attn1(self.norm1(x)) + x
        q = self.norm2(x).reshape(bf // num_frames, num_frames * n, c)  # (b, f*h*w, dim)
        x = self.attn2(q, context).reshape(bf, n, c) + x
        return self.ff(self.norm3(x)) + x


class Transformer3DModel(nn.Cell):
    """GroupNorm (eps 1e-6) -> proj_in -> transformer blocks over h*w tokens per frame -> proj_out -> + input.

    Args:
        heads: attention heads; head_dim: width per head (inner = heads * head_dim).
        in_channels: feature channels. num_layers: blocks (1). cross_attention_dim: text width.
        norm_num_groups: GroupNorm groups. use_linear_projection: Linear (True) or 1x1-conv (False) projections.
    """

    def __init__(self, heads: int, head_dim: int, in_channels: int, num_layers: int = 1,
                 cross_attention_dim: int = 768, norm_num_groups: int = 32, use_linear_projection: bool = False):
        super().__init__()
        inner = heads * head_dim
        self.use_linear = use_linear_projection
        self.norm = GroupNorm(norm_num_groups, in_channels, eps=1e-6)
        self.proj_in = linear(in_channels, inner) if use_linear_projection else conv2d(in_channels, inner, 1)
        self.transformer_blocks = nn.CellList([
            FrameTransformerBlock(inner, heads, head_dim, context_dim=cross_attention_dim) for _ in range(num_layers)])
        # diffusers 0.11 builds the linear proj_out as Linear(in_channels, inner): only valid when they agree
        self.proj_out = linear(inner, in_channels) if use_linear_projection else conv2d(inner, in_channels, 1)

    def construct(self, x, context, num_frames: int):
        # x (b*f, c, h, w); context (b, L, D)
        bf, c, h, w = x.shape
        t = self.norm(x)
        if not self.use_linear:
            t = self.proj_in(t)
        inner = t.shape[1]
        t = t.reshape(bf, inner, h * w).transpose(0, 2, 1)  # (b*f, h*w, inner)
        if self.use_linear:
            t = self.proj_in(t)
        for block in self.transformer_blocks:
            t = block(t, context, num_frames)
        if self.use_linear:
            t = self.proj_out(t)
        t = t.transpose(0, 2, 1).reshape(bf, t.shape[2], h, w)
        if not self.use_linear:
            t = self.proj_out(t)
        return t + x
