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
from common.vae import AutoencoderKL

from .config import ConfigError, InferenceConfig, UNet3DConfig, read_json
from .convert.ldm import vae_ddconfig_from_diffusers
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
    """diffusers ``vae/`` -> :class:`common.vae.AutoencoderKL` (LDM key names)."""
    d = _need(Path(pretrained_model_path), "vae", ("config.json",), what)
    dd, embed = vae_ddconfig_from_diffusers(read_json(d / "config.json"), str(d / "config.json"))
    with no_init_parameters():
        vae = AutoencoderKL(dd, embed)
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
