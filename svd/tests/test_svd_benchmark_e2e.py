"""benchmark.py --e2e (time per video) end to end on the tiny config, ours only, in a child process."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
PROJECT = Path(__file__).resolve().parents[1]


def test_e2e_times_every_part_and_keeps_the_other_results(tmp_path):
    """PyNative step (compiling even the tiny UNet takes ~30 s on 2 cores; graph mode is the same code + ms.jit)."""
    out = tmp_path / "bench.json"
    out.write_text(json.dumps({"results": ["kept"]}))
    r = subprocess.run([sys.executable, "benchmark.py", "--e2e", "--tiny", "--size", "64x64", "--frames", "2",
                        "--repeats", "1", "--steps", "10", "--mode", "pynative", "--out", str(out)],
                       cwd=PROJECT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["results"] == ["kept"] and data["e2e"]["steps"] == 10 and data["e2e"]["tiny"]
    s = data["e2e"]["summary"]["impls"]
    assert list(s) == ["ours"] and not s["ours"]["errors"]
    assert set(s["ours"]["median_s"]) == {"image", "vae_encode", "step", "vae_decode"}
    assert s["ours"]["per_video_s"] == pytest.approx(s["ours"]["fixed_s"] + 10 * s["ours"]["step_s"])
    assert "| **per video** (fixed + 10 x step) |" in r.stdout and "CPU " in r.stdout
    assert data["e2e"]["parts"]["ours"]["step"]["what"] == "denoiser pynative, the CFG batch of 2 x 2 frames"
