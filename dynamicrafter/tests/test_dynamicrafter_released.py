"""Full-size layout of every release in ``<golden>/dynamicrafter/released/``.

The model built from the release's config at FULL size (parameters not allocated:
``no_init_parameters``) must hold exactly the keys and shapes of the released checkpoint
after the converter's renames -- nothing missing, nothing extra.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from dynamicrafter_ms.config import DynamiCrafterConfig
from dynamicrafter_ms.model import DynamiCrafter
from dynamicrafter_ms.weights import RENAMES
from mindspore.nn.utils import no_init_parameters

from common import golden as _golden
from common.checkpoint import apply_rename, match_state_dict

RELEASED = _golden.golden_root() / "dynamicrafter" / "released"
DC_DIR = Path(__file__).resolve().parents[1]
RELEASES = sorted(p.stem for p in RELEASED.glob("dynamicrafter_*.json"))


def __init__(self, shape):
        self.shape = tuple(shape)


def test_releases_found():
    assert len(RELEASES) >= 3, f"no release layouts under {RELEASED}"


def _file_keys(layout: dict) -> dict[str, tuple]:
    """Keys and shapes as stored in the released file (the layout lists this code's names, plus
    ``renamed_in_release``: our name -> the file's name)."""
    renamed = layout.get("renamed_in_release", {})
    return {renamed.get(k, k): tuple(v) for k, v in layout["tensors"].items()}


@pytest.mark.parametrize("release", RELEASES)
def test_full_size_layout_matches_release(release):
    layout = json.loads((RELEASED / f"{release}.json").read_text())
    cfg = DynamiCrafterConfig.from_yaml(RELEASED / f"{release}.yaml")
    with no_init_parameters():
        model = DynamiCrafter(cfg)
    ours = {n: tuple(p.shape) for n, p in model.parameters_and_names()}
    _, report = match_state_dict(ours, _file_keys(layout), rename=RENAMES)
    assert report.ok, f"{release}: {report.summary()}"
    n_elements = sum(math.prod(s) for s in ours.values())
    assert n_elements == layout["total_state_dict_elements"]
    assert len(ours) == layout["num_state_dict_tensors"]


def test_256_release_rename_is_exercised():
    layout = json.loads((RELEASED / "dynamicrafter_256.json").read_text())
    file_keys = _file_keys(layout)
    old = [k for k in file_keys if "framestride_embed" in k]
    assert len(old) == 4 and all("fps_embedding" in apply_rename(k, RENAMES) for k in old)


@pytest.mark.parametrize("res", ["256", "512", "1024"])
def test_shipped_configs_equal_the_released_ones(res):
    ours = yaml.safe_load((DC_DIR / "configs" / f"inference_{res}_v1.0.yaml").read_text())
    theirs = yaml.safe_load((RELEASED / f"dynamicrafter_{res}.yaml").read_text())
    assert ours == theirs


#: the training-only keys of configs/training_512_v1.0/config_interp.yaml that the inference config leaves out
_TRAINING_ONLY = {"model": ("pretrained_checkpoint", "base_learning_rate", "scale_lr"),
                  "params": ("log_every_t", "image_proj_model_trainable", "uncond_prob", "rand_cond_frame")}


def test_shipped_interp_config_is_the_released_one_without_training_keys():
    ours = yaml.safe_load((DC_DIR / "configs" / "inference_512_interp_v1.0.yaml").read_text())
    theirs = yaml.safe_load((RELEASED / "dynamicrafter_512_interp.yaml").read_text())
    model = {k: v for k, v in theirs["model"].items() if k not in _TRAINING_ONLY["model"]}
    model["params"] = {k: v for k, v in model["params"].items() if k not in _TRAINING_ONLY["params"]}
    assert ours == {"model": model}
