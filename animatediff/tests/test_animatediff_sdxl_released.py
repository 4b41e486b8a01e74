"""The full-size SDXL UNet with motion modules accepts exactly the key layout of ``mm_sdxl_v10_beta.ckpt`` and of
the SDXL base ``unet/`` (shapes only: our network is built under MindSpore's ``no_init_parameters``, the reference
layouts come from diffusers' ``MotionAdapter`` / ``UNet2DConditionModel`` built on torch's ``meta`` device, so no
weight memory is allocated on either side). No layout file of the SDXL release is in the golden ``released/``
folder, hence diffusers (whose ``convert_animatediff_checkpoint_to_diffusers`` reads the released file) is the
reference for the released key names, renamed back by ``animatediff_ms.convert.motion_adapter``.
"""
import json
from pathlib import Path

import diffusers
import numpy as np
import pytest
import torch
import yaml
from animatediff_ms.config_sdxl import UNetSDXLConfig
from animatediff_ms.convert.motion_adapter import diffusers_adapter_to_released
from animatediff_ms.loading import is_motion_param
from animatediff_ms.loading_sdxl import check_sdxl_motion_module
from animatediff_ms.models.unet_sdxl import UNetSDXLMotionModel
from animatediff_ms.sdxl import MM_SDXL_BETA_ADAPTER, SDXL_UNET
from mindspore.nn.utils import no_init_parameters

from common import golden
from common.checkpoint import CheckpointMismatchError

PROJECT = Path(__file__).resolve().parents[1]


def shape_only(shapes: dict) -> dict:
    return {k: np.broadcast_to(np.zeros((), np.float32), tuple(s)) for k, s in shapes.items()}


@pytest.fixture(scope="module")
def full():
    kwargs = yaml.safe_load((PROJECT / "configs" / "inference" / "inference-sdxl.yaml").read_text())
    with no_init_parameters():
        net = UNetSDXLMotionModel(UNetSDXLConfig.from_files(SDXL_UNET, kwargs["unet_additional_kwargs"]))
    with torch.device("meta"):
        unet2d = diffusers.UNet2DConditionModel(**{k: v for k, v in SDXL_UNET.items() if not k.startswith("_")})
        adapter = diffusers.MotionAdapter(**MM_SDXL_BETA_ADAPTER)
    released = {k: tuple(v.shape) for k, v in diffusers_adapter_to_released(adapter.state_dict()).items()}
    return net, {k: tuple(v.shape) for k, v in unet2d.state_dict().items()}, released


def test_image_layers_are_the_sdxl_base_unet(full):
    net, unet2d, _ = full
    ours = {k: tuple(p.shape) for k, p in net.parameters_and_names() if not is_motion_param(k)}
    assert ours == unet2d
    assert sum(int(np.prod(s)) for s in ours.values()) == 2_567_463_684  # SDXL base UNet


def test_motion_module_layout_of_mm_sdxl_v10_beta(full):
    net, _, released = full
    pe = {k: s for k, s in released.items() if "pos_encoder.pe" in k}
    sd = {k: s for k, s in released.items() if k not in pe}
    # 2 modules per down level, 3 per up level, one block of 2 attentions each
    assert len(pe) == (3 * 2 + 3 * 3) * 2 and {s[:2] for s in pe.values()} == {(1, 32)}
    check_sdxl_motion_module(net, shape_only(sd), 32, "mm_sdxl_v10_beta.ckpt")  # raises on any misfit
    ours = {k: tuple(p.shape) for k, p in net.parameters_and_names() if is_motion_param(k)}
    assert ours == sd
    assert not any(k.startswith("mid_block.motion_modules") for k in ours)


def test_sd15_motion_module_refused_by_the_sdxl_unet(full):
    net, _, _ = full
    layout = golden.golden_root() / "animatediff" / "released" / "v3_sd15_mm.json"
    tensors = json.loads(layout.read_text())["tensors"]
    sd = shape_only({k: s for k, s in tensors.items() if "pos_encoder.pe" not in k})
    with pytest.raises((ValueError, CheckpointMismatchError), match="down_blocks.3|does not fit"):
        check_sdxl_motion_module(net, sd, 32, "v3_sd15_mm.ckpt")
