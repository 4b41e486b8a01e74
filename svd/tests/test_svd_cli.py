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
                 "--num_steps", "--attn_chunk_size", "--ff_chunk_size", "--split_cfg"):
        assert flag in text
    assert "fps_id = fps - 1" in text and "more motion" in text and "RANDOM" in text


def test_random_demo_writes_a_real_mp4_and_says_so(tmp_path):
    r = _run("--SVD.num_frames=3", "--num_steps=2", f"--output_dir={tmp_path}")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "weights are RANDOM" in r.stderr and "RANDOM weights" in r.stdout
    assert "SVD sampling" in r.stderr  # the progress bar
    (mp4,) = tmp_path.glob("*.mp4")
    frames = read_video_frames(mp4)
    assert frames.shape == (3, 128, 192, 3) and frames.std() > 1.0


def test_checkpoint_run_resizes_the_image(tiny_model, tmp_path):
    ckpt = tmp_path / "tiny.safetensors"
    save_file({p.name: p.asnumpy() for p in tiny_model.get_parameters()}, str(ckpt))
    img = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (70, 140, 3), dtype=np.uint8)).save(img)
    r = _run(f"--SVD.config={TINY_CONFIG}", f"--SVD.checkpoint={ckpt}", "--SVD.num_frames=2", "--SVD.fps=8",
             "--SVD.decode_chunk_size=1", f"--image={img}", "--num_steps=1", f"--output_dir={tmp_path}", "--seed=3",
             "--no_progress", "--split_cfg", "--ff_chunk_size=50", "--attn_chunk_size=16")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resizing to 128x64" in r.stderr and "loaded" in r.stderr and "RANDOM" not in r.stdout
    (mp4,) = tmp_path.glob("*.mp4")
    assert read_video_frames(mp4).shape == (2, 64, 128, 3)


@pytest.mark.parametrize("args,message", [
    (["--SVD.checkpoint=/nonexistent/svd.safetensors"], "does not exist"),
    (["--SVD.config=/nonexistent.yaml"], "does not exist"),
    (["--image=/nonexistent.png"], "does not exist"),
    (["--ff_chunk_size=0"], "--ff_chunk_size must be >= 1"),
])
def test_bad_paths_give_one_line(args, message, tmp_path):
    r = _run(*args, f"--output_dir={tmp_path}")
    assert r.returncode != 0 and message in r.stderr and "Traceback" not in r.stderr
