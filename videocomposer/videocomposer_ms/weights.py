"""Rename tables from the six released files to our parameter names, and the loaders.

Our names ARE the original state-dict names, so the tables hold only true differences; matching, the key
report and the one-line errors are :mod:`common.checkpoint`'s. Files are read without running pickled code.

| file | holds | table |
|---|---|---|
| ``non_ema_228000.pth`` | UNetSD_temporal, no prefix | :data:`UNET_RENAMES` (none) |
| ``open_clip_pytorch_model.bin`` | open_clip CLIP (text + ``visual.*``) | :data:`CLIP_RENAMES` (none) |
| ``v2-1_512-ema-pruned.ckpt`` | SD 2.1 (``first_stage_model.*`` = the VAE, the rest dropped) | :data:`VAE_RENAMES` |
| ``midas_v3_dpt_large.pth`` | MiDaS, no prefix | :data:`MIDAS_RENAMES` (none) |
| ``table5_pidinet.pth`` | ``module.*`` in pixel-difference form | :data:`PIDINET_RENAMES` + :func:`convert_pidinet` |
| ``sketch_simplification_gan.pth`` | ``layers.<i>.*`` | :data:`SKETCH_RENAMES` (none) |
"""
from __future__ import annotations

from pathlib import Path

from common.checkpoint import CheckpointError, load_state_dict_into, read_state_dict

#: UNet: the released keys are ours (``temopral_conv`` spelling included).
UNET_RENAMES: list[tuple] = []
#: open_clip: the released keys are ours (``attn_mask`` is a non-persistent buffer, never in the file).
CLIP_RENAMES: list[tuple] = []
#: SD-2.1 single file -> AutoencoderKL: the original keeps keys containing ``first_stage_model`` and strips
#: everything up to ``first_stage_model.``.
VAE_RENAMES: list[tuple] = [
    (r"^(?!.*first_stage_model\.)", None, "not the VAE (the UNet / text encoder of SD 2.1; the original skips them)"),
    (r"^.*first_stage_model\.", "", "the VAE's prefix in the SD-2.1 file"),
]
MIDAS_RENAMES: list[tuple] = []


def vae_renames(sd: dict) -> list[tuple]:
    """:data:`VAE_RENAMES` for an SD single file (keys containing ``first_stage_model.``); none for a file
    that already holds the bare VAE keys (a converted checkpoint)."""
    return VAE_RENAMES if any("first_stage_model." in k for k in sd) else []

#: PiDiNet: strip DataParallel's ``module.`` (after :func:`convert_pidinet`).
PIDINET_RENAMES: list[tuple] = [(r"^module\.", "", "DataParallel prefix of the released file")]
SKETCH_RENAMES: list[tuple] = []


def read_weights(path, what: str) -> dict:
    """``read_state_dict(path)``; a missing file or an empty one is one :class:`CheckpointError` naming ``what``."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{what} weights not found: {p}")
    sd = read_state_dict(p)
    if not sd:
        raise CheckpointError(f"{p}: holds no tensors ({what})")
    return sd


def load_into(cell, path, rename, what: str, convert=None) -> int:
    """Read ``path``, optionally ``convert`` the dict, load it into ``cell`` with ``rename`` (a table, or a
    function of the dict returning one); every key must match (else one line naming the first mismatched
    key and its two shapes). Returns the tensors loaded."""
    sd = read_weights(path, what)
    if convert is not None:
        sd = convert(sd)
    if callable(rename) and not isinstance(rename, (list, tuple)):
        rename = rename(sd)
    return load_state_dict_into(cell, sd, rename=rename, source=f"{path} ({what})").loaded
