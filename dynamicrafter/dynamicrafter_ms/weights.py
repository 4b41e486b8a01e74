"""The rename table from the released PyTorch keys to ours, the schedule check and the loader.

Our parameter names ARE the original ``state_dict`` names, so the table holds only true
differences (see :data:`RENAMES`); matching and the key report are ``common.checkpoint``'s. The
schedule buffers are compared with the values the config implies (they tell a 512 checkpoint from a
1024 one, whose weights have the same shapes).
"""
from __future__ import annotations

import re

import numpy as np

from common.checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    LoadReport,
    configs_that_fit,
    load_state_dict_into,
    match_state_dict,
    read_state_dict,
)

#: (pattern, replacement, why) applied in order to every source key.
RENAMES: list[tuple[str, str, str]] = [
    (r"^_forward_module\.", "", "DeepSpeed checkpoints prefix every key with '_forward_module.' (16 chars)"),
    (r"^model\.diffusion_model\.framestride_embed\.", "model.diffusion_model.fps_embedding.",
     "the 256 release names the frame-stride MLP 'framestride_embed' (inference.py renames it too)"),
]

#: open_clip CLIP (``open_clip_pytorch_model.bin`` of ViT-H-14) -> our two embedders (``--kind clip``).
CLIP_TEXT_KEYS = r"^(positional_embedding|text_projection|logit_scale|token_embedding\.|transformer\.|ln_final\.)"

#: a hint for the usual cause of a mismatch, appended to the error line.
HINT = ("a checkpoint of another model or resolution? (only the 256 model has attn2.alpha, only 512/1024 "
        "have scale_arr)")


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


def match_checkpoint(model, sd: dict, ckpt, config="the config", allow_partial: bool = False,
                     check_schedule: bool = True) -> tuple[dict, LoadReport]:
    """Rename ``sd`` by :data:`RENAMES`, match it against ``model``'s shapes (weights need not be
    allocated) and check the schedule buffers; returns the matched ``{our name: array}`` and the report.

    Raises:
        CheckpointMismatchError: one line naming the first missing / unexpected / mis-shaped key
            (and its two shapes), or the first schedule value that differs.
    """
    matched, report = match_state_dict(model, sd, rename=RENAMES)
    if not (report.ok or allow_partial):
        raise CheckpointMismatchError(f"{report.message(f'{ckpt} vs {config}')}; {HINT}", report)
    if check_schedule:
        check_buffers(model, matched, ckpt, config)
    return matched, report


def load_weights(model, ckpt, config="the config", check_schedule: bool = True) -> int:
    """Load a released ``model.ckpt`` (Lightning ``state_dict``, DeepSpeed ``module``), a converted
    MindSpore ``.ckpt`` or a ``.safetensors`` (read without running pickled code) into a
    :class:`~dynamicrafter_ms.model.DynamiCrafter`; every key must match (:func:`match_checkpoint`).

    Returns the number of tensors loaded.
    """
    sd = read_state_dict(ckpt)
    if not sd:
        raise CheckpointError(f"{ckpt}: holds no tensors")
    matched, _ = match_checkpoint(model, sd, ckpt, config, check_schedule=check_schedule)
    return load_state_dict_into(model, matched, source=str(ckpt)).loaded


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


def shipped_configs_that_fit(ckpt) -> list:
    """The shipped inference configs (``configs/inference_*.yaml``) whose model ``ckpt`` loads into exactly,
    schedule buffers included (:func:`common.checkpoint.configs_that_fit`): named when it does not fit the
    config given."""
    from pathlib import Path

    from .config import DynamiCrafterConfig
    from .model import DynamiCrafter

    def buffers_agree(model, matched) -> bool:
        try:
            check_buffers(model, matched, ckpt, "")
        except CheckpointMismatchError:
            return False
        return True

    shipped = sorted((Path(__file__).resolve().parents[1] / "configs").glob("inference_*.yaml"))
    return configs_that_fit(ckpt, shipped, lambda c: DynamiCrafter(DynamiCrafterConfig.from_yaml(c)),
                            rename=RENAMES, check=buffers_agree)
