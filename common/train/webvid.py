"""WebVid-style training data, shared by the models that train on clips: the CSV, the video checks, the frame
decoding (ffmpeg via :mod:`common.video_io`) and a small demo set of real mp4 files.

A WebVid CSV has a header with (at least) ``videoid``, ``name`` (the caption) and ``page_dir``. Where a row's
video lies is the model's choice (``video_path``): DynamiCrafter's ``WebVid`` reads
``<data_dir>/videos/<page_dir>/<videoid>.mp4``, AnimateDiff's ``WebVid10M`` ``<video_folder>/<videoid>.mp4``.
Every failure names the CSV line: :class:`MetadataError` (the CSV as a whole), :class:`BadVideoError` (one row).

A folder dataset (:func:`read_video_folder`) needs no CSV: every ``*.mp4`` under a folder (sub-folders included,
sorted by path) with its caption from a same-named ``.txt`` beside it (``clip.mp4`` -> ``clip.txt``) or from a row
of ``<folder>/captions.csv`` (header ``video,caption``; ``video`` relative to the folder); where both give one,
the ``.txt`` wins. A video without a caption is an error naming the file.
"""
from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np

from common.video_io import VideoReadError, read_video_frames, video_length, video_metadata, write_video

__all__ = ["COLUMNS", "CAPTIONS_FILE", "BadVideoError", "MetadataError", "read_webvid_csv", "read_video_folder",
           "probe_video", "read_clip_frames", "moving_shape", "make_demo_webvid"]

COLUMNS = ("videoid", "name", "page_dir")
#: the optional captions file of a folder dataset (columns ``video,caption``)
CAPTIONS_FILE = "captions.csv"


class BadVideoError(ValueError):
    """A CSV row whose video is missing, unreadable or too short (one line naming the row and the file)."""


class MetadataError(ValueError):
    """A CSV that cannot be used at all (missing, no header, no rows)."""


def read_webvid_csv(csv_path, video_path: Callable[[dict], Path], subsample: int | None = None,
                    what: str = "csv_path") -> list[tuple[int, Path, str]]:
    """``[(csv line, video path, caption)]`` of the rows with ``videoid``, ``name`` and ``page_dir`` all set.

    Args:
        csv_path: the CSV. video_path: ``row dict -> Path`` of its video (values stripped).
        subsample: keep this many rows, drawn with seed 0 (None = all).
        what: the config key naming the CSV (in the errors).
    """
    meta = Path(csv_path)
    if not meta.is_file():
        raise MetadataError(f"{what} {meta} " + ("is not a file" if meta.exists() else "does not exist"))
    with open(meta, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise MetadataError(f"{meta}: no column {', '.join(missing)} in the header "
                                f"{','.join(reader.fieldnames or [])!r} (WebVid: videoid,name,page_dir)")
        rows = list(enumerate(reader, start=2))  # line 1 is the header
    out = []
    for n, r in rows:
        if all((r.get(c) or "").strip() for c in COLUMNS):
            out.append((n, video_path({k: (v or "").strip() for k, v in r.items() if k is not None}), r["name"]))
    out = _subsample(out, subsample)
    if not out:
        raise MetadataError(f"{meta}: no rows with videoid, name and page_dir set")
    return out


def _subsample(rows: list, subsample: int | None) -> list:
    """``subsample`` of ``rows`` drawn with seed 0, in their order (all of them for None)."""
    if subsample is not None and subsample < len(rows):
        keep = np.sort(np.random.default_rng(0).choice(len(rows), subsample, replace=False))
        rows = [rows[i] for i in keep]
    return rows


def _read_captions_csv(path: Path, folder: Path) -> dict[Path, str]:
    """``{video path: caption}`` of a folder's ``captions.csv`` (a row naming a missing video is an error)."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not {"video", "caption"} <= set(reader.fieldnames or []):
            raise MetadataError(f"{path}: the header {','.join(reader.fieldnames or [])!r} lacks video,caption")
        rows = list(enumerate(reader, start=2))
    out = {}
    for n, r in rows:
        name, caption = (r.get("video") or "").strip(), (r.get("caption") or "").strip()
        if not name:
            continue
        video = folder / name
        if not video.is_file():
            raise BadVideoError(f"{path}:{n}: video {video} does not exist")
        if caption:
            out[video.resolve()] = caption
    return out


def read_video_folder(folder, subsample: int | None = None, what: str = "data_dir") -> list[tuple[str, Path, str]]:
    """``[(where, video path, caption)]`` of a folder dataset (the module docstring gives the rule); ``where``
    (``"<what> <folder>"``) prefixes the errors about a row's video.

    Args:
        folder: the folder of ``*.mp4`` files (searched recursively, sorted by path).
        subsample: keep this many videos, drawn with seed 0 (None = all).
        what: the config key naming the folder (in the errors).

    Raises:
        MetadataError: not a folder, no ``.mp4`` in it, a ``captions.csv`` without ``video,caption``.
        BadVideoError: a video without a caption (naming the video and where its caption may go), a captions row
            naming a missing video, an unreadable caption file.
    """
    d = Path(folder)
    if not d.is_dir():
        raise MetadataError(f"{what} {d} " + ("is not a folder" if d.exists() else "does not exist"))
    videos = sorted(p for p in d.rglob("*") if p.suffix.lower() == ".mp4" and p.is_file())
    if not videos:
        raise MetadataError(f"{what} {d}: no .mp4 videos in it (a folder dataset: clip.mp4 with clip.txt beside it, "
                            f"or a {CAPTIONS_FILE} with the columns video,caption)")
    table = _read_captions_csv(d / CAPTIONS_FILE, d) if (d / CAPTIONS_FILE).is_file() else {}
    out = []
    for video in videos:
        txt = video.with_suffix(".txt")
        caption = None
        if txt.is_file():
            try:
                caption = " ".join(txt.read_text(encoding="utf-8").split())
            except (OSError, UnicodeDecodeError) as e:
                raise BadVideoError(f"{what} {d}: cannot read the caption {txt}: {e}") from None
        caption = caption or table.get(video.resolve())
        if not caption:
            raise BadVideoError(f"{what} {d}: video {video} has no caption (write it to {txt} or a row of "
                                f"{d / CAPTIONS_FILE})")
        out.append((f"{what} {d}", video, caption))
    return _subsample(out, subsample)


def check_exists(path: Path, where: str) -> None:
    """BadVideoError ``<where>: video <path> does not exist`` (or is not a file)."""
    if not path.is_file():
        raise BadVideoError(f"{where}: video {path} " + ("is not a file" if path.exists() else "does not exist"))


def probe_video(path: Path, where: str) -> tuple[int, float]:
    """``(frame count, fps)`` of a row's video; BadVideoError naming ``where`` (``csv:line``) otherwise."""
    check_exists(path, where)
    try:
        return video_length(path), float(video_metadata(path)["fps"])
    except VideoReadError as e:
        raise BadVideoError(f"{where}: {e}") from None


def read_clip_frames(path: Path, indices, where: str) -> np.ndarray:
    """uint8 ``(len(indices), h, w, 3)`` frames of a row's video (BadVideoError naming ``where``)."""
    try:
        return read_video_frames(path, [int(i) for i in indices])
    except VideoReadError as e:
        raise BadVideoError(f"{where}: {e}") from None


# ------------------------------------------------------------------------------------------ demo data
SHAPES = ("circle", "square")
COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 80, 230), "yellow": (235, 210, 40)}


def moving_shape(frames: int, height: int, width: int, shape: str, colour, speed, rng: np.random.Generator) -> np.ndarray:
    """uint8 (T, H, W, 3): one shape moving at ``speed`` (dy, dx pixels per frame, bouncing) over a gradient."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(40, 140, 3).astype(np.float32)
    bg = base[None, None] + 60.0 * (xx / width)[..., None] * np.array([1.0, 0.5, -0.3], np.float32)
    r = max(3.0, min(height, width) / 6)
    y, x = rng.uniform(r, height - r), rng.uniform(r, width - r)
    dy, dx = speed
    out = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        if shape == "circle":
            mask = (yy - y) ** 2 + (xx - x) ** 2 <= r * r
        else:
            mask = (np.abs(yy - y) <= r) & (np.abs(xx - x) <= r)
        img = bg.copy()
        img[mask] = colour
        out[t] = np.clip(img, 0, 255).astype(np.uint8)
        y, x = y + dy, x + dx
        if not r <= y <= height - r:
            dy, y = -dy, float(np.clip(y, r, height - r))
        if not r <= x <= width - r:
            dx, x = -dx, float(np.clip(x, r, width - r))
    return out


def make_demo_webvid(root, n: int = 4, frames: int = 48, size=(64, 96), fps: float = 24.0, seed: int = 0,
                     page_dir: str = "000001_000050", layout: str = "page_dir") -> Path:
    """Write ``n`` clips of moving shapes and ``<root>/results.csv`` (``videoid,name,page_dir,duration``);
    returns the CSV path.

    Args:
        layout: ``"page_dir"``: ``<root>/videos/<page_dir>/<videoid>.mp4`` (DynamiCrafter's ``WebVid``);
            ``"flat"``: ``<root>/videos/<videoid>.mp4`` (AnimateDiff's ``WebVid10M`` with ``video_folder``
            ``<root>/videos``); ``"folder"``: a folder dataset (:func:`read_video_folder`), ``<root>/<videoid>.mp4``
            with ``<root>/<videoid>.txt`` beside each and no CSV: returns ``root``.
    """
    if layout not in ("page_dir", "flat", "folder"):
        raise ValueError(f"layout {layout!r} is not 'page_dir', 'flat' or 'folder'")
    root = Path(root)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        shape = SHAPES[i % len(SHAPES)]
        name, colour = list(COLOURS.items())[i % len(COLOURS)]
        speed = rng.uniform(-3, 3, 2)
        video = moving_shape(frames, size[0], size[1], shape, colour, speed, rng)
        vid = str(1000 + i)
        folder = {"page_dir": root / "videos" / page_dir, "flat": root / "videos", "folder": root}[layout]
        write_video(video, folder / f"{vid}.mp4", fps=fps)
        rows.append((vid, f"a {name} {shape} moving {'left' if speed[1] < 0 else 'right'}", page_dir))
        if layout == "folder":
            (folder / f"{vid}.txt").write_text(rows[-1][1] + "\n", encoding="utf-8")
    if layout == "folder":
        return root
    csv_path = root / "results.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["videoid", "name", "page_dir", "duration"])
        for vid, cap, page in rows:
            w.writerow([vid, cap, page, f"PT00H00M{frames / fps:02.0f}S"])
    return csv_path
