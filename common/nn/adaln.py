"""Adaptive LayerNorms conditioned on an embedding (DiT, Peebles & Xie 2023; CogVideoX's two-stream form).

* :class:`LayerNormZero` -- diffusers ``CogVideoXLayerNormZero``: ``linear(silu(emb))`` split in six, (shift,
  scale, gate) for the video stream and (shift, scale, gate) for the text stream; each stream is
  ``norm(x) * (1 + scale) + shift`` with one shared ``norm``; the gates scale the residual branch (AdaLN-zero).
* :class:`AdaLayerNorm` -- diffusers ``AdaLayerNorm`` with ``chunk_dim=1`` (the output layer): ``linear(silu(emb))``
  split into **shift, then scale** (the reverse of the block order above).

Parameter names: ``linear``, ``norm`` (a torch-named :class:`~common.nn.norm.LayerNorm`).
"""
from __future__ import annotations

from mindspore import nn, ops

from .layers import linear
from .norm import LayerNorm

__all__ = ["LayerNormZero", "AdaLayerNorm"]


class LayerNormZero(nn.Cell):
    """Gated two-stream AdaLN. Args: cond_dim (width of ``emb``), dim (stream width), elementwise_affine, eps."""

    def __init__(self, cond_dim: int, dim: int, elementwise_affine: bool = True, eps: float = 1e-5,
                 bias: bool = True):
        super().__init__()
        self.linear = linear(cond_dim, 6 * dim, bias=bias)
        self.norm = LayerNorm(dim, eps=eps, elementwise_affine=elementwise_affine)

    def construct(self, x, ctx, emb):
        # x (B, Lv, D), ctx (B, Lt, D), emb (B, cond_dim)
        mod = self.linear(ops.silu(emb))[:, None, :]  # (B, 1, 6D)
        shift, scale, gate, c_shift, c_scale, c_gate = ops.split(mod, mod.shape[-1] // 6, axis=-1)
        x = self.norm(x) * (1 + scale) + shift
        ctx = self.norm(ctx) * (1 + c_scale) + c_shift
        return x, ctx, gate, c_gate


class AdaLayerNorm(nn.Cell):
    """``norm(x) * (1 + scale) + shift`` with (shift, scale) = ``linear(silu(emb))``.

    Args: cond_dim (width of ``emb``), dim (width of x; the linear outputs 2*dim), elementwise_affine, eps.
    """

    def __init__(self, cond_dim: int, dim: int, elementwise_affine: bool = True, eps: float = 1e-5):
        super().__init__()
        self.linear = linear(cond_dim, 2 * dim)
        self.norm = LayerNorm(dim, eps=eps, elementwise_affine=elementwise_affine)

    def construct(self, x, emb):
        mod = self.linear(ops.silu(emb))[:, None, :]  # (B, 1, 2D)
        shift, scale = ops.split(mod, mod.shape[-1] // 2, axis=-1)
        return self.norm(x) * (1 + scale) + shift
