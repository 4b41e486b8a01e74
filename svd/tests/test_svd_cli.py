"""image_to_video.py end to end on tiny models: random-weight demo, a checkpoint, --help, bad flags."""
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from safetensors.numpy import save_file

from common.video_io import read_video_frames

from .conftest import SVD_DIR, TINY_CONFIG

pytestmark = pytest.mark.slow


def _run(*args, cwd=SVD_DIR):
    return subprocess.run([sys.executable, "image_to_video.py", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def test_help_explains_every_flag():
    r = _run("--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    for flag in ("--SVD.config", "--SVD.checkpoint", "--SVD.num_frames", "--SVD.fps", "--SVD.motion_bucket_id",
                 "--SVD.noise_aug_strength", "--SVD.decode_chunk_size", "--image", "--seed", "--output_dir", "--mode",
                 "--num_steps", "--attn_chunk_size", "--ff_chunk_size", "--split_cfg", "--no_split_cfg", "--sampler"):
        assert flag in text
    assert "fps_id = fps - 1" in text and "more motion" in text and "RANDOM" in text
    assert "DPM-Solver++ 2M" in text and "EulerEDMSampler" in text


def test_random_demo_writes_a_real_mp4_and_says_so(tmp_path):
    r = _run("--SVD.num_frames=3", "--num_steps=2", f"--output_dir={tmp_path}", "--mode=pynative")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "weights are RANDOM" in r.stderr and "RANDOM weights" in r.stdout
    assert "SVD sampling" in r.stderr  # the progress bar
    (mp4,) = tmp_path.glob("*.mp4")
    frames = read_video_frames(mp4)
    assert frames.shape == (3, 128, 192, 3) and frames.std() > 1.0


def test_a_checkpoint_of_another_config_names_the_one_that_fits(tiny_model, tmp_path):
    ckpt = tmp_path / "tiny.safetensors"
    save_file({p.name: p.asnumpy() for p in tiny_model.get_parameters()}, str(ckpt))
    r = _run("--SVD.config=configs/svd_xt.yaml", f"--SVD.checkpoint={ckpt}", "--image=assets/demo.png",
             f"--output_dir={tmp_path}")
    err = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert err.startswith("error: checkpoint does not fit the model") and "it fits svd_tiny.yaml: pass --SVD.config" in err
    assert err.endswith("(--SVD.config)")


def test_checkpoint_run_resizes_the_image(tiny_model, tmp_path):
    ckpt = tmp_path / "tiny.safetensors"
    save_file({p.name: p.asnumpy() for p in tiny_model.get_parameters()}, str(ckpt))
    img = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (70, 140, 3), dtype=np.uint8)).save(img)
    r = _run(f"--SVD.config={TINY_CONFIG}", f"--SVD.checkpoint={ckpt}", "--SVD.num_frames=2", "--SVD.fps=8",
             "--SVD.decode_chunk_size=1", f"--image={img}", "--num_steps=1", f"--output_dir={tmp_path}", "--seed=3",
             "--no_progress", "--split_cfg", "--ff_chunk_size=50", "--attn_chunk_size=16", "--sampler=dpmpp_2m",
             "--mode=pynative")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resizing to 128x64" in r.stderr and "loaded" in r.stderr and "RANDOM" not in r.stdout
    assert "1 dpmpp_2m steps" in r.stdout
    (mp4,) = tmp_path.glob("*.mp4")
    assert read_video_frames(mp4).shape == (2, 64, 128, 3)
    import json

    assert json.loads(mp4.with_suffix(".json").read_text())["settings"]["sampler"] == "dpmpp_2m"


@pytest.fixture(scope="module")
def faults(tmp_path_factory):
    d = tmp_path_factory.mktemp("faults")
    (d / "a_file").write_text("x")
    (d / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64))
    Image.fromarray(np.zeros((20, 40, 3), np.uint8)).save(d / "small.png")
    return d


@pytest.mark.parametrize("args,message", [
    (["--SVD.checkpoint=/nonexistent/svd.safetensors"], "checkpoint not found: /nonexistent/svd.safetensors (--SVD.checkpoint)"),
    (["--SVD.checkpoint={d}"], "checkpoint {d} is a folder, not a file (--SVD.checkpoint)"),
    (["--SVD.config=/nonexistent.yaml"], "config not found: /nonexistent.yaml (--SVD.config)"),
    (["--image=/nonexistent.png"], "picture not found: /nonexistent.png (--image)"),
    (["--image={d}/clip.mp4"], "{d}/clip.mp4 is not a picture (a video?)"),
    (["--image={d}/small.png"], "{d}/small.png is 40x20; both sides must be at least 32 pixels (--image)"),
    (["--ff_chunk_size=0"], "--ff_chunk_size 0: must be >= 1"),
    (["--SVD.num_frames=0"], "--SVD.num_frames 0: frames must be >= 1"),
    (["--SVD.num_frames=-3"], "--SVD.num_frames -3: frames must be >= 1"),
    (["--num_steps=0"], "--num_steps 0: sampling steps must be >= 1"),
    (["--SVD.fps=0"], "--SVD.fps 0.0: frames per second must be >= 1"),
    (["--SVD.motion_bucket_id=300"], "--SVD.motion_bucket_id 300.0: must be 0..255"),
    (["--output_dir={d}/a_file"], "output folder {d}/a_file is a file (--output_dir)"),
    (["--output_dir={d}/a_file/sub"], "output folder {d}/a_file/sub lies below the file {d}/a_file (--output_dir)"),
    (["--mode=fast"], "argument --mode: 'fast' is not 0, 1, graph or pynative (see --help)"),
    (["--SVD.fps=fast"], "argument --SVD.fps: invalid float value: 'fast' (see --help)"),
    (["--sampler=heun"], "argument --sampler: invalid choice: 'heun'"),
])
def test_bad_input_is_one_line_before_any_work(args, message, faults, tmp_path):
    out = tmp_path / "out"
    r = _run(f"--output_dir={out}", *[a.format(d=faults) for a in args])
    err = r.stderr.strip()
    assert r.returncode == 2 and "Traceback" not in err, err[-2000:]
    assert err.count("\n") == 0 and err.startswith("error: ") and message.format(d=faults) in err, err
    assert not out.exists() or not any(out.iterdir())  # nothing written
