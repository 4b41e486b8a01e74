"""inference.py: --help, the random demo and a weights folder end to end (slow), bad input as one line each."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from dropletvideo_ms.inference import main
from PIL import Image

from common.video_io import read_video_frames, video_metadata

from .conftest import DV_DIR


def _run(*args):
    return subprocess.run([sys.executable, "inference.py", *args], cwd=DV_DIR, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_help_explains_every_flag():
    r = _run("--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    for flag in ("--ckpt", "--ref_img_dir", "--FPS", "--prompt", "--width", "--height", "--video_length",
                 "--num_inference_steps", "--seed", "--guidance_scale", "--negative_prompt", "--output_dir", "--mode",
                 "--dtype", "--demo", "--max_sequence_length", "--attention_chunk_size", "--vae_tile_size", "--split_cfg"):
        assert flag in text
    assert "motion strength" in text and "multiple of 16" in text and "RANDOM" in text


@pytest.mark.slow
def test_demo_writes_a_real_mp4_at_the_fps_and_says_random(tmp_path):
    r = _run("--demo", f"--output_dir={tmp_path}", "--FPS=8", "--num_inference_steps=2")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "weights are RANDOM" in r.stderr and "RANDOM weights" in r.stdout
    assert "DDIM" in r.stderr  # the progress bar
    mp4 = tmp_path / "demo_FPS8.mp4"
    frames = read_video_frames(mp4)
    assert frames.shape == (9, 64, 96, 3) and frames.std() > 1.0
    assert abs(video_metadata(mp4)["fps"] - 8) < 1e-6


@pytest.mark.slow
def test_weights_folder_end_to_end(tiny_folder, tmp_path):
    img = tmp_path / "pic.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)).save(img)
    r = _run(f"--ckpt={tiny_folder}", f"--ref_img_dir={img}", "--prompt=A cat.", "--width=80", "--height=48",
             "--video_length=14", "--num_inference_steps=2", "--FPS=4", f"--output_dir={tmp_path}", "--no_progress",
             "--mode=graph", "--attention_chunk_size=16", "--vae_tile_size", "32", "48", "--split_cfg")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "-> 13" in r.stderr and "RANDOM" not in r.stdout
    # 13 frames -> 4 latent frames (even) -> 16 decoded frames, as the original
    assert read_video_frames(tmp_path / "pic_FPS4.mp4").shape == (16, 48, 80, 3)


@pytest.fixture
def picture(tmp_path):
    path = tmp_path / "p.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(path)
    return path


def _bad(capsys, *argv):
    code = main(list(argv))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0], err
    return err[0]


def test_width_not_multiple_of_16(capsys, tiny_folder, picture):
    line = _bad(capsys, f"--ckpt={tiny_folder}", f"--ref_img_dir={picture}", "--prompt=x", "--width=100")
    assert "--width 100 is not a positive multiple of 16" in line


def test_unreadable_image(capsys, tiny_folder, tmp_path):
    bad = tmp_path / "x.png"
    bad.write_text("not an image")
    line = _bad(capsys, f"--ckpt={tiny_folder}", f"--ref_img_dir={bad}", "--prompt=x", "--width=64", "--height=64",
                "--video_length=5")
    assert f"{bad} is not a picture" in line and line.endswith("(--ref_img_dir)")


def test_fps_outside_range(capsys, tiny_folder, picture):
    line = _bad(capsys, f"--ckpt={tiny_folder}", f"--ref_img_dir={picture}", "--prompt=x", "--FPS=0")
    assert "--FPS 0 is outside" in line


def test_bad_vae_tile(capsys, tiny_folder, picture):
    line = _bad(capsys, f"--ckpt={tiny_folder}", f"--ref_img_dir={picture}", "--prompt=x", "--vae_tile_size", "12", "64")
    assert "--vae_tile_size 12 64: multiples of 8" in line


def test_missing_prompt(capsys, tiny_folder, picture):
    assert "--prompt is required" in _bad(capsys, f"--ckpt={tiny_folder}", f"--ref_img_dir={picture}")


def _copy(tiny_folder, tmp_path):
    dst = tmp_path / "w"
    shutil.copytree(tiny_folder, dst)
    return dst


def test_missing_shard(capsys, tiny_folder, tmp_path, picture):
    w = _copy(tiny_folder, tmp_path)
    (w / "text_encoder" / "model-00002-of-00002.safetensors").unlink()
    line = _bad(capsys, f"--ckpt={w}", f"--ref_img_dir={picture}", "--prompt=x")
    assert "model-00002-of-00002.safetensors, which is missing" in line and "(--ckpt)" in line


def test_index_naming_a_missing_file(capsys, tiny_folder, tmp_path, picture):
    w = _copy(tiny_folder, tmp_path)
    index = w / "text_encoder" / "model.safetensors.index.json"
    data = json.loads(index.read_text())
    data["weight_map"]["shared.weight"] = "model-00003-of-00002.safetensors"
    index.write_text(json.dumps(data))
    line = _bad(capsys, f"--ckpt={w}", f"--ref_img_dir={picture}", "--prompt=x")
    assert "model-00003-of-00002.safetensors, which is missing" in line


def test_config_disagreeing_with_tensors_names_first_key(capsys, tiny_folder, tmp_path, picture):
    w = _copy(tiny_folder, tmp_path)
    cfg_path = w / "transformer" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["time_embed_dim"] = 40
    cfg_path.write_text(json.dumps(cfg))
    line = _bad(capsys, f"--ckpt={w}", f"--ref_img_dir={picture}", "--prompt=x", "--width=64", "--height=64",
                "--video_length=5", "--num_inference_steps=1")
    assert "mis-shaped, e.g. 'time_embedding.linear_1.weight': file [24, 32] vs model [40, 32]" in line


def test_unknown_config_key(capsys, tiny_folder, tmp_path, picture):
    w = _copy(tiny_folder, tmp_path)
    cfg_path = w / "vae" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["block_out_channel"] = [1]
    cfg_path.write_text(json.dumps(cfg))
    line = _bad(capsys, f"--ckpt={w}", f"--ref_img_dir={picture}", "--prompt=x")
    assert "block_out_channel: unknown key" in line
