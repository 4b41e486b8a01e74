"""tools/convert_weight.py: every kind converts, the MindSpore file loads to the same weights, bad files are refused."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from animatediff_ms import loading as L
from animatediff_ms.config import InferenceConfig
from animatediff_ms.loading import build_text_encoder, build_unet, build_vae

PROJECT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("ad_convert_weight", PROJECT / "tools" / "convert_weight.py")
conv = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(conv)


def params(net):
    return {k: p.asnumpy() for k, p in net.parameters_and_names()}


def run(tw, kind, src, out, capsys, *extra):
    rc = conv.main(["--kind", kind, "--src", str(src), "--target", str(out), "--pretrained_model_path", str(tw["sd"]),
                    *extra])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def unet(tw, v=2):
    return build_unet(tw["sd"], InferenceConfig.load(tw["root"] / "configs" / "inference" /
                                                     f"inference-v{v}.yaml").unet_additional_kwargs)


def test_motion_module_and_motion_lora(tiny_weights, tmp_path, capsys):
    tw = tiny_weights
    mm = tw["root"] / "models" / "Motion_Module" / "mm_tiny_v2.ckpt"
    rc = conv.main(["motion_module", str(mm), str(tmp_path / "mm.ckpt"), "--pretrained_model_path", str(tw["sd"])])
    out = capsys.readouterr().out  # the older positional form
    assert rc == 0 and "inference-v2.yaml" in out and "position tables (recomputed): 26" in out
    a, b = unet(tw), unet(tw)
    L.load_motion_module(a, mm)
    L.load_motion_module(b, tmp_path / "mm.ckpt")
    ml = tw["root"] / "models" / "MotionLoRA" / "v2_lora_TinyZoom.ckpt"
    assert run(tw, "motion_lora", ml, tmp_path / "ml.ckpt", capsys)[0] == 0
    L.load_motion_lora(a, ml, 0.7)
    L.load_motion_lora(b, tmp_path / "ml.ckpt", 0.7)
    pa, pb = params(a), params(b)
    assert all(np.array_equal(pa[k], pb[k]) for k in pa)


def test_dreambooth_lora_and_adapter(tiny_weights, tmp_path, capsys):
    tw = tiny_weights
    db = tw["root"] / "models" / "DreamBooth_LoRA" / "tinyToon.safetensors"
    rc, out, _ = run(tw, "dreambooth", db, tmp_path / "db.ckpt", capsys)
    assert rc == 0 and "LDM schedule buffers / EMA bookkeeping: 2" in out
    lora = tw["root"] / "models" / "DreamBooth_LoRA" / "tinyStyle_lora.safetensors"
    assert run(tw, "lora", lora, tmp_path / "lora.ckpt", capsys)[0] == 0
    ad = tw["root"] / "models" / "Motion_Module" / "v3_tiny_adapter.ckpt"
    assert run(tw, "adapter", ad, tmp_path / "ad.ckpt", capsys)[0] == 0
    models = []
    for d, lo, a in ((db, lora, ad), (tmp_path / "db.ckpt", tmp_path / "lora.ckpt", tmp_path / "ad.ckpt")):
        u, v, t = unet(tw), build_vae(tw["sd"]), build_text_encoder(tw["sd"])
        L.load_weights(u, v, t, dreambooth_model_path=str(d), lora_model_path=str(lo), lora_alpha=0.8,
                       adapter_lora_path=str(a), adapter_lora_scale=0.5, log=None)
        models.append([params(m) for m in (u, v, t)])
    for x, y in zip(*models):
        assert all(np.array_equal(x[k], y[k]) for k in x if not L.is_motion_param(k))


@pytest.mark.parametrize("kind,file,match", [
    ("lora", "wrongBase_lora.safetensors", "does not fit"),
    ("motion_module", "tinyToon.safetensors", "not motion-module keys"),
    ("dreambooth", "tinyStyle_lora.safetensors", "neither UNet, VAE"),
])
def test_files_that_do_not_fit_are_refused(tiny_weights, tmp_path, capsys, kind, file, match):
    src = next((tiny_weights["root"] / "models").glob(f"*/{file}"))
    rc, _, err = run(tiny_weights, kind, src, tmp_path / "x.ckpt", capsys)
    assert rc == 2 and match in err and err.strip().count("\n") == 0
    assert not (tmp_path / "x.ckpt").exists()


def test_misfit_motion_module_is_one_line_and_allow_partial_writes_it(tiny_weights, tmp_path, capsys):
    import torch

    from common.checkpoint import read_state_dict

    tw = tiny_weights
    sd = read_state_dict(tw["root"] / "models" / "Motion_Module" / "mm_tiny_v2.ckpt")
    key = next(k for k in sd if k.startswith("down_blocks.0.motion_modules.") and k.endswith(".weight"))
    sd[key] = np.zeros((3, 3), np.float32)
    bad = tmp_path / "mm_bad.ckpt"
    torch.save({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}, bad)
    rc, _, err = run(tw, "motion_module", bad, tmp_path / "x.ckpt", capsys, "--config",
                     str(tw["root"] / "configs" / "inference" / "inference-v2.yaml"))
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1 and f"'{key}': file [3, 3]" in err
    assert "mm_bad.ckpt" in err and not (tmp_path / "x.ckpt").exists()
    rc, _, _ = run(tw, "motion_module", bad, tmp_path / "x.ckpt", capsys, "--allow_partial")
    assert rc == 0 and (tmp_path / "x.ckpt").exists()


def test_bad_flags_are_one_line(tiny_weights, tmp_path, capsys):
    for argv in (["--kind", "motion_module", "--target", str(tmp_path / "x.ckpt")],  # no --src
                 ["nonsense", str(tmp_path), str(tmp_path / "x.ckpt")],  # unknown kind, positional form
                 ["--kind", "lora", "--src", str(tmp_path / "nope.safetensors"), "--target", str(tmp_path / "x")]):
        try:
            rc = conv.main(argv)
        except SystemExit as e:
            rc = e.code
        err = capsys.readouterr().err
        assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1, (argv, err)
    assert "(--src " in err
