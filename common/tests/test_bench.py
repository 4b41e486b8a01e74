"""common.bench: what every benchmark.py shares (the machine named, a timed call, one case per process)."""
from __future__ import annotations

import sys

from common.bench import (
    machine_info,
    machine_line,
    peak_rss_gib,
    reference_env,
    run_child,
    stub_modules,
    time_calls,
)


def test_machine_names_the_cpu_model():
    m = machine_info()
    assert m["cpu"] and m["cores"] >= 1 and m["mindspore"]
    assert machine_line(m).startswith(f"CPU {m['cpu']} x{m['cores']}")


def test_time_calls_counts_the_first_call_apart():
    calls = []
    out = time_calls(lambda: calls.append(1) or len(calls), 3)
    assert len(calls) == 4 and out["result"] == 4 and len(out["runs_s"]) == 3
    assert out["first_call_s"] >= 0 and out["median_s"] == sorted(out["runs_s"])[1]
    only = time_calls(lambda: None, 0)
    assert only["runs_s"] == [] and only["median_s"] == only["first_call_s"]
    assert peak_rss_gib() > 0


def test_run_child_returns_the_last_json_line_or_one_error(tmp_path, monkeypatch):
    ok = run_child([sys.executable, "-c", "print('chatter'); print('{\"a\": 1}'); print('{\"a\": 2}')"])
    assert ok["a"] == 2 and ok["wall_s"] > 0
    bad = run_child([sys.executable, "-c", "import sys; print('why it failed', file=sys.stderr); sys.exit(3)"],
                    label="case")
    assert bad["error"] == "exit 3: why it failed"
    slow = run_child([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.5)
    assert slow["error"].startswith("timed out")
    stubs = stub_modules({"pkg/mod.py": "X = 7\n", "pkg/__init__.py": ""})
    monkeypatch.setenv("REF_SRC", str(tmp_path))
    env = reference_env({"cv2.py": "Y = 1\n"}, extra_paths=[stubs])
    r = run_child([sys.executable, "-c", "import cv2, json; from pkg.mod import X; print(json.dumps({'v': X + cv2.Y}))"],
                  env=env)
    assert r["v"] == 8 and env["PYTHONPATH"].split(":")[0] == str(tmp_path)


def test_e2e_summary_is_fixed_parts_plus_steps_times_step_and_json_keeps_other_keys(tmp_path):
    import json

    from common.bench import e2e_summary, e2e_table, update_json

    parts = {"ours": {"text": {"median_s": 1.0, "peak_rss_gib": 2.0}, "step": {"median_s": 3.0, "peak_rss_gib": 9.0},
                      "vae_decode": {"median_s": 5.0, "peak_rss_gib": 4.0}},
             "ref": {"text": {"median_s": 2.0, "peak_rss_gib": 1.0}, "step": {"median_s": 2.0, "peak_rss_gib": 8.0},
                     "vae_decode": {"error": "killed (out of memory?)"}}}
    s = e2e_summary(parts, steps=10)
    ours, ref = s["impls"]["ours"], s["impls"]["ref"]
    assert ours["fixed_s"] == 6.0 and ours["step_s"] == 3.0 and ours["per_video_s"] == 36.0
    assert ref["per_video_s"] is None and ref["errors"] == {"vae_decode": "killed (out of memory?)"}
    assert ours["ratio"] == {"text": 0.5, "step": 1.5}  # no per-video ratio while the reference is incomplete
    table = e2e_table(s, ["text", "step", "vae_decode"], {"ours": "MindSpore", "ref": "torch"})
    assert "| step (x 10) | 3.00 | 9.00 | 2.00 | 8.00 | 1.50 |" in table
    assert "failed: killed (out of memory?)" in table and "| **per video** (fixed + 10 x step) | 36.0 | 9.00 | - |" in table
    f = tmp_path / "results.json"
    f.write_text(json.dumps({"results": [1], "e2e": {"old": 1}}))
    update_json(f, "e2e", {"new": 2})
    assert json.loads(f.read_text()) == {"results": [1], "e2e": {"new": 2}}
