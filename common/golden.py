"""Golden-parity harness: runs the checks recorded from the original PyTorch code.

Layout and rules: ``../shared/golden/FORMAT.md``. The root is ``$GOLDEN_DIR`` when set, else
``../shared/golden`` beside the repository. Every case folder ``<root>/<model>/<case>/case.json``
is discovered; each of its checks becomes one pytest test ``golden[<model>/<case>/<check>]``
(see ``common/tests/test_golden.py``).

A model package registers its adapter in :data:`ADAPTERS` (``model -> module``); the module
defines ``make_adapter(case: GoldenCase) -> adapter`` whose ``run(check: GoldenCheck)`` returns
``{output_name: array}``. The harness compares every expected output:
``max|ours - ref| <= tol * max(1, max|ref|)``. A missing adapter, an unknown check, a missing
output or an exception is a failure; nothing is skipped.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]

#: model name (folder under the golden root) -> module defining ``make_adapter``. A model counts as
#: ported once that module exists (:func:`has_adapter`); the others' cases are marked ``unported``.
ADAPTERS: dict[str, str] = {
    "dynamicrafter": "dynamicrafter_ms.golden_adapter",
    "svd": "svd_ms.golden_adapter",
    "animatediff": "animatediff_ms.golden_adapter",
}


def golden_root() -> Path:
    """``$GOLDEN_DIR`` or ``<repo>/../shared/golden``."""
    env = os.environ.get("GOLDEN_DIR")
    return Path(env).expanduser().resolve() if env else (REPO_ROOT.parent / "shared" / "golden").resolve()


class GoldenError(AssertionError):
    """A golden check that failed or could not run."""


@dataclass
class GoldenCheck:
    """One entry of ``case.json``'s ``checks``, with its tensors resolved."""

    name: str
    what: str
    inputs: dict[str, np.ndarray]
    params: dict[str, Any]
    expected: dict[str, np.ndarray]
    tol: float
    raw: dict = field(repr=False, default_factory=dict)


@dataclass
class GoldenCase:
    """A case folder: manifest, files and tensors."""

    model: str
    name: str
    root: Path

    @cached_property
    def manifest(self) -> dict:
        return json.loads((self.root / "case.json").read_text())

    @cached_property
    def tensors(self) -> dict[str, np.ndarray]:
        from safetensors.numpy import load_file

        return load_file(str(self.root / "tensors.safetensors"))

    def path(self, rel: str) -> Path:
        """A file of the case, by its path relative to the case folder."""
        return self.root / rel

    @property
    def config_path(self) -> Path:
        return self.root / self.manifest.get("config", "config.yaml")

    @property
    def check_names(self) -> list[str]:
        return [c["name"] for c in self.manifest["checks"]]

    def check(self, name: str) -> GoldenCheck:
        for c in self.manifest["checks"]:
            if c["name"] == name:
                t = self.tensors
                missing = [k for k in list(c.get("inputs", {}).values()) + list(c.get("outputs", {}).values())
                           if k not in t]
                if missing:
                    raise GoldenError(f"{self.root}/tensors.safetensors lacks {missing}")
                return GoldenCheck(
                    name=name, what=c.get("what", ""),
                    inputs={a: t[k] for a, k in c.get("inputs", {}).items()},
                    params=dict(c.get("params", {})),
                    expected={o: t[k] for o, k in c.get("outputs", {}).items()},
                    tol=float(c.get("tol", 0.0)), raw=c)
        raise GoldenError(f"case {self.model}/{self.name} has no check {name!r}")


def discover(root: Path | None = None) -> list[GoldenCase]:
    """Every case under the root, sorted by (model, case)."""
    root = root or golden_root()
    cases = []
    if not root.is_dir():
        return cases
    for manifest in sorted(root.glob("*/*/case.json")):
        cases.append(GoldenCase(model=manifest.parent.parent.name, name=manifest.parent.name, root=manifest.parent))
    return cases


def compare(name: str, ours, ref: np.ndarray, tol: float) -> tuple[bool, str]:
    """FORMAT.md's criterion for one output; returns (passed, one-line report)."""
    ours = np.asarray(ours)
    if ours.shape != ref.shape:
        return False, f"{name}: shape {tuple(ours.shape)} != expected {tuple(ref.shape)}"
    if not np.all(np.isfinite(ours)):
        return False, f"{name}: {int(np.size(ours) - np.isfinite(ours).sum())} non-finite values"
    err = float(np.max(np.abs(ours.astype(np.float64) - ref.astype(np.float64)))) if ref.size else 0.0
    bound = tol * max(1.0, float(np.max(np.abs(ref))) if ref.size else 1.0)
    ok = err <= bound
    return ok, f"{name}: max|err| {err:.3e} {'<=' if ok else '>'} {bound:.3e} (tol {tol:g})"


def has_adapter(model: str) -> bool:
    """True when the model's adapter module is installed (its package may still fail to import: that fails the checks)."""
    name = ADAPTERS.get(model)
    if name is None:
        return False
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


_ADAPTER_CACHE: dict[tuple[str, str], Any] = {}


def get_adapter(case: GoldenCase):
    """The model's adapter for a case (built once per case and cached)."""
    key = (case.model, str(case.root))
    if key in _ADAPTER_CACHE:
        return _ADAPTER_CACHE[key]
    module_name = ADAPTERS.get(case.model)
    if module_name is None:
        raise GoldenError(f"model {case.model!r} has no MindSpore port yet: no golden adapter is registered "
                          f"(common/golden.py ADAPTERS)")
    if not has_adapter(case.model):
        raise GoldenError(f"model {case.model!r} has no MindSpore port yet: module {module_name} does not exist")
    module = importlib.import_module(module_name)
    adapter = module.make_adapter(case)
    _ADAPTER_CACHE[key] = adapter
    return adapter


def run_check(case: GoldenCase, check_name: str) -> list[str]:
    """Run one check and compare all its outputs. Raises GoldenError with the per-output report."""
    check = case.check(check_name)
    adapter = get_adapter(case)
    outputs = adapter.run(check)
    if not isinstance(outputs, dict):
        raise GoldenError(f"adapter for {case.model} returned {type(outputs).__name__}, not a dict of outputs")
    lines, ok_all = [], True
    for out_name, ref in check.expected.items():
        if out_name not in outputs:
            ok_all = False
            lines.append(f"{out_name}: not produced by the adapter")
            continue
        ok, line = compare(out_name, outputs[out_name], ref, check.tol)
        ok_all &= ok
        lines.append(line)
    report = f"golden {case.model}/{case.name}/{check_name}: " + "; ".join(lines)
    if not ok_all:
        raise GoldenError(report)
    return lines


def main(argv: list[str] | None = None) -> int:
    """``python -m common.golden [model ...]``: run checks and print the worst error per output."""
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("models", nargs="*", help="models to run (default: all found under the golden root)")
    args = p.parse_args(argv)
    failed = 0
    for case in discover():
        if args.models and case.model not in args.models:
            continue
        for name in case.check_names:
            try:
                lines = run_check(case, name)
                print(f"PASS {case.model}/{case.name}/{name}: " + "; ".join(lines))
            except Exception as e:  # report every failure, keep going
                failed += 1
                print(f"FAIL {case.model}/{case.name}/{name}: {type(e).__name__}: {e}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
