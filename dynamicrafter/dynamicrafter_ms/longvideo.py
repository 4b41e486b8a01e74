"""Long videos from short clips: keyframe interpolation and image-to-video extension.

* :func:`keyframe_video`: K keyframes -> K-1 segments of the interpolation model, segment ``i`` from keyframe ``i``
  to keyframe ``i+1`` (``interp``: first and last frame latents). Segment ``i`` ends on keyframe ``i+1`` and
  segment ``i+1`` starts on it: the joined video keeps segment ``i``'s last frame and drops segment ``i+1``'s
  first, so it has ``(K-1)(T-1) + 1`` frames.
* :func:`extend_video`: an image-to-video clip, then ``n`` more, each conditioned on the previous clip's last
  frame (as the uint8 picture a user would save); each continuation's first frame re-creates that frame and is
  dropped: ``T + n (T-1)`` frames.

Segment ``i`` draws its noise from ``default_rng([seed, sample, i])``, so any segment can be made again alone
(with :meth:`DynamiCrafterPipeline.__call__` and that generator) and equals its part of the long video.
"""
from __future__ import annotations

import numpy as np

from common.video_io import to_uint8


def join_segments(segments) -> np.ndarray:
    """Segments (T_i, H, W, 3) whose last and next first frames show the same moment -> one (sum T_i - (n-1), H, W, 3)
    video: the first segment whole, every later one without its first frame."""
    if not segments:
        raise ValueError("join_segments: no segments")
    return np.concatenate([segments[0]] + [s[1:] for s in segments[1:]], axis=0)


def segment_generator(seed: int, sample: int, index: int) -> np.random.Generator:
    """The generator of segment ``index`` of sample ``sample``."""
    return np.random.default_rng([int(seed), int(sample), int(index)])


def keyframe_video(pipe, keyframes, prompt: str, num_frames: int, seed: int, sample: int = 0, **kwargs):
    """Interpolate between consecutive keyframes and join.

    Args:
        pipe: :class:`~dynamicrafter_ms.pipeline.DynamiCrafterPipeline` with the interpolation model.
        keyframes: K >= 2 pictures (3, H, W) in [-1, 1].
        prompt: the text of every segment.
        num_frames: T, frames per segment (even: T/2 copies of each end, the original's interp input).
        seed / sample: the segment generators (:func:`segment_generator`).
        kwargs: further pipeline arguments (steps, guidance, frame_stride, ...).

    Returns:
        ``(video ((K-1)(T-1)+1, H, W, 3) in [0, 1], segments [(T, H, W, 3)])``.
    """
    if len(keyframes) < 2:
        raise ValueError(f"keyframe_video needs at least 2 keyframes, got {len(keyframes)}")
    half = num_frames // 2
    segments = []
    for i, (a, b) in enumerate(zip(keyframes[:-1], keyframes[1:])):
        pair = np.concatenate([np.repeat(a[:, None], half, 1), np.repeat(b[:, None], num_frames - half, 1)], 1)
        out = pipe([prompt], pair[None], interp=True, num_videos_per_prompt=1,
                   generator=segment_generator(seed, sample, i), **kwargs)
        segments.append(out.frames[0])
    return join_segments(segments), segments


def frame_as_picture(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) in [0, 1] -> (3, H, W) in [-1, 1] through uint8, as the frame saved as a PNG and read back."""
    return to_uint8(frame, (0, 1)).astype(np.float32).transpose(2, 0, 1) / 127.5 - 1.0


def extend_video(pipe, picture: np.ndarray, prompt: str, num_frames: int, n: int, seed: int, sample: int = 0,
                 **kwargs):
    """An image-to-video clip continued ``n`` times from its last frame, joined.

    Args:
        pipe: :class:`~dynamicrafter_ms.pipeline.DynamiCrafterPipeline` (an image-to-video model).
        picture: (3, H, W) in [-1, 1], the first clip's conditioning picture.
        prompt: the text of every clip.
        num_frames: T, frames per clip.
        n: continuations (0 = the plain clip).
        seed / sample: the clip generators (:func:`segment_generator`).
        kwargs: further pipeline arguments.

    Returns:
        ``(video (T + n(T-1), H, W, 3) in [0, 1], segments [(T, H, W, 3)])``.
    """
    if n < 0:
        raise ValueError(f"extend_video: n must be >= 0, got {n}")
    segments = []
    cond = np.asarray(picture, np.float32)
    for i in range(n + 1):
        video = np.repeat(cond[:, None], num_frames, 1)[None]  # (1, 3, T, H, W)
        out = pipe([prompt], video, num_videos_per_prompt=1, generator=segment_generator(seed, sample, i), **kwargs)
        segments.append(out.frames[0])
        cond = frame_as_picture(out.frames[0][-1])
    return join_segments(segments), segments
