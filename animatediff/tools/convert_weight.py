"""Convert released AnimateDiff / Stable Diffusion files to MindSpore checkpoints, every key accounted for.

    python tools/convert_weight.py --kind motion_module --src models/Motion_Module/mm_sd_v15_v2.ckpt --target mm_sd_v15_v2_ms.ckpt
    python tools/convert_weight.py --kind motion_module --src models/Motion_Module/mm_sdxl_v10_beta.ckpt --target mm_sdxl_v10_beta_ms.ckpt
    python tools/convert_weight.py --kind dreambooth    --src models/DreamBooth_LoRA/toonyou_beta3.safetensors --target toonyou_ms.ckpt
    python tools/convert_weight.py --kind dreambooth    --src models/StableDiffusion/sd_xl_base_1.0.safetensors --target sdxl_ms.ckpt
    python tools/convert_weight.py --kind lora          --src models/DreamBooth_LoRA/style_lora.safetensors --target style_lora_ms.ckpt
    python tools/convert_weight.py --kind adapter       --src models/Motion_Module/v3_sd15_adapter.ckpt --target v3_adapter_ms.ckpt
    python tools/convert_weight.py --kind motion_lora   --src models/MotionLoRA/v2_lora_ZoomIn.ckpt --target v2_lora_ZoomIn_ms.ckpt
    python tools/convert_weight.py --kind sparsectrl    --src models/SparseCtrl/v3_sd15_sparsectrl_rgb.ckpt --target v3_sd15_sparsectrl_rgb_ms.ckpt
    python tools/convert_weight.py --kind sparsectrl    --src models/SparseCtrl/v3_sd15_sparsectrl_scribble.ckpt --target v3_sd15_sparsectrl_scribble_ms.ckpt
    (older form: python tools/convert_weight.py motion_module SRC OUT)

The source is read without executing pickled code (torch zip/legacy ``.ckpt``, ``.safetensors``) and checked
against the full-size model (built without allocating weights) from ``--pretrained_model_path``'s configs or the
SD-1.5 defaults and the inference config (``--config``; for motion modules and MotionLoRAs guessed from the file
when not given: mid-block keys -> v2, 24-frame position tables -> v1, else v3). A SparseCtrl controlnet is checked
against the controlnet that ``scripts/animate.py`` builds from the base UNet with ``--controlnet_config`` (default:
guessed from the file's condition embedding, ``configs/inference/sparsectrl/latent_condition.yaml`` for the RGB
file, ``image_condition.yaml`` for the scribble one); a ``{"controlnet": ...}`` wrapper is accepted. Every key is
either converted or reported as ignored (the ``pos_encoder.pe`` tables, LDM schedule buffers); a key that fits
nothing, or a shape that differs, stops the conversion with one error line (exit status 2; --allow_partial
writes motion modules and DreamBooth files anyway; LoRA files are always checked in full).

SDXL motion modules (``mm_sdxl_v10_beta.ckpt``: no level-3 modules, or ``--pretrained_model_path`` an SDXL folder)
are checked against the SDXL UNet (``configs/inference/inference-sdxl.yaml`` unless ``--config``); a diffusers
``MotionAdapter`` file (``guoyww/animatediff-motion-adapter-sdxl-beta``'s ``diffusion_pytorch_model.safetensors``,
``attn1``/``norm3`` names) is renamed to the released layout first. An SDXL single file (sgm layout, ``conditioner.*``
keys) given as ``--kind dreambooth`` is checked against the full-size SDXL UNet, VAE and both text encoders and
written with the same sgm names.

The output keeps the original key names (they are this port's parameter names), so it is a drop-in
replacement for the source file in a prompt config. Tensors keep their dtype unless ``--dtype fp32/fp16``.
"""
from __future__ import annotations

from pathlib import Path

from animatediff_ms.config import ConfigError, InferenceConfig, UNet3DConfig
from animatediff_ms.config_sdxl import UNetSDXLConfig
from animatediff_ms.convert.ldm import (
    fold_position_ids,
    ldm_unet_renames,
    split_ldm_checkpoint,
    vae_ddconfig_from_diffusers,
)
from animatediff_ms.convert.lora import plan_diffusers_lora, plan_kohya_lora
from animatediff_ms.convert.motion_adapter import diffusers_adapter_to_released
from animatediff_ms.convert.sdxl_single_file import open_clip_text_to_hf, split_sgm_checkpoint
from animatediff_ms.loading import check_motion_module, is_motion_param, read_weights
from animatediff_ms.loading_sdxl import check_sdxl_motion_module, is_sdxl_folder
from animatediff_ms.models import UNet3DConditionModel
from animatediff_ms.models.unet_sdxl import UNetSDXLMotionModel
from animatediff_ms.sd15 import SD15_TEXT_ENCODER, SD15_UNET, SD15_VAE
from animatediff_ms.sdxl import SDXL_TEXT_ENCODER, SDXL_TEXT_ENCODER_2, SDXL_UNET, SDXL_VAE
from animatediff_ms.sparsectrl import KIND_CONFIGS, build_controlnet, check_checkpoint_kind, checkpoint_kind
from mindspore.nn.utils import no_init_parameters

from common.checkpoint import match_state_dict
from common.cli import converter_parser, run_converter, write_state_dict
from common.clip.hf_clip import CLIPTextConfig, CLIPTextModel
from common.config import load_json
from common.vae import AutoencoderKL

KINDS = ("motion_module", "dreambooth", "lora", "adapter", "motion_lora", "sparsectrl")
PROJECT = Path(__file__).resolve().parents[1]


def _config(folder, sub: str, default: dict) -> dict:
    if folder is None:
        return default
    return load_json(Path(folder) / sub / "config.json")


def _inference(path: str | None, sd: dict | None) -> InferenceConfig:
    if path is None and sd is None:  # only the 2-D layers matter
        path = PROJECT / "configs" / "inference" / "inference-v3.yaml"
    if path is None:
        pe = [v.shape[1] for k, v in sd.items() if k.endswith("pos_encoder.pe") and v.ndim == 3]
        version = 2 if any(k.startswith("mid_block.motion_modules.") for k in sd) else (1 if pe and pe[0] == 24 else 3)
        path = PROJECT / "configs" / "inference" / f"inference-v{version}.yaml"
        print(f"[convert] inference config guessed from the file: {path.name}")
    return InferenceConfig.load(path)


def _unet(args, sd: dict | None) -> UNet3DConditionModel:
    cfg = UNet3DConfig.from_files(_config(args.pretrained_model_path, "unet", SD15_UNET),
                                  _inference(args.config, sd).unet_additional_kwargs)
    with no_init_parameters():
        return UNet3DConditionModel(cfg)


def _sdxl_motion_file(args, sd: dict) -> bool:
    """An SDXL motion module: the base folder is SDXL, or (without one) the file has no level-3 modules."""
    if args.pretrained_model_path is not None:
        return is_sdxl_folder(args.pretrained_model_path)
    return not any(k.startswith(("down_blocks.3.", "up_blocks.3.")) for k in sd)


def _sdxl_unet(args) -> UNetSDXLMotionModel:
    path = args.config or PROJECT / "configs" / "inference" / "inference-sdxl.yaml"
    cfg = UNetSDXLConfig.from_files(_config(args.pretrained_model_path, "unet", SDXL_UNET),
                                    InferenceConfig.load(path).unet_additional_kwargs)
    with no_init_parameters():
        return UNetSDXLMotionModel(cfg)


def _vae(args):
    dd, embed = vae_ddconfig_from_diffusers(_config(args.pretrained_model_path, "vae", SD15_VAE))
    with no_init_parameters():
        return AutoencoderKL(dd, embed)


def _text_encoder(args):
    with no_init_parameters():
        return CLIPTextModel(CLIPTextConfig.from_dict(_config(args.pretrained_model_path, "text_encoder",
                                                              SD15_TEXT_ENCODER)))


def _check(model, sd: dict, source: str, args, **match) -> None:
    match_state_dict(model, sd, **match)[1].check(source, args.allow_partial)


def validate(args) -> tuple[dict, dict]:
    """Check ``args.src`` -> (tensors to write, ignored keys grouped by reason)."""
    src = Path(args.src)
    name = src.name
    sd = read_weights(src, args.kind, upcast=args.dtype != "keep",
                      wrappers=("controlnet",) if args.kind == "sparsectrl" else None)
    ignored: dict[str, list[str]] = {}
    if args.kind == "motion_module":
        if sd and all("motion_modules." in k and ".temporal_transformer." not in k for k in sd):
            print(f"[convert] {name}: a diffusers MotionAdapter file; renamed to the released layout")
            sd = diffusers_adapter_to_released(sd)
        keep = {k: v for k, v in sd.items() if "motion_modules." in k and "pos_encoder.pe" not in k}
        ignored["position tables (recomputed)"] = [k for k in sd if "pos_encoder.pe" in k]
        other = [k for k in sd if k not in keep and "pos_encoder.pe" not in k]
        if other:
            raise ConfigError(f"{name}: {len(other)} keys are not motion-module keys, e.g. '{other[0]}'")
        pe = [v.shape[1] for k, v in sd.items() if k.endswith("pos_encoder.pe") and v.ndim == 3]
        if _sdxl_motion_file(args, keep):
            check_sdxl_motion_module(_sdxl_unet(args), keep, pe[0] if pe else None, name)
        else:
            check_motion_module(_unet(args, sd), keep, pe[0] if pe else None, name, allow_partial=args.allow_partial)
        return keep, ignored
    if args.kind == "dreambooth" and any(k.startswith("conditioner.embedders.") for k in sd):
        return _validate_sdxl_single_file(args, sd, name)
    if args.kind == "dreambooth":
        parts = split_ldm_checkpoint(sd, name)
        ignored["LDM schedule buffers / EMA bookkeeping"] = sorted(parts["ignored"])
        unet = _unet(args, None)
        _check(unet, parts["unet"], f"{name} (model.diffusion_model)", args, rename=ldm_unet_renames(unet.cfg),
               optional=is_motion_param)
        _check(_vae(args), parts["vae"], f"{name} (first_stage_model)", args)
        te, _ = fold_position_ids(parts["text_encoder"], name)
        _check(_text_encoder(args), te, f"{name} (cond_stage_model.transformer)", args)
        return {k: v for k, v in sd.items() if k not in parts["ignored"]}, ignored
    if args.kind == "sparsectrl":
        return _validate_sparsectrl(args, sd, name)
    if args.kind == "lora":
        plan_kohya_lora({"unet": _unet(args, None), "text_encoder": _text_encoder(args)}, sd, name)
        return sd, ignored
    sd.pop("animatediff_config", None)
    if args.kind == "adapter":
        plan_diffusers_lora(_unet(args, None), sd, name)
    else:  # a MotionLoRA's targets tell the motion-module version like a motion module's keys do
        plan_diffusers_lora(_unet(args, sd), sd, name, expect="motion_modules.")
    return sd, ignored


def _validate_sdxl_single_file(args, sd: dict, name: str) -> tuple[dict, dict]:
    """An SDXL single file: every key of the full-size SDXL UNet (2-D layers), VAE and both text encoders."""
    parts = split_sgm_checkpoint(sd, name)
    folder = args.pretrained_model_path
    unet = _sdxl_unet(args)
    _check(unet, parts["unet"], f"{name} (model.diffusion_model)", args, rename=ldm_unet_renames(unet.cfg),
           optional=is_motion_param)
    dd, embed = vae_ddconfig_from_diffusers(_config(folder, "vae", SDXL_VAE))
    with no_init_parameters():
        vae = AutoencoderKL(dd, embed)
        te1 = CLIPTextModel(CLIPTextConfig.from_dict(_config(folder, "text_encoder", SDXL_TEXT_ENCODER)))
        te2 = CLIPTextModel(CLIPTextConfig.from_dict(_config(folder, "text_encoder_2", SDXL_TEXT_ENCODER_2)),
                            with_projection=True)
    _check(vae, parts["vae"], f"{name} (first_stage_model)", args)
    te, _ = fold_position_ids(parts["text_encoder"], name)
    _check(te1, te, f"{name} (conditioner.embedders.0)", args)
    _check(te2, open_clip_text_to_hf(parts["text_encoder_2"], name), f"{name} (conditioner.embedders.1)", args)
    ignored = {"LDM schedule buffers / EMA bookkeeping / logit_scale": sorted(parts["ignored"])}
    return {k: v for k, v in sd.items() if k not in parts["ignored"]}, ignored


def _validate_sparsectrl(args, sd: dict, name: str) -> tuple[dict, dict]:
    """A SparseCtrl controlnet: every key of the controlnet built from the base UNet + its config, none left."""
    ignored = {"position tables (recomputed)": [k for k in sd if "pos_encoder.pe" in k],
               "metadata": [k for k in sd if k == "animatediff_config"]}
    keep = {k: v for k, v in sd.items() if "pos_encoder.pe" not in k and k != "animatediff_config"}
    kind = checkpoint_kind(keep)
    if kind is None:
        raise ConfigError(f"{name}: no 'controlnet_cond_embedding' keys -- not a SparseCtrl checkpoint")
    cfg_path = args.controlnet_config
    if cfg_path is None:
        cfg_path = PROJECT / KIND_CONFIGS[kind]
        print(f"[convert] {name}: a SparseCtrl {kind} file; controlnet config {Path(cfg_path).name}")
    from animatediff_ms.config import ControlNetInferenceConfig

    ccfg = ControlNetInferenceConfig.load(cfg_path)
    check_checkpoint_kind(keep, ccfg.controlnet_additional_kwargs, name, Path(cfg_path).name, "src")
    net = build_controlnet(_unet(args, None).cfg, ccfg)
    _check(net, keep, name, args)
    return keep, ignored


PARSER = converter_parser(
    __doc__, src_help="the released file (.ckpt / .safetensors)", kinds=KINDS, kind_help="what the source file is",
    config_help="configs/inference/inference-v*.yaml (default: guessed from a motion module / MotionLoRA, "
                "else inference-v3.yaml)",
    dtype_default="keep", aliases={"config": ["--inference_config"]}, positional=("kind", "src", "target"))
PARSER.add_argument("--pretrained_model_path", default=None,
                    help="diffusers SD folder whose config.json files describe the base model (default: SD-1.5)")
PARSER.add_argument("--controlnet_config", default=None,
                    help="SparseCtrl: configs/inference/sparsectrl/*.yaml (default: from the file's kind)")
PARSER.add_argument("--fp32", dest="dtype", action="store_const", const="fp32", help="the same as --dtype fp32")


def convert(args) -> None:
    """Validate and write; prints one summary line."""
    tensors, ignored = validate(args)
    out = write_state_dict(tensors, args)
    n_ign = sum(len(v) for v in ignored.values())
    print(f"[convert] {args.src}: {len(tensors)} tensors written to {out}; {n_ign} ignored"
          + "".join(f"; {reason}: {len(keys)}" for reason, keys in ignored.items() if keys))


def main(argv=None) -> int:
    return run_converter(convert, PARSER, argv)


if __name__ == "__main__":
    raise SystemExit(main())
