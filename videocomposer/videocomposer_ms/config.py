"""VideoComposer configs: the original's ``configs/exp*.yaml`` merged over ``tools/videocomposer/config.py``.

:class:`VideoComposerConfig` declares every key of the original schema with the original defaults (the
full-size released model). Keys the original hard-codes in its code are keys here too (``ddconfig``,
``clip_model_cfg``, ``clip_layer``, ``adapter_transformer_layers``, ``midas_cfg``, ``pidinet_cfg``,
``sketch_simplification_channels``), so a tiny model is one YAML file. Unknown keys are refused.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.config import ConfigError, from_mapping, load_yaml, unused

#: every condition the released UNet has an encoder for (``video_compositions`` names).
COMPOSITIONS = ("text", "mask", "depthmap", "sketch", "motion", "image", "local_image", "single_sketch")
#: the UNet keyword names that ``guidances`` may list, and the composition each one needs.
GUIDANCE_NEEDS = {"y": "text", "image": "image", "depth": "depthmap", "sketch": "sketch", "masked": "mask",
                  "motion": "motion", "local_image": "local_image", "single_sketch": "single_sketch"}
#: spatial conditions in the order the original UNet adds them into ``concat``.
SPATIAL = ("depth", "local_image", "motion", "sketch", "single_sketch", "masked")

#: the released ViT-H-14 (open_clip model-config schema).
VIT_H_14 = {"embed_dim": 1024,
            "vision_cfg": {"image_size": 224, "layers": 32, "width": 1280, "head_width": 80, "patch_size": 14},
            "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 1024, "heads": 16, "layers": 24}}
#: ``inference_single.py``'s VAE.
SD_DDCONFIG = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
               "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}
#: ``midas_v3`` (DPT-Large, ViT-L/16 at 384).
MIDAS_V3 = {"image_size": 384, "patch_size": 16, "dim": 1024, "neck_dims": [256, 512, 1024, 1024],
            "fusion_dim": 256, "num_heads": 16, "num_layers": 24}
#: ``pidinet_bsd(vanilla_cnn=True)``.
PIDINET_BSD = {"config": "carv4", "inplane": 60, "dil": 24, "sa": True, "vanilla_cnn": True}
#: the 23 conv / conv-transpose widths of ``sketch_simplification_gan``.
SKETCH_SIMPLIFICATION = [48, 128, 128, 128, 256, 256, 256, 512, 1024, 1024, 1024, 1024, 512, 256, 256, 256,
                         128, 128, 128, 48, 48, 24, 1]

_TRAIN = "a training option (used by train.py through configs/train_*.yaml; no effect on inference)"
_DIST = "distributed / data-loading option of the original launcher"


@dataclass
class VideoComposerConfig:
    """One experiment. Sizes of the UNet (``unet_*``), the VAE (``ddconfig``), OpenCLIP (``clip_model_cfg``,
    ``clip_layer``), the condition extractors (``midas_cfg``, ``pidinet_cfg``,
    ``sketch_simplification_channels``), the sampler (``num_timesteps``, ``ddim_timesteps``, ``ddim_eta``)
    and the inputs (``max_frames``, ``resolution``, ``misc_size``, ``vit_image_size``, means / stds).

    ``video_compositions``: the condition encoders the UNet is built with. ``guidances``: the UNet keyword
    arguments one run passes (``y``, ``image``, ``local_image``, ``depth``, ``sketch``, ``single_sketch``,
    ``masked``, ``motion``); each needs its composition. ``read_image`` / ``read_style`` / ``read_sketch``:
    take the first frame, the style image, the sketch from ``--image_path`` / ``--style_image`` /
    ``--sketch_path`` instead of from the input video.
    """

    TASK_TYPE: str = unused("SINGLE_TASK and MULTI_TASK both compose once here (exp01: every condition)", "SINGLE_TASK")
    ENABLE: bool = unused("always true in the original configs", True)
    DATASET: str = unused("dataset name of the original launcher", "webvid10m")
    video_compositions: list[str] = field(default_factory=lambda: list(COMPOSITIONS))
    guidances: list[str] = field(default_factory=lambda: ["y", "local_image", "motion"])
    network_name: str = "UNetSD_temporal"
    read_image: bool = False
    read_style: bool = False
    read_sketch: bool = False
    save_origin_video: bool = True
    # inputs
    root_dir: str = unused(_DIST, "webvid10m/")
    alpha: float = unused(_TRAIN, 0.7)
    misc_size: int = 384
    depth_std: float = 20.0
    depth_clamp: float = 10.0
    hist_sigma: float = unused("histogram condition (absent from the released weights)", 10.0)
    use_image_dataset: bool = unused(_TRAIN, False)
    alpha_img: float = unused(_TRAIN, 0.7)
    resolution: int = 256
    mean: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    std: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    sketch_mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    sketch_std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    max_words: int = unused("caption length of the original dataset", 1000)
    frame_lens: list[int] = field(default_factory=lambda: [16, 16, 16, 16])
    feature_framerates: list[int] = unused(_DIST, [4])
    feature_framerate: int = 4
    max_frames: int | None = None
    batch_size: int | None = None
    batch_sizes: dict = field(default_factory=lambda: {"1": 1, "4": 1, "8": 1, "16": 1})
    chunk_size: int = 64
    num_workers: int = unused(_DIST, 8)
    prefetch_factor: int = unused(_DIST, 2)
    seed: int = 8888
    # diffusion
    num_timesteps: int = 1000
    mean_type: str = "eps"
    var_type: str = "fixed_small"
    loss_type: str = unused(_TRAIN, "mse")
    ddim_timesteps: int = 50
    ddim_eta: float = 0.0
    clamp: float = unused("the original's DDIM passes clamp=None", 1.0)
    share_noise: bool = False  # one noise image repeated over the frames
    use_div_loss: bool = unused(_TRAIN, False)
    p_zero: float = unused(_TRAIN, 0.9)
    guide_scale: float = unused("the original's inference hard-codes 9.0 (--guidance_scale sets it)", 6.0)
    # checkpoints
    sd_checkpoint: str = "v2-1_512-ema-pruned.ckpt"
    clip_checkpoint: str = "open_clip_pytorch_model.bin"
    resume: bool = unused("the UNet is always the released (resume) layout: no pre_image 1x1 conv", True)
    resume_step: int = unused("only names the released step", 228000)
    resume_check_dir: str = unused(_TRAIN, ".")
    resume_checkpoint: str = "model_weights/non_ema_228000.pth"
    resume_optimizer: bool = unused(_TRAIN, False)
    pretrained: bool = unused(_TRAIN, False)
    fix_weight: bool = unused(_TRAIN, False)
    load_from: str | None = unused(_TRAIN, None)
    # CLIP
    vit_image_size: int = 336
    vit_patch_size: int = unused("the visual tower's sizes are in clip_model_cfg", 14)
    vit_dim: int = unused("the visual tower's sizes are in clip_model_cfg", 1024)
    vit_out_dim: int = unused("the visual tower's sizes are in clip_model_cfg", 768)
    vit_heads: int = unused("the visual tower's sizes are in clip_model_cfg", 16)
    vit_layers: int = unused("the visual tower's sizes are in clip_model_cfg", 24)
    vit_mean: list[float] = field(default_factory=lambda: [0.48145466, 0.4578275, 0.40821073])
    vit_std: list[float] = field(default_factory=lambda: [0.26862954, 0.26130258, 0.27577711])
    mvs_visual: bool = unused("motion-vector visualisation of the original", False)
    # UNet
    unet_in_dim: int = 4
    unet_concat_dim: int = 8
    unet_y_dim: int = unused("not read by UNetSD_temporal", 768)
    unet_context_dim: int = 1024
    unet_out_dim: int = 4
    unet_dim: int = 320
    unet_dim_mult: list[int] = field(default_factory=lambda: [1, 2, 4, 4])
    unet_res_blocks: int = 2
    unet_num_heads: int = 8
    unet_head_dim: int = 64
    unet_attn_scales: list[float] = field(default_factory=lambda: [1.0, 0.5, 0.25])
    unet_dropout: float = 0.1
    misc_dropout: float = 0.5
    p_all_zero: float = 0.1
    p_all_keep: float = 0.1
    temporal_conv: bool = unused("UNetSD_temporal always has its temporal convs", False)
    temporal_attn_times: int = unused("only for the non-transformer temporal attention", 1)
    temporal_attention: bool = True
    use_fps_condition: bool = False
    use_sim_mask: bool = unused("only for the non-transformer temporal attention", False)
    use_checkpoint: bool = unused("gradient checkpointing (training)", True)
    use_sharded_ddp: bool = unused(_DIST, False)
    use_fsdp: bool = unused(_DIST, False)
    use_fp16: bool = unused("float32 everywhere in this port (the original's fp16 autocast is not reproduced)", False)
    use_ema: bool = unused(_TRAIN, False)
    ema_decay: float = unused(_TRAIN, 0.9999)
    viz_interval: int = unused(_TRAIN, 1000)
    save_ckp_interval: int = unused(_TRAIN, 1000)
    log_interval: int = unused(_TRAIN, 100)
    log_dir: str = "outputs"
    num_steps: int = unused("unused by the original's inference", 1)
    # hard-coded in the original (sizes of the released files)
    adapter_transformer_layers: int = 1
    #: the width the original hard-codes (1024) for ``pre_image_condition`` (Linear(W, W) x2, so the style
    #: embedding must be W wide) and for the cross-attention of the output blocks' SpatialTransformers
    #: (the input and middle blocks use ``unet_context_dim``); a tiny model sets it to its text width.
    hardcoded_context_dim: int = 1024
    ddconfig: dict = field(default_factory=lambda: dict(SD_DDCONFIG))
    clip_model_cfg: dict = field(default_factory=lambda: dict(VIT_H_14))
    clip_layer: str = "penultimate"
    midas_cfg: dict = field(default_factory=lambda: dict(MIDAS_V3))
    pidinet_cfg: dict = field(default_factory=lambda: dict(PIDINET_BSD))
    sketch_simplification_channels: list[int] = field(default_factory=lambda: list(SKETCH_SIMPLIFICATION))
    scale_factor: float = 0.18215

    def __post_init__(self):
        for c in self.video_compositions:
            if c not in COMPOSITIONS:
                raise ConfigError(f"video_compositions: {c!r} is not supported (one of {', '.join(COMPOSITIONS)}; "
                                  "canny and histogram are absent from the released weights)")
        for g in self.guidances:
            if g not in GUIDANCE_NEEDS:
                raise ConfigError(f"guidances: {g!r} is not a UNet condition ({', '.join(GUIDANCE_NEEDS)})")
            if GUIDANCE_NEEDS[g] not in self.video_compositions:
                raise ConfigError(f"guidances: {g!r} needs {GUIDANCE_NEEDS[g]!r} in video_compositions")
        if self.network_name != "UNetSD_temporal":
            raise ConfigError(f"network_name: {self.network_name!r} (only UNetSD_temporal exists)")
        if self.clip_layer not in ("last", "penultimate"):
            raise ConfigError(f"clip_layer: {self.clip_layer!r} (last or penultimate)")
        if self.mean_type != "eps":
            raise ConfigError(f"mean_type: {self.mean_type!r} (the released model predicts eps)")
        g = set(self.guidances)
        if g & set(SPATIAL) and self.resolution // 8 != 32:
            raise ConfigError(f"resolution: {self.resolution} gives a {self.resolution // 8}x{self.resolution // 8} "
                              "latent, but every condition encoder outputs 32x32 (use 256 with spatial conditions)")
        p = int(self.midas_cfg.get("patch_size", 16))
        if "depth" in g and (self.misc_size % p or (self.misc_size // p) % 2):
            raise ConfigError(f"misc_size: {self.misc_size} must be a multiple of the MiDaS patch ({p}) with an even "
                              "number of patches (depth)")
        if g & {"sketch", "single_sketch"} and self.misc_size % 8:
            raise ConfigError(f"misc_size: {self.misc_size} must be divisible by 8 (sketch simplification)")
        if self.unet_dim % 32 or any((self.unet_dim * m) % 32 for m in self.unet_dim_mult):
            raise ConfigError(f"unet_dim: every level width must be a multiple of 32 (GroupNorm(32)), "
                              f"got {self.unet_dim} x {self.unet_dim_mult}")

    @property
    def frames(self) -> int:
        """Frames per video: ``max_frames`` or, as the original, ``frame_lens[0]``."""
        return int(self.max_frames if self.max_frames is not None else self.frame_lens[0])

    @property
    def videos_per_batch(self) -> int:
        """``batch_size`` or ``batch_sizes[str(frames)]`` (1)."""
        if self.batch_size is not None:
            return int(self.batch_size)
        return int(self.batch_sizes.get(str(self.frames), 1))


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> VideoComposerConfig:
    """Read ``path`` (YAML) into a :class:`VideoComposerConfig`; ``overrides`` replace keys first."""
    data = load_yaml(path) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    data.update(overrides or {})
    return from_mapping(VideoComposerConfig, data, str(path))
