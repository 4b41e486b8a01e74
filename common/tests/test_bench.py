"""common.bench: what every benchmark.py shares (the machine named, a timed call, one case per process)."""
from __future__ import annotations

import sys

from common.bench import machine_info, machine_line, peak_rss_gib, reference_env, run_child, stub_modules, time_calls


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
