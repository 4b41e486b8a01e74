"""The STC-encoder of UNetSD_temporal: one small conv stack + temporal transformer per spatial condition.

Keys (original ``tools/videocomposer/unet_sd.py``): ``<cond>_embedding.{0,3,5}`` (conv3x3, SiLU,
AdaptiveAvgPool2d((128,128)), conv3x3/s2, SiLU, conv3x3/s2) and ``<cond>_embedding_after.layers.N.{0,1}``
(``Transformer_v2``: ``0.norm``, ``0.fn.to_qkv``, ``0.fn.to_out.0``; ``1.net.0.0``, ``1.net.2``). The mask
branch is ``masked_embedding`` + ``mask_embedding_after`` (sic).
"""
from __future__ import annotations

from mindspore import nn, ops

from common.nn import GELU, AttentionOptions, LayerNorm, conv2d, linear, multi_head_attention

#: UNet keyword -> (module prefix of the conv stack, of the transformer, input channels).
CONDITION_MODULES = {
    "depth": ("depth_embedding", "depth_embedding_after", 1),
    "local_image": ("local_image_embedding", "local_image_embedding_after", 3),
    "motion": ("motion_embedding", "motion_embedding_after", 2),
    "sketch": ("sketch_embedding", "sketch_embedding_after", 1),
    "single_sketch": ("single_sketch_embedding", "single_sketch_embedding_after", 1),
    "masked": ("masked_embedding", "mask_embedding_after", 4),
}
#: ``video_compositions`` name -> UNet keyword of the encoder it builds.
COMPOSITION_TO_CONDITION = {"depthmap": "depth", "local_image": "local_image", "motion": "motion",
                            "sketch": "sketch", "single_sketch": "single_sketch", "mask": "masked"}
#: side of the pooled map inside every encoder (hard-coded 128 -> two stride-2 convs -> 32).
POOL_SIZE = 128


class AdaptiveAvgPool(nn.Cell):
    """``torch.nn.AdaptiveAvgPool2d((size, size))`` (averages over ``floor(i*In/Out) .. ceil((i+1)*In/Out)``)."""

    def __init__(self, size: int):
        super().__init__()
        self.size = (size, size)

    def construct(self, x):
        return ops.adaptive_avg_pool2d(x, self.size)


def condition_stack(in_channels: int, concat_dim: int) -> nn.SequentialCell:
    """conv3x3 (c_in -> 4*concat_dim), SiLU, pool to 128x128, conv3x3/s2, SiLU, conv3x3/s2 (-> concat_dim)."""
    c4 = concat_dim * 4
    return nn.SequentialCell([conv2d(in_channels, c4, 3, padding=1), nn.SiLU(), AdaptiveAvgPool(POOL_SIZE),
                              conv2d(c4, c4, 3, stride=2, padding=1), nn.SiLU(),
                              conv2d(c4, concat_dim, 3, stride=2, padding=1)])


class QKVAttention(AttentionOptions, nn.Cell):
    """ViT-style attention: ``to_qkv`` (no bias) split into q, k, v; ``to_out.0`` with bias.
    scale ``dim_head ** -0.5``."""

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float = 0.0):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.scale = dim_head ** -0.5
        self.to_qkv = linear(dim, inner * 3, bias=False)
        self.to_out = nn.SequentialCell([linear(inner, dim), nn.Dropout(p=dropout)])

    def construct(self, x):
        # x (N, L, dim)
        q, k, v = ops.chunk(self.to_qkv(x), 3, axis=-1)
        out = multi_head_attention(q, k, v, self.heads, scale=self.scale, chunk_size=self.chunk_size,
                                   backend=self.attn_backend, heads_layout=self.heads_layout)
        return self.to_out(out)


class PreNorm(nn.Cell):
    """``x + fn(LayerNorm(x))`` (keys ``norm``, ``fn``)."""

    def __init__(self, dim: int, fn: nn.Cell):
        super().__init__()
        self.norm = LayerNorm(dim)
        self.fn = fn

    def construct(self, x):
        return self.fn(self.norm(x)) + x


class MLP(nn.Cell):
    """Linear(dim, 4*dim), exact GELU, Dropout, Linear(4*dim, dim_out); keys ``net.0.0``, ``net.2``."""

    def __init__(self, dim: int, dim_out: int, dropout: float = 0.0):
        super().__init__()
        self.net = nn.SequentialCell([nn.SequentialCell([linear(dim, dim * 4), GELU()]), nn.Dropout(p=dropout),
                                      linear(dim * 4, dim_out)])

    def construct(self, x):
        return self.net(x)


class _Layer(nn.SequentialCell):
    """One ``Transformer_v2`` layer: ``0`` = PreNorm attention (residual inside), ``1`` = MLP (residual
    added here, no norm before it)."""

    def construct(self, x):
        x = self.cell_list[0](x)
        return self.cell_list[1](x) + x


class TransformerV2(nn.Cell):
    """The condition adapters' temporal transformer over (N, frames, dim): ``depth`` layers of
    ``x + Attn(LN(x))`` (heads 2, dim_head = dim) then ``x + MLP(x)``.

    Args:
        dim: token width (``concat_dim``). depth: layers (``adapter_transformer_layers``).
        heads: attention heads (2). dropout: attention / MLP dropout (0.05, training only).
    """

    def __init__(self, dim: int, depth: int = 1, heads: int = 2, dropout: float = 0.05):
        super().__init__()
        self.layers = nn.CellList([_Layer([PreNorm(dim, QKVAttention(dim, heads, dim, dropout)),
                                           MLP(dim, dim, dropout)]) for _ in range(depth)])

    def construct(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def run_condition_encoder(stack, after, cond):
    """One condition (B, c, F, H, W) -> (B, concat_dim, F, 32, 32) through ``stack`` then ``after`` over frames."""
    b, c, f, h, w = cond.shape
    x = stack(cond.transpose(0, 2, 1, 3, 4).reshape(b * f, c, h, w))  # (b*f, cd, 32, 32)
    cd, hh, ww = x.shape[1], x.shape[2], x.shape[3]
    x = x.reshape(b, f, cd, hh * ww).transpose(0, 3, 1, 2).reshape(b * hh * ww, f, cd)  # (b*h*w, f, cd)
    x = after(x)
    return x.reshape(b, hh, ww, f, cd).transpose(0, 4, 3, 1, 2)  # (b, cd, f, h, w)
