"""The whole SVD model (sgm ``DiffusionEngine`` for image-to-video), built from the original YAML.

Cells and their state-dict prefixes:

* ``model.diffusion_model``: :class:`~svd_ms.video_unet.VideoUNet`.
* ``conditioner``: :class:`~svd_ms.conditioner.Conditioner` (CLIP image embedder, the conditioner's
  image encoder, the micro-condition embedders).
* ``first_stage_model``: :class:`~svd_ms.temporal_vae.VideoAutoencoder` (2-D encoder, temporal decoder;
  the ``*_image_decoder`` releases: the 2-D LDM ``AutoencoderKL``).

``model.denoiser`` (:class:`~svd_ms.denoiser.Denoiser`) wraps the UNet without renaming its
parameters; it is what the sampler calls (and what ``ms.jit`` compiles in graph mode).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from mindspore import nn

from common.config import ConfigError
from common.vae import AutoencoderKL

from .conditioner import Conditioner
from .config import SVDConfig, load_svd_config
from .denoiser import Denoiser
from .temporal_vae import VideoAutoencoder
from .video_unet import VideoUNet, temporal_parameter_names


class _DiffusionWrapper(nn.Cell):
    """sgm ``OpenAIWrapper``: holds the UNet as ``diffusion_model``."""

    def __init__(self, unet: VideoUNet):
        super().__init__()
        self.diffusion_model = unet


def _check_first_stage(cfg: SVDConfig) -> None:
    enc = dataclasses.asdict(cfg.first_stage_encoder)
    dec = dataclasses.asdict(cfg.first_stage)
    keys = ("ch", "ch_mult", "num_res_blocks", "z_channels", "double_z", "in_channels", "out_ch",
            "attn_resolutions", "resolution")
    diff = [k for k in keys if enc[k] != dec[k]]
    if diff:
        raise ConfigError(f"{cfg.source}: first_stage_config encoder and decoder ddconfigs differ in {diff}; "
                             "this port builds both from one ddconfig")


class SVDModel(nn.Cell):
    """Stable Video Diffusion (SVD / SVD-XT / SVD-XT-1.1) from an :class:`~svd_ms.config.SVDConfig`.

    Args:
        cfg: parsed config (see :func:`from_config_file`).
        clip_config: open_clip config of the image encoder (default: resolved from the config's
            ``arch`` in ``search_dirs`` / the built-in archs).
        search_dirs: folders searched for ``<arch>.json``.
    """

    def __init__(self, cfg: SVDConfig, clip_config=None, search_dirs=()):
        super().__init__()
        self.cfg = cfg
        _check_first_stage(cfg)
        self.model = _DiffusionWrapper(VideoUNet(cfg.unet))
        self.conditioner = Conditioner(cfg.conditioner, clip_config, search_dirs)
        if self.conditioner.embed_dim != cfg.unet.context_dim:
            raise ConfigError(f"{cfg.source}: the image embedder's embed_dim {self.conditioner.embed_dim} != "
                                 f"network_config.context_dim {cfg.unet.context_dim}")
        if cfg.unet.adm_in_channels is not None and self.conditioner.vector_dim != cfg.unet.adm_in_channels:
            raise ConfigError(f"{cfg.source}: the vector embedders give {self.conditioner.vector_dim} channels, "
                                 f"network_config.adm_in_channels is {cfg.unet.adm_in_channels}")
        if cfg.first_stage_kind == "video":
            self.first_stage_model = VideoAutoencoder(cfg.first_stage)
        else:
            self.first_stage_model = AutoencoderKL(cfg.first_stage, cfg.first_stage_embed_dim)
        # not a child cell: the parameters keep their `model.diffusion_model.*` names
        object.__setattr__(self, "denoiser", Denoiser(self.model.diffusion_model))

    @classmethod
    def from_config_file(cls, path, clip_config=None) -> SVDModel:
        """Build from an original YAML (``configs/svd.yaml``); ``<arch>.json`` is looked up beside it."""
        path = Path(path)
        return cls(load_svd_config(path), clip_config, search_dirs=(path.parent,))

    @property
    def unet(self) -> VideoUNet:
        return self.model.diffusion_model

    @property
    def scale_factor(self) -> float:
        """Latent scale of the first stage (0.18215)."""
        return self.cfg.scale_factor

    @property
    def latent_channels(self) -> int:
        return self.cfg.unet.out_channels

    @property
    def downscale(self) -> int:
        """Pixels per latent along H and W (8)."""
        return self.first_stage_model.downscale

    def temporal_parameters(self) -> list:
        """The UNet's temporal parameters (``time_stack``, ``time_mixer``, ``time_pos_embed``)."""
        names = set(temporal_parameter_names(self.unet))
        return [p for p in self.unet.get_parameters() if p.name in names]

    def decode_latents(self, z, decode_chunk_size: int | None = None):
        """Scaled latents (T, 4, h, w) -> frames (T, 3, H, W) in about [-1, 1], ``decode_chunk_size`` frames a
        time (None = all at once); each chunk's temporal layers see only that chunk."""
        return self.first_stage_model.decode_frames(z, self.scale_factor, decode_chunk_size)

    def encode_frames(self, frames, noise=None, sample: bool = True, chunk_size: int | None = None):
        """Frames (N, 3, H, W) in [-1, 1] -> scaled latents (first_stage_model.encoder, posterior sample)."""
        return self.first_stage_model.encode_frames(frames, noise, sample=sample, chunk_size=chunk_size,
                                                    scale_factor=self.scale_factor)


def load_svd_model(config_path, checkpoint=None, clip_config=None, allow_partial: bool = False):
    """Build an :class:`SVDModel` from an original YAML and, if given, load a checkpoint into it.

    With a checkpoint the parameters are created uninitialised (``mindspore.nn.utils.no_init_parameters``)
    and filled from the file, so random weights are never allocated. Every checkpoint key is
    accounted for by :data:`svd_ms.weights.RENAME_TABLE` (else CheckpointMismatchError names the keys).

    Args:
        config_path: ``configs/svd.yaml`` etc. (``<arch>.json`` of a custom image encoder beside it).
        checkpoint: released ``.safetensors`` / ``.ckpt`` or a file written by ``tools/convert_weight.py``;
            None = random weights.
        clip_config: open_clip config override.
        allow_partial: load what matches (reporting the rest) instead of raising.
    Returns:
        (model, LoadReport or None).
    """
    from mindspore.nn.utils import no_init_parameters

    from .weights import load_svd_weights

    if checkpoint is None:
        return SVDModel.from_config_file(config_path, clip_config), None
    with no_init_parameters():
        model = SVDModel.from_config_file(config_path, clip_config)
    report = load_svd_weights(model, checkpoint, allow_partial=allow_partial)
    if report.missing:  # partial load: give the parameters left out their initial values
        model.init_parameters_data()
    return model, report
