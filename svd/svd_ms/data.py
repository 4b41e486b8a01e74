"""Training clips for SVD fine-tuning: a CSV of real video files, decoded with ffmpeg.

The metadata CSV starts with the header ``path,length,motion_bucket_id`` (further columns are
ignored); ``path`` is relative to ``data_dir`` (or absolute), ``length`` the number of frames,
``motion_bucket_id`` the clip's motion bucket (SVD paper, appendix C). A sample is ``frames``
consecutive frames taken every ``step`` frames from a random start, resized on the short side
and centre-cropped to ``size`` (torchvision ``Resize`` + ``CenterCrop``), in [-1, 1].

Randomness (start frame, ``cond_aug``) comes from ``np.random.default_rng([seed, epoch, index])``:
a sample is the same on every rank and after a resume, so data-parallel training equals one
process on the concatenated batch and a resumed run equals an uninterrupted one.

Bad rows (missing or undecodable file, a video shorter than ``frames * step``) produce one line
on stderr naming the file and the reason; ``on_bad_video="skip"`` drops the row (a row found bad
while reading is replaced by the next good one), ``"stop"`` raises :class:`BadVideoError`.
"""
from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.train import DataLoader
from common.video_io import VideoReadError, read_video_frames, resize_center_crop, video_metadata

CSV_HEADER = ("path", "length", "motion_bucket_id")


class BadVideoError(RuntimeError):
    """A metadata row or video file that cannot be used (one-line message naming it)."""


class MetadataError(ValueError):
    """A metadata CSV that cannot be read at all (missing file, wrong header, no usable rows)."""


@dataclass
class VideoRecord:
    """One CSV row: resolved ``path``, ``length`` (frames), ``motion_bucket_id``, 1-based CSV ``line``."""

    path: Path
    length: int
    motion_bucket_id: float
    line: int


def _report(msg: str, policy: str):
    if policy == "stop":
        raise BadVideoError(msg)
    print(f"WARNING: skipping {msg}", file=sys.stderr, flush=True)


def read_metadata(metadata, data_dir=None, min_length: int = 1, on_bad_video: str = "skip") -> list[VideoRecord]:
    """Parse the CSV; rows with a missing file or fewer than ``min_length`` frames are reported (see module doc)."""
    metadata = Path(metadata)
    if not metadata.is_file():
        raise MetadataError(f"metadata CSV {metadata} does not exist")
    root = Path(data_dir) if data_dir is not None else metadata.parent
    with open(metadata, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise MetadataError(f"{metadata}: empty file; the first line must be the header {','.join(CSV_HEADER)}")
    header = tuple(c.strip() for c in rows[0][:3])
    if header != CSV_HEADER:
        raise MetadataError(f"{metadata}: header is {','.join(c.strip() for c in rows[0])!r}; it must start with "
                            f"{','.join(CSV_HEADER)!r}")
    out = []
    for n, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        where = f"{metadata}:{n}"
        try:
            rel, length, bucket = row[0].strip(), int(row[1]), float(row[2])
        except (IndexError, ValueError):
            _report(f"{where}: cannot parse row {','.join(row)!r} as path,length,motion_bucket_id", on_bad_video)
            continue
        path = Path(rel) if Path(rel).is_absolute() else root / rel
        if not path.is_file():
            _report(f"{where}: video {path} does not exist", on_bad_video)
            continue
        if length < min_length:
            _report(f"{where}: video {path} has {length} frames, fewer than frames x step = {min_length}", on_bad_video)
            continue
        out.append(VideoRecord(path, length, bucket, n))
    if not out:
        raise MetadataError(f"{metadata}: no usable rows (need videos of at least {min_length} frames)")
    return out


class VideoDataset:
    """SVD training samples from a metadata CSV (mindone's ``data.video_dataset.VideoDataset`` arguments).

    Args:
        data_dir: folder the CSV paths are relative to (default: the CSV's folder).
        metadata: the CSV (``path,length,motion_bucket_id``).
        frames: frames per sample (T; SVD fine-tunes use 4..14).
        step: take every ``step``-th frame (the clip's fps becomes ``fps / step``).
        size: (H, W) of the frames (576, 1024 for the release); multiples of 64.
        on_bad_video: ``"skip"`` (report and go on) or ``"stop"`` (raise BadVideoError).
        seed: base of the per-sample generators.
        cond_aug_mean / cond_aug_std: ``cond_aug ~ LogNormal(mean, std)`` (SVD: -3.0, 0.5).

    ``get(index, epoch)`` returns ``(frames (T, 3, H, W) float32 in [-1, 1], fps_id (), motion_bucket_id (),
    cond_aug (), key (2,) int64 = (epoch, index))`` with ``fps_id = fps / step - 1``.
    """

    def __init__(self, data_dir, metadata, frames: int, step: int = 1, size=(576, 1024), on_bad_video: str = "skip",
                 seed: int = 0, cond_aug_mean: float = -3.0, cond_aug_std: float = 0.5):
        if on_bad_video not in ("skip", "stop"):
            raise ValueError(f"on_bad_video must be 'skip' or 'stop', got {on_bad_video!r}")
        if frames < 1 or step < 1:
            raise ValueError(f"frames ({frames}) and step ({step}) must be >= 1")
        self.frames, self.step, self.size = int(frames), int(step), (int(size[0]), int(size[1]))
        self.policy, self.seed = on_bad_video, int(seed)
        self.cond_aug_mean, self.cond_aug_std = float(cond_aug_mean), float(cond_aug_std)
        self.records = read_metadata(metadata, data_dir, self.frames * self.step, on_bad_video)
        self._bad: set[int] = set()
        self._fps: dict[int, float] = {}

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int):
        return self.get(index, 0)

    def _load(self, i: int, rng: np.random.Generator):
        rec = self.records[i]
        span = self.frames * self.step
        start = int(rng.integers(0, rec.length - span + 1))
        clip = read_video_frames(rec.path, start=start, num_frames=self.frames, step=self.step)  # (T, H, W, 3)
        if i not in self._fps:
            self._fps[i] = video_metadata(rec.path)["fps"]
        h, w = self.size
        out = np.empty((self.frames, 3, h, w), np.float32)
        for t, frame in enumerate(clip):
            arr = np.asarray(resize_center_crop(frame, self.size), dtype=np.float32)
            out[t] = arr.transpose(2, 0, 1) / 127.5 - 1.0
        return out, self._fps[i]

    def get(self, index: int, epoch: int = 0):
        """Sample ``index`` as drawn in ``epoch`` (a bad file is replaced by the next good row with ``skip``)."""
        n = len(self.records)
        for k in range(n):
            i = (int(index) + k) % n
            if i in self._bad:
                continue
            rng = np.random.default_rng([self.seed, int(epoch), i])
            try:
                frames, fps = self._load(i, rng)
            except VideoReadError as e:
                rec = self.records[i]
                self._bad.add(i)
                _report(f"{rec.path} (CSV line {rec.line}): {e}", self.policy)
                continue
            cond_aug = rng.lognormal(self.cond_aug_mean, self.cond_aug_std)
            return (frames, np.float32(fps / self.step - 1.0), np.float32(self.records[i].motion_bucket_id),
                    np.float32(cond_aug), np.array([epoch, i], np.int64))
        raise BadVideoError(f"none of the {n} videos of the metadata could be read")


class VideoDataLoader(DataLoader):
    """:class:`common.train.DataLoader` that tells the dataset the epoch of each sample (``dataset.get(i, epoch)``)."""

    def __next__(self):
        epoch = self.sampler.epoch
        return self.collate_fn([self.dataset.get(int(i), epoch) for i in next(self.sampler)])
