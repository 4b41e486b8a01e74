"""Trainer checkpoints: one ``.safetensors`` file per save, written atomically.

A checkpoint ``<dir>/ckpt-<step:08d>.safetensors`` holds every array under a group prefix
(``model/<name>``, ``optim/exp_avg/<name>``, ``ema/<name>``, ...) and, in the safetensors
metadata, one JSON document of scalars (step, optimizer step, sampler position, RNG states,
loss scale, ...). It is written to a hidden temp file in the same folder, flushed, fsync'ed,
moved into place with ``os.replace`` and the folder is fsync'ed, so a file with the final name
is always complete; a crash leaves at worst a ``.tmp-*`` file, which is never read (and is
removed by :func:`remove_stale_temps`). Old checkpoints are pruned only after the new one is in
place, and the newest is never pruned.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file

FORMAT = "common.train/1"
_NAME = re.compile(r"^ckpt-(\d{8})\.safetensors$")


def checkpoint_path(folder: str | os.PathLike, step: int) -> Path:
    """``<folder>/ckpt-<step:08d>.safetensors``."""
    return Path(folder) / f"ckpt-{step:08d}.safetensors"


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. a platform without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_state(path: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict) -> Path:
    """Write ``arrays`` and the JSON-able ``meta`` to ``path`` atomically; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}-", dir=path.parent)
    os.close(fd)
    try:
        tensors = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        save_file(tensors, tmp, metadata={"format": FORMAT, "meta": json.dumps(meta)})
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def read_meta(path: str | os.PathLike) -> dict:
    """The scalar JSON of a checkpoint, reading only its header (cheap).

    Raises ``ValueError`` naming the file if it is truncated, not safetensors, or not a
    trainer checkpoint (safetensors checks that the header covers the whole file).
    """
    path = Path(path)
    try:
        with safe_open(str(path), "numpy") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{path}: not a readable trainer checkpoint ({e})") from e
    if header.get("format") != FORMAT or "meta" not in header:
        raise ValueError(f"{path}: not a trainer checkpoint (metadata format {header.get('format')!r}, "
                         f"expected {FORMAT!r})")
    return json.loads(header["meta"])


def load_state(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """Read a file written by :func:`save_state`: ``(arrays, meta)``.

    Raises ``ValueError`` naming the file if it is not a complete trainer checkpoint.
    """
    meta = read_meta(path)
    try:
        arrays = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{path}: not a readable trainer checkpoint ({e})") from e
    return arrays, meta


def list_checkpoints(folder: str | os.PathLike) -> list[tuple[int, Path]]:
    """``[(step, path)]`` of the checkpoints in ``folder``, oldest first (temp files excluded)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), folder / n) for n in os.listdir(folder) if (m := _NAME.match(n))]
    return sorted(found)


def latest_checkpoint(folder: str | os.PathLike) -> Path | None:
    """Path of the newest checkpoint in ``folder`` that loads, or None when there is none."""
    for _, path in reversed(list_checkpoints(folder)):
        try:
            read_meta(path)
        except ValueError:
            continue
        return path
    return None


def prune_checkpoints(folder: str | os.PathLike, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` (>= 1) checkpoints; return the deleted paths."""
    keep_last = max(1, int(keep_last))
    old = list_checkpoints(folder)[:-keep_last]
    for _, p in old:
        p.unlink(missing_ok=True)
    return [p for _, p in old]


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove ``.tmp-ckpt-*`` leftovers of interrupted saves; return what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    gone = [folder / n for n in os.listdir(folder) if n.startswith(".tmp-ckpt-")]
    for p in gone:
        p.unlink(missing_ok=True)
    return gone


def split_groups(arrays: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """``{"model/a": x, "optim/exp_avg/a": y}`` -> ``{"model": {"a": x}, "optim": {"exp_avg/a": y}}``."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for k, v in arrays.items():
        group, _, rest = k.partition("/")
        out.setdefault(group, {})[rest] = v
    return out
