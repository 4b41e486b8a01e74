"""SparseCtrl: condition images / cond+mask as the original builds them, the controlnet's properties (zeroed
sample, CFG broadcast, scale, residuals into the UNet), its checkpoint (wrapper, kind, strict keys), the converter,
the released full-size layout (no weights allocated), the prompt-config checks and the CLI end to end.

Numerical parity with the original is the golden case ``tiny_v3_sparsectrl`` (common/tests/test_golden.py)."""
import importlib.util
import re
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
import yaml
from animatediff_ms import sparsectrl as S
from animatediff_ms.config import ConfigError, ControlNetInferenceConfig, InferenceConfig, UNet3DConfig
from animatediff_ms.demo import TINY_UNET
from animatediff_ms.loading import build_unet, build_vae
from animatediff_ms.models import SparseControlNetModel, UNet3DConditionModel
from animatediff_ms.sd15 import SD15_UNET
from mindspore.nn.utils import no_init_parameters
from PIL import Image

from common.checkpoint import CheckpointMismatchError

PROJECT = Path(__file__).resolve().parents[1]
RGB_CFG = PROJECT / "configs" / "inference" / "sparsectrl" / "latent_condition.yaml"
SCRIBBLE_CFG = PROJECT / "configs" / "inference" / "sparsectrl" / "image_condition.yaml"
V3 = InferenceConfig.load(PROJECT / "configs" / "inference" / "inference-v3.yaml").unet_additional_kwargs


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


t2v = _load("sc_text_to_video", PROJECT / "text_to_video.py")
conv = _load("sc_convert_weight", PROJECT / "tools" / "convert_weight.py")


def state(net) -> dict:
    return {k: p.asnumpy().copy() for k, p in net.parameters_and_names()}


def torch_save(obj, path):
    import torch  # tests only: writes the released .ckpt format

    def conv_(o):
        if isinstance(o, dict):
            return {k: conv_(v) for k, v in o.items()}
        return torch.from_numpy(np.ascontiguousarray(o)) if isinstance(o, np.ndarray) else o
    torch.save(conv_(obj), path)


# ------------------------------------------------------------------------------------------ condition inputs
def test_cond_and_mask_place_images_at_their_frames():
    imgs = np.random.default_rng(0).standard_normal((1, 4, 3, 2, 2)).astype(np.float32)
    cond, mask = S.make_condition(imgs, [0, -1], 5)  # the third image is unused, as in the original
    assert cond.shape == (1, 4, 5, 2, 2) and mask.shape == (1, 1, 5, 2, 2)
    np.testing.assert_array_equal(cond[:, :, 0], imgs[:, :, 0])
    np.testing.assert_array_equal(cond[:, :, 4], imgs[:, :, 1])
    assert not cond[:, :, 1:4].any()
    assert mask[0, 0, :, 0, 0].tolist() == [1, 0, 0, 0, 1]
    cond, _ = S.make_condition(imgs, [2, 2], 5)  # a repeated frame keeps the later image (torch index_put)
    np.testing.assert_array_equal(cond[:, :, 2], imgs[:, :, 1])


@pytest.mark.parametrize("n,index,L,match", [
    (2, [0, 8], 8, r"index 8 is outside the video of L=8 frames"),
    (2, [0, -9], 8, r"index -9 is outside"),
    (1, [0, 4], 8, r"2 frame indices but only 1 controlnet_images"),
    (9, [0], 8, r"9 condition images for a video of L=8 frames"),
    (1, ["a"], 8, r"expected a list of frame indices"),
])
def test_condition_errors(n, index, L, match):
    with pytest.raises(ConfigError, match=match):
        S.check_condition(n, index, L)


def test_crop_box_is_torchvisions_deterministic_crop():
    assert S.crop_box(150, 100, 64, 96) == (0, 0, 100, 150)  # the W/H aspect: the whole image
    assert S.crop_box(200, 100, 64, 64) == (0, 50, 100, 100)  # wider: the central square
    assert S.crop_box(100, 300, 64, 128) == (125, 0, 50, 100)  # taller: the central 2:1 band


def test_condition_images_resize_and_normalise(tmp_path):
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (48, 72, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(rng.integers(40, 200, (48, 72), dtype=np.uint8), "L").save(tmp_path / "b.png")
    x = S.load_condition_images([tmp_path / "a.png", tmp_path / "b.png"], 32, 48)
    assert x.shape == (1, 3, 2, 32, 48) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    ref = np.asarray(Image.open(tmp_path / "a.png").resize((48, 32), Image.BILINEAR), np.float32) / 255
    np.testing.assert_allclose(x[0, :, 0], ref.transpose(2, 0, 1), atol=1e-7)
    n = S.load_condition_images([tmp_path / "b.png"], 32, 48, normalize=True)
    assert n.min() == 0 and n.max() == 1 and np.array_equal(n[0, 0], n[0, 2])


# ------------------------------------------------------------------------------------------ the controlnet
UNET_CFG = UNet3DConfig.from_files(dict(TINY_UNET, norm_num_groups=8, attention_head_dim=4), V3, "tiny")


def random_controlnet(cfg_path, seed=0):
    net = S.build_controlnet(UNET_CFG, cfg_path)
    S.init_random(net, seed)
    return net


@pytest.fixture(scope="module")
def nets():
    ms.set_seed(0)
    unet = UNet3DConditionModel(UNET_CFG)
    return {"rgb": random_controlnet(RGB_CFG, 1), "scribble": random_controlnet(SCRIBBLE_CFG, 2), "unet": unet}


def inputs(kind, b=2, f=3, seed=0):
    rng = np.random.default_rng(seed)
    size = 2 if kind == "rgb" else 16  # latents 2x2 (RGB condition at latent size, scribble at 8x)
    c = 4 if kind == "rgb" else 3
    cond, mask = S.make_condition(rng.random((1, c, 2, size, size), np.float32), [0, -1], f)
    return (ms.Tensor(rng.standard_normal((b, 4, f, 2, 2), np.float32)), ms.Tensor(np.array(500)),
            ms.Tensor(rng.standard_normal((b, 77, 32), np.float32)), ms.Tensor(cond), ms.Tensor(mask))


@pytest.mark.parametrize("kind", ["rgb", "scribble"])
def test_controlnet_residuals(nets, kind):
    net = nets[kind]
    heads = lambda blk: blk.attentions[0].transformer_blocks[0].attn1.heads  # noqa: E731
    assert net.mid_heads == 8 and heads(net.mid_block) == 8  # animate.py's 8 heads, whatever the UNet has (4)
    assert heads(net.down_blocks[0]) == 4
    sample, t, ehs, cond, mask = inputs(kind)
    down, mid = net(sample, t, ehs, cond, mask, 1.0)
    assert len(down) == 1 + 4 * 1 + 3 == net.num_residuals and tuple(mid.shape) == (2, 32, 3, 1, 1)
    assert [tuple(d.shape) for d in down][:3] == [(2, 32, 3, 2, 2)] * 2 + [(2, 32, 3, 1, 1)]
    down2, mid2 = net(sample * 0 + 7.0, t, ehs, cond, mask, 0.5)  # the noisy sample is replaced by zeros
    np.testing.assert_allclose(mid2.asnumpy(), 0.5 * mid.asnumpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(down2[5].asnumpy(), 0.5 * down[5].asnumpy(), rtol=1e-6, atol=1e-7)
    tiled = net(sample, t, ehs, ms.numpy.tile(cond, (2, 1, 1, 1, 1)), ms.numpy.tile(mask, (2, 1, 1, 1, 1)), 1.0)[1]
    # the batch-1 condition serves both CFG halves (a batch-2 copy differs only by float32 rounding of other kernels)
    np.testing.assert_allclose(tiled.asnumpy(), mid.asnumpy(), rtol=0, atol=1e-5 * np.abs(mid.asnumpy()).max())


def test_unet_takes_the_residuals(nets):
    unet, net = nets["unet"], nets["rgb"]
    sample, t, ehs, cond, mask = inputs("rgb")
    down, mid = net(sample, t, ehs, cond, mask, 1.0)
    plain = unet(sample, t, ehs).asnumpy()
    zero = unet(sample, t, ehs, tuple(d * 0 for d in down), mid * 0).asnumpy()
    np.testing.assert_array_equal(plain, zero)
    assert np.abs(unet(sample, t, ehs, down, mid).asnumpy() - plain).max() > 1e-3


# ------------------------------------------------------------------------------------------ checkpoints
def released_state(net):
    """A released-format dict: the parameters + the pos_encoder.pe tables the original stores."""
    sd = state(net)
    for k in list(sd):
        if k.endswith("attention_blocks.0.to_q.weight"):
            sd[k[: -len("to_q.weight")] + "pos_encoder.pe"] = np.zeros((1, 32, sd[k].shape[0]), np.float32)
    return sd


def test_checkpoint_wrapper_kind_and_strict_keys(nets, tmp_path):
    net = nets["scribble"]
    sd = released_state(net)
    torch_save({"controlnet": sd, "animatediff_config": {"x": 1}}, tmp_path / "scribble.ckpt")
    loaded = S.build_controlnet(UNET_CFG, SCRIBBLE_CFG, tmp_path / "scribble.ckpt")
    for k, v in state(loaded).items():
        np.testing.assert_array_equal(v, sd[k])
    with pytest.raises(ConfigError, match=r"is a SparseCtrl scribble checkpoint but controlnet_config "
                                          r"latent_condition.yaml describes the rgb kind"):
        S.build_controlnet(UNET_CFG, RGB_CFG, tmp_path / "scribble.ckpt")
    del sd["controlnet_down_blocks.3.bias"]
    torch_save(sd, tmp_path / "partial.ckpt")
    with pytest.raises(CheckpointMismatchError, match=r"1 missing from the file, e.g. 'controlnet_down_blocks.3.bias'"):
        S.build_controlnet(UNET_CFG, SCRIBBLE_CFG, tmp_path / "partial.ckpt")


def test_converter_both_kinds(tiny_weights, tmp_path, capsys):
    ucfg = build_unet(tiny_weights["sd"], V3, load=False).cfg
    for kind, cfg in (("rgb", RGB_CFG), ("scribble", SCRIBBLE_CFG)):
        net = S.build_controlnet(ucfg, cfg)
        S.init_random(net, 3)
        src = tmp_path / f"v3_sd15_sparsectrl_{kind}.ckpt"
        torch_save(released_state(net), src)
        rc = conv.main(["--kind", "sparsectrl", "--src", str(src), "--target", str(tmp_path / f"{kind}_ms.ckpt"),
                        "--pretrained_model_path", str(tiny_weights["sd"])])
        out = capsys.readouterr().out
        assert rc == 0 and f"a SparseCtrl {kind} file" in out and "position tables (recomputed): 4" in out
        back = S.build_controlnet(ucfg, cfg, tmp_path / f"{kind}_ms.ckpt")
        for k, v in state(back).items():
            np.testing.assert_array_equal(v, state(net)[k])
    rc = conv.main(["--kind", "sparsectrl", "--src", str(tmp_path / "v3_sd15_sparsectrl_rgb.ckpt"), "--target",
                    str(tmp_path / "x.ckpt"), "--pretrained_model_path", str(tiny_weights["sd"]),
                    "--controlnet_config", str(SCRIBBLE_CFG)])
    assert rc == 2 and "describes the scribble kind" in capsys.readouterr().err


@pytest.mark.parametrize("kind,cfg", [("rgb", RGB_CFG), ("scribble", SCRIBBLE_CFG)])
def test_released_full_size_layout(kind, cfg):
    """SD-1.5 sizes (no weights allocated): the key layout of v3_sd15_sparsectrl_{rgb,scribble}.ckpt."""
    with no_init_parameters():
        net = SparseControlNetModel(UNet3DConfig.from_files(SD15_UNET, V3), ControlNetInferenceConfig.load(cfg)
                                    .controlnet_additional_kwargs)
    shapes = {k: tuple(p.shape) for k, p in net.parameters_and_names()}
    assert len([k for k in shapes if re.fullmatch(r"controlnet_down_blocks\.\d+\.weight", k)]) == 12
    assert shapes["controlnet_down_blocks.11.weight"] == (1280, 1280, 1, 1)
    assert shapes["controlnet_mid_block.weight"] == (1280, 1280, 1, 1)
    assert shapes["mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight"] == (1280, 768)
    mm = "down_blocks.2.motion_modules.1.temporal_transformer.transformer_blocks.0."
    assert shapes[mm + "attention_blocks.0.to_q.weight"] == (1280, 1280)
    assert not any("attention_blocks.1" in k or k.startswith("up_blocks") for k in shapes)
    assert not any(k.startswith("mid_block.motion_modules") or k.startswith("down_blocks.3.motion_modules.2")
                   for k in shapes)
    if kind == "rgb":
        assert shapes["controlnet_cond_embedding.weight"] == (320, 5, 3, 3)
    else:
        assert shapes["controlnet_cond_embedding.conv_in.weight"] == (16, 4, 3, 3)
        assert shapes["controlnet_cond_embedding.blocks.5.weight"] == (256, 96, 3, 3)
        assert shapes["controlnet_cond_embedding.conv_out.weight"] == (320, 256, 3, 3)


# ------------------------------------------------------------------------------------------ prompt configs / CLI
@pytest.fixture(scope="module")
def controlnet_files(tiny_weights):
    root = tiny_weights["root"]
    ucfg = build_unet(tiny_weights["sd"], V3, load=False).cfg
    (root / "models" / "SparseCtrl").mkdir(exist_ok=True)
    for kind, cfg in (("rgb", RGB_CFG), ("scribble", SCRIBBLE_CFG)):
        net = S.build_controlnet(ucfg, cfg)
        S.init_random(net, 5)
        torch_save(released_state(net), root / "models" / "SparseCtrl" / f"v3_sd15_sparsectrl_{kind}.ckpt")
    rng = np.random.default_rng(2)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(root / f"cond_{i}.png")
    return root


def sparse_entry(kind="rgb", **kw):
    e = dict(inference_config="configs/inference/inference-v2.yaml", motion_module="models/Motion_Module/mm_tiny_v2.ckpt",
             controlnet_config=f"configs/inference/sparsectrl/{'latent' if kind == 'rgb' else 'image'}_condition.yaml",
             controlnet_path=f"models/SparseCtrl/v3_sd15_sparsectrl_{kind}.ckpt",
             controlnet_images=["cond_0.png", "cond_1.png"], controlnet_image_indexs=[0, -1],
             H=32, W=32, L=4, seed=[3], steps=2, guidance_scale=7.5, prompt=["a tiny test"], n_prompt=["blurry"])
    e.update(kw)
    return e


@pytest.mark.parametrize("entry,extra,match", [
    (dict(controlnet_images=["cond_0.png", "missing.png"]), [], r"controlnet_images\[1\]: file not found: missing.png"),
    (dict(controlnet_image_indexs=[0, 4]), [], r"controlnet_image_indexs: index 4 is outside the video of L=4"),
    (dict(controlnet_image_indexs=[0, 1, 2]), [], r"3 frame indices but only 2 controlnet_images"),
    (dict(controlnet_images=["cond_0.png"] * 3), ["--L", "2"], r"3 condition images for a video of L=2 frames"),
    (dict(controlnet_images=[]), [], r"controlnet_images: required with controlnet_path"),
    (dict(controlnet_path="models/SparseCtrl/v3_sd15_sparsectrl_scribble.ckpt"), [],
     r"v3_sd15_sparsectrl_scribble.ckpt is a SparseCtrl scribble checkpoint but controlnet_config "
     r"latent_condition.yaml describes the rgb kind; use image_condition.yaml"),
    (dict(controlnet_path=""), [], r"controlnet_path: missing \(controlnet_images are given"),
])
def test_bad_sparsectrl_input_one_line(tiny_weights, controlnet_files, tmp_path, capsys, monkeypatch, entry, extra,
                                       match):
    monkeypatch.chdir(controlnet_files)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump([sparse_entry(**entry)]))
    rc = t2v.main(["--config", str(tmp_path / "bad.yaml"), "--pretrained_model_path", str(tiny_weights["sd"]),
                   "--output_dir", str(tmp_path / "out"), "--no_progress"] + extra)
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert rc == 2 and err.startswith("error: ") and "\n" not in err, err
    assert re.search(match, err), err
    assert "load motion module" not in captured.out  # refused before any weight is loaded


def test_rgb_condition_is_encoded_by_the_base_vae(tiny_weights, controlnet_files, monkeypatch, tmp_path):
    from animatediff_ms.prompt_config import load_prompt_config
    from animatediff_ms.runner import build_entry_pipeline

    monkeypatch.chdir(controlnet_files)
    (tmp_path / "p.yaml").write_text(yaml.safe_dump([sparse_entry(
        dreambooth_path="models/DreamBooth_LoRA/tinyToon.safetensors")]))
    entry = load_prompt_config(tmp_path / "p.yaml")[0]
    pipe = build_entry_pipeline(entry, tiny_weights["sd"], log=None)
    base = build_vae(tiny_weights["sd"])
    want = S.encode_condition_images(base, pipe.condition.pixels, seed=3)
    np.testing.assert_allclose(pipe.condition.images, want, atol=1e-6)
    assert pipe.condition.images.shape == (1, 4, 2, 4, 4) and pipe.condition.index == [0, -1]
    assert not np.allclose(S.encode_condition_images(pipe.vae, pipe.condition.pixels, seed=3), want, atol=1e-3)


@pytest.mark.slow
def test_sparsectrl_cli_end_to_end(tiny_weights, controlnet_files, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(controlnet_files)
    cfg = [sparse_entry("rgb", adapter_lora_path="models/Motion_Module/v3_tiny_adapter.ckpt", adapter_lora_scale=0.8),
           sparse_entry("scribble", controlnet_images=["cond_2.png"], controlnet_image_indexs=[1],
                        normalize_condition_images=True)]
    (tmp_path / "sc.yaml").write_text(yaml.safe_dump(cfg))
    rc = t2v.main(["--config", str(tmp_path / "sc.yaml"), "--pretrained_model_path", str(tiny_weights["sd"]),
                   "--output_dir", str(tmp_path / "out"), "--no_progress", "--mode", "pynative"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert captured.out.count("loading controlnet checkpoint") == 2 and "load domain lora" in captured.out
    (d,) = list((tmp_path / "out").iterdir())
    assert sorted(p.name for p in (d / "control_images").iterdir()) == ["0-0.png", "0-1.png", "1-0.png"]
    assert len(list((d / "sample").glob("*.gif"))) == 2


@pytest.mark.slow
def test_sparsectrl_demo_config(tmp_path, capsys):
    rc = t2v.main(["--config", str(PROJECT / "configs" / "prompts" / "demo_sparsectrl.yaml"), "--output_dir",
                   str(tmp_path), "--steps", "1", "--L", "3", "--no_progress", "--mode", "pynative"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    (d,) = list(tmp_path.iterdir())
    assert len(list((d / "sample").glob("*.gif"))) == 2 and (d / "control_images").is_dir()
