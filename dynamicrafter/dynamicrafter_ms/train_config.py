"""Typed view of the original training YAMLs (``configs/training_*/config*.yaml``): ``model``, ``data``, ``lightning``.

``model.params`` is read by :class:`~dynamicrafter_ms.config.DynamiCrafterConfig` (the same classes as
inference); this module reads the rest: the ``model`` node's training keys, the ``data`` node
(``utils_data.DataModuleFromConfig`` with a ``lvdm.data.webvid.WebVid`` train set) and the ``lightning``
node (precision, trainer and checkpoint callbacks). Every key the original files carry is declared; keys of
the Lightning machinery that have no counterpart here are declared :func:`~common.config.unused` with the
reason. An unknown key is a :class:`~common.config.ConfigError` naming the file and key path.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from common.config import ConfigError, from_mapping, join, unused

_LIGHTNING = "a PyTorch Lightning setting with no counterpart in this port"


@dataclass
class WebVidParams:
    """``data.params.train.params`` (``lvdm.data.webvid.WebVid``).

    data_dir: dataset root; a CSV row's clip is ``<data_dir>/videos/<page_dir>/<videoid>.mp4``; with meta_path null,
        a folder dataset (every *.mp4 under it, captions in a same-named .txt beside each or in captions.csv).
    meta_path: the CSV with the columns ``videoid``, ``name`` (the caption) and ``page_dir``; a folder = a folder
        dataset there (data_dir unused); null = data_dir is a folder dataset.
    subsample: use only this many rows (a seeded random subset); null = all.
    video_length: frames per clip (T).
    resolution: [H, W] of the frames (an int = square).
    frame_stride: take every frame_stride-th frame (with random_fs: the largest stride drawn).
    frame_stride_min: the smallest stride drawn with random_fs.
    spatial_transform: resize_center_crop (short side to min(H, W), then centre crop) | center_crop | resize | null.
    crop_resolution: random_crop's size (random_crop is not supported).
    fps_max: cap of the fps condition (null = none).
    load_raw_resolution: decode at the file's size (true; false = the original's 530x300 decode).
    fixed_fps: scale the stride by fps_of_the_file / fixed_fps (null = off).
    random_fs: draw the stride uniformly in [frame_stride_min, frame_stride] per clip.
    """

    data_dir: str = "data"
    meta_path: str | None = None
    subsample: int | None = None
    video_length: int = 16
    resolution: Any = field(default_factory=lambda: [256, 512])
    frame_stride: int = 1
    frame_stride_min: int = 1
    spatial_transform: Literal["resize_center_crop", "center_crop", "resize"] | None = None
    crop_resolution: Any = None
    fps_max: float | None = None
    load_raw_resolution: bool = False
    fixed_fps: float | None = None
    random_fs: bool = False

    def __post_init__(self):
        r = self.resolution
        self.resolution = [int(r), int(r)] if isinstance(r, int) else [int(v) for v in r]
        if len(self.resolution) != 2 or min(self.resolution) <= 0:
            raise ConfigError(f"resolution: {r!r} is not a positive [H, W] pair")
        for name in ("video_length", "frame_stride", "frame_stride_min"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: {getattr(self, name)} must be >= 1")
        if self.random_fs and self.frame_stride_min > self.frame_stride:
            raise ConfigError(f"frame_stride_min: {self.frame_stride_min} is above frame_stride {self.frame_stride}")
        if not self.load_raw_resolution:
            raise ConfigError("load_raw_resolution: false (decode at 530x300) is not supported; use true")


@dataclass
class DatasetNode:
    """``data.params.train``: ``target`` and ``params`` of the train set."""

    target: Literal["lvdm.data.webvid.WebVid"]
    params: WebVidParams = field(default_factory=WebVidParams)


@dataclass
class DataParams:
    """``data.params`` (``utils_data.DataModuleFromConfig``).

    batch_size: clips per process and micro-batch.
    train: the train set node.
    """

    batch_size: int
    train: DatasetNode
    num_workers: Any = unused("clips are decoded in the training process", None)
    wrap: Any = unused("no Lightning data wrapper", False)
    validation: Any = unused("no validation loop", None)
    test: Any = unused("no test loop", None)
    predict: Any = unused("no predict loop", None)
    shuffle_test_loader: Any = unused("no test loop", False)
    use_worker_init_fn: Any = unused("no worker processes", False)
    shuffle_val_dataloader: Any = unused("no validation loop", False)
    train_img: Any = unused("image-video joint training is not in the released configs", None)
    test_max_n_samples: Any = unused("no test loop", None)

    def __post_init__(self):
        if self.batch_size < 1:
            raise ConfigError(f"batch_size: {self.batch_size} must be >= 1")


@dataclass
class DataNode:
    """``data``."""

    target: Literal["utils_data.DataModuleFromConfig"]
    params: DataParams


@dataclass
class TrainerParams:
    """``lightning.trainer``.

    accumulate_grad_batches: micro-batches per optimizer step.
    max_steps: optimizer steps of the run.
    log_every_n_steps: a line in train_log.jsonl every N steps.
    gradient_clip_algorithm: norm (global L2 norm; 'value' is not supported).
    gradient_clip_val: the norm clipped to (null or 0 = no clipping).
    """

    accumulate_grad_batches: int = 1
    max_steps: int = 100000
    log_every_n_steps: int = 50
    gradient_clip_algorithm: Literal["norm"] = "norm"
    gradient_clip_val: float | None = None
    benchmark: Any = unused("cuDNN autotuning", True)
    val_check_interval: Any = unused("no validation loop", None)
    num_nodes: Any = unused("the number of processes comes from msrun / the rank table", 1)
    devices: Any = unused("the number of processes comes from msrun / the rank table", None)
    max_epochs: Any = unused("runs are counted in steps (max_steps)", None)

    def __post_init__(self):
        if self.accumulate_grad_batches < 1 or self.max_steps < 1 or self.log_every_n_steps < 1:
            raise ConfigError("accumulate_grad_batches, max_steps and log_every_n_steps must be >= 1")


@dataclass
class CheckpointParams:
    """``lightning.callbacks.model_checkpoint.params`` (``ModelCheckpoint``).

    every_n_train_steps: write a checkpoint every N optimizer steps (atomic; resumable).
    """

    every_n_train_steps: int = 1000
    filename: Any = unused("checkpoints are output_dir/ckpt-<step>.safetensors", None)
    save_weights_only: Any = unused("checkpoints always hold the whole training state (exact resume)", True)


@dataclass
class CheckpointCallback:
    """``lightning.callbacks.model_checkpoint``."""

    target: Literal["pytorch_lightning.callbacks.ModelCheckpoint"] = "pytorch_lightning.callbacks.ModelCheckpoint"
    params: CheckpointParams = field(default_factory=CheckpointParams)


@dataclass
class Callbacks:
    """``lightning.callbacks``."""

    model_checkpoint: CheckpointCallback = field(default_factory=CheckpointCallback)
    metrics_over_trainsteps_checkpoint: Any = unused("one checkpoint series (model_checkpoint) is kept", None)
    batch_logger: Any = unused("no sample videos are logged during training", None)


@dataclass
class LightningNode:
    """``lightning``.

    precision: 16 = float16 UNet compute with float32 master weights and dynamic loss scaling (GPU/Ascend;
        float32 on CPU), 32 = float32.
    trainer: the loop's settings.
    callbacks: checkpointing.
    """

    precision: Literal[16, 32, "16", "32", "16-mixed", "32-true"] = 32
    trainer: TrainerParams = field(default_factory=TrainerParams)
    callbacks: Callbacks = field(default_factory=Callbacks)
    strategy: Any = unused("data parallel comes from msrun (every rank holds the whole model)", None)

    @property
    def fp16(self) -> bool:
        """Whether ``precision`` asks for float16 compute."""
        return str(self.precision).startswith("16")


@dataclass
class TrainModelNode:
    """``model`` (the training keys; ``params`` is read by DynamiCrafterConfig).

    pretrained_checkpoint: the released model.ckpt fine-tuning starts from (null = random weights, tests only).
    base_learning_rate: AdamW's learning rate (times processes x batch_size when scale_lr).
    scale_lr: multiply base_learning_rate by processes x batch_size (the original's default true).
    """

    target: Literal["lvdm.models.ddpm3d.LatentVisualDiffusion"]
    params: dict
    pretrained_checkpoint: str | None = None
    base_learning_rate: float = 1e-4
    scale_lr: bool = True


@dataclass
class TrainingFile:
    """The whole training YAML."""

    model: TrainModelNode
    data: DataNode
    lightning: LightningNode = field(default_factory=LightningNode)


def read_training_file(data: dict, where: str) -> TrainingFile:
    """``data`` (the parsed YAML, overrides applied) -> :class:`TrainingFile` (every key checked)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: not a mapping")
    for key in ("model", "data"):
        if key not in data:
            raise ConfigError(f"{join(where, key)}: missing (a training config has model, data and lightning)")
    return from_mapping(TrainingFile, data, where)
