"""AnimateDiff motion module (``VanillaTemporalModule``): self-attention along the frames of every pixel.

Parameter names follow the released ``mm_sd_v15*.ckpt`` / ``v3_sd15_mm.ckpt`` files:
``temporal_transformer.{norm, proj_in, transformer_blocks.k.{attention_blocks.a.{to_q,to_k,to_v,to_out.0},
norms.a, ff.net.{0.proj,2}, ff_norm}, proj_out}``. The released files also carry
``attention_blocks.a.pos_encoder.pe`` buffers; like the original we rebuild that table instead of loading it.

Layout: the UNet keeps features as ``(b*f, c, h, w)`` (frames folded into the batch); a motion module turns
them into ``(b*h*w, f, c)`` token rows once, runs every per-token layer (proj_in, LayerNorms, attention
along f, feed-forward, proj_out) on that layout, and folds back. Per-token layers commute with the
transpose, so this equals the original's ``(b f) (h w) c`` order exactly.
"""
from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import nn

from common.nn import (
    Attention,
    FeedForward,
    LayerNorm,
    batch_to_time_tokens,
    linear,
    sinusoidal_position_table,
    time_tokens_to_batch,
)

from ..config import MotionModuleConfig
from .resnet import VideoGroupNorm


class VersatileAttention(Attention):
    """Temporal self-attention over frames with an added sinusoidal position table.

    Input tokens ``(n, f, dim)`` (n = b*h*w rows, one per pixel); ``pe[:f]`` is added to the (already
    layer-normed) input, q/k/v all come from that sum; ``to_q/k/v`` have no bias, ``to_out.0`` has one.

    Args:
        dim: token width (the motion module's inner width).
        heads: attention heads; head width = dim // heads.
        position_encoding: add the table (``temporal_position_encoding``).
        max_len: rows of the table (``temporal_position_encoding_max_len``, 24); longer videos are refused.
    """

    def __init__(self, dim: int, heads: int, position_encoding: bool = True, max_len: int = 24):
        if dim % heads:
            raise ValueError(f"motion module: width {dim} is not divisible by {heads} heads")
        super().__init__(dim, None, heads=heads, dim_head=dim // heads)
        self.position_encoding = position_encoding
        self.processor = None  # a MotionLoRA while one is trained (animatediff_ms.motion_lora.add_motion_lora)
        self.max_len = max_len
        if position_encoding:
            self.pe = ms.Tensor(sinusoidal_position_table(max_len, dim)[None])  # (1, max_len, dim), not a Parameter

    def construct(self, x):
        # x (n, f, dim)
        f = x.shape[1]
        if self.position_encoding:
            if f > self.max_len:
                raise ValueError(f"video length {f} exceeds temporal_position_encoding_max_len={self.max_len} "
                                 f"of the motion module")
            x = x + self.pe[:, :f]
        lora = self.processor
        if lora is None:
            return self.to_out(self.attend(self.to_q(x), self.to_k(x), self.to_v(x)))
        # MotionLoRA in training (animatediff_ms.motion_lora): W x + scale * up(down(x)) on every projection
        h = self.attend(self.to_q(x) + lora.q(x), self.to_k(x) + lora.k(x), self.to_v(x) + lora.v(x))
        return self.to_out(h) + lora.out(h)


class TemporalTransformerBlock(nn.Cell):
    """For every attention block a: ``h = attn_a(norms[a](h)) + h``; then ``h = ff(ff_norm(h)) + h`` (GEGLU).

    Args:
        dim: token width. heads: attention heads. num_attention_blocks: attention blocks (2).
        position_encoding / max_len: see :class:`VersatileAttention`.
    """

    def __init__(self, dim: int, heads: int, num_attention_blocks: int = 2, position_encoding: bool = True,
                 max_len: int = 24):
        super().__init__()
        self.attention_blocks = nn.CellList([VersatileAttention(dim, heads, position_encoding, max_len)
                                             for _ in range(num_attention_blocks)])
        self.norms = nn.CellList([LayerNorm(dim) for _ in range(num_attention_blocks)])
        self.ff = FeedForward(dim, mult=4, glu=True)
        self.ff_norm = LayerNorm(dim)
        self.num_attention_blocks = num_attention_blocks

    def construct(self, x):
        # x (n, f, dim)
        for a in range(self.num_attention_blocks):
            x = self.attention_blocks[a](self.norms[a](x)) + x
        return self.ff(self.ff_norm(x)) + x


class TemporalTransformer3DModel(nn.Cell):
    """GroupNorm (32 groups, eps 1e-6) -> ``proj_in`` -> blocks -> ``proj_out`` -> + input.

    Args:
        in_channels: feature channels c. heads: attention heads. head_dim: width per head
            (inner = heads * head_dim). num_layers: TemporalTransformerBlocks. num_attention_blocks: per block.
        position_encoding / max_len: see :class:`VersatileAttention`. norm_num_groups: 32 in the original.
        norm_over_frames: the GroupNorm takes its statistics over all frames of a video, (c/G, f, h, w) (the
            sdxl branch and diffusers' ``AnimateDiffTransformer3D``); False = per frame (the SD-1.5 releases).
    """

    def __init__(self, in_channels: int, heads: int, head_dim: int, num_layers: int = 1,
                 num_attention_blocks: int = 2, position_encoding: bool = True, max_len: int = 24,
                 norm_num_groups: int = 32, norm_over_frames: bool = False):
        super().__init__()
        inner = heads * head_dim
        self.norm = VideoGroupNorm(norm_num_groups, in_channels, eps=1e-6, inflated=not norm_over_frames)
        self.proj_in = linear(in_channels, inner)
        self.transformer_blocks = nn.CellList([
            TemporalTransformerBlock(inner, heads, num_attention_blocks, position_encoding, max_len)
            for _ in range(num_layers)])
        self.proj_out = linear(inner, in_channels)

    def construct(self, x, num_frames: int):
        # x (b*f, c, h, w)
        t = self.proj_in(batch_to_time_tokens(self.norm(x, num_frames), num_frames))  # (b*h*w, f, inner)
        for block in self.transformer_blocks:
            t = block(t)
        t = self.proj_out(t)  # (b*h*w, f, c)
        return time_tokens_to_batch(t, num_frames, x.shape[2], x.shape[3]) + x


class VanillaTemporalModule(nn.Cell):
    """The motion module inserted after each (resnet, spatial transformer) layer: ``temporal_transformer``.

    Args:
        in_channels: feature channels of the layer.
        cfg: :class:`MotionModuleConfig` (``motion_module_kwargs`` of the inference yaml).
        norm_over_frames: see :class:`TemporalTransformer3DModel` (True for the SDXL motion module).
    """

    def __init__(self, in_channels: int, cfg: MotionModuleConfig, norm_over_frames: bool = False):
        super().__init__()
        heads = cfg.num_attention_heads
        head_dim = in_channels // heads // cfg.temporal_attention_dim_div
        if head_dim < 1:
            raise ValueError(f"motion module: {in_channels} channels leave no width for {heads} heads "
                             f"(temporal_attention_dim_div={cfg.temporal_attention_dim_div})")
        self.temporal_transformer = TemporalTransformer3DModel(
            in_channels, heads, head_dim, num_layers=cfg.num_transformer_block,
            num_attention_blocks=len(cfg.attention_block_types), position_encoding=cfg.temporal_position_encoding,
            max_len=cfg.temporal_position_encoding_max_len, norm_over_frames=norm_over_frames)
        if cfg.zero_initialize:
            for p in self.temporal_transformer.proj_out.get_parameters():
                p.set_data(ms.Tensor(np.zeros(p.shape, np.float32)))

    def construct(self, x, num_frames: int):
        # x (b*f, c, h, w) -> same
        return self.temporal_transformer(x, num_frames)
