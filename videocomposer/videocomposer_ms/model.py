"""Builders of the VideoComposer parts from a :class:`~.config.VideoComposerConfig` and their weights."""
from __future__ import annotations

from pathlib import Path

from common.clip import OpenCLIP, OpenCLIPConfig
from common.vae import AutoencoderKL

from .config import VideoComposerConfig
from .unet import UNetSDTemporal
from .weights import CLIP_RENAMES, UNET_RENAMES, VAE_RENAMES, load_into

#: the released file names (``model_weights/``).
UNET_FILE = "non_ema_228000.pth"
CLIP_FILE = "open_clip_pytorch_model.bin"
VAE_FILE = "v2-1_512-ema-pruned.ckpt"
MIDAS_FILE = "midas_v3_dpt_large.pth"
PIDINET_FILE = "table5_pidinet.pth"
SKETCH_FILE = "sketch_simplification_gan.pth"


def build_clip(cfg: VideoComposerConfig, weights: str | Path | None = None) -> OpenCLIP:
    """open_clip CLIP (text tower with ``cfg.clip_layer``, visual tower), eval mode."""
    clip = OpenCLIP(OpenCLIPConfig.from_dict(dict(cfg.clip_model_cfg), name="clip_model_cfg"),
                    text_transformer=True, layer=cfg.clip_layer)
    if weights is not None:
        load_into(clip, weights, CLIP_RENAMES, "OpenCLIP")
    clip.set_train(False)
    return clip


def build_vae(cfg: VideoComposerConfig, weights: str | Path | None = None) -> AutoencoderKL:
    """The LDM AutoencoderKL of ``cfg.ddconfig`` (embed_dim 4), eval mode."""
    vae = AutoencoderKL(dict(cfg.ddconfig), embed_dim=4)
    if weights is not None:
        load_into(vae, weights, VAE_RENAMES, "VAE")
    vae.set_train(False)
    return vae


def build_unet(cfg: VideoComposerConfig, weights: str | Path | None = None) -> UNetSDTemporal:
    """UNetSD_temporal with the encoders of ``cfg.video_compositions``, eval mode."""
    unet = UNetSDTemporal(cfg)
    if weights is not None:
        load_into(unet, weights, UNET_RENAMES, "UNet")
    unet.set_train(False)
    return unet
