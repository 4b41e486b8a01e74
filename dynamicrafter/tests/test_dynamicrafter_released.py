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
from dynamicrafter_ms.weights import rename_key
from mindspore.nn.utils import no_init_parameters

from common import golden as _golden

RELEASED = _golden.golden_root() / "dynamicrafter" / "released"
DC_DIR = Path(__file__).resolve().parents[1]
RELEASES = sorted(p.stem for p in RELEASED.glob("dynamicrafter_*.json"))


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
    converted = {}
    for key, shape in _file_keys(layout).items():
        new = rename_key(key)
        assert new not in converted, f"{release}: two released keys map to {new}"
        converted[new] = shape
    missing = sorted(set(converted) - set(ours))
    extra = sorted(set(ours) - set(converted))
    assert not missing, f"{release}: {len(missing)} released keys the model lacks, e.g. {missing[:5]}"
    assert not extra, f"{release}: {len(extra)} model keys not in the release, e.g. {extra[:5]}"
    bad = [(k, ours[k], converted[k]) for k in ours if ours[k] != converted[k]]
    assert not bad, f"{release}: {len(bad)} shape mismatches (key, ours, released), e.g. {bad[:3]}"
    n_elements = sum(math.prod(s) for s in ours.values())
    assert n_elements == layout["total_state_dict_elements"]
    assert len(ours) == layout["num_state_dict_tensors"]


def test_256_release_rename_is_exercised():
    layout = json.loads((RELEASED / "dynamicrafter_256.json").read_text())
    file_keys = _file_keys(layout)
    old = [k for k in file_keys if "framestride_embed" in k]
    assert len(old) == 4 and all("fps_embedding" in rename_key(k) for k in old)


@pytest.mark.parametrize("res", ["256", "512", "1024"])
def test_shipped_configs_equal_the_released_ones(res):
    ours = yaml.safe_load((DC_DIR / "configs" / f"inference_{res}_v1.0.yaml").read_text())
    theirs = yaml.safe_load((RELEASED / f"dynamicrafter_{res}.yaml").read_text())
    assert ours == theirs
