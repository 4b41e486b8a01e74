"""CLIP family against the golden numbers of the original PyTorch code (DynamiCrafter, SVD, AnimateDiff).

Reads every case of the three models under the golden root (``$GOLDEN_DIR`` or ``../shared/golden``):
case.json, tensors.safetensors and the checkpoint, through ``common.checkpoint`` and ``common.clip`` only
(no model package), and applies FORMAT.md's criterion ``max|ours - ref| <= tol * max(1, max|ref|)``.
"""
from __future__ import annotations

import mindspore as ms
import numpy as np
import pytest
import yaml

from common import golden
from common.checkpoint import load_state_dict_into, read_state_dict
from common.clip import (
    HF_CLIP_IGNORED_KEYS,
    CLIPTextModel,
    OpenCLIP,
    OpenCLIPTextTower,
    clip_preprocess,
    load_open_clip_config,
    tokenize,
)

CASES = {c.model: [] for c in golden.discover()}
for _c in golden.discover():
    CASES[_c.model].append(_c)


def _cases(model: str, check: str):
    found = [c for c in CASES.get(model, []) if check in c.check_names]
    assert found, f"no {model} golden case with a {check!r} check under {golden.golden_root()}"
    return [pytest.param(c, id=c.name) for c in found]


def _state_dict(path, prefix: str) -> dict[str, np.ndarray]:
    sd = read_state_dict(path, key_prefix=prefix)
    assert sd, f"{path}: no key starts with {prefix!r}"
    return sd


def _assert_close(name, ours, ref, tol):
    ok, line = golden.compare(name, ours, ref, tol)
    assert ok, line


def _dc_arch(case, stage: str):
    params = yaml.safe_load(case.config_path.read_text())["model"]["params"][stage]["params"]
    return load_open_clip_config(params["arch"], search_dirs=[case.root])


@pytest.mark.parametrize("case", _cases("dynamicrafter", "text_encoder"))
def test_dynamicrafter_text_encoder(case):
    cfg = _dc_arch(case, "cond_stage_config")
    layer = yaml.safe_load(case.config_path.read_text())["model"]["params"]["cond_stage_config"]["params"]["layer"]
    net = OpenCLIPTextTower(cfg, layer=layer)
    report = load_state_dict_into(net, _state_dict(case.path(case.manifest["checkpoint"]), "cond_stage_model.model."))
    assert report.ok and report.loaded == len(net.parameters_dict())
    check = case.check("text_encoder")
    out = net(ms.Tensor(check.inputs["tokens"])).asnumpy()
    _assert_close("context", out, check.expected["context"], check.tol)
    # prompts -> context in one call (get_learned_conditioning); the recorded tokens are open_clip's
    np.testing.assert_array_equal(tokenize(check.params["prompts"]), check.inputs["tokens"])
    _assert_close("context", net.encode(check.params["prompts"]).asnumpy(), check.expected["context"], check.tol)


@pytest.mark.parametrize("check_name", ["image_encoder", "image_encoder_downscale"])
@pytest.mark.parametrize("case", _cases("dynamicrafter", "image_encoder"))
def test_dynamicrafter_image_encoder(case, check_name):
    net = OpenCLIP(_dc_arch(case, "img_cond_stage_config"), text_transformer=False)
    load_state_dict_into(net, _state_dict(case.path(case.manifest["checkpoint"]), "embedder.model."))
    check = case.check(check_name)
    tokens = net.visual.forward_tokens(clip_preprocess(ms.Tensor(check.inputs["image"]))).asnumpy()
    _assert_close("tokens", tokens, check.expected["tokens"], check.tol)
    _assert_close("tokens", net.embed(ms.Tensor(check.inputs["image"]), "tokens").asnumpy(), check.expected["tokens"],
                  check.tol)


@pytest.mark.parametrize("case", _cases("svd", "image_encoder"))
def test_svd_image_encoder(case):
    cfgs = yaml.safe_load(case.config_path.read_text())["model"]["params"]["conditioner_config"]["params"]
    emb = cfgs["emb_models"][0]["params"]["open_clip_embedding_config"]["params"]
    net = OpenCLIP(load_open_clip_config(emb["arch"], search_dirs=[case.root]), text_transformer=False)
    ckpt = case.path(yaml.safe_load(case.config_path.read_text())["model"]["params"]["ckpt_path"])
    report = load_state_dict_into(net, _state_dict(ckpt, "conditioner.embedders.0.open_clip.model."))
    assert report.ok
    check = case.check("image_encoder")
    out = net.encode_image(clip_preprocess(ms.Tensor(check.inputs["image"]))).asnumpy()[:, None]  # (B, 1, D)
    _assert_close("crossattn", out, check.expected["crossattn"], check.tol)
    _assert_close("crossattn", net.embed(ms.Tensor(check.inputs["image"])).asnumpy()[:, None],
                  check.expected["crossattn"], check.tol)


@pytest.mark.parametrize("check_name", ["text_encoder", "text_encoder_dreambooth"])
@pytest.mark.parametrize("case", _cases("animatediff", "text_encoder"))
def test_animatediff_text_encoder(case, check_name):
    folder = case.path("models/StableDiffusion/stable-diffusion-v1-5/text_encoder")
    net = CLIPTextModel.from_config_file(folder)
    check = case.check(check_name)
    if check_name == "text_encoder":
        sd = _state_dict(folder / "model.safetensors", "")
    else:  # LDM single file: the same HF keys under cond_stage_model.transformer.
        sd = _state_dict(case.path(check.params["weights"][0]), "cond_stage_model.transformer.")
    report = load_state_dict_into(net, sd, ignore=[k.replace(".", r"\.") + "$" for k in HF_CLIP_IGNORED_KEYS])
    assert report.ok and report.ignored == 1
    ids = check.inputs["input_ids"]
    out = net(ms.Tensor(ids)).asnumpy()
    _assert_close("last_hidden_state", out, check.expected["last_hidden_state"], check.tol)
