"""Shared fixtures of the DynamiCrafter tests: tiny configs in the original YAML schema, built in code."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
import yaml

DC_DIR = Path(__file__).resolve().parents[1]

if ms.get_context("device_target") == "CPU":
    # synchronous op launch (as inference.py does): the tiny models' PyNative calls get ~5x faster on
    # a few cores; numbers are unchanged
    ms.runtime.launch_blocking()

ARCHS = {
    "t-text": {"embed_dim": 16, "vision_cfg": {"image_size": 224, "layers": 1, "width": 32, "head_width": 16,
                                                "patch_size": 14},
               "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 2}},
    "t-image": {"embed_dim": 32, "vision_cfg": {"image_size": 224, "layers": 1, "width": 32, "head_width": 16,
                                                 "patch_size": 14},
                "text_cfg": {"context_length": 77, "vocab_size": 64, "width": 8, "heads": 1, "layers": 1}},
}


def tiny_config(style: str = "256", frames: int = 2) -> dict:
    """A tiny inference config of the 256 (eps, fs, alpha gate) or 512 (v, zero-SNR, fps, rescale) kind."""
    unet = dict(in_channels=8, out_channels=4, model_channels=32, attention_resolutions=[1], num_res_blocks=1,
                channel_mult=[1, 2], dropout=0.1, num_head_channels=8, transformer_depth=1, context_dim=16,
                use_linear=True, use_checkpoint=True, temporal_conv=True, temporal_attention=True,
                temporal_selfatt_only=True, use_relative_position=False, use_causal_attention=False,
                temporal_length=frames, addition_attention=True, image_cross_attention=True,
                default_fs=3 if style == "256" else 24, fs_condition=True)
    params = dict(linear_start=0.00085, linear_end=0.012, num_timesteps_cond=1, timesteps=1000,
                  first_stage_key="video", cond_stage_key="caption", cond_stage_trainable=False,
                  conditioning_key="hybrid", image_size=[8, 8], channels=4, scale_by_std=False,
                  scale_factor=0.18215, use_ema=False, uncond_type="empty_seq")
    if style == "256":
        unet["image_cross_attention_scale_learnable"] = True
    else:
        params.update(rescale_betas_zero_snr=True, parameterization="v", use_dynamic_rescale=True, base_scale=0.7,
                      fps_condition_type="fps", perframe_ae=True)
    params.update(
        unet_config={"target": "lvdm.modules.networks.openaimodel3d.UNetModel", "params": unet},
        first_stage_config={"target": "lvdm.models.autoencoder.AutoencoderKL", "params": {
            "embed_dim": 4, "monitor": "val/rec_loss", "lossconfig": {"target": "torch.nn.Identity"},
            "ddconfig": dict(double_z=True, z_channels=4, resolution=64, in_channels=3, out_ch=3, ch=32,
                             ch_mult=[1, 1, 1, 1], num_res_blocks=1, attn_resolutions=[], dropout=0.0)}},
        cond_stage_config={"target": "lvdm.modules.encoders.condition.FrozenOpenCLIPEmbedder",
                           "params": {"freeze": True, "layer": "penultimate", "arch": "t-text"}},
        img_cond_stage_config={"target": "lvdm.modules.encoders.condition.FrozenOpenCLIPImageEmbedderV2",
                               "params": {"freeze": True, "arch": "t-image"}},
        image_proj_stage_config={"target": "lvdm.modules.encoders.resampler.Resampler", "params": dict(
            dim=32, depth=1, dim_head=16, heads=2, num_queries=16, embedding_dim=32, output_dim=16, ff_mult=2,
            video_length=frames)},
    )
    return {"model": {"target": "lvdm.models.ddpm3d.LatentVisualDiffusion", "params": params}}


def tiny_train_config(data_dir, meta_path, ckpt=None, frames: int = 2, style: str = "512") -> dict:
    """A tiny training config in the original's schema (``model`` + ``data`` + ``lightning``): 64x64 clips of
    ``frames`` frames, stride <= 3 drawn per clip, 3 steps of 2 micro-batches, EMA, checkpointing, a
    checkpoint every step."""
    cfg = tiny_config(style, frames)
    cfg["model"].update(pretrained_checkpoint=None if ckpt is None else str(ckpt), base_learning_rate=1e-3,
                        scale_lr=False)
    cfg["model"]["params"].update(uncond_prob=0.3, image_proj_model_trainable=True, use_ema=True)
    cfg["data"] = {"target": "utils_data.DataModuleFromConfig", "params": {
        "batch_size": 1, "num_workers": 2, "wrap": False, "train": {"target": "lvdm.data.webvid.WebVid", "params": {
            "data_dir": str(data_dir), "meta_path": str(meta_path), "video_length": frames, "frame_stride": 3,
            "load_raw_resolution": True, "resolution": [64, 64], "spatial_transform": "resize_center_crop",
            "random_fs": True}}}}
    cfg["lightning"] = {"precision": 16, "trainer": {
        "benchmark": True, "accumulate_grad_batches": 2, "max_steps": 3, "log_every_n_steps": 1,
        "gradient_clip_algorithm": "norm", "gradient_clip_val": 0.5},
        "callbacks": {"model_checkpoint": {"target": "pytorch_lightning.callbacks.ModelCheckpoint",
                                           "params": {"every_n_train_steps": 1}}}}
    return cfg


def write_config(folder: Path, cfg: dict, name: str = "config.yaml") -> Path:
    """Write ``cfg`` as YAML with the tiny open_clip archs beside it; returns the yaml path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_clip_archs.json").write_text(json.dumps(ARCHS))
    path = folder / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def randomize(cell, seed: int = 0, std: float = 0.2, skip=("betas", "alphas", "sqrt", "log_", "posterior", "scale_arr")):
    """Deterministic N(0, std^2) weights for every parameter except the schedule buffers
    (so zero-initialised layers and gates take part in the numbers)."""
    rng = np.random.default_rng(seed)
    for name, p in cell.parameters_and_names():
        if "." not in name and name.startswith(skip):  # top-level schedule buffers
            continue
        p.set_data(ms.Tensor((rng.standard_normal(p.shape) * std).astype(np.float32)))


@pytest.fixture(scope="session")
def dc():
    """The helpers of this conftest (tests cannot import it under --import-mode=importlib)."""
    from types import SimpleNamespace

    return SimpleNamespace(tiny_config=tiny_config, tiny_train_config=tiny_train_config, write_config=write_config,
                           randomize=randomize, DC_DIR=DC_DIR)


@pytest.fixture
def tiny_cfg_dict():
    """A fresh tiny 256-style config dict."""
    return copy.deepcopy(tiny_config("256"))


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    """A folder with tiny256.yaml, tiny512.yaml and their open_clip archs."""
    d = tmp_path_factory.mktemp("dc_cfg")
    write_config(d, tiny_config("256"), "tiny256.yaml")
    write_config(d, tiny_config("512"), "tiny512.yaml")
    return d


@pytest.fixture(scope="session")
def tiny_model(tiny_dir):
    """The tiny 256-style DynamiCrafter with deterministic random weights."""
    from dynamicrafter_ms.config import DynamiCrafterConfig
    from dynamicrafter_ms.model import DynamiCrafter

    model = DynamiCrafter(DynamiCrafterConfig.from_yaml(tiny_dir / "tiny256.yaml"))
    randomize(model)
    model.set_train(False)
    return model


@pytest.fixture
def prompt_dir(tmp_path) -> Path:
    """A prompts folder: two pictures (png, jpg) and a prompt file with a blank line."""
    from PIL import Image

    d = tmp_path / "prompts"
    d.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(d / "b_second.png")
    Image.fromarray(rng.integers(0, 255, (70, 50, 3), dtype=np.uint8)).save(d / "a_first.jpg")
    (d / "prompts.txt").write_text("a cat walking\n\n  fireworks over the sea  \n")
    return d


@pytest.fixture(scope="session")
def train_setup(tmp_path_factory, tiny_dir):
    """Demo mp4s (3 clips of 8 frames), a tiny 512-style model checkpoint and its training config:
    ``SimpleNamespace(root, csv, ckpt, config)``."""
    from types import SimpleNamespace

    from dynamicrafter_ms.config import DynamiCrafterConfig
    from dynamicrafter_ms.demo_data import make_demo_webvid
    from dynamicrafter_ms.model import DynamiCrafter
    from safetensors.numpy import save_file

    root = tmp_path_factory.mktemp("dc_train")
    csv = make_demo_webvid(root / "data", n=3, frames=8, size=(48, 80), fps=16)
    model = DynamiCrafter(DynamiCrafterConfig.from_yaml(tiny_dir / "tiny512.yaml"))
    randomize(model, seed=3, std=0.1)
    ckpt = root / "tiny512.safetensors"
    save_file({p.name: p.asnumpy() for p in model.get_parameters()}, str(ckpt))
    config = write_config(root / "cfg", tiny_train_config(root / "data", csv, ckpt), "train.yaml")
    return SimpleNamespace(root=root, csv=csv, ckpt=ckpt, config=config)
