"""The image query transformer (``lvdm.modules.encoders.resampler.Resampler``, IP-Adapter style).

``num_queries * video_length`` learned latents attend to the CLIP image tokens (and to
themselves) through ``depth`` Perceiver layers; the output is frame-major: tokens
``[16 i, 16 i + 16)`` condition frame ``i``. Keys: ``latents``, ``proj_in``, ``proj_out``,
``norm_out``, ``layers.N.0.{norm1,norm2,to_q,to_kv,to_out}``, ``layers.N.1.{0,1,3}``.
"""
from __future__ import annotations

import mindspore as ms
from mindspore import Parameter, nn, ops
from mindspore.common.initializer import Normal, initializer

from common.nn import GELU, LayerNorm, linear
from common.nn.attention import AttentionOptions, multi_head_attention

from .config import ResamplerConfig


class PerceiverAttention(AttentionOptions, nn.Cell):
    """Queries from the latents; keys/values from ``[image tokens | latents]``.

    LayerNorm ``norm1`` on the image tokens and ``norm2`` on the latents; ``to_q``, ``to_kv``
    (2*inner), ``to_out`` without bias; scores ``q k^T / sqrt(dim_head)`` with a float32 softmax.

    Args: dim (token width), dim_head, heads.
    """

    def __init__(self, dim: int, dim_head: int = 64, heads: int = 8):
        super().__init__()
        inner = dim_head * heads
        self.heads = heads
        self.scale = dim_head ** -0.5
        self.norm1 = LayerNorm(dim)
        self.norm2 = LayerNorm(dim)
        self.to_q = linear(dim, inner, bias=False)
        self.to_kv = linear(dim, inner * 2, bias=False)
        self.to_out = linear(inner, dim, bias=False)

    def construct(self, x, latents):
        # x (b, n1, dim) image features; latents (b, n2, dim)
        x = self.norm1(x)
        latents = self.norm2(latents)
        q = self.to_q(latents)
        k, v = ops.chunk(self.to_kv(ops.concat([x, latents], axis=1)), 2, axis=-1)
        out = multi_head_attention(q, k, v, self.heads, scale=self.scale, chunk_size=self.chunk_size,
                                   backend=self.attn_backend, heads_layout=self.heads_layout)  # (b, n2, inner)
        return self.to_out(out)  # (b, n2, dim)


def _feed_forward(dim: int, mult: int) -> nn.SequentialCell:
    """LayerNorm, Linear (no bias), exact GELU, Linear (no bias): keys ``0``, ``1``, ``3``."""
    inner = int(dim * mult)
    return nn.SequentialCell([LayerNorm(dim), linear(dim, inner, bias=False), GELU(), linear(inner, dim, bias=False)])


class Resampler(nn.Cell):
    """(b, n_tokens, embedding_dim) CLIP image tokens -> (b, num_queries * video_length, output_dim)."""

    def __init__(self, cfg: ResamplerConfig):
        super().__init__()
        self.cfg = cfg
        n = cfg.num_queries * (cfg.video_length if cfg.video_length is not None else 1)
        self.num_latents = n
        self.latents = Parameter(initializer(Normal(cfg.dim ** -0.5), (1, n, cfg.dim), ms.float32), name="latents")
        self.proj_in = linear(cfg.embedding_dim, cfg.dim)
        self.proj_out = linear(cfg.dim, cfg.output_dim)
        self.norm_out = LayerNorm(cfg.output_dim)
        self.layers = nn.CellList([
            nn.CellList([PerceiverAttention(cfg.dim, cfg.dim_head, cfg.heads), _feed_forward(cfg.dim, cfg.ff_mult)])
            for _ in range(cfg.depth)])

    def construct(self, x):
        b = x.shape[0]
        latents = ops.broadcast_to(self.latents.astype(x.dtype), (b, self.num_latents, self.cfg.dim))
        x = self.proj_in(x)
        for layer in self.layers:
            latents = layer[0](x, latents) + latents
            latents = layer[1](latents) + latents
        return self.norm_out(self.proj_out(latents))
