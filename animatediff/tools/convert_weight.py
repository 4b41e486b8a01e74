"""Convert released AnimateDiff / Stable Diffusion files to MindSpore checkpoints, every key accounted for.

    python tools/convert_weights.py motion_module models/Motion_Module/mm_sd_v15_v2.ckpt mm_sd_v15_v2_ms.ckpt
    python tools/convert_weights.py dreambooth    models/DreamBooth_LoRA/toonyou_beta3.safetensors toonyou_ms.ckpt
    python tools/convert_weights.py lora          models/DreamBooth_LoRA/style_lora.safetensors style_lora_ms.ckpt
    python tools/convert_weights.py adapter       models/Motion_Module/v3_sd15_adapter.ckpt v3_adapter_ms.ckpt
    python tools/convert_weights.py motion_lora   models/MotionLoRA/v2_lora_ZoomIn.ckpt v2_lora_ZoomIn_ms.ckpt

The source is read without executing pickled code (torch zip/legacy ``.ckpt``, ``.safetensors``) and checked
against the full-size model (built without allocating weights) from ``--pretrained_model_path``'s configs or the
SD-1.5 defaults and the inference config (``--inference_config``; for motion modules and MotionLoRAs guessed
from the file when not given: mid-block keys -> v2, 24-frame position tables -> v1, else v3). Every key is
either converted or reported as ignored (the motion modules' ``pos_encoder.pe`` tables, LDM schedule
buffers); a key that fits nothing, or a shape that differs, stops the conversion with one error line.

The output keeps the original key names (they are this port's parameter names), so it is a drop-in
replacement for the source file in a prompt config. Tensors keep their dtype unless ``--fp32``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from animatediff_ms.config import ConfigError, InferenceConfig, UNet3DConfig, read_json
from animatediff_ms.convert.ldm import (
    fold_position_ids,
    ldm_unet_to_ours,
    split_ldm_checkpoint,
    vae_ddconfig_from_diffusers,
)
from animatediff_ms.convert.lora import plan_diffusers_lora, plan_kohya_lora
from animatediff_ms.loading import check_motion_module, check_state_dict, is_motion_param, read_weights
from animatediff_ms.models import UNet3DConditionModel
from animatediff_ms.sd15 import SD15_TEXT_ENCODER, SD15_UNET, SD15_VAE
from mindspore.nn.utils import no_init_parameters

from common.checkpoint import save_checkpoint_atomic
from common.clip.hf_clip import CLIPTextConfig, CLIPTextModel
from common.vae import AutoencoderKL

KINDS = ("motion_module", "dreambooth", "lora", "adapter", "motion_lora")
PROJECT = Path(__file__).resolve().parents[1]


def _config(folder, sub: str, default: dict) -> dict:
    if folder is None:
        return default
    return read_json(Path(folder) / sub / "config.json")


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
                                  _inference(args.inference_config, sd).unet_additional_kwargs)
    with no_init_parameters():
        return UNet3DConditionModel(cfg)


def _vae(args):
    dd, embed = vae_ddconfig_from_diffusers(_config(args.pretrained_model_path, "vae", SD15_VAE))
    with no_init_parameters():
        return AutoencoderKL(dd, embed)


def _text_encoder(args):
    with no_init_parameters():
        return CLIPTextModel(CLIPTextConfig.from_dict(_config(args.pretrained_model_path, "text_encoder",
                                                              SD15_TEXT_ENCODER)))


def convert(args) -> tuple[dict, dict]:
    """Validate ``args.src`` -> (tensors to write, ignored keys grouped by reason)."""
    src = Path(args.src)
    name = src.name
    sd = read_weights(src, args.kind, upcast=args.fp32)
    ignored: dict[str, list[str]] = {}
    if args.kind == "motion_module":
        keep = {k: v for k, v in sd.items() if "motion_modules." in k and "pos_encoder.pe" not in k}
        ignored["position tables (recomputed)"] = [k for k in sd if "pos_encoder.pe" in k]
        other = [k for k in sd if k not in keep and "pos_encoder.pe" not in k]
        if other:
            raise ConfigError(f"{name}: {len(other)} keys are not motion-module keys, e.g. '{other[0]}'")
        pe = [v.shape[1] for k, v in sd.items() if k.endswith("pos_encoder.pe") and v.ndim == 3]
        check_motion_module(_unet(args, sd), keep, pe[0] if pe else None, name)
        return keep, ignored
    if args.kind == "dreambooth":
        parts = split_ldm_checkpoint(sd, name)
        ignored["LDM schedule buffers / EMA bookkeeping"] = sorted(parts["ignored"])
        unet = _unet(args, None)
        check_state_dict(unet, ldm_unet_to_ours(parts["unet"], unet.cfg, name), f"{name} (model.diffusion_model)",
                         allow_missing=is_motion_param)
        check_state_dict(_vae(args), parts["vae"], f"{name} (first_stage_model)")
        te, _ = fold_position_ids(parts["text_encoder"], name)
        check_state_dict(_text_encoder(args), te, f"{name} (cond_stage_model.transformer)")
        return {k: v for k, v in sd.items() if k not in parts["ignored"]}, ignored
    if args.kind == "lora":
        plan_kohya_lora({"unet": _unet(args, None), "text_encoder": _text_encoder(args)}, sd, name)
        return sd, ignored
    sd.pop("animatediff_config", None)
    if args.kind == "adapter":
        plan_diffusers_lora(_unet(args, None), sd, name)
    else:  # a MotionLoRA's targets tell the motion-module version like a motion module's keys do
        plan_diffusers_lora(_unet(args, sd), sd, name, expect="motion_modules.")
    return sd, ignored


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=KINDS, help="what the source file is")
    p.add_argument("src", help="the released file (.ckpt / .safetensors)")
    p.add_argument("out", help="MindSpore checkpoint to write (.ckpt)")
    p.add_argument("--pretrained_model_path", default=None,
                   help="diffusers SD folder whose config.json files describe the base model (default: SD-1.5)")
    p.add_argument("--inference_config", default=None, help="configs/inference/inference-v*.yaml")
    p.add_argument("--fp32", action="store_true", help="write float16 tensors as float32")
    args = p.parse_args(argv)
    try:
        tensors, ignored = convert(args)
        out = save_checkpoint_atomic({k: np.ascontiguousarray(v) for k, v in tensors.items()}, args.out)
    except (ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    n_ign = sum(len(v) for v in ignored.values())
    print(f"[convert] {args.src}: {len(tensors)} tensors written to {out}; {n_ign} ignored"
          + "".join(f"; {reason}: {len(keys)}" for reason, keys in ignored.items() if keys))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
