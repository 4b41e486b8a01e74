"""The rename table from the released SVD checkpoints to this port, and the loader.

Released layout (Stability-AI/generative-models ``DiffusionEngine.state_dict()``, e.g.
``svd.safetensors``): ``model.diffusion_model.*``, ``conditioner.embedders.0.open_clip.model.*``,
``conditioner.embedders.3.encoder.*``, ``first_stage_model.{encoder,decoder}.*``.

Our parameters carry those names verbatim, so the table only lists what is *not* loaded: tensors
of the release that SVD never runs. Every other key must match a parameter by name and shape, and
every parameter must be present; anything else raises :class:`common.checkpoint.CheckpointMismatchError`
naming the keys.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from common.checkpoint import LoadReport, load_state_dict_into, read_state_dict

#: (regex, replacement) applied in order; replacement None drops the key. Reason per entry.
RENAME_TABLE: list[tuple[str, str | None, str]] = [
    # open_clip CLIP keeps its text-tower leftovers after `del model.transformer`; SVD only runs `.visual`.
    (r"^conditioner\.embedders\.\d+\.open_clip\.model\.(token_embedding|positional_embedding|ln_final|"
     r"text_projection|logit_scale)(\.|$)", None, "unused text-tower leftovers of open_clip CLIP"),
    # AutoencoderKLModeOnly builds a whole AutoencoderKL; the conditioner only encodes.
    (r"^conditioner\.embedders\.\d+\.encoder\.(decoder|post_quant_conv)\.", None,
     "unused 2-D decoder of the conditioner's autoencoder"),
    # Lightning EMA copies (present in training checkpoints, never in the release).
    (r"^model_ema\.", None, "EMA shadow weights of a training checkpoint (use the EMA export instead)"),
]


def rename_key(key: str) -> str | None:
    """Our parameter name for a checkpoint key (None = not loaded, see :data:`RENAME_TABLE`)."""
    for pattern, repl, _ in RENAME_TABLE:
        if re.search(pattern, key):
            if repl is None:
                return None
            key = re.sub(pattern, repl, key)
    return key


def drop_reason(key: str) -> str | None:
    """Why a checkpoint key is not loaded (the table's reason), or None when it is loaded."""
    for pattern, repl, why in RENAME_TABLE:
        if repl is None and re.search(pattern, key):
            return why
    return None


def rename_state_dict(sd: dict) -> tuple[dict, list[str]]:
    """Apply :func:`rename_key` to every key: (renamed dict, dropped original keys)."""
    out, dropped = {}, []
    for k, v in sd.items():
        new = rename_key(k)
        if new is None:
            dropped.append(k)
        else:
            out[new] = v
    return out, dropped


def read_svd_checkpoint(path) -> dict[str, np.ndarray]:
    """Read a released SVD file (.safetensors / .ckpt / .pt) or our converted MindSpore .ckpt (float32)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"SVD checkpoint {path} does not exist")
    sd = read_state_dict(path, upcast=True)
    # native byte-order descriptors ('<f4' views are not accepted by mindspore.Tensor)
    return {k: (v.view(v.dtype.newbyteorder("=")) if v.dtype.byteorder == "<" else v) for k, v in sd.items()}


def load_svd_weights(model, path_or_sd, allow_partial: bool = False) -> LoadReport:
    """Load a checkpoint (path or state dict) into an :class:`~svd_ms.model.SVDModel`.

    Every key is accounted for: renamed by :data:`RENAME_TABLE` or matched by name and shape.

    Args:
        model: the SVDModel (or any cell with the same parameter names).
        path_or_sd: checkpoint file or ``{key: array}``.
        allow_partial: load what matches instead of raising on missing/unexpected/mis-shaped keys.
    """
    sd = path_or_sd if isinstance(path_or_sd, dict) else read_svd_checkpoint(path_or_sd)
    return load_state_dict_into(model, sd, rename=rename_key, allow_partial=allow_partial)
