"""Golden-parity harness: runs the checks recorded from the original PyTorch code.

Layout and rules: ``../shared/golden/FORMAT.md``. The root is ``$GOLDEN_DIR`` when set, else
``../shared/golden`` beside the repository. Every case folder ``<root>/<model>/<case>/case.json``
is discovered; each of its checks becomes one pytest test ``golden[<model>/<case>/<check>]``
(see ``common/tests/test_golden.py``).

A model's adapter is found by convention: the module ``<model>_ms.golden_adapter`` defines
``Adapter``, a :class:`GoldenAdapter` subclass with one ``check_<name>(check)`` method per check it
implements; ``Adapter(case)`` builds the case's model and returns ``{output_name: array}`` per check.
The harness compares every expected output: ``max|ours - ref| <= tol * max(1, max|ref|)``.

A check is *implemented* when the model's ``Adapter`` has its ``check_<name>`` method; every other
check (all checks of a model with no adapter module, the checks of features not ported yet) is
*pending*: it carries the ``unported`` marker, the default test command deselects it, and it fails
when run (``-m golden``, ``-m unported``, ``python -m common.golden``). A case is built only when one
of its implemented checks runs. An unknown check, a missing output or an exception is a failure;
nothing is skipped.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import os
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]


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

    def checkpoint_path(self) -> Path:
        """The weights the case names (``case.json``'s ``checkpoint``: a file or a folder)."""
        ckpt = self.manifest.get("checkpoint")
        if not ckpt:
            raise GoldenError(f"{self.root}/case.json names no checkpoint")
        return self.path(ckpt)

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


class GoldenAdapter:
    """Base of a model's adapter: one ``check_<name>(self, check) -> {output: array or Tensor}`` per check.

    Subclasses build what the case needs in ``__init__`` (called once per case, only when one of its
    implemented checks runs). Outputs that are MindSpore tensors are converted to NumPy here.
    """

    #: prefix of the methods that implement checks
    PREFIX = "check_"

    def __init__(self, case: GoldenCase):
        self.case = case

    @classmethod
    def implemented(cls) -> frozenset[str]:
        """The check names this adapter implements (its ``check_<name>`` attributes), without building it."""
        return frozenset(n[len(cls.PREFIX):] for n in dir(cls)
                         if n.startswith(cls.PREFIX) and callable(getattr(cls, n)))

    def run(self, check: GoldenCheck) -> dict:
        fn = getattr(self, self.PREFIX + check.name, None)
        if fn is None:
            raise GoldenError(f"{self.case.model} adapter does not implement check {check.name!r} (pending)")
        out = fn(check)
        if not isinstance(out, dict):
            raise GoldenError(f"{type(self).__name__}.{self.PREFIX}{check.name} returned {type(out).__name__}, "
                              f"not a dict of outputs")
        return {k: (v.asnumpy() if hasattr(v, "asnumpy") else np.asarray(v)) for k, v in out.items()}


def discover(root: Path | None = None) -> list[GoldenCase]:
    """Every case under the root, sorted by (model, case)."""
    root = root or golden_root()
    cases = []
    if not root.is_dir():
        return cases
    for manifest in sorted(root.glob("*/*/case.json")):
        cases.append(GoldenCase(model=manifest.parent.parent.name, name=manifest.parent.name, root=manifest.parent))
    return cases


def cases_with(model: str, check: str, root: Path | None = None) -> list[GoldenCase]:
    """The cases of ``model`` that record a check named ``check`` (for tests of one component)."""
    return [c for c in discover(root) if c.model == model and check in c.check_names]


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


# ---------------------------------------------------------------------------------------- adapters
def adapter_module_name(model: str) -> str:
    """The module holding a model's adapter, by convention: ``<model>_ms.golden_adapter``."""
    return f"{model}_ms.golden_adapter"


def has_adapter(model: str) -> bool:
    """True when the model's adapter module is installed (its package may still fail to import: that fails the checks)."""
    try:
        return importlib.util.find_spec(adapter_module_name(model)) is not None
    except (ModuleNotFoundError, ValueError):
        return False


@cache
def _adapter_class(model: str) -> type[GoldenAdapter]:
    name = adapter_module_name(model)
    if not has_adapter(model):
        raise GoldenError(f"model {model!r} has no MindSpore port yet: module {name} does not exist")
    cls = getattr(importlib.import_module(name), "Adapter", None)
    if not (isinstance(cls, type) and issubclass(cls, GoldenAdapter)):
        raise GoldenError(f"{name} defines no Adapter class (a common.golden.GoldenAdapter subclass)")
    return cls


def implemented_checks(model: str) -> frozenset[str] | None:
    """The check names the model's adapter implements; an empty set when it has no adapter module.

    ``None`` when the adapter module exists but cannot be imported or defines no ``Adapter``: every check
    is then treated as implemented, so that the error fails the default run instead of hiding it.
    """
    if not has_adapter(model):
        return frozenset()
    try:
        return _adapter_class(model).implemented()
    except Exception:  # reported by run_check, check by check
        return None


def is_implemented(case: GoldenCase, check: str) -> bool:
    """Whether ``check`` of ``case`` runs in the default test command (see the module docstring)."""
    names = implemented_checks(case.model)
    return names is None or check in names


_ADAPTER_CACHE: dict[tuple[str, str], GoldenAdapter] = {}


def get_adapter(case: GoldenCase) -> GoldenAdapter:
    """The model's adapter for a case (built once per case and cached)."""
    key = (case.model, str(case.root))
    if key not in _ADAPTER_CACHE:
        _ADAPTER_CACHE[key] = _adapter_class(case.model)(case)
    return _ADAPTER_CACHE[key]


def run_check(case: GoldenCase, check_name: str) -> list[str]:
    """Run one check and compare all its outputs. Raises GoldenError with the per-output report.

    A pending check fails here, before its case is built.
    """
    check = case.check(check_name)
    if not is_implemented(case, check_name):
        if not has_adapter(case.model):
            raise GoldenError(f"model {case.model!r} has no MindSpore port yet: module "
                              f"{adapter_module_name(case.model)} does not exist")
        raise GoldenError(f"golden {case.model}/{case.name}/{check_name}: pending, the {case.model} adapter "
                          f"does not implement it yet (no {GoldenAdapter.PREFIX}{check_name})")
    outputs = get_adapter(case).run(check)
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


def status_table(cases: list[GoldenCase]) -> list[tuple[str, str, list[str], list[str]]]:
    """``(model, case, implemented checks, pending checks)`` per case, in discovery order."""
    return [(c.model, c.name, [n for n in c.check_names if is_implemented(c, n)],
             [n for n in c.check_names if not is_implemented(c, n)]) for c in cases]


def format_status(cases: list[GoldenCase]) -> str:
    """The Markdown table of implemented and pending checks per model and case (``--list``, docs/parity.md)."""
    rows = ["| model | case | implemented | pending |", "|---|---|---|---|"]
    n_done = n_pending = 0
    broken = {}
    for model in sorted({c.model for c in cases}):
        if has_adapter(model) and implemented_checks(model) is None:
            try:
                _adapter_class(model)
            except Exception as e:
                broken[model] = f"{type(e).__name__}: {e}"
    for model, case, done, pending in status_table(cases):
        n_done += len(done)
        n_pending += len(pending)
        rows.append(f"| {model} | {case} | {', '.join(done) or '—'} | {', '.join(pending) or '—'} |")
    rows.append(f"\n{n_done} implemented, {n_pending} pending checks in {len(cases)} cases under {golden_root()}")
    rows += [f"{m}: the adapter module fails to load ({err}); all its checks count as implemented and fail"
             for m, err in broken.items()]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """``python -m common.golden [model ...]``: run every check (pending ones fail) and print the worst error per output."""
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("models", nargs="*", help="models to run (default: all found under the golden root)")
    p.add_argument("--list", action="store_true",
                   help="print the implemented and pending checks per model and case, run nothing")
    args = p.parse_args(argv)
    cases = [c for c in discover() if not args.models or c.model in args.models]
    if args.list:
        print(format_status(cases))
        return 0
    failed = 0
    for case in cases:
        for name in case.check_names:
            try:
                lines = run_check(case, name)
                print(f"PASS {case.model}/{case.name}/{name}: " + "; ".join(lines))
            except Exception as e:  # report every failure, keep going
                failed += 1
                print(f"FAIL {case.model}/{case.name}/{name}: {type(e).__name__}: {e}")
    return 1 if failed else 0


if __name__ == "__main__":
    # run as ``common.golden`` (not ``__main__``) so that adapters subclass the same GoldenAdapter
    raise SystemExit(importlib.import_module("common.golden").main())
