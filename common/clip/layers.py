"""Transformer pieces of the CLIP towers, with open_clip / torch parameter names.

``MultiheadSelfAttention`` keeps ``torch.nn.MultiheadAttention``'s packed layout
(``in_proj_weight`` (3w, w) = [q; k; v], ``in_proj_bias``, ``out_proj``); every attention runs
through :func:`common.nn.scaled_dot_product_attention` (softmax in float32).
"""
from __future__ import annotations

import math

import mindspore as ms
import numpy as np
from mindspore import Parameter, nn, ops
from mindspore.common.initializer import Normal, XavierUniform, initializer

from common.nn import AttentionOptions, LayerNorm, linear, scaled_dot_product_attention


class Embedding(nn.Cell):
    """``torch.nn.Embedding`` with its table named ``weight`` (num, dim); ids of any integer dtype."""

    def __init__(self, num_embeddings: int, embedding_dim: int, std: float = 0.02):
        super().__init__()
        self.weight = Parameter(initializer(Normal(std), (num_embeddings, embedding_dim), ms.float32), name="weight")

    def construct(self, ids):
        return ops.gather(self.weight, ids, 0)  # ids.shape + (dim,)


class QuickGELU(nn.Cell):
    """``x * sigmoid(1.702 x)`` (OpenAI CLIP / HF ``quick_gelu``)."""

    def construct(self, x):
        return x * ops.sigmoid(1.702 * x)


class ExactGELU(nn.Cell):
    """``torch.nn.GELU()``: the erf form."""

    def construct(self, x):
        return ops.gelu(x, approximate="none")


def activation(name: str) -> nn.Cell:
    """An activation cell by its HF ``hidden_act`` name: ``gelu`` (erf), ``quick_gelu``, ``gelu_new`` (tanh)."""
    if name == "gelu":
        return ExactGELU()
    if name == "quick_gelu":
        return QuickGELU()
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return nn.GELU(approximate=True)
    raise ValueError(f"unsupported activation {name!r}: expected 'gelu', 'quick_gelu' or 'gelu_new'")


def causal_mask(length: int) -> ms.Tensor:
    """Bool (L, L), True where key j <= query i (open_clip's ``attn_mask`` with -inf above the diagonal)."""
    return ms.Tensor(np.tril(np.ones((length, length), dtype=np.bool_)))


class MultiheadSelfAttention(AttentionOptions, nn.Cell):
    """Self-attention with ``torch.nn.MultiheadAttention`` keys (``in_proj_weight``, ``in_proj_bias``, ``out_proj``).

    Args:
        width: model width w.
        heads: number of heads (w must be divisible by it).
    """

    def __init__(self, width: int, heads: int):
        super().__init__()
        if width % heads:
            raise ValueError(f"attention width {width} is not divisible into {heads} heads")
        self.width = width
        self.heads = heads
        self.in_proj_weight = Parameter(initializer(XavierUniform(), (3 * width, width), ms.float32),
                                        name="in_proj_weight")
        self.in_proj_bias = Parameter(initializer("zeros", (3 * width,), ms.float32), name="in_proj_bias")
        self.out_proj = linear(width, width)
        self.matmul_t = ops.MatMul(transpose_b=True)

    def construct(self, x, mask=None):
        # x (B, L, w); mask broadcastable to (B, H, L, L) (bool True = attend, or additive)
        b, l, w = x.shape
        qkv = self.matmul_t(x.reshape(b * l, w), self.in_proj_weight) + self.in_proj_bias  # (B*L, 3w)
        qkv = qkv.reshape(b, l, 3, self.heads, w // self.heads).transpose(2, 0, 3, 1, 4)  # (3, B, H, L, d)
        out = scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], mask=mask, chunk_size=self.chunk_size,
                                           backend=self.attn_backend)  # (B, H, L, d)
        out = out.transpose(0, 2, 1, 3).reshape(b, l, w)
        return self.out_proj(out)


class MLP(nn.Cell):
    """open_clip's block MLP: ``c_fc`` -> GELU (or QuickGELU) -> ``c_proj``."""

    def __init__(self, width: int, hidden: int, quick_gelu: bool = False):
        super().__init__()
        self.c_fc = linear(width, hidden)
        self.gelu = QuickGELU() if quick_gelu else ExactGELU()
        self.c_proj = linear(hidden, width)

    def construct(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


class LayerScale(nn.Cell):
    """open_clip LayerScale: ``x * gamma`` (key ``gamma``)."""

    def __init__(self, width: int, init_value: float):
        super().__init__()
        self.gamma = Parameter(initializer(init_value, (width,), ms.float32), name="gamma")

    def construct(self, x):
        return x * self.gamma


class ResidualAttentionBlock(nn.Cell):
    """Pre-LN block: ``x += attn(ln_1(x))``; ``x += mlp(ln_2(x))`` (open_clip keys ``ln_1, attn, ln_2, mlp``).

    Args:
        width: token width.
        heads: attention heads.
        mlp_ratio: MLP hidden = int(width * mlp_ratio).
        quick_gelu: QuickGELU instead of exact GELU.
        ls_init_value: LayerScale (``ls_1`` / ``ls_2``) init, None = none.
    """

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0, quick_gelu: bool = False,
                 ls_init_value: float | None = None):
        super().__init__()
        self.ln_1 = LayerNorm(width)
        self.attn = MultiheadSelfAttention(width, heads)
        self.ln_2 = LayerNorm(width)
        self.mlp = MLP(width, int(width * mlp_ratio), quick_gelu)
        self.use_ls = ls_init_value is not None
        if self.use_ls:
            self.ls_1 = LayerScale(width, ls_init_value)
            self.ls_2 = LayerScale(width, ls_init_value)

    def construct(self, x, mask=None):
        # x (B, L, w)
        if self.use_ls:
            x = x + self.ls_1(self.attn(self.ln_1(x), mask))
            x = x + self.ls_2(self.mlp(self.ln_2(x)))
        else:
            x = x + self.attn(self.ln_1(x), mask)
            x = x + self.mlp(self.ln_2(x))
        return x


class Transformer(nn.Cell):
    """open_clip ``Transformer``: ``resblocks.0..N-1``, batch-first here ((B, L, w), same numbers)."""

    def __init__(self, width: int, layers: int, heads: int, mlp_ratio: float = 4.0, quick_gelu: bool = False,
                 ls_init_value: float | None = None):
        super().__init__()
        self.layers = layers
        self.resblocks = nn.CellList([ResidualAttentionBlock(width, heads, mlp_ratio, quick_gelu, ls_init_value)
                                      for _ in range(layers)])

    def construct(self, x, mask=None, num_layers: int | None = None):
        """Run the first ``num_layers`` blocks (default all). x (B, L, w) -> (B, L, w)."""
        n = self.layers if num_layers is None else num_layers
        for i in range(n):
            x = self.resblocks[i](x, mask)
        return x


def init_scale(width: int) -> float:
    """open_clip's embedding init scale ``width ** -0.5``."""
    return 1.0 / math.sqrt(width)
