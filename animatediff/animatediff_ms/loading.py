"""Weight loading in the original order (``animatediff/utils/util.py::load_weights``).

1. motion module ``.ckpt``: keys containing ``motion_modules.``, without ``pos_encoder.pe`` (a
   ``{"state_dict": ...}`` wrapper and an ``animatediff_config`` entry are accepted);
2. ``dreambooth_path`` (LDM single file, ``.safetensors`` or ``.ckpt``): replaces the UNet's 2-D weights,
   the VAE and the text encoder (fp16 files are cast to float32);
3. ``lora_model_path`` (kohya): merged into UNet and text encoder at ``lora_alpha``;
4. ``adapter_lora_path`` (v3 domain adapter) at ``adapter_lora_scale``;
5. every MotionLoRA of ``motion_module_lora_configs`` at its ``alpha``.

Every key of every file is accounted for (``common.checkpoint.load_state_dict_into``): a key that fits no
parameter, a parameter no file provides, or a shape that differs raises
:class:`common.checkpoint.CheckpointMismatchError` with one line naming the keys and the file; a missing or
unreadable file raises :class:`WeightsError`.

Building the models (the second half of this file): the pipeline's models from a diffusers SD-1.5 folder
(``--pretrained_model_path``), as the original ``scripts/animate.py`` does.

Folder layout (the original's ``models/StableDiffusion/stable-diffusion-v1-5``): ``tokenizer/``
(vocab.json, merges.txt), ``text_encoder/`` (config.json + model.safetensors / pytorch_model.bin),
``vae/`` and ``unet/`` (config.json + diffusion_pytorch_model.safetensors / .bin). The folder's
``scheduler/`` is ignored: AnimateDiff's DDIM comes from ``noise_scheduler_kwargs``.

Models are built under MindSpore's ``no_init_parameters``: the random initialisation of weights that a
checkpoint overwrites is skipped (a parameter that is never loaded is initialised when first used).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from mindspore.nn.utils import no_init_parameters

from common.checkpoint import CheckpointError, load_state_dict_into, match_state_dict, read_state_dict
from common.clip.hf_clip import CLIPTextConfig, CLIPTextModel
from common.clip.hf_tokenizer import CLIPTokenizer
from common.vae import SD_SCALE_FACTOR, AutoencoderKL

from .config import ConfigError, InferenceConfig, UNet3DConfig, VAEConfig
from .convert.ldm import (
    diffusers_vae_to_ldm,
    fold_position_ids,
    ldm_unet_renames,
    split_ldm_checkpoint,
)
from .convert.lora import merge_diffusers_lora, merge_kohya_lora
from .models import UNet3DConditionModel
from .pipeline import AnimationPipeline

#: pickle globals of non-tensor entries that released / community files may carry; read as inert stubs.
STUB_GLOBALS = (
    "omegaconf.dictconfig.DictConfig", "omegaconf.listconfig.ListConfig", "omegaconf.base.ContainerMetadata",
    "omegaconf.base.Metadata", "omegaconf.nodes.AnyNode", "omegaconf.nodes.StringNode", "typing.Any",
    "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
)


class WeightsError(ConfigError):
    """A weight file that is missing, unreadable or not of the kind expected (message names the file)."""


def read_weights(path, what: str, upcast: bool = True, wrappers=None) -> dict[str, np.ndarray]:
    """Read any checkpoint format (``common.checkpoint.read_state_dict``; released files' non-tensor
    entries read as inert stubs).

    Args:
        path: file or folder. what: the config key it came from (for the error message).
        wrappers: keys of a wrapper dict to descend into besides ``state_dict`` / ``module`` / ``model``.
    Raises:
        WeightsError: missing or unreadable file.
    """
    p = Path(path)
    if not p.exists():
        raise WeightsError(f"{what}: file not found: {p}")
    try:
        kw = {"wrappers": ("state_dict", "module", "model") + tuple(wrappers)} if wrappers else {}
        return read_state_dict(p, upcast=upcast, stub_globals=STUB_GLOBALS, **kw)
    except CheckpointError as e:
        raise WeightsError(f"{what}: {e}") from e


def is_motion_param(name: str) -> bool:
    """Parameters of the motion modules (everything else is the 2-D image model)."""
    return "motion_modules." in name


# ----------------------------------------------------------------------------------------- motion module
def motion_module_state_dict(path, what: str = "motion_module") -> tuple[dict, int | None]:
    """Motion-module tensors of a released ``.ckpt`` and the length of its stored ``pos_encoder.pe``
    tables (24 for v1 files, 32 for v2/v3; None when absent)."""
    sd = read_weights(path, what)
    pe_len = None
    out = {}
    for k, v in sd.items():
        if "motion_modules." not in k:
            continue
        if "pos_encoder.pe" in k:
            pe_len = int(v.shape[1]) if v.ndim == 3 else pe_len
            continue
        out[k] = v
    if not out:
        raise WeightsError(f"{what}: {path} holds no 'motion_modules.' keys -- not an AnimateDiff motion module")
    return out, pe_len


def check_motion_module(unet, sd: dict, pe_len: int | None, name: str, what: str = "motion_module",
                        allow_partial: bool = False) -> None:
    """Raise WeightsError (CheckpointMismatchError for a key that does not fit) unless the motion-module
    tensors ``sd`` (shapes only are read) are of the version and layout the UNet's inference config describes."""
    cfg = unet.cfg
    file_mid = any(k.startswith("mid_block.motion_modules.") for k in sd)
    if file_mid and not cfg.mid_has_motion:
        raise WeightsError(f"{what}: {name} has a mid-block motion module (a v2 module, use inference-v2.yaml) "
                           f"but the inference config sets motion_module_mid_block: false")
    if cfg.mid_has_motion and not file_mid:
        raise WeightsError(f"{what}: {name} has no mid-block motion module (a v1/v3 module) but the inference "
                           f"config sets motion_module_mid_block: true (inference-v2.yaml); use inference-v1.yaml "
                           f"(mm_sd_v14/v15) or inference-v3.yaml (v3_sd15_mm)")
    if pe_len == 24 and cfg.use_inflated_groupnorm:
        raise WeightsError(f"{what}: {name} is a v1 motion module (24-frame position tables) but the inference "
                           f"config sets use_inflated_groupnorm: true; use inference-v1.yaml")
    if pe_len == 32 and not cfg.use_inflated_groupnorm:
        raise WeightsError(f"{what}: {name} is a v2/v3 motion module (32-frame position tables) but the inference "
                           f"config sets use_inflated_groupnorm: false (inference-v1.yaml); use inference-v2.yaml "
                           f"or inference-v3.yaml")
    ours = {k for k, _ in unet.parameters_and_names() if is_motion_param(k)}
    extra = sorted(set(sd) - ours)
    if extra:
        raise WeightsError(f"{what}: {name} has {len(extra)} motion-module keys the inference config does not "
                           f"place (motion_module_resolutions / num_transformer_block), e.g. '{extra[0]}'")
    match_state_dict(unet, sd, optional=lambda k: not is_motion_param(k))[1].check(f"{what}: {name}", allow_partial)


def load_motion_module(unet, path, what: str = "motion_module") -> int:
    """Step 1 of ``load_weights``, after :func:`check_motion_module`."""
    sd, pe_len = motion_module_state_dict(path, what)
    name = Path(path).name
    check_motion_module(unet, sd, pe_len, name, what)
    return load_state_dict_into(unet, sd, optional=lambda k: not is_motion_param(k), source=f"{what}: {name}").loaded


def load_unet_checkpoint(unet, path, what: str = "unet_checkpoint_path") -> int:
    """``train.py``'s ``unet_checkpoint_path``: any subset of the UNet's keys (``{"global_step", "state_dict"}``
    or a flat dict), loaded as ``load_state_dict(strict=False)`` with no unexpected key allowed. A released
    motion module (with ``pos_encoder.pe`` tables, which the original refuses there too) raises WeightsError."""
    sd = read_weights(path, what)
    name = Path(path).name
    pe = [k for k in sd if "pos_encoder.pe" in k]
    if pe:
        raise WeightsError(f"{what}: {name} has {len(pe)} 'pos_encoder.pe' keys (e.g. '{pe[0]}'), which training "
                           f"refuses as the original does (unexpected keys); drop them or load it as an inference "
                           f"motion_module")
    return load_state_dict_into(unet, sd, optional=lambda k: True, source=f"{what}: {name}").loaded


# ----------------------------------------------------------------------------------------- base model
def unet_2d_state_dict(folder, what: str = "pretrained_model_path") -> dict:
    """The diffusers ``unet/`` weights (``diffusion_pytorch_model.safetensors`` or ``.bin``)."""
    return read_weights(folder, what)


def load_unet_2d(unet, sd: dict, source: str, rename=None) -> int:
    """Load the image layers (every non-motion parameter) from a state dict with our names (or renamed by
    ``rename``, e.g. :func:`~animatediff_ms.convert.ldm.ldm_unet_renames`)."""
    motion = [k for k in sd if is_motion_param(k)]
    if motion:
        raise WeightsError(f"{source}: an image-model file with motion-module keys, e.g. '{motion[0]}'")
    return load_state_dict_into(unet, sd, rename=rename, optional=is_motion_param, source=source).loaded


def load_vae_diffusers(vae, folder, what: str = "pretrained_model_path") -> int:
    """Load a diffusers ``vae/`` folder into :class:`common.vae.AutoencoderKL` (LDM names)."""
    sd = read_weights(folder, what)
    n = len(vae.encoder.config.ch_mult)
    return load_state_dict_into(vae, diffusers_vae_to_ldm(sd, n, f"{what}: {folder}"), source=f"{what}: {folder}").loaded


def load_text_encoder(text_encoder, sd: dict, source: str) -> int:
    """Load Hugging Face ``CLIPTextModel`` keys (``position_ids`` folded into the position table)."""
    sd, reordered = fold_position_ids(sd, source)
    if reordered:
        print(f"[animatediff] {source}: position_ids are not 0..n-1; using them as the original does")
    return load_state_dict_into(text_encoder, sd, source=source).loaded


def load_dreambooth(unet, vae, text_encoder, path, what: str = "dreambooth_path") -> dict:
    """Step 2: an LDM single file replaces the UNet's 2-D weights, the VAE and the text encoder.

    Any of ``unet`` / ``vae`` / ``text_encoder`` may be None to skip that part. Returns counts per part.
    """
    name = Path(path).name
    if not (str(path).endswith(".safetensors") or str(path).endswith(".ckpt") or os.path.isdir(path)) \
            and Path(path).exists():
        raise WeightsError(f"{what}: {path} is neither .safetensors nor .ckpt")
    parts = split_ldm_checkpoint(read_weights(path, what), f"{what}: {name}")
    counts = {}
    if vae is not None:
        counts["vae"] = load_state_dict_into(vae, parts["vae"], source=f"{what}: {name} (first_stage_model)").loaded
    if unet is not None:
        counts["unet"] = load_unet_2d(unet, parts["unet"], f"{what}: {name} (model.diffusion_model)",
                                      rename=ldm_unet_renames(unet.cfg))
    if text_encoder is not None:
        counts["text_encoder"] = load_text_encoder(text_encoder, parts["text_encoder"],
                                                   f"{what}: {name} (cond_stage_model.transformer)")
    counts["ignored"] = len(parts["ignored"])
    return counts


# ----------------------------------------------------------------------------------------- LoRAs
def load_lora(unet, text_encoder, path, alpha: float, what: str = "lora_model_path") -> int:
    """Step 3: kohya LoRA (``.safetensors``, or its MindSpore conversion) merged at ``alpha`` (its ``.alpha``
    tensors ignored)."""
    sd = read_weights(path, what)
    return merge_kohya_lora({"unet": unet, "text_encoder": text_encoder}, sd, alpha, f"{what}: {Path(path).name}")


def _diffusers_lora_dict(path, what: str) -> dict:
    sd = read_weights(path, what)
    sd.pop("animatediff_config", None)
    return sd


def load_domain_adapter(unet, path, scale: float, what: str = "adapter_lora_path") -> int:
    """Step 4: the v3 domain adapter (LoRA on the spatial attention) at ``adapter_lora_scale``."""
    sd = _diffusers_lora_dict(path, what)
    return merge_diffusers_lora(unet, sd, scale, f"{what}: {Path(path).name}")


def load_motion_lora(unet, path, alpha: float, what: str = "motion_module_lora_configs") -> int:
    """Step 5: one MotionLoRA (LoRA on the motion-module attention) at ``alpha``."""
    sd = _diffusers_lora_dict(path, what)
    return merge_diffusers_lora(unet, sd, alpha, f"{what}: {Path(path).name}", expect="motion_modules.")


def load_weights(unet, vae=None, text_encoder=None, *, motion_module_path: str = "",
                 motion_module_lora_configs=(), adapter_lora_path: str = "", adapter_lora_scale: float = 1.0,
                 dreambooth_model_path: str = "", lora_model_path: str = "", lora_alpha: float = 0.8,
                 log=print) -> dict:
    """The original ``load_weights`` (same arguments, same defaults, same order); empty paths are skipped.

    Args:
        unet / vae / text_encoder: the models (their base weights already loaded).
        motion_module_path: ``motion_module`` of the prompt config.
        motion_module_lora_configs: list of ``{"path": ..., "alpha": ...}``.
        adapter_lora_path / adapter_lora_scale: v3 domain adapter and its scale (1.0).
        dreambooth_model_path: LDM single-file base model.
        lora_model_path / lora_alpha: kohya LoRA and its merge ratio (0.8).
        log: progress printer (None = silent).
    Returns:
        what was loaded, per step.
    """
    say = log or (lambda *_: None)
    done = {}
    if motion_module_path:
        say(f"load motion module from {motion_module_path}")
        done["motion_module"] = load_motion_module(unet, motion_module_path)
    if dreambooth_model_path:
        say(f"load dreambooth model from {dreambooth_model_path}")
        done["dreambooth"] = load_dreambooth(unet, vae, text_encoder, dreambooth_model_path)
    if lora_model_path:
        say(f"load lora model from {lora_model_path}")
        done["lora"] = load_lora(unet, text_encoder, lora_model_path, lora_alpha)
    if adapter_lora_path:
        say(f"load domain lora from {adapter_lora_path}")
        done["adapter"] = load_domain_adapter(unet, adapter_lora_path, adapter_lora_scale)
    for i, c in enumerate(motion_module_lora_configs or ()):
        if not isinstance(c, dict) or "path" not in c or "alpha" not in c:
            raise WeightsError(f"motion_module_lora_configs[{i}]: needs 'path' and 'alpha', got {c!r}")
        say(f"load motion LoRA from {c['path']}")
        done.setdefault("motion_loras", []).append(load_motion_lora(unet, c["path"], float(c["alpha"]),
                                                                    f"motion_module_lora_configs[{i}]"))
    return done


# ---- building the models from a diffusers SD-1.5 folder -------------------------------------------


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
