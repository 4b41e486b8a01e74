"""Inputs of one run, prepared as the original's ``VideoDataset`` and ``inference_single.py`` do.

* the clip: the video re-encoded at the original's low frame rate (:mod:`.motion`), ``max_frames``
  consecutive frames from a random I-frame;
* ``misc`` frames (depth, sketch, first frame, masks): short side resized to ``misc_size`` with a filter
  drawn per frame (bilinear / bicubic / lanczos, as the original's ``random_resize``), ``CenterCropV2(misc_size)``, in [0, 1];
* motion vectors: resized (short side ``resolution``, bilinear without antialiasing) and centre-cropped;
* the style image: open_clip's preprocess (bicubic short side to ``vit_image_size``, centre crop, CLIP
  normalisation) or, without ``--style_image``, the middle frame through the original's ``CenterCrop``;
* the mask (``masked``): the original's random mix of strokes, boxes and half-frame uncrops (:mod:`.masks`);
* the latent size: ``resolution / 8`` (``CenterCropV2(resolution)`` of the video frames).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from common.video_io import center_crop, load_image, resize_short_side

from .config import VideoComposerConfig
from .masks import random_mask
from .motion import MotionVectorError, MotionVideo, extract_motion_vectors, start_index
from .resize import bilinear_matrix

_FILTERS = (Image.BILINEAR, Image.BICUBIC, Image.LANCZOS)


def center_crop_v2(img: Image.Image, size: int) -> Image.Image:
    """The original's ``CenterCropV2`` / ``CenterCrop``: halve with BOX while the short side >= 2*size, bicubic
    resize of the short side to ``size`` (``round``), crop the centre square."""
    while min(img.size) >= 2 * size:
        img = img.resize((img.width // 2, img.height // 2), resample=Image.BOX)
    scale = size / min(img.size)
    img = img.resize((round(scale * img.width), round(scale * img.height)), resample=Image.BICUBIC)
    x1, y1 = (img.width - size) // 2, (img.height - size) // 2
    return img.crop((x1, y1, x1 + size, y1 + size))


def to_unit(img: Image.Image) -> np.ndarray:
    """PIL RGB -> float32 (3, H, W) in [0, 1] (``ToTensor``)."""
    return np.asarray(img.convert("RGB"), np.float32).transpose(2, 0, 1) / np.float32(255)


def misc_transform(img: Image.Image, size: int, rng: np.random.Generator) -> np.ndarray:
    """``random_resize(size)`` + ``CenterCropV2(size)`` + ``ToTensor``: (3, size, size) in [0, 1]."""
    img = resize_short_side(img, size, _FILTERS[int(rng.integers(0, 3))])
    return to_unit(center_crop_v2(img, size))


def clip_image(img: Image.Image, size: int, mean, std, open_clip_style: bool) -> np.ndarray:
    """(3, size, size) CLIP-normalised: open_clip's preprocess (``open_clip_style``) or the original's
    ``CenterCrop(size)`` on a video frame."""
    if open_clip_style:
        img = center_crop(resize_short_side(img, size, Image.BICUBIC), size)
    else:
        img = center_crop_v2(img, size)
    x = to_unit(img)
    return (x - np.asarray(mean, np.float32).reshape(3, 1, 1)) / np.asarray(std, np.float32).reshape(3, 1, 1)


def resize_motion(mvs: np.ndarray, size: int) -> np.ndarray:
    """(F, H, W, 2) vectors -> (F, 2, size, size): torchvision ``Resize(size)`` on the tensor (bilinear,
    half-pixel centres, no antialiasing, as the original's torchvision did for tensors) and
    ``CenterCrop(size)``; the values stay pixels of the re-encoded video."""
    f, h, w, _ = mvs.shape
    nh, nw = (size, int(size * w / h)) if h <= w else (int(size * h / w), size)
    mh, mw = bilinear_matrix(h, nh, False), bilinear_matrix(w, nw, False)  # (nh, h), (nw, w)
    x = np.einsum("ph,fhwc,qw->fcpq", mh, mvs.astype(np.float32), mw, optimize=True)  # (F, 2, nh, nw)
    top, left = int(round((nh - size) / 2.0)), int(round((nw - size) / 2.0))
    return np.ascontiguousarray(x[:, :, top:top + size, left:left + size], dtype=np.float32)


@dataclass
class Inputs:
    """Prepared inputs of one video (batch axis added by the pipeline).

    misc: (F, 3, S, S) frames in [0, 1]; motion: (F, 2, R, R) or None; style: (3, V, V) CLIP-normalised or
    None; image: (3, S, S) first frame from ``--image_path`` or None; sketch: (3, S, S) from ``--sketch_path``
    or None; mask: (S, S) or None; latent_hw: (R/8, R/8).
    """

    misc: np.ndarray | None
    motion: np.ndarray | None
    style: np.ndarray | None
    image: np.ndarray | None
    sketch_image: np.ndarray | None
    mask: np.ndarray | None
    latent_hw: tuple[int, int]
    fps: float = 8.0
    depth: np.ndarray | None = None


def prepare_inputs(cfg: VideoComposerConfig, *, video=None, image_path=None, style_image=None, sketch_path=None,
                   need_video: bool = True, need_motion: bool = False, need_mask: bool = False,
                   rng: np.random.Generator | None = None) -> Inputs:
    """Read and transform the files of one run (see the module docstring).

    Raises:
        MotionVectorError / ImageReadError: a missing or unreadable video or image, a video too short.
    """
    rng = rng or np.random.default_rng(cfg.seed)
    f = cfg.frames
    misc = motion = style = image = sketch = mask = None
    rate = float(cfg.feature_framerate)
    if need_video:
        if video is None:
            raise MotionVectorError("the config's guidances need a source video (--input_video)")
        mv: MotionVideo = extract_motion_vectors(video, fps=cfg.feature_framerate, min_frames=f)
        s = start_index(mv.frame_types, f, rng)
        frames = [Image.fromarray(a) for a in mv.frames[s:s + f]]
        misc = np.stack([misc_transform(fr, cfg.misc_size, rng) for fr in frames])  # a filter drawn per frame
        if need_motion:
            motion = resize_motion(mv.mvs[s:s + f], cfg.resolution)
        if not cfg.read_style:
            style = clip_image(frames[len(frames) // 2], cfg.vit_image_size, cfg.vit_mean, cfg.vit_std, False)
        rate = mv.fps
    if cfg.read_style and style_image:
        size = int(cfg.clip_model_cfg["vision_cfg"]["image_size"])  # open_clip's preprocess: the tower's size
        style = clip_image(load_image(style_image), size, cfg.vit_mean, cfg.vit_std, True)
    if cfg.read_image and image_path:
        image = misc_transform(load_image(image_path), cfg.misc_size, rng)
    if cfg.read_sketch and sketch_path:
        sketch = misc_transform(load_image(sketch_path), cfg.misc_size, rng)
    if need_mask:
        mask = random_mask(cfg.misc_size, rng)
    r = cfg.resolution // 8
    return Inputs(misc, motion, style, image, sketch, mask, (r, r), rate)
