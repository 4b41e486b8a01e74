"""The whole DynamiCrafter model (``lvdm.models.ddpm3d.LatentVisualDiffusion`` at inference).

Children and their checkpoint prefixes (the released ``state_dict`` keys, unchanged):

    model.diffusion_model.*   UNetModel (3D UNet denoiser)
    first_stage_model.*       AutoencoderKL (common.vae)
    cond_stage_model.model.*  open_clip text tower (FrozenOpenCLIPEmbedder: CLIP without ``visual``)
    embedder.model.*          open_clip CLIP without the text ``transformer`` (FrozenOpenCLIPImageEmbedderV2)
    image_proj_model.*        Resampler
    betas, alphas_cumprod, ... (12 DDPM schedule buffers) and ``scale_arr`` (dynamic rescale models)

The schedule buffers are non-trainable parameters computed from the config exactly as the
original (float64, cast to float32); a checkpoint overwrites them with its own copy, and the
sampler reads them from here (as the original reads ``model.alphas_cumprod``).
"""
from __future__ import annotations

from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import Parameter, nn, ops

from common.clip import OpenCLIP, OpenCLIPTextTower, clip_preprocess, load_open_clip_config
from common.clip.tokenizer import SimpleTokenizer
from common.config import ConfigError, join
from common.nn import GroupNorm, LayerNorm
from common.vae import AutoencoderKL

from .config import DynamiCrafterConfig
from .resampler import Resampler
from .schedule import ddpm_buffers
from .unet import UNetModel


class DiffusionWrapper(nn.Cell):
    """``model.diffusion_model``: the UNet with ``hybrid`` conditioning (latent concat + cross-attention)."""

    def __init__(self, unet: UNetModel):
        super().__init__()
        self.diffusion_model = unet
        self.compute_dtype = ms.float32

    def set_dtype(self, dtype) -> None:
        """Run the UNet in ``dtype`` (float32 / float16 / bfloat16): its parameters are cast once;
        inputs are cast on the way in and the output back to float32. Norms and softmax stay float32."""
        for _, cell in self.diffusion_model.cells_and_names():
            if isinstance(cell, (GroupNorm, LayerNorm)):
                continue  # norms compute in float32 with float32 affine parameters
            for p in cell.get_parameters(expand=False):
                p.set_dtype(dtype)
        self.compute_dtype = dtype

    def construct(self, x, t, c_concat, context, fs):
        # x (b, 4, t, h, w), c_concat (b, 4, t, h, w) -> UNet input (b, 8, t, h, w)
        xc = ops.concat([x, c_concat], axis=1).astype(self.compute_dtype)
        out = self.diffusion_model(xc, t, context.astype(self.compute_dtype), fs)
        return out.astype(ms.float32)


class FrozenOpenCLIPEmbedder(nn.Cell):
    """Text conditioning: ``tokenize`` then ``model.encode_with_transformer`` (layer last/penultimate).

    Args: clip_cfg (OpenCLIPConfig); layer ("last" | "penultimate"); tokenizer (SimpleTokenizer,
    default: open_clip's vocabulary shipped with common.clip).
    """

    def __init__(self, clip_cfg, layer: str = "last", tokenizer: SimpleTokenizer | None = None):
        super().__init__()
        self.model = OpenCLIPTextTower(clip_cfg, layer=layer)
        self.tokenizer = tokenizer or SimpleTokenizer()
        self.context_length = clip_cfg.text_cfg.context_length

    def tokenize(self, prompts) -> np.ndarray:
        """list of str -> int64 (N, 77) ids (open_clip semantics)."""
        return self.tokenizer(list(prompts), context_length=self.context_length)

    def encode_tokens(self, tokens):
        """(N, 77) int ids -> (N, 77, width) context."""
        return self.model.encode_with_transformer(ms.Tensor(np.asarray(tokens), ms.int32)
                                                  if not isinstance(tokens, ms.Tensor) else tokens)

    def construct(self, tokens):
        return self.model.encode_with_transformer(tokens)


class FrozenOpenCLIPImageEmbedderV2(nn.Cell):
    """Image conditioning: kornia-style bicubic resize to the ViT size (antialias), CLIP normalisation,
    then every token of the ViT's last block (no ``ln_post`` / ``proj``): (B, 1 + grid^2, width)."""

    def __init__(self, clip_cfg, antialias: bool = True):
        super().__init__()
        self.model = OpenCLIP(clip_cfg, text_transformer=False)
        self.antialias = antialias
        size = clip_cfg.vision_cfg.image_size
        self.image_size = (size, size) if isinstance(size, int) else tuple(size)

    def construct(self, image):
        # image (B, 3, H, W) in [-1, 1]
        pixels = clip_preprocess(image, size=self.image_size, antialias=self.antialias)
        return self.model.visual.forward_tokens(pixels)


def image_latent_condition(z, key_frames: bool = False, index: int = 0):
    """The ``c_concat`` latent from the video latent ``z`` (B, 4, T, h, w).

    ``key_frames`` (``--interp`` / ``--loop``, training ``interp_mode``): ``z[:, :, 0]`` at frame 0 and
    ``z[:, :, -1]`` at frame T-1, exact zeros between; otherwise ``z[:, :, index]`` repeated over the T frames.
    """
    t = z.shape[2]
    if key_frames:
        mask = np.zeros((1, 1, t, 1, 1), np.float32)
        mask[:, :, 0] = mask[:, :, -1] = 1.0
        return z * ms.Tensor(mask)
    return ops.broadcast_to(z[:, :, index:index + 1], z.shape)


def _clip_config(arch: str, where: str, search_dirs):
    try:
        return load_open_clip_config(arch, search_dirs=search_dirs)
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from None


class DynamiCrafter(nn.Cell):
    """LatentVisualDiffusion built from an inference YAML.

    Args:
        cfg: :class:`DynamiCrafterConfig` (``DynamiCrafterConfig.from_yaml(path)``).
        clip_search_dirs: folders where non-built-in open_clip archs are looked up
            (``open_clip_archs.json`` / ``<arch>.json``); default: the config file's folder.
        tokenizer: text tokenizer (default open_clip's shipped vocabulary).
    """

    def __init__(self, cfg: DynamiCrafterConfig, clip_search_dirs=None, tokenizer: SimpleTokenizer | None = None):
        super().__init__()
        self.cfg = cfg
        d = cfg.diffusion
        if clip_search_dirs is None:
            clip_search_dirs = (str(Path(cfg.path).parent),) if cfg.path and Path(cfg.path).exists() else ()
        self.model = DiffusionWrapper(UNetModel(cfg.unet))
        self.first_stage_model = AutoencoderKL(cfg.autoencoder.ddconfig, cfg.autoencoder.embed_dim)
        text_cfg = _clip_config(cfg.text_encoder.arch, join(cfg.path or "", "model.params.cond_stage_config.params.arch"),
                                clip_search_dirs)
        image_cfg = _clip_config(cfg.image_encoder.arch,
                                 join(cfg.path or "", "model.params.img_cond_stage_config.params.arch"), clip_search_dirs)
        self.cond_stage_model = FrozenOpenCLIPEmbedder(text_cfg, layer=cfg.text_encoder.layer, tokenizer=tokenizer)
        self.embedder = FrozenOpenCLIPImageEmbedderV2(image_cfg, antialias=cfg.image_encoder.antialias)
        self.image_proj_model = Resampler(cfg.resampler)
        self.scale_factor = float(d.scale_factor)
        self.parameterization = d.parameterization
        self.use_dynamic_rescale = d.use_dynamic_rescale
        self.perframe_ae = d.perframe_ae
        self.uncond_type = d.uncond_type
        self.num_timesteps = int(d.timesteps)
        for name, value in ddpm_buffers(d).items():
            setattr(self, name, Parameter(ms.Tensor(value), name=name, requires_grad=False))
        self.buffer_names = tuple(ddpm_buffers(d))

    # ---- helpers with the original names ---------------------------------------------------
    @property
    def unet(self) -> UNetModel:
        """The denoiser (``model.diffusion_model``)."""
        return self.model.diffusion_model

    def buffer(self, name: str) -> np.ndarray:
        """A schedule buffer as float32 numpy (e.g. ``"alphas_cumprod"``)."""
        return getattr(self, name).asnumpy()

    def get_learned_conditioning(self, prompts):
        """list of str -> text context (N, 77, D)."""
        return self.cond_stage_model.encode_tokens(self.cond_stage_model.tokenize(prompts))

    def embed_image(self, image):
        """(B, 3, H, W) in [-1, 1] -> Resampler tokens (B, 16*T, D) of ``image_proj_model(embedder(image))``."""
        return self.image_proj_model(self.embedder(image))

    def encode_first_stage(self, video, noise=None, generator=None):
        """Video (B, 3, T, H, W) in [-1, 1] -> ``scale_factor * z`` (B, 4, T, h, w), sampling the posterior
        with ``noise`` (B, 4, T, h, w) (drawn from ``generator`` when None); per frame with ``perframe_ae``."""
        return self.first_stage_model.encode_video(video, noise=noise, generator=generator,
                                                   chunk_size=1 if self.perframe_ae else None,
                                                   scale_factor=self.scale_factor)

    def decode_first_stage(self, z):
        """Latents (B, 4, T, h, w) -> video (B, 3, T, H, W) (not clamped); per frame with ``perframe_ae``."""
        return self.first_stage_model.decode_video(z, scale_factor=self.scale_factor,
                                                   chunk_size=1 if self.perframe_ae else None)

    def apply_model(self, x, t, c_concat, context, fs):
        """One denoiser call: (b, 4, t, h, w) latent + (b, 4, t, h, w) image latent -> model output."""
        return self.model(x, t, c_concat, context, fs)
