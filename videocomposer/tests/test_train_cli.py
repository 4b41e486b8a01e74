"""train.py end to end on the tiny random model and real mp4 clips: SIGKILL + resume is bit-exact."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from common.train import load_state
from common.train.testing import sigkill_after_first_checkpoint

from .train_helpers import TINY_TRAIN, VC_DIR, make_clips, subprocess_env

pytestmark = pytest.mark.slow
STEPS = 2


def _args(clips, out):
    # clipping, EMA, momentum and the condition / UNet dropout on: everything a resume restores (gradient
    # accumulation is common.train's, tested there: one micro-batch per step keeps this test short)
    return [sys.executable, "train.py", "-c", str(TINY_TRAIN), "--random_weights", f"--output_dir={out}",
            f"--root_dir={clips}", f"--max_steps={STEPS}", "--ckpt_save_interval=1",
            "--use_ema=true", "--ema_decay=0.9", "--optim=momentum", "--learning_rate=1e-2", "--clip_grad=true"]


def _start(cmd, log):
    return subprocess.Popen(cmd, cwd=VC_DIR, env=subprocess_env(), stdout=open(log, "w"), stderr=subprocess.STDOUT)


def _wait(proc, log, timeout=600):
    rc = proc.wait(timeout=timeout)
    assert rc == 0, f"exit {rc}:\n{log.read_text()[-3000:]}"


def test_sigkill_mid_run_then_resume_is_exact(tmp_path):
    clips = make_clips(tmp_path / "clips")
    ref = _start(_args(clips, tmp_path / "ref"), tmp_path / "ref.log")
    victim_dir = tmp_path / "victim"
    victim = _start(_args(clips, victim_dir), tmp_path / "victim.log")
    saved = sigkill_after_first_checkpoint(victim, victim_dir, tmp_path / "victim.log", STEPS, pause=0.3)  # inside step 2
    resumed = _start(_args(clips, victim_dir), tmp_path / "resumed.log")
    _wait(resumed, tmp_path / "resumed.log")
    _wait(ref, tmp_path / "ref.log")
    a, _ = load_state(tmp_path / "ref" / f"ckpt-{STEPS:08d}.safetensors")
    b, meta = load_state(victim_dir / f"ckpt-{STEPS:08d}.safetensors")
    assert meta["step"] == STEPS and sorted(a) == sorted(b)
    assert any(k.startswith("ema/") for k in a) and any(k.startswith("optim/moments/") for k in a)
    bad = [k for k in a if not np.array_equal(a[k], b[k])]
    assert not bad, f"resumed run differs in {bad[:5]} (killed after step {saved[-1][0]})"
    log = (tmp_path / "ref.log").read_text()
    assert "training 558 tensors" in log and "loss=" in log and "s_step=" in log  # the progress bar
    assert "resumed from" in (tmp_path / "resumed.log").read_text()
    assert (victim_dir / "unet_finetuned.safetensors").is_file()
