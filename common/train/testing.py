"""Helpers of the training tests every model runs: data parallel through ``msrun`` against one process, and
SIGKILL in the middle of a run (the resume tests). Test code, shipped so that each model's tests call one copy."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .state import list_checkpoints

__all__ = ["free_port", "msrun_logs", "run_single_and_distributed", "assert_data_parallel_matches",
           "sigkill_after_first_checkpoint"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (msrun's ``--master_port``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def msrun_logs(folder: Path) -> str:
    """The last 30 lines of every worker log in ``folder`` (for assertion messages)."""
    return "\n".join(f"--- {f.name}\n" + "\n".join(f.read_text(errors="replace").splitlines()[-30:])
                     for f in sorted(Path(folder).glob("*.log"))) or f"(no logs in {folder})"


def run_single_and_distributed(single_cmd: list, dp_cmd: list, cwd, env: dict, logs: Path, timeout: int = 600) -> str:
    """Run the one-process command and the data-parallel launch side by side; assert both exit 0 (messages carry
    their output and the worker logs). Returns the worker logs' text."""
    single = subprocess.Popen(single_cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    try:
        run = subprocess.run(dp_cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        single.kill()
        raise AssertionError(f"the distributed launch timed out\n{msrun_logs(logs)}") from None
    out_single, _ = single.communicate(timeout=timeout)
    assert single.returncode == 0, out_single[-3000:]
    assert run.returncode == 0, f"launch exited {run.returncode}\n{run.stderr[-2000:]}\n{msrun_logs(logs)}"
    return msrun_logs(logs)


def assert_data_parallel_matches(rank0: Mapping, rank1: Mapping, one: Mapping, before: Mapping) -> list[str]:
    """Assert that a data-parallel run (``rank0``/``rank1``: {name: array} after the steps) equals one process on
    the concatenated batch (``one``), both started from ``before``: the ranks agree bit for bit, and each tensor
    differs from the one-process result only by float32 rounding of the update.

    Error bound: the update is about lr x (the gradient), whose two sums (over one batch of 2, or all-reduced over
    2 ranks) agree to ~1e-6 absolute and ~1e-3 relative, so ``|rank0 - one| <= 1e-6 + 1e-3 |one - before|``.
    Returns the names the run did not move (the caller says which may stay)."""
    assert sorted(rank0) == sorted(rank1) == sorted(one), "the runs saved different tensors"
    unmoved = []
    for k in rank0:
        assert np.array_equal(rank0[k], rank1[k]), f"ranks disagree on {k}"
        err = float(np.abs(rank0[k].astype(np.float64) - one[k]).max())
        step = float(np.abs(one[k].astype(np.float64) - before[k]).max())
        assert err <= 1e-6 + 1e-3 * step, f"{k}: data parallel vs one process differ by {err} (step {step})"
        if np.array_equal(rank0[k], before[k]):
            unmoved.append(k)
    return unmoved


def sigkill_after_first_checkpoint(proc: subprocess.Popen, out_dir: Path, log: Path, steps: int,
                                   pause: float = 0.3, timeout: float = 600) -> list:
    """Wait for the run's first checkpoint in ``out_dir``, let it go on ``pause`` seconds (into the next step),
    SIGKILL it; asserts it was killed before its last step (``steps``). Returns the checkpoints left."""
    try:
        deadline = time.monotonic() + timeout
        while not list_checkpoints(out_dir):
            assert proc.poll() is None, Path(log).read_text()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint in time"
            time.sleep(0.05)
        time.sleep(pause)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    saved = list_checkpoints(out_dir)
    assert saved and saved[-1][0] < steps, f"killed too late: {saved}"
    return saved
