"""The original ``WebVid10M`` training clips (``animatediff/data/dataset.py``), on the shared WebVid pieces.

A CSV row ``videoid, name, page_dir`` is the clip ``<video_folder>/<videoid>.mp4`` with the caption ``name``.
Without a CSV (``csv_path`` empty or null) ``video_folder`` is a folder dataset, and a ``csv_path`` naming a folder
is one: every ``*.mp4`` under it with a same-named ``.txt`` caption beside it and/or a ``captions.csv``
(``video,caption``; :func:`common.train.webvid.read_video_folder`). One draw, as the original:

* ``clip_length = min(n, (sample_n_frames - 1) * sample_stride + 1)`` frames of the ``n`` in the video, from a
  start uniform in ``[0, n - clip_length]``, and ``sample_n_frames`` indices ``linspace(start, start + clip_length
  - 1)`` truncated to int (a short video gives a shorter stride, never an error);
* ``RandomHorizontalFlip`` (probability 0.5), short side resized to ``H`` (PIL bilinear, antialiased; the
  original's tensor ``Resize(antialias=None)``), centre crop to ``(H, W)``, ``(x / 255 - 0.5) / 0.5``.

Every draw comes from ``default_rng([seed, epoch, index])`` (the original uses Python's global ``random`` and
torch's), so a clip is the same on every rank and after a resume. Every row is checked when the dataset is built,
before any training: the file exists and ffmpeg reads it (with ``check=False`` only the existence) (:class:`~common.train.webvid.BadVideoError` names the
CSV line and the path). The original skips a failing video silently by drawing another one.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from common.train import DataLoader
from common.train.webvid import (
    BadVideoError,
    check_exists,
    probe_video,
    read_clip_frames,
    read_video_folder,
    read_webvid_csv,
)
from common.video_io import center_crop, resize_short_side

from .config import TrainDataConfig

__all__ = ["WebVid10M", "WebVidLoader", "BadVideoError"]


def clip_indices(n: int, n_frames: int, stride: int, rng: np.random.Generator) -> np.ndarray:
    """The original's frame indices of one draw from a video of ``n`` frames."""
    clip_length = min(n, (n_frames - 1) * stride + 1)
    start = int(rng.integers(0, n - clip_length + 1))
    return np.linspace(start, start + clip_length - 1, n_frames).astype(np.int64)  # (n_frames,)


class WebVid10M:
    """Training clips of a WebVid CSV.

    Args:
        data: :class:`~animatediff_ms.config.TrainDataConfig` (``train_data`` of the yaml).
        seed: base of the per-clip generators.
        check: probe every video now (ffmpeg reads it, it has frames); False: only its existence now, the rest when
            the clip is first drawn (huge CSVs).

    ``get(index, epoch) -> (pixel_values (f, 3, H, W) float32 in [-1, 1], caption str)``.
    """

    def __init__(self, data: TrainDataConfig, seed: int = 0, check: bool = True):
        self.data, self.seed = data, int(seed)
        self.clips = []  # [path, caption, frames (-1: not probed yet), where (the errors' prefix)]
        for where, path, caption in self.rows(data):
            if check:
                n = self._probe(path, where)
            else:
                check_exists(path, where)
                n = -1
            self.clips.append([path, caption, n, where])

    @staticmethod
    def rows(data: TrainDataConfig) -> list[tuple[str, Path, str]]:
        """``[(where, video, caption)]``: the CSV's rows, or a folder dataset (module docstring)."""
        if not data.csv_path:
            return read_video_folder(data.video_folder, what="train_data.video_folder")
        if Path(data.csv_path).is_dir():
            return read_video_folder(data.csv_path, what="train_data.csv_path")
        folder = Path(data.video_folder)
        rows = read_webvid_csv(data.csv_path, lambda r: folder / f"{r['videoid']}.mp4", what="--train_data.csv_path")
        return [(f"train_data.csv_path {data.csv_path}:{line}", path, caption) for line, path, caption in rows]

    @staticmethod
    def _probe(path: Path, where: str) -> int:
        n, _ = probe_video(path, where)
        if n < 1:
            raise BadVideoError(f"{where}: video {path} has no frames")
        return n

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int):
        return self.get(index, 0)

    def transform(self, frames: np.ndarray, flip: bool) -> np.ndarray:
        """uint8 ``(f, h, w, 3)`` -> float32 ``(f, 3, H, W)`` in [-1, 1]."""
        h, w = self.data.size
        out = []
        for fr in frames:
            img = center_crop(resize_short_side(fr[:, ::-1] if flip else fr, h), (h, w))
            out.append(np.asarray(img, np.float32))
        arr = np.stack(out)  # (f, H, W, 3)
        return ((arr / 255.0 - 0.5) / 0.5).transpose(0, 3, 1, 2).astype(np.float32)

    def get(self, index: int, epoch: int = 0):
        """Clip ``index`` as drawn in ``epoch``."""
        clip = self.clips[int(index)]
        if clip[2] < 0:  # built with check=False: probed when first drawn
            clip[2] = self._probe(clip[0], clip[3])
        path, caption, n, where = clip
        rng = np.random.default_rng([self.seed, int(epoch), int(index)])
        idx = clip_indices(n, self.data.sample_n_frames, self.data.sample_stride, rng)
        flip = bool(rng.random() < 0.5)
        frames = read_clip_frames(path, idx, where)
        return self.transform(np.ascontiguousarray(frames), flip), caption


class WebVidLoader(DataLoader):
    """:class:`common.train.DataLoader` of :class:`WebVid10M`; a batch is ``(pixel_values (B, f, 3, H, W),
    captions (list of B str), keys (B, 2) int64 = (epoch, index))`` (the keys seed the per-clip draws of the step)."""

    def __next__(self):
        epoch = self.sampler.epoch
        idx = next(self.sampler)
        items = [self.dataset.get(int(i), epoch) for i in idx]
        keys = np.array([[epoch, int(i)] for i in idx], np.int64)  # (B, 2)
        return np.stack([it[0] for it in items]), [it[1] for it in items], keys
