"""benchmark.py on the tiny model (the full size is for a machine of its own): it runs and reports."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .train_helpers import VC_DIR, subprocess_env


@pytest.mark.slow
def test_tiny_benchmark_reports_a_guided_call(tmp_path):
    out = tmp_path / "bench.json"
    env = subprocess_env()
    env.pop("REF_SRC", None)
    r = subprocess.run([sys.executable, "benchmark.py", "--tiny", "--runs", "1", "--modes", "pynative",
                        "--json", str(out)], cwd=VC_DIR, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())["results"][0]
    assert res["mode"] == "pynative" and res["median_s"] > 0 and res["peak_rss_gib"] > 0 and len(res["runs_s"]) == 1
    assert 2e6 < res["params"] < 5e6  # demo_tiny's UNet with 1024-wide contexts
    assert "pynative" in r.stdout and "median s/call" in r.stdout


def test_bad_reference_checkout_is_one_line(tmp_path):
    env = dict(subprocess_env(), REF_SRC=str(tmp_path))
    r = subprocess.run([sys.executable, "benchmark.py", "--tiny"], cwd=VC_DIR, env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
    assert r.stderr.startswith(f"error: REF_SRC={tmp_path} is not a checkout of ali-vilab/videocomposer")
