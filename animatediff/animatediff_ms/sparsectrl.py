"""SparseCtrl inputs as ``scripts/animate.py`` and ``AnimationPipeline`` prepare them, and the controlnet's
checkpoint.

* :func:`load_condition_images`: the prompt entry's ``controlnet_images`` -> ``(1, 3, n, H, W)`` in [0, 1]
  (``RandomResizedCrop((H, W), scale=(1, 1), ratio=(W/H, W/H))`` -- deterministic, see there -- then
  ``ToTensor``, optionally ``normalize_condition_images``);
* :func:`encode_condition_images`: the RGB controlnet's condition, VAE latents ``(1, 4, n, H/8, W/8)``
  (``vae.encode(x * 2 - 1).latent_dist.sample() * 0.18215``, with the BASE model's VAE);
* :func:`make_condition`: ``cond`` ``(1, C, L, ., .)`` with image k at frame ``index[k]`` and zeros elsewhere,
  and the 0/1 ``mask`` ``(1, 1, L, ., .)``;
* :func:`check_condition`: the checks the original asserts (and a few it would fail on later), one line each;
* :func:`build_controlnet`: the controlnet from the UNet's config and a ``controlnet_config`` yaml, with the
  released ``v3_sd15_sparsectrl_{rgb,scribble}.ckpt`` loaded strictly (every key, none left over).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mindspore.nn.utils import no_init_parameters

from common.checkpoint import load_state_dict_into, match_state_dict
from common.vae import SD_SCALE_FACTOR

from .config import ConfigError, ControlNetInferenceConfig, SparseControlNetKwargs, UNet3DConfig
from .loading import WeightsError, read_weights
from .models import SparseControlNetModel

#: the released controlnet configs by kind (this folder's copies of the original's).
KIND_CONFIGS = {"rgb": "configs/inference/sparsectrl/latent_condition.yaml",
                "scribble": "configs/inference/sparsectrl/image_condition.yaml"}


# ----------------------------------------------------------------------------------------- condition images
def crop_box(width: int, height: int, out_h: int, out_w: int) -> tuple[int, int, int, int]:
    """The ``(top, left, h, w)`` crop of torchvision's ``RandomResizedCrop.get_params`` with ``scale=(1, 1)``
    and ``ratio=(out_w/out_h,) * 2``: every attempt asks for the whole area at that aspect, which fits only
    when the (rounded) size fits in the image; then the offset is a random draw in ``[0, slack]``, here 0 (the
    slack is at most a rounding pixel). Otherwise the central crop of the largest region of that aspect."""
    r = np.float32(out_w) / np.float32(out_h)
    ar = float(np.exp(np.log(np.float32(r), dtype=np.float32), dtype=np.float32))  # torch: exp(log(r)) in float32
    area = float(width * height)
    w, h = int(round(math.sqrt(area * ar))), int(round(math.sqrt(area / ar)))
    if 0 < w <= width and 0 < h <= height:
        return 0, 0, h, w
    in_ratio = float(width) / float(height)
    if in_ratio < float(r):
        w, h = width, int(round(width / float(r)))
    elif in_ratio > float(r):
        w, h = int(round(height * float(r))), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def load_condition_image(path, height: int, width: int, normalize: bool = False) -> np.ndarray:
    """One condition image -> ``(3, H, W)`` float32 in [0, 1]: RGB, crop (:func:`crop_box`), PIL bilinear
    (antialiased) resize, ``/ 255``; with ``normalize`` the channel mean repeated 3x, minus its minimum, divided
    by its maximum (``normalize_condition_images``)."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        top, left, h, w = crop_box(im.width, im.height, height, width)
        im = im.crop((left, top, left + w, top + h)).resize((width, height), Image.BILINEAR)
        x = np.asarray(im, dtype=np.float32).transpose(2, 0, 1) / np.float32(255.0)  # (3, H, W)
    if normalize:
        g = x.mean(axis=0, keepdims=True, dtype=np.float32)
        g = g - g.min()
        g = g / g.max()  # a constant image gives NaN, as in the original
        x = np.repeat(g, 3, axis=0)
    return np.ascontiguousarray(x, dtype=np.float32)


def load_condition_images(paths, height: int, width: int, normalize: bool = False) -> np.ndarray:
    """``controlnet_images`` -> ``(1, 3, n, H, W)`` (channels before frames)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    frames = [load_condition_image(p, height, width, normalize) for p in paths]
    return np.stack(frames, axis=1)[None]


def encode_condition_images(vae, images, noise=None, seed: int | None = None,
                            scale_factor: float = SD_SCALE_FACTOR) -> np.ndarray:
    """RGB SparseCtrl condition: ``(1, 3, n, H, W)`` in [0, 1] -> VAE posterior samples ``(1, 4, n, H/8, W/8)``.

    ``noise`` ``(n, 4, h, w)``: the posterior draws (the original takes them from torch's global generator
    before seeding, so they are not reproducible there); when None they are drawn from ``seed`` (numpy).
    """
    import mindspore as ms

    x = np.asarray(images, np.float32)
    b, c, n, hh, ww = x.shape
    frames = ms.Tensor(np.ascontiguousarray(x.transpose(0, 2, 1, 3, 4).reshape(b * n, c, hh, ww)) * 2.0 - 1.0)
    z = vae.encode_frames(frames, noise, generator=seed, scale_factor=scale_factor).asnumpy()  # (b*n, 4, h, w)
    return np.ascontiguousarray(z.reshape(b, n, *z.shape[1:]).transpose(0, 2, 1, 3, 4))


# ----------------------------------------------------------------------------------------- cond / mask
def check_condition(num_images: int, index, video_length: int, where: str = "controlnet_image_indexs") -> list[int]:
    """The frame index list, validated against the number of images and the video length.

    Raises ConfigError (one line) for: a non-integer index, an index outside ``[-L, L)`` (python indexing, -1 =
    last frame), fewer images than indices (the original asserts), more images than frames (asserted too).
    Extra images beyond ``len(index)`` are allowed and unused, as in the original.
    """
    if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
        index = [int(index)]
    if not isinstance(index, (list, tuple)) or not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool)
                                                        for i in index):
        raise ConfigError(f"{where}: expected a list of frame indices, got {index!r}")
    index = [int(i) for i in index]
    if num_images > video_length:
        raise ConfigError(f"controlnet_images: {num_images} condition images for a video of L={video_length} frames "
                          f"(at most one per frame)")
    if num_images < len(index):
        raise ConfigError(f"{where}: {len(index)} frame indices but only {num_images} controlnet_images "
                          f"(one image per index)")
    bad = [i for i in index if not -video_length <= i < video_length]
    if bad:
        raise ConfigError(f"{where}: index {bad[0]} is outside the video of L={video_length} frames "
                          f"(0..{video_length - 1}, or -{video_length}..-1 from the end)")
    return index


def make_condition(images, index, video_length: int) -> tuple[np.ndarray, np.ndarray]:
    """``AnimationPipeline.__call__``'s controlnet input: ``cond = zeros(1, C, L, h, w)``,
    ``cond[:, :, index] = images[:, :, :len(index)]``, ``mask = zeros(1, 1, L, h, w)``, ``mask[:, :, index] = 1``."""
    images = np.asarray(images, np.float32)
    index = check_condition(images.shape[2], index, video_length)
    shape = list(images.shape)
    shape[2] = video_length
    cond = np.zeros(shape, np.float32)
    mask = np.zeros([shape[0], 1] + shape[2:], np.float32)
    for k, i in enumerate(index):  # in order: a repeated frame keeps the last image, as torch's index_put
        cond[:, :, i] = images[:, :, k]
        mask[:, :, i] = 1.0
    return cond, mask


@dataclass
class SparseCondition:
    """A prompt entry's prepared condition: ``images`` as the pipeline takes them (RGB: latents; scribble:
    pixels), ``index`` (``controlnet_image_indexs``), ``pixels`` (the loaded images, ``(1, 3, n, H, W)``)."""

    images: np.ndarray
    index: list
    pixels: np.ndarray

    def kwargs(self) -> dict:
        """Keyword arguments of :class:`~animatediff_ms.pipeline.AnimationPipeline` ``__call__``."""
        return {"controlnet_images": self.images, "controlnet_image_index": list(self.index)}


def prepare_condition(entry, vae, controlnet, height: int, width: int, seed: int | None = None,
                      log=print) -> SparseCondition:
    """``scripts/animate.py``'s condition for one prompt entry: the images loaded at ``height`` x ``width``
    (optionally normalised) and, for the RGB controlnet, encoded by ``vae`` -- which must be the BASE model's VAE
    (the original encodes before ``load_weights`` replaces it with a DreamBooth file's). The posterior noise is
    drawn from ``seed`` (numpy; None = fresh), where the original takes it unseeded from torch's generator."""
    say = log or (lambda *_: None)
    say("controlnet image paths:\n" + "\n".join(str(p) for p in entry.controlnet_images))
    pixels = load_condition_images(entry.controlnet_images, height, width, entry.normalize_condition_images)
    images = pixels
    if controlnet.cfg.use_simplified_condition_embedding:
        if controlnet.cfg.conditioning_channels != vae.embed_dim:
            raise ConfigError(f"controlnet_config: conditioning_channels {controlnet.cfg.conditioning_channels} but the "
                              f"VAE has {vae.embed_dim} latent channels (the RGB controlnet takes VAE latents)")
        images = encode_condition_images(vae, pixels, seed=seed)
    return SparseCondition(images, list(entry.controlnet_image_indexs), pixels)


def save_condition_images(pixels, folder, prefix: str = "") -> list[Path]:
    """``<savedir>/control_images/<prefix><i>.png`` as the original writes them (``uint8(255 * x)``)."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(pixels.shape[2]):
        img = (255.0 * pixels[0, :, i].transpose(1, 2, 0)).astype(np.uint8)
        out.append(folder / f"{prefix}{i}.png")
        Image.fromarray(img).save(out[-1])
    return out


# ----------------------------------------------------------------------------------------- checkpoint
def controlnet_state_dict(path, what: str = "controlnet_path") -> dict:
    """A released SparseCtrl checkpoint's tensors: ``{"controlnet": {...}}`` unwrapped, the ``pos_encoder.pe``
    tables (recomputed) and an ``animatediff_config`` entry dropped, as ``scripts/animate.py`` does."""
    sd = read_weights(path, what, wrappers=("controlnet",))
    return {k: v for k, v in sd.items() if "pos_encoder.pe" not in k and k != "animatediff_config"}


def checkpoint_kind(sd: dict) -> str | None:
    """``"rgb"`` (one-conv condition embedding), ``"scribble"`` (conv stack) or None (no embedding keys)."""
    if "controlnet_cond_embedding.weight" in sd:
        return "rgb"
    if any(k.startswith("controlnet_cond_embedding.conv_in.") for k in sd):
        return "scribble"
    return None


def check_checkpoint_kind(sd: dict, cfg: SparseControlNetKwargs, name: str, config_name: str,
                          what: str = "controlnet_path") -> None:
    """One line when the file's condition embedding is of the other kind than ``controlnet_config`` describes."""
    kind = checkpoint_kind(sd)
    if kind is None:
        raise WeightsError(f"{what}: {name} has no 'controlnet_cond_embedding' keys -- not a SparseCtrl checkpoint")
    if kind != cfg.kind:
        other = "latent_condition.yaml (use_simplified_condition_embedding: true)" if kind == "rgb" else \
            "image_condition.yaml (use_simplified_condition_embedding: false)"
        raise WeightsError(f"{what}: {name} is a SparseCtrl {kind} checkpoint but controlnet_config {config_name} "
                           f"describes the {cfg.kind} kind; use {other}")
    w = sd.get("controlnet_cond_embedding.weight", sd.get("controlnet_cond_embedding.conv_in.weight"))
    want = cfg.conditioning_channels + (1 if cfg.concate_conditioning_mask else 0)
    if w is not None and len(w.shape) == 4 and w.shape[1] != want:
        raise WeightsError(f"{what}: {name} takes {w.shape[1]} condition channels but controlnet_config {config_name} "
                           f"gives {want} (conditioning_channels + mask)")


def build_controlnet(unet_cfg: UNet3DConfig, controlnet_config, path=None, num_attention_heads=8,
                     what: str = "controlnet_path") -> SparseControlNetModel:
    """``SparseControlNetModel.from_unet`` + strict checkpoint load, as ``scripts/animate.py``.

    Args:
        unet_cfg: the UNet's config (sizes). controlnet_config: a ``ControlNetInferenceConfig``, a
            ``SparseControlNetKwargs`` or the yaml's path. path: the checkpoint (None: weights stay uninitialised
            until first use -- for a random model call ``init_random`` below).
        num_attention_heads: the mid block's heads (8, as animate.py forces).
    The UNet's 2-D weights that ``from_unet`` copies are all overwritten by the strict load, so they are not copied.
    """
    if isinstance(controlnet_config, (str, Path)):
        controlnet_config = ControlNetInferenceConfig.load(controlnet_config)
    cfg_name = Path(getattr(controlnet_config, "path", "") or "controlnet_config").name
    kw = getattr(controlnet_config, "controlnet_additional_kwargs", controlnet_config)
    sd = None
    if path is not None:
        sd = controlnet_state_dict(path, what)
        check_checkpoint_kind(sd, kw, Path(path).name, cfg_name, what)
    with no_init_parameters():
        net = SparseControlNetModel(unet_cfg, kw, num_attention_heads)
    if sd is not None:
        match_state_dict(net, sd)[1].check(f"{what}: {Path(path).name}")
        load_state_dict_into(net, sd, source=f"{what}: {Path(path).name}")
    return net


def init_random(net, seed: int = 0, std: float = 0.05) -> None:
    """Random weights for a demo / test controlnet (the zero-initialised output convs too, so it acts)."""
    import mindspore as ms

    rng = np.random.default_rng(seed)
    for name, p in net.parameters_and_names():
        if name.endswith("norm.weight") or ".norm" in name and name.endswith(".weight"):
            v = 1.0 + 0.1 * rng.standard_normal(p.shape)
        elif name.endswith(".bias"):
            v = 0.02 * rng.standard_normal(p.shape)
        else:
            fan_in = int(np.prod(p.shape[1:])) if len(p.shape) > 1 else 1
            v = rng.standard_normal(p.shape) / np.sqrt(max(fan_in, 1))
        p.set_data(ms.Tensor(np.asarray(v, np.float32)))
