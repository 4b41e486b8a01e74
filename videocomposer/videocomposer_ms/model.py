"""Builders of the VideoComposer parts from a :class:`~.config.VideoComposerConfig` and their weights."""
from __future__ import annotations

from pathlib import Path

from common.checkpoint import CheckpointMismatchError
from common.clip import OpenCLIP, OpenCLIPConfig
from common.vae import AutoencoderKL

from .conditions import COMPOSITION_TO_CONDITION, CONDITION_MODULES
from .config import VideoComposerConfig
from .unet import UNetSDTemporal
from .weights import CLIP_RENAMES, UNET_RENAMES, load_into, vae_renames

#: the released file names (``model_weights/``).
UNET_FILE = "non_ema_228000.pth"
CLIP_FILE = "open_clip_pytorch_model.bin"
VAE_FILE = "v2-1_512-ema-pruned.ckpt"
MIDAS_FILE = "midas_v3_dpt_large.pth"
PIDINET_FILE = "table5_pidinet.pth"
SKETCH_FILE = "sketch_simplification_gan.pth"


def _lacking_conditions(report) -> list[str]:
    """The ``video_compositions`` names whose encoders are missing from a UNet file (from a load report)."""
    if report is None:
        return []
    prefixes = {stack: comp for comp, cond in COMPOSITION_TO_CONDITION.items()
                for stack in CONDITION_MODULES[cond][:2]}
    found = []
    for key in report.missing:
        comp = prefixes.get(key.split(".")[0])
        if comp and comp not in found:
            found.append(comp)
    return found


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
        load_into(vae, weights, vae_renames, "VAE")
    vae.set_train(False)
    return vae


def build_unet(cfg: VideoComposerConfig, weights: str | Path | None = None) -> UNetSDTemporal:
    """UNetSD_temporal with the encoders of ``cfg.video_compositions``, eval mode."""
    unet = UNetSDTemporal(cfg)
    if weights is not None:
        try:
            load_into(unet, weights, UNET_RENAMES, "UNet")
        except CheckpointMismatchError as e:
            lacking = _lacking_conditions(e.report)
            if lacking:
                raise CheckpointMismatchError(
                    f"the UNet weights lack the condition encoder(s) {', '.join(lacking)} that video_compositions "
                    f"names ({weights}); remove them from the config's video_compositions and guidances",
                    e.report) from None
            raise
    unet.set_train(False)
    return unet


def build_midas(cfg: VideoComposerConfig, weights: str | Path | None = None):
    """MiDaS DPT of ``cfg.midas_cfg``, eval mode."""
    from .midas import MiDaS, midas_config
    from .weights import MIDAS_RENAMES

    net = MiDaS(midas_config(dict(cfg.midas_cfg)))
    if weights is not None:
        load_into(net, weights, MIDAS_RENAMES, "MiDaS")
    net.set_train(False)
    return net


def build_sketch(cfg: VideoComposerConfig, pidinet_weights: str | Path | None = None,
                 cleaner_weights: str | Path | None = None):
    """:class:`~.sketch.SketchExtractor` (PiDiNet of ``cfg.pidinet_cfg`` + the simplification GAN), eval mode."""
    from functools import partial

    from .sketch import PiDiNet, SketchExtractor, SketchSimplification, convert_pidinet, pidinet_config
    from .weights import PIDINET_RENAMES, SKETCH_RENAMES

    pcfg = pidinet_config(dict(cfg.pidinet_cfg))
    pidinet = PiDiNet(pcfg)
    cleaner = SketchSimplification(cfg.sketch_simplification_channels)
    if pidinet_weights is not None:
        load_into(pidinet, pidinet_weights, PIDINET_RENAMES, "PiDiNet", convert=partial(convert_pidinet,
                                                                                       config=pcfg.config))
    if cleaner_weights is not None:
        load_into(cleaner, cleaner_weights, SKETCH_RENAMES, "sketch simplification")
    net = SketchExtractor(pidinet, cleaner, cfg.sketch_mean, cfg.sketch_std)
    net.set_train(False)
    return net
