"""AnimateDiff behind ``videogen`` with weights (the tiny models/ folder of conftest): SD folder, motion module,
DreamBooth base model and LoRA found by name, every weight file in the run record."""
from __future__ import annotations

import pytest

from common.sidecar import read_sidecar
from common.video_io import read_video_frames
from common.videogen.cli import main


@pytest.mark.slow
def test_videogen_with_weights(tiny_weights, tmp_path, capsys):
    models = tiny_weights["root"] / "models"
    argv = ["run", "animatediff", "--weights", str(models), "--motion_module", "mm_tiny_v2.ckpt",
            "--base_model", "tinyToon.safetensors", "--lora", "tinyStyle_lora.safetensors", "--prompt", "a boat",
            "--height", "64", "--width", "64", "--num_frames", "4", "--num_inference_steps", "2",
            "--output_dir", str(tmp_path), "--name", "w", "--no_progress"]
    assert main(argv) == 0
    assert "RANDOM" not in capsys.readouterr().out
    assert read_video_frames(tmp_path / "w.mp4").shape == (4, 64, 64, 3)
    rec = read_sidecar(tmp_path / "w.json")
    assert not rec["random_weights"] and rec["weights_arg"] == str(models)
    names = {w["name"] for w in rec["weights"]}
    assert {"mm_tiny_v2.ckpt", "tinyToon.safetensors", "tinyStyle_lora.safetensors"} <= names
    assert all(w["bytes"] > 0 and w["sha256"] for w in rec["weights"])  # tiny files: hashed
    bad = [("nosuch.safetensors" if a == "tinyStyle_lora.safetensors" else a) for a in argv]
    assert main(bad) == 2
    assert "lora not found" in capsys.readouterr().err
