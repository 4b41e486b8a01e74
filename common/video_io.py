"""Images and videos in and out: PIL images, mp4 (H.264 through imageio-ffmpeg), gif, webp, png frames.

Everything works on numpy arrays: videos are ``uint8 (T, H, W, 3)`` (frames, rows, columns, RGB)
unless a function says otherwise. Float frames are converted with an explicit ``value_range``
((0, 1) or (-1, 1)): clipped, scaled to [0, 255] and truncated to uint8 as the original scripts do
(``(x * 255).astype(uint8)``). MindSpore tensors are accepted wherever arrays are (``asnumpy()``).

Image preprocessing reproduces torchvision on PIL images exactly (``Resize(int)`` = PIL bilinear
with its antialias, ``CenterCrop`` with Python rounding and zero padding, ``ToTensor`` +
``Normalize``), which is what the originals feed their models.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

#: file suffixes :func:`write_video` understands ("" = a folder of png frames).
VIDEO_FORMATS = (".mp4", ".gif", ".webp", "")


class ImageReadError(OSError):
    """An image file that is missing or cannot be decoded."""


class VideoReadError(OSError):
    """A video file that is missing, cannot be decoded, or has fewer frames than requested."""


# ---- images --------------------------------------------------------------------------------

def load_image(path, mode: str = "RGB", as_array: bool = False):
    """Open an image file as PIL (default) or a uint8 array (H, W, C).

    Args:
        path: image file (anything PIL reads: png, jpg, webp, ...).
        mode: PIL mode to convert to (``"RGB"`` as the originals; ``None`` keeps the file's).
        as_array: return ``np.uint8`` (H, W, C) instead of a PIL image.
    Raises:
        ImageReadError: the file is missing, is a folder, or is not a readable image.
    """
    p = Path(path)
    if not p.is_file():
        raise ImageReadError(f"image file not found: {p}" if not p.exists() else f"not a file: {p}")
    try:
        with Image.open(p) as im:
            im.load()
            img = im.convert(mode) if mode else im.copy()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ImageReadError(f"cannot read image {p}: {e}") from e
    return np.asarray(img) if as_array else img


def _as_pil(img) -> Image.Image:
    if isinstance(img, Image.Image):
        return img
    arr = np.asarray(img)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3):
        raise ValueError(f"image must be a PIL image or a uint8 (H, W[, C]) array, got {arr.dtype} {arr.shape}")
    return Image.fromarray(arr)


def resize_short_side(img, size: int, resample=Image.BILINEAR) -> Image.Image:
    """torchvision ``Resize(size)`` on a PIL image: the short side becomes ``size``, the long side
    ``int(size * long / short)``; PIL resampling (bilinear by default, antialiased as PIL does)."""
    img = _as_pil(img)
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = int(size), int(int(size) * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    if (new_w, new_h) == (w, h):
        return img
    return img.resize((new_w, new_h), resample)


def center_crop(img, size) -> Image.Image:
    """torchvision ``CenterCrop((H, W))`` on a PIL image: zero padding when the image is smaller
    (left/top get the floor half), then the crop at ``round((side - crop) / 2)`` (Python rounding)."""
    img = _as_pil(img)
    ch, cw = (int(size), int(size)) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))
    w, h = img.size
    if cw > w or ch > h:
        left, top = (cw - w) // 2 if cw > w else 0, (ch - h) // 2 if ch > h else 0
        right, bottom = (cw - w + 1) // 2 if cw > w else 0, (ch - h + 1) // 2 if ch > h else 0
        padded = Image.new(img.mode, (w + left + right, h + top + bottom), 0)
        padded.paste(img, (left, top))
        img, (w, h) = padded, padded.size
        if (w, h) == (cw, ch):
            return img
    top = int(round((h - ch) / 2.0))
    left = int(round((w - cw) / 2.0))
    return img.crop((left, top, left + cw, top + ch))


def resize_center_crop(img, size) -> Image.Image:
    """torchvision ``Compose([Resize(min(H, W)), CenterCrop((H, W))])`` on a PIL image
    (DynamiCrafter's ``load_data_prompts``).

    Args:
        img: PIL image or uint8 (H, W, C) array.
        size: target (H, W).
    Returns:
        PIL image of exactly W x H.
    """
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f"size must be a positive (H, W) pair, got {size!r}")
    return center_crop(resize_short_side(img, min(size)), size)


def to_tensor_normalized(img, mean=0.5, std=0.5) -> np.ndarray:
    """torchvision ``ToTensor`` + ``Normalize(mean, std)``: uint8 (H, W, C) -> float32 (C, H, W).

    With the defaults (0.5, 0.5) the result is in [-1, 1]. ``mean``/``std`` are scalars or
    per-channel sequences.
    """
    arr = np.asarray(_as_pil(img))
    if arr.ndim == 2:
        arr = arr[:, :, None]
    x = arr.transpose(2, 0, 1).astype(np.float32) / np.float32(255)  # (C, H, W) in [0, 1]
    m = np.asarray(mean, np.float32).reshape(-1, 1, 1)
    s = np.asarray(std, np.float32).reshape(-1, 1, 1)
    return (x - m) / s


# ---- video reading ---------------------------------------------------------------------------

def _ffmpeg():
    try:
        import imageio_ffmpeg
    except ImportError as e:  # pragma: no cover - a dependency of the project
        raise ImportError("video IO needs imageio-ffmpeg: pip install imageio-ffmpeg") from e
    return imageio_ffmpeg


def _ffmpeg_reason(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(("ffmpeg version", "built with", "configuration:", "lib", "==="))]
    return (useful[-1] if useful else lines[-1] if lines else type(e).__name__)[:300]


def _check_video_file(path) -> Path:
    p = Path(path)
    if not p.exists():
        raise VideoReadError(f"video file not found: {p}")
    if not p.is_file():
        raise VideoReadError(f"not a video file: {p}")
    return p


def video_length(path) -> int:
    """Number of frames of a video (decodes it once; exact).

    Raises:
        VideoReadError: missing or undecodable file.
    """
    p = _check_video_file(path)
    try:
        n, _ = _ffmpeg().count_frames_and_secs(str(p))
    except Exception as e:
        raise VideoReadError(f"cannot read video {p}: {_ffmpeg_reason(e)}") from e
    return int(n)


def video_metadata(path) -> dict:
    """``{"fps", "size": (H, W), "duration"}`` of a video from its container (no decoding).

    Raises:
        VideoReadError: missing or undecodable file.
    """
    p = _check_video_file(path)
    gen = None
    try:
        gen = _ffmpeg().read_frames(str(p))
        meta = next(gen)
    except Exception as e:
        raise VideoReadError(f"cannot read video {p}: {_ffmpeg_reason(e)}") from e
    finally:
        if gen is not None:
            gen.close()
    w, h = meta["size"]
    return {"fps": float(meta.get("fps", 0.0)), "size": (int(h), int(w)), "duration": float(meta.get("duration", 0.0))}


def read_video_frames(path, frame_indices=None, *, start: int = 0, num_frames: int | None = None,
                      step: int = 1) -> np.ndarray:
    """Decode selected frames of a video as uint8 (T, H, W, 3).

    Args:
        path: a video file ffmpeg reads (mp4, webm, gif, ...).
        frame_indices: frame numbers to return, in the given order (repeats allowed). When None,
            the frames ``start, start + step, ...`` (``num_frames`` of them; all to the end when None).
        start / num_frames / step: the range form (ignored when ``frame_indices`` is given).
    Raises:
        VideoReadError: missing/undecodable file, or the video has too few frames.
        ValueError: negative indices, non-positive step or num_frames.
    """
    p = _check_video_file(path)
    if frame_indices is not None:
        idx = [int(i) for i in frame_indices]
        if not idx:
            raise ValueError("frame_indices is empty")
        if min(idx) < 0:
            raise ValueError(f"frame_indices must be >= 0, got {min(idx)}")
        what = f"frame {max(idx)}"
    else:
        if start < 0 or step <= 0 or (num_frames is not None and num_frames <= 0):
            raise ValueError(f"need start >= 0, step > 0, num_frames > 0 or None; got start={start}, "
                             f"step={step}, num_frames={num_frames}")
        idx = None if num_frames is None else [start + k * step for k in range(num_frames)]
        what = f"{num_frames} frames from {start} every {step} (up to frame {idx[-1]})" if idx else ""
    wanted = set(idx) if idx is not None else None
    last = max(idx) if idx is not None else None
    got: dict[int, np.ndarray] = {}
    count = 0  # frames decoded so far (= the video's length when the loop runs to the end)
    gen = None
    try:
        gen = _ffmpeg().read_frames(str(p), pix_fmt="rgb24")
        w, h = next(gen)["size"]
        for n, buf in enumerate(gen):
            count = n + 1
            if (n in wanted) if wanted is not None else (n >= start and (n - start) % step == 0):
                got[n] = np.frombuffer(buf, np.uint8).reshape(h, w, 3)
            if last is not None and n >= last:
                break
    except Exception as e:
        raise VideoReadError(f"cannot read video {p}: {_ffmpeg_reason(e)}") from e
    finally:
        if gen is not None:
            gen.close()
    if idx is None:
        if not got:
            raise VideoReadError(f"video {p} has {count} frames: nothing from frame {start} on")
        return np.stack([got[k] for k in sorted(got)])
    if len(got) < len(wanted):
        raise VideoReadError(f"video {p} has {count} frames; {what} requested")
    return np.stack([got[i] for i in idx])


# ---- video writing ---------------------------------------------------------------------------

def to_uint8(frames, value_range=None) -> np.ndarray:
    """Frames as uint8: uint8 input unchanged; float input clipped to ``value_range`` (required),
    mapped to [0, 1], times 255, truncated (as the originals' ``(x * 255).astype(uint8)``)."""
    if hasattr(frames, "asnumpy"):
        frames = frames.asnumpy()
    arr = np.asarray(frames)
    if arr.dtype == np.uint8:
        return arr
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"frames must be uint8 or float, got {arr.dtype}")
    if value_range is None:
        raise ValueError("float frames need an explicit value_range, e.g. (0, 1) or (-1, 1)")
    lo, hi = (float(v) for v in value_range)
    if not hi > lo:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range!r}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"frames contain {int(np.size(arr) - np.isfinite(arr).sum())} NaN/inf values")
    x = arr.astype(np.float32)
    x = (np.clip(x, np.float32(lo), np.float32(hi)) - np.float32(lo)) / np.float32(hi - lo)
    return (x * np.float32(255)).astype(np.uint8)


def _check_frames(frames, value_range) -> np.ndarray:
    arr = to_uint8(frames, value_range)
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3) or arr.shape[0] == 0:
        raise ValueError(f"frames must be (T, H, W, 3) (or (T, H, W, 1) / (T, H, W)) with T >= 1, "
                         f"got {tuple(np.shape(frames))}")
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return np.ascontiguousarray(arr)


def _pad_even(arr: np.ndarray) -> np.ndarray:
    """Pad (T, H, W, 3) by one edge-replicated row/column where H/W are odd (yuv420p needs even sizes)."""
    ph, pw = arr.shape[1] % 2, arr.shape[2] % 2
    if ph or pw:
        arr = np.pad(arr, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
    return arr


def _write_mp4(arr, path: Path, fps: float, crf: int):
    arr = np.ascontiguousarray(_pad_even(arr))
    t, h, w, _ = arr.shape
    gen = _ffmpeg().write_frames(str(path), (w, h), fps=fps, codec="libx264", pix_fmt_in="rgb24",
                                 pix_fmt_out="yuv420p", quality=None, output_params=["-crf", str(int(crf))],
                                 macro_block_size=1, ffmpeg_log_level="error")
    gen.send(None)
    for frame in arr:
        gen.send(frame)
    gen.close()


def _write_pil_animation(arr, path: Path, fps: float, fmt: str):
    images = [Image.fromarray(f) for f in arr]
    if fmt == "GIF":
        # GIF stores delays in 1/100 s: round the frame time to 10 ms
        duration = max(1, int(round(100.0 / fps))) * 10
        images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0)
    else:
        duration = max(1, int(round(1000.0 / fps)))
        images[0].save(path, format="WEBP", save_all=True, append_images=images[1:], duration=duration, loop=0,
                       quality=90)


def write_video(frames, path, fps: float = 8, value_range=None, *, crf: int = 10):
    """Write frames to ``path``; the format follows the suffix.

    * ``.mp4``: H.264 (libx264 through imageio-ffmpeg), yuv420p, constant rate ``fps``; odd heights
      / widths get one edge-replicated row / column (yuv420p needs even sizes).
    * ``.gif``: looping forever, frame time ``1/fps`` rounded to 10 ms (GIF's unit); Pillow merges
      identical consecutive frames into one longer frame.
    * ``.webp``: animated, lossy quality 90, looping forever, frame time rounded to 1 ms.
    * no suffix: a folder of lossless ``00000.png, 00001.png, ...``.

    Args:
        frames: uint8 (T, H, W, 3) (also (T, H, W, 1) / (T, H, W)), or float with ``value_range``.
        path: output file or folder; parent folders are created.
        fps: frames per second (> 0).
        value_range: (low, high) of float frames, e.g. (0, 1) or (-1, 1); ignored for uint8.
        crf: H.264 constant rate factor for mp4 (0 lossless .. 51 worst; default 10 as DynamiCrafter).
    Returns:
        the written path (``Path``).
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in VIDEO_FORMATS:
        raise ValueError(f"cannot write {p}: unknown video suffix {suffix!r}; use one of "
                         f"{[s or '<folder>' for s in VIDEO_FORMATS]}")
    if not (isinstance(fps, (int, float, np.number)) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    arr = _check_frames(frames, value_range)
    if suffix == "":
        p.mkdir(parents=True, exist_ok=True)
        for i, frame in enumerate(arr):
            Image.fromarray(frame).save(p / f"{i:05d}.png")
        return p
    p.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".mp4":
        _write_mp4(arr, p, float(fps), crf)
    else:
        _write_pil_animation(arr, p, float(fps), "GIF" if suffix == ".gif" else "WEBP")
    return p


def read_png_frames(folder) -> np.ndarray:
    """The ``*.png`` files of a folder in name order as uint8 (T, H, W, 3) (what ``write_video`` writes
    for a path without suffix)."""
    d = Path(folder)
    files = sorted(d.glob("*.png")) if d.is_dir() else []
    if not files:
        raise VideoReadError(f"no png frames in {d}" if d.is_dir() else f"frame folder not found: {d}")
    return np.stack([load_image(f, as_array=True) for f in files])


# ---- grids ---------------------------------------------------------------------------------

def make_grid(videos, nrow: int = 8, padding: int = 2, pad_value=0) -> np.ndarray:
    """torchvision ``make_grid`` applied to every frame of several videos.

    ``nrow`` videos per grid row, ``padding`` pixels around every tile (filled with ``pad_value``);
    a single video is returned unchanged (no padding), as torchvision does.

    Args:
        videos: (N, T, H, W, C) array (any dtype).
        nrow: videos per row.
        padding: border width.
        pad_value: border value.
    Returns:
        (T, ymaps*(H+padding)+padding, xmaps*(W+padding)+padding, C), xmaps = min(nrow, N),
        ymaps = ceil(N / xmaps).
    """
    if hasattr(videos, "asnumpy"):
        videos = videos.asnumpy()
    v = np.asarray(videos)
    if v.ndim != 5:
        raise ValueError(f"videos must be (N, T, H, W, C), got {v.shape}")
    if nrow <= 0 or padding < 0:
        raise ValueError(f"need nrow > 0 and padding >= 0, got nrow={nrow}, padding={padding}")
    n, t, h, w, c = v.shape
    if n == 1:
        return v[0].copy()
    xmaps = min(nrow, n)
    ymaps = int(math.ceil(n / xmaps))
    th, tw = h + padding, w + padding
    grid = np.full((t, ymaps * th + padding, xmaps * tw + padding, c), pad_value, dtype=v.dtype)
    for k in range(n):
        y, x = divmod(k, xmaps)
        grid[:, y * th + padding:y * th + padding + h, x * tw + padding:x * tw + padding + w] = v[k]
    return grid


def save_videos_grid(videos, path, nrow: int | None = None, fps: float = 8, value_range=None,
                     padding: int = 2, **write_kwargs):
    """Tile several videos (originals' layout (N, C, T, H, W)) per frame and write them.

    Args:
        videos: (N, C, T, H, W) array or tensor; uint8, or float with ``value_range``.
        path: output path (suffix picks the format, see :func:`write_video`).
        nrow: videos per grid row (default N: one row).
        fps: frames per second.
        value_range: (low, high) of float input, e.g. (-1, 1) for decoder output.
        padding: tile border (torchvision's default 2; none for a single video).
        write_kwargs: passed to :func:`write_video` (e.g. ``crf``).
    """
    if hasattr(videos, "asnumpy"):
        videos = videos.asnumpy()
    v = np.asarray(videos)
    if v.ndim != 5:
        raise ValueError(f"videos must be (N, C, T, H, W), got {v.shape}")
    frames = to_uint8(v, value_range).transpose(0, 2, 3, 4, 1)  # (N, T, H, W, C)
    grid = make_grid(frames, nrow=nrow or v.shape[0], padding=padding)
    return write_video(grid, path, fps=fps, **write_kwargs)


__all__ = [
    "ImageReadError", "VideoReadError", "VIDEO_FORMATS", "load_image", "resize_short_side", "center_crop",
    "resize_center_crop", "to_tensor_normalized", "video_length", "video_metadata", "read_video_frames",
    "to_uint8", "write_video", "read_png_frames", "make_grid", "save_videos_grid",
]
