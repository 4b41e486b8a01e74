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

from common.checkpoint import LoadReport, load_state_dict_into, read_state_dict

#: (regex, replacement or None, why) applied in order; None drops the key (why says why).
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


def load_svd_weights(model, path_or_sd, allow_partial: bool = False) -> LoadReport:
    """Load a checkpoint (path or state dict) into an :class:`~svd_ms.model.SVDModel`.

    Every key is accounted for: dropped by :data:`RENAME_TABLE` or matched by name and shape
    (``common.checkpoint.load_state_dict_into``).

    Args:
        model: the SVDModel (or any cell with the same parameter names).
        path_or_sd: released ``.safetensors`` / ``.ckpt`` / ``.pt``, our converted MindSpore ``.ckpt``
            (read as float32), or ``{key: array}``.
        allow_partial: load what matches instead of raising on missing/unexpected/mis-shaped keys.
    """
    sd = path_or_sd if isinstance(path_or_sd, dict) else read_state_dict(path_or_sd)
    source = "state dict" if isinstance(path_or_sd, dict) else str(path_or_sd)
    return load_state_dict_into(model, sd, rename=RENAME_TABLE, allow_partial=allow_partial, source=source)


def configs_that_fit(checkpoint, configs) -> list:
    """The configs (paths) whose :class:`~svd_ms.model.SVDModel` the checkpoint loads into exactly
    (:func:`common.checkpoint.configs_that_fit`)."""
    from common.checkpoint import configs_that_fit as fit

    from .model import SVDModel

    return fit(checkpoint, configs, SVDModel.from_config_file, rename=RENAME_TABLE)

