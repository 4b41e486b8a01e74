"""What every pipeline returns, and the pieces of the one pipeline vocabulary.

Every model's pipeline ``__call__`` takes diffusers' names (``prompt``, ``negative_prompt``, ``image``,
``num_frames``, ``height``, ``width``, ``num_inference_steps``, ``guidance_scale``, ``seed`` / ``generator``,
``callback``, ``output_type``) and returns a :class:`VideoOutput` (or a subclass adding model extras).

Layout of ``VideoOutput.frames``: float32 ``(B, T, H, W, 3)`` in ``[0, 1]`` -- diffusers'
``output_type="np"`` layout. Channel-last frames are what every writer takes (``common.video_io.write_video``
(T, H, W, 3), imageio, ffmpeg rgb24, PIL), ``frames[b, t]`` is an image, and B is always there, so one
video and a batch read the same way. Model-internal layouts stay each original's (latents (B, C, T, h, w)
or (B*T, C, h, w)); only the output is common.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["VideoOutput", "OUTPUT_TYPES", "check_output_type", "to_unit_range", "frames_from_decoded",
           "numpy_generator"]

#: ``"np"``: decoded frames (the layout above); ``"latent"``: no decoding, ``frames`` is None.
OUTPUT_TYPES = ("np", "latent")


@dataclass
class VideoOutput:
    """One pipeline call's result.

    Attributes:
        frames: float32 ``(B, T, H, W, 3)`` in ``[0, 1]``; None for ``output_type="latent"``.
        latents: the final (denoised) latents in the model's own layout, numpy float32.
        seed: the seed the noise was drawn from (None when a generator or explicit noise was given).
    """

    frames: np.ndarray | None
    latents: np.ndarray
    seed: int | None = None


def check_output_type(output_type: str) -> str:
    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
    return output_type


def to_unit_range(video) -> np.ndarray:
    """Decoder output in ``[-1, 1]`` -> float32 ``clip((x + 1) / 2, 0, 1)`` (same layout)."""
    return np.clip((np.asarray(video, np.float32) + np.float32(1.0)) / np.float32(2.0), 0.0, 1.0).astype(np.float32)


def frames_from_decoded(video, channel_axis: int, time_axis: int) -> np.ndarray:
    """Decoder output in ``[-1, 1]`` -> :class:`VideoOutput` frames (B, T, H, W, 3): :func:`to_unit_range`,
    time moved after the batch axis and channels last (``(B, C, T, H, W)``: ``channel_axis=1, time_axis=2``)."""
    x = to_unit_range(video)
    return np.ascontiguousarray(np.moveaxis(x, (time_axis, channel_axis), (1, x.ndim - 1)))


def numpy_generator(seed: int | None, generator: np.random.Generator | None) -> np.random.Generator:
    """The numpy ``Generator`` of a call: ``generator`` if given (it wins over ``seed``), else
    ``default_rng(seed)`` (None: fresh entropy)."""
    if generator is not None:
        return generator
    return np.random.default_rng(seed)
