"""Typed config of the SDXL UNet with motion modules (AnimateDiff's ``sdxl`` branch, ``mm_sdxl_v10_beta.ckpt``).

:class:`UNetSDXLConfig` = the diffusers SDXL ``unet/config.json`` (``UNet2DConditionModel`` schema, read as it
is: block types, ``transformer_layers_per_block``, heads, ``addition_embed_type: text_time``, ...) +
:class:`SDXLAdditionalKwargs` (``unet_additional_kwargs`` of ``configs/inference/inference-sdxl.yaml``, the
original sdxl branch's ``configs/inference/inference.yaml``).

Differences to the SD-1.5 UNet (:class:`~animatediff_ms.config.UNet3DConfig`):
* the block types come from ``unet/config.json`` (SDXL: ``DownBlock2D``, ``CrossAttnDownBlock2D`` x2 /
  ``CrossAttnUpBlock2D`` x2, ``UpBlock2D``: 3 levels, the first without attention);
* a spatial transformer holds ``transformer_layers_per_block[i]`` blocks (SDXL: 1, 2, 10; the mid block the last);
* ``add_embedding`` of ``[text_embeds, sinusoid(time_ids)]`` (size / crop conditioning) is added to the time
  embedding (``addition_embed_type: text_time``);
* the motion module's GroupNorm normalises over ALL frames of a video (the sdxl branch's
  ``TemporalTransformer3DModel`` norms the 5-D tensor; diffusers' ``AnimateDiffTransformer3D`` does the same),
  the resnets per frame (no ``use_inflated_groupnorm`` switch in that branch);
* motion-module placement: down block i iff ``2**i`` in ``motion_module_resolutions``, up block i iff
  ``2**(n-1-i)`` (the sdxl branch hard-codes ``2**(2-i)`` for its 3 levels).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from common.config import ConfigError, from_mapping, load_json, unused

from .config import MotionModuleConfig

__all__ = ["SDXLAdditionalKwargs", "UNetSDXLConfig", "sdxl_motion_defaults"]

_FP16 = "attention upcasting only matters in float16 (this port runs float32)"
_DIFFUSERS = "diffusers bookkeeping"


def sdxl_motion_defaults() -> MotionModuleConfig:
    """``motion_module_kwargs`` of the sdxl branch's ``inference.yaml`` (8 heads, one block of two
    ``Temporal_Self`` attentions, a 32-frame position table)."""
    return MotionModuleConfig(num_attention_heads=8, num_transformer_block=1,
                              attention_block_types=("Temporal_Self", "Temporal_Self"),
                              temporal_position_encoding=True, temporal_position_encoding_max_len=32)


@dataclass
class SDXLAdditionalKwargs:
    """``unet_additional_kwargs`` of the SDXL inference yaml (the sdxl branch's UNet3DConditionModel arguments).

    Attributes:
        use_motion_module: insert motion modules (True).
        motion_module_resolutions: down block i has them iff 2**i is listed, up block i iff 2**(n-1-i) is.
        motion_module_mid_block: a motion module in the mid block (False for ``mm_sdxl_v10_beta``).
        motion_module_decoder_only: none in the down blocks.
        motion_module_type: only ``"Vanilla"``.
        motion_module_kwargs: :class:`~animatediff_ms.config.MotionModuleConfig` (see :func:`sdxl_motion_defaults`).
    """

    use_motion_module: bool = True
    motion_module_resolutions: tuple[int, ...] = (1, 2, 4, 8)
    motion_module_mid_block: bool = False
    motion_module_decoder_only: bool = False
    motion_module_type: Literal["Vanilla"] = "Vanilla"
    motion_module_kwargs: MotionModuleConfig = field(default_factory=sdxl_motion_defaults)
    unet_use_cross_frame_attention: Literal[False, None] = None
    unet_use_temporal_attention: Literal[False, None] = None


@dataclass
class UNetSDXLConfig(SDXLAdditionalKwargs):
    """SDXL ``unet/config.json`` (diffusers ``UNet2DConditionModel``) + :class:`SDXLAdditionalKwargs`.

    Attributes (diffusers names; SDXL-base values in brackets):
        in_channels / out_channels: latent channels [4].
        block_out_channels: channels per level [(320, 640, 1280)].
        down_block_types / up_block_types: ``CrossAttnDownBlock2D`` / ``DownBlock2D`` per level (and the up
            counterparts): which levels have spatial transformers.
        mid_block_type: ``UNetMidBlock2DCrossAttn``.
        layers_per_block: resnets per down block [2] (up blocks one more).
        transformer_layers_per_block: transformer blocks per spatial transformer, int or per level [(1, 2, 10)];
            up blocks use ``reverse_transformer_layers_per_block`` when given, else the reversed list.
        attention_head_dim / num_attention_heads: the NUMBER OF HEADS per level [(5, 10, 20)]
            (diffusers: ``num_attention_heads or attention_head_dim``); head width = channels // heads [64].
        cross_attention_dim: width of the text embeddings [2048 = 768 (CLIP ViT-L) + 1280 (OpenCLIP bigG)].
        use_linear_projection: Linear proj_in / proj_out of the spatial transformers [True].
        addition_embed_type: ``"text_time"`` (size/crop conditioning) or None.
        addition_time_embed_dim: sinusoid width of each of the 6 ``time_ids`` [256].
        projection_class_embeddings_input_dim: input width of ``add_embedding`` = pooled text width +
            6 * addition_time_embed_dim [2816].
        norm_num_groups / norm_eps: resnet and transformer GroupNorm [32, 1e-5].
        flip_sin_to_cos / freq_shift: time sinusoid layout [True, 0] (also used for ``time_ids``).
        downsample_padding / mid_block_scale_factor: [1, 1].
    """

    in_channels: int = 4
    out_channels: int = 4
    block_out_channels: tuple[int, ...] = (320, 640, 1280)
    down_block_types: tuple[Literal["CrossAttnDownBlock2D", "DownBlock2D"], ...] = (
        "DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D")
    up_block_types: tuple[Literal["CrossAttnUpBlock2D", "UpBlock2D"], ...] = (
        "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D")
    mid_block_type: Literal["UNetMidBlock2DCrossAttn"] = "UNetMidBlock2DCrossAttn"
    layers_per_block: int = 2
    transformer_layers_per_block: Any = 1
    reverse_transformer_layers_per_block: Any = None
    attention_head_dim: Any = 8
    num_attention_heads: Any = None
    cross_attention_dim: int = 2048
    use_linear_projection: bool = True
    addition_embed_type: Literal["text_time", None] = None
    addition_time_embed_dim: int | None = None
    projection_class_embeddings_input_dim: int | None = None
    norm_num_groups: int = 32
    norm_eps: float = 1e-5
    flip_sin_to_cos: bool = True
    freq_shift: int = 0
    downsample_padding: int = 1
    mid_block_scale_factor: float = 1.0
    center_input_sample: bool = False
    sample_size: Any = None
    act_fn: Literal["silu", "swish"] = "silu"
    resnet_time_scale_shift: Literal["default"] = "default"
    resnet_skip_time_act: Literal[False] = False
    resnet_out_scale_factor: Literal[1.0] = 1.0
    time_embedding_type: Literal["positional"] = "positional"
    time_embedding_dim: Literal[None] = None
    time_embedding_act_fn: Literal[None] = None
    timestep_post_act: Literal[None] = None
    time_cond_proj_dim: Literal[None] = None
    conv_in_kernel: Literal[3] = 3
    conv_out_kernel: Literal[3] = 3
    dual_cross_attention: Literal[False] = False
    only_cross_attention: Literal[False] = False
    class_embed_type: Literal[None] = None
    num_class_embeds: Literal[None] = None
    class_embeddings_concat: Literal[False] = False
    encoder_hid_dim: Literal[None] = None
    encoder_hid_dim_type: Literal[None] = None
    mid_block_only_cross_attention: Literal[None, False] = None
    cross_attention_norm: Literal[None] = None
    attention_type: Literal["default"] = "default"
    dropout: float = 0.0
    upcast_attention: Any = unused(_FP16)
    addition_embed_type_num_heads: Any = unused("only for addition_embed_type 'text'", 64)
    _class_name: Any = unused(_DIFFUSERS, "UNet2DConditionModel")
    _diffusers_version: Any = unused(_DIFFUSERS)
    _name_or_path: Any = unused(_DIFFUSERS)

    def _per_level(self, value, key: str) -> list[int]:
        n = len(self.block_out_channels)
        out = [int(value)] * n if isinstance(value, int) else [int(v) for v in value]
        if len(out) != n:
            raise ConfigError(f"{key}: has {len(out)} entries for {n} levels")
        return out

    @property
    def num_levels(self) -> int:
        return len(self.block_out_channels)

    @property
    def heads(self) -> list[int]:
        """Spatial-attention heads per level (``num_attention_heads or attention_head_dim``)."""
        h = self.num_attention_heads if self.num_attention_heads is not None else self.attention_head_dim
        return self._per_level(h, "attention_head_dim")

    @property
    def depths(self) -> list[int]:
        """Transformer blocks per spatial transformer of each down level (the mid block uses the last)."""
        return self._per_level(self.transformer_layers_per_block, "transformer_layers_per_block")

    @property
    def up_depths(self) -> list[int]:
        """Transformer blocks per spatial transformer of each up level (deepest first)."""
        r = self.reverse_transformer_layers_per_block
        if r is None:
            return self.depths[::-1]
        if any(isinstance(v, (list, tuple)) for v in r):
            raise ConfigError("reverse_transformer_layers_per_block: per-layer lists are not supported")
        return self._per_level(r, "reverse_transformer_layers_per_block")

    def down_has_attention(self, i: int) -> bool:
        return self.down_block_types[i] == "CrossAttnDownBlock2D"

    def up_has_attention(self, i: int) -> bool:
        return self.up_block_types[i] == "CrossAttnUpBlock2D"

    def down_has_motion(self, i: int) -> bool:
        """Down block i gets motion modules (``2**i in motion_module_resolutions``)."""
        return self.use_motion_module and 2 ** i in self.motion_module_resolutions and not self.motion_module_decoder_only

    def up_has_motion(self, i: int) -> bool:
        """Up block i gets motion modules (``2**(n-1-i) in motion_module_resolutions``)."""
        return self.use_motion_module and 2 ** (self.num_levels - 1 - i) in self.motion_module_resolutions

    @property
    def mid_has_motion(self) -> bool:
        return self.use_motion_module and self.motion_module_mid_block

    @property
    def use_inflated_groupnorm(self) -> bool:
        """Resnet GroupNorms are per frame (always, in the sdxl branch)."""
        return True

    def __post_init__(self):
        self.block_out_channels = tuple(int(c) for c in self.block_out_channels)
        self.motion_module_resolutions = tuple(self.motion_module_resolutions)
        n = self.num_levels
        for key in ("down_block_types", "up_block_types"):
            if len(getattr(self, key)) != n:
                raise ConfigError(f"{key}: has {len(getattr(self, key))} entries for {n} levels (block_out_channels)")
        for key in ("heads", "depths", "up_depths"):
            getattr(self, key)  # raises ConfigError on a bad length
        for i, c in enumerate(self.block_out_channels):
            attends = self.down_has_attention(i) or self.up_has_attention(n - 1 - i) or i == n - 1  # mid: last level
            if attends and c % self.heads[i]:
                raise ConfigError(f"attention_head_dim: {c} channels of level {i} are not divisible into "
                                  f"{self.heads[i]} heads")
        if self.addition_embed_type == "text_time":
            if self.addition_time_embed_dim is None or self.projection_class_embeddings_input_dim is None:
                raise ConfigError("addition_embed_type: 'text_time' needs addition_time_embed_dim and "
                                  "projection_class_embeddings_input_dim")
            if self.projection_class_embeddings_input_dim <= 6 * self.addition_time_embed_dim:
                raise ConfigError(f"projection_class_embeddings_input_dim: {self.projection_class_embeddings_input_dim}"
                                  f" leaves no room for the pooled text next to 6 x {self.addition_time_embed_dim}")

    @property
    def pooled_text_dim(self) -> int:
        """Width of ``text_embeds`` that ``add_embedding`` expects (its input minus the 6 time ids)."""
        return self.projection_class_embeddings_input_dim - 6 * self.addition_time_embed_dim

    @classmethod
    def from_files(cls, unet_config: dict | str | Path, unet_additional_kwargs: dict | None = None,
                   where: str = "unet/config.json") -> UNetSDXLConfig:
        """Combine ``unet/config.json`` (dict or path) and ``unet_additional_kwargs`` (dict)."""
        if not isinstance(unet_config, dict):
            where = str(unet_config)
            unet_config = load_json(unet_config)
        extra = from_mapping(SDXLAdditionalKwargs, unet_additional_kwargs, "unet_additional_kwargs")
        for k in unet_config:
            if k in SDXLAdditionalKwargs.__dataclass_fields__:
                raise ConfigError(f"{where}: {k}: belongs in unet_additional_kwargs, not in unet/config.json")
        return from_mapping(cls, {**unet_config, **{f.name: getattr(extra, f.name)
                                                    for f in fields(SDXLAdditionalKwargs)}}, where)
