"""Every config file the ported models ship or meet in the golden cases reads without error.

The models read the original repositories' YAML/JSON as they are, and :func:`common.config.from_mapping`
refuses unknown keys: this test keeps the declared key sets complete (a key added to a shipped or golden
config that no dataclass declares fails here, naming the file and the key path).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from common import golden
from common.config import ConfigError, from_mapping, load_yaml

REPO = Path(__file__).resolve().parents[2]
GOLDEN = golden.golden_root()


def _files(root: Path, *patterns: str) -> list[Path]:
    return sorted(p for pat in patterns for p in root.glob(pat)) if root.is_dir() else []


def _dc(path):
    from dynamicrafter_ms.config import DynamiCrafterConfig

    DynamiCrafterConfig.from_yaml(path)


def _svd(path):
    from svd_ms.config import load_svd_config

    load_svd_config(path)


def _svd_train(path):
    from svd_ms.config import TrainFile

    from_mapping(TrainFile, load_yaml(path), str(path))


def _ad_inference(path):
    from animatediff_ms.config import InferenceConfig, UNet3DConfig

    UNet3DConfig.from_files(_SD15_UNET, InferenceConfig.load(path).unet_additional_kwargs)


def _ad_prompt(path):
    from animatediff_ms.prompt_config import load_prompt_config

    load_prompt_config(path, "configs/inference/inference-v1.yaml", check_files=False)


def _ad_controlnet(path):
    from animatediff_ms.config import ControlNetInferenceConfig

    ControlNetInferenceConfig.load(path)


def _ad_diffusers(path):
    from animatediff_ms.config import UNet3DConfig, VAEConfig

    if path.parent.name == "unet":
        UNet3DConfig.from_files(path)
    elif path.parent.name == "vae":
        VAEConfig.from_file(path)


def _ad_released(path):
    from animatediff_ms.config import UNet3DConfig, VAEConfig

    layout = json.loads(path.read_text())
    if path.name == "sd15_unet_diffusers.json":
        UNet3DConfig.from_files(layout["config"], {}, str(path))
    elif path.name == "sd15_vae_diffusers.json":
        from_mapping(VAEConfig, layout["config"], str(path))


def _vc(path):
    from videocomposer_ms.config import load_config

    load_config(path)


def _vc_train(path):
    from videocomposer_ms.train_config import VCTrainConfig

    from_mapping(VCTrainConfig, load_yaml(path), str(path))


_SD15_UNET = {"block_out_channels": [32, 32, 32, 32], "attention_head_dim": 2, "cross_attention_dim": 16}

CASES = (
    [(p, _dc) for p in _files(REPO / "dynamicrafter", "configs/*.yaml")
     + _files(GOLDEN / "dynamicrafter", "*/config.yaml", "released/*.yaml")]
    + [(p, _svd) for p in _files(REPO / "svd", "configs/svd*.yaml")
       + _files(GOLDEN / "svd", "*/config.yaml", "released/*.yaml") if p.name != "svd_train.yaml"]
    + [(REPO / "svd" / "configs" / "svd_train.yaml", _svd_train)]
    + [(p, _ad_inference) for p in _files(REPO / "animatediff", "configs/inference/*.yaml")
       + _files(GOLDEN / "animatediff", "*/config.yaml", "released/inference-*.yaml")]
    + [(p, _ad_prompt) for p in _files(REPO / "animatediff", "configs/prompts/**/*.yaml")
       + _files(GOLDEN / "animatediff", "*/prompt*.yaml")]
    + [(p, _ad_controlnet) for p in _files(REPO / "animatediff", "configs/inference/sparsectrl/*.yaml")
       + _files(GOLDEN / "animatediff", "*/sparsectrl/*.yaml")]
    + [(p, _ad_diffusers) for p in _files(GOLDEN / "animatediff", "*/models/StableDiffusion/*/*/config.json")]
    + [(p, _ad_released) for p in _files(GOLDEN / "animatediff", "released/sd15_*_diffusers.json")]
    + [(p, _vc) for p in _files(REPO / "videocomposer", "configs/*.yaml") + _files(GOLDEN / "videocomposer", "*/config.yaml")
       if not p.name.startswith("train_")]
    + [(p, _vc_train) for p in _files(REPO / "videocomposer", "configs/train_*.yaml")]
)


@pytest.mark.parametrize("path, load", CASES, ids=[str(p.relative_to(p.parents[2])) for p, _ in CASES])
def test_config_file_reads(path, load, monkeypatch):
    monkeypatch.chdir(path.parent)
    load(path)


def test_the_files_are_there():
    names = {load.__name__ for _, load in CASES}
    assert {"_dc", "_svd", "_svd_train", "_ad_inference", "_ad_prompt", "_ad_controlnet", "_vc", "_vc_train"} <= names
    if GOLDEN.is_dir():
        assert {"_ad_diffusers", "_ad_released"} <= names


def test_an_unknown_key_in_a_shipped_file_is_refused(tmp_path):
    from dynamicrafter_ms.config import DynamiCrafterConfig

    text = (REPO / "dynamicrafter" / "configs" / "inference_256_v1.0.yaml").read_text()
    bad = tmp_path / "x.yaml"
    bad.write_text(text.replace("num_head_channels:", "num_head_chanels:", 1))
    with pytest.raises(ConfigError, match=r"x.yaml: model.params.unet_config.params.num_head_chanels: unknown key "
                                          r"\(did you mean 'num_head_channels'\?\)"):
        DynamiCrafterConfig.from_yaml(bad)
