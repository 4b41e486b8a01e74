"""What every model's ``benchmark.py`` shares: the machine it ran on, a timed call, peak memory, one case per
child process, stand-ins for imports a reference implementation needs but never calls.

A benchmark runs each case (ours in graph / PyNative mode, the reference) in a fresh process
(:func:`run_child`), so the peak resident memory (:func:`peak_rss_gib`) is the case's own; the child prints its
figures as one JSON line last. Every result file carries :func:`machine_info` (the CPU model as ``lscpu`` names
it: ratios against torch differ between Intel and AMD), and every printed table starts with
:func:`machine_line`.

Time per video (``benchmark.py --e2e``): every part of a pipeline (text / image encoders, VAE encode, one denoiser
step with every guidance branch, VAE decode) timed in a child process per part (:func:`run_e2e_parts`,
:func:`time_part`), then ``fixed parts + steps x step`` per implementation (:func:`e2e_summary`, :func:`e2e_table`),
stored under one key of the model's results file beside the others (:func:`update_json`).
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
           "run_child", "stub_modules", "reference_env", "E2E_PARTS", "time_part", "run_e2e_parts", "e2e_summary",
           "e2e_table", "update_json"]


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


# ------------------------------------------------------------------------------ time per video (--e2e)
#: the parts of one video, in pipeline order; ``step`` is one denoiser step (every CFG branch), the rest run once
E2E_PARTS = ("text", "image", "vae_encode", "step", "vae_decode")


def time_part(call: Callable[[], Any], runs: int, what: str) -> dict:
    """One part of the per-video benchmark: :func:`time_calls` of ``call`` (what ONE video needs of this part, e.g.
    the cond and uncond prompts; blocking), with ``what`` (a line saying what a call does) and the process's peak
    RSS so far (its own when the part runs alone in its process)."""
    r = time_calls(call, runs)
    r.pop("result")
    return {**r, "what": what, "peak_rss_gib": peak_rss_gib()}


def run_e2e_parts(cmd_for: Callable[[str, Sequence[str]], Sequence[str]], impls: Sequence[str], parts: Sequence[str],
                  *, together: bool = False, env_for: Callable[[str], Mapping | None] | None = None,
                  timeout: float | None = None) -> dict:
    """Run every part of every implementation in child processes; ``{impl: {part: figures or {"error"}}}``.

    Args:
        cmd_for: ``(impl, parts) -> argv`` of a child that prints ``{"parts": {part: time_part(...)}}`` last.
        impls: e.g. ``("ours", "ref")``. parts: e.g. :data:`E2E_PARTS` (those the model has).
        together: all parts of an implementation in one child (quick; then each part's peak RSS includes the parts
            before it); default one child per part (the part's own peak RSS).
        env_for: ``impl -> environment`` of its children (None = this one's).
    """
    out: dict = {}
    for impl in impls:
        out[impl] = {}
        for group in ([list(parts)] if together else [[p] for p in parts]):
            r = run_child(cmd_for(impl, group), env=env_for(impl) if env_for else None, timeout=timeout,
                          label=f"{impl} {','.join(group)}")
            for p in group:
                out[impl][p] = {"error": r["error"]} if "error" in r else {**r["parts"][p], "together": together}
            print(f"done: {impl} {','.join(group)}", file=sys.stderr, flush=True)
    return out


def e2e_summary(parts: Mapping[str, Mapping[str, dict]], steps: int, ref: str = "ref") -> dict:
    """Time per video of each implementation: ``fixed_s`` (the sum of every part but ``step``, each once) +
    ``steps`` x ``step_s``, ``peak_rss_gib`` (the largest part's), and the ratios ``<impl>/<ref>`` per part and per
    video. An implementation with a failed part has ``per_video_s`` None and ``errors``."""
    out: dict = {"steps": steps, "impls": {}}
    for impl, figs in parts.items():
        errors = {p: f["error"] for p, f in figs.items() if "error" in f}
        med = {p: f["median_s"] for p, f in figs.items() if "error" not in f}
        fixed = sum(v for p, v in med.items() if p != "step")
        step = med.get("step")
        whole = None if errors or step is None else fixed + steps * step
        out["impls"][impl] = {"fixed_s": fixed, "step_s": step, "per_video_s": whole, "median_s": med,
                              "peak_rss_gib": {p: f["peak_rss_gib"] for p, f in figs.items() if "error" not in f},
                              "errors": errors}
    r = out["impls"].get(ref)
    for impl, s in out["impls"].items():
        if impl == ref or r is None:
            continue
        s["ratio"] = {p: v / r["median_s"][p] for p, v in s["median_s"].items() if r["median_s"].get(p)}
        if s["per_video_s"] and r["per_video_s"]:
            s["ratio"]["per_video"] = s["per_video_s"] / r["per_video_s"]
    return out


def e2e_table(summary: Mapping, parts: Sequence[str], labels: Mapping[str, str] | None = None, ref: str = "ref") -> str:
    """Markdown table of :func:`e2e_summary`: a row per part (median s, peak RSS GiB per implementation, ratio)
    and the row ``per video`` (fixed + steps x step)."""
    impls = list(summary["impls"])
    labels = dict(labels or {})
    head = "| part | " + " | ".join(f"{labels.get(i, i)} s | {labels.get(i, i)} peak RSS GiB" for i in impls)
    others = [i for i in impls if i != ref and ref in impls]
    head += "".join(f" | {labels.get(i, i)} / {labels.get(ref, ref)}" for i in others) + " |"
    rows = [head, "|" + "---|" * (1 + 2 * len(impls) + len(others))]

    def cell(v, fmt="{:.2f}"):
        return "-" if v is None else fmt.format(v)

    for p in parts:
        cells = []
        for i in impls:
            s = summary["impls"][i]
            if p in s["errors"]:
                cells += [f"failed: {s['errors'][p][:80]}", "-"]
            else:
                cells += [cell(s["median_s"].get(p)), cell(s["peak_rss_gib"].get(p))]
        cells += [cell(summary["impls"][i].get("ratio", {}).get(p)) for i in others]
        name = p if p != "step" else f"step (x {summary['steps']})"
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    cells = []
    for i in impls:
        s = summary["impls"][i]
        peak = max(s["peak_rss_gib"].values()) if s["peak_rss_gib"] else None
        cells += [cell(s["per_video_s"], "{:.1f}"), cell(peak)]
    cells += [cell(summary["impls"][i].get("ratio", {}).get("per_video")) for i in others]
    rows.append(f"| **per video** (fixed + {summary['steps']} x step) | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def update_json(path, key: str, value: Any) -> None:
    """Set ``key`` of the JSON object in ``path`` to ``value``, keeping every other entry (a new file if none);
    written atomically (a temporary file renamed over it)."""
    p = Path(path)
    data = json.loads(p.read_text()) if p.is_file() else {}
    data[key] = value
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, p)
