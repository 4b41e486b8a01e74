"""SVD's conditioner (sgm ``GeneralConditioner`` with the five embedders of the release).

Index (config order) -> embedder -> output:

* 0 ``FrozenOpenCLIPImagePredictionEmbedder`` on the clean image: kornia bicubic antialias resize
  to 224, CLIP normalisation, open_clip ViT pooled + projected -> ``crossattn`` (B, 1, D).
* 1, 2, 4 ``ConcatTimestepEmbedderND`` on fps_id, motion_bucket_id, cond_aug: sinusoidal
  ``[cos, sin]`` embeddings of width ``outdim``, concatenated in config order -> ``vector`` (N, A).
* 3 ``VideoPredictionEmbedderWithEncoder`` on the noise-augmented image ``image + cond_aug*noise``:
  its own ``AutoencoderKLModeOnly`` (encoder -> quant_conv -> posterior mean), times the
  embedder's scale factor (1.0: NOT 0.18215) -> ``concat`` (B, 4, h, w).

Parameter names follow the state dict: ``conditioner.embedders.0.open_clip.model.visual.*`` and
``conditioner.embedders.3.encoder.{encoder,quant_conv}.*``. The unused leftovers of the release
(text-tower parameters, the conditioner autoencoder's decoder) are not built.
"""
from __future__ import annotations

from pathlib import Path

import mindspore as ms
from mindspore import nn, ops

from common.clip.archs import OpenCLIPConfig, load_open_clip_config
from common.clip.open_clip import OpenCLIPVisionTower
from common.clip.preprocess import clip_preprocess
from common.nn import conv2d, timestep_embedding
from common.vae import DDConfig, Encoder

from .config import AutoencoderDDConfig, ConditionerConfig


class ConcatTimestepEmbedderND(nn.Cell):
    """Sinusoidal embedding of each column of a (N,) or (N, d) input, concatenated: (N, d*outdim).

    ``timestep_embedding(v, outdim) = [cos(v f_i), sin(v f_i)]``, ``f_i = exp(-ln(10000) i / (outdim/2))``.
    """

    def __init__(self, outdim: int):
        super().__init__()
        self.outdim = outdim

    def construct(self, x):
        if x.ndim == 1:
            x = x.reshape(-1, 1)
        n, d = x.shape
        emb = timestep_embedding(x.reshape(-1), self.outdim)  # (n*d, outdim)
        return emb.reshape(n, d * self.outdim)


class _CLIPVisual(nn.Cell):
    """open_clip ``CLIP`` after ``del model.transformer``, reduced to what SVD runs: ``visual``."""

    def __init__(self, cfg: OpenCLIPConfig):
        super().__init__()
        self.visual = OpenCLIPVisionTower(cfg)


class OpenCLIPImageEmbedder(nn.Cell):
    """sgm ``FrozenOpenCLIPImageEmbedder``: images in [-1, 1] (B, 3, H, W) -> (B, embed_dim).

    Args:
        cfg: open_clip model config (ViT-H-14 for the release).
        antialias: kornia's antialias flag of the 224x224 bicubic resize (True).
    """

    def __init__(self, cfg: OpenCLIPConfig, antialias: bool = True):
        super().__init__()
        self.model = _CLIPVisual(cfg)
        self.antialias = antialias
        self.image_size = self.model.visual.image_size

    def construct(self, image):
        pixels = clip_preprocess(image, size=self.image_size, antialias=self.antialias)
        return self.model.visual.encode_image(pixels)


class ImagePredictionEmbedder(nn.Cell):
    """sgm ``FrozenOpenCLIPImagePredictionEmbedder`` (n_cond_frames = n_copies = 1): (B, 1, embed_dim)."""

    def __init__(self, cfg: OpenCLIPConfig, antialias: bool = True):
        super().__init__()
        self.open_clip = OpenCLIPImageEmbedder(cfg, antialias)

    def construct(self, image):
        z = self.open_clip(image)  # (B, D)
        return z.reshape(z.shape[0], 1, z.shape[1])


class _AutoencoderModeOnly(nn.Cell):
    """sgm ``AutoencoderKLModeOnly`` restricted to encoding: ``encoder`` -> ``quant_conv`` -> mean."""

    def __init__(self, ddconfig: AutoencoderDDConfig, embed_dim: int):
        super().__init__()
        dd = DDConfig.read(ddconfig)
        self.encoder = Encoder(dd)
        self.quant_conv = conv2d(2 * dd.z_channels, 2 * embed_dim, 1)

    def construct(self, x):
        moments = self.quant_conv(self.encoder(x))  # (B, 2*embed, h, w)
        return ops.chunk(moments, 2, axis=1)[0]


class ImageLatentEmbedder(nn.Cell):
    """sgm ``VideoPredictionEmbedderWithEncoder`` (is_ae, n_cond_frames = n_copies = 1).

    Args:
        ddconfig / embed_dim: the conditioner autoencoder's config.
        scale_factor: multiplies the posterior mean (release: 1.0).
    """

    def __init__(self, ddconfig: AutoencoderDDConfig, embed_dim: int, scale_factor: float = 1.0):
        super().__init__()
        self.encoder = _AutoencoderModeOnly(ddconfig, embed_dim)
        self.scale_factor = scale_factor

    def construct(self, image):
        return self.encoder(image) * self.scale_factor  # (B, embed_dim, h, w)


class Conditioner(nn.Cell):
    """The SVD ``GeneralConditioner`` (``conditioner.embedders.N``), built from a :class:`ConditionerConfig`.

    Args:
        cfg: the parsed conditioner config.
        clip_config: open_clip config of the image encoder (default: resolved from ``cfg.image.arch``
            in ``search_dirs`` and the built-in archs).
        search_dirs: folders searched for ``<arch>.json`` (the config file's folder).
    """

    def __init__(self, cfg: ConditionerConfig, clip_config: OpenCLIPConfig | None = None, search_dirs=()):
        super().__init__()
        self.cfg = cfg
        if clip_config is None:
            clip_config = load_open_clip_config(cfg.image.arch, search_dirs=tuple(Path(d) for d in search_dirs))
        self.clip_config = clip_config
        n = 1 + max([cfg.image_index, cfg.encoder_index] + list(cfg.vector_indices))
        cells = [None] * n
        cells[cfg.image_index] = ImagePredictionEmbedder(clip_config, cfg.image.antialias)
        cells[cfg.encoder_index] = ImageLatentEmbedder(cfg.encoder, cfg.encoder_embed_dim, cfg.encoder_scale_factor)
        for i, d in zip(cfg.vector_indices, cfg.vector_outdims):
            cells[i] = ConcatTimestepEmbedderND(d)
        self.embedders = nn.CellList(cells)
        self.vector_dim = sum(cfg.vector_outdims)

    @property
    def embed_dim(self) -> int:
        """Width D of the image embedding (= the UNet's context_dim)."""
        return self.clip_config.embed_dim

    def image_embedding(self, image):
        """Clean image (B, 3, H, W) in [-1, 1] -> ``crossattn`` (B, 1, D)."""
        return self.embedders[self.cfg.image_index](image)

    def cond_latent(self, cond_frames):
        """Noise-augmented image ``image + cond_aug*noise`` (B, 3, H, W) -> ``concat`` (B, 4, H/8, W/8)."""
        return self.embedders[self.cfg.encoder_index](cond_frames)

    def vector(self, values: dict):
        """``{fps_id, motion_bucket_id, cond_aug}`` -> (N, A): each (N,) value embedded, in config order."""
        missing = [k for k in self.cfg.vector_keys if k not in values]
        if missing:
            raise ValueError(f"conditioner.vector: missing values for {missing} (needs {self.cfg.vector_keys})")
        embs = []
        for i, key in zip(self.cfg.vector_indices, self.cfg.vector_keys):
            v = values[key]
            v = v if isinstance(v, ms.Tensor) else ms.Tensor(v, ms.float32)
            embs.append(self.embedders[i](v.astype(ms.float32)))
        return ops.concat(embs, axis=1)

    def get_conditioning(self, image, cond_frames, num_frames: int, fps_id: float, motion_bucket_id: float,
                         cond_aug: float):
        """Conditional and unconditional inputs of the sampler for one video per image.

        Args:
            image: clean image (B, 3, H, W) in [-1, 1] (``cond_frames_without_noise``).
            cond_frames: ``image + cond_aug * noise`` (``cond_frames``).
            num_frames: T; crossattn / concat are repeated over the T frames, vector is per frame.
            fps_id / motion_bucket_id / cond_aug: the micro-conditioning values.
        Returns:
            (c, uc): dicts with ``crossattn`` (B*T, 1, D), ``vector`` (B*T, A), ``concat`` (B*T, 4, h, w);
            ``uc`` has zero crossattn / concat and the same vector.
        """
        b = image.shape[0]
        crossattn = self.image_embedding(image)
        concat = self.cond_latent(cond_frames)
        vals = {"fps_id": fps_id, "motion_bucket_id": motion_bucket_id, "cond_aug": cond_aug}
        unknown = [k for k in self.cfg.vector_keys if k not in vals]
        if unknown:
            raise ValueError(f"conditioner: embedder input keys {unknown} are not SVD micro-conditions "
                             "(fps_id, motion_bucket_id, cond_aug)")
        vec = self.vector({k: ops.full((b * num_frames,), float(vals[k]), dtype=ms.float32)
                           for k in self.cfg.vector_keys})
        crossattn = ops.repeat_interleave(crossattn, num_frames, 0)  # (B*T, 1, D)
        concat = ops.repeat_interleave(concat, num_frames, 0)  # (B*T, 4, h, w)
        c = {"crossattn": crossattn, "vector": vec, "concat": concat}
        uc = {"crossattn": ops.zeros_like(crossattn), "vector": vec, "concat": ops.zeros_like(concat)}
        return c, uc

