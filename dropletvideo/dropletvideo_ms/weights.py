"""Reading the released diffusers-style folder ``DropletVideo-V1.0-weights/`` as it is (no conversion step).

    model_index.json
    scheduler/scheduler_config.json        diffusers DDIMScheduler config (used as a plain DDIMScheduler)
    text_encoder/config.json + model-*-of-*.safetensors + model.safetensors.index.json   (T5 encoder)
    tokenizer/spiece.model (+ HF json files)
    transformer/config.json + diffusion_pytorch_model.safetensors
    vae/config.json + diffusion_pytorch_model.safetensors

Every component is built from its config and loaded through :func:`common.checkpoint.load_state_dict_into`
with the explicit rename tables below; any missing, unexpected or mis-shaped key stops the load with one
line naming the first one. :func:`check_folder` validates the layout (files, shard index) before any
weight is read, for the CLI's one-line errors.
"""
from __future__ import annotations

import json
from pathlib import Path

import mindspore as ms
from mindspore.nn.utils import no_init_parameters

from common.checkpoint import CheckpointError, load_state_dict_into, read_state_dict
from common.config import ConfigError, from_mapping
from common.text import T5Tokenizer, load_t5_encoder
from common.vae3d import AutoencoderKLCausal3D, CausalVAEConfig

from .transformer import DropletVideoTransformer3DModel, TransformerConfig

__all__ = ["TRANSFORMER_RENAME", "VAE_RENAME", "check_folder", "read_config", "load_transformer", "load_vae",
           "load_text_encoder", "load_tokenizer", "scheduler_config"]

#: The transformer's parameter names are the released ones: no row is needed. (The sinusoidal
#: ``pos_embedding`` of the original is a non-persistent buffer, never in the file.)
TRANSFORMER_RENAME: list[tuple] = []
#: The VAE keeps the diffusers CogVideoX names (``*.conv.weight`` inside causal convs): no row is needed.
VAE_RENAME: list[tuple] = []

_COMPONENTS = ("scheduler", "text_encoder", "tokenizer", "transformer", "vae")


def _json(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON ({e})") from None


def check_folder(folder) -> Path:
    """Validate the folder layout without reading weights: every component folder, config, tokenizer model,
    weight file, the T5 shard index and every shard it names. Raises CheckpointError / ConfigError (one line)."""
    root = Path(folder)
    if not root.is_dir():
        raise CheckpointError(f"weights folder not found: {root}")
    for name in _COMPONENTS:
        if not (root / name).is_dir():
            raise CheckpointError(f"{root}: missing the {name}/ folder")
    _json(root / "scheduler" / "scheduler_config.json")
    for name in ("text_encoder", "transformer", "vae"):
        _json(root / name / "config.json")
    if not (root / "tokenizer" / "spiece.model").is_file():
        raise CheckpointError(f"{root / 'tokenizer'}: missing spiece.model")
    for name in ("transformer", "vae"):
        if not any((root / name / f).is_file() for f in ("diffusion_pytorch_model.safetensors",
                                                         "diffusion_pytorch_model.bin")):
            indexes = list((root / name).glob("*.index.json"))
            if not indexes:
                raise CheckpointError(f"{root / name}: no diffusion_pytorch_model.safetensors (or index)")
            _check_index(indexes[0])
    te = root / "text_encoder"
    indexes = sorted(te.glob("*.index.json"))
    if indexes:
        _check_index(indexes[0])
    elif not any(te.glob("*.safetensors")) and not any(te.glob("*.bin")):
        raise CheckpointError(f"{te}: no weight file or *.index.json")
    return root


def _check_index(index: Path) -> None:
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"{index}: not a shard index with a weight_map ({e})") from None
    for shard in sorted(set(weight_map.values())):
        if not (index.parent / shard).is_file():
            raise CheckpointError(f"{index}: names the shard {shard}, which is missing")


def read_config(folder, name: str):
    """The typed config of ``transformer`` or ``vae`` from ``<folder>/<name>/config.json``."""
    path = Path(folder) / name / "config.json"
    cls = {"transformer": TransformerConfig, "vae": CausalVAEConfig}[name]
    return from_mapping(cls, _json(path), str(path))


def _load(model, sub: Path, rename) -> None:
    """Every tensor of ``sub`` into ``model``, one at a time (lazy safetensors: the file is never all in memory)."""
    load_state_dict_into(model, read_state_dict(sub, lazy=True), rename=rename, source=str(sub))
    model.set_train(False)


def load_transformer(folder, dtype=None) -> DropletVideoTransformer3DModel:
    """Build the transformer from ``transformer/config.json`` and load its weights (every key accounted for).

    Args:
        dtype: compute dtype (``ms.float16`` ...; None = float32). The parameters are cast before loading, and
            built without initial values, so memory peaks at the model in ``dtype`` plus one tensor.
    """
    with no_init_parameters():
        model = DropletVideoTransformer3DModel(read_config(folder, "transformer"))
    if dtype is not None and dtype != ms.float32:
        model.set_compute_dtype(dtype)
    _load(model, Path(folder) / "transformer", TRANSFORMER_RENAME)
    return model


def load_vae(folder) -> AutoencoderKLCausal3D:
    """Build the causal 3D VAE from ``vae/config.json`` and load its weights."""
    with no_init_parameters():
        model = AutoencoderKLCausal3D(read_config(folder, "vae"))
    _load(model, Path(folder) / "vae", VAE_RENAME)
    return model


def load_text_encoder(folder):
    """The T5 encoder of ``text_encoder/`` (sharded through its index)."""
    return load_t5_encoder(Path(folder) / "text_encoder")


def load_tokenizer(folder) -> T5Tokenizer:
    return T5Tokenizer(Path(folder) / "tokenizer")


def scheduler_config(folder) -> dict:
    """``scheduler/scheduler_config.json`` as a dict (read by ``common.schedulers.ddim_schedule_from_diffusers``)."""
    return _json(Path(folder) / "scheduler" / "scheduler_config.json")
