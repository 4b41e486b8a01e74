"""Build the pipeline's models from a diffusers SD-1.5 folder (``--pretrained_model_path``), as the
original ``scripts/animate.py`` does, or a tiny random model for the demo.

Folder layout (the original's ``models/StableDiffusion/stable-diffusion-v1-5``): ``tokenizer/``
(vocab.json, merges.txt), ``text_encoder/`` (config.json + model.safetensors / pytorch_model.bin),
``vae/`` and ``unet/`` (config.json + diffusion_pytorch_model.safetensors / .bin). The folder's
``scheduler/`` is ignored: AnimateDiff's DDIM comes from ``noise_scheduler_kwargs``.

Models are built under MindSpore's ``no_init_parameters``: the random initialisation of weights that a
checkpoint overwrites is skipped (a parameter that is never loaded is initialised when first used).
"""
from __future__ import annotations

from pathlib import Path

from mindspore.nn.utils import no_init_parameters

from common.clip.hf_clip import CLIPTextConfig, CLIPTextModel
from common.clip.hf_tokenizer import CLIPTokenizer
from common.config import ConfigError
from common.vae import SD_SCALE_FACTOR, AutoencoderKL

from .config import InferenceConfig, UNet3DConfig, VAEConfig
from .loading import load_text_encoder, load_unet_2d, load_vae_diffusers, read_weights
from .models import UNet3DConditionModel
from .pipeline import AnimationPipeline


def _need(folder: Path, sub: str, files: tuple[str, ...], what: str) -> Path:
    d = folder / sub
    if not d.is_dir():
        raise ConfigError(f"{what}: {folder} has no {sub}/ folder (expected a diffusers Stable Diffusion folder)")
    for f in files:
        if not (d / f).is_file():
            raise ConfigError(f"{what}: {d} lacks {f}")
    return d


def build_unet(pretrained_model_path, unet_additional_kwargs: dict, load: bool = True,
               what: str = "pretrained_model_path") -> UNet3DConditionModel:
    """``UNet3DConditionModel.from_pretrained_2d``: ``unet/config.json`` + ``unet_additional_kwargs``;
    with ``load`` the folder's 2-D weights (motion modules stay at their initial state until a motion
    module is loaded). ``load=False`` for a caller that loads every weight itself (e.g. from a DreamBooth
    file), so the random initialisation is deferred in both cases."""
    d = _need(Path(pretrained_model_path), "unet", ("config.json",), what)
    cfg = UNet3DConfig.from_files(d / "config.json", unet_additional_kwargs)
    with no_init_parameters():
        unet = UNet3DConditionModel(cfg)
    if load:
        load_unet_2d(unet, read_weights(d, what), f"{what}: {d}")
    return unet


def build_vae(pretrained_model_path, load: bool = True, what: str = "pretrained_model_path") -> AutoencoderKL:
    """diffusers ``vae/`` -> :class:`common.vae.AutoencoderKL` (LDM key names), sizes and GroupNorm groups
    from ``vae/config.json``. Its ``scaling_factor`` must be the one the AnimateDiff pipeline uses (the
    original hard-codes 0.18215)."""
    d = _need(Path(pretrained_model_path), "vae", ("config.json",), what)
    cfg = VAEConfig.from_file(d / "config.json")
    if cfg.scaling_factor != SD_SCALE_FACTOR:
        raise ConfigError(f"{d / 'config.json'}: scaling_factor: {cfg.scaling_factor} is not supported (the "
                          f"AnimateDiff pipeline, as the original, scales latents by {SD_SCALE_FACTOR})")
    with no_init_parameters():
        vae = AutoencoderKL(cfg.ddconfig(), cfg.latent_channels)
    if load:
        load_vae_diffusers(vae, d, what)
    return vae


def build_text_encoder(pretrained_model_path, load: bool = True, what: str = "pretrained_model_path") -> CLIPTextModel:
    """transformers ``CLIPTextModel`` from ``text_encoder/``."""
    d = _need(Path(pretrained_model_path), "text_encoder", ("config.json",), what)
    cfg = CLIPTextConfig.from_json(d)
    with no_init_parameters():
        te = CLIPTextModel(cfg)
    if load:
        load_text_encoder(te, read_weights(d, what), f"{what}: {d}")
    return te


def build_tokenizer(pretrained_model_path, what: str = "pretrained_model_path") -> CLIPTokenizer:
    d = _need(Path(pretrained_model_path), "tokenizer", ("vocab.json", "merges.txt"), what)
    return CLIPTokenizer.from_pretrained(d)


def build_pipeline(pretrained_model_path, inference_config: InferenceConfig, jit: bool = False,
                   text_encoder=None, vae=None, tokenizer=None) -> AnimationPipeline:
    """Tokenizer, text encoder, VAE (shared across prompt-config entries when passed in) and a fresh UNet."""
    folder = Path(pretrained_model_path)
    if not folder.is_dir():
        raise ConfigError(f"pretrained_model_path: folder not found: {folder}")
    tokenizer = tokenizer or build_tokenizer(folder)
    text_encoder = text_encoder or build_text_encoder(folder)
    vae = vae or build_vae(folder)
    unet = build_unet(folder, inference_config.unet_additional_kwargs)
    return AnimationPipeline(unet, vae, text_encoder, tokenizer, inference_config.scheduler, jit=jit)
