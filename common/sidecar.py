"""The ``.json`` written beside every generated video: how it was made, so that it can be made again.

    write_sidecar(video_path, model="svd", settings={...}, weights=["svd.safetensors"], seed=42, seconds=12.3)

writes ``<video stem>.json`` beside the video::

    {"format": "videogen-run/1", "model": "svd", "release": "svd", "random_weights": false,
     "weights": [{"name": "svd.safetensors", "path": "/abs/svd.safetensors", "bytes": 9559625946, "sha256": null}],
     "settings": {...every setting of the run...}, "seed": 42, "seconds": 12.3,
     "outputs": ["2026-..mp4", ...], "versions": {"python": ..., "mindspore": ..., "numpy": ..., "package": ...,
     "git": ...}, "created": "2026-...Z", "command": [...]}

``videogen run --from FILE.json`` reads it back (:func:`read_sidecar`) and repeats the run. A model's own
inference script records its run with one call of :func:`write_sidecar` (``settings`` = its parsed flags).
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["FORMAT", "SHA256_MAX_BYTES", "sidecar_path", "weight_files", "versions", "write_sidecar", "read_sidecar",
           "record_script_run"]

#: the ``format`` field of the files this module writes (bumped when a field changes meaning)
FORMAT = "videogen-run/1"
#: files up to this size get a sha256 (reading a multi-GB checkpoint again only to hash it is not cheap)
SHA256_MAX_BYTES = 512 * 2 ** 20
#: at most this many files of a weights folder are listed
MAX_FILES = 200


def sidecar_path(video_path) -> Path:
    """``out/clip.mp4`` -> ``out/clip.json`` (a frame folder ``out/clip`` -> ``out/clip.json``)."""
    p = Path(video_path)
    return p.with_suffix(".json") if p.suffix else p.with_name(p.name + ".json")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2 ** 20), b""):
            h.update(block)
    return h.hexdigest()


def weight_files(paths: Iterable, sha256_max_bytes: int = SHA256_MAX_BYTES) -> list[dict]:
    """``[{"name", "path", "bytes", "sha256"}]`` of weight files; a folder lists its files (sorted, recursive,
    at most :data:`MAX_FILES`). ``sha256`` is None above ``sha256_max_bytes``; missing paths are skipped."""
    out: list[dict] = []
    for given in paths:
        if not given:
            continue
        p = Path(given).expanduser()
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p] if p.is_file() else []
        for f in files[:MAX_FILES]:
            size = f.stat().st_size
            out.append({"name": str(f.relative_to(p)) if p.is_dir() else f.name, "path": str(f.absolute()),
                        "bytes": size, "sha256": _sha256(f) if size <= sha256_max_bytes else None})
    return out


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        r = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        return r.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict[str, str | None]:
    """Versions that decide the numbers: Python, MindSpore, NumPy, this package, its git commit, the machine."""
    from importlib import metadata

    def dist(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {"python": platform.python_version(), "mindspore": dist("mindspore"), "numpy": dist("numpy"),
            "pillow": dist("pillow"), "package": dist("mindspore-video-zoo"), "git": _git_commit(),
            "platform": platform.platform(), "machine": platform.machine()}


def _jsonable(v: Any):
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, Path):
        return str(v)
    if hasattr(v, "item") and callable(v.item):  # numpy scalars
        return v.item()
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


def write_sidecar(video_path, *, model: str, settings: Mapping[str, Any], weights: Iterable = (),
                  seed: int | None = None, seconds: float | None = None, release: str | None = None,
                  random_weights: bool = False, outputs: Iterable = (), extra: Mapping[str, Any] | None = None,
                  command: list[str] | None = None) -> Path:
    """Write the run record of ``video_path`` (see the module docstring); returns the ``.json`` path.

    Args:
        video_path: the (first) video written; the record goes to :func:`sidecar_path` of it.
        model: the model's name (``dynamicrafter``, ``svd``, ``animatediff``, ``videocomposer``, ``dropletvideo``).
        settings: every setting of the run (flags / fields; paths are written as given).
        weights: weight files or folders read (listed with sizes, sha256 where cheap).
        seed: the seed actually used. seconds: wall time of the generation.
        release: which release / layout (e.g. ``"256"``, ``"svd_xt"``). random_weights: no weights were read.
        outputs: every file of the run (default: ``video_path``); names relative to the record's folder.
        extra: more fields (model-specific facts, e.g. the frame count written).
        command: the command line (default ``sys.argv``).
    """
    path = sidecar_path(video_path)
    folder = path.parent
    files = [Path(o) for o in (outputs or [video_path])]
    rel = [str(f.relative_to(folder)) if f.is_absolute() and f.parent == folder else str(f) for f in files]
    record = {
        "format": FORMAT, "model": model, "release": release, "random_weights": bool(random_weights),
        "weights": weight_files(weights), "settings": _jsonable(dict(settings)), "seed": seed,
        "seconds": None if seconds is None else round(float(seconds), 3), "outputs": rel,
        "versions": versions(),
        "created": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": list(sys.argv if command is None else command), "cwd": os.getcwd(),
    }
    if extra:
        record.update(_jsonable(dict(extra)))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_sidecar(path) -> dict:
    """A run record written by :func:`write_sidecar`; ValueError (one line naming the file) if it is not one."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise ValueError(f"cannot read run record {p}: {e.strerror or e} (--from)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{p} is not JSON: {e} (--from)") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{p} is not a videogen run record (no \"format\": \"{FORMAT}\") (--from)")
    for key in ("model", "settings"):
        if key not in data:
            raise ValueError(f"{p} has no {key!r} (--from)")
    return data


def record_script_run(video_path, *, model: str, script: str, args, weights: Iterable = (), seed: int | None = None,
                      seconds: float | None = None, outputs: Iterable = (), **extra) -> Path:
    """The run record of a model's own inference script (one call after it writes a video): ``settings`` are its
    parsed flags (``vars(args)``), ``script`` names it; the record's ``command`` and ``cwd`` repeat the run.

    Args:
        video_path / outputs / seed / seconds: as :func:`write_sidecar`.
        model: the model's name. script: the script, e.g. ``"svd/image_to_video.py"``.
        args: the parsed ``argparse.Namespace`` (or a mapping).
        weights: weight files / folders read (empty / None entries: random weights).
        extra: more fields (e.g. ``frames=16``).
    """
    weights = [w for w in weights if w]
    settings = dict(vars(args)) if not isinstance(args, Mapping) else dict(args)
    return write_sidecar(video_path, model=model, settings=settings, weights=weights, seed=seed, seconds=seconds,
                         random_weights=not weights, outputs=outputs, extra={"script": script, **extra})
