"""The same classes of mistakes, made on every model's commands, through the real scripts in a subprocess:
exit status 2, one line ``error: ...`` naming the flag or file at fault, no traceback, nothing written.

Each model's own tests try its model-specific mistakes; this table holds the mistakes every CLI can receive,
so that a new CLI (or a new flag of a kind listed here) gets the same answer everywhere. Most rows fail in
argparse before MindSpore is imported (well under a second each)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]

# (model folder, script + the arguments that make a valid call apart from the fault)
DC = ("dynamicrafter", ["inference.py", "--config", "configs/inference_256_tiny_demo.yaml", "--random_init",
                        "--prompt_dir", "prompts/256", "--height", "256", "--width", "256", "--savedir", "{out}"])
SVD = ("svd", ["image_to_video.py", "--image", "{pic}", "--output_dir", "{out}"])
AD = ("animatediff", ["text_to_video.py", "--config", "configs/prompts/demo.yaml", "--output_dir", "{out}"])
VC = ("videocomposer", ["run_net.py", "--cfg", "configs/exp02_motion_transfer_vs_style.yaml", "--random_weights",
                        "--input_video", "{vid}", "--image_path", "{pic}", "--style_image", "{pic}",
                        "--output_dir", "{out}"])
DV = ("dropletvideo", ["inference.py", "--demo", "--output_dir", "{out}"])

CASES = [
    # a float flag given nan / inf (float() takes them; they would surface as NaN frames after the whole run)
    (DC, ["--guidance_scale", "nan"], "argument --unconditional_guidance_scale/--guidance_scale: 'nan' is not a finite number"),
    (DC, ["--cfg_img", "inf"], "argument --cfg_img: 'inf' is not a finite number"),
    (SVD, ["--SVD.motion_bucket_id", "nan"], "argument --SVD.motion_bucket_id: 'nan' is not a finite number"),
    (SVD, ["--SVD.noise_aug_strength=-inf"], "argument --SVD.noise_aug_strength: '-inf' is not a finite number"),
    (VC, ["--guidance_scale", "nan"], "argument --guidance_scale: 'nan' is not a finite number"),
    (DV, ["--guidance_scale", "inf"], "argument --guidance_scale: 'inf' is not a finite number"),
    # seeds outside what the samplers' generators take
    (DC, ["--seed", str(2 ** 32)], "argument --seed: 4294967296 is above 4294967295"),
    (SVD, ["--seed", "-1"], "argument --seed: -1 is outside 0..4294967295"),
    (AD, ["--seed", "-5"], "argument --seed: -5 is outside 0..4294967295"),
    (VC, ["--seed", "-1"], "argument --seed: -1 is outside 0..4294967295"),
    (DV, ["--seed", "x"], "argument --seed: invalid int value: 'x'"),
    # zero where a count is needed
    (DC, ["--ddim_steps", "0"], "--ddim_steps must be >= 1, got 0"),
    (SVD, ["--num_steps", "0"], "--num_steps 0: sampling steps must be >= 1"),
    (AD, ["--steps", "0"], "--steps 0: sampling steps must be >= 1"),
    (VC, ["--num_inference_steps", "0"], "--num_inference_steps must be in [1, 1000], got 0"),
    (DV, ["--video_length", "0"], "--video_length must be >= 1, got 0"),
    # a folder where a file is expected
    (DC, ["--ckpt_path", "{dir}"], "is a folder, not a file (--ckpt_path)"),
    (SVD, ["--SVD.checkpoint", "{dir}"], "is a folder, not a file (--SVD.checkpoint)"),
    (AD, ["--config", "{dir}"], "is a folder, not a file (--config)"),
    (VC, ["--input_video", "{dir}"], "is a folder, not a file (--input_video)"),
    (DV, ["--ref_img_dir", "{dir}"], "is a folder, not a file (--ref_img_dir)"),
    # a video where a picture is expected
    (SVD, ["--image", "{vid}"], "is not a picture (a video?)"),
    (VC, ["--style_image", "{vid}"], "is not a picture (a video?)"),
    (DV, ["--ref_img_dir", "{vid}"], "is not a picture (a video?)"),
    # the output folder below a file
    (DC, ["--savedir", "{file}/sub"], "lies below the file"),
    (SVD, ["--output_dir", "{file}/sub"], "lies below the file"),
    (AD, ["--output_dir", "{file}/sub"], "lies below the file"),
    (VC, ["--output_dir", "{file}/sub"], "lies below the file"),
    (DV, ["--output_dir", "{file}/sub"], "lies below the file"),
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from PIL import Image

    from common.video_io import write_video

    d = tmp_path_factory.mktemp("bad_input")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(d / "pic.png")
    write_video(rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8), d / "clip.mp4", fps=8)
    (d / "a_file").write_text("not a folder\n")
    (d / "a_folder").mkdir()
    return {"pic": d / "pic.png", "vid": d / "clip.mp4", "file": d / "a_file", "dir": d / "a_folder"}


def _id(case):
    (model, _), extra, _ = case
    return f"{model}:{' '.join(extra)}"


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_every_cli_answers_the_same_mistake_the_same_way(case, inputs, tmp_path):
    (model, base), extra, message = case
    out = tmp_path / "out"
    names = {k: str(v) for k, v in inputs.items()} | {"out": str(out)}
    argv = [a.format(**names) for a in base + extra]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    r = subprocess.run([sys.executable, *argv], cwd=REPO / model, env=env, capture_output=True, text=True,
                       timeout=600)
    err = r.stderr.strip()
    assert r.returncode == 2 and "Traceback" not in err, f"exit {r.returncode}\n{err[-2000:]}"
    assert err.startswith("error: ") and "\n" not in err, err[-2000:]
    assert message.format(**names) in err, err
    assert not out.exists() or not any(out.iterdir()), "something was written"
