"""Data parallel with msrun on CPU: two ranks on different data = one process on both batches."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).with_name("train_tiny.py")
STEPS = 2


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _logs(folder: Path) -> str:
    parts = []
    for f in sorted(folder.glob("*.log")):
        lines = [ln for ln in f.read_text(errors="replace").splitlines() if "[INFO]" not in ln]
        parts.append(f"--- {f.name} (last lines)\n" + "\n".join(lines[-40:]))
    return "\n".join(parts) or f"(no logs in {folder})"


@pytest.mark.distributed
def test_two_ranks_match_one_process_on_the_concatenated_batch(tmp_path):
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")  # msrun starts `python`
    common = ["--steps", str(STEPS), "--ckpt-every", "1", "--clean"]
    logs = tmp_path / "msrun_logs"
    cmd = ["msrun", "--worker_num=2", "--local_worker_num=2", f"--master_port={_free_port()}", "--join=True",
           f"--log_dir={logs}", "python", str(SCRIPT), "--distributed", "--batch", "2",
           "--out", str(tmp_path / "dp"), "--dump", str(tmp_path / "rank{rank}.npz"), *common]
    single = subprocess.Popen([sys.executable, str(SCRIPT), "--batch", "4", "--out", str(tmp_path / "one"),
                               "--dump", str(tmp_path / "one.npz"), *common], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        run = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        single.kill()
        raise AssertionError(f"msrun timed out after 300 s\n{_logs(logs)}") from None
    out_single, _ = single.communicate(timeout=120)
    assert single.returncode == 0, f"single-process run failed:\n{out_single[-3000:]}"
    assert run.returncode == 0, (f"msrun exited {run.returncode}\nstdout: {run.stdout[-2000:]}\n"
                                 f"stderr: {run.stderr[-2000:]}\n{_logs(logs)}")
    missing = [r for r in (0, 1) if not (tmp_path / f"rank{r}.npz").exists()]
    assert not missing, f"ranks {missing} wrote no result\n{_logs(logs)}"
    r0, r1, one = (np.load(tmp_path / n) for n in ("rank0.npz", "rank1.npz", "one.npz"))
    assert int(r0["step"]) == int(r1["step"]) == STEPS
    for k in r0.files:  # rank 1 started from its own init: equal only if rank 0's was broadcast
        assert np.array_equal(r0[k], r1[k]), f"ranks disagree on {k}"
        err = float(np.abs(r0[k].astype(np.float64) - one[k]).max())
        assert err <= 1e-6, f"{k}: data parallel vs one process differ by {err}"
    ckpts = sorted(p.name for p in (tmp_path / "dp").glob("ckpt-*.safetensors"))
    assert ckpts == ["ckpt-00000001.safetensors", "ckpt-00000002.safetensors"], ckpts
