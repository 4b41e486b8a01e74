"""Long videos from a model trained on short clips: sliding context windows over the frame axis.

A video model whose temporal layers saw at most ``context_length`` frames (AnimateDiff's motion modules: 16,
24 or 32) denoises a longer latent video window by window; every frame's output is the weighted mean of the
outputs of the windows that hold it (FreeNoise, Qiu et al. 2023; the "context options" of
ComfyUI-AnimateDiff-Evolved). Windows overlap by ``context_overlap`` frames so neighbouring windows agree.

Schedules (:func:`context_windows`):

* ``"static"``: windows start every ``context_length - context_overlap`` frames; the last one is moved back
  to end at the last frame. The same windows at every step.
* ``"uniform"``: the same stride, but the grid is shifted at every sampling step by a fraction of the video
  that visits the positions in bit-reversed order (step 0: no shift, step 1: half the video, step 2: a
  quarter, ...), so the window borders fall on other frames at each step; a window that would run past the
  end is moved back to end at the last frame, and repeated windows are dropped. Step 0 equals ``"static"``
  except for that de-duplication.

Weights (:func:`fuse_weights`) over a window's frames: ``"flat"`` (all 1) or ``"pyramid"`` (1, 2, ..., up to
the middle and back down: the frames near a window's border count less).

With ``num_frames <= context_length`` there is one window of every frame, and the windowed denoiser returns
exactly the plain denoiser's output (weights cancel).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import mindspore as ms
import numpy as np

from .denoiser import Denoiser

__all__ = ["SCHEDULES", "FUSE_METHODS", "context_windows", "fuse_weights", "windowed_denoiser"]

SCHEDULES = ("uniform", "static")
FUSE_METHODS = ("pyramid", "flat")


def _bit_reversed_fraction(step: int, bits: int = 32) -> float:
    """``step`` with its lowest ``bits`` bits reversed, as a fraction of 1: 0, 1/2, 1/4, 3/4, 1/8, ..."""
    r = int(format(step % (1 << bits), f"0{bits}b")[::-1], 2)
    return r / float(1 << bits)


def context_windows(num_frames: int, context_length: int = 16, context_overlap: int = 4, *,
                    schedule: str = "uniform", step: int = 0) -> list[list[int]]:
    """The frame indices of every window at sampling step ``step``.

    Args:
        num_frames: L, frames of the video.
        context_length: frames per window (the motion module's trained length, 16 for AnimateDiff v1-v3).
        context_overlap: frames shared by neighbouring windows (4); ``0 <= overlap < context_length``.
        schedule: ``"uniform"`` (the grid shifts every step) or ``"static"``.
        step: the sampling step (only ``"uniform"`` uses it).
    Returns:
        windows as lists of consecutive frame indices, each ``context_length`` long (or one window of all the
        frames when ``num_frames <= context_length``); every frame is in at least one window.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"context schedule must be one of {SCHEDULES}, got {schedule!r}")
    if context_length < 1 or not 0 <= context_overlap < context_length:
        raise ValueError(f"context_length ({context_length}) must be >= 1 and 0 <= context_overlap "
                         f"({context_overlap}) < context_length")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if num_frames <= context_length:
        return [list(range(num_frames))]
    hop = context_length - context_overlap
    offset = 0 if schedule == "static" else int(round(num_frames * _bit_reversed_fraction(step)))
    starts = []
    for s in range(offset, offset + num_frames, hop):  # one period of the shifted grid
        s %= num_frames
        starts.append(min(s, num_frames - context_length))  # past the end: moved back to end at the last frame
    if schedule == "uniform":  # the grid may leave frame 0 uncovered after the shift: a window there
        starts.append(0)
    windows: list[list[int]] = []
    for s in sorted(set(starts)):
        windows.append(list(range(s, s + context_length)))
    covered = np.zeros(num_frames, bool)
    for w in windows:
        covered[w] = True
    assert covered.all(), "context windows leave frames uncovered"
    return windows


def fuse_weights(length: int, method: str = "pyramid") -> np.ndarray:
    """``(length,)`` float32 weights of a window's frames (see the module doc)."""
    if method == "flat":
        return np.ones(length, np.float32)
    if method == "pyramid":
        i = np.arange(length)
        return np.minimum(i + 1, length - i).astype(np.float32)
    raise ValueError(f"fuse method must be one of {FUSE_METHODS}, got {method!r}")


def windowed_denoiser(denoiser_for: Callable[[list[int]], Denoiser], num_frames: int, context_length: int,
                      context_overlap: int = 4, *, schedule: str = "uniform", fuse: str = "pyramid",
                      frame_axis: int = 2, windows: Sequence[Sequence[int]] | None = None) -> Denoiser:
    """A :class:`Denoiser` over all ``num_frames`` frames made of window calls.

    Args:
        denoiser_for: ``frames -> Denoiser`` for the latents of those frames (the model side selects the
            per-frame conditions of the window: prompt-travel embeddings, control images; a window's denoiser
            is built once and reused).
        num_frames / context_length / context_overlap / schedule: see :func:`context_windows`.
        fuse: window weights, see :func:`fuse_weights`.
        frame_axis: the frame axis of ``x`` (2 for ``(b, c, f, h, w)``).
        windows: fixed windows instead of the schedule (tests).
    The sampling step is counted by the calls (one call per step, as every sampler here makes).
    """
    cache: dict[tuple, Denoiser] = {}
    state = {"step": 0}

    def window_denoiser(idx: list[int]) -> Denoiser:
        key = tuple(idx)
        if key not in cache:
            cache[key] = denoiser_for(list(idx))
        return cache[key]

    def fn(x, t, **extra_args):
        ws = windows if windows is not None else context_windows(num_frames, context_length, context_overlap,
                                                                   schedule=schedule, step=state["step"])
        state["step"] += 1
        if len(ws) == 1 and len(ws[0]) == num_frames:
            return window_denoiser(list(ws[0]))(x, t, **extra_args)
        xs = x.asnumpy() if isinstance(x, ms.Tensor) else np.asarray(x)
        acc = None
        total = np.zeros(num_frames, np.float64)
        for idx in ws:
            idx = list(idx)
            x_w = np.take(xs, idx, axis=frame_axis)
            out = window_denoiser(idx)(ms.Tensor(x_w) if isinstance(x, ms.Tensor) else x_w, t, **extra_args)
            out = out.asnumpy() if isinstance(out, ms.Tensor) else np.asarray(out)
            if acc is None:
                acc = np.zeros(xs.shape[:frame_axis] + (num_frames,) + out.shape[frame_axis + 1:], np.float64)
            w = fuse_weights(len(idx), fuse).astype(np.float64)
            shape = [1] * out.ndim
            shape[frame_axis] = len(idx)
            np.add.at(acc, (slice(None),) * frame_axis + (idx,), out * w.reshape(shape))
            total[idx] += w
        shape = [1] * acc.ndim
        shape[frame_axis] = num_frames
        fused = (acc / total.reshape(shape)).astype(xs.dtype)
        return ms.Tensor(fused) if isinstance(x, ms.Tensor) else fused

    first = window_denoiser(list(range(min(num_frames, context_length))))
    return Denoiser(fn, prediction=first.prediction, time=first.time)
