"""tools/convert_weight.py: the released folder -> MindSpore checkpoints that inference loads, identical tensors;
bad folders -> one line, exit 2, nothing written."""
from __future__ import annotations

import importlib.util
import json
import shutil

import numpy as np
import pytest
from dropletvideo_ms import weights

from common.checkpoint import read_state_dict

from .conftest import DV_DIR

_spec = importlib.util.spec_from_file_location("dropletvideo_convert_cli", DV_DIR / "tools" / "convert_weight.py")
convert_cli = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(convert_cli)


def _params(cell) -> dict[str, np.ndarray]:
    return {p.name: p.asnumpy() for p in cell.get_parameters()}


@pytest.fixture(scope="module")
def converted(tiny_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("conv") / "DropletVideo-ms"
    assert convert_cli.main(["--src", str(tiny_folder), "--output_dir", str(out)]) == 0
    return out


def test_round_trip_every_component_loads_identical_tensors(tiny_folder, converted):
    assert weights.check_folder(converted) == converted  # what inference.py --ckpt checks first
    for name, file in weights.CONVERTED.items():
        assert weights.weights_path(converted, name) == converted / name / file
    for load in (weights.load_transformer, weights.load_vae, weights.load_text_encoder):
        released, ours = _params(load(tiny_folder)), _params(load(converted))
        assert released.keys() == ours.keys()
        for k, v in released.items():
            np.testing.assert_array_equal(ours[k], v, err_msg=k)


def test_one_kind_to_a_target_in_fp16(tiny_folder, tmp_path, capsys):
    assert convert_cli.main(["--src", str(tiny_folder), "--kind", "vae", "--dtype", "fp16",
                             "--target", str(tmp_path / "vae16")]) == 0
    assert "converted 240 tensors (vae)" in capsys.readouterr().out
    sd = read_state_dict(tmp_path / "vae16.ckpt", upcast=False)
    released = read_state_dict(tiny_folder / "vae")
    assert sd.keys() == released.keys() and all(v.dtype == np.float16 for v in sd.values())
    np.testing.assert_array_equal(sd["decoder.conv_out.conv.weight"],
                                  released["decoder.conv_out.conv.weight"].astype(np.float16))


def _bad(capsys, *argv) -> str:
    assert convert_cli.main(list(argv)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_missing_shard_or_index_naming_a_missing_file(tiny_folder, tmp_path, capsys):
    src = tmp_path / "w"
    shutil.copytree(tiny_folder, src)
    (src / "text_encoder" / "model-00002-of-00002.safetensors").unlink()
    out = tmp_path / "out"
    assert "model-00002-of-00002.safetensors, which is missing" in _bad(capsys, "--src", str(src), "--output_dir",
                                                                          str(out))
    index = src / "text_encoder" / "model.safetensors.index.json"
    data = json.loads(index.read_text())
    data["weight_map"] = {k: "model-00001-of-00002.safetensors" for k in data["weight_map"]}
    data["weight_map"]["shared.weight"] = "model-00003-of-00002.safetensors"
    index.write_text(json.dumps(data))
    assert "names the shard model-00003-of-00002.safetensors, which is missing" in _bad(
        capsys, "--src", str(src), "--output_dir", str(out))
    assert not out.exists()  # checked before anything is written


def test_config_disagreeing_with_the_tensors_and_flag_misuse(tiny_folder, tmp_path, capsys):
    cfg = json.loads((tiny_folder / "transformer" / "config.json").read_text())
    cfg["time_embed_dim"] = 40
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    line = _bad(capsys, "--src", str(tiny_folder), "--kind", "transformer", "--config", str(tmp_path / "config.json"),
                "--target", str(tmp_path / "t.ckpt"))
    assert "'time_embedding.linear_1.weight': file [24, 32] vs model [40, 32]" in line
    assert "need a single --kind" in _bad(capsys, "--src", str(tiny_folder), "--target", str(tmp_path / "t.ckpt"))
    assert not list(tmp_path.glob("*.ckpt"))
