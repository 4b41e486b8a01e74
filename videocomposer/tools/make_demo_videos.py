"""Write a small demo training set: mp4 clips of coloured shapes moving over gradients, and their captions.

    python tools/make_demo_videos.py                     # demo_video/train/{0..3}.mp4 + video_caption.csv
    python tools/make_demo_videos.py --out DIR --num 2 --frames 10 --size 72 96 --fps 10

The clips are real H.264 files (through imageio-ffmpeg), so the training code reads them exactly as user
videos: decoded, re-encoded at ``feature_framerate`` for the motion vectors, cropped. The content is
synthetic: a fine-tuning on it shows the code path, not a useful model.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

SHAPES = ("circle", "square")
COLOURS = {"red": (220, 40, 40), "yellow": (240, 210, 40), "blue": (40, 90, 230), "white": (245, 245, 245)}
MOTIONS = {"to the right": (1, 0), "to the left": (-1, 0), "upwards": (0, -1), "downwards": (0, 1)}


def render(shape: str, colour, direction, frames: int, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """(frames, h, w, 3) uint8: a shape crossing a two-colour gradient in ``direction``."""
    top, bottom = rng.integers(0, 120, 3), rng.integers(60, 200, 3)
    ramp = np.linspace(0.0, 1.0, h)[:, None, None]
    bg = (top * (1 - ramp) + bottom * ramp).astype(np.float32) * np.ones((1, w, 1), np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    r = max(3, min(h, w) // 6)
    cy, cx = h / 2 + rng.uniform(-h / 8, h / 8), w / 2 + rng.uniform(-w / 8, w / 8)
    speed = 0.6 * min(h, w) / max(frames - 1, 1)
    out = np.empty((frames, h, w, 3), np.uint8)
    for t in range(frames):
        y = cy + direction[1] * speed * (t - frames / 2)
        x = cx + direction[0] * speed * (t - frames / 2)
        inside = ((yy - y) ** 2 + (xx - x) ** 2 <= r * r) if shape == "circle" else \
            (np.abs(yy - y) <= r) & (np.abs(xx - x) <= r)
        img = bg.copy()
        img[inside] = colour
        out[t] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def make_demo_set(out: Path, num: int = 4, frames: int = 48, size=(256, 320), fps: float = 24.0,
                  seed: int = 0) -> Path:
    """Write ``num`` clips and ``video_caption.csv`` into ``out``; returns the CSV path."""
    from common.video_io import write_video

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = ["video,caption"]
    for i in range(num):
        shape = SHAPES[i % len(SHAPES)]
        colour = list(COLOURS)[i % len(COLOURS)]
        motion = list(MOTIONS)[(i // 2) % len(MOTIONS)]
        clip = render(shape, COLOURS[colour], MOTIONS[motion], frames, size[0], size[1], rng)
        write_video(clip, out / f"{i}.mp4", fps=fps)
        rows.append(f'{i}.mp4,"A {colour} {shape} moving {motion}"')
    csv = out / "video_caption.csv"
    csv.write_text("\n".join(rows) + "\n")
    return csv


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="demo_video/train", help="output folder")
    p.add_argument("--num", type=int, default=4, help="number of clips")
    p.add_argument("--frames", type=int, default=48, help="frames per clip")
    p.add_argument("--size", type=int, nargs=2, default=[256, 320], metavar=("H", "W"), help="frame size")
    p.add_argument("--fps", type=float, default=24.0, help="frame rate")
    p.add_argument("--seed", type=int, default=0, help="random backgrounds and positions")
    a = p.parse_args(argv)
    if a.num < 1 or a.frames < 2 or min(a.size) < 16 or a.fps <= 0:
        print("error: --num >= 1, --frames >= 2, --size >= 16 and --fps > 0 are needed", file=sys.stderr)
        return 2
    csv = make_demo_set(Path(a.out), a.num, a.frames, tuple(a.size), a.fps, a.seed)
    print(f"wrote {a.num} clips and {csv}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
