"""Typed views of the original SVD YAML (``scripts/sampling/configs/svd*.yaml`` schema).

The YAML is read as the original repository writes it (``model.target: sgm.models.diffusion.DiffusionEngine``,
``params.network_config`` / ``conditioner_config`` / ``first_stage_config`` / ``sampler_config`` /
``denoiser_config`` and, for training, ``loss_fn_config``). Every size comes from the file; the
dataclasses below only name the fields this port uses and give the original defaults.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml


class SVDConfigError(ValueError):
    """A config file that this port cannot read (names the file and the key at fault)."""


def _pick(cls, params: dict, where: str):
    """Build dataclass ``cls`` from the keys of ``params`` that it declares (others are ignored)."""
    names = {f.name for f in fields(cls)}
    try:
        return cls(**{k: v for k, v in params.items() if k in names})
    except TypeError as e:  # a required field is missing
        raise SVDConfigError(f"{where}: {e}") from None


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
    spatial_transformer_attn_type: str = "softmax"
    use_checkpoint: bool = False

    def __post_init__(self):
        if self.num_heads == -1 and self.num_head_channels == -1:
            raise SVDConfigError("network_config: set num_heads or num_head_channels (both are -1)")
        if self.time_downup:
            raise SVDConfigError("network_config.time_downup=True (temporal down/upsampling) is not supported")
        if self.dims != 2:
            raise SVDConfigError(f"network_config.dims={self.dims}: only 2 is supported")
        if self.merge_strategy not in ("fixed", "learned", "learned_with_images"):
            raise SVDConfigError(f"network_config.merge_strategy={self.merge_strategy!r}: expected fixed, "
                                 "learned or learned_with_images")
        if isinstance(self.transformer_depth, int):
            self.transformer_depth = [self.transformer_depth] * len(self.channel_mult)
        if self.transformer_depth_middle is None:
            self.transformer_depth_middle = self.transformer_depth[-1]
        if isinstance(self.video_kernel_size, (list, tuple)):
            if list(self.video_kernel_size[1:]) != [1, 1]:
                raise SVDConfigError(f"network_config.video_kernel_size={self.video_kernel_size}: only (k, 1, 1) "
                                     "temporal kernels are supported")
            self.video_kernel_size = int(self.video_kernel_size[0])

    def heads_at(self, ch: int) -> tuple[int, int]:
        """(heads, dim_head) of a transformer at width ``ch`` (``num_head_channels`` wins unless -1)."""
        if self.num_head_channels == -1:
            return self.num_heads, ch // self.num_heads
        return ch // self.num_head_channels, self.num_head_channels


@dataclass
class AutoencoderDDConfig:
    """The ``ddconfig`` of the LDM Encoder/Decoder (``sgm.modules.diffusionmodules.model``).

    ch: base width (128 released). ch_mult: per level ([1, 2, 4, 4]). num_res_blocks: per level (2).
    z_channels: latent channels (4). double_z: the encoder outputs mean and logvar. in_channels /
    out_ch: image channels (3). attn_resolutions: resolutions with an AttnBlock ([]). resolution:
    nominal image size (unused for the computation). video_kernel_size: temporal kernel of the
    VideoDecoder ([3, 1, 1]).
    """

    ch: int
    ch_mult: list
    num_res_blocks: int
    z_channels: int = 4
    double_z: bool = True
    in_channels: int = 3
    out_ch: int = 3
    resolution: int = 256
    attn_resolutions: list = field(default_factory=list)
    dropout: float = 0.0
    attn_type: str = "vanilla"
    video_kernel_size: Any = 3
    merge_strategy: str = "learned"
    alpha: float = 0.0
    time_mode: str = "conv-only"

    def __post_init__(self):
        if isinstance(self.video_kernel_size, (list, tuple)):
            self.video_kernel_size = int(self.video_kernel_size[0])
        if self.time_mode != "conv-only":
            raise SVDConfigError(f"first_stage decoder time_mode={self.time_mode!r}: only 'conv-only' (the "
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
    first_stage_kind: str = "video"
    first_stage_embed_dim: int = 4
    scale_factor: float = 0.18215
    ckpt_path: str | None = None
    source: str = ""


def _target_tail(node: dict) -> str:
    return str(node.get("target", "")).rsplit(".", 1)[-1]


def _parse_conditioner(node: dict, where: str) -> ConditionerConfig:
    emb_models = (node.get("params") or {}).get("emb_models")
    if not emb_models:
        raise SVDConfigError(f"{where}: conditioner_config.params.emb_models is empty")
    image = image_index = enc = enc_index = None
    enc_embed, enc_scale = 4, 1.0
    keys, outdims, idxs = [], [], []
    for i, m in enumerate(emb_models):
        kind = _target_tail(m)
        p = m.get("params") or {}
        if kind == "FrozenOpenCLIPImagePredictionEmbedder":
            image = _pick(OpenCLIPImageConfig, (p.get("open_clip_embedding_config") or {}).get("params") or {},
                          f"{where}: emb_models[{i}]")
            image_index = i
            if p.get("n_cond_frames", 1) != 1 or p.get("n_copies", 1) != 1:
                raise SVDConfigError(f"{where}: emb_models[{i}] n_cond_frames/n_copies != 1 is not supported")
        elif kind == "ConcatTimestepEmbedderND":
            keys.append(m.get("input_key"))
            outdims.append(int(p["outdim"]))
            idxs.append(i)
        elif kind == "VideoPredictionEmbedderWithEncoder":
            ep = (p.get("encoder_config") or {}).get("params") or {}
            enc = _pick(AutoencoderDDConfig, ep.get("ddconfig") or {}, f"{where}: emb_models[{i}] ddconfig")
            enc_embed = int(ep.get("embed_dim", 4))
            enc_scale = float(p.get("scale_factor", 1.0))
            enc_index = i
            if not p.get("is_ae", False):
                raise SVDConfigError(f"{where}: emb_models[{i}] is_ae=False is not supported")
        else:
            raise SVDConfigError(f"{where}: emb_models[{i}] target {m.get('target')!r} is not an SVD embedder")
    if image is None or enc is None or not keys:
        raise SVDConfigError(f"{where}: the conditioner needs the OpenCLIP image embedder, the "
                             "VideoPredictionEmbedderWithEncoder and ConcatTimestepEmbedderND embedders")
    return ConditionerConfig(image=image, image_index=image_index, vector_keys=keys, vector_outdims=outdims,
                             vector_indices=idxs, encoder=enc, encoder_index=enc_index, encoder_embed_dim=enc_embed,
                             encoder_scale_factor=enc_scale)


def parse_svd_config(cfg: dict, source: str = "<dict>") -> SVDConfig:
    """An :class:`SVDConfig` from the loaded YAML (top-level ``model:`` node or its ``params``)."""
    model = cfg.get("model", cfg)
    if _target_tail(model) not in ("DiffusionEngine", ""):
        raise SVDConfigError(f"{source}: model.target is {model.get('target')!r}, expected "
                             "sgm.models.diffusion.DiffusionEngine")
    p = model.get("params", model)
    for key in ("network_config", "conditioner_config", "first_stage_config"):
        if key not in p:
            raise SVDConfigError(f"{source}: model.params.{key} is missing")
    unet = _pick(VideoUNetConfig, p["network_config"].get("params") or {}, f"{source}: network_config")
    fs = p["first_stage_config"].get("params") or {}
    fs_kind = _target_tail(p["first_stage_config"])
    fs_embed = 4
    if fs_kind == "AutoencodingEngine":  # SVD's 2-D encoder + temporal VideoDecoder
        dec = _pick(AutoencoderDDConfig, (fs.get("decoder_config") or {}).get("params") or {},
                    f"{source}: first_stage_config.decoder_config")
        enc = _pick(AutoencoderDDConfig, (fs.get("encoder_config") or {}).get("params") or {},
                    f"{source}: first_stage_config.encoder_config")
        dec_target = _target_tail(fs.get("decoder_config") or {})
        if dec_target != "VideoDecoder":
            raise SVDConfigError(f"{source}: first_stage_config.decoder_config target {dec_target!r} is not "
                                 "supported (expected sgm.modules.autoencoding.temporal_ae.VideoDecoder)")
        fs_kind = "video"
    elif fs_kind == "AutoencoderKL":  # the *_image_decoder releases: the SD image VAE
        dec = enc = _pick(AutoencoderDDConfig, fs.get("ddconfig") or {}, f"{source}: first_stage_config.ddconfig")
        fs_embed = int(fs.get("embed_dim", 4))
        fs_kind = "image"
    else:
        raise SVDConfigError(f"{source}: first_stage_config target {p['first_stage_config'].get('target')!r} is "
                             "not supported (AutoencodingEngine with VideoDecoder, or AutoencoderKL)")
    sp = (p.get("sampler_config") or {}).get("params") or {}
    disc = (sp.get("discretization_config") or {}).get("params") or {}
    guid = (sp.get("guider_config") or {}).get("params") or {}
    sampler = SamplerConfig(
        sigma_min=float(disc.get("sigma_min", 0.002)), sigma_max=float(disc.get("sigma_max", 80.0)),
        rho=float(disc.get("rho", 7.0)), min_scale=float(guid.get("min_scale", 1.0)),
        max_scale=float(guid.get("max_scale", 2.5)), num_steps=sp.get("num_steps"),
        num_frames=guid.get("num_frames"),
        s_churn=float(sp.get("s_churn", 0.0)), s_tmin=float(sp.get("s_tmin", 0.0)),
        s_tmax=float(sp.get("s_tmax", float("inf"))), s_noise=float(sp.get("s_noise", 1.0)))
    scaling = _target_tail(((p.get("denoiser_config") or {}).get("params") or {}).get("scaling_config") or {})
    if scaling not in ("VScalingWithEDMcNoise", ""):
        raise SVDConfigError(f"{source}: denoiser scaling {scaling!r} is not supported (SVD uses "
                             "VScalingWithEDMcNoise)")
    loss = None
    if "loss_fn_config" in p:
        lp = p["loss_fn_config"].get("params") or {}
        ss = (lp.get("sigma_sampler_config") or {}).get("params") or {}
        lw = (lp.get("loss_weighting_config") or {}).get("params") or {}
        loss = LossConfig(loss_type=lp.get("loss_type", "l2"), p_mean=float(ss.get("p_mean", -1.2)),
                          p_std=float(ss.get("p_std", 1.2)), sigma_data=float(lw.get("sigma_data", 0.5)),
                          offset_noise_level=float(lp.get("offset_noise_level", 0.0)))
    return SVDConfig(unet=unet, conditioner=_parse_conditioner(p["conditioner_config"], source), first_stage=dec,
                     first_stage_encoder=enc, first_stage_kind=fs_kind, first_stage_embed_dim=fs_embed,
                     sampler=sampler, loss=loss,
                     scale_factor=float(p.get("scale_factor", 0.18215)), ckpt_path=p.get("ckpt_path"), source=source)


def load_svd_config(path) -> SVDConfig:
    """Read an original SVD YAML file (``configs/svd.yaml`` etc.) into an :class:`SVDConfig`."""
    path = Path(path)
    if not path.is_file():
        raise SVDConfigError(f"config file {path} does not exist")
    with open(path) as f:
        cfg = yaml.safe_load(f)
    if not isinstance(cfg, dict):
        raise SVDConfigError(f"{path}: not a YAML mapping")
    return parse_svd_config(cfg, str(path))
