"""GroupNorm on CPU, op level: MindSpore's ``ops.group_norm``, pure-MindSpore alternatives, the C++ AOT kernel
(``common.nn.set_groupnorm_kernel("aot")``) and torch's ``group_norm`` (the reference), in the same run.

    python scripts/bench_groupnorm.py                       # every form at every case, forward and fwd+bwd
    python scripts/bench_groupnorm.py --cases unet_320 --impls native,aot,torch --passes fwd
    python scripts/bench_groupnorm.py --unet                # DynamiCrafter-256 UNet: GroupNorm's share
    python scripts/bench_groupnorm.py --json out.json

Each implementation runs in its own process (its own thread pools: torch's and MindSpore's OpenMP would
otherwise share the cores). Forms: ``torch`` (F.group_norm, eager), ``native`` / ``native_jit``
(``ops.group_norm`` in PyNative / under ``ms.jit``), ``reshape`` / ``reshape_jit`` (a reshape to (N, G, -1) +
mean / variance + per-channel affine), ``aot`` / ``aot_jit`` (the C++ kernel). Passes: ``fwd`` (one forward)
and ``fwdbwd`` (forward and backward given the output's gradient: gradients for x, weight, bias). Each
figure is the median of ``--runs`` timed calls after one untimed call (``common.bench.time_calls``),
calls blocking (``ms.runtime.launch_blocking``). 32 groups, eps 1e-5, float32, random normal input.

``--unet``: the GroupNorm calls of one full-size DynamiCrafter-256 UNet call at the CFG batch ((2, 8, 16, 32,
32) latents, as dynamicrafter/benchmark.py) are listed by running a 1/10-width copy of the UNet (model_channels
32) once in PyNative and scaling the channels back (no full-size model is built); each distinct shape is then
timed per form, and the sum (count x median) per form is printed: GroupNorm's time in one UNet call.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path

from common.bench import machine_info, machine_line, run_child, time_calls

os.environ.setdefault("GLOG_v", "3")
ROOT = Path(__file__).resolve().parents[1]
GROUPS = 32
EPS = 1e-5
#: name -> input shape (N, C, *): the DynamiCrafter-256 UNet at the CFG batch (2 x 16 frames) and the VAE
#: decoder of 16 frames at 256x256
CASES = {
    "unet_320": (32, 320, 32, 32),
    "unet_640": (32, 640, 16, 16),
    "unet_1280": (32, 1280, 8, 8),
    "vae_512": (16, 512, 64, 64),
    "vae_128": (16, 128, 256, 256),
}
IMPLS = ("torch", "native", "native_jit", "reshape", "reshape_jit", "aot", "aot_jit")
PASSES = ("fwd", "fwdbwd")
WIDTH_DIV = 10  # the --unet census runs a UNet of model_channels 320 / 10


def _ms_forward(impl: str, groups: int):
    """``f(x, w, b) -> y`` of one MindSpore form."""
    import mindspore as ms
    from mindspore import ops

    if impl.startswith("native"):
        def f(x, w, b):
            return ops.group_norm(x, groups, w, b, EPS)
    elif impl.startswith("reshape"):
        def f(x, w, b):
            g = x.reshape(x.shape[0], groups, -1)  # (n, G, c/G * s)
            mean = g.mean(-1, keep_dims=True)
            var = ops.square(g - mean).mean(-1, keep_dims=True)
            y = ((g - mean) * ops.rsqrt(var + EPS)).reshape(x.shape[0], x.shape[1], -1)  # (n, c, s)
            return (y * w.reshape(1, -1, 1) + b.reshape(1, -1, 1)).reshape(x.shape)
    else:
        from common.nn.group_norm_kernel import AotGroupNorm

        f = AotGroupNorm(groups, EPS)
    if impl.endswith("_jit"):
        f = ms.jit(f)
    return f


def _time_ms(impl: str, shape, passes, runs: int) -> dict:
    import mindspore as ms
    import numpy as np
    from mindspore import ops

    rng = np.random.default_rng(0)
    x = ms.Tensor(rng.standard_normal(shape, dtype=np.float32))
    w = ms.Tensor(rng.standard_normal(shape[1], dtype=np.float32))
    b = ms.Tensor(rng.standard_normal(shape[1], dtype=np.float32))
    out = {}
    base = _ms_forward(impl.replace("_jit", ""), GROUPS)
    if "fwd" in passes:
        f = ms.jit(base) if impl.endswith("_jit") else base

        def call():
            y = f(x, w, b)
            ms.runtime.synchronize()
            return y

        out["fwd"] = time_calls(call, runs)["median_s"]
    if "fwdbwd" in passes:
        dy = ms.Tensor(rng.standard_normal(shape, dtype=np.float32))
        grad = ops.GradOperation(get_all=True, sens_param=True)(base)
        g = ms.jit(grad) if impl.endswith("_jit") else grad

        def call():
            r = g(x, w, b, dy)
            ms.runtime.synchronize()
            return r

        out["fwdbwd"] = time_calls(call, runs)["median_s"]
    return out


def _time_torch(shape, passes, runs: int) -> dict:
    import torch

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen)
    w, b = torch.randn(shape[1], generator=gen), torch.randn(shape[1], generator=gen)
    out = {}
    if "fwd" in passes:
        with torch.no_grad():
            out["fwd"] = time_calls(lambda: torch.nn.functional.group_norm(x, GROUPS, w, b, EPS), runs)["median_s"]
    if "fwdbwd" in passes:
        xg, wg, bg = (t.clone().requires_grad_() for t in (x, w, b))
        dy = torch.randn(shape, generator=gen)

        def call():
            y = torch.nn.functional.group_norm(xg, GROUPS, wg, bg, EPS)
            return torch.autograd.grad(y, (xg, wg, bg), dy)

        out["fwdbwd"] = time_calls(call, runs)["median_s"]
    return out


def child(impl: str, shapes: dict, passes, runs: int) -> dict:
    """Figures of one implementation: ``{case: {pass: median s}}``."""
    if impl != "torch":
        import mindspore as ms

        ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
        ms.runtime.launch_blocking()
    res = {}
    for name, shape in shapes.items():
        res[name] = _time_torch(shape, passes, runs) if impl == "torch" else _time_ms(impl, shape, passes, runs)
        print(f"{impl} {name} {res[name]}", file=sys.stderr, flush=True)
    return {"impl": impl, "times": res}


def census() -> dict:
    """``{shape as "N,C,...": count}`` of the GroupNorm calls in one full-size DynamiCrafter-256 UNet call."""
    import dataclasses

    import mindspore as ms
    import numpy as np
    from dynamicrafter_ms.config import DynamiCrafterConfig
    from dynamicrafter_ms.unet import UNetModel

    from common.nn import GroupNorm

    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    cfg = DynamiCrafterConfig.from_yaml(ROOT / "dynamicrafter" / "configs" / "inference_256_v1.0.yaml").unet
    cfg = dataclasses.replace(cfg, model_channels=cfg.model_channels // WIDTH_DIV, num_head_channels=32)
    unet = UNetModel(cfg)
    unet.set_train(False)
    seen = Counter()
    original = GroupNorm.construct

    def record(self, x):
        shape = list(x.shape)
        shape[1] *= WIDTH_DIV
        seen[",".join(map(str, shape))] += 1
        return original(self, x)

    GroupNorm.construct = record
    rng = np.random.default_rng(0)
    b, t = 2, 16
    args = (rng.standard_normal((b, 8, t, 32, 32)).astype(np.float32), np.array([999, 500], np.int64),
            rng.standard_normal((b, 77 + 16 * t, cfg.context_dim)).astype(np.float32), np.full((b,), 3, np.int64))
    unet(*[ms.Tensor(a) for a in args])
    GroupNorm.construct = original
    return dict(seen)


def _table(results: dict, cases, passes, label=None) -> str:
    """Markdown tables (one per pass) of ``{impl: {case: {pass: s}}}``; ``label(case)``: the second column."""
    impls = [i for i in IMPLS if i in results]
    rows = []
    for p in passes:
        rows.append(f"\n{p}: median seconds (ratio to torch)")
        rows.append("| case | shape | " + " | ".join(impls) + " |")
        rows.append("|---|---|" + "---|" * len(impls))
        for name in cases:
            ref = results.get("torch", {}).get(name, {}).get(p)
            cells = []
            for i in impls:
                v = results[i].get(name, {}).get(p)
                cells.append("-" if v is None else f"{v:.4f}" + (f" ({v / ref:.2f})" if ref else ""))
            rows.append(f"| {name} | {label(name) if label else CASES[name]} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _spawn(impl: str, shapes: dict, passes, runs: int) -> dict:
    cmd = [sys.executable, __file__, "--child", impl, "--shapes_json", json.dumps(shapes), "--passes",
           ",".join(passes), "--runs", str(runs)]
    r = run_child(cmd, label=impl)
    return r.get("times", {})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    ap.add_argument("--impls", default=",".join(IMPLS), help=f"comma-separated, of {', '.join(IMPLS)}")
    ap.add_argument("--passes", default=",".join(PASSES), help="fwd, fwdbwd or both")
    ap.add_argument("--runs", type=int, default=3, help="timed calls per figure (after one untimed call)")
    ap.add_argument("--unet", action="store_true", help="GroupNorm's time in one DynamiCrafter-256 UNet call")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--shapes_json", help=argparse.SUPPRESS)
    ap.add_argument("--census_child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    passes = [p for p in a.passes.split(",") if p]
    if a.census_child:
        print(json.dumps({"census": census()}))
        return 0
    if a.child:
        shapes = {k: tuple(v) for k, v in json.loads(a.shapes_json).items()}
        print(json.dumps(child(a.child, shapes, passes, a.runs)))
        return 0
    impls = [i for i in a.impls.split(",") if i]
    bad = [i for i in impls if i not in IMPLS] + [p for p in passes if p not in PASSES]
    if bad:
        print(f"error: unknown {', '.join(bad)} (--impls / --passes)", file=sys.stderr)
        return 2
    info = machine_info()
    print(machine_line(info))
    out = {"machine": info, "runs": a.runs}
    if a.unet:
        r = run_child([sys.executable, __file__, "--census_child"], label="census")
        if "error" in r:
            return 1
        counts = r["census"]
        shapes = {k: tuple(int(v) for v in k.split(",")) for k in counts}
        results = {i: _spawn(i, shapes, passes, a.runs) for i in impls}
        print(f"GroupNorm calls in one DynamiCrafter-256 UNet call (CFG batch 2 x 16 frames): {sum(counts.values())}")
        table = _table(results, list(shapes), passes, label=lambda k: counts[k])
        print(table.replace("| case | shape |", "| shape | calls |"))
        for p in passes:
            for i in impls:
                if all(p in results[i].get(k, {}) for k in shapes):
                    total = sum(n * results[i][k][p] for k, n in counts.items())
                    print(f"{p} {i}: {total:.2f} s of GroupNorm per UNet call")
        out["unet"] = {"counts": counts, "times": results}
    else:
        cases = [c for c in a.cases.split(",") if c]
        if any(c not in CASES for c in cases):
            print(f"error: unknown case in {a.cases} (--cases)", file=sys.stderr)
            return 2
        shapes = {c: CASES[c] for c in cases}
        results = {i: _spawn(i, shapes, passes, a.runs) for i in impls}
        print(_table(results, cases, passes))
        out["ops"] = results
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
