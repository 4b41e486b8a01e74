"""Typed views of the original SVD YAML (``scripts/sampling/configs/svd*.yaml`` schema).

The YAML is read as the original repository writes it (``model.target: sgm.models.diffusion.DiffusionEngine``,
``params.network_config`` / ``conditioner_config`` / ``first_stage_config`` / ``sampler_config`` /
``denoiser_config`` and, for training, ``loss_fn_config``) with :func:`common.config.from_mapping`: the
dataclasses below declare every key the released files carry (those without effect here as
:func:`~common.config.unused`), so an unknown key is an error naming the file and key path. Every size comes
from the file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from common.config import ConfigError, from_mapping, from_node, join, load_yaml, unused
from common.vae import AutoencoderKLParams, DDConfig

_AUTOCAST = "torch autocast switch; this port runs float32 unless told otherwise"


@dataclass
class VideoUNetConfig:
    """``sgm.modules.diffusionmodules.video_model.VideoUNet`` parameters (original names and defaults).

    in_channels: 8 (4 noisy + 4 concat latent channels). out_channels: 4.
    model_channels: base width (320 released). num_res_blocks: per level (2).
    attention_resolutions: downsampling factors with a SpatialVideoTransformer ([4, 2, 1]).
    channel_mult: width multiplier per level ([1, 2, 4, 4]). num_head_channels: width per head
    (64), or -1 to use the fixed ``num_heads``. transformer_depth: blocks per transformer (1).
    context_dim: cross-attention width (1024 = CLIP ViT-H embed). adm_in_channels: width of ``y``
    (768 = 3 x 256). num_classes: ``"sequential"`` (label_emb = linear-SiLU-linear on y) or None.
    extra_ff_mix_layer / use_spatial_context / merge_strategy / merge_factor / video_kernel_size /
    disable_temporal_crossattention / max_ddpm_temb_period: temporal layers (see video_unet.py).
    use_linear_in_transformer: Linear (True) or 1x1 conv projections in the transformers.
    use_scale_shift_norm / resblock_updown / conv_resample / dropout: as in the LDM UNet.
    """

    in_channels: int
    model_channels: int
    out_channels: int
    num_res_blocks: int
    attention_resolutions: list
    context_dim: int
    channel_mult: list = field(default_factory=lambda: [1, 2, 4, 8])
    dropout: float = 0.0
    conv_resample: bool = True
    dims: int = 2
    num_classes: Any = None
    num_heads: int = -1
    num_head_channels: int = -1
    use_scale_shift_norm: bool = False
    resblock_updown: bool = False
    transformer_depth: Any = 1
    transformer_depth_middle: int | None = None
    time_context_dim: int | None = None
    extra_ff_mix_layer: bool = False
    use_spatial_context: bool = False
    merge_strategy: str = "fixed"
    merge_factor: float = 0.5
    video_kernel_size: Any = 3
    use_linear_in_transformer: bool = False
    adm_in_channels: int | None = None
    disable_temporal_crossattention: bool = False
    max_ddpm_temb_period: int = 10000
    time_downup: bool = False
    spatial_transformer_attn_type: str = unused("'softmax' or 'softmax-xformers': the same numbers here", "softmax")
    use_checkpoint: bool = unused("gradient checkpointing of the torch code (train.py has its own recompute)", False)

    def __post_init__(self):
        if self.num_heads == -1 and self.num_head_channels == -1:
            raise ConfigError("num_heads: set num_heads or num_head_channels (both are -1)")
        if self.time_downup:
            raise ConfigError("time_downup: true (temporal down/upsampling) is not supported")
        if self.dims != 2:
            raise ConfigError(f"dims: {self.dims}: only 2 is supported")
        if self.merge_strategy not in ("fixed", "learned", "learned_with_images"):
            raise ConfigError(f"merge_strategy: {self.merge_strategy!r}: expected fixed, "
                              "learned or learned_with_images")
        if isinstance(self.transformer_depth, int):
            self.transformer_depth = [self.transformer_depth] * len(self.channel_mult)
        if self.transformer_depth_middle is None:
            self.transformer_depth_middle = self.transformer_depth[-1]
        if isinstance(self.video_kernel_size, (list, tuple)):
            if list(self.video_kernel_size[1:]) != [1, 1]:
                raise ConfigError(f"video_kernel_size: {self.video_kernel_size}: only (k, 1, 1) "
                                  "temporal kernels are supported")
            self.video_kernel_size = int(self.video_kernel_size[0])


@dataclass
class AutoencoderDDConfig(DDConfig):
    """The ``ddconfig`` of the LDM Encoder / sgm VideoDecoder: :class:`common.vae.DDConfig` (ch, ch_mult,
    num_res_blocks, z_channels, double_z, in_channels, out_ch, attn_resolutions, resolution, dropout,
    attn_type, ...) plus the VideoDecoder keys.

    video_kernel_size: temporal kernel of the VideoDecoder ([3, 1, 1]; only (k, 1, 1)).
    alpha: initial mix_factor of the temporal res blocks (0).
    merge_strategy: ``learned`` (alpha = sigmoid(mix_factor)) or ``fixed`` (alpha = mix_factor).
    time_mode: only ``conv-only`` (the released VideoDecoder).
    """

    video_kernel_size: Any = 3
    merge_strategy: Literal["learned", "fixed"] = "learned"
    alpha: float = 0.0
    time_mode: str = "conv-only"

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.video_kernel_size, (list, tuple)):
            if list(self.video_kernel_size[1:]) not in ([], [1, 1]):
                raise ConfigError(f"video_kernel_size: {list(self.video_kernel_size)}: only (k, 1, 1) temporal "
                                  "kernels are supported")
            self.video_kernel_size = int(self.video_kernel_size[0])
        if self.time_mode != "conv-only":
            raise ConfigError(f"time_mode: {self.time_mode!r}: only 'conv-only' (the "
                              "released VideoDecoder) is supported")


@dataclass
class OpenCLIPImageConfig:
    """``FrozenOpenCLIPImageEmbedder``: ``arch`` (open_clip model name, ViT-H-14), ``version`` (pretrained tag)."""

    arch: str = "ViT-H-14"
    version: str | None = "laion2b_s32b_b79k"
    antialias: bool = True
    ucg_rate: float = 0.0
    unsqueeze_dim: bool = False
    repeat_to_max_len: bool = False
    num_image_crops: int = 0
    output_tokens: bool = False
    freeze: bool = unused("inference only: the tower is frozen", True)


@dataclass
class ConditionerConfig:
    """The embedders of ``GeneralConditioner`` that SVD uses, in config order.

    image: the OpenCLIP image embedder (index ``image_index``). vector_keys / vector_outdims: the
    ``ConcatTimestepEmbedderND`` input keys (fps_id, motion_bucket_id, cond_aug) and their widths,
    concatenated in this order into ``vector``. encoder: ddconfig of the conditioner's own
    ``AutoencoderKLModeOnly`` (index ``encoder_index``); ``encoder_embed_dim`` its latent width;
    ``encoder_scale_factor`` (1.0 in the release: the concat latent is not scaled).
    """

    image: OpenCLIPImageConfig
    image_index: int
    vector_keys: list
    vector_outdims: list
    vector_indices: list
    encoder: AutoencoderDDConfig
    encoder_index: int
    encoder_embed_dim: int = 4
    encoder_scale_factor: float = 1.0


@dataclass
class SamplerConfig:
    """EulerEDMSampler + EDMDiscretization + LinearPredictionGuider of ``sampler_config``.

    sigma_min / sigma_max / rho: Karras et al. (2022) discretization (0.002 / 700 / 7).
    min_scale / max_scale: guidance ramp over the frames (1.0 -> 2.5 for SVD, 1.0 -> 3.0 for XT).
    num_steps: default steps (the release leaves it to the script: 25 for SVD, 30 for XT).
    num_frames: the guider's frame count = default clip length (the script injects 14 / 25).
    s_churn / s_tmin / s_tmax / s_noise: EDM stochasticity (0 in the release: deterministic).
    """

    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    min_scale: float = 1.0
    max_scale: float = 2.5
    num_steps: int | None = None
    num_frames: int | None = None
    s_churn: float = 0.0
    s_tmin: float = 0.0
    s_tmax: float = float("inf")
    s_noise: float = 1.0


@dataclass
class LossConfig:
    """StandardDiffusionLoss with EDMSampling (p_mean, p_std) and EDMWeighting (sigma_data)."""

    loss_type: str = "l2"
    p_mean: float = -1.2
    p_std: float = 1.2
    sigma_data: float = 0.5
    offset_noise_level: float = 0.0


@dataclass
class SVDConfig:
    """Everything an SVD release is built from (see ``load_svd_config``).

    first_stage_kind: ``"video"`` (AutoencodingEngine: encoder + temporal VideoDecoder, no quant
    convs; the main releases) or ``"image"`` (LDM AutoencoderKL with quant convs; the
    ``*_image_decoder`` releases). first_stage_embed_dim: AutoencoderKL latent width (4).
    """

    unet: VideoUNetConfig
    conditioner: ConditionerConfig
    first_stage: AutoencoderDDConfig
    first_stage_encoder: AutoencoderDDConfig
    sampler: SamplerConfig
    loss: LossConfig | None
    scale_factor: float
    first_stage_kind: str = "video"
    first_stage_embed_dim: int = 4
    ckpt_path: str | None = None
    source: str = ""


# ---- the YAML tree around the dataclasses above (sgm's nodes, key by key) --------------------------------

@dataclass
class _FirstStageKL(AutoencoderKLParams):
    """``sgm.models.autoencoder.AutoencoderKL`` / ``AutoencoderKLModeOnly`` params."""

    ddconfig: AutoencoderDDConfig


@dataclass
class _AutoencodingEngine:
    """``sgm.models.autoencoder.AutoencodingEngine`` params (SVD's first stage)."""

    encoder_config: dict
    decoder_config: dict
    regularizer_config: Any = unused("DiagonalGaussianRegularizer: the posterior, built into the VAE")
    loss_config: Any = unused("the autoencoder's training loss (torch.nn.Identity)")
    monitor: Any = unused("validation metric of the training code")


@dataclass
class _Embedder:
    """One entry of ``GeneralConditioner``'s ``emb_models``."""

    target: str
    params: dict | None = None
    input_key: str | None = None
    is_trainable: Any = unused("training decides what it trains (train.py temporal_only)", False)
    ucg_rate: Any = unused("classifier-free-guidance dropout of training (train.py ucg_rate)", 0.0)


@dataclass
class _ImagePredictionEmbedder:
    open_clip_embedding_config: dict
    n_cond_frames: Literal[1] = 1
    n_copies: Literal[1] = 1


@dataclass
class _TimestepEmbedder:
    outdim: int


@dataclass
class _EncoderEmbedder:
    encoder_config: dict
    is_ae: Literal[True] = True
    scale_factor: float = 1.0
    n_cond_frames: Literal[1] = 1
    n_copies: Literal[1] = 1
    disable_encoder_autocast: Any = unused(_AUTOCAST, False)


@dataclass
class _Conditioner:
    emb_models: list[_Embedder]


@dataclass
class _Sampler:
    discretization_config: dict | None = None
    guider_config: dict | None = None
    num_steps: int | None = None
    s_churn: float = 0.0
    s_tmin: float = 0.0
    s_tmax: float = float("inf")
    s_noise: float = 1.0
    verbose: Any = unused("progress is the pipeline's progress argument", False)


@dataclass
class _Discretization:
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0


@dataclass
class _Guider:
    max_scale: float
    min_scale: float = 1.0
    num_frames: int | None = None


@dataclass
class _Denoiser:
    scaling_config: dict


@dataclass
class _NoParams:
    pass


@dataclass
class _Loss:
    sigma_sampler_config: dict
    loss_weighting_config: dict
    loss_type: str = "l2"
    offset_noise_level: float = 0.0
    batch2model_keys: Any = unused("train.py always hands the UNet num_video_frames and image_only_indicator")


@dataclass
class _SigmaSampler:
    p_mean: float = -1.2
    p_std: float = 1.2


@dataclass
class _Weighting:
    sigma_data: float = 0.5


@dataclass
class _Engine:
    """``sgm.models.diffusion.DiffusionEngine`` params."""

    network_config: dict
    conditioner_config: dict
    first_stage_config: dict
    scale_factor: float
    sampler_config: dict | None = None
    denoiser_config: dict | None = None
    loss_fn_config: dict | None = None
    ckpt_path: str | None = None
    disable_first_stage_autocast: Any = unused(_AUTOCAST, False)


@dataclass
class _Model:
    target: Literal["sgm.models.diffusion.DiffusionEngine"]
    params: dict


_SGM = "sgm.modules."
_IMAGE_EMBEDDER = _SGM + "encoders.modules.FrozenOpenCLIPImagePredictionEmbedder"
_TIMESTEP_EMBEDDER = _SGM + "encoders.modules.ConcatTimestepEmbedderND"
_ENCODER_EMBEDDER = _SGM + "encoders.modules.VideoPredictionEmbedderWithEncoder"


def _parse_conditioner(node: dict, where: str) -> ConditionerConfig:
    cond = from_node(_Conditioner, node, where, targets=(_SGM + "GeneralConditioner",))
    if not cond.emb_models:
        raise ConfigError(f"{join(where, 'params.emb_models')}: is empty")
    image = image_index = enc = enc_index = None
    enc_embed, enc_scale = 4, 1.0
    keys, outdims, idxs = [], [], []
    for i, m in enumerate(cond.emb_models):
        at = join(join(where, "params.emb_models"), i)
        if m.target == _IMAGE_EMBEDDER:
            p = from_mapping(_ImagePredictionEmbedder, m.params, join(at, "params"))
            image = from_node(OpenCLIPImageConfig, p.open_clip_embedding_config,
                              join(at, "params.open_clip_embedding_config"),
                              targets=(_SGM + "encoders.modules.FrozenOpenCLIPImageEmbedder",))
            image_index = i
        elif m.target == _TIMESTEP_EMBEDDER:
            keys.append(m.input_key)
            outdims.append(from_mapping(_TimestepEmbedder, m.params, join(at, "params")).outdim)
            idxs.append(i)
        elif m.target == _ENCODER_EMBEDDER:
            p = from_mapping(_EncoderEmbedder, m.params, join(at, "params"))
            kl = from_node(_FirstStageKL, p.encoder_config, join(at, "params.encoder_config"),
                           targets=("sgm.models.autoencoder.AutoencoderKLModeOnly",))
            enc, enc_embed, enc_scale, enc_index = kl.ddconfig, kl.embed_dim, p.scale_factor, i
        else:
            raise ConfigError(f"{join(at, 'target')}: {m.target!r} is not an SVD embedder")
    if image is None or enc is None or not keys:
        raise ConfigError(f"{where}: the conditioner needs the OpenCLIP image embedder, the "
                          "VideoPredictionEmbedderWithEncoder and ConcatTimestepEmbedderND embedders")
    return ConditionerConfig(image=image, image_index=image_index, vector_keys=keys, vector_outdims=outdims,
                             vector_indices=idxs, encoder=enc, encoder_index=enc_index, encoder_embed_dim=enc_embed,
                             encoder_scale_factor=enc_scale)


def _parse_first_stage(node: dict, where: str) -> tuple[str, AutoencoderDDConfig, AutoencoderDDConfig, int]:
    """(kind, decoder ddconfig, encoder ddconfig, embed_dim) of ``first_stage_config``."""
    target = node.get("target") if isinstance(node, dict) else None
    if target == "sgm.models.autoencoder.AutoencodingEngine":  # SVD's 2-D encoder + temporal VideoDecoder
        eng = from_node(_AutoencodingEngine, node, where)
        at = join(where, "params")
        dec = from_node(AutoencoderDDConfig, eng.decoder_config, join(at, "decoder_config"),
                        targets=(_SGM + "autoencoding.temporal_ae.VideoDecoder",))
        enc = from_node(AutoencoderDDConfig, eng.encoder_config, join(at, "encoder_config"),
                        targets=(_SGM + "diffusionmodules.model.Encoder",))
        return "video", dec, enc, 4
    # the *_image_decoder releases: the SD image VAE
    kl = from_node(_FirstStageKL, node, where, targets=("sgm.models.autoencoder.AutoencoderKL",))
    return "image", kl.ddconfig, kl.ddconfig, kl.embed_dim


def _parse_sampler(node: dict | None, where: str) -> SamplerConfig:
    if node is None:
        return SamplerConfig()
    sp = from_node(_Sampler, node, where, targets=(_SGM + "diffusionmodules.sampling.EulerEDMSampler",))
    at = join(where, "params")
    disc = _Discretization() if sp.discretization_config is None else from_node(
        _Discretization, sp.discretization_config, join(at, "discretization_config"),
        targets=(_SGM + "diffusionmodules.discretizer.EDMDiscretization",))
    guid = _Guider(max_scale=2.5) if sp.guider_config is None else from_node(
        _Guider, sp.guider_config, join(at, "guider_config"),
        targets=(_SGM + "diffusionmodules.guiders.LinearPredictionGuider",))
    return SamplerConfig(sigma_min=disc.sigma_min, sigma_max=disc.sigma_max, rho=disc.rho, min_scale=guid.min_scale,
                         max_scale=guid.max_scale, num_steps=sp.num_steps, num_frames=guid.num_frames,
                         s_churn=sp.s_churn, s_tmin=sp.s_tmin, s_tmax=sp.s_tmax, s_noise=sp.s_noise)


def _parse_loss(node: dict | None, where: str) -> LossConfig | None:
    if node is None:
        return None
    lp = from_node(_Loss, node, where, targets=(_SGM + "diffusionmodules.loss.StandardDiffusionLoss",))
    at = join(where, "params")
    ss = from_node(_SigmaSampler, lp.sigma_sampler_config, join(at, "sigma_sampler_config"),
                   targets=(_SGM + "diffusionmodules.sigma_sampling.EDMSampling",))
    lw = from_node(_Weighting, lp.loss_weighting_config, join(at, "loss_weighting_config"),
                   targets=(_SGM + "diffusionmodules.loss_weighting.EDMWeighting",))
    return LossConfig(loss_type=lp.loss_type, p_mean=ss.p_mean, p_std=ss.p_std, sigma_data=lw.sigma_data,
                      offset_noise_level=lp.offset_noise_level)


def parse_svd_config(cfg: dict, source: str = "<dict>") -> SVDConfig:
    """An :class:`SVDConfig` from the loaded YAML (the whole file with its top-level ``model:`` node).

    Raises:
        ConfigError: a missing or unknown key, a wrong type, an unsupported target or option (file and key
            path named).
    """
    top = from_mapping(_Model, cfg.get("model") if isinstance(cfg, dict) and set(cfg) == {"model"} else cfg,
                       join(source, "model"))
    at = join(join(source, "model"), "params")
    p = from_mapping(_Engine, top.params, at)
    unet = from_node(VideoUNetConfig, p.network_config, join(at, "network_config"),
                     targets=(_SGM + "diffusionmodules.video_model.VideoUNet",))
    fs_kind, dec, enc, fs_embed = _parse_first_stage(p.first_stage_config, join(at, "first_stage_config"))
    if p.denoiser_config is not None:
        d = from_node(_Denoiser, p.denoiser_config, join(at, "denoiser_config"),
                      targets=(_SGM + "diffusionmodules.denoiser.Denoiser",))
        from_node(_NoParams, d.scaling_config, join(at, "denoiser_config.params.scaling_config"),
                  targets=(_SGM + "diffusionmodules.denoiser_scaling.VScalingWithEDMcNoise",))
    return SVDConfig(unet=unet, conditioner=_parse_conditioner(p.conditioner_config, join(at, "conditioner_config")),
                     first_stage=dec, first_stage_encoder=enc, first_stage_kind=fs_kind, first_stage_embed_dim=fs_embed,
                     sampler=_parse_sampler(p.sampler_config, join(at, "sampler_config")),
                     loss=_parse_loss(p.loss_fn_config, join(at, "loss_fn_config")),
                     scale_factor=p.scale_factor, ckpt_path=p.ckpt_path, source=source)


def load_svd_config(path) -> SVDConfig:
    """Read an original SVD YAML file (``configs/svd.yaml`` etc.) into an :class:`SVDConfig`."""
    return parse_svd_config(load_yaml(path), str(path))


# ---- train.py's YAML (configs/svd_train.yaml; the layout of mindone's SVD port) -----------------------


def _positive(where: str, **values) -> None:
    for k, v in values.items():
        if v is not None and v < 1:
            raise ConfigError(f"{k}: {v} must be >= 1{where}")


@dataclass
class TrainEnvironment:
    """``environment``.

    mode: 0 = graph (forward + backward compiled with ms.jit), 1 = PyNative.
    seed: model init (without a pretrained file), data order, every random draw.
    """

    mode: Literal[0, 1] = 1
    seed: int = 42


@dataclass
class TrainDatasetArgs:
    """``train.dataset.init_args`` of :class:`svd_ms.data.VideoDataset`.

    data_dir: folder the CSV paths are relative to (null = the CSV's folder).
    metadata: CSV with the header path,length,motion_bucket_id (required).
    frames: frames per clip.
    step: take every step-th frame (fps_id = fps / step - 1).
    size: (H, W) of the clips: resize the short side, centre crop.
    cond_aug_mean / cond_aug_std: cond_aug ~ LogNormal(mean, std).
    """

    data_dir: str | None = None
    metadata: str | None = None
    frames: int = 4
    step: int = 5
    size: tuple[int, int] = (576, 1024)
    cond_aug_mean: float = -3.0
    cond_aug_std: float = 0.5

    def __post_init__(self):
        _positive("", frames=self.frames, step=self.step)
        if min(self.size) < 1:
            raise ConfigError(f"size: {list(self.size)} must be two positive sizes (H, W)")


@dataclass
class TrainDataset:
    """``train.dataset``."""

    init_args: TrainDatasetArgs = field(default_factory=TrainDatasetArgs)
    class_path: Any = unused("mindone's dataset class path; the dataset is svd_ms.data.VideoDataset")


@dataclass
class TrainDataloader:
    """``train.dataloader``.

    batch_size: clips per micro-batch and process.
    shuffle: shuffle the clips every epoch.
    """

    batch_size: int = 1
    shuffle: bool = True

    def __post_init__(self):
        _positive("", batch_size=self.batch_size)


@dataclass
class TrainScheduler:
    """``train.scheduler``: linear warm-up, then cosine from lr to end_lr.

    lr: peak learning rate.
    end_lr: learning rate at the last step.
    warmup_steps: linear warm-up steps (fewer than the run's steps).
    """

    lr: float = 5e-6
    end_lr: float = 1e-7
    warmup_steps: int = 50

    def __post_init__(self):
        if self.lr <= 0 or self.end_lr < 0:
            raise ConfigError(f"lr: {self.lr} must be > 0 and end_lr {self.end_lr} >= 0")
        if self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps: {self.warmup_steps} must be >= 0")


@dataclass
class TrainOptimizer:
    """``train.optimizer`` (AdamW).

    betas: (beta1, beta2).
    eps: denominator epsilon.
    weight_decay: decoupled weight decay.
    """

    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-8
    weight_decay: float = 0.01


@dataclass
class TrainSettings:
    """``train.settings``.

    gradient_accumulation_steps: micro-batches per optimizer step.
    clip_grad: clip the global gradient norm.
    clip_norm: the norm clipped to.
    """

    gradient_accumulation_steps: int = 5
    clip_grad: bool = True
    clip_norm: float = 1.0

    def __post_init__(self):
        _positive("", gradient_accumulation_steps=self.gradient_accumulation_steps)
        if self.clip_grad and self.clip_norm <= 0:
            raise ConfigError(f"clip_norm: {self.clip_norm} must be > 0 (or clip_grad: false)")


@dataclass
class TrainLoss:
    """``train.loss``: used when the --svd_config has no loss_fn_config (the released ones have none).

    loss_type: l2 | l1.
    p_mean / p_std: EDMSampling: log sigma ~ N(p_mean, p_std^2).
    sigma_data: EDMWeighting (1.0 = the v-weighting that matches VScalingWithEDMcNoise).
    """

    loss_type: Literal["l2", "l1"] = "l2"
    p_mean: float = 1.0
    p_std: float = 1.6
    sigma_data: float = 1.0


@dataclass
class TrainSection:
    """``train``.

    pretrained: released SVD checkpoint (.safetensors / .ckpt); null = random weights (tests only).
    output_dir: checkpoints, the log and the exported weights.
    epochs: passes over the clips (when max_steps is null).
    max_steps: optimizer steps; null = epochs x (batches per epoch // gradient_accumulation_steps).
    temporal_only: train only the UNet's temporal layers (time_stack / time_mixer / time_pos_embed).
    amp_level: O0 float32; O2 float16 UNet compute with float32 master weights (GPU/Ascend).
    ucg_rate: probability to zero a video's image embedding / concat latent (CFG dropout).
    encode_chunk_size: frames per VAE-encoder call (null = the whole clip).
    recompute: gradient checkpointing of each UNet block (same gradients, less memory).
    ckpt_every: write output_dir/ckpt-<step>.safetensors every N steps (atomic; resumed from).
    keep_last: checkpoints kept.
    ema_decay: e.g. 0.9999: keep an EMA of the trained parameters (exported at the end); null = none.
    export: write output_dir/svd_finetuned.safetensors (whole model, released layout).
    on_bad_video: skip: report the file in one line and go on; stop: stop training.
    dump_rank_params: diagnostic: a path with {rank}; every rank writes its trained parameters at the end.
    """

    pretrained: str | None = None
    output_dir: str = "output/"
    epochs: int = 1
    max_steps: int | None = None
    temporal_only: bool = True
    amp_level: Literal["O0", "O2"] = "O0"
    ucg_rate: float = 0.0
    encode_chunk_size: int | None = None
    recompute: bool = False
    ckpt_every: int = 100
    keep_last: int = 3
    ema_decay: float | None = None
    export: bool = True
    on_bad_video: Literal["skip", "stop"] = "skip"
    dump_rank_params: str | None = None
    dataset: TrainDataset = field(default_factory=TrainDataset)
    dataloader: TrainDataloader = field(default_factory=TrainDataloader)
    scheduler: TrainScheduler = field(default_factory=TrainScheduler)
    optimizer: TrainOptimizer = field(default_factory=TrainOptimizer)
    settings: TrainSettings = field(default_factory=TrainSettings)
    loss: TrainLoss = field(default_factory=TrainLoss)

    def __post_init__(self):
        _positive("", epochs=self.epochs, max_steps=self.max_steps, keep_last=self.keep_last,
                  encode_chunk_size=self.encode_chunk_size)
        if self.ckpt_every < 0:
            raise ConfigError(f"ckpt_every: {self.ckpt_every} must be >= 0 (0 = only at the end)")
        if not 0.0 <= self.ucg_rate <= 1.0:
            raise ConfigError(f"ucg_rate: {self.ucg_rate} is not a probability in [0, 1]")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay: {self.ema_decay} must be in (0, 1) or null")


@dataclass
class TrainLossScale:
    """``LossScale``.

    loss_scale: auto (dynamic on GPU/Ascend, none on CPU) | none | static | dynamic.
    loss_scale_value: initial scale.
    scale_factor: growth / back-off factor of the dynamic scale.
    scale_window: steps without overflow before the scale grows.
    """

    loss_scale: Literal["auto", "none", "static", "dynamic"] = "auto"
    loss_scale_value: float = 65536.0
    scale_factor: int = 2
    scale_window: int = 1000


@dataclass
class TrainFile:
    """The whole ``configs/svd_train.yaml``."""

    environment: TrainEnvironment = field(default_factory=TrainEnvironment)
    train: TrainSection = field(default_factory=TrainSection)
    LossScale: TrainLossScale = field(default_factory=TrainLossScale)
