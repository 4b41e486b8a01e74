"""A training process killed with SIGKILL resumes to the same parameters as an uninterrupted one."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from common.train import list_checkpoints, load_state

SCRIPT = Path(__file__).with_name("train_tiny.py")
STEPS = 12


def _start(tmp: Path, name: str, *args: str) -> tuple[subprocess.Popen, Path]:
    log = tmp / f"{name}.log"
    cmd = [sys.executable, str(SCRIPT), "--steps", str(STEPS), "--ckpt-every", "2", *args]
    proc = subprocess.Popen(cmd, cwd=tmp, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    return proc, log


def _wait(proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"{proc.args} did not finish in {timeout}s; log:\n{log.read_text()[-3000:]}") from None
    assert rc == 0, f"{proc.args} exited {rc}; log:\n{log.read_text()[-3000:]}"


def test_sigkill_mid_run_then_resume_is_exact(tmp_path):
    ref, ref_log = _start(tmp_path, "ref", "--out", str(tmp_path / "ref"), "--dump", str(tmp_path / "ref.npz"))
    run_dir = tmp_path / "run"
    victim, victim_log = _start(tmp_path, "victim", "--out", str(run_dir), "--sleep", "0.3")
    try:
        deadline = time.monotonic() + 120
        while not list_checkpoints(run_dir):
            assert victim.poll() is None, f"training died early:\n{victim_log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no checkpoint after 120 s:\n{victim_log.read_text()[-3000:]}"
            time.sleep(0.02)
        time.sleep(0.35)  # land inside a later step
        os.kill(victim.pid, signal.SIGKILL)
        assert victim.wait(timeout=30) == -signal.SIGKILL
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
    saved = list_checkpoints(run_dir)
    assert saved and saved[-1][0] < STEPS, f"the kill came too late: {saved}"
    for step, path in saved:  # every file under a final name is complete
        arrays, meta = load_state(path)
        assert meta["step"] == step and "model/net.fc1.weight" in arrays
    resumed, resumed_log = _start(tmp_path, "resumed", "--out", str(run_dir), "--dump", str(tmp_path / "run.npz"))
    _wait(resumed, resumed_log)
    _wait(ref, ref_log)
    a, b = np.load(tmp_path / "ref.npz"), np.load(tmp_path / "run.npz")
    assert sorted(a.files) == sorted(b.files) and int(b["step"]) == STEPS
    bad = [k for k in a.files if not np.array_equal(a[k], b[k])]
    assert not bad, f"resumed run differs in {bad} (killed after checkpoint {saved[-1][0]})"
    assert not [n for n in os.listdir(run_dir) if n.startswith(".tmp")]
