"""train.py end to end on the tiny model and real mp4 files: SIGKILL + resume is bit-exact; bad input is one line."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from common.train import load_state
from common.train.testing import sigkill_after_first_checkpoint

pytestmark = pytest.mark.slow
STEPS = 2
# one micro-batch per step keeps the test short (resuming between accumulated micro-batches is
# common/tests/test_train_kill.py's); everything else of the tiny config stays on
# --fp16_on_cpu: precision 16 as on GPU/Ascend (float16 UNet compute, float32 master weights, dynamic loss
# scale), so the resume covers the loss scaler too
ONE = ("--lightning.trainer.accumulate_grad_batches=1", "--fp16_on_cpu", "--loss_scale_value=1024")


def _cmd(dc, config, out, *extra):
    return [sys.executable, str(dc.DC_DIR / "train.py"), "-c", str(config), "--output_dir", str(out), "--no_export",
            f"--lightning.trainer.max_steps={STEPS}", *extra]


def _start(cmd, log, cwd):
    return subprocess.Popen(cmd, cwd=cwd, stdout=open(log, "w"), stderr=subprocess.STDOUT)


def _wait(proc, log, timeout=600):
    rc = proc.wait(timeout=timeout)
    assert rc == 0, f"exit {rc}:\n{log.read_text()[-3000:]}"


def test_sigkill_mid_run_then_resume_is_exact(dc, train_setup):
    """UNet dropout on, gradient checkpointing on, EMA, clipping, random strides, conditioning dropout, float16
    compute with loss scaling: a run killed after step 1 and resumed ends with every array equal to an
    uninterrupted run."""
    root, config = train_setup.root, train_setup.config
    ref = _start(_cmd(dc, config, root / "ref", *ONE), root / "ref.log", root)
    victim_dir = root / "victim"
    victim = _start(_cmd(dc, config, victim_dir, *ONE), root / "victim.log", root)
    saved = sigkill_after_first_checkpoint(victim, victim_dir, root / "victim.log", STEPS, pause=0.3)  # inside step 2
    resumed = _start(_cmd(dc, config, victim_dir, *ONE), root / "resumed.log", root)
    _wait(resumed, root / "resumed.log")
    _wait(ref, root / "ref.log")
    a, _ = load_state(root / "ref" / f"ckpt-{STEPS:08d}.safetensors")
    b, meta = load_state(victim_dir / f"ckpt-{STEPS:08d}.safetensors")
    assert meta["step"] == STEPS and sorted(a) == sorted(b)
    assert meta["loss_scaler"]["scale_value"] == 1024.0  # no overflow: the scale stays (window 1000)
    assert all(v.dtype == np.float32 for k, v in a.items() if k.startswith("model/"))  # float32 master weights
    assert any(k.startswith("ema/") for k in a) and any(k.startswith("optim/") for k in a)
    assert any(k.startswith("model/image_proj_model.") for k in a)  # image_proj_model_trainable
    assert not any(k.startswith(("model/first_stage_model.", "model/embedder.")) for k in a)
    bad = [k for k in a if not np.array_equal(a[k], b[k])]
    assert not bad, f"resumed run differs in {bad[:5]} (killed after step {saved[-1][0]})"
    log = (root / "ref.log").read_text()
    assert "gradient checkpointing" in log and "fp16 with loss scaling" in log
    assert "loss=" in log and "s_step=" in log  # the progress bar
    steps = [json.loads(ln) for ln in (root / "ref" / "train_log.jsonl").read_text().splitlines()]
    assert [m["step"] for m in steps] == [1, 2] and all(m["loss_scale"] == 1024.0 and not m["skipped"] for m in steps)
    assert "resumed from" in (root / "resumed.log").read_text()


def _bad_csv(setup, name, row, video_bytes=None):
    data = setup.root / "data"
    if video_bytes is not None:
        (data / "videos" / "000001_000050" / f"{row.split(',')[0]}.mp4").write_bytes(video_bytes)
    csv = data / f"{name}.csv"
    csv.write_text(setup.csv.read_text() + row + "\n")
    return csv


def test_bad_input_is_one_line_before_any_work(dc, train_setup):
    """Through the real command: a missing video, an unreadable one, one too short, an unknown config key."""
    from dynamicrafter_ms.demo_data import make_demo_webvid

    s = train_setup
    short_root = s.root / "short"
    short_csv = make_demo_webvid(short_root, n=1, frames=5, size=(48, 80))  # 5 < video_length 2 x stride 3
    bad_yaml = s.root / "cfg" / "bad.yaml"
    bad_yaml.write_text(s.config.read_text().replace("random_fs: true", "random_fs: true\n        random_fps: 2"))
    cases = [
        (["--data.params.train.params.meta_path=" + str(_bad_csv(s, "missing", "777,a ghost,000001_000050,x"))],
         "missing.csv:5: video", "777.mp4 does not exist"),
        (["--data.params.train.params.meta_path=" + str(_bad_csv(s, "broken", "778,junk,000001_000050,x", b"junk"))],
         "broken.csv:5: cannot read video", "778.mp4"),
        ([f"--data.params.train.params.meta_path={short_csv}", f"--data.params.train.params.data_dir={short_root}"],
         "has 5 frames, fewer than video_length x frame_stride = 2 x 3 = 6", ""),
        (["--lightning.trainer.max_step=3"], "unknown option --lightning.trainer.max_step", "did you mean 'max_steps'"),
    ]
    cases.append(([], f"error: {bad_yaml}: data.params.train.params.random_fps: unknown key", "(did you mean 'random_fs'?)"))
    procs = [subprocess.Popen(_cmd(dc, bad_yaml if i == len(cases) - 1 else s.config, s.root / "never", *extra),
                              cwd=s.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i, (extra, _, _) in enumerate(cases)]  # all at once: each is mostly interpreter start-up
    for p, (extra, m1, m2) in zip(procs, cases):
        _, err = p.communicate(timeout=300)
        assert p.returncode == 2 and "Traceback" not in err, (extra, err[-2000:])
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and m1 in lines[0] and m2 in lines[0], (extra, err)
    assert not (s.root / "never").exists()


def test_benchmark_train_runs_on_a_tiny_config(dc, tiny_dir, tmp_path, capsys):
    """``benchmark.py --train`` end to end (tiny 512-style config, 2 frames, PyNative with gradient
    checkpointing; the full-size run and graph mode are for a big machine); a bad variant exits 2."""
    import importlib.util

    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if k != "REF_SRC"}
    r = subprocess.run([sys.executable, "benchmark.py", "--train", "--config", str(tiny_dir / "tiny512.yaml"),
                        "--train_frames", "2", "--runs", "1", "--variants", "pynative+ckpt", "--json", str(out)],
                       cwd=dc.DC_DIR, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = json.loads(out.read_text())["results"]
    assert [row["variant"] for row in rows] == ["pynative+ckpt"]
    assert rows[0]["median_s"] > 0 and rows[0]["peak_rss_gb"] > 0 and np.isfinite(rows[0]["loss"])
    assert rows[0]["trainable_params"] > 0 and "median s/step" in r.stdout
    spec = importlib.util.spec_from_file_location("dc_benchmark", dc.DC_DIR / "benchmark.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    with pytest.raises(SystemExit) as e:
        bench.main(["--train", "--variants", "eager"])
    assert e.value.code == 2 and "--variants ['eager'] not in" in capsys.readouterr().err


def test_folder_dataset_trains_and_bad_folders_are_one_line(dc, train_setup):
    """A folder of mp4s with .txt captions (meta_path null -> data_dir is the folder) trains 2 steps; an empty
    folder, a video without a caption and an unreadable mp4 (meta_path naming the folder) are one line each."""
    from common.train.webvid import make_demo_webvid

    s = train_setup
    folder = make_demo_webvid(s.root / "folder", n=2, frames=8, size=(48, 80), fps=16, layout="folder")
    (s.root / "empty").mkdir()
    nocap = s.root / "nocap"
    nocap.mkdir()
    (nocap / "a.mp4").write_bytes((folder / "1000.mp4").read_bytes())
    broken = s.root / "broken"
    broken.mkdir()
    (broken / "junk.mp4").write_bytes(b"junk")
    (broken / "junk.txt").write_text("a broken clip\n")
    good = _start(_cmd(dc, s.config, s.root / "folder_run", "--lightning.trainer.accumulate_grad_batches=1",
                       "--data.params.train.params.meta_path=null", f"--data.params.train.params.data_dir={folder}"),
                  s.root / "folder.log", s.root)
    cases = [(s.root / "empty", "error: meta_path", "empty: no .mp4 videos in it"),
             (nocap, "a.mp4 has no caption", "a.txt"),
             (broken, f"error: meta_path {broken}: cannot read video", "junk.mp4")]
    procs = [subprocess.Popen(_cmd(dc, s.config, s.root / "never", f"--data.params.train.params.meta_path={d}"),
                              cwd=s.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for d, _, _ in cases]
    for p, (d, m1, m2) in zip(procs, cases):
        _, err = p.communicate(timeout=300)
        lines = err.strip().splitlines()
        assert p.returncode == 2 and len(lines) == 1 and m1 in lines[0] and m2 in lines[0], (d, err[-2000:])
    _wait(good, s.root / "folder.log")
    assert "2 videos" in (s.root / "folder.log").read_text()
    steps = [json.loads(ln) for ln in (s.root / "folder_run" / "train_log.jsonl").read_text().splitlines()]
    assert [m["step"] for m in steps] == [1, 2] and all(np.isfinite(m["loss"]) for m in steps)
    assert not (s.root / "never").exists()
