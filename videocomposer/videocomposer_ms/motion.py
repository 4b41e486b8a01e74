"""Motion vectors of a video, as the original's ``extract_motion_vectors``: the video is resampled to a low
frame rate and re-encoded as MPEG-4 part 2 (``ffmpeg -filter:v fps=F -c:v mpeg4``), then decoded by FFmpeg
with ``flags2=+export_mvs`` (PyAV, FFmpeg's own decoder; the original reads the same side data with
``mvextractor``). Each frame's vectors become a dense (H, W, 2) map: at every block's destination pixel,
``source * motion_xy / motion_scale`` (pixels), zeros elsewhere.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class MotionVectorError(ValueError):
    """A video whose motion vectors cannot be read (missing, undecodable, too short, no vectors)."""


@dataclass
class MotionVideo:
    """The re-encoded video: ``frames`` uint8 (T, H, W, 3) RGB, ``mvs`` float32 (T, H, W, 2),
    ``frame_types`` ('I', 'P', 'B', ...) and the frame rate ``fps`` it was resampled to."""

    frames: np.ndarray
    mvs: np.ndarray
    frame_types: list[str]
    fps: float


def _av():
    try:
        import av
    except ImportError as e:  # pragma: no cover - a dependency of the project
        raise ImportError("motion vectors need PyAV: pip install av") from e
    return av


def sample_rate(num_frames: int, video_fps: float, fps: int = 4, min_frames: int = 16) -> int:
    """The original's frame-rate rule: ``fps`` (at least 1) when the clip lasts long enough for
    ``min_frames`` frames at it, else ``int(min_frames / duration) + 1``."""
    duration = num_frames / video_fps
    if duration * fps > min_frames:
        return max(int(fps), 1)
    return int(min_frames / duration) + 1


def _decode_rgb(path: Path):
    av = _av()
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise MotionVectorError(f"no video stream in {path}")
            s = c.streams.video[0]
            rate = float(s.average_rate or s.guessed_rate or 0) or 25.0
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(s)]
    except MotionVectorError:
        raise
    except Exception as e:  # av.error.* (InvalidDataError, ...)
        raise MotionVectorError(f"cannot decode video {path}: {e}") from None
    if not frames:
        raise MotionVectorError(f"video {path} has no frames")
    return np.stack(frames), rate


def _reencode_mpeg4(frames: np.ndarray, src_fps: float, fps: int) -> bytes:
    """``fps=F`` resampling (nearest input frame per output tick) + MPEG-4 encoding, in memory."""
    av = _av()
    n = frames.shape[0]
    count = max(int(np.floor(n / src_fps * fps + 0.5)), 1)
    idx = np.minimum(np.round(np.arange(count) * src_fps / fps).astype(int), n - 1)
    h, w = frames.shape[1] - frames.shape[1] % 2, frames.shape[2] - frames.shape[2] % 2
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="avi") as out:
        st = out.add_stream("mpeg4", rate=int(fps))
        st.width, st.height, st.pix_fmt = w, h, "yuv420p"
        for i in idx:
            for pkt in st.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frames[i, :h, :w]), format="rgb24")):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    return buf.getvalue()


_PICT = {0: "?", 1: "I", 2: "P", 3: "B", 4: "S", 5: "SI", 6: "SP", 7: "BI"}


def _dense(mv, h: int, w: int) -> np.ndarray:
    out = np.zeros((h, w, 2), np.float32)
    if mv is None or len(mv) == 0:
        return out
    x = np.clip(mv["dst_x"].astype(np.int64), 0, w - 1)
    y = np.clip(mv["dst_y"].astype(np.int64), 0, h - 1)
    scale = mv["motion_scale"].astype(np.float32)
    src = mv["source"].astype(np.float32)
    out[y, x, 0] = src * mv["motion_x"].astype(np.float32) / scale
    out[y, x, 1] = src * mv["motion_y"].astype(np.float32) / scale
    return out


def _decode_mvs(data: bytes) -> tuple[list, list, list]:
    av = _av()
    frames, mvs, types = [], [], []
    with av.open(io.BytesIO(data), format="avi") as c:
        s = c.streams.video[0]
        s.codec_context.options = {"flags2": "+export_mvs"}
        for f in c.decode(s):
            rgb = f.to_ndarray(format="rgb24")
            vec = None
            for side in f.side_data:
                if "MOTION_VECTORS" in str(side.type):
                    vec = side.to_ndarray()
            frames.append(rgb)
            mvs.append(_dense(vec, rgb.shape[0], rgb.shape[1]))
            pt = f.pict_type
            types.append(_PICT.get(int(pt), str(pt)) if not isinstance(pt, str) else pt)
    return frames, mvs, types


def extract_motion_vectors(path, fps: int = 4, min_frames: int = 16) -> MotionVideo:
    """Re-encode ``path`` at the original's frame rate and read its frames and motion vectors.

    Raises:
        MotionVectorError: missing / undecodable file, or no frame carries motion vectors.
    """
    p = Path(path)
    if not p.is_file():
        raise MotionVectorError(f"video file not found: {p}")
    rgb, src_fps = _decode_rgb(p)
    rate = sample_rate(rgb.shape[0], src_fps, fps, min_frames)
    frames, mvs, types = _decode_mvs(_reencode_mpeg4(rgb, src_fps, rate))
    if not frames:
        raise MotionVectorError(f"no frames after re-encoding {p}")
    if len(frames) > 1 and not any(np.any(m) for m in mvs[1:]) and not any(t in ("P", "B") for t in types):
        raise MotionVectorError(f"no motion vectors in {p} (the decoder exported none)")
    return MotionVideo(np.stack(frames), np.stack(mvs), types, float(rate))


def start_index(frame_types: list[str], max_frames: int, rng: np.random.Generator) -> int:
    """A random I-frame from which ``max_frames`` frames remain (the original's clip start)."""
    n = len(frame_types)
    starts = [i for i, t in enumerate(frame_types) if t == "I" and n - i >= max_frames]
    if not starts:
        raise MotionVectorError(f"the video gives {n} frames at the sampled rate, fewer than max_frames={max_frames} "
                                "after an I-frame")
    return int(rng.choice(starts))
