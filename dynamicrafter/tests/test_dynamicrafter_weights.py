"""Checkpoint reading, the rename table, the converter and the loader's error messages."""
from __future__ import annotations

import pickle
import subprocess
import sys
import zipfile

import mindspore as ms
import numpy as np
import pytest
import torch
from dynamicrafter_ms.config import DynamiCrafterConfig
from dynamicrafter_ms.model import DynamiCrafter
from dynamicrafter_ms.weights import RENAMES, clip_to_dynamicrafter, load_weights

from common import golden
from common.checkpoint import CheckpointError, CheckpointMismatchError, UnsafeCheckpointError, apply_rename


def _save_torch(path, model, old_256_names=True, drop=(), reshape=None):
    """The model's parameters as a released-style Lightning checkpoint (torch.save)."""
    sd = {}
    for name, p in model.parameters_and_names():
        if name in drop:
            continue
        key = name.replace("fps_embedding", "framestride_embed") if old_256_names else name
        arr = p.asnumpy()
        if reshape and name == reshape[0]:
            arr = np.zeros(reshape[1], np.float32)
        sd[key] = torch.from_numpy(arr.copy())
    torch.save({"state_dict": sd, "epoch": 3}, path)
    return path


@pytest.fixture(scope="module")
def tiny256(tiny_dir, dc):
    model = DynamiCrafter(DynamiCrafterConfig.from_yaml(tiny_dir / "tiny256.yaml"))
    dc.randomize(model, seed=11)
    return model


def rename_key(key):
    return apply_rename(key, RENAMES)


def test_rename_table_is_explicit():
    assert rename_key("model.diffusion_model.framestride_embed.0.weight") == "model.diffusion_model.fps_embedding.0.weight"
    assert rename_key("_forward_module.image_proj_model.latents") == "image_proj_model.latents"
    assert rename_key("model.diffusion_model.input_blocks.1.0.temopral_conv.conv1.0.weight").endswith("temopral_conv.conv1.0.weight")
    assert all(len(r) == 3 and r[2] for r in RENAMES)  # every rule says why


def test_load_released_style_checkpoint(tmp_path, tiny_dir, tiny256):
    ckpt = _save_torch(tmp_path / "model.ckpt", tiny256)
    fresh = DynamiCrafter(DynamiCrafterConfig.from_yaml(tiny_dir / "tiny256.yaml"))
    assert load_weights(fresh, ckpt) == len(list(tiny256.get_parameters()))
    a = dict(tiny256.parameters_and_names())
    for name, p in fresh.parameters_and_names():
        np.testing.assert_array_equal(p.asnumpy(), a[name].asnumpy(), err_msg=name)


def test_converter_round_trip(tmp_path, tiny_dir, tiny256, dc):
    src = _save_torch(tmp_path / "model.ckpt", tiny256)
    out = tmp_path / "ms" / "model_ms.ckpt"
    r = subprocess.run([sys.executable, str(dc.DC_DIR / "tools" / "convert_weight.py"), "--kind", "256",
                        "--src", str(src), "--target", str(out), "--config", str(tiny_dir / "tiny256.yaml")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "renamed model.diffusion_model.framestride_embed.0.weight -> model.diffusion_model.fps_embedding.0.weight" \
        in r.stdout
    assert out.is_file()
    fresh = DynamiCrafter(DynamiCrafterConfig.from_yaml(tiny_dir / "tiny256.yaml"))
    load_weights(fresh, out)  # MindSpore checkpoint, read directly
    a = dict(tiny256.parameters_and_names())
    for name, p in fresh.parameters_and_names():
        np.testing.assert_array_equal(p.asnumpy(), a[name].asnumpy(), err_msg=name)


@pytest.mark.parametrize("case,kind", [("tiny256", "256"), ("tiny512", "512"), ("tiny512_interp", "512_interp")])
def test_converter_converts_the_golden_checkpoints(tmp_path, case, kind):
    from importlib import util

    root = golden.golden_root() / "dynamicrafter" / case
    spec = util.spec_from_file_location("convert_weight", str(
        __import__("pathlib").Path(__file__).resolve().parents[1] / "tools" / "convert_weight.py"))
    mod = util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    s = mod.convert(mod.PARSER.parse_args(["--kind", kind, "--src",
                                           str(root / "model.ckpt"), "--target", str(tmp_path / "o.ckpt"),
                                           "--config", str(root / "config.yaml")]))
    assert s["tensors"] == len(ms.load_checkpoint(s["target"]))
    assert len(s["renamed"]) == (4 if case == "tiny256" else 0)


def test_other_resolution_is_named(tmp_path, tiny_dir, tiny256):
    ckpt = _save_torch(tmp_path / "model.ckpt", tiny256)
    other = DynamiCrafter(DynamiCrafterConfig.from_yaml(tiny_dir / "tiny512.yaml"))
    with pytest.raises(CheckpointMismatchError, match=r"attn2\.alpha|scale_arr") as e:
        load_weights(other, ckpt, "tiny512.yaml")
    assert "\n" not in str(e.value)


def test_mismatched_shape_names_key_and_both_shapes(tmp_path, tiny_dir, tiny256):
    key = "image_proj_model.latents"
    ckpt = _save_torch(tmp_path / "model.ckpt", tiny256, reshape=(key, (1, 8, 32)))
    fresh = DynamiCrafter(DynamiCrafterConfig.from_yaml(tiny_dir / "tiny256.yaml"))
    with pytest.raises(CheckpointMismatchError, match=r"image_proj_model\.latents.*file \[1, 8, 32\] vs model \[1, 32, 32\]"):
        load_weights(fresh, ckpt)


def test_partial_checkpoint_names_the_missing_key(tmp_path, tiny_dir, tiny256):
    ckpt = _save_torch(tmp_path / "model.ckpt", tiny256, drop=("first_stage_model.post_quant_conv.weight",))
    fresh = DynamiCrafter(DynamiCrafterConfig.from_yaml(tiny_dir / "tiny256.yaml"))
    with pytest.raises(CheckpointMismatchError, match="missing from the file, e.g. 'first_stage_model.post_quant_conv.weight'"):
        load_weights(fresh, ckpt)


def test_truncated_file(tmp_path, tiny_dir, tiny256):
    ckpt = _save_torch(tmp_path / "model.ckpt", tiny256)
    data = ckpt.read_bytes()
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(data[: len(data) // 2])
    fresh = DynamiCrafter(DynamiCrafterConfig.from_yaml(tiny_dir / "tiny256.yaml"))
    with pytest.raises(CheckpointError, match="cut.ckpt"):
        load_weights(fresh, cut)


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch EVIL_RAN",))


def test_malicious_pickle_is_refused_unrun(tmp_path, tiny_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.ckpt"
    with zipfile.ZipFile(path, "w") as z:  # torch zip layout with a payload in data.pkl
        z.writestr("evil/data.pkl", pickle.dumps({"state_dict": {"x": _Evil()}}, protocol=2))
        z.writestr("evil/version", "3\n")
    fresh = DynamiCrafter(DynamiCrafterConfig.from_yaml(tiny_dir / "tiny256.yaml"))
    with pytest.raises(UnsafeCheckpointError, match="system"):
        load_weights(fresh, path)
    assert not (tmp_path / "EVIL_RAN").exists()


def test_schedule_buffers_tell_512_from_1024(tmp_path, tiny_dir, dc):
    cfg512 = dc.tiny_config("512")
    cfg1024 = dc.tiny_config("512")
    cfg1024["model"]["params"]["base_scale"] = 0.3
    m1024 = DynamiCrafter(DynamiCrafterConfig.from_yaml(dc.write_config(tmp_path, cfg1024, "t1024.yaml")))
    ckpt = _save_torch(tmp_path / "m1024.ckpt", m1024, old_256_names=False)
    m512 = DynamiCrafter(DynamiCrafterConfig.from_yaml(dc.write_config(tmp_path, cfg512, "t512.yaml")))
    with pytest.raises(CheckpointMismatchError, match="scale_arr"):
        load_weights(m512, ckpt)


def test_clip_conversion_layout(tiny256):
    text = {k[len("cond_stage_model.model."):]: p.asnumpy() for k, p in tiny256.parameters_and_names()
            if k.startswith("cond_stage_model.model.")}
    visual = {k[len("embedder.model."):]: p.asnumpy() for k, p in tiny256.parameters_and_names()
              if k.startswith("embedder.model.visual.")}
    out = clip_to_dynamicrafter({**text, **visual, "attn_mask": np.zeros((77, 77), np.float32)})
    assert "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight" in out
    assert "embedder.model.visual.conv1.weight" in out and "embedder.model.token_embedding.weight" in out
    assert not any(k.startswith("embedder.model.transformer.") for k in out)
    with pytest.raises(CheckpointError, match="unexpected key 'foo'"):
        clip_to_dynamicrafter({"foo": np.zeros(1)})


def test_converter_clip_mode(tmp_path, dc):
    cfg = dc.tiny_config("256")
    cfg["model"]["params"]["img_cond_stage_config"]["params"]["arch"] = "t-text"  # one CLIP for both, as released
    path = dc.write_config(tmp_path, cfg, "same_clip.yaml")
    model = DynamiCrafter(DynamiCrafterConfig.from_yaml(path))
    dc.randomize(model, seed=12)
    params = dict(model.parameters_and_names())
    clip = {k[len("cond_stage_model.model."):]: v.asnumpy() for k, v in params.items()
            if k.startswith("cond_stage_model.model.")}
    clip.update({k[len("embedder.model."):]: v.asnumpy() for k, v in params.items()
                 if k.startswith("embedder.model.visual.")})
    src = tmp_path / "open_clip_pytorch_model.bin"
    torch.save({k: torch.from_numpy(v.copy()) for k, v in clip.items()}, src)
    out = tmp_path / "clip.ckpt"
    r = subprocess.run([sys.executable, str(dc.DC_DIR / "tools" / "convert_weight.py"), "--model_name", "clip",
                        "--src_ckpt", str(src), "--target_ckpt", str(out), "--config", str(path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    written = ms.load_checkpoint(str(out))
    want = {k for k in params if k.startswith(("cond_stage_model.", "embedder."))}
    assert set(written) == want
    np.testing.assert_array_equal(written["embedder.model.token_embedding.weight"].asnumpy(),
                                  params["cond_stage_model.model.token_embedding.weight"].asnumpy())


def _converter():
    from importlib import util

    spec = util.spec_from_file_location("dc_convert_weight", str(
        __import__("pathlib").Path(__file__).resolve().parents[1] / "tools" / "convert_weight.py"))
    mod = util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("bad,where", [
    ("missing_file", "--src"), ("mis_shaped", "image_proj_model.latents"), ("no_kind", "--kind"),
])
def test_converter_bad_input_is_one_line_and_exit_2(tmp_path, tiny_dir, tiny256, capsys, bad, where):
    conv = _converter()
    src = tmp_path / "nope.ckpt"
    if bad == "mis_shaped":
        src = _save_torch(tmp_path / "model.ckpt", tiny256, reshape=("image_proj_model.latents", (1, 8, 32)))
    argv = ["--src", str(src), "--target", str(tmp_path / "o.ckpt"), "--config", str(tiny_dir / "tiny256.yaml")]
    if bad != "no_kind":
        argv = ["--kind", "256", *argv]
    try:
        rc = conv.main(argv)
    except SystemExit as e:  # argparse's errors (one line too)
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1 and where in err, err
    assert "Traceback" not in err and not (tmp_path / "o.ckpt").exists()


def test_converter_allow_partial_writes_what_matches(tmp_path, tiny_dir, tiny256, capsys):
    key = "first_stage_model.post_quant_conv.weight"
    src = _save_torch(tmp_path / "model.ckpt", tiny256, drop=(key,))
    conv = _converter()
    argv = ["--kind", "256", "--src", str(src), "--output_dir", str(tmp_path / "ms"), "--config",
            str(tiny_dir / "tiny256.yaml")]
    assert conv.main(argv) == 2
    assert conv.main([*argv, "--allow_partial"]) == 0
    out = capsys.readouterr().out
    assert f"1 missing from the file, e.g. '{key}'" in out
    written = ms.load_checkpoint(str(tmp_path / "ms" / "model.ckpt"))
    assert key not in written and len(written) == len(list(tiny256.get_parameters())) - 1
