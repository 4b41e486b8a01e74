"""WebVid-style training clips (``lvdm.data.webvid.WebVid``), decoded with ffmpeg (``common.video_io``).

Two dataset forms, chosen by ``meta_path``:

* a CSV file (the original's form): a header with (at least) ``videoid``, ``name`` (the caption) and ``page_dir``;
  a clip is ``<data_dir>/videos/<page_dir>/<videoid>.mp4``. Rows with an empty field are dropped (the original's
  ``dropna``).
* ``meta_path`` null (or absent) -> ``data_dir`` is a folder dataset; ``meta_path`` naming a folder -> that folder
  is (``data_dir`` unused). A folder dataset is every ``*.mp4`` under it with a same-named ``.txt`` caption beside
  it and/or a ``captions.csv`` (``video,caption``): :func:`common.train.webvid.read_video_folder`.

Both forms sample the same way. A sample draws, as the original:

* the stride ``s``: ``frame_stride``, or with ``random_fs`` uniform in ``[frame_stride_min, frame_stride]``;
  with ``fixed_fps`` scaled to ``int(s * fps / fixed_fps)`` (at least 1);
* a start frame uniform in ``[0, n - (s (T - 1) + 1)]`` and the frames ``start + s i`` (a video too short for
  ``s`` gets the stride ``n // T``, as the original; with ``fixed_fps`` the original would instead skip a video
  with under half the frames needed, this port shrinks the stride there too);
* the fps condition ``fps // s`` (capped to ``fps_max``), and the stride itself (``fs`` condition).

Frames go through the spatial transform (``resize_center_crop``: short side to ``min(H, W)``, centre crop)
to ``(3, T, H, W)`` in [-1, 1]. Every draw comes from ``default_rng([seed, epoch, index])``, so a sample is the
same on every rank and after a resume (the original draws from Python's global ``random``).

Every row is checked when the dataset is built (before any training): the file exists, ffmpeg reads it, and
it has at least ``video_length * frame_stride`` frames; otherwise :class:`BadVideoError` names the CSV line (a
folder dataset: the folder's key and the video).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.train import DataLoader
from common.train.webvid import (
    COLUMNS,
    BadVideoError,
    MetadataError,
    check_exists,
    probe_video,
    read_clip_frames,
    read_video_folder,
    read_webvid_csv,
)
from common.video_io import center_crop, resize_center_crop

__all__ = ["COLUMNS", "BadVideoError", "MetadataError", "Clip", "read_csv", "read_rows", "WebVidDataset",
           "WebVidLoader"]


@dataclass
class Clip:
    """One usable row: ``path``, ``caption``, ``frames`` (count), ``fps`` and ``where`` it comes from (the errors'
    prefix: ``<csv>:<line>``, or ``data_dir <folder>`` for a folder dataset)."""

    path: Path
    caption: str
    frames: int
    fps: float
    where: str


def read_csv(meta_path, data_dir, subsample: int | None = None) -> list[tuple[int, Path, str]]:
    """``[(csv line, video path, caption)]`` of the rows with every field set (``<data_dir>/videos/<page_dir>/
    <videoid>.mp4``; the shared reader :func:`common.train.webvid.read_webvid_csv`)."""
    return read_webvid_csv(meta_path, lambda r: Path(data_dir) / "videos" / r["page_dir"] / f"{r['videoid']}.mp4",
                           subsample, what="meta_path")


def read_rows(params) -> list[tuple[str, Path, str]]:
    """``[(where, video path, caption)]`` of the train set by the rule of the module docstring (CSV or folder)."""
    if params.meta_path is None:
        return read_video_folder(params.data_dir, params.subsample, what="data_dir")
    if Path(params.meta_path).is_dir():
        return read_video_folder(params.meta_path, params.subsample, what="meta_path")
    return [(f"{params.meta_path}:{line}", path, caption)
            for line, path, caption in read_csv(params.meta_path, params.data_dir, params.subsample)]


class WebVidDataset:
    """Training clips as the original ``WebVid`` draws them.

    Args:
        params: :class:`~dynamicrafter_ms.train_config.WebVidParams` (the YAML's ``data.params.train.params``).
        seed: base of the per-sample generators.
        check: probe every video now (length and fps; ``BadVideoError`` on the first bad row).

    ``get(index, epoch)`` -> ``(video (3, T, H, W) float32 in [-1, 1], caption (str), fps (float32),
    frame_stride (int64))``.
    """

    def __init__(self, params, seed: int = 0, check: bool = True):
        self.p, self.seed = params, int(seed)
        need = params.video_length * params.frame_stride
        self.clips = []
        for where, path, caption in read_rows(params):
            if not check:
                check_exists(path, where)
                self.clips.append(Clip(path, caption, -1, 0.0, where))
                continue
            n, fps = probe_video(path, where)
            if n < need:
                raise BadVideoError(f"{where}: video {path} has {n} frames, fewer than video_length x frame_stride = "
                                    f"{params.video_length} x {params.frame_stride} = {need}")
            self.clips.append(Clip(path, caption, n, fps, where))

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int):
        return self.get(index, 0)

    def frame_indices(self, n: int, fps: float, rng: np.random.Generator) -> tuple[list[int], int]:
        """The frames of one draw from a video of ``n`` frames at ``fps``, and the stride used."""
        p, t = self.p, self.p.video_length
        stride = int(rng.integers(p.frame_stride_min, p.frame_stride + 1)) if p.random_fs else p.frame_stride
        if p.fixed_fps is not None:
            stride = int(stride * (fps / p.fixed_fps))
        stride = max(stride, 1)
        required = stride * (t - 1) + 1
        if n < required:  # the original shortens the stride to fit
            stride = max(n // t, 1)
            required = stride * (t - 1) + 1
        span = n - required
        start = int(rng.integers(0, span + 1)) if span > 0 else 0
        return [start + stride * i for i in range(t)], stride

    def transform(self, frames: np.ndarray) -> np.ndarray:
        """uint8 (T, h, w, 3) -> float32 (3, T, H, W) in [-1, 1] by ``spatial_transform``."""
        from PIL import Image

        h, w = self.p.resolution
        kind = self.p.spatial_transform
        out = []
        for f in frames:
            if kind == "resize_center_crop":
                img = resize_center_crop(f, (h, w))
            elif kind == "center_crop":
                img = center_crop(Image.fromarray(f), (h, w))
            elif kind == "resize":
                img = Image.fromarray(f).resize((w, h), Image.BILINEAR)
            else:
                img = Image.fromarray(f)
            out.append(np.asarray(img, np.float32))
        arr = np.stack(out)  # (T, H, W, 3)
        if kind is None and arr.shape[1:3] != (h, w):
            raise BadVideoError(f"frames are {arr.shape[2]}x{arr.shape[1]}, not the resolution {w}x{h} "
                                "(spatial_transform: null)")
        return (arr.transpose(3, 0, 1, 2) / 255.0 - 0.5) * 2.0

    def get(self, index: int, epoch: int = 0):
        """Sample ``index`` as drawn in ``epoch``."""
        clip = self.clips[int(index)]
        where = clip.where
        if clip.frames < 0:  # not probed at start
            clip.frames, clip.fps = probe_video(clip.path, where)
        rng = np.random.default_rng([self.seed, int(epoch), int(index)])
        idx, stride = self.frame_indices(clip.frames, clip.fps, rng)
        frames = read_clip_frames(clip.path, idx, where)
        fps = float(clip.fps // stride)
        if self.p.fps_max is not None and fps > self.p.fps_max:
            fps = float(self.p.fps_max)
        return self.transform(frames).astype(np.float32), clip.caption, np.float32(fps), np.int64(stride)


class WebVidLoader(DataLoader):
    """:class:`common.train.DataLoader` that passes the epoch to ``dataset.get``; a batch is ``(video (B, 3, T, H, W),
    captions (list), fps (B,), frame_stride (B,), keys (B, 2) = (epoch, index))``."""

    def __next__(self):
        epoch = self.sampler.epoch
        idx = next(self.sampler)
        items = [self.dataset.get(int(i), epoch) for i in idx]
        video = np.stack([it[0] for it in items])  # (B, 3, T, H, W)
        keys = np.array([[epoch, int(i)] for i in idx], np.int64)  # (B, 2): what the per-clip draws are keyed on
        return (video, [it[1] for it in items], np.stack([it[2] for it in items]), np.stack([it[3] for it in items]),
                keys)
