"""The inference command line end to end (tiny random model) and its one-line errors."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from dynamicrafter_ms.inference import main
from PIL import Image

from common.video_io import read_video_frames


@pytest.fixture(scope="module")
def cli_cfg(tmp_path_factory, dc):
    d = tmp_path_factory.mktemp("cli")
    return dc.write_config(d, dc.tiny_config("256"), "tiny.yaml"), dc.write_config(d, dc.tiny_config("512"), "t512.yaml")


@pytest.fixture(scope="module")
def interp_cfg(tmp_path_factory, dc):
    """A tiny config of the 512 interp release's kind (``interp_mode: true``)."""
    cfg = dc.tiny_config("512", frames=4)
    cfg["model"]["params"]["interp_mode"] = True
    return dc.write_config(tmp_path_factory.mktemp("cli_interp"), cfg, "tiny_interp.yaml")


def _pictures(folder, n, prompts):
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (50 + 10 * i, 80, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    (folder / "prompts.txt").write_text("".join(f"{p}\n" for p in prompts))
    return folder


@pytest.fixture
def one_picture(tmp_path):
    d = tmp_path / "one"
    d.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (70, 90, 3), dtype=np.uint8)).save(d / "pic.png")
    (d / "prompts.txt").write_text("a boat on a lake\n")
    return d


def _args(cfg, prompts, savedir, *extra):
    return ["--config", str(cfg), "--prompt_dir", str(prompts), "--savedir", str(savedir), "--height", "64",
            "--width", "64", "--video_length", "2", "--ddim_steps", "2", "--unconditional_guidance_scale", "7.5",
            "--text_input", "--no_progress", *extra]


#: the tests of other features run eagerly: each graph-mode run compiles its model's UNet (~15 s here); the
#: default graph path is run by test_cli_writes_a_playable_video and checked against PyNative in the pipeline tests
PYNATIVE = ("--mode", "pynative")


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_cli_writes_a_playable_video(cli_cfg, one_picture, tmp_path):
    assert main(_args(cli_cfg[0], one_picture, tmp_path / "out", "--random_init", "--save_gif")) == 0
    mp4 = tmp_path / "out" / "samples_separate" / "pic_sample0.mp4"
    frames = read_video_frames(mp4)
    assert frames.shape == (2, 64, 64, 3) and frames.dtype == np.uint8
    assert (tmp_path / "out" / "samples_separate" / "pic_sample0.gif").stat().st_size > 0


def test_cli_memory_knobs_follow_the_free_memory_and_the_flags(cli_cfg, one_picture, tmp_path):
    """Graph mode (the default) asks common.memory_plan (the 256 release's figures): 256x256 x 16 frames with CFG
    runs stacked with 64 GiB free and split with 23 GiB (budget 19.55: stacked 22.7, split 19.1 GiB estimated);
    320x512 with 23 GiB adds feed-forward chunks and attention chunks of 256; flags win; pynative: stacked."""
    from dynamicrafter_ms.inference import get_parser, memory_knobs

    def knobs(*flags, free):
        args = get_parser().parse_args(_args(cli_cfg[0], one_picture, tmp_path, "--video_length", "16", *flags))
        return memory_knobs(args, available_gib=free)[:3]

    assert knobs("--height", "256", "--width", "256", free=64) == (False, None, None)
    assert knobs("--height", "256", "--width", "256", free=23) == (True, None, None)
    assert knobs("--height", "256", "--width", "256", free=21) == (True, 256, 4096)  # budget 17.85 < 19.1
    assert knobs("--height", "320", "--width", "512", free=23) == (True, 256, 4096)
    assert knobs("--height", "320", "--width", "512", "--no_split_cfg", "--attention_chunk", "64", "--ff_chunk", "8",
                 free=23) == (False, 64, 8)
    assert knobs("--height", "256", "--width", "256", "--split_cfg", free=64) == (True, None, None)
    assert knobs("--height", "320", "--width", "512", *PYNATIVE, free=1) == (False, 512, None)
    assert knobs("--height", "256", "--width", "256", "--unconditional_guidance_scale", "1", free=1)[0] is False


def test_cli_dpmpp_2m_writes_a_video_and_records_the_sampler(cli_cfg, one_picture, tmp_path):
    import json

    assert main(_args(cli_cfg[1], one_picture, tmp_path / "out", "--random_init", "--sampler", "dpmpp_2m",
                      "--frame_stride", "24", *PYNATIVE)) == 0
    mp4 = tmp_path / "out" / "samples_separate" / "pic_sample0.mp4"
    assert read_video_frames(mp4).shape == (2, 64, 64, 3)
    settings = json.loads(mp4.with_suffix(".json").read_text())["settings"]
    assert settings["sampler"] == "dpmpp_2m" and settings["ddim_eta"] is None


@pytest.mark.parametrize("mode,pictures,frames", [("--interp", 2, 4), ("--loop", 1, 3)])
def test_cli_interp_and_loop_write_playable_videos(interp_cfg, tmp_path, mode, pictures, frames):
    """``--interp`` (one picture pair) and ``--loop`` end to end, with run_application.sh's options;
    ``--loop`` saves T-1 frames as the original does."""
    d = _pictures(tmp_path / "p", pictures, ["a boat drifting"])
    out = tmp_path / "out"
    argv = _args(interp_cfg, d, out, "--random_init", mode, "--video_length", "4", "--ddim_steps", "2",
                 "--frame_stride", "5", "--timestep_spacing", "uniform_trailing", "--guidance_rescale", "0.7",
                 "--perframe_ae", *PYNATIVE)
    assert main(argv) == 0
    video = read_video_frames(out / "samples_separate" / "p0_sample0.mp4")
    assert video.shape == (frames, 64, 64, 3) and video.dtype == np.uint8
    assert sorted(p.name for p in (out / "samples_separate").iterdir()) == ["p0_sample0.json", "p0_sample0.mp4"]


def test_interp_and_loop_refuse_other_models(capsys, cli_cfg, interp_cfg, tmp_path):
    pair = _pictures(tmp_path / "pair", 2, ["a boat drifting"])
    for mode in ("--interp", "--loop"):
        msg = _error(capsys, _args(cli_cfg[0], pair, tmp_path, "--random_init", mode))
        assert f"{mode} needs the interpolation model" in msg and "tiny.yaml" in msg
    odd = _pictures(tmp_path / "odd", 3, ["a boat drifting"])
    msg = _error(capsys, _args(interp_cfg, odd, tmp_path, "--random_init", "--interp", "--video_length", "4"))
    assert "in pairs" in msg and "3 pictures, an odd number" in msg
    msg = _error(capsys, _args(interp_cfg, pair, tmp_path, "--random_init", "--interp", "--video_length", "3"))
    assert "--interp needs an even --video_length" in msg
    msg = _error(capsys, _args(interp_cfg, pair, tmp_path, "--random_init", "--interp", "--loop"))
    assert "exclude each other" in msg


def test_interp_accepts_the_configs_the_original_pairs_with_the_interp_checkpoint(dc):
    from dynamicrafter_ms.config import DynamiCrafterConfig
    from dynamicrafter_ms.inference import two_frame_model

    configs = dc.DC_DIR / "configs"
    ok = {name: two_frame_model(DynamiCrafterConfig.from_yaml(configs / name)) for name in (
        "inference_512_interp_v1.0.yaml", "inference_512_v1.0.yaml", "inference_512_interp_tiny_demo.yaml",
        "inference_256_v1.0.yaml", "inference_1024_v1.0.yaml", "inference_256_tiny_demo.yaml")}
    assert [name for name, yes in ok.items() if yes] == list(ok)[:3]


def _torch_ckpt(path, model, rename_256=True):
    sd = {(n.replace("fps_embedding", "framestride_embed") if rename_256 else n): torch.from_numpy(p.asnumpy().copy())
          for n, p in model.parameters_and_names()}
    torch.save({"state_dict": sd}, path)
    return path


def test_cli_with_a_checkpoint_is_deterministic(cli_cfg, one_picture, tmp_path, tiny_model):
    ckpt = _torch_ckpt(tmp_path / "model.ckpt", tiny_model)
    outs = []
    for run in ("a", "b"):
        assert main(_args(cli_cfg[0], one_picture, tmp_path / run, "--ckpt_path", str(ckpt), "--seed", "7",
                          "--ddim_steps", "1", "--unconditional_guidance_scale", "1.0", *PYNATIVE)) == 0
        outs.append(read_video_frames(tmp_path / run / "samples_separate" / "pic_sample0.mp4"))
    np.testing.assert_array_equal(outs[0], outs[1])


@pytest.mark.parametrize("flags,message", [
    (["--height", "60"], "--height 60 is not a positive multiple of 8"),
    (["--width", "72"], "--width 72: the UNet (2 levels) needs a multiple of 16"),
    (["--height", "128"], "do not match the checkpoint's size 64x64"),
    (["--video_length", "0"], "--video_length must be >= 1"),
    ([], "no checkpoint: pass --ckpt_path"),
    (["--random_init", "--dtype", "bfloat16"], "no bfloat16 MatMul kernel on CPU"),
    (["--ckpt_path", "/nonexistent/model.ckpt"], "checkpoint not found: /nonexistent/model.ckpt (--ckpt_path)"),
    (["--ckpt_path", "/"], "checkpoint / is a folder, not a file (--ckpt_path)"),
    (["--random_init", "--frame_stride", "0"], "--frame_stride must be >= 1, got 0"),
    (["--random_init", "--attention_chunk", "-1"], "--attention_chunk must be >= 0 (0 = auto), got -1"),
    (["--random_init", "--ddim_steps", "0"], "--ddim_steps must be >= 1, got 0"),
    (["--random_init", "--sampler", "dpmpp_2m", "--ddim_eta", "1.0"],
     "--ddim_eta 1.0: --sampler dpmpp_2m is deterministic (DDIM eta 0)"),
    (["--random_init", "--sampler", "dpmpp_2m", "--ddim_steps", "1000"], "dpmpp_2m takes at most 999 steps"),
])
def test_bad_flags(capsys, cli_cfg, one_picture, tmp_path, flags, message):
    assert message in _error(capsys, _args(cli_cfg[0], one_picture, tmp_path, *flags))


def test_output_folder_below_a_file_is_refused_before_any_work(capsys, cli_cfg, one_picture, tmp_path):
    (tmp_path / "f").write_text("x")
    msg = _error(capsys, _args(cli_cfg[0], one_picture, tmp_path / "f" / "out", "--random_init"))
    assert f"lies below the file {tmp_path / 'f'} (--savedir)" in msg


def test_bad_input_through_the_real_command(cli_cfg, one_picture, tmp_path):
    # the script itself: one line, exit 2, no traceback, usage errors included
    from .conftest import DC_DIR

    for extra, message in ([["--random_init", "--height", "60"], "--height 60 is not a positive multiple of 8"],
                           [["--random_init", "--bs", "two"], "argument --bs: invalid int value: 'two' (see --help)"]):
        r = subprocess.run([sys.executable, "inference.py", *_args(cli_cfg[0], one_picture, tmp_path / "o", *extra)],
                           cwd=DC_DIR, capture_output=True, text=True, timeout=300)
        err = r.stderr.strip()
        assert r.returncode == 2 and err.count("\n") == 0 and err.startswith("error: ") and message in err, err
        assert not (tmp_path / "o").exists()


def test_bad_prompt_folders(capsys, cli_cfg, tmp_path):
    d = tmp_path / "p"
    d.mkdir()
    (d / "prompts.txt").write_text("a prompt\n")
    assert "holds 0 pictures" in _error(capsys, _args(cli_cfg[0], d, tmp_path, "--random_init"))
    (d / "pic.png").write_bytes(b"\x89PNG broken")
    assert "cannot read image" in _error(capsys, _args(cli_cfg[0], d, tmp_path, "--random_init"))
    (d / "prompts.txt").write_text("\n")
    assert "is empty" in _error(capsys, _args(cli_cfg[0], d, tmp_path, "--random_init"))
    assert f"config not found: {tmp_path / 'no.yaml'} (--config)" in _error(
        capsys, _args(tmp_path / "no.yaml", d, tmp_path, "--random_init"))


def test_bad_checkpoints(capsys, cli_cfg, one_picture, tmp_path, dc):
    from dynamicrafter_ms.config import DynamiCrafterConfig
    from dynamicrafter_ms.model import DynamiCrafter

    other = _torch_ckpt(tmp_path / "m512.ckpt", DynamiCrafter(DynamiCrafterConfig.from_yaml(cli_cfg[1])), False)
    msg = _error(capsys, _args(cli_cfg[0], one_picture, tmp_path, "--ckpt_path", str(other)))
    assert "does not fit the model" in msg and ("alpha" in msg or "scale_arr" in msg)
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(other.read_bytes()[:5000])
    assert "cut.ckpt" in _error(capsys, _args(cli_cfg[0], one_picture, tmp_path, "--ckpt_path", str(cut)))

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path}/EVIL",))

    evil = tmp_path / "evil.ckpt"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"state_dict": Evil()}, protocol=2))
    msg = _error(capsys, _args(cli_cfg[0], one_picture, tmp_path, "--ckpt_path", str(evil)))
    assert "system" in msg and not (tmp_path / "EVIL").exists()


def test_a_checkpoint_of_another_config_names_the_shipped_one_that_fits(capsys, one_picture, tmp_path, dc):
    from dynamicrafter_ms.config import DynamiCrafterConfig
    from dynamicrafter_ms.model import DynamiCrafter

    configs = dc.DC_DIR / "configs"
    ckpt = _torch_ckpt(tmp_path / "tiny256.ckpt", DynamiCrafter(DynamiCrafterConfig.from_yaml(
        configs / "inference_256_tiny_demo.yaml")))
    msg = _error(capsys, _args(configs / "inference_512_interp_tiny_demo.yaml", one_picture, tmp_path / "out",
                               "--ckpt_path", str(ckpt), "--any_size"))
    assert "does not fit the model" in msg and msg.endswith(
        f"it fits inference_256_tiny_demo.yaml: pass --config {configs / 'inference_256_tiny_demo.yaml'} (--ckpt_path)")


def _sh(*args, env=None, timeout=600):
    run = os.path.join(os.path.dirname(__file__), "..", "scripts", "run", "run_infer.sh")
    return subprocess.run(["sh", run, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def _app(*args, env=None, timeout=600):
    run = os.path.join(os.path.dirname(__file__), "..", "scripts", "run", "run_application.sh")
    return subprocess.run(["sh", run, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_run_application_rejects_unknown_mode():
    r = _app("morph")
    assert r.returncode == 2 and "unknown application 'morph'" in r.stderr and "interp or loop" in r.stderr


@pytest.mark.slow
def test_run_application_random_demo_writes_mp4(tmp_path):
    """``sh scripts/run/run_application.sh loop`` with no checkpoint, shortened by extra flags (PyNative)."""
    r = _app("loop", "", "--video_length", "2", "--ddim_steps", "1", "--mode", "pynative",
             env={"SAVEDIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "RANDOMLY INITIALISED" in r.stdout and "DynamiCrafter_512_Interp" in r.stdout
    frames = read_video_frames(tmp_path / "samples_separate" / "rocket_sample0.mp4")
    assert frames.shape == (1, 320, 512, 3)


def test_run_infer_rejects_unknown_resolution():
    r = _sh("384")
    assert r.returncode == 2 and "unknown resolution '384'" in r.stderr and "256, 512 or 1024" in r.stderr


def test_run_infer_needs_a_checkpoint_for_512():
    r = _sh("512")
    assert r.returncode == 2 and "no checkpoint given for 512" in r.stderr


@pytest.mark.slow
def test_run_infer_random_demo_writes_mp4(tmp_path):
    """The README demo (``sh scripts/run/run_infer.sh 256``), shortened by extra flags."""
    r = _sh("256", "", "--video_length", "2", "--ddim_steps", "1", env={"SAVEDIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "RANDOMLY INITIALISED" in r.stdout and "Hugging Face" in r.stdout
    frames = read_video_frames(tmp_path / "samples_separate" / "astronaut_sample0.mp4")
    assert frames.shape == (2, 256, 256, 3)
