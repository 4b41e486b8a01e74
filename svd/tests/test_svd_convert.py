"""tools/convert_weight.py: every key accounted for, round trips, torch .ckpt input, bad files."""
import importlib.util
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file
from svd_ms.model import load_svd_model

from .conftest import SVD_DIR, TINY_CONFIG

_spec = importlib.util.spec_from_file_location("svd_convert_cli", SVD_DIR / "tools" / "convert_weight.py")
convert_cli = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(convert_cli)

LEFTOVERS = {  # what the released files hold besides our parameters (sizes arbitrary, as in the release)
    "conditioner.embedders.0.open_clip.model.token_embedding.weight": (10, 4),
    "conditioner.embedders.0.open_clip.model.positional_embedding": (77, 4),
    "conditioner.embedders.0.open_clip.model.ln_final.weight": (4,),
    "conditioner.embedders.0.open_clip.model.ln_final.bias": (4,),
    "conditioner.embedders.0.open_clip.model.text_projection": (4, 32),
    "conditioner.embedders.0.open_clip.model.logit_scale": (),
    "conditioner.embedders.3.encoder.decoder.conv_in.weight": (32, 4, 3, 3),
    "conditioner.embedders.3.encoder.post_quant_conv.weight": (4, 4, 1, 1),
}


@pytest.fixture(scope="module")
def released(tiny_model, tmp_path_factory):
    """A released-layout safetensors file of the tiny model, with the unused leftovers."""
    sd = {p.name: p.asnumpy() for p in tiny_model.get_parameters()}
    rng = np.random.default_rng(0)
    for k, shape in LEFTOVERS.items():
        sd[k] = rng.standard_normal(shape).astype(np.float32)
    path = tmp_path_factory.mktemp("rel") / "svd_tiny.safetensors"
    save_file(sd, str(path))
    return path, sd


def test_cli_converts_and_the_result_loads_identically(released, tmp_path):
    path, sd = released
    r = subprocess.run([sys.executable, "tools/convert_weight.py", "--src", str(path), "--config",
                        str(TINY_CONFIG), "--output_dir", str(tmp_path)], cwd=SVD_DIR, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "dropped 6 tensors: unused text-tower leftovers" in r.stdout
    assert "dropped 2 tensors: unused 2-D decoder" in r.stdout
    out = tmp_path / "svd_tiny.ckpt"
    direct, rep1 = load_svd_model(TINY_CONFIG, path)
    converted, rep2 = load_svd_model(TINY_CONFIG, out)
    assert rep1.ok and rep2.ok and rep1.ignored == len(LEFTOVERS) and rep2.ignored == 0
    for p, q in zip(direct.get_parameters(), converted.get_parameters()):
        assert p.name == q.name
        np.testing.assert_array_equal(p.asnumpy(), q.asnumpy())
        np.testing.assert_array_equal(p.asnumpy(), sd[p.name])


def test_lightning_torch_ckpt_and_fp16_output(released, tmp_path):
    _, sd = released
    ckpt = tmp_path / "svd_tiny.ckpt.pt"
    torch.save({"state_dict": {k: torch.from_numpy(v.copy()) for k, v in sd.items()}, "epoch": 3}, ckpt)
    target = convert_cli.convert(convert_cli.PARSER.parse_args(  # the older flag names still work
        ["--pt_weights_file", str(ckpt), "--config", str(TINY_CONFIG), "--out_dir", str(tmp_path / "out"),
         "--dtype", "fp16"]))
    from common.checkpoint import read_state_dict

    got = read_state_dict(target, upcast=False)
    assert len(got) == len(sd) - len(LEFTOVERS)
    k = "model.diffusion_model.out.2.weight"
    assert got[k].dtype == np.float16
    np.testing.assert_allclose(got[k].astype(np.float32), sd[k], atol=1e-3)


@pytest.mark.parametrize("edit,message", [
    ("drop", "1 missing from the file"),
    ("extra", "1 unexpected (no such parameter)"),
    ("shape", "1 mis-shaped"),
])
def test_bad_checkpoints_are_refused_naming_the_keys(released, tmp_path, capsys, edit, message):
    _, sd = released
    sd = dict(sd)
    key = "model.diffusion_model.input_blocks.1.0.time_mixer.mix_factor"
    if edit == "drop":
        del sd[key]
    elif edit == "extra":
        key = "model.diffusion_model.not_a_layer.weight"
        sd[key] = np.zeros(3, np.float32)
    else:
        sd[key] = np.zeros((2,), np.float32)
    bad = tmp_path / "bad.safetensors"
    save_file(sd, str(bad))
    rc = convert_cli.main(["--src", str(bad), "--config", str(TINY_CONFIG), "--output_dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and key in err and err.startswith("error: ") and err.count("\n") == 1
    assert not (tmp_path / "bad.ckpt").exists()
    with pytest.raises(Exception, match=key.replace(".", r"\.")):
        load_svd_model(TINY_CONFIG, bad)


def test_missing_file_is_one_clear_line(tmp_path, capsys):
    rc = convert_cli.main(["--src", str(tmp_path / "nope.safetensors"), "--config", str(TINY_CONFIG),
                           "--output_dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and err == f"error: no such file or folder (--src {tmp_path / 'nope.safetensors'})\n"


def test_allow_partial_writes_what_matches(released, tmp_path, capsys):
    _, sd = released
    sd = dict(sd)
    key = "model.diffusion_model.input_blocks.1.0.time_mixer.mix_factor"
    del sd[key]
    part = tmp_path / "part.safetensors"
    save_file(sd, str(part))
    argv = ["--src", str(part), "--config", str(TINY_CONFIG), "--target", str(tmp_path / "p.ckpt"), "--allow_partial"]
    assert convert_cli.main(argv) == 0
    assert f"1 missing from the file, e.g. '{key}'" in capsys.readouterr().out
    from common.checkpoint import read_state_dict

    got = read_state_dict(tmp_path / "p.ckpt")
    assert key not in got and len(got) == len(sd) - len(LEFTOVERS)


def test_help_explains_every_flag():
    text = convert_cli.PARSER.format_help()
    for flag in ("--src", "--pt_weights_file", "--target", "--output_dir", "--out_dir", "--config", "--dtype",
                 "--allow_partial", "--debug"):
        assert flag in text, flag
