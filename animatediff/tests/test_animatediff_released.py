"""The full-size model accepts exactly the key layouts of the released files (golden ``released/``).

Shapes only: the full-size networks are built under MindSpore's ``no_init_parameters`` (no weight memory),
and the checks read shapes from the layout files (no tensors are allocated).
"""
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from animatediff_ms.config import UNet3DConfig
from animatediff_ms.convert.ldm import (
    diffusers_vae_to_ldm,
    fold_position_ids,
    ldm_unet_renames,
    split_ldm_checkpoint,
    vae_ddconfig_from_diffusers,
)
from animatediff_ms.convert.lora import plan_diffusers_lora
from animatediff_ms.loading import check_motion_module, is_motion_param
from animatediff_ms.models import UNet3DConditionModel
from mindspore.nn.utils import no_init_parameters

from common import golden
from common.checkpoint import match_state_dict
from common.clip.hf_clip import CLIPTextConfig, CLIPTextModel
from common.config import ConfigError
from common.vae import AutoencoderKL

RELEASED = golden.golden_root() / "animatediff" / "released"
PROJECT = Path(__file__).resolve().parents[1]
SD15_UNET = json.loads((RELEASED / "sd15_unet_diffusers.json").read_text())["config"]


def layout(name):
    return json.loads((RELEASED / name).read_text())


def shape_only(tensors: dict) -> dict:
    """{key: zero-stride array of the listed shape} (no memory)."""
    return {k: np.broadcast_to(np.zeros((), np.float32), tuple(s)) for k, s in tensors.items()}


def full_unet(version: int) -> UNet3DConditionModel:
    kwargs = yaml.safe_load((RELEASED / f"inference-v{version}.yaml").read_text())["unet_additional_kwargs"]
    with no_init_parameters():
        return UNet3DConditionModel(UNet3DConfig.from_files(SD15_UNET, kwargs))


@pytest.mark.parametrize("version", [1, 2, 3])
def test_shipped_inference_configs_equal_the_released_ones(version):
    ours = yaml.safe_load((PROJECT / "configs" / "inference" / f"inference-v{version}.yaml").read_text())
    theirs = yaml.safe_load((RELEASED / f"inference-v{version}.yaml").read_text())
    assert ours == theirs


@pytest.mark.parametrize("name,version", [("mm_sd_v15.json", 1), ("mm_sd_v15_v2.json", 2), ("v3_sd15_mm.json", 3)])
def test_motion_module_layouts(name, version):
    d = layout(name)
    net = full_unet(version)
    sd = shape_only({k: s for k, s in d["tensors"].items() if "pos_encoder.pe" not in k})
    pe = [s for k, s in d["tensors"].items() if "pos_encoder.pe" in k]
    assert len(pe) == d["n_pe_buffers"]
    check_motion_module(net, sd, pe[0][1], name)  # raises on any extra / missing / mis-shaped key
    ours = {k: tuple(p.shape) for k, p in net.parameters_and_names() if is_motion_param(k)}
    assert ours == {k: tuple(v.shape) for k, v in sd.items()}
    assert sum(int(np.prod(s)) for s in ours.values()) == d["total_params"]


@pytest.mark.parametrize("wrong", [1, 3])
def test_v2_motion_module_refused_by_configs_without_mid_block(wrong):
    d = layout("mm_sd_v15_v2.json")
    sd = shape_only({k: s for k, s in d["tensors"].items() if "pos_encoder.pe" not in k})
    with pytest.raises(ValueError, match="mid-block"):
        check_motion_module(full_unet(wrong), sd, 32, "mm_sd_v15_v2.ckpt")


def test_v1_motion_module_refused_by_the_v3_config():
    d = layout("mm_sd_v15.json")
    sd = shape_only({k: s for k, s in d["tensors"].items() if "pos_encoder.pe" not in k})
    with pytest.raises(ValueError, match="v1 motion module"):
        check_motion_module(full_unet(3), sd, 24, "mm_sd_v15.ckpt")


def test_sd15_unet_diffusers_layout():
    d = layout("sd15_unet_diffusers.json")
    net = full_unet(2)
    sd = shape_only(d["tensors"])
    match_state_dict(net, sd, optional=is_motion_param)[1].check("sd15 unet")
    ours = {k: tuple(p.shape) for k, p in net.parameters_and_names() if not is_motion_param(k)}
    assert set(ours) == set(sd)
    assert sum(int(np.prod(s)) for s in ours.values()) == d["total_params"]


def full_vae():
    dd, embed = vae_ddconfig_from_diffusers(layout("sd15_vae_diffusers.json")["config"])
    with no_init_parameters():
        return AutoencoderKL(dd, embed)


def full_text_encoder():
    with no_init_parameters():
        return CLIPTextModel(CLIPTextConfig.from_dict(layout("sd15_text_encoder.json")["config"]))


def test_sd15_vae_diffusers_layout():
    d = layout("sd15_vae_diffusers.json")
    vae = full_vae()
    sd = diffusers_vae_to_ldm(shape_only(d["tensors"]), len(d["config"]["block_out_channels"]))
    match_state_dict(vae, sd)[1].check("sd15 vae")
    assert len(sd) == len(d["tensors"]) == len(list(vae.parameters_and_names()))
    assert sum(int(np.prod(p.shape)) for _, p in vae.parameters_and_names()) == d["total_params"]


def test_sd15_text_encoder_layout():
    d = layout("sd15_text_encoder.json")
    sd = shape_only(d["tensors"])
    sd["text_model.embeddings.position_ids"] = np.arange(77)[None]
    sd, reordered = fold_position_ids(sd)
    assert not reordered
    te = full_text_encoder()
    match_state_dict(te, sd)[1].check("sd15 text encoder")
    assert len(sd) == len(d["tensors"]) - 1  # all but the position_ids buffer


def test_sd15_ldm_single_file_layout():
    d = layout("sd15_ldm_single_file.json")
    sd = shape_only(d["tensors"])
    sd["cond_stage_model.transformer.text_model.embeddings.position_ids"] = np.arange(77)[None]
    parts = split_ldm_checkpoint(sd, "sd15 single file")
    assert len(parts["ignored"]) == d["n_extra_tensors"]
    assert sum(len(v) for k, v in parts.items() if k != "ignored") == d["n_network_tensors"]
    net = full_unet(2)
    match_state_dict(net, parts["unet"], rename=ldm_unet_renames(net.cfg), optional=is_motion_param)[1].check("unet")
    match_state_dict(full_vae(), parts["vae"])[1].check("vae")
    te_sd, _ = fold_position_ids(parts["text_encoder"])
    match_state_dict(full_text_encoder(), te_sd)[1].check("text encoder")


def test_motion_lora_layout():
    d = layout("v2_lora_ZoomIn.json")
    plan = plan_diffusers_lora(full_unet(2), shape_only(d["tensors"]), "v2_lora_ZoomIn", expect="motion_modules.")
    assert len(plan) * 2 == len(d["tensors"])
    assert all(".attention_blocks." in target for target, _, _ in plan)


def test_domain_adapter_layout():
    d = layout("v3_sd15_adapter.json")
    plan = plan_diffusers_lora(full_unet(3), shape_only(d["tensors"]), "v3_sd15_adapter")
    assert len(plan) * 2 == len(d["tensors"])
    assert {t.split(".transformer_blocks.0.")[1].split(".")[0] for t, _, _ in plan} == {"attn1", "attn2"}


def test_motion_lora_refused_by_a_v1_unet():
    d = layout("v2_lora_ZoomIn.json")
    with pytest.raises(ValueError, match="mid_block"):
        plan_diffusers_lora(full_unet(1), shape_only(d["tensors"]), "v2_lora_ZoomIn", expect="motion_modules.")


def test_vae_config_groups_other_than_32():
    # a diffusers VAE with 16 GroupNorm groups builds with them (read from vae/config.json, not assumed)
    dd, embed = vae_ddconfig_from_diffusers({"block_out_channels": [16, 32], "norm_num_groups": 16,
                                             "latent_channels": 4, "layers_per_block": 1})
    assert dd.norm_num_groups == 16 and embed == 4
    with no_init_parameters():
        vae = AutoencoderKL(dd, embed)
    groups = {c.num_groups for _, c in vae.cells_and_names() if hasattr(c, "num_groups")}
    assert groups == {16}
    with pytest.raises(ConfigError, match=r"vae/config.json: norm_num_grups: unknown key \(did you mean 'norm_num_groups'"):
        vae_ddconfig_from_diffusers({"norm_num_grups": 16})
