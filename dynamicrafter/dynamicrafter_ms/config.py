"""Typed view of the original DynamiCrafter YAML (``configs/inference_*_v1.0.yaml``, also the training ones).

The YAML keeps the original schema (``model.target`` / ``model.params`` with ``unet_config``,
``first_stage_config``, ``cond_stage_config``, ``img_cond_stage_config``,
``image_proj_stage_config``); this module reads it with :func:`common.config.from_mapping` into dataclasses
that declare every key the released files carry (an unknown key is an error naming the file and key path).
Nothing is hard-coded: every width, depth, level and frame count comes from the file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from common.config import ConfigError, from_mapping, from_node, join, load_yaml, unused
from common.vae import AutoencoderKLParams as AutoencoderConfig  # first_stage_config.params

__all__ = ["ConfigError", "UNetConfig", "ResamplerConfig", "AutoencoderConfig", "OpenCLIPTextConfig",
           "OpenCLIPImageConfig", "DiffusionConfig", "DynamiCrafterConfig"]

_TRAINING = "a setting of the original's training code with no effect in this port"


@dataclass
class UNetConfig:
    """``unet_config.params`` of ``lvdm.modules.networks.openaimodel3d.UNetModel``.

    in_channels: input channels (noisy latent + image latent, 8).
    out_channels: output channels (4).
    model_channels: base width (320 released).
    num_res_blocks: ResBlocks per level.
    attention_resolutions: downsample rates (1, 2, 4 ...) whose blocks get transformers.
    channel_mult: width multiplier per level.
    dropout: ResBlock dropout (training; 0.1 in the releases).
    num_head_channels: width per head (or -1 with num_heads).
    num_heads: heads (used only when num_head_channels is -1).
    transformer_depth: blocks per transformer.
    context_dim: cross-attention width.
    use_linear: Linear (True) or 1x1-conv projections.
    use_checkpoint: train.py: gradient checkpointing of every UNet block (same gradients, less memory).
    temporal_conv: TemporalConvBlock after each ResBlock.
    temporal_attention: temporal transformers.
    use_relative_position / use_causal_attention: options of the temporal attention (off in every release).
    temporal_length: frames at training (informative; the UNet runs any frame count; rand_cond_frame's range).
    addition_attention: the ``init_attn`` temporal transformer after the first conv.
    image_cross_attention: separate ``to_k_ip``/``to_v_ip`` attention over the image tokens.
    image_cross_attention_scale_learnable: learnable gate ``alpha`` (scale tanh(alpha)+1; 256 release).
    default_fs: fs used when none is given.
    fs_condition: add the fs/fps embedding to the time embedding.
    """

    in_channels: int = 8
    out_channels: int = 4
    model_channels: int = 320
    num_res_blocks: int = 2
    attention_resolutions: list = field(default_factory=lambda: [4, 2, 1])
    channel_mult: list = field(default_factory=lambda: [1, 2, 4, 4])
    dropout: float = 0.0
    num_head_channels: int = 64
    num_heads: int = -1
    transformer_depth: int = 1
    context_dim: int = 1024
    use_linear: bool = True
    use_checkpoint: bool = False
    conv_resample: bool = True
    dims: int = 2
    use_scale_shift_norm: bool = False
    resblock_updown: bool = False
    temporal_conv: bool = True
    tempspatial_aware: bool = False
    temporal_attention: bool = True
    temporal_selfatt_only: bool = True
    use_relative_position: bool = False
    use_causal_attention: bool = False
    temporal_length: int | None = 16
    use_fp16: bool = unused("dtype is chosen by this port, float32 by default", False)
    addition_attention: bool = True
    image_cross_attention: bool = True
    image_cross_attention_scale_learnable: bool = False
    default_fs: int = 4
    fs_condition: bool = True

    def __post_init__(self):
        for name in ("use_scale_shift_norm", "resblock_updown", "tempspatial_aware",
                     "use_relative_position", "use_causal_attention"):
            if getattr(self, name):
                raise ConfigError(f"{name}: true is not supported "
                                  f"(no released DynamiCrafter model uses it)")
        if self.dims != 2:
            raise ConfigError(f"dims: {self.dims} is not supported (the released UNets use 2)")
        if self.num_head_channels == -1 and self.num_heads == -1:
            raise ConfigError("num_heads: either num_heads or num_head_channels has to be set")
        if self.addition_attention and self.num_head_channels == -1:
            raise ConfigError("addition_attention: addition_attention needs num_head_channels (init_attn uses "
                              "8 heads x num_head_channels)")


@dataclass
class ResamplerConfig:
    """``image_proj_stage_config.params`` of ``lvdm.modules.encoders.resampler.Resampler``.

    dim: query width. depth: layers. dim_head / heads: attention shape. num_queries: queries per frame.
    embedding_dim: width of the CLIP image tokens. output_dim: width of the output tokens (UNet context_dim).
    ff_mult: feed-forward multiplier. video_length: frames (queries = num_queries * video_length; None = 1 set).
    """

    dim: int = 1024
    depth: int = 4
    dim_head: int = 64
    heads: int = 12
    num_queries: int = 16
    embedding_dim: int = 1280
    output_dim: int = 1024
    ff_mult: int = 4
    video_length: int | None = 16


@dataclass
class OpenCLIPTextConfig:
    """``cond_stage_config.params`` (``FrozenOpenCLIPEmbedder``).

    arch: open_clip model name (ViT-H-14, or an arch of ``open_clip_archs.json``). layer: ``"last"`` or
    ``"penultimate"`` transformer output.
    """

    arch: str = "ViT-H-14"
    layer: Literal["last", "penultimate"] = "last"
    version: Any = unused("open_clip's pretrained tag: the weights come from the checkpoint", "laion2b_s32b_b79k")
    freeze: bool = unused("inference only: every tower is frozen", True)
    device: Any = unused("MindSpore places tensors itself", "cuda")


@dataclass
class OpenCLIPImageConfig:
    """``img_cond_stage_config.params`` (``FrozenOpenCLIPImageEmbedderV2``).

    arch: open_clip model name. antialias: antialiased resize to 224 (the original's default True).
    """

    arch: str = "ViT-H-14"
    antialias: bool = True
    version: Any = unused("open_clip's pretrained tag: the weights come from the checkpoint", "laion2b_s32b_b79k")
    freeze: bool = unused("inference only: every tower is frozen", True)
    device: Any = unused("MindSpore places tensors itself", "cuda")


@dataclass
class DiffusionConfig:
    """The ``model.params`` of ``LatentVisualDiffusion`` that inference uses.

    timesteps / linear_start / linear_end / beta_schedule: the DDPM beta schedule.
    rescale_betas_zero_snr: zero terminal SNR (512/1024).
    parameterization: "eps" (256) or "v".
    scale_factor: latent scale (0.18215).
    use_dynamic_rescale / base_scale / turning_step: the x0 rescale of the 512/1024 models.
    fps_condition_type: "fs" (frame stride) or "fps" (the clip's frame rate).
    perframe_ae: encode/decode one frame at a time.
    uncond_type: "empty_seq" ("" prompt) or "zero_embed".
    image_size: latent [h, w] at training.
    channels: latent channels.
    conditioning_key: "hybrid".
    cond_stage_trainable: train the text encoder (train.py: only false).
    image_proj_model_trainable: train.py trains the Resampler too (else the UNet only).
    use_ema: train.py keeps an EMA of the trained parameters (LitEma; exported at the end).
    uncond_prob: conditioning dropout p (text, both, image dropped each with probability p).
    rand_cond_frame: a random conditioning frame per batch (else the first).
    interp_mode: first + last frame latents (the interpolation model; at inference it marks a config that
        --interp / --loop accept, the flags pick the mode).
    l_simple_weight / original_elbo_weight / logvar_init / learn_logvar: the loss weights (the original's defaults).
    The other keys are the training code's (declared so that the released files read as they are).
    """

    scale_factor: float
    timesteps: int = 1000
    linear_start: float = 0.00085
    linear_end: float = 0.012
    beta_schedule: str = "linear"
    rescale_betas_zero_snr: bool = False
    parameterization: str = "eps"
    use_dynamic_rescale: bool = False
    base_scale: float = 0.7
    turning_step: int = 400
    fps_condition_type: str = "fs"
    perframe_ae: bool = False
    uncond_type: str = "empty_seq"
    image_size: Any = None
    channels: int = 4
    conditioning_key: str = "hybrid"
    num_timesteps_cond: Any = unused(_TRAINING, 1)
    first_stage_key: Any = unused(_TRAINING, "video")
    cond_stage_key: Any = unused(_TRAINING, "caption")
    cond_stage_trainable: bool = False
    image_proj_model_trainable: bool = True
    scale_by_std: bool = unused("training only: scale_factor is read as given", False)
    use_ema: bool = False
    uncond_prob: float = 0.0
    rand_cond_frame: bool = False
    interp_mode: bool = False
    l_simple_weight: float = 1.0
    original_elbo_weight: float = 0.0
    logvar_init: float = 0.0
    learn_logvar: bool = False
    log_every_t: Any = unused(_TRAINING, 100)

    def __post_init__(self):
        if self.parameterization not in ("eps", "v"):
            raise ConfigError(f"parameterization: {self.parameterization!r} is not 'eps' or 'v'")
        if self.uncond_type not in ("empty_seq", "zero_embed"):
            raise ConfigError(f"uncond_type: {self.uncond_type!r} is not 'empty_seq' or 'zero_embed'")
        if self.conditioning_key != "hybrid":
            raise ConfigError(f"conditioning_key: {self.conditioning_key!r} is not supported "
                              "(DynamiCrafter uses 'hybrid')")


@dataclass
class _ModelNode:
    target: Literal["lvdm.models.ddpm3d.LatentVisualDiffusion"]
    params: dict
    base_learning_rate: Any = unused(_TRAINING)
    scale_lr: Any = unused(_TRAINING)
    pretrained_checkpoint: Any = unused(_TRAINING)


@dataclass
class _File:
    model: _ModelNode
    data: Any = unused("the training data module (read by train.py: dynamicrafter_ms.train_config)")
    lightning: Any = unused("the training loop's settings (read by train.py: dynamicrafter_ms.train_config)")


#: the stage nodes of ``model.params``: key -> (field of DynamiCrafterConfig, dataclass of its params)
_STAGES = {"unet_config": ("unet", UNetConfig), "first_stage_config": ("autoencoder", AutoencoderConfig),
           "cond_stage_config": ("text_encoder", OpenCLIPTextConfig),
           "img_cond_stage_config": ("image_encoder", OpenCLIPImageConfig),
           "image_proj_stage_config": ("resampler", ResamplerConfig)}


@dataclass
class DynamiCrafterConfig:
    """Everything read from one DynamiCrafter YAML."""

    diffusion: DiffusionConfig
    unet: UNetConfig
    resampler: ResamplerConfig
    autoencoder: AutoencoderConfig
    text_encoder: OpenCLIPTextConfig
    image_encoder: OpenCLIPImageConfig
    path: str | None = None

    @classmethod
    def from_dict(cls, cfg: dict, where: str = "<config>") -> DynamiCrafterConfig:
        """Build from the parsed YAML (the whole file, with a top-level ``model`` key).

        Raises:
            ConfigError: a missing or unknown key, a wrong type or an unsupported option (file and key named).
        """
        top = from_mapping(_File, cfg, where)
        params = dict(top.model.params)
        at = join(join(where, "model"), "params")
        for key in _STAGES:
            if key not in params:
                raise ConfigError(f"{join(at, key)}: missing (a required key)")
        stages = {name: from_node(stage_cls, params.pop(key), join(at, key))
                  for key, (name, stage_cls) in _STAGES.items()}
        return cls(diffusion=from_mapping(DiffusionConfig, params, at), path=where, **stages)

    @classmethod
    def from_yaml(cls, path) -> DynamiCrafterConfig:
        """Read a YAML file (original schema)."""
        return cls.from_dict(load_yaml(path), str(path))
