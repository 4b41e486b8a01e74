"""A small WebVid-style demo set of real mp4 files: coloured shapes moving over a gradient (ffmpeg via imageio-ffmpeg).

Layout as the original's ``WebVid`` reads it: ``<root>/videos/<page_dir>/<videoid>.mp4`` and ``<root>/results.csv``
with the columns ``videoid,name,page_dir`` (``name`` is the caption).
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from common.video_io import write_video

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
                     page_dir: str = "000001_000050") -> Path:
    """Write ``n`` clips and the CSV under ``root``; returns the CSV path."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        shape = SHAPES[i % len(SHAPES)]
        name, colour = list(COLOURS.items())[i % len(COLOURS)]
        speed = rng.uniform(-3, 3, 2)
        video = moving_shape(frames, size[0], size[1], shape, colour, speed, rng)
        vid = str(1000 + i)
        write_video(video, root / "videos" / page_dir / f"{vid}.mp4", fps=fps)
        rows.append((vid, f"a {name} {shape} moving {'left' if speed[1] < 0 else 'right'}", page_dir))
    csv_path = root / "results.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["videoid", "name", "page_dir", "duration"])
        for vid, cap, page in rows:
            w.writerow([vid, cap, page, f"PT00H00M{frames / fps:02.0f}S"])
    return csv_path
