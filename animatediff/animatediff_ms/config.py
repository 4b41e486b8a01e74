"""Typed configs read from the original AnimateDiff files.

* :class:`MotionModuleConfig` / :class:`UNet3DConfig`: ``unet/config.json`` of the diffusers SD-1.5 folder
  (``UNet2DConditionModel`` schema) + ``unet_additional_kwargs`` of ``configs/inference/inference-v*.yaml``,
  as the original ``UNet3DConditionModel.from_pretrained_2d`` combines them (block types forced to the 3-D
  ones, every size read from the files).
* :class:`SchedulerConfig`: ``noise_scheduler_kwargs`` of the inference yaml (DDIM as the original
  configures it) plus this port's ``sampler`` choice.
* :class:`TrainingConfig`: ``configs/training/v1/training.yaml`` (the keyword arguments of the original
  ``train.py::main``).
* :class:`SparseControlNetKwargs` / :class:`ControlNetInferenceConfig`: ``configs/inference/sparsectrl/*.yaml``
  (``controlnet_additional_kwargs`` of ``SparseControlNetModel.from_unet``).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from common.config import ConfigError, from_mapping, load_json, load_yaml, unused
from common.vae import SD_SCALE_FACTOR, DDConfig

_TRAINING = "a key of the training config (read by TrainingConfig)"

__all__ = ["ConfigError", "MotionModuleConfig", "UNet3DAdditionalKwargs", "UNet3DConfig", "VAEConfig",
           "SchedulerConfig", "InferenceConfig", "TrainDataConfig", "ValidationDataConfig", "TrainingConfig", "SparseControlNetKwargs",
           "ControlNetInferenceConfig"]



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
    attention_block_types: tuple[str, ...] = ("Temporal_Self", "Temporal_Self")
    temporal_position_encoding: bool = False
    temporal_position_encoding_max_len: int = 24
    temporal_attention_dim_div: int = 1
    zero_initialize: bool = True
    cross_frame_attention_mode: Literal[None] = None

    def __post_init__(self):
        self.attention_block_types = tuple(self.attention_block_types)
        for t in self.attention_block_types:
            if t != "Temporal_Self":
                raise ConfigError(f"attention_block_types: {t!r} is not supported (only 'Temporal_Self')")


@dataclass
class UNet3DAdditionalKwargs:
    """``unet_additional_kwargs`` of the inference yaml (see :class:`UNet3DConfig`).

    Attributes:
        use_inflated_groupnorm: GroupNorm per frame (v2/v3) instead of over all frames of a video (v1).
        use_motion_module: insert the motion modules (true in every AnimateDiff config).
        motion_module_resolutions: the downsampling factors of the levels that get motion modules ([1, 2, 4, 8]).
        motion_module_mid_block: a motion module in the mid block too (v2).
        motion_module_decoder_only: motion modules only in the up path (false).
        motion_module_type: "Vanilla".
        motion_module_kwargs: :class:`MotionModuleConfig`.
        unet_use_cross_frame_attention / unet_use_temporal_attention: false (the original's unused switches).
    """

    use_inflated_groupnorm: bool = False
    use_motion_module: bool = False
    motion_module_resolutions: tuple[int, ...] = (1, 2, 4, 8)
    motion_module_mid_block: bool = False
    motion_module_decoder_only: bool = False
    motion_module_type: Literal["Vanilla", None] = None
    motion_module_kwargs: MotionModuleConfig = field(default_factory=MotionModuleConfig)
    unet_use_cross_frame_attention: Literal[False, None] = None
    unet_use_temporal_attention: Literal[False, None] = None


@dataclass
class UNet3DConfig(UNet3DAdditionalKwargs):
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
    act_fn: Literal["silu", "swish"] = "silu"
    resnet_time_scale_shift: Literal["default"] = "default"
    dual_cross_attention: Literal[False] = False
    only_cross_attention: Literal[False] = False
    upcast_attention: Literal[False] = False
    class_embed_type: Literal[None] = None
    num_class_embeds: Literal[None] = None
    _class_name: Any = unused("diffusers' class name", "UNet2DConditionModel")
    _diffusers_version: Any = unused("the diffusers version that wrote the file")
    _name_or_path: Any = unused("where diffusers loaded the file from")
    down_block_types: Any = unused("the reference forces the 3-D block types")
    up_block_types: Any = unused("the reference forces the 3-D block types")
    mid_block_type: Any = unused("the reference forces UNetMidBlock3DCrossAttn")

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

    def __post_init__(self):
        self.block_out_channels = tuple(int(c) for c in self.block_out_channels)
        self.motion_module_resolutions = tuple(self.motion_module_resolutions)
        if self.num_levels != 4:
            raise ConfigError(f"block_out_channels: must have 4 entries (the reference forces 4 "
                              f"block types), got {list(self.block_out_channels)}")
        if len(self.heads) != self.num_levels:
            raise ConfigError(f"attention_head_dim: has {len(self.heads)} entries for {self.num_levels} levels")
        if self.use_motion_module and self.motion_module_type != "Vanilla":
            raise ConfigError(f"motion_module_type: {self.motion_module_type!r} is not supported (only 'Vanilla')")

    @classmethod
    def from_files(cls, unet_config: dict | str | Path, unet_additional_kwargs: dict | None = None,
                   where: str = "unet/config.json") -> UNet3DConfig:
        """Combine ``unet/config.json`` (dict or path) and ``unet_additional_kwargs`` (dict)."""
        if not isinstance(unet_config, dict):
            where = str(unet_config)
            unet_config = load_json(unet_config)
        extra = from_mapping(UNet3DAdditionalKwargs, unet_additional_kwargs, "unet_additional_kwargs")
        for k in unet_config:
            if k in UNet3DAdditionalKwargs.__dataclass_fields__:
                raise ConfigError(f"{where}: {k}: belongs in unet_additional_kwargs, not in unet/config.json")
        return from_mapping(cls, {**unet_config, **{f.name: getattr(extra, f.name)
                                                    for f in fields(UNet3DAdditionalKwargs)}}, where)


@dataclass
class VAEConfig:
    """``vae/config.json`` of the diffusers SD folder (``AutoencoderKL`` schema), as an LDM ddconfig.

    block_out_channels: widths per level (multiples of the first). layers_per_block: res blocks per encoder level.
    latent_channels: z channels (= embed_dim). norm_num_groups: GroupNorm groups (32 for SD).
    scaling_factor: the latent scale (absent from SD-1.5's file: diffusers' default 0.18215, which the
    original AnimateDiff pipeline hard-codes).
    """

    block_out_channels: tuple[int, ...] = (64,)
    layers_per_block: int = 2
    latent_channels: int = 4
    in_channels: int = 3
    out_channels: int = 3
    sample_size: int = 256
    norm_num_groups: int = 32
    scaling_factor: float = SD_SCALE_FACTOR
    act_fn: Literal["silu"] = "silu"
    down_block_types: tuple[Literal["DownEncoderBlock2D"], ...] = ()
    up_block_types: tuple[Literal["UpDecoderBlock2D"], ...] = ()
    # keys newer diffusers versions write (SDXL's vae/config.json); only their default values are supported
    force_upcast: Any = unused("float16 only (this port decodes in float32)", True)
    latents_mean: Literal[None] = None
    latents_std: Literal[None] = None
    shift_factor: Literal[None] = None
    use_quant_conv: Literal[True] = True
    use_post_quant_conv: Literal[True] = True
    mid_block_add_attention: Literal[True] = True
    _class_name: Any = unused("diffusers' class name", "AutoencoderKL")
    _diffusers_version: Any = unused("the diffusers version that wrote the file")
    _name_or_path: Any = unused("where diffusers loaded the file from")

    def __post_init__(self):
        ch = self.block_out_channels
        if not ch or any(c % ch[0] for c in ch):
            raise ConfigError(f"block_out_channels: {list(ch)} are not multiples of the first")

    def ddconfig(self) -> DDConfig:
        """The LDM ``ddconfig`` of this VAE (no attention outside the mid blocks, as diffusers' SD VAE)."""
        ch = self.block_out_channels
        return DDConfig(double_z=True, z_channels=self.latent_channels, resolution=self.sample_size,
                        in_channels=self.in_channels, out_ch=self.out_channels, ch=ch[0],
                        ch_mult=tuple(c // ch[0] for c in ch), num_res_blocks=self.layers_per_block,
                        attn_resolutions=(), norm_num_groups=self.norm_num_groups)

    @classmethod
    def from_file(cls, path) -> VAEConfig:
        """Read ``vae/config.json``."""
        return from_mapping(cls, load_json(path), str(path))


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
    beta_schedule: Literal["linear", "scaled_linear"] = "linear"
    steps_offset: int = 0
    clip_sample: bool = True
    set_alpha_to_one: bool = True
    prediction_type: Literal["epsilon"] = "epsilon"
    trained_betas: Literal[None] = None
    sampler: str = "ddim"

    SAMPLERS = ("ddim", "dpmpp_2m")

    def __post_init__(self):
        if self.sampler not in self.SAMPLERS:
            raise ConfigError(f"sampler: {self.sampler!r} is not one of {list(self.SAMPLERS)}")

    @classmethod
    def from_dict(cls, d: dict | None, where: str = "noise_scheduler_kwargs") -> SchedulerConfig:
        return from_mapping(cls, d, where)


@dataclass
class _InferenceFile:
    """The keys of ``configs/inference/inference-v*.yaml`` (and of the training yaml, which carries the same two)."""

    unet_additional_kwargs: dict
    noise_scheduler_kwargs: dict | None = None
    sampler: str | None = None
    image_finetune: Any = unused(_TRAINING)
    output_dir: Any = unused(_TRAINING)
    pretrained_model_path: Any = unused(_TRAINING + "; inference takes --pretrained_model_path")
    train_data: Any = unused(_TRAINING)
    validation_data: Any = unused(_TRAINING)
    trainable_modules: Any = unused(_TRAINING)
    unet_checkpoint_path: Any = unused(_TRAINING)
    learning_rate: Any = unused(_TRAINING)
    train_batch_size: Any = unused(_TRAINING)
    max_train_steps: Any = unused(_TRAINING)
    max_grad_norm: Any = unused(_TRAINING)
    cfg_random_null_text: Any = unused(_TRAINING)
    cfg_random_null_text_ratio: Any = unused(_TRAINING)
    global_seed: Any = unused(_TRAINING)
    mixed_precision_training: Any = unused(_TRAINING)
    enable_xformers_memory_efficient_attention: Any = unused("xformers: the same numbers here")
    is_debug: Any = unused(_TRAINING)


@dataclass
class InferenceConfig:
    """``configs/inference/inference-v*.yaml``: ``unet_additional_kwargs`` + ``noise_scheduler_kwargs``."""

    unet_additional_kwargs: dict
    scheduler: SchedulerConfig
    path: str = ""

    @classmethod
    def load(cls, path) -> InferenceConfig:
        f = from_mapping(_InferenceFile, load_yaml(path), str(path))
        sched = dict(f.noise_scheduler_kwargs or {})
        if f.sampler is not None:
            sched["sampler"] = f.sampler
        from_mapping(UNet3DAdditionalKwargs, f.unet_additional_kwargs, f"{path}: unet_additional_kwargs")
        return cls(unet_additional_kwargs=dict(f.unet_additional_kwargs),
                   scheduler=SchedulerConfig.from_dict(sched, f"{path}: noise_scheduler_kwargs"), path=str(path))


@dataclass
class TrainDataConfig:
    """``train_data`` of the training yaml: the original's ``WebVid10M`` dataset.

    Attributes:
        csv_path: WebVid CSV with the columns ``videoid,name,page_dir`` (``name`` is the caption); empty or null = no CSV:
            ``video_folder`` is a folder dataset (every *.mp4 under it, its caption in a same-named .txt beside it
            or in ``captions.csv``); a folder = a folder dataset there.
        video_folder: the clips, ``<video_folder>/<videoid>.mp4`` (``page_dir`` is not part of the path).
        sample_size: frame size, one int (square) or ``[H, W]``: short side resized to H, centre crop to H x W.
        sample_stride: frames between two sampled frames (shortened, as the original, for a short clip).
        sample_n_frames: frames per clip (at most the motion module's ``temporal_position_encoding_max_len``).
    """

    csv_path: str | None = ""
    video_folder: str = ""
    sample_size: int | tuple[int, int] = 256
    sample_stride: int = 4
    sample_n_frames: int = 16

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)`` of ``sample_size``."""
        s = self.sample_size
        return (int(s), int(s)) if isinstance(s, int) else (int(s[0]), int(s[1]))


@dataclass
class ValidationDataConfig:
    """``validation_data`` of the training yaml: the sampling every ``validation_steps`` steps.

    Attributes:
        prompts: the validation prompts (the first two before step 1000, as the original; one GIF each).
        num_inference_steps: DDIM steps of a validation video.
        guidance_scale: classifier-free guidance weight (8.0).
    """

    prompts: tuple[str, ...] = ()
    num_inference_steps: int = 25
    guidance_scale: float = 8.0


@dataclass
class TrainingConfig:
    """``configs/training/v1/training.yaml``: the keyword arguments of the original ``train.py::main`` (same
    names and defaults), plus this port's MotionLoRA keys. Relative paths are kept as written (resolved against
    the working directory, as the original).

    Attributes:
        pretrained_model_path: diffusers SD-1.5 folder (tokenizer, text encoder, VAE, 2-D UNet).
        output_dir: checkpoints, samples and the log (a run already there is resumed).
        unet_additional_kwargs: the motion-module layout, as in the inference yaml (the v1 training yaml sets neither
            ``use_inflated_groupnorm`` nor ``motion_module_mid_block``: both False; keys below).
        noise_scheduler_kwargs: :class:`SchedulerConfig` of the noising (``DDIMScheduler.add_noise``; linear betas).
        train_data: :class:`TrainDataConfig`. validation_data: :class:`ValidationDataConfig`.
        trainable_modules: a UNet parameter is trained iff its name CONTAINS one of these (``["motion_modules."]``).
        unet_checkpoint_path: initial UNet weights (``{"global_step", "state_dict"}`` or a flat dict; any UNet
            keys, none unexpected, so no ``pos_encoder.pe`` tables: a released motion module is refused); "" = none.
        learning_rate: AdamW peak learning rate (3e-5).
        scale_lr: multiply the learning rate by accumulation x batch x processes (False).
        lr_scheduler: "constant" or "cosine" (after the warm-up).
        lr_warmup_steps: linear warm-up steps (0).
        adam_beta1 / adam_beta2 / adam_weight_decay / adam_epsilon: AdamW's (0.9, 0.999, 0.01, 1e-8).
        train_batch_size: videos per step and process (1).
        gradient_accumulation_steps: micro-batches averaged into one optimizer step (1).
        max_grad_norm: clip the gradients' total 2-norm to this (1.0; 0 = no clipping).
        max_train_epoch: epochs to train when ``max_train_steps`` is -1 (-1).
        max_train_steps: optimizer steps of the run (100); -1 = ``max_train_epoch`` epochs.
        checkpointing_steps: write a motion-module checkpoint (and the resume state) every this many steps (-1).
        checkpointing_epochs: the same every this many epochs (5; used when ``checkpointing_steps`` is -1).
        validation_steps: sample the validation prompts every this many steps (100).
        validation_steps_tuple: also sample at these steps (e.g. [2, 50]).
        global_seed: seed of the data order and of every draw (42).
        cfg_random_null_text / cfg_random_null_text_ratio: replace a caption by "" with this probability (0.1).
        mixed_precision_training: float16 UNet compute (norms float32) with dynamic loss scaling on GPU/Ascend (True);
            float32 on CPU.
        gradient_checkpointing: recompute the UNet's down and mid blocks in the backward pass (less memory, same
            numbers).
        image_finetune: the original's 2-D image stage; only false (the motion-module stage) is ported.
        motion_lora_rank: > 0 trains a MotionLoRA of this rank on the motion modules' to_q/to_k/to_v/to_out
            instead of ``trainable_modules`` (0 = off; port key).
        motion_lora_alpha: the MotionLoRA's scale in training (``W + alpha * up @ down``; 1.0; port key); the
            saved file is loaded by inference at ``alpha`` to reproduce the trained model.
    """

    unet_additional_kwargs: dict = field(default_factory=dict)
    noise_scheduler_kwargs: SchedulerConfig = field(default_factory=SchedulerConfig)
    pretrained_model_path: str = ""
    output_dir: str = "outputs"
    train_data: TrainDataConfig = field(default_factory=TrainDataConfig)
    validation_data: ValidationDataConfig = field(default_factory=ValidationDataConfig)
    trainable_modules: tuple[str, ...] = ()
    unet_checkpoint_path: str = ""
    learning_rate: float = 3e-5
    scale_lr: bool = False
    lr_warmup_steps: int = 0
    lr_scheduler: Literal["constant", "cosine"] = "constant"
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_weight_decay: float = 1e-2
    adam_epsilon: float = 1e-8
    train_batch_size: int = 1
    gradient_accumulation_steps: int = 1
    max_grad_norm: float = 1.0
    max_train_epoch: int = -1
    max_train_steps: int = 100
    checkpointing_steps: int = -1
    checkpointing_epochs: int = 5
    validation_steps: int = 100
    validation_steps_tuple: tuple[int, ...] = ()
    global_seed: int = 42
    cfg_random_null_text: bool = True
    cfg_random_null_text_ratio: float = 0.1
    mixed_precision_training: bool = True
    gradient_checkpointing: bool = False
    motion_lora_rank: int = 0
    motion_lora_alpha: float = 1.0
    image_finetune: Literal[False] = False
    name: Any = unused("the run name (the original appends a timestamp to output_dir; here output_dir is used as "
                       "given so that a run resumes)")
    use_wandb: Any = unused("Weights & Biases logging (the log is output_dir/train_log.jsonl)", False)
    launcher: Any = unused("torch.distributed launcher (data parallel runs under msrun here)")
    resume_ckpt: Any = unused("a run resumes from output_dir's newest checkpoint by itself")
    ema_decay: Any = unused("no EMA in the original's loop", 0.9999)
    num_workers: Any = unused("data loader processes (clips are decoded in the training process)", 32)
    is_debug: Any = unused("the original's debug switch", False)
    use_adamw8bit: Any = unused("bitsandbytes 8-bit AdamW: float32 AdamW here", False)
    enable_xformers_memory_efficient_attention: Any = unused("xformers: the same numbers here")

    @classmethod
    def load(cls, path) -> TrainingConfig:
        """Read a training yaml (every key checked, ``unet_additional_kwargs`` too)."""
        return cls.from_dict(load_yaml(path), str(path))

    @classmethod
    def from_dict(cls, data, where: str) -> TrainingConfig:
        """Build from the parsed yaml (overrides applied); ``where`` names the file in errors."""
        cfg = from_mapping(cls, data, where)
        from_mapping(UNet3DAdditionalKwargs, cfg.unet_additional_kwargs, f"{where}: unet_additional_kwargs")
        if not cfg.trainable_modules and cfg.motion_lora_rank <= 0:
            raise ConfigError(f"{where}: trainable_modules: empty (the original then trains nothing)")
        return cfg


def _controlnet_motion_defaults() -> MotionModuleConfig:
    # SparseControlNetModel's default motion_module_kwargs (used only when the yaml gives none)
    return MotionModuleConfig(num_attention_heads=8, num_transformer_block=1, attention_block_types=("Temporal_Self",),
                              temporal_position_encoding=True, temporal_position_encoding_max_len=32)


@dataclass
class SparseControlNetKwargs:
    """``controlnet_additional_kwargs`` of ``configs/inference/sparsectrl/*.yaml`` (SparseCtrl, Guo et al. 2023).

    Everything else of the controlnet comes from the UNet it is built from (``SparseControlNetModel.from_unet``):
    ``block_out_channels``, ``layers_per_block``, ``attention_head_dim`` (down-block heads), ``norm_num_groups``,
    ``norm_eps``, ``cross_attention_dim``, ``flip_sin_to_cos`` / ``freq_shift``, ``downsample_padding``,
    ``use_linear_projection``, ``mid_block_scale_factor``.

    Attributes:
        set_noisy_sample_input_to_zero: the noisy latents are replaced by zeros (True in both released configs):
            the residuals then depend on the timestep, the text and the condition only.
        use_simplified_condition_embedding: the condition embedding is ONE 3x3 conv (True: the RGB controlnet,
            whose condition is VAE-encoded latents) or the 8x-downsampling conv stack (False: scribble, pixels).
        conditioning_channels: channels of the condition (4 latent channels for RGB, 3 for scribble).
        concate_conditioning_mask: the 0/1 frame mask is concatenated as one more condition channel (True).
        use_motion_module / motion_module_resolutions / motion_module_mid_block / motion_module_type /
            motion_module_kwargs: as in ``unet_additional_kwargs`` (the released configs: modules at
            [1, 2, 4, 8], ONE ``Temporal_Self`` attention block each, position table of 32 frames).
        global_pool_conditions: only False (the original pools a 5-D tensor over the wrong axes).
    """

    set_noisy_sample_input_to_zero: bool = False
    use_simplified_condition_embedding: bool = False
    conditioning_channels: int = 3
    concate_conditioning_mask: bool = True
    use_motion_module: bool = True
    motion_module_resolutions: tuple[int, ...] = (1, 2, 4, 8)
    motion_module_mid_block: bool = False
    motion_module_type: Literal["Vanilla"] = "Vanilla"
    motion_module_kwargs: MotionModuleConfig = field(default_factory=_controlnet_motion_defaults)
    global_pool_conditions: Literal[False] = False

    def __post_init__(self):
        self.motion_module_resolutions = tuple(self.motion_module_resolutions)
        if self.conditioning_channels < 1:
            raise ConfigError(f"conditioning_channels: must be >= 1, got {self.conditioning_channels}")

    @property
    def kind(self) -> str:
        """``"rgb"`` (simplified embedding of VAE latents) or ``"scribble"`` (pixel-condition embedding)."""
        return "rgb" if self.use_simplified_condition_embedding else "scribble"

    def down_has_motion(self, i: int) -> bool:
        """Down block i gets motion modules (``2**i in motion_module_resolutions``)."""
        return self.use_motion_module and 2 ** i in self.motion_module_resolutions

    @property
    def mid_has_motion(self) -> bool:
        return self.use_motion_module and self.motion_module_mid_block


@dataclass
class _ControlNetFile:
    controlnet_additional_kwargs: SparseControlNetKwargs = field(default_factory=SparseControlNetKwargs)


@dataclass
class ControlNetInferenceConfig:
    """A SparseCtrl inference yaml (``controlnet_config`` of a prompt entry): ``controlnet_additional_kwargs``."""

    controlnet_additional_kwargs: SparseControlNetKwargs
    path: str = ""

    @classmethod
    def load(cls, path) -> ControlNetInferenceConfig:
        data = load_yaml(path)
        if data is None:
            data = {}
        f = from_mapping(_ControlNetFile, data, str(path))
        return cls(f.controlnet_additional_kwargs, str(path))
