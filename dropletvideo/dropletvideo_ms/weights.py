"""Reading the released diffusers-style folder ``DropletVideo-V1.0-weights/`` as it is (no conversion step).

    model_index.json
    scheduler/scheduler_config.json        diffusers DDIMScheduler config (used as a plain DDIMScheduler)
    text_encoder/config.json + model-*-of-*.safetensors + model.safetensors.index.json   (T5 encoder)
    tokenizer/spiece.model (+ HF json files)
    transformer/config.json + diffusion_pytorch_model.safetensors
    vae/config.json + diffusion_pytorch_model.safetensors

The same layout converted by ``tools/convert_weight.py`` loads the same way: a component folder holding the
MindSpore checkpoint :data:`CONVERTED` names (``transformer/diffusion_pytorch_model.ckpt`` ...) is read from it.

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

__all__ = ["TRANSFORMER_RENAME", "VAE_RENAME", "CONVERTED", "check_folder", "check_component", "weights_path",
           "read_config", "read_config_file", "load_transformer", "load_vae", "load_text_encoder", "load_tokenizer", "scheduler_config"]

#: The transformer's parameter names are the released ones: no row is needed. (The sinusoidal
#: ``pos_embedding`` of the original is a non-persistent buffer, never in the file.)
TRANSFORMER_RENAME: list[tuple] = []
#: The VAE keeps the diffusers CogVideoX names (``*.conv.weight`` inside causal convs): no row is needed.
VAE_RENAME: list[tuple] = []

_COMPONENTS = ("scheduler", "text_encoder", "tokenizer", "transformer", "vae")
#: the MindSpore checkpoint ``tools/convert_weight.py`` writes into each component folder (loaded instead of the
#: released files when present)
CONVERTED = {"transformer": "diffusion_pytorch_model.ckpt", "vae": "diffusion_pytorch_model.ckpt",
             "text_encoder": "model.ckpt"}


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
    for name in ("transformer", "vae", "text_encoder"):
        check_component(root, name)
    return root


def check_component(root, name: str) -> Path:
    """The weights of component ``name`` (``transformer``, ``vae``, ``text_encoder``) under ``root``: the converted
    checkpoint (:data:`CONVERTED`), one released file, or a shard index whose every shard is there. Returns what
    :func:`weights_path` reads; raises CheckpointError (one line) without reading any weight."""
    sub = Path(root) / name
    if not sub.is_dir():
        raise CheckpointError(f"{root}: missing the {name}/ folder")
    if (sub / CONVERTED[name]).is_file():
        return sub / CONVERTED[name]
    singles = (("model.safetensors", "pytorch_model.bin") if name == "text_encoder" else
               ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"))
    indexes = sorted(sub.glob("*.index.json"))  # read before a single file, as common.checkpoint does
    if indexes:
        _check_index(indexes[0])
    elif not any((sub / f).is_file() for f in singles):
        raise CheckpointError(f"{sub}: no {singles[0]}, *.index.json or converted {CONVERTED[name]}")
    return sub


def weights_path(root, name: str) -> Path:
    """What the loaders read for component ``name``: its converted ``.ckpt`` when present, else the folder."""
    sub = Path(root) / name
    return sub / CONVERTED[name] if (sub / CONVERTED[name]).is_file() else sub


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
    return read_config_file(Path(folder) / name / "config.json", name)


def read_config_file(path, name: str):
    """The typed config of ``transformer`` or ``vae`` from the config.json ``path`` (unknown keys refused)."""
    cls = {"transformer": TransformerConfig, "vae": CausalVAEConfig}[name]
    return from_mapping(cls, _json(Path(path)), str(path))


def _load(model, sub: Path, rename) -> None:
    """Every tensor of ``sub`` (or its converted ``.ckpt``) into ``model``, one at a time for safetensors (lazy:
    the file is never all in memory; a MindSpore ``.ckpt`` is read whole)."""
    src = weights_path(sub.parent, sub.name)
    load_state_dict_into(model, read_state_dict(src, lazy=True), rename=rename, source=str(src))
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
    """The T5 encoder of ``text_encoder/`` (sharded through its index, or its converted ``model.ckpt``)."""
    return load_t5_encoder(Path(folder) / "text_encoder", weights_path(folder, "text_encoder"))


def load_tokenizer(folder) -> T5Tokenizer:
    return T5Tokenizer(Path(folder) / "tokenizer")


def scheduler_config(folder) -> dict:
    """``scheduler/scheduler_config.json`` as a dict (read by ``common.schedulers.ddim_schedule_from_diffusers``)."""
    return _json(Path(folder) / "scheduler" / "scheduler_config.json")
