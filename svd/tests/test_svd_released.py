"""Full-size key layouts: the model built from each released config holds exactly the released
state-dict keys and shapes after the converter's rename table (parameters are not allocated)."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
from mindspore.nn.utils import no_init_parameters
from svd_ms.config import load_svd_config
from svd_ms.model import SVDModel
from svd_ms.weights import RENAME_TABLE

from common import golden as _golden
from common.checkpoint import apply_rename, match_state_dict

RELEASED = _golden.golden_root() / "svd" / "released"
NAMES = sorted(p.stem for p in RELEASED.glob("*.json") if p.with_suffix(".yaml").is_file())
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_every_release_is_listed():
    assert {"svd", "svd_xt", "svd_xt_1_1"} <= set(NAMES), NAMES


def __init__(self, shape):
        self.shape = tuple(shape)


def _ours(yaml_path):
    with no_init_parameters():
        model = SVDModel(load_svd_config(yaml_path))
    return {p.name: tuple(p.shape) for p in model.get_parameters()}


@pytest.mark.parametrize("name", NAMES)
def test_released_layout_matches(name):
    listing = json.loads((RELEASED / f"{name}.json").read_text())
    theirs = {k: tuple(v) for k, v in listing["tensors"].items()}
    assert len(theirs) == listing["num_tensors"]
    ours = _ours(RELEASED / f"{name}.yaml")
    _, report = match_state_dict(ours, theirs, rename=RENAME_TABLE)
    assert report.ok, report.summary()
    dropped = [k for keys in report.dropped.values() for k in keys]
    # only what the table explains is dropped: the open_clip text leftovers and the conditioner's decoder
    text = [k for k in dropped if ".open_clip.model." in k]
    cond_dec = [k for k in dropped if re.search(r"^conditioner\.embedders\.3\.encoder\.(decoder|post_quant_conv)\.", k)]
    assert len(text) == 6 and len(text) + len(cond_dec) == len(dropped)
    assert len(cond_dec) == listing["sub_prefixes"]["conditioner.embedders.3.encoder.decoder"]["tensors"] + 2
    n_unet = sum(int(np.prod(s)) for k, s in ours.items() if k.startswith("model.diffusion_model."))
    assert n_unet == listing["prefixes"]["model.diffusion_model"]["params"]


@pytest.mark.parametrize("name", ["svd", "svd_xt", "svd_xt_1_1"])
def test_shipped_configs_equal_the_released_ones(name):
    ours = load_svd_config(CONFIGS / f"{name}.yaml")
    ref = load_svd_config(RELEASED / f"{name}.yaml")
    for part in ("unet", "conditioner", "first_stage", "first_stage_encoder"):
        assert getattr(ours, part) == getattr(ref, part), part
    assert ours.scale_factor == ref.scale_factor
    assert ours.sampler.num_steps == (25 if name == "svd" else 30)  # the two keys we add
    assert ours.sampler.num_frames == (14 if name == "svd" else 25)
    ours.sampler.num_steps, ours.sampler.num_frames = ref.sampler.num_steps, ref.sampler.num_frames
    assert ours.sampler == ref.sampler


def test_rename_table_entries_have_reasons():
    assert all(isinstance(why, str) and why for _, _, why in RENAME_TABLE)
    assert apply_rename("model.diffusion_model.out.2.weight", RENAME_TABLE) == "model.diffusion_model.out.2.weight"
    assert apply_rename("conditioner.embedders.0.open_clip.model.logit_scale", RENAME_TABLE) is None
    assert apply_rename("conditioner.embedders.0.open_clip.model.visual.proj", RENAME_TABLE) == \
        "conditioner.embedders.0.open_clip.model.visual.proj"
