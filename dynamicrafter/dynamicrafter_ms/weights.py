"""Checkpoint conversion and loading: the rename table from the released PyTorch keys to ours.

Our parameter names ARE the original ``state_dict`` names, so the table holds only true
differences (see :data:`RENAMES`). Every source key is accounted for: renamed, kept as is, or
reported as unexpected; the schedule buffers are compared with the values the config implies
(they tell a 512 checkpoint from a 1024 one, whose weights have the same shapes).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common.checkpoint import CheckpointError, CheckpointMismatchError, load_state_dict_into, read_state_dict

#: (pattern, replacement, why) applied in order to every source key.
RENAMES: list[tuple[str, str, str]] = [
    (r"^_forward_module\.", "", "DeepSpeed checkpoints prefix every key with '_forward_module.' (16 chars)"),
    (r"^model\.diffusion_model\.framestride_embed\.", "model.diffusion_model.fps_embedding.",
     "the 256 release names the frame-stride MLP 'framestride_embed' (inference.py renames it too)"),
]

#: open_clip CLIP (``open_clip_pytorch_model.bin`` of ViT-H-14) -> our two embedders (``--model_name clip``).
CLIP_TEXT_KEYS = r"^(positional_embedding|text_projection|logit_scale|token_embedding\.|transformer\.|ln_final\.)"


def rename_key(key: str) -> str:
    """Apply :data:`RENAMES` to one key."""
    for pattern, repl, _ in RENAMES:
        key = re.sub(pattern, repl, key)
    return key


def native(arr: np.ndarray) -> np.ndarray:
    """The array with a native byte-order dtype (MindSpore refuses explicit '<f4' buffers)."""
    return arr.view(arr.dtype.newbyteorder("=")) if arr.dtype.byteorder not in ("=", "|") else arr


def read_checkpoint(path) -> dict[str, np.ndarray]:
    """Read a released ``model.ckpt`` (Lightning ``state_dict``, DeepSpeed ``module``), a converted
    MindSpore ``.ckpt`` or a ``.safetensors`` without running pickled code; keys renamed by :data:`RENAMES`.

    Raises:
        CheckpointError: missing, truncated or unreadable file (message names it).
        UnsafeCheckpointError: a pickle that asks for code outside the allow-list (not executed).
    """
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint not found: {p}")
    sd = read_state_dict(p)
    if not sd:
        raise CheckpointError(f"{p}: holds no tensors")
    out = {}
    for k, v in sd.items():
        new = rename_key(k)
        if new in out:
            raise CheckpointError(f"{p}: keys '{k}' and another both map to '{new}'")
        out[new] = native(v)
    return out


@dataclass
class KeyAccount:
    """How each source key was handled by a conversion."""

    renamed: dict[str, str] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.unexpected or self.missing or self.mismatched)


def account_keys(src_keys_shapes: dict[str, tuple], model_shapes: dict[str, tuple]) -> KeyAccount:
    """Compare source (original) keys/shapes, after renaming, with the model's parameter shapes."""
    acc = KeyAccount()
    seen = set()
    for k, shape in src_keys_shapes.items():
        new = rename_key(k)
        if new != k:
            acc.renamed[k] = new
        else:
            acc.kept.append(k)
        seen.add(new)
        if new not in model_shapes:
            acc.unexpected.append(k)
        elif tuple(model_shapes[new]) != tuple(shape):
            acc.mismatched.append((new, tuple(shape), tuple(model_shapes[new])))
    acc.missing = [k for k in model_shapes if k not in seen]
    return acc


def mismatch_message(acc: KeyAccount, ckpt, config) -> str:
    """One line naming the first problem of a key account."""
    where = f"checkpoint {ckpt} does not fit the model of {config}"
    if acc.mismatched:
        k, theirs, ours = acc.mismatched[0]
        return (f"{where}: first mismatched key '{k}': checkpoint {list(theirs)} vs model {list(ours)} "
                f"({len(acc.mismatched)} mismatched; a checkpoint of another model/resolution?)")
    if acc.missing:
        return (f"{where}: key '{acc.missing[0]}' is missing from the checkpoint ({len(acc.missing)} missing; "
                f"a truncated or partial file, or another resolution's checkpoint?)")
    return (f"{where}: unexpected key '{acc.unexpected[0]}' ({len(acc.unexpected)} unexpected; "
            f"a checkpoint of another resolution? e.g. only the 256 model has attn2.alpha, only 512/1024 have scale_arr)")


def check_buffers(model, sd: dict[str, np.ndarray], ckpt, config, rtol: float = 1e-5) -> None:
    """The checkpoint's schedule buffers must equal what the config implies (e.g. 512 vs 1024 scale_arr)."""
    for name in model.buffer_names:
        if name not in sd:
            continue
        ours, theirs = model.buffer(name), np.asarray(sd[name], np.float32)
        if ours.shape == theirs.shape and not np.allclose(ours, theirs, rtol=rtol, atol=1e-7):
            i = int(np.argmax(np.abs(ours - theirs)))
            raise CheckpointMismatchError(
                f"checkpoint {ckpt} does not fit the model of {config}: schedule buffer '{name}' differs "
                f"(index {i}: checkpoint {theirs[i]:.6g} vs config {ours[i]:.6g}); "
                f"a checkpoint of another resolution (e.g. 512 base_scale 0.7 vs 1024 base_scale 0.3)?")


def load_weights(model, ckpt, config="the config", check_schedule: bool = True) -> int:
    """Load a checkpoint into a :class:`~dynamicrafter_ms.model.DynamiCrafter`; every key must match.

    Returns the number of tensors loaded. Raises CheckpointMismatchError with one line naming
    the first mismatched / missing / unexpected key (and its two shapes).
    """
    sd = read_checkpoint(ckpt)
    shapes = {n: tuple(p.shape) for n, p in model.parameters_and_names()}
    for k, v in sd.items():  # MindSpore checkpoints store 0-d tensors (attn2.alpha) as shape [1]
        if shapes.get(k) == () and v.shape == (1,):
            sd[k] = v.reshape(())
    acc = account_keys({k: tuple(v.shape) for k, v in sd.items()}, shapes)
    if not acc.ok:
        raise CheckpointMismatchError(mismatch_message(acc, ckpt, config))
    if check_schedule:
        check_buffers(model, sd, ckpt, config)
    return load_state_dict_into(model, sd).loaded


def clip_to_dynamicrafter(sd: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """An open_clip CLIP state dict (``visual.*`` + text keys) -> our ``cond_stage_model.model.*``
    (text tower) and ``embedder.model.*`` (ViT + the text leftovers the image embedder keeps)."""
    out = {}
    for k, v in sd.items():
        if k == "attn_mask":
            continue  # open_clip's causal mask buffer: rebuilt, never loaded
        if k.startswith("visual."):
            out["embedder.model." + k] = v
        elif re.match(CLIP_TEXT_KEYS, k):
            out["cond_stage_model.model." + k] = v
            if not k.startswith("transformer."):
                out["embedder.model." + k] = v
        else:
            raise CheckpointError(f"open_clip checkpoint: unexpected key '{k}'")
    return out
