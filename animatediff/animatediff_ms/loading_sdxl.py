"""Building the SDXL AnimateDiff pipeline from a diffusers SDXL folder and ``mm_sdxl_v10_beta.ckpt``
(the original sdxl branch's ``scripts/animate.py``: ``--pretrained_model_path`` + ``motion_module_path``).

Folder layout (``models/StableDiffusion/stable-diffusion-xl-base-1.0``): ``unet/`` (config.json +
diffusion_pytorch_model.safetensors / .bin), ``vae/``, ``text_encoder/`` (CLIP ViT-L, ``CLIPTextModel``),
``text_encoder_2/`` (OpenCLIP bigG in ``CLIPTextModelWithProjection`` layout: adds ``text_projection``),
``tokenizer/``, ``tokenizer_2/``. ``scheduler/`` is ignored: the sampler comes from ``noise_scheduler_kwargs``.

Key accounting: the UNet's 2-D weights and both text encoders load by identity (every file key used, every
non-motion parameter provided; ``text_model.embeddings.position_ids`` buffers folded away), the VAE through
the diffusers -> LDM table of :mod:`animatediff_ms.convert.ldm`; the motion module by identity after
dropping its ``pos_encoder.pe`` tables (rebuilt from the config, as the original does).
"""
from __future__ import annotations

from pathlib import Path

from mindspore.nn.utils import no_init_parameters

from common.checkpoint import apply_rename, load_state_dict_into, match_state_dict
from common.clip.hf_clip import CLIPTextConfig, CLIPTextModel
from common.clip.hf_tokenizer import CLIPTokenizer
from common.vae import AutoencoderKL

from .config import ConfigError, InferenceConfig, SchedulerConfig, VAEConfig
from .config_sdxl import UNetSDXLConfig
from .convert.ldm import fold_position_ids, ldm_unet_renames
from .convert.sdxl_single_file import open_clip_text_to_hf, split_sgm_checkpoint
from .loading import (
    WeightsError,
    _need,
    build_tokenizer,
    is_motion_param,
    load_text_encoder,
    load_unet_2d,
    load_vae_diffusers,
    motion_module_state_dict,
    read_weights,
)
from .models.unet_sdxl import UNetSDXLMotionModel
from .pipeline_sdxl import AnimationSDXLPipeline

#: transformers 5 writes CLIP text models without the ``text_model.`` prefix that transformers 4 (every released
#: SDXL folder) uses; both load.
CLIP_TEXT_RENAMES = (
    (r"^(embeddings|encoder|final_layer_norm)\.", r"text_model.\1.",
     "transformers >= 5 saves CLIPTextModel keys without 'text_model.'"),
)

SDXL_SUBFOLDERS = ("unet", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2")


def is_sdxl_folder(folder) -> bool:
    """A diffusers folder with a second text encoder (SDXL) rather than an SD-1.5 one."""
    return (Path(folder) / "text_encoder_2").is_dir()


def sdxl_motion_module_state_dict(path, what: str = "motion_module") -> tuple[dict, int | None]:
    """Motion-module tensors of ``mm_sdxl_v10_beta.ckpt`` (``pos_encoder.pe`` dropped) and the stored table length."""
    return motion_module_state_dict(path, what)


def check_sdxl_motion_module(unet: UNetSDXLMotionModel, sd: dict, pe_len: int | None, name: str,
                             what: str = "motion_module") -> None:
    """Raise WeightsError / CheckpointMismatchError unless ``sd`` (shapes only) fits the UNet's motion modules
    exactly: e.g. an SD-1.5 module (4 levels, 320..1280 channels) given to the SDXL UNet is refused by name."""
    mm = unet.cfg.motion_module_kwargs
    if pe_len is not None and mm.temporal_position_encoding and pe_len < mm.temporal_position_encoding_max_len:
        raise WeightsError(f"{what}: {name} was trained with {pe_len}-frame position tables but the inference config "
                           f"sets temporal_position_encoding_max_len: {mm.temporal_position_encoding_max_len}")
    ours = {k for k, _ in unet.parameters_and_names() if is_motion_param(k)}
    extra = sorted(set(sd) - ours)
    if extra:
        raise WeightsError(f"{what}: {name} has {len(extra)} motion-module keys the SDXL UNet does not have, e.g. "
                           f"'{extra[0]}' (an SD-1.5 motion module? use inference-v*.yaml with an SD-1.5 folder)")
    match_state_dict(unet, sd, optional=lambda k: not is_motion_param(k))[1].check(f"{what}: {name}")


def load_sdxl_motion_module(unet: UNetSDXLMotionModel, path, what: str = "motion_module") -> int:
    """Load ``mm_sdxl_v10_beta.ckpt`` (released layout) into the UNet's motion modules."""
    sd, pe_len = sdxl_motion_module_state_dict(path, what)
    name = Path(path).name
    check_sdxl_motion_module(unet, sd, pe_len, name, what)
    return load_state_dict_into(unet, sd, optional=lambda k: not is_motion_param(k), source=f"{what}: {name}").loaded


def load_sdxl_single_file(pipe: AnimationSDXLPipeline, path, what: str = "dreambooth_path") -> dict:
    """Replace the pipeline's UNet (2-D layers), VAE and both text encoders by an sgm single file (the sdxl
    branch's ``ckpt_path``: SDXL base or a community SDXL model); fp16 files are read as float32. Returns the
    number of tensors loaded per part."""
    name = Path(path).name
    parts = split_sgm_checkpoint(read_weights(path, what), f"{what}: {name}")
    unet = pipe.unet
    n = {"unet": load_unet_2d(unet, parts["unet"], f"{what}: {name} (model.diffusion_model)",
                              rename=ldm_unet_renames(unet.cfg))}
    n["vae"] = load_state_dict_into(pipe.vae, parts["vae"], source=f"{what}: {name} (first_stage_model)").loaded
    te, _ = fold_position_ids(parts["text_encoder"], name)
    n["text_encoder"] = load_text_encoder(pipe.text_encoder, te, f"{what}: {name} (conditioner.embedders.0)")
    te2 = open_clip_text_to_hf(parts["text_encoder_2"], f"{what}: {name} (conditioner.embedders.1.model)")
    n["text_encoder_2"] = load_text_encoder(pipe.text_encoder_2, te2, f"{what}: {name} (conditioner.embedders.1)")
    return n


def build_sdxl_unet(folder, unet_additional_kwargs: dict | None, load: bool = True,
                    what: str = "pretrained_model_path") -> UNetSDXLMotionModel:
    """``unet/config.json`` + ``unet_additional_kwargs`` -> :class:`UNetSDXLMotionModel`; with ``load`` the
    folder's 2-D weights (motion modules stay at their initial state until a motion module is loaded)."""
    d = _need(Path(folder), "unet", ("config.json",), what)
    cfg = UNetSDXLConfig.from_files(d / "config.json", unet_additional_kwargs)
    with no_init_parameters():
        unet = UNetSDXLMotionModel(cfg)
    if load:
        load_unet_2d(unet, read_weights(d, what), f"{what}: {d}")
    return unet


def build_sdxl_vae(folder, load: bool = True, what: str = "pretrained_model_path") -> tuple[AutoencoderKL, float]:
    """diffusers ``vae/`` -> (:class:`common.vae.AutoencoderKL`, its ``scaling_factor``; 0.13025 for SDXL)."""
    d = _need(Path(folder), "vae", ("config.json",), what)
    cfg = VAEConfig.from_file(d / "config.json")
    with no_init_parameters():
        vae = AutoencoderKL(cfg.ddconfig(), cfg.latent_channels)
    if load:
        load_vae_diffusers(vae, d, what)
    return vae, float(cfg.scaling_factor)


def build_sdxl_text_encoder(folder, sub: str, with_projection: bool, load: bool = True,
                            what: str = "pretrained_model_path") -> CLIPTextModel:
    """transformers ``CLIPTextModel`` (``text_encoder/``) or ``CLIPTextModelWithProjection`` (``text_encoder_2/``)."""
    d = _need(Path(folder), sub, ("config.json",), what)
    with no_init_parameters():
        te = CLIPTextModel(CLIPTextConfig.from_json(d), with_projection=with_projection)
    if load:
        sd = {apply_rename(k, CLIP_TEXT_RENAMES): v for k, v in read_weights(d, what).items()}
        load_text_encoder(te, sd, f"{what}: {d}")
    return te


def build_sdxl_pipeline(folder, unet_additional_kwargs: dict | None, scheduler: SchedulerConfig | dict | None = None,
                        motion_module_path=None, jit: bool = False, what: str = "pretrained_model_path"
                        ) -> AnimationSDXLPipeline:
    """Every model of the SDXL folder (+ the motion module when given) -> :class:`AnimationSDXLPipeline`.

    Args:
        folder: the diffusers SDXL folder. unet_additional_kwargs: of ``configs/inference/inference-sdxl.yaml``.
        scheduler: ``noise_scheduler_kwargs`` (dict or :class:`SchedulerConfig`). motion_module_path:
        ``mm_sdxl_v10_beta.ckpt`` (None: motion modules keep their initial weights). jit: UNet as a graph.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{what}: folder not found: {folder}")
    missing = [s for s in SDXL_SUBFOLDERS if not (folder / s).is_dir()]
    if missing:
        raise ConfigError(f"{what}: {folder} has no {missing[0]}/ folder (expected a diffusers SDXL folder)")
    if not isinstance(scheduler, SchedulerConfig):
        scheduler = SchedulerConfig.from_dict(scheduler)
    unet = build_sdxl_unet(folder, unet_additional_kwargs, what=what)
    if motion_module_path:
        load_sdxl_motion_module(unet, motion_module_path)
    vae, scale = build_sdxl_vae(folder, what=what)
    te1 = build_sdxl_text_encoder(folder, "text_encoder", False, what=what)
    te2 = build_sdxl_text_encoder(folder, "text_encoder_2", True, what=what)
    if te1.cfg.hidden_size + te2.cfg.hidden_size != unet.cfg.cross_attention_dim:
        raise ConfigError(f"{folder / 'unet' / 'config.json'}: cross_attention_dim: {unet.cfg.cross_attention_dim} "
                          f"is not the two text encoders' widths {te1.cfg.hidden_size} + {te2.cfg.hidden_size}")
    if unet.cfg.addition_embed_type == "text_time" and te2.cfg.projection_dim != unet.cfg.pooled_text_dim:
        raise ConfigError(f"{folder / 'unet' / 'config.json'}: projection_class_embeddings_input_dim: expects pooled "
                          f"text of width {unet.cfg.pooled_text_dim}, text_encoder_2 projects to "
                          f"{te2.cfg.projection_dim}")
    tok1 = build_tokenizer(folder, what)
    tok2 = build_tokenizer_2(folder, what)
    return AnimationSDXLPipeline(unet, vae, te1, tok1, te2, tok2, scheduler, vae_scaling_factor=scale, jit=jit)


def build_tokenizer_2(folder, what: str = "pretrained_model_path") -> CLIPTokenizer:
    """``tokenizer_2/`` (SDXL's pads with ``!``, read from its special-token files)."""
    d = _need(Path(folder), "tokenizer_2", ("vocab.json", "merges.txt"), what)
    return CLIPTokenizer.from_pretrained(d)


#: prompt-entry keys that name SD-1.5 files (the sdxl branch's LoRA files are not ported; its ``ckpt_path``, an
#: SDXL single file, is this schema's ``dreambooth_path``).
SD15_ONLY_KEYS = ("lora_model_path", "adapter_lora_path", "motion_module_lora_configs",
                  "controlnet_path")


def build_sdxl_entry_pipeline(entry, folder, jit: bool = False, inference_config: str | None = None,
                              log=print) -> AnimationSDXLPipeline:
    """One prompt-config entry on an SDXL folder: the entry's inference config (``inference-sdxl.yaml``),
    ``motion_module`` (``mm_sdxl_v10_beta.ckpt``) and ``dreambooth_path`` (an SDXL single file, the original's
    ``ckpt_path``); keys naming SD-1.5 files are refused with one line."""
    for key in SD15_ONLY_KEYS:
        if getattr(entry, key, None):
            raise ConfigError(f"entry {entry.index}: {key}: not supported with the SDXL base model {folder} "
                              f"(SD-1.5 files; the SDXL pipeline takes a motion_module and an SDXL dreambooth_path)")
    if entry.uses_controlnet:
        raise ConfigError(f"entry {entry.index}: controlnet_images: SparseCtrl needs an SD-1.5 base model")
    inf = InferenceConfig.load(inference_config or entry.inference_config)
    if entry.motion_module:
        (log or (lambda *_: None))(f"loading motion module from {entry.motion_module} ...")
    pipe = build_sdxl_pipeline(folder, inf.unet_additional_kwargs, inf.scheduler,
                               motion_module_path=entry.motion_module or None, jit=jit)
    if entry.dreambooth_path:
        (log or (lambda *_: None))(f"loading SDXL single file {entry.dreambooth_path} ...")
        load_sdxl_single_file(pipe, entry.dreambooth_path)
    if entry.sampler:
        pipe.scheduler.sampler = entry.sampler
    return pipe
