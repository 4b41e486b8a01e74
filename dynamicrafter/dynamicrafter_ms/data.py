"""Prompt folders as ``scripts/evaluation/inference.py`` reads them.

A folder holds pictures (``*.jpg *.png *.jpeg *.JPEG *.PNG``, sorted by name) and one prompt file
(``*.txt``; the first by name if several): line ``i`` (blank lines skipped) is the prompt of
picture ``i``. Each picture is resized (short side to ``min(H, W)``, PIL bilinear), center-cropped
to ``H x W``, scaled to [-1, 1] and repeated over the frames: (3, T, H, W).
"""
from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np

from common.video_io import ImageReadError, load_image, resize_center_crop, to_tensor_normalized

IMAGE_SUFFIXES = ("jpg", "png", "jpeg", "JPEG", "PNG")


class PromptDirError(ValueError):
    """A prompts folder that cannot be used (the message names the file at fault)."""


def get_filelist(data_dir, postfixes) -> list[str]:
    """Files ``data_dir/*.<postfix>`` for each postfix, sorted by path (the original's order)."""
    out = []
    for postfix in postfixes:
        out.extend(glob.glob(os.path.join(str(data_dir), f"*.{postfix}")))
    return sorted(set(out))


def load_prompts(prompt_file) -> list[str]:
    """Non-empty stripped lines of a prompt file."""
    try:
        text = Path(prompt_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PromptDirError(f"cannot read prompt file {prompt_file}: {e}") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def load_frame(path, video_size) -> np.ndarray:
    """One picture -> float32 (3, H, W) in [-1, 1] (Resize(min) + CenterCrop + ToTensor + Normalize(0.5))."""
    try:
        img = load_image(path, "RGB")
    except ImageReadError as e:
        raise PromptDirError(str(e)) from None
    return to_tensor_normalized(resize_center_crop(img, tuple(video_size)))


def load_data_prompts(data_dir, video_size=(256, 256), video_frames: int = 16, interp: bool = False):
    """Read a prompts folder.

    Args:
        data_dir: the folder.
        video_size: (H, W) of the video.
        video_frames: T, frames of the video (the picture is repeated T times).
        interp: pictures come in pairs (start, end) per prompt; frames are T/2 of each.

    Returns:
        (filenames, videos, prompts): videos are float32 (3, T, H, W) arrays, one per prompt.

    Raises:
        PromptDirError: missing folder, no prompt file, empty prompt file, too few pictures (or an odd
            number with ``interp``), unreadable picture.
    """
    d = Path(data_dir)
    if not d.is_dir():
        raise PromptDirError(f"prompt_dir not found: {d}")
    prompt_files = get_filelist(d, ["txt"])
    if not prompt_files:
        raise PromptDirError(f"no prompt file (*.txt) in {d}")
    if len(prompt_files) > 1:
        print(f"Warning: multiple prompt files exist. The one {os.path.basename(prompt_files[0])} is used.")
    prompts = load_prompts(prompt_files[0])
    if not prompts:
        raise PromptDirError(f"prompt file {prompt_files[0]} is empty: write one prompt per picture, one per line")
    images = get_filelist(d, IMAGE_SUFFIXES)
    if interp and len(images) % 2:
        raise PromptDirError(f"--interp takes pictures in pairs (start, end; sorted by name) but {d} holds "
                             f"{len(images)} pictures, an odd number")
    need = 2 * len(prompts) if interp else len(prompts)
    if len(images) < need:
        raise PromptDirError(f"{prompt_files[0]} has {len(prompts)} prompts but {d} holds {len(images)} pictures "
                             f"(need {need}{' for interp pairs' if interp else ''}; "
                             f"suffixes {', '.join(IMAGE_SUFFIXES)})")
    filenames, videos = [], []
    for i in range(len(prompts)):
        if interp:
            a, b = load_frame(images[2 * i], video_size), load_frame(images[2 * i + 1], video_size)
            half = video_frames // 2
            video = np.concatenate([np.repeat(a[:, None], half, 1), np.repeat(b[:, None], half, 1)], axis=1)
            name = os.path.basename(images[2 * i])
        else:
            frame = load_frame(images[i], video_size)
            video = np.repeat(frame[:, None], video_frames, axis=1)  # (3, T, H, W)
            name = os.path.basename(images[i])
        filenames.append(name)
        videos.append(video)
    return filenames, videos, prompts
