"""The harness's marking rule, proved both ways on a toy model in a temporary golden root.

A toy package ``toy_ms`` (on PYTHONPATH of a child pytest) implements ``good`` (passes) and ``bad``
(fails) and not ``later``/``later2``. The default command (``-m "not unported"``) must run ``good`` and
``bad`` (so an implemented failure still fails the run) and deselect the pending ones; ``-m golden`` must
fail the pending ones too; a case whose every check is pending is never built.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

REPO = Path(__file__).resolve().parents[2]

ADAPTER = '''
import os
import numpy as np
from common.golden import GoldenAdapter


class Adapter(GoldenAdapter):
    def __init__(self, case):
        super().__init__(case)
        with open(os.environ["TOY_BUILD_LOG"], "a") as f:
            f.write(case.name + "\\n")

    def check_good(self, c):
        return {"y": c.inputs["x"] * 2}

    def check_bad(self, c):
        return {"y": c.inputs["x"] * 2 + 1}
'''


def _case(root: Path, name: str, checks: list[str]):
    d = root / "toy" / name
    d.mkdir(parents=True)
    x = np.arange(4, dtype=np.float32)
    save_file({"x": x, "y": 2 * x}, str(d / "tensors.safetensors"))
    manifest = {"model": "toy", "case": name, "checks": [
        {"name": n, "what": "toy", "inputs": {"x": "x"}, "outputs": {"y": "y"}, "tol": 1e-6} for n in checks]}
    (d / "case.json").write_text(json.dumps(manifest))


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("golden_rule")
    _case(tmp / "golden", "case_a", ["good", "bad", "later"])
    _case(tmp / "golden", "case_b", ["later2"])  # every check pending: must never be built
    pkg = tmp / "pkgs" / "toy_ms"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "golden_adapter.py").write_text(textwrap.dedent(ADAPTER))
    return tmp


def _run(toy: Path, *args: str) -> tuple[int, str, list[str]]:
    log = toy / "builds.txt"
    log.write_text("")
    env = dict(os.environ, GOLDEN_DIR=str(toy / "golden"), TOY_BUILD_LOG=str(log),
               PYTHONPATH=os.pathsep.join([str(toy / "pkgs"), os.environ.get("PYTHONPATH", "")]))
    p = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout + p.stderr, log.read_text().split()


def _pytest(toy, *marks):
    return _run(toy, "-m", "pytest", "-q", "-p", "no:cacheprovider", "common/tests/test_golden.py", *marks)


def test_default_run_fails_on_an_implemented_check_and_deselects_pending(toy):
    rc, out, built = _pytest(toy, "-m", "not unported")
    assert rc == 1, out
    assert "FAILED common/tests/test_golden.py::golden[toy/case_a/bad]" in out, out
    assert "later" not in out.split("short test summary info")[-1], out
    assert "1 failed, 2 passed, 2 deselected" in out, out
    assert "golden: 2 pending checks deselected (toy 2)" in out, out
    assert built == ["case_a"], built  # case_b (all pending) was never built


def test_golden_marker_runs_pending_checks_and_they_fail(toy):
    rc, out, built = _pytest(toy, "-m", "golden")
    assert rc == 1, out
    for name in ("case_a/bad", "case_a/later", "case_b/later2"):
        assert f"FAILED common/tests/test_golden.py::golden[toy/{name}]" in out, out
    assert "1 passed" in out and "3 failed" in out, out
    assert "pending, the toy adapter does not implement it yet" in out, out
    assert built == ["case_a"], built  # a pending check fails before its case is built


def test_unported_marker_selects_exactly_the_pending_checks(toy):
    rc, out, _ = _pytest(toy, "-m", "unported")
    assert rc == 1 and "2 failed" in out and "passed" not in out, out


def test_module_cli_lists_and_runs_every_check(toy):
    rc, out, _ = _run(toy, "-m", "common.golden", "--list")
    assert rc == 0, out
    assert "| toy | case_a | good, bad | later |" in out and "| toy | case_b | — | later2 |" in out, out
    rc, out, built = _run(toy, "-m", "common.golden")
    assert rc == 1, out
    assert "PASS toy/case_a/good" in out and "FAIL toy/case_a/bad" in out, out
    assert "FAIL toy/case_a/later" in out and "FAIL toy/case_b/later2" in out, out
    assert built == ["case_a"], built
