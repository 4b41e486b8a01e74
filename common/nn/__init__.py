"""Shared MindSpore building blocks (parameter names follow the original PyTorch state dicts)."""
from .attention import (
    Attention,
    AttentionOptions,
    multi_head_attention,
    scaled_dot_product_attention,
    set_attention,
)
from .embeddings import TimestepEmbedding, sinusoidal_position_table, timestep_embedding
from .layers import (
    GEGLU,
    GELU,
    FeedForward,
    GELUProj,
    TemporalConv,
    conv2d,
    gelu,
    in_graph,
    linear,
    set_feed_forward_chunk_size,
)
from .norm import GroupNorm, LayerNorm

__all__ = [
    "Attention", "scaled_dot_product_attention", "multi_head_attention", "AttentionOptions", "set_attention",
    "timestep_embedding", "TimestepEmbedding", "sinusoidal_position_table",
    "linear", "conv2d", "TemporalConv", "gelu", "in_graph", "GELU", "GEGLU", "GELUProj", "FeedForward",
    "set_feed_forward_chunk_size",
    "GroupNorm", "LayerNorm",
]
from .unet_blocks import (  # noqa: E402
    BasicTransformerBlock,
    Downsample,
    ResBlock,
    SpatialTransformer,
    Upsample,
    upsample_nearest2x,
)

__all__ += ["ResBlock", "Downsample", "Upsample", "BasicTransformerBlock", "SpatialTransformer", "upsample_nearest2x"]
