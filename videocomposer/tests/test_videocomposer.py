"""VideoComposer: full-size layouts (no weights allocated), config / sampler / motion-vector units, the
weight loader's refusals, and run_net.py end to end on the tiny random model with its one-line errors.
(Numerical parity with the original is the golden checks' job: common/tests/test_golden.py.)"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from mindspore.nn.utils import no_init_parameters
from videocomposer_ms.config import VideoComposerConfig, load_config

from common.config import ConfigError

VC_DIR = Path(__file__).resolve().parents[1]
DEMO_CFG = VC_DIR / "configs" / "demo_tiny.yaml"
DEMO_VIDEO = VC_DIR / "demo_video" / "moving_sun.mp4"
DEMO_IMAGE = VC_DIR / "demo_video" / "sun_first_frame.png"
DEMO_STYLE = VC_DIR / "demo_video" / "style_gradient.png"

# ---- full-size layouts (shapes only) ------------------------------------------------------------------


@pytest.fixture(scope="module")
def released_cfg():
    return load_config(VC_DIR / "configs" / "exp02_motion_transfer.yaml")


def _shapes(cell) -> dict:
    return {n: tuple(p.shape) for n, p in cell.parameters_and_names()}


def test_full_size_unet_layout(released_cfg):
    """The released UNetSD_temporal (dim 320, mult 1,2,4,4, 2 res blocks, heads 8 x 64) as the original builds it."""
    from videocomposer_ms.unet import UNetSDTemporal

    with no_init_parameters():
        s = _shapes(UNetSDTemporal(released_cfg))
    assert s["input_blocks.0.0.weight"] == (320, 12, 3, 3)  # 4 latent + 8 concat channels
    assert s["input_blocks.0.1.proj_in.weight"] == (512, 320, 1)  # init temporal transformer: 8 heads x 64
    assert s["input_blocks.3.op.weight"] == (320, 320, 3, 3)  # bare downsampler
    assert s["input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"] == (320, 1024)
    assert s["input_blocks.1.0.temopral_conv.conv1.2.weight"] == (320, 320, 3, 1, 1)
    assert "input_blocks.10.1.norm.weight" not in s  # scale 1/8 has no attention
    assert s["middle_block.2.proj_in.weight"] == (1280, 1280, 1)
    assert s["middle_block.3.out_layers.3.weight"] == (1280, 1280, 3, 3)
    assert s["output_blocks.3.1.transformer_blocks.0.attn2.to_k.weight"] == (1280, 1024)
    assert s["output_blocks.2.1.conv.weight"] == (1280, 1280, 3, 3)  # no attention at 1/8: upsampler is .1
    assert s["output_blocks.5.3.conv.weight"] == (1280, 1280, 3, 3)  # res, spatial, temporal, upsampler
    assert s["pre_image_condition.2.weight"] == (1024, 1024)
    assert s["motion_embedding.0.weight"] == (32, 2, 3, 3) and s["masked_embedding.0.weight"] == (32, 4, 3, 3)
    assert s["mask_embedding_after.layers.0.0.fn.to_qkv.weight"] == (48, 8)
    assert s["out.2.weight"] == (4, 320, 3, 3)
    assert max(int(k.split(".")[1]) for k in s if k.startswith("input_blocks.")) == 11
    assert max(int(k.split(".")[1]) for k in s if k.startswith("output_blocks.")) == 11


def test_full_size_extractors_layout(released_cfg):
    from videocomposer_ms.midas import MiDaS, midas_config
    from videocomposer_ms.sketch import PiDiNet, SketchSimplification, pidinet_config

    with no_init_parameters():
        m = _shapes(MiDaS(midas_config(dict(released_cfg.midas_cfg))))
        p = _shapes(PiDiNet(pidinet_config(dict(released_cfg.pidinet_cfg))))
        c = _shapes(SketchSimplification(released_cfg.sketch_simplification_channels))
    assert m["pos_embedding"] == (1, 577, 1024) and m["conv1.1.weight"] == (256, 256, 4, 4)
    assert m["head.4.weight"] == (32, 1, 1, 1) and len([k for k in m if k.endswith("attn.to_qkv.weight")]) == 24
    assert p["init_block.weight"] == (60, 3, 3, 3) and p["block1_2.conv1.weight"] == (60, 1, 5, 5)  # rd -> 5x5
    assert p["block4_1.shortcut.weight"] == (240, 240, 1, 1) and p["dilations.3.conv1.weight"] == (24, 240, 1, 1)
    assert c["layers.0.weight"] == (48, 1, 5, 5) and c["layers.28.weight"] == (256, 256, 4, 4)
    assert c["layers.44.weight"] == (1, 24, 3, 3) and len(c) == 46


# ---- units ------------------------------------------------------------------------------------------


def test_config_refusals(tmp_path):
    with pytest.raises(ConfigError, match="guidance_scale.*did you mean 'guide_scale'"):
        load_config(_yaml(tmp_path, guidance_scale=3.0))
    with pytest.raises(ConfigError, match="'depth' needs 'depthmap'"):
        load_config(_yaml(tmp_path, video_compositions=["text", "motion"], guidances=["y", "depth"]))
    with pytest.raises(ConfigError, match="resolution: 512 gives a 64x64 latent"):
        load_config(_yaml(tmp_path, resolution=512))
    with pytest.raises(ConfigError, match="misc_size: 72 must be a multiple of the MiDaS patch"):
        load_config(_yaml(tmp_path, misc_size=72))
    with pytest.raises(ConfigError, match="canny"):
        VideoComposerConfig(video_compositions=["canny"], guidances=[])
    cfg = load_config(DEMO_CFG)
    assert (cfg.frames, cfg.videos_per_batch, cfg.unet_context_dim) == (4, 1, 64)


def test_step_list_and_schedule():
    from videocomposer_ms.pipeline import step_list, videocomposer_schedule

    assert step_list(3).tolist() == [999, 667, 334, 1]  # S not dividing 1000: one extra step
    assert step_list(50).tolist()[:2] == [981, 961] and step_list(50).tolist()[-1] == 1
    s = videocomposer_schedule(3)
    ac = np.cumprod(1 - np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000) ** 2)
    assert np.allclose(s.alphas_prev, ac[[666, 334, 1, 0]].astype(np.float32))  # t - 1000//S, clamped at 0


def test_motion_vectors_of_the_demo_clip():
    from videocomposer_ms.motion import extract_motion_vectors, start_index

    mv = extract_motion_vectors(DEMO_VIDEO, fps=4, min_frames=4)
    assert mv.fps == 4 and mv.frames.shape == (16, 96, 128, 3) and mv.mvs.shape == (16, 96, 128, 2)
    assert mv.frame_types[0] == "I" and "P" in mv.frame_types
    moving = mv.mvs[1:].reshape(-1, 2)
    moving = moving[np.any(moving != 0, axis=1)]
    assert len(moving) > 0 and np.median(np.abs(moving[:, 0])) > 0  # the sun moves horizontally
    assert start_index(mv.frame_types, 4, np.random.default_rng(0)) in (0, 12)


def test_motion_vectors_refuse_non_video(tmp_path):
    from videocomposer_ms.motion import MotionVectorError, extract_motion_vectors

    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    with pytest.raises(MotionVectorError, match="cannot decode video"):
        extract_motion_vectors(bad)
    with pytest.raises(MotionVectorError, match="not found"):
        extract_motion_vectors(tmp_path / "missing.mp4")


# ---- run_net.py -------------------------------------------------------------------------------------


def _yaml(tmp_path, name="cfg.yaml", **overrides):
    data = yaml.safe_load(DEMO_CFG.read_text())
    data.update(overrides)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def _argv(cfg, out, *extra):
    return ["--cfg", str(cfg), "--input_video", str(DEMO_VIDEO), "--image_path", str(DEMO_IMAGE),
            "--style_image", str(DEMO_STYLE), "--input_text_desc", "a sun", "--output_dir", str(out),
            "--num_inference_steps", "1", "--no_progress", *extra]


def _error(capsys, argv) -> str:
    from videocomposer_ms.inference import main

    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own refusals (one line, exit 2, through the parser's error())
        code = e.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.mark.slow
def test_run_net_demo_end_to_end(tmp_path, capsys):
    from videocomposer_ms.inference import main

    from common.video_io import read_video_frames

    assert main(_argv(DEMO_CFG, tmp_path, "--random_weights", "--seed", "7", "--attention_chunk_size", "256")) == 0
    out = capsys.readouterr().out
    assert "weights are random" in out
    folder = tmp_path / "demo_tiny-S00007"
    grid = read_video_frames(folder / "result.mp4")
    # source, local_image, motion, depth, sketch, result side by side
    assert grid.shape[0] == 4 and grid.shape[1:3] == (256, 6 * 256)
    assert (folder / "result.gif").stat().st_size > 0 and (folder / "video.mp4").is_file()
    assert (folder / "text_description.txt").read_text() == "a sun\n"


def test_run_net_help_names_every_flag(capsys):
    from videocomposer_ms.inference import build_parser

    text = build_parser().format_help()
    for flag in ("--cfg", "--seed", "--input_video", "--image_path", "--style_image", "--input_text_desc",
                 "--sketch_path", "--depth_path", "--output_dir", "--mode", "--num_inference_steps",
                 "--guidance_scale", "--weights_dir", "--random_weights", "--attention_chunk_size"):
        assert flag in text


def test_run_net_bad_inputs(tmp_path, capsys):
    rw = "--random_weights"
    assert "video not found: nope.mp4 (--input_video)" in _error(
        capsys, _argv(DEMO_CFG, tmp_path, rw, "--input_video", "nope.mp4"))
    assert "(--image_path)" in _error(capsys, _argv(DEMO_CFG, tmp_path, rw, "--image_path", "nope.png"))
    assert "config not found" in _error(capsys, _argv(tmp_path / "x.yaml", tmp_path, rw))
    assert "unknown key" in _error(capsys, _argv(_yaml(tmp_path, guide_scal=1.0), tmp_path, rw))
    assert "--num_inference_steps" in _error(capsys, _argv(DEMO_CFG, tmp_path, rw, "--num_inference_steps", "0"))
    assert "weights folder not found: nowhere (--weights_dir; --random_weights runs without weights)" in _error(
        capsys, _argv(DEMO_CFG, tmp_path, "--weights_dir", "nowhere"))
    (tmp_path / "a_file").write_text("x")
    assert "lies below the file" in _error(capsys, _argv(DEMO_CFG, tmp_path / "a_file" / "o", rw))
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64))
    assert "is not a picture (a video?)" in _error(capsys, _argv(DEMO_CFG, tmp_path, rw, "--image_path", str(video)))
    assert "invalid choice" in _error(capsys, _argv(DEMO_CFG, tmp_path, "--mode", "eager"))


# ---- weight files -----------------------------------------------------------------------------------


def _torch_save_unet(cfg_path, path):
    """The tiny UNet of ``cfg_path`` saved as the released layout (a plain torch state dict)."""
    import torch
    from videocomposer_ms.model import build_unet

    sd = {n: torch.from_numpy(p.asnumpy().copy()) for n, p in build_unet(load_config(cfg_path)).parameters_and_names()}
    torch.save(sd, path)


def test_weights_refusals(tmp_path, capsys):
    wdir = tmp_path / "w"
    wdir.mkdir()
    unet = wdir / "non_ema_228000.pth"
    # weights without the depth / sketch encoders the config's guidances need
    _torch_save_unet(_yaml(tmp_path, "nodepth.yaml", video_compositions=["text", "motion", "image", "local_image"],
                           guidances=["y", "motion"]), unet)
    err = _error(capsys, _argv(DEMO_CFG, tmp_path, "--weights_dir", str(wdir)))
    assert "lack the condition encoder(s) mask, depthmap, sketch, single_sketch" in err and "non_ema_228000.pth" in err
    # a truncated file
    data = unet.read_bytes()
    unet.write_bytes(data[: len(data) // 2])
    err = _error(capsys, _argv(DEMO_CFG, tmp_path, "--weights_dir", str(wdir)))
    assert "non_ema_228000.pth" in err
    # a pickle that would run a command: refused, never run
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os
            return (os.system, (f"touch {marker}",))

    with zipfile.ZipFile(unet, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"x": Evil()}, protocol=2))
        z.writestr("archive/version", "3\n")
    err = _error(capsys, _argv(DEMO_CFG, tmp_path, "--weights_dir", str(wdir)))
    assert "system" in err and not marker.exists()


def test_weights_mismatched_shape(tmp_path, capsys):
    wdir = tmp_path / "w"
    wdir.mkdir()
    _torch_save_unet(_yaml(tmp_path, "wide.yaml", unet_dim=64), wdir / "non_ema_228000.pth")
    err = _error(capsys, _argv(DEMO_CFG, tmp_path, "--weights_dir", str(wdir)))
    assert "mis-shaped" in err and "file [256, 64] vs model [128, 32]" in err


# ---- tools/convert_weight.py ------------------------------------------------------------------------


def _converter():
    import importlib.util

    spec = importlib.util.spec_from_file_location("vc_convert_weight", VC_DIR / "tools" / "convert_weight.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_convert_weight(tmp_path, capsys):
    from common.checkpoint import read_state_dict

    conv = _converter()
    src = tmp_path / "non_ema_228000.pth"
    _torch_save_unet(DEMO_CFG, src)
    assert conv.main(["--kind", "unet", "--src", str(src), "--config", str(DEMO_CFG), "--output_dir", str(tmp_path)]) == 0
    out = read_state_dict(tmp_path / "non_ema_228000.ckpt")
    assert set(out) == set(read_state_dict(src)) and "converted" in capsys.readouterr().out
    # run_net finds the converted UNet (<stem>.ckpt) when the released file is absent; the next part is missing
    src.unlink()
    assert "clip weights not found" in _error(capsys, _argv(DEMO_CFG, tmp_path, "--weights_dir", str(tmp_path)))
    # the wrong part for the file, a missing file, no --kind: one line, exit 2, nothing written
    assert conv.main(["--kind", "vae", "--src", str(src), "--config", str(DEMO_CFG), "--target", str(tmp_path / "v")]) == 2
    assert not (tmp_path / "v.ckpt").exists()
    assert conv.main(["--kind", "unet", "--src", str(tmp_path / "no.pth"), "--config", str(DEMO_CFG),
                      "--target", str(tmp_path / "u")]) == 2
    with pytest.raises(SystemExit) as e:
        conv.main(["--src", str(src), "--config", str(DEMO_CFG), "--target", str(tmp_path / "u")])
    assert e.value.code == 2
    errs = [ln for ln in capsys.readouterr().err.splitlines() if ln]
    assert len(errs) == 3 and all(ln.startswith("error: ") for ln in errs)


def test_output_blocks_attend_to_the_hardcoded_width():
    """Input and middle transformers use ``unet_context_dim``; the output blocks and pre_image_condition the
    width the original hard-codes (``hardcoded_context_dim``)."""
    from videocomposer_ms.unet import UNetSDTemporal

    cfg = load_config(DEMO_CFG, {"unet_context_dim": 48, "hardcoded_context_dim": 80, "unet_dim_mult": [1, 1, 1],
                                 "unet_attn_scales": [1.0, 0.5]})
    with no_init_parameters():
        s = _shapes(UNetSDTemporal(cfg))
    k = {n: v[1] for n, v in s.items() if n.endswith("attn2.to_k.weight") and "transformer_blocks" in n
         and v[1] in (48, 80)}
    assert {n.split(".")[0] for n, w in k.items() if w == 48} == {"input_blocks", "middle_block"}
    assert {n.split(".")[0] for n, w in k.items() if w == 80} == {"output_blocks"}
    assert s["pre_image_condition.0.weight"] == (80, 80)


@pytest.mark.slow
def test_pipeline_every_condition():
    """exp01's guidances (all eight conditions) through the pipeline: each panel is there and in [0, 1]."""
    from videocomposer_ms.pipeline import VideoComposerPipeline

    every = ["y", "local_image", "image", "depth", "sketch", "masked", "motion", "single_sketch"]
    cfg = load_config(DEMO_CFG, {"guidances": every, "read_image": False, "read_style": False, "max_frames": 2,
                                 "share_noise": True})
    out = VideoComposerPipeline(cfg)("a sun", video=DEMO_VIDEO, num_inference_steps=1, seed=3, progress=False)
    assert out.frames.shape == (1, 2, 256, 256, 3) and out.source.shape == (1, 2, 256, 256, 3)
    assert list(out.conditions) == [g for g in every if g not in ("y", "image")]
    for v in out.conditions.values():
        assert v.shape == (1, 2, 256, 256, 3) and v.min() >= 0 and v.max() <= 1
    masked = out.conditions["masked"]
    assert np.any(masked == 1.0)  # the blanked region is drawn white
    assert np.isfinite(out.latents).all()


@pytest.mark.slow
def test_unet_graph_mode_equals_pynative():
    """--mode graph compiles the UNet with its condition encoders and style token; same numbers as PyNative."""
    import mindspore as ms
    from videocomposer_ms.model import build_unet

    cfg = load_config(DEMO_CFG, {"max_frames": 2, "unet_attn_scales": []})
    unet = build_unet(cfg)
    rng = np.random.default_rng(0)

    def t(*shape):
        return ms.Tensor(rng.standard_normal(shape).astype(np.float32))

    args = (t(1, 4, 2, 32, 32), ms.Tensor(np.array([500], np.int64)), t(1, 77, 64))
    kw = {"image": t(1, 1, 64), "motion": t(1, 2, 2, 40, 48), "masked": t(1, 4, 2, 24, 24)}
    eager = unet(*args, **kw).asnumpy()
    ms.set_context(mode=ms.GRAPH_MODE)
    try:
        graph = unet(*args, **kw).asnumpy()
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)
    np.testing.assert_allclose(graph, eager, atol=1e-5)


def test_full_size_layouts_equal_the_original_modules(released_cfg):
    """Every key and shape of the released-size modules, as the original code builds them (the key -> shape
    table in ``data/released_layouts.json.gz``, see its ``_source``), equals ours: what the released files
    hold loads with the empty rename tables (parameters are not allocated)."""
    import gzip
    import json

    from videocomposer_ms.midas import MiDaS, midas_config
    from videocomposer_ms.sketch import PiDiNet, SketchSimplification, pidinet_config
    from videocomposer_ms.unet import UNetSDTemporal
    from videocomposer_ms.weights import MIDAS_RENAMES, SKETCH_RENAMES, UNET_RENAMES

    from common.checkpoint import match_state_dict

    with gzip.open(Path(__file__).parent / "data" / "released_layouts.json.gz", "rt") as f:
        ref = json.load(f)
    cfg = released_cfg
    with no_init_parameters():
        parts = {"unet": (UNetSDTemporal(cfg), UNET_RENAMES), "midas": (MiDaS(midas_config(dict(cfg.midas_cfg))), MIDAS_RENAMES),
                 "pidinet": (PiDiNet(pidinet_config(dict(cfg.pidinet_cfg))), []),
                 "sketch": (SketchSimplification(cfg.sketch_simplification_channels), SKETCH_RENAMES)}
    for name, (net, rename) in parts.items():
        _, report = match_state_dict(net, {k: tuple(v) for k, v in ref[name].items()}, rename=rename)
        assert report.ok, f"{name}: {report.summary()}"
    assert len(ref["unet"]) == 1574
