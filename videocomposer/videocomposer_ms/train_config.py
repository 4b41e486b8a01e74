"""Fine-tuning configs (``configs/train_exp*.yaml``): the experiment schema plus the training keys.

The original project released no training code; the training keys are those of the earlier MindSpore
port's ``configs/train_base.py`` / ``train_exp*.yaml`` (the seed README), read by the same reader as the
inference configs (unknown keys refused, every key checked before any work).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from common.config import ConfigError, unused

from .config import COMPOSITIONS, VideoComposerConfig

#: ``conditions_for_train`` names (compositions) -> the UNet keyword they feed.
CONDITION_TO_GUIDANCE = {"text": "y", "image": "image", "depthmap": "depth", "sketch": "sketch",
                         "single_sketch": "single_sketch", "motion": "motion", "local_image": "local_image",
                         "mask": "masked"}
_IGNORED = "an option of the earlier port's launcher with no effect here"


@dataclass
class VCTrainConfig(VideoComposerConfig):
    """A fine-tuning run: the experiment keys (sizes, ``video_compositions``, ...) plus the training ones.

    conditions_for_train: the conditions fed to the UNet while training (``text``, ``image``, ``local_image``,
        ``motion``, ``depthmap``, ``sketch``, ``single_sketch``, ``mask``); each must be in ``video_compositions``.
    root_dir: folder of the training videos; the CSV's paths are relative to it.
    csv_path: the ``video,caption`` CSV (default ``<root_dir>/video_caption.csv``).
    shuffle: visit the videos in a new seeded order every epoch.
    max_frames: frames per training clip (``frame_lens[0]`` when null).
    batch_size: videos per device and micro-batch.
    epochs: passes over the CSV (the run length unless ``max_steps`` is set).
    max_steps: optimizer steps of the run (overrides ``epochs`` when set).
    learning_rate: peak learning rate.
    scheduler: ``constant`` or ``cosine_decay`` (to ``end_learning_rate``), both after a linear warm-up.
    end_learning_rate: final learning rate of ``cosine_decay``.
    warmup_steps: linear warm-up steps.
    optim: ``adamw`` or ``momentum`` (SGD with momentum: one state tensor per parameter instead of two).
    betas: AdamW's betas.
    optim_eps: AdamW's eps.
    weight_decay: AdamW's decoupled decay / momentum's L2 factor.
    momentum: the momentum of ``optim: momentum``.
    gradient_accumulation_steps: micro-batches averaged into one optimizer step.
    clip_grad: clip the gradients' global L2 norm to ``max_grad_norm``.
    max_grad_norm: the clipping threshold.
    use_ema: keep an exponential moving average of the trained parameters (saved in the checkpoints).
    ema_decay: its decay.
    use_fp16: UNet compute in float16 with float32 master weights and dynamic loss scaling (GPU / Ascend).
    loss_scale: initial loss scale of ``use_fp16`` (the dynamic scaler halves it on overflow, doubles it
        after ``loss_scale_window`` clean steps).
    loss_scale_window: clean steps before the scale grows.
    use_recompute: gradient checkpointing of the UNet blocks (same gradients, less activation memory,
        about one more forward pass of work).
    train_dropout: the UNet's dropout layers active while training, as the original (``unet_dropout``, the
        temporal convs' 0.1, the condition adapters' 0.05); false makes a step deterministic given its batch.
    ckpt_save_interval: save a checkpoint every this many optimizer steps (and at the end).
    ckpt_max_keep: checkpoints kept.
    log_interval: write ``train_log.jsonl`` every this many steps.
    use_div_loss: add the original's ``0.001 / (mean frame-wise std of the predicted x0 + 1e-4)`` to each
        video's loss (pushes the frames apart; off in every released config).
    ms_mode: 0 = graph (the forward and backward compiled once; its dropout masks are not restored by a
        resume, which is exact there with ``train_dropout: false``), 1 = PyNative.
    """

    conditions_for_train: list[str] = field(default_factory=lambda: ["text", "motion", "image", "local_image"])
    guidances: list[str] = unused("training feeds conditions_for_train", [])
    root_dir: str = "demo_video/train"
    csv_path: str | None = None
    shuffle: bool = True
    alpha: float = unused("image-text joint training of the original's dataset (video only here)", 0.7)
    use_image_dataset: bool = unused("image-text joint training (video only here)", False)
    alpha_img: float = unused("image-text joint training (video only here)", 0.7)
    batch_size: int | None = 1
    epochs: int = 50
    max_steps: int | None = None
    learning_rate: float = 5e-5
    scheduler: str = "constant"
    end_learning_rate: float = 5e-5
    warmup_steps: int = 10
    decay_steps: int | None = unused("the decay runs to the end of the run", None)
    optim: str = "adamw"
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    optim_eps: float = 1e-8
    weight_decay: float = 0.0
    momentum: float = 0.9
    gradient_accumulation_steps: int = 1
    clip_grad: bool = False
    max_grad_norm: float = 1.0
    use_ema: bool = False
    ema_decay: float = 0.9999
    use_fp16: bool = False
    loss_scale: float = 65536.0
    loss_scale_window: int = 1000
    use_recompute: bool = False
    train_dropout: bool = True
    ckpt_save_interval: int = 50
    ckpt_max_keep: int = 3
    log_interval: int = 1
    ms_mode: int = 1
    loss_type: str = "mse"
    use_div_loss: bool = False
    dataset_sink_mode: bool = unused(_IGNORED, False)
    offload: bool = unused(_IGNORED, False)
    step_mode: bool = unused(_IGNORED, False)
    save_unet_only: bool = unused("checkpoints hold the trained UNet parameters and the training state", True)
    num_parallel_workers: int = unused(_IGNORED, 2)
    profile: bool = unused(_IGNORED, False)

    def __post_init__(self):
        for c in self.conditions_for_train:
            if c not in CONDITION_TO_GUIDANCE:
                raise ConfigError(f"conditions_for_train: {c!r} is not a condition ({', '.join(COMPOSITIONS)})")
            if c not in self.video_compositions:
                raise ConfigError(f"conditions_for_train: {c!r} is not in video_compositions")
        self.guidances = [CONDITION_TO_GUIDANCE[c] for c in self.conditions_for_train]
        super().__post_init__()
        checks = [
            (self.optim in ("adamw", "momentum"), "optim", f"{self.optim!r} is not 'adamw' or 'momentum'"),
            (self.scheduler in ("constant", "cosine_decay"), "scheduler",
             f"{self.scheduler!r} is not 'constant' or 'cosine_decay'"),
            (self.ms_mode in (0, 1), "ms_mode", f"{self.ms_mode} is not 0 (graph) or 1 (PyNative)"),
            (self.loss_type == "mse", "loss_type", f"{self.loss_type!r} (only the original's 'mse')"),
            (self.var_type.startswith("fixed"), "var_type", f"{self.var_type!r} (learned variances need "
             "unet_out_dim 8; the released model is fixed_small)"),
            (self.batch_size is not None and self.batch_size >= 1, "batch_size", f"{self.batch_size} must be >= 1"),
            (self.epochs >= 1, "epochs", f"{self.epochs} must be >= 1"),
            (self.max_steps is None or self.max_steps >= 1, "max_steps", f"{self.max_steps} must be >= 1"),
            (self.gradient_accumulation_steps >= 1, "gradient_accumulation_steps",
             f"{self.gradient_accumulation_steps} must be >= 1"),
            (self.learning_rate > 0, "learning_rate", f"{self.learning_rate} must be > 0"),
            (self.warmup_steps >= 0, "warmup_steps", f"{self.warmup_steps} must be >= 0"),
            (len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "betas",
             f"{self.betas} must be two values in [0, 1)"),
            (0 <= self.momentum < 1, "momentum", f"{self.momentum} must lie in [0, 1)"),
            (0 <= self.ema_decay <= 1, "ema_decay", f"{self.ema_decay} must lie in [0, 1]"),
            (self.max_grad_norm > 0, "max_grad_norm", f"{self.max_grad_norm} must be > 0"),
            (self.ckpt_save_interval >= 0, "ckpt_save_interval", f"{self.ckpt_save_interval} must be >= 0"),
            (self.ckpt_max_keep >= 1, "ckpt_max_keep", f"{self.ckpt_max_keep} must be >= 1"),
            (self.log_interval >= 1, "log_interval", f"{self.log_interval} must be >= 1"),
            (self.loss_scale > 0 and self.loss_scale_window >= 1, "loss_scale",
             f"{self.loss_scale} (window {self.loss_scale_window}) must be > 0"),
            (self.frames >= 1, "max_frames", f"{self.frames} must be >= 1"),
        ]
        for ok, key, msg in checks:
            if not ok:
                raise ConfigError(f"{key}: {msg}")
        for key in ("misc_dropout", "p_all_zero", "p_all_keep"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"{key}: {getattr(self, key)} is not a probability")
