"""What every model's ``benchmark.py`` shares: the machine it ran on, a timed call, peak memory, one case per
child process, stand-ins for imports a reference implementation needs but never calls.

A benchmark runs each case (ours in graph / PyNative mode, the reference) in a fresh process
(:func:`run_child`), so the peak resident memory (:func:`peak_rss_gib`) is the case's own; the child prints its
figures as one JSON line last. Every result file carries :func:`machine_info` (the CPU model as ``lscpu`` names
it: ratios against torch differ between Intel and AMD), and every printed table starts with
:func:`machine_line`.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["cpu_model", "machine_info", "machine_line", "peak_rss_gib", "mem_available_gib", "time_calls",
           "run_child", "stub_modules", "reference_env"]


def cpu_model() -> str:
    """The CPU's model name (``lscpu``'s "Model name", read from /proc/cpuinfo), else what ``platform`` says."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """``{"cpu", "cores", "mem_gib", "python", "mindspore"}`` of this machine (stored with every result)."""
    try:
        import mindspore

        ms_version = mindspore.__version__
    except ImportError:  # a reference child without MindSpore
        ms_version = None
    mem = None
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    except (ValueError, OSError, AttributeError):
        pass
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "mem_gib": round(mem, 1) if mem else None,
            "python": platform.python_version(), "mindspore": ms_version}


def machine_line(info: Mapping | None = None) -> str:
    """One line naming the machine, e.g. ``CPU AMD EPYC 7B13 x2, 23.5 GiB, MindSpore 2.7.1``."""
    m = dict(info or machine_info())
    return (f"CPU {m['cpu']} x{m['cores']}" + (f", {m['mem_gib']} GiB" if m.get("mem_gib") else "")
            + (f", MindSpore {m['mindspore']}" if m.get("mindspore") else ""))


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far, GiB (``ru_maxrss``, KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def mem_available_gib() -> float:
    """``MemAvailable`` of /proc/meminfo in GiB (inf where it cannot be read)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2 ** 20
    except OSError:
        pass
    return float("inf")


def time_calls(call: Callable[[], Any], runs: int) -> dict:
    """Call ``call()`` once apart (graph mode: with the compilation; its time is ``first_call_s``), then
    ``runs`` timed times; ``call`` must block until its result is ready (``.asnumpy()``).

    Returns ``{"first_call_s", "runs_s", "median_s", "result"}``: the median of the runs, or the first call's
    time when ``runs`` is 0; ``result`` is the last call's return value (pop it before writing JSON)."""
    t0 = time.perf_counter()
    result = call()
    warm = time.perf_counter() - t0
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - t0)
    return {"first_call_s": warm, "runs_s": times, "median_s": statistics.median(times) if times else warm,
            "result": result}


def run_child(cmd: Sequence[str], *, env: Mapping | None = None, cwd=None, timeout: float | None = None,
              label: str = "") -> dict:
    """Run one benchmark case in a fresh process and return the JSON object its stdout ends with, plus
    ``wall_s``; on failure ``{"error": "<why>: <last stderr line>", "wall_s"}`` (exit -9/137: "killed (out of
    memory?)"), also reported on stderr with ``label``."""
    t0 = time.perf_counter()
    try:
        r = subprocess.run(list(cmd), capture_output=True, text=True, env=dict(env) if env else None, cwd=cwd,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        why = f"timed out after {timeout} s"
        print(f"{label or cmd[-1]}: {why}", file=sys.stderr)
        return {"error": why, "wall_s": time.perf_counter() - t0}
    wall = time.perf_counter() - t0
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode != 0 or not lines:
        why = "killed (out of memory?)" if r.returncode in (-9, 137) else f"exit {r.returncode}"
        last = (r.stderr.strip().splitlines() or ["?"])[-1][:300]
        print(f"{label or 'case'} failed: {why}: {last}", file=sys.stderr)
        return {"error": f"{why}: {last}", "wall_s": wall}
    return {**json.loads(lines[-1]), "wall_s": wall}


def stub_modules(files: Mapping[str, str], prefix: str = "ref_stubs_") -> str:
    """A temporary folder holding ``{relative path: source}`` stand-ins for modules a reference
    implementation imports but the benchmarked call never uses (put it on the reference child's PYTHONPATH);
    returns its path."""
    d = tempfile.mkdtemp(prefix=prefix)
    for rel, text in files.items():
        p = Path(d, rel)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return d


def reference_env(stubs: Mapping[str, str] | None = None, *, src_var: str = "REF_SRC", prefix: str = "ref_stubs_",
                  extra_paths: Sequence[str] = ()) -> dict:
    """The environment of a child that imports the original implementation: ``$REF_SRC`` (the checkout), a
    folder of :func:`stub_modules` (``stubs``) and ``extra_paths`` put before the current PYTHONPATH."""
    paths = [os.environ[src_var]] + ([stub_modules(stubs, prefix)] if stubs else []) + list(extra_paths)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(paths + [q for q in [env.get("PYTHONPATH")] if q])
    return env
