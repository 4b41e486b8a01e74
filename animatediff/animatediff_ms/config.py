"""Typed configs read from the original AnimateDiff files.

* :class:`MotionModuleConfig` / :class:`UNet3DConfig`: ``unet/config.json`` of the diffusers SD-1.5 folder
  (``UNet2DConditionModel`` schema) + ``unet_additional_kwargs`` of ``configs/inference/inference-v*.yaml``,
  as the original ``UNet3DConditionModel.from_pretrained_2d`` combines them (block types forced to the 3-D
  ones, every size read from the files).
* :class:`SchedulerConfig`: ``noise_scheduler_kwargs`` of the inference yaml (DDIM as the original
  configures it) plus this port's ``sampler`` choice.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config file or value that cannot be used (the message names the file/key)."""


def read_yaml(path) -> Any:
    """YAML file -> Python object; a missing or unreadable file raises :class:`ConfigError`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from e


def read_json(path) -> dict:
    """JSON file -> dict; a missing file raises :class:`ConfigError`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    return json.loads(path.read_text())


@dataclass
class MotionModuleConfig:
    """``motion_module_kwargs`` of the inference yaml (``VanillaTemporalModule`` arguments).

    Attributes:
        num_attention_heads: heads of each temporal attention (8).
        num_transformer_block: TemporalTransformerBlocks per motion module (1 in the released configs).
        attention_block_types: one entry per attention block, only ``"Temporal_Self"`` is supported
            (the released files use two).
        temporal_position_encoding: add the sinusoidal frame-position table before q/k/v (True).
        temporal_position_encoding_max_len: length of that table = the longest video (24, the code's default;
            the released configs do not set it).
        temporal_attention_dim_div: inner width = heads * (channels // heads // div) (1).
        zero_initialize: ``proj_out`` starts at zero (training only; loaded weights replace it).
    """

    num_attention_heads: int = 8
    num_transformer_block: int = 2
    attention_block_types: tuple = ("Temporal_Self", "Temporal_Self")
    temporal_position_encoding: bool = False
    temporal_position_encoding_max_len: int = 24
    temporal_attention_dim_div: int = 1
    zero_initialize: bool = True
    cross_frame_attention_mode: Any = None

    @classmethod
    def from_dict(cls, d: dict | None, where: str = "motion_module_kwargs") -> MotionModuleConfig:
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown keys {unknown}")
        cfg = cls(**d)
        cfg.attention_block_types = tuple(cfg.attention_block_types)
        for t in cfg.attention_block_types:
            if t != "Temporal_Self":
                raise ConfigError(f"{where}.attention_block_types: {t!r} is not supported (only 'Temporal_Self')")
        if cfg.cross_frame_attention_mode is not None:
            raise ConfigError(f"{where}.cross_frame_attention_mode must be null")
        return cfg


@dataclass
class UNet3DConfig:
    """The inflated UNet: SD-1.5 ``unet/config.json`` fields + ``unet_additional_kwargs``.

    Attributes (UNet2DConditionModel schema, diffusers 0.11 naming):
        in_channels / out_channels: latent channels (4).
        block_out_channels: channels of the 4 levels ((320, 640, 1280, 1280) for SD-1.5).
        layers_per_block: resnets per down block (up blocks have one more).
        attention_head_dim: NUMBER OF HEADS of the spatial attention (int or one per level).
        cross_attention_dim: width of the text embeddings (768).
        norm_num_groups / norm_eps: resnet GroupNorm groups and eps (32, 1e-5).
        flip_sin_to_cos / freq_shift: time-step sinusoid layout (True, 0).
        downsample_padding: padding of the stride-2 convs (1).
        use_linear_projection: spatial transformers' proj_in/proj_out as Linear (False: 1x1 convs).
        mid_block_scale_factor: resnet output scale of the mid block (1).
    Attributes (``unet_additional_kwargs``):
        use_inflated_groupnorm: resnet / final GroupNorms per frame (True, v2/v3) or over all frames (False, v1).
        use_motion_module: insert motion modules (True).
        motion_module_resolutions: down block i has them iff 2**i is listed; up block i iff 2**(3-i) is.
        motion_module_mid_block: a motion module in the mid block (v2).
        motion_module_decoder_only: none in the down blocks.
        motion_module_type: only ``"Vanilla"``.
        motion_module_kwargs: :class:`MotionModuleConfig`.
    """

    in_channels: int = 4
    out_channels: int = 4
    block_out_channels: tuple = (320, 640, 1280, 1280)
    layers_per_block: int = 2
    attention_head_dim: Any = 8
    cross_attention_dim: int = 768
    norm_num_groups: int = 32
    norm_eps: float = 1e-5
    flip_sin_to_cos: bool = True
    freq_shift: int = 0
    downsample_padding: int = 1
    use_linear_projection: bool = False
    mid_block_scale_factor: float = 1.0
    center_input_sample: bool = False
    sample_size: int | None = None
    use_inflated_groupnorm: bool = False
    use_motion_module: bool = False
    motion_module_resolutions: tuple = (1, 2, 4, 8)
    motion_module_mid_block: bool = False
    motion_module_decoder_only: bool = False
    motion_module_type: str | None = None
    motion_module_kwargs: MotionModuleConfig = field(default_factory=MotionModuleConfig)

    # keys of unet/config.json that do not change the network (or that the reference overrides)
    _IGNORED_2D = ("_class_name", "_diffusers_version", "_name_or_path", "down_block_types", "up_block_types",
                   "act_fn", "sample_size", "dual_cross_attention", "only_cross_attention", "upcast_attention",
                   "resnet_time_scale_shift", "class_embed_type", "num_class_embeds", "mid_block_type")
    _ADDITIONAL = ("use_inflated_groupnorm", "use_motion_module", "motion_module_resolutions",
                   "motion_module_mid_block", "motion_module_decoder_only", "motion_module_type",
                   "motion_module_kwargs", "unet_use_cross_frame_attention", "unet_use_temporal_attention")

    @property
    def heads(self) -> list[int]:
        """Spatial-attention heads per level (``attention_head_dim`` as a list)."""
        a = self.attention_head_dim
        return [int(a)] * len(self.block_out_channels) if isinstance(a, int) else [int(v) for v in a]

    @property
    def num_levels(self) -> int:
        return len(self.block_out_channels)

    def down_has_motion(self, i: int) -> bool:
        """Down block i gets motion modules (original: ``2**i in motion_module_resolutions``)."""
        return (self.use_motion_module and 2 ** i in self.motion_module_resolutions
                and not self.motion_module_decoder_only)

    def up_has_motion(self, i: int) -> bool:
        """Up block i gets motion modules (original: ``2**(3-i) in motion_module_resolutions``, 3 hard-coded)."""
        return self.use_motion_module and 2 ** (3 - i) in self.motion_module_resolutions

    @property
    def mid_has_motion(self) -> bool:
        return self.use_motion_module and self.motion_module_mid_block

    @classmethod
    def from_files(cls, unet_config: dict | str | Path, unet_additional_kwargs: dict | None = None,
                   where: str = "unet/config.json") -> UNet3DConfig:
        """Combine ``unet/config.json`` (dict or path) and ``unet_additional_kwargs`` (dict)."""
        if not isinstance(unet_config, dict):
            where = str(unet_config)
            unet_config = read_json(unet_config)
        d = dict(unet_config)
        extra = dict(unet_additional_kwargs or {})
        for k in list(extra):
            if k not in cls._ADDITIONAL:
                raise ConfigError(f"unet_additional_kwargs: unknown key {k!r}")
        for k in ("unet_use_cross_frame_attention", "unet_use_temporal_attention"):
            if extra.pop(k, None):
                raise ConfigError(f"unet_additional_kwargs.{k}=true is not supported")
        for k in ("dual_cross_attention", "upcast_attention", "only_cross_attention"):
            if d.get(k):
                raise ConfigError(f"{where}: {k}=true is not supported")
        if d.get("class_embed_type") is not None or d.get("num_class_embeds") is not None:
            raise ConfigError(f"{where}: class embeddings are not supported")
        if d.get("resnet_time_scale_shift", "default") != "default":
            raise ConfigError(f"{where}: resnet_time_scale_shift must be 'default'")
        if d.get("act_fn", "silu") not in ("silu", "swish"):
            raise ConfigError(f"{where}: act_fn {d.get('act_fn')!r} is not supported (silu)")
        known = {f.name for f in fields(cls)}
        kw = {}
        for k, v in d.items():
            if k in cls._IGNORED_2D:
                continue
            if k not in known:
                raise ConfigError(f"{where}: unknown key {k!r}")
            kw[k] = v
        kw["sample_size"] = d.get("sample_size")
        mm = extra.pop("motion_module_kwargs", None)
        kw.update(extra)
        cfg = cls(**kw)
        cfg.block_out_channels = tuple(int(c) for c in cfg.block_out_channels)
        cfg.motion_module_resolutions = tuple(cfg.motion_module_resolutions)
        cfg.motion_module_kwargs = MotionModuleConfig.from_dict(mm)
        if cfg.num_levels != 4:
            raise ConfigError(f"{where}: block_out_channels must have 4 entries (the reference forces 4 "
                              f"block types), got {list(cfg.block_out_channels)}")
        if len(cfg.heads) != cfg.num_levels:
            raise ConfigError(f"{where}: attention_head_dim has {len(cfg.heads)} entries for "
                              f"{cfg.num_levels} levels")
        if cfg.use_motion_module and cfg.motion_module_type != "Vanilla":
            raise ConfigError(f"unet_additional_kwargs.motion_module_type: {cfg.motion_module_type!r} "
                              f"is not supported (only 'Vanilla')")
        return cfg


@dataclass
class SchedulerConfig:
    """``noise_scheduler_kwargs`` (diffusers ``DDIMScheduler`` arguments) + the sampler choice.

    Attributes:
        num_train_timesteps: training steps T (1000).
        beta_start / beta_end / beta_schedule: betas; AnimateDiff uses ``linear`` 0.00085..0.012
            (``scaled_linear`` = SD's sqrt-linear also accepted).
        steps_offset: added to every inference timestep (1).
        clip_sample: clip x0 to [-1, 1] (False).
        set_alpha_to_one: the last step goes to alpha_prev = 1 (True).
        prediction_type: only ``"epsilon"``.
        sampler: ``"ddim"`` (the original) or ``"dpmpp_2m"`` (DPM-Solver++ 2M, this port's faster option);
            read from the key ``sampler`` of the prompt config or the inference config.
    """

    num_train_timesteps: int = 1000
    beta_start: float = 0.0001
    beta_end: float = 0.02
    beta_schedule: str = "linear"
    steps_offset: int = 0
    clip_sample: bool = True
    set_alpha_to_one: bool = True
    prediction_type: str = "epsilon"
    sampler: str = "ddim"

    SAMPLERS = ("ddim", "dpmpp_2m")

    @classmethod
    def from_dict(cls, d: dict | None, where: str = "noise_scheduler_kwargs") -> SchedulerConfig:
        d = dict(d or {})
        for k in ("trained_betas",):
            if d.get(k) is not None:
                raise ConfigError(f"{where}.{k} is not supported")
            d.pop(k, None)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown keys {unknown}")
        cfg = cls(**d)
        if cfg.beta_schedule not in ("linear", "scaled_linear"):
            raise ConfigError(f"{where}.beta_schedule: {cfg.beta_schedule!r} (expected 'linear' or 'scaled_linear')")
        if cfg.prediction_type != "epsilon":
            raise ConfigError(f"{where}.prediction_type: only 'epsilon' is supported")
        if cfg.sampler not in cls.SAMPLERS:
            raise ConfigError(f"sampler: {cfg.sampler!r} is not one of {list(cls.SAMPLERS)}")
        return cfg


@dataclass
class InferenceConfig:
    """``configs/inference/inference-v*.yaml``: ``unet_additional_kwargs`` + ``noise_scheduler_kwargs``."""

    unet_additional_kwargs: dict
    scheduler: SchedulerConfig
    path: str = ""

    @classmethod
    def load(cls, path) -> InferenceConfig:
        d = read_yaml(path)
        if not isinstance(d, dict) or "unet_additional_kwargs" not in d:
            raise ConfigError(f"{path}: not an inference config (no 'unet_additional_kwargs')")
        sched = dict(d.get("noise_scheduler_kwargs") or {})
        if "sampler" in d:
            sched["sampler"] = d["sampler"]
        return cls(unet_additional_kwargs=dict(d["unet_additional_kwargs"] or {}),
                   scheduler=SchedulerConfig.from_dict(sched, f"{path}: noise_scheduler_kwargs"), path=str(path))
