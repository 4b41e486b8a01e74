"""DynamiCrafter's attention blocks: text+image cross-attention, spatial and temporal transformers.

Keys follow ``lvdm/modules/attention.py``: ``attn2.to_k_ip`` / ``attn2.to_v_ip`` / ``attn2.alpha``,
``norm`` / ``proj_in`` / ``transformer_blocks.N`` / ``proj_out``.

Every layer of a UNet block takes ``x`` as ``(b*t, c, h, w)`` (the original's layout) plus the values its
``unet_args`` names (see :mod:`common.nn.unet_skeleton`): the spatial transformer the context, the temporal
one the number of frames.
"""
from __future__ import annotations

import math

import mindspore as ms
from mindspore import Parameter, nn, ops
from mindspore.common.initializer import HeUniform, Uniform, initializer

from common.nn import (
    Attention,
    GroupNorm,
    SpatialTransformer,
    batch_to_frames,
    linear,
    time_tokens_to_batch,
    video_to_time_tokens,
)
from common.nn.unet_blocks import BasicTransformerBlock

#: text tokens at the front of the context (hard-coded 77 in the original CrossAttention).
TEXT_CONTEXT_LEN = 77


class ImageCrossAttention(Attention):
    """``CrossAttention`` of lvdm: self-attention, or cross-attention over ``[77 text | image]`` tokens.

    With ``image_cross_attention`` the context is split after ``text_context_len`` tokens:
    ``out = softmax(q k_txt^T) v_txt + s * softmax(q k_img^T) v_img`` with separate ``to_k_ip`` /
    ``to_v_ip`` projections and ``s = image_cross_attention_scale`` (1.0), times ``tanh(alpha) + 1``
    when ``image_cross_attention_scale_learnable`` (the 256 release; ``alpha`` is a scalar parameter).
    Without it a given context is cut to its first ``text_context_len`` tokens (as the original does).

    Args:
        query_dim / context_dim / heads / dim_head / dropout: as :class:`common.nn.Attention`
            (q/k/v without bias, ``to_out.0`` with bias).
        image_cross_attention: (False) the image branch.
        image_cross_attention_scale: (1.0) fixed factor of the image branch.
        image_cross_attention_scale_learnable: (False) learnable gate ``alpha`` (init 0).
        text_context_len: (77) number of text tokens at the front of the context.
    """

    def __init__(self, query_dim: int, context_dim: int | None = None, heads: int = 8, dim_head: int = 64,
                 dropout: float = 0.0, image_cross_attention: bool = False,
                 image_cross_attention_scale: float = 1.0, image_cross_attention_scale_learnable: bool = False,
                 text_context_len: int = TEXT_CONTEXT_LEN):
        super().__init__(query_dim, context_dim, heads, dim_head, dropout)
        inner = heads * dim_head
        ctx_dim = context_dim if context_dim is not None else query_dim
        self.image_cross_attention = image_cross_attention
        self.image_scale = float(image_cross_attention_scale)
        self.learnable = bool(image_cross_attention and image_cross_attention_scale_learnable)
        self.text_context_len = text_context_len
        if image_cross_attention:
            self.to_k_ip = linear(ctx_dim, inner, bias=False)
            self.to_v_ip = linear(ctx_dim, inner, bias=False)
            if self.learnable:
                self.alpha = Parameter(initializer("zeros", (), ms.float32), name="alpha")

    def construct(self, x, context=None, mask=None):
        # x (N, Lq, query_dim); context (N, Lk, context_dim) or None (self-attention)
        q = self.to_q(x)
        if context is None:
            return self.to_out(self.attend(q, self.to_k(x), self.to_v(x), mask))
        n = self.text_context_len
        context = ops.depend(context, q)  # graph mode: project the context here, not all layers' up front
        text = context[:, :n, :]
        out = self.attend(q, self.to_k(text), self.to_v(text), mask)  # (N, Lq, inner)
        if self.image_cross_attention and context.shape[1] > n:  # no image tokens: the branch adds 0
            image = context[:, n:, :]
            out_ip = self.attend(q, self.to_k_ip(image), self.to_v_ip(image))
            scale = self.image_scale
            if self.learnable:
                out = out + out_ip * (scale * (ops.tanh(self.alpha) + 1.0))
            else:
                out = out + out_ip * scale
        return self.to_out(out)


class DCSpatialTransformer(SpatialTransformer):
    """LDM ``SpatialTransformer`` over each frame's h*w tokens with DynamiCrafter's cross-attention.

    Input ``(b*t, c, h, w)``; ``context`` ``(b*t, L, context_dim)`` (already per frame).

    Args: in_channels, heads, dim_head, depth, context_dim, dropout, use_linear (see
    :class:`common.nn.SpatialTransformer`); image_cross_attention / image_cross_attention_scale_learnable
    (see :class:`ImageCrossAttention`).
    """

    def __init__(self, in_channels: int, heads: int, dim_head: int, depth: int = 1, context_dim: int | None = None,
                 dropout: float = 0.0, use_linear: bool = True, image_cross_attention: bool = False,
                 image_cross_attention_scale_learnable: bool = False):
        super().__init__(in_channels, heads, dim_head, depth=depth, context_dim=context_dim, dropout=dropout,
                         use_linear=use_linear, norm_eps=1e-6,
                         block_kwargs={"attn_cls": ImageCrossAttention, "attn2_kwargs": {
                             "image_cross_attention": image_cross_attention,
                             "image_cross_attention_scale_learnable": image_cross_attention_scale_learnable}})



class Conv1x1(nn.Cell):
    """``torch.nn.Conv1d(cin, cout, kernel_size=1)`` applied to channels-last tokens ``(..., cin)``.

    The weight keeps the Conv1d shape ``(cout, cin, 1)`` (key ``weight``), so the original
    checkpoint loads as is; the computation is a matmul on the last axis.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.out_channels = out_channels
        self.weight = Parameter(initializer(HeUniform(math.sqrt(5)), (out_channels, in_channels, 1), ms.float32),
                                name="weight")
        self.bias = Parameter(initializer(Uniform(1.0 / math.sqrt(in_channels)), (out_channels,), ms.float32),
                              name="bias")
        self.matmul = ops.MatMul(transpose_b=True)

    def construct(self, x):
        shape = x.shape
        w = self.weight.reshape(self.out_channels, -1).astype(x.dtype)
        y = ops.bias_add(self.matmul(x.reshape(-1, shape[-1]), w), self.bias.astype(x.dtype))  # (M, cout)
        return y.reshape(shape[:-1] + (self.out_channels,))


class TemporalTransformer(nn.Cell):
    """lvdm ``TemporalTransformer`` with ``only_self_att``: attention over the frames of every pixel.

    GroupNorm(32, eps 1e-6) over ``(c, t, h, w)`` per video, ``proj_in`` (Linear, or Conv1d(k=1) when
    ``use_linear`` is False: the UNet's ``init_attn``), ``depth`` blocks whose attn1 and attn2 are
    both self-attention over the T tokens (GEGLU feed-forward), ``proj_out``, residual.

    Args:
        in_channels: c. heads / dim_head: attention shape (inner width heads*dim_head).
        depth: transformer blocks. dropout: attention/ff dropout. use_linear: projections kind.
    """

    unet_args = ("extra",)

    def __init__(self, in_channels: int, heads: int, dim_head: int, depth: int = 1, dropout: float = 0.0,
                 use_linear: bool = False, groups: int = 32):
        super().__init__()
        inner = heads * dim_head
        self.norm = GroupNorm(groups, in_channels, 1e-6)
        self.proj_in = linear(in_channels, inner) if use_linear else Conv1x1(in_channels, inner)
        self.transformer_blocks = nn.CellList([
            BasicTransformerBlock(inner, heads, dim_head, context_dim=None, dropout=dropout,
                                  attn_cls=ImageCrossAttention, attn2_self=True) for _ in range(depth)])
        self.proj_out = linear(inner, in_channels) if use_linear else Conv1x1(inner, in_channels)

    def construct(self, x, num_frames: int):
        # x (b*t, c, h, w)
        h = self.norm(batch_to_frames(x, num_frames))  # (b, c, t, h, w), stats over (c/g, t, h, w)
        h = self.proj_in(video_to_time_tokens(h))  # (b*h*w, t, inner)
        for block in self.transformer_blocks:
            h = block(h)
        h = self.proj_out(h)  # (b*h*w, t, c)
        return time_tokens_to_batch(h, num_frames, x.shape[2], x.shape[3]) + x
