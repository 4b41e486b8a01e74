"""Shared MindSpore building blocks (parameter names follow the original PyTorch state dicts)."""
from .adaln import AdaLayerNorm, LayerNormZero
from .attention import (
    Attention,
    AttentionOptions,
    multi_head_attention,
    scaled_dot_product_attention,
    set_attention,
)
from .embeddings import TimestepEmbedding, sinusoidal_position_table, timestep_embedding
from .group_norm_kernel import GroupNormKernelError
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
from .norm import GroupNorm, LayerNorm, set_groupnorm_kernel
from .rope import apply_rotary, resize_crop_region_for_grid, rotary_1d, rotary_3d

__all__ = [
    "Attention", "scaled_dot_product_attention", "multi_head_attention", "AttentionOptions", "set_attention",
    "timestep_embedding", "TimestepEmbedding", "sinusoidal_position_table",
    "linear", "conv2d", "TemporalConv", "gelu", "in_graph", "GELU", "GEGLU", "GELUProj", "FeedForward",
    "set_feed_forward_chunk_size",
    "GroupNorm", "LayerNorm", "set_groupnorm_kernel", "GroupNormKernelError",
    "LayerNormZero", "AdaLayerNorm", "apply_rotary", "resize_crop_region_for_grid", "rotary_1d", "rotary_3d",
]
from .unet_blocks import (  # noqa: E402
    BasicTransformerBlock,
    Downsample,
    ResBlock,
    SpatialTransformer,
    TemporalConvBlock,
    Upsample,
    upsample_nearest2x,
)

__all__ += ["ResBlock", "Downsample", "Upsample", "BasicTransformerBlock", "SpatialTransformer", "upsample_nearest2x",
            "TemporalConvBlock"]
from .frames import (  # noqa: E402
    batch_to_frames,
    batch_to_time_tokens,
    frames_to_batch,
    image_to_tokens,
    repeat_interleave,
    space_to_time_tokens,
    time_to_space_tokens,
    time_tokens_to_batch,
    tokens_to_image,
    video_to_time_tokens,
)
from .unet_skeleton import (  # noqa: E402
    TimestepEmbedSequential,
    UNetSkeleton,
    attention_heads,
    call_layer,
    layer_route,
)

__all__ += ["frames_to_batch", "batch_to_frames", "repeat_interleave", "image_to_tokens", "tokens_to_image",
            "batch_to_time_tokens", "video_to_time_tokens", "time_tokens_to_batch", "space_to_time_tokens",
            "time_to_space_tokens"]
__all__ += ["UNetSkeleton", "TimestepEmbedSequential", "attention_heads", "call_layer", "layer_route"]
