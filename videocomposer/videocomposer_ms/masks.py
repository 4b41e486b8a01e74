"""Random inpainting masks of the ``mask`` condition, as the original's ``artist/ops/random_mask.py`` draws
them on a 512x512 canvas (1 = region to fill): irregular strokes (70%), rectangles (20%) or a half-frame
uncrop (10%); then resized (nearest) to ``misc_size``. Drawn from a numpy ``Generator`` (the original uses
the global ``np.random``); strokes are drawn with PIL instead of OpenCV (same geometry, anti-aliasing aside).
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

CANVAS = 512


def irregular_mask(rng: np.random.Generator, w: int = CANVAS, h: int = CANVAS, max_angle: int = 4,
                   max_length: int = 200, max_width: int = 100, min_strokes: int = 1, max_strokes: int = 5) -> np.ndarray:
    """1 to 5 strokes, each a polyline of up to 5 thick segments."""
    img = Image.new("F", (w, h), 0.0)
    draw = ImageDraw.Draw(img)
    for i in range(int(rng.integers(min_strokes, max_strokes + 1))):
        x1, y1 = int(rng.integers(w)), int(rng.integers(h))
        for _ in range(1 + int(rng.integers(5))):
            angle = 0.01 + int(rng.integers(max_angle))
            if i % 2 == 0:
                angle = 2 * 3.1415926 - angle
            length = 10 + int(rng.integers(max_length))
            radius = 5 + int(rng.integers(max_width))
            x2 = int(np.clip(int(x1 + length * np.sin(angle)), 0, w))
            y2 = int(np.clip(int(y1 + length * np.cos(angle)), 0, h))
            draw.line([(x1, y1), (x2, y2)], fill=1.0, width=radius)
            x1, y1 = x2, y2
    return np.asarray(img, np.float32)


def rectangle_mask(rng: np.random.Generator, w: int = CANVAS, h: int = CANVAS, margin: int = 10, min_size: int = 30,
                   max_size: int = 150, min_strokes: int = 1, max_strokes: int = 4) -> np.ndarray:
    """1 to 4 axis-aligned boxes."""
    mask = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(min_strokes, max_strokes + 1))):
        bw, bh = int(rng.integers(min_size, max_size)), int(rng.integers(min_size, max_size))
        x1 = int(rng.integers(margin, w - margin - bw + 1))
        y1 = int(rng.integers(margin, h - margin - bh + 1))
        mask[y1:y1 + bh, x1:x1 + bw] = 1
    return mask


def uncrop_mask(rng: np.random.Generator, w: int = CANVAS, h: int = CANVAS) -> np.ndarray:
    """One half of the frame (top, bottom, left or right)."""
    mask = np.zeros((h, w), np.float32)
    side = int(rng.integers(4))
    if side == 0:
        mask[: h // 2] = 1
    elif side == 1:
        mask[h // 2:] = 1
    elif side == 2:
        mask[:, : w // 2] = 1
    else:
        mask[:, w // 2:] = 1
    return mask


def random_mask(size: int, rng: np.random.Generator) -> np.ndarray:
    """(size, size) float32 mask: the original's 0.7 / 0.2 / 0.1 mix, resized with nearest neighbours."""
    p = rng.random()
    m = irregular_mask(rng) if p < 0.7 else rectangle_mask(rng) if p < 0.9 else uncrop_mask(rng)
    return np.asarray(Image.fromarray(m, mode="F").resize((size, size), Image.NEAREST), np.float32)
