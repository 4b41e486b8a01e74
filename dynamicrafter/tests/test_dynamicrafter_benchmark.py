"""benchmark.py --e2e (time per video) end to end on a tiny config, ours only, in a child process."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_e2e_times_every_part_and_keeps_the_other_results(dc, tiny_dir, tmp_path):
    """PyNative step (graph mode is the same code + ms.jit, its compile alone ~20 s here)."""
    out = tmp_path / "bench.json"
    out.write_text(json.dumps({"results": ["kept"]}))
    env = {k: v for k, v in os.environ.items() if k != "REF_SRC"}
    r = subprocess.run([sys.executable, "benchmark.py", "--e2e", "--tiny", "--config", str(tiny_dir / "tiny256.yaml"),
                        "--frames", "2", "--runs", "1", "--steps", "10", "--mode", "pynative", "--json", str(out)],
                       cwd=dc.DC_DIR, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["results"] == ["kept"] and data["e2e"]["steps"] == 10 and data["e2e"]["tiny"]
    s = data["e2e"]["summary"]["impls"]["ours"]
    assert not s["errors"] and set(s["median_s"]) == {"text", "image", "vae_encode", "step", "vae_decode"}
    assert s["per_video_s"] == pytest.approx(s["fixed_s"] + 10 * s["step_s"]) and s["step_s"] > 0
    assert "| **per video** (fixed + 10 x step) |" in r.stdout and "CPU " in r.stdout
    assert "pynative, cond + uncond as 1 call(s) of batch 2" in data["e2e"]["parts"]["ours"]["step"]["what"]
