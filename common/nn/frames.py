"""Named layout changes between videos, frame batches and token rows.

The video UNets keep features as a batch of frames ``(b*t, c, h, w)`` (index ``b*t + t``, frame-major, the
originals' ``(b t)``) and switch to other layouts only where a layer mixes frames or tokens. Each function is
one reshape/transpose pair (no copies beyond the one transpose), so calling them costs what the inline
code did; their names say which ``rearrange`` of the originals they are.

    frames_to_batch        (b, c, t, h, w) -> (b*t, c, h, w)      'b c t h w -> (b t) c h w'
    batch_to_frames        (b*t, c, h, w) -> (b, c, t, h, w)      '(b t) c h w -> b c t h w'
    repeat_interleave      (b, ...)       -> (b*n, ...)           each row n times in place
    image_to_tokens        (n, c, h, w)   -> (n, h*w, c)          'n c h w -> n (h w) c'
    tokens_to_image        (n, h*w, c)    -> (n, c, h, w)
    batch_to_time_tokens   (b*t, c, h, w) -> (b*h*w, t, c)        '(b t) c h w -> (b h w) t c'
    video_to_time_tokens   (b, c, t, h, w) -> (b*h*w, t, c)       'b c t h w -> (b h w) t c'
    time_tokens_to_batch   (b*h*w, t, c)  -> (b*t, c, h, w)       '(b h w) t c -> (b t) c h w'
    space_to_time_tokens   (b*t, s, c)    -> (b*s, t, c)          '(b t) s c -> (b s) t c'
    time_to_space_tokens   (b*s, t, c)    -> (b*t, s, c)          '(b s) t c -> (b t) s c'

``num_frames`` is a Python int (a graph constant), so all of them work in graph mode.
"""
from __future__ import annotations

from mindspore import ops


def frames_to_batch(x):
    """(b, c, t, h, w) -> (b*t, c, h, w): every frame an image of the batch."""
    b, c, t, h, w = x.shape
    return x.transpose(0, 2, 1, 3, 4).reshape(b * t, c, h, w)


def batch_to_frames(x, num_frames: int):
    """(b*t, c, h, w) -> (b, c, t, h, w), with t = ``num_frames``; the inverse of :func:`frames_to_batch`."""
    bt, c, h, w = x.shape
    return x.reshape(bt // num_frames, num_frames, c, h, w).transpose(0, 2, 1, 3, 4)


def repeat_interleave(x, repeats: int):
    """(b, ...) -> (b*repeats, ...), each row repeated in place (``torch.repeat_interleave(x, repeats, 0)``):
    a per-video embedding or context made per frame."""
    shape = x.shape
    y = ops.broadcast_to(x.reshape((shape[0], 1) + shape[1:]), (shape[0], repeats) + shape[1:])
    return y.reshape((shape[0] * repeats,) + shape[1:])


def image_to_tokens(x):
    """(n, c, h, w) -> (n, h*w, c): the pixels of each image as tokens."""
    n, c, h, w = x.shape
    return x.reshape(n, c, h * w).transpose(0, 2, 1)


def tokens_to_image(x, h: int, w: int):
    """(n, h*w, c) -> (n, c, h, w); the inverse of :func:`image_to_tokens`."""
    return x.transpose(0, 2, 1).reshape(x.shape[0], x.shape[2], h, w)


def batch_to_time_tokens(x, num_frames: int):
    """(b*t, c, h, w) -> (b*h*w, t, c): one row of t tokens per pixel of each video."""
    bt, c, h, w = x.shape
    b = bt // num_frames
    return x.reshape(b, num_frames, c, h * w).transpose(0, 3, 1, 2).reshape(b * h * w, num_frames, c)


def video_to_time_tokens(x):
    """(b, c, t, h, w) -> (b*h*w, t, c): as :func:`batch_to_time_tokens`, from the video layout."""
    b, c, t, h, w = x.shape
    return x.transpose(0, 3, 4, 2, 1).reshape(b * h * w, t, c)


def time_tokens_to_batch(x, num_frames: int, h: int, w: int):
    """(b*h*w, t, c) -> (b*t, c, h, w); the inverse of :func:`batch_to_time_tokens`."""
    bhw, t, c = x.shape
    b = bhw // (h * w)
    return x.reshape(b, h * w, t, c).transpose(0, 2, 3, 1).reshape(b * num_frames, c, h, w)


def space_to_time_tokens(x, num_frames: int):
    """(b*t, s, c) -> (b*s, t, c): the s tokens of each frame regrouped as rows of t tokens (one per frame)."""
    bt, s, c = x.shape
    b = bt // num_frames
    return x.reshape(b, num_frames, s, c).transpose(0, 2, 1, 3).reshape(b * s, num_frames, c)


def time_to_space_tokens(x, tokens_per_frame: int):
    """(b*s, t, c) -> (b*t, s, c), with s = ``tokens_per_frame``; the inverse of :func:`space_to_time_tokens`."""
    bs, t, c = x.shape
    s = tokens_per_frame
    b = bs // s
    return x.reshape(b, s, t, c).transpose(0, 2, 1, 3).reshape(b * t, s, c)
