"""Spatial transformer of the inflated UNet (``Transformer3DModel``), applied per frame.

Keys (diffusers 0.11 ``Transformer2DModel``): ``norm``, ``proj_in``, ``transformer_blocks.k.{attn1, attn2,
ff.net.{0.proj,2}, norm1..3}``, ``proj_out``. The cross-attention of every frame of a video attends to
that video's text embedding; instead of repeating the ``(b, L, D)`` context per frame (as the original),
the queries of all frames of a video are attended together against one copy -- every query row sees the
same keys, so the numbers are the same and the key/value projections run once per video. A context of
``(b*f, L, D)`` (a text per frame, for prompt travel) is attended frame by frame.
"""
from __future__ import annotations

from common.nn import BasicTransformerBlock, SpatialTransformer


class FrameTransformerBlock(BasicTransformerBlock):
    """``BasicTransformerBlock`` (self-attn, cross-attn, GEGLU ff) on ``(b*f, h*w, dim)`` tokens."""

    def construct(self, x, context, num_frames: int):
        # x (b*f, h*w, dim); context (b, L, context_dim), or (b*f, L, context_dim): one per frame (prompt travel)
        bf, n, c = x.shape
        x = self.attn1(self.norm1(x)) + x
        if context.shape[0] == bf and num_frames > 1:
            x = self.attn2(self.norm2(x), context) + x  # every frame against its own text
        else:
            q = self.norm2(x).reshape(bf // num_frames, num_frames * n, c)  # (b, f*h*w, dim)
            x = self.attn2(q, context).reshape(bf, n, c) + x
        return self.ff(self.norm3(x)) + x


class Transformer3DModel(SpatialTransformer):
    """GroupNorm (eps 1e-6) -> proj_in -> transformer blocks over h*w tokens per frame -> proj_out -> + input.

    :class:`common.nn.SpatialTransformer` with :class:`FrameTransformerBlock` blocks, which attend the queries
    of all frames of a video together (:meth:`run_blocks` takes ``num_frames``).
    ``construct(x (b*f, c, h, w), context (b, L, D), num_frames)``.

    Args:
        heads: attention heads; head_dim: width per head (inner = heads * head_dim).
        in_channels: feature channels. num_layers: blocks (1). cross_attention_dim: text width.
        norm_num_groups: GroupNorm groups. use_linear_projection: Linear (True) or 1x1-conv (False) projections.
    """

    def __init__(self, heads: int, head_dim: int, in_channels: int, num_layers: int = 1,
                 cross_attention_dim: int = 768, norm_num_groups: int = 32, use_linear_projection: bool = False):
        # diffusers 0.11 builds the linear proj_out as Linear(in_channels, inner): only valid when they agree
        super().__init__(in_channels, heads, head_dim, depth=num_layers, context_dim=cross_attention_dim,
                         use_linear=use_linear_projection, norm_eps=1e-6, groups=norm_num_groups,
                         block_cls=FrameTransformerBlock)

    def run_blocks(self, x, context=None, num_frames: int = 1):
        # x (b*f, h*w, inner); context (b, L, D)
        for block in self.transformer_blocks:
            x = block(x, context, num_frames)
        return x

    def construct(self, x, context, num_frames: int):
        # x (b*f, c, h, w); context (b, L, D)
        return self.project_out(self.run_blocks(self.project_in(x), context, num_frames), x)
