"""Time one denoiser call of the FULL-size 256 UNet (random float32 weights, CPU) at the CFG batch.

    python benchmark.py                     # PyNative and graph mode, 2 timed calls each
    REF_SRC=/path/to/DynamiCrafter python benchmark.py   # + the original PyTorch UNet, same config

Input ``x`` (2, 8, 16, 32, 32) = cond + uncond of one DDIM step at 256x256, 16 frames; context
(2, 77 + 16*16, 1024); timesteps (999, 500); fs 3. Each measurement runs in its own process so
the peak memory (max RSS) is per mode. Printed per mode: median seconds per call, peak RSS, the
GFLOP/s of the counted matmul/conv/attention work, that as a fraction of this machine's float32
matmul rate (a 4096^2 MindSpore matmul measured in the same run), and with ``REF_SRC`` the
original's time and our/its ratio. ``--json out.json`` writes the figures.

``--e2e``: time per video instead (text / image encoders, VAE encode and decode, one guided DDIM step, each at full
size in its own process; ``fixed + --steps x step``, ours against the original with ``REF_SRC``; written under the
``e2e`` key of benchmark_results.json): see ``benchmark_e2e.py``. ``--e2e --tiny`` runs it on the tiny demo config.

``--train``: one fine-tuning step instead (1 video x 16 frames; PyNative and graph, each with and without
gradient checkpointing; time and peak memory; the original's step with ``REF_SRC``): see ``benchmark_train.py``.

The original needs ``einops`` (``pip install --no-deps einops``); its ``utils/utils.py`` imports
``cv2`` for functions the UNet never calls, so the reference worker gets an empty ``cv2`` stub
(a temp folder on its PYTHONPATH, with REF_SRC).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from common.bench import (
    machine_info,
    machine_line,
    peak_rss_gib,
    reference_env,
    run_child,
    time_calls,
    update_json,
)

os.environ.setdefault("GLOG_v", "3")
HERE = Path(__file__).resolve().parent
CONFIG = HERE / "configs" / "inference_256_v1.0.yaml"
SHAPE = (2, 8, 16, 32, 32)
TIMESTEPS = (999, 500)
FS = 3
CHUNK = 256
SPLIT = 1


def _inputs(context_dim: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    b, _, t, _, _ = SHAPE
    return (rng.standard_normal(SHAPE).astype(np.float32), np.array(TIMESTEPS[:b], np.int64),
            rng.standard_normal((b, 77 + 16 * t, context_dim)).astype(np.float32), np.full((b,), FS, np.int64))


def _count_flops(unet, args) -> int:
    """Matmul/conv/attention FLOPs of one call, from forward hooks on every compute cell (PyNative)."""
    import math

    from dynamicrafter_ms.attention import Conv1x1
    from dynamicrafter_ms.resampler import PerceiverAttention
    from dynamicrafter_ms.unet import InputConv
    from mindspore import nn

    from common.nn import Attention, TemporalConv

    total = [0]

    def dense(cell, inp, out):
        total[0] += 2 * math.prod(out.shape) * cell.weight.shape[1]

    def conv(cell, inp, out):  # 2 * out elements * (cin * kernel area)
        w = cell.weight.shape
        total[0] += 2 * math.prod(out.shape) * math.prod(w[1:])

    def attn(cell, inp, out):  # q k^T and p v: 2 * 2 * B * Lq * Lk * inner (text + image branches)
        x = inp[0]
        ctx = inp[1] if len(inp) > 1 and inp[1] is not None else x
        inner = cell.heads * cell.dim_head
        lk = ctx.shape[1]
        total[0] += 4 * x.shape[0] * x.shape[1] * lk * inner

    handles = []
    for _, cell in unet.cells_and_names():
        if isinstance(cell, nn.Dense):
            handles.append(cell.register_forward_hook(dense))
        elif isinstance(cell, (nn.Conv2d, TemporalConv, InputConv, Conv1x1)):
            handles.append(cell.register_forward_hook(conv if not isinstance(cell, Conv1x1) else dense))
        elif isinstance(cell, (Attention, PerceiverAttention)):
            handles.append(cell.register_forward_hook(attn))
    unet(*args).asnumpy()
    for h in handles:
        h.remove()
    return total[0]


def _matmul_peak(n: int = 4096, reps: int = 4) -> float:
    """Best GFLOP/s of an n x n float32 MindSpore matmul."""
    import mindspore as ms
    import numpy as np
    from mindspore import ops

    a = ms.Tensor(np.random.default_rng(0).standard_normal((n, n)).astype(np.float32))
    ops.matmul(a, a).asnumpy()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        ops.matmul(a, a).asnumpy()
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def worker_ms(mode: str, runs: int, count: bool, chunk: int, split: int = 1) -> dict:
    """Our UNet in ``mode`` (attention queries in chunks of ``chunk``, 0 = none); returns the figures."""
    import mindspore as ms
    from dynamicrafter_ms.config import DynamiCrafterConfig
    from dynamicrafter_ms.unet import UNetModel

    from common.nn import set_attention

    ms.set_context(mode=ms.GRAPH_MODE if mode == "graph" else ms.PYNATIVE_MODE)
    ms.runtime.launch_blocking()
    t0 = time.perf_counter()
    cfg = DynamiCrafterConfig.from_yaml(CONFIG)
    unet = UNetModel(cfg.unet)
    set_attention(unet, "math", chunk_size=chunk or None)  # as inference.py on CPU
    unet.set_train(False)
    build = time.perf_counter() - t0
    args = [ms.Tensor(a) for a in _inputs(cfg.unet.context_dim)]
    out = {"mode": mode if split == 1 else f"{mode} {split}x b={SHAPE[0] // split}", "build_s": build,
           "params": sum(p.size for p in unet.get_parameters()), "attention_chunk": chunk, "split": split}
    full = unet
    if split > 1:  # the CFG batch as `split` sequential calls (same total work; one graph of a smaller batch)
        n = SHAPE[0] // split

        def unet(*a):  # noqa: F811
            outs = [full(*(t[i * n:(i + 1) * n] for t in a)) for i in range(split)]
            return ms.ops.concat(outs, axis=0)
    t0 = time.perf_counter()
    if count and mode == "pynative":  # forward hooks count in PyNative only
        out["flops_per_call"] = _count_flops(full, args)
    else:
        unet(*args).asnumpy()
    out["first_call_s"] = time.perf_counter() - t0  # graph: includes compilation
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        unet(*args).asnumpy()
        times.append(time.perf_counter() - t0)
    out.update(runs_s=times, median_s=statistics.median(times), peak_rss_gb=peak_rss_gib())
    return out


def worker_ref(runs: int) -> dict:
    """The original PyTorch UNet (REF_SRC) at the same config and inputs."""
    import torch
    import yaml

    src = os.environ["REF_SRC"]
    try:  # REF_SRC and a cv2 stub are on PYTHONPATH (set by _spawn)
        from lvdm.modules.networks.openaimodel3d import UNetModel as RefUNet
    except ImportError as e:
        raise SystemExit(f"error: cannot import the original UNet from REF_SRC={src}: {e} "
                         f"(it needs einops: pip install --no-deps einops)") from None
    params = yaml.safe_load(CONFIG.read_text())["model"]["params"]["unet_config"]["params"]
    params["use_checkpoint"] = False
    t0 = time.perf_counter()
    unet = RefUNet(**params).eval()
    with torch.no_grad():
        for p in unet.parameters():
            p.normal_(0, 0.02)
    build = time.perf_counter() - t0
    x, t, ctx, fs = (torch.from_numpy(a) for a in _inputs(params["context_dim"]))
    with torch.no_grad():
        timed = time_calls(lambda: unet(x, t, context=ctx, fs=fs), runs)
    timed.pop("result")
    a = torch.randn(4096, 4096)
    a @ a
    mm = []
    for _ in range(3):
        t0 = time.perf_counter()
        a @ a
        mm.append(time.perf_counter() - t0)
    return {"mode": "torch", "torch": torch.__version__, "threads": torch.get_num_threads(), "build_s": build,
            **timed, "peak_rss_gb": peak_rss_gib(),
            "torch_matmul_gflops": 2 * 4096 ** 3 / min(mm) / 1e9, "params": sum(p.numel() for p in unet.parameters())}


def _spawn(kind: str, runs: int, extra=()) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--runs", str(runs),
           "--config", str(CONFIG), "--shape", ",".join(map(str, SHAPE)), "--attention_chunk", str(CHUNK),
           "--split", str(SPLIT if kind == "graph" else 1), *extra]
    return {"mode": kind, **run_child(cmd, env=reference_env(REF_STUBS, prefix="dc_ref_") if kind == "torch" else None, label=kind)}


#: the original's utils/utils.py imports cv2 for functions the UNet never calls: an empty one stands in
REF_STUBS = {"cv2.py": "# stand-in: imported by the original utils/utils.py, unused here\n"}


def main(argv=None) -> int:
    global CONFIG, SHAPE, CHUNK, SPLIT
    p = argparse.ArgumentParser(description="DynamiCrafter 256 UNet CPU benchmark (see module docstring).")
    p.add_argument("--runs", type=int, default=2, help="timed calls per mode after one warm-up (default 2)")
    p.add_argument("--modes", default="pynative,graph", help="comma list of pynative, graph (default both)")
    p.add_argument("--json", default=None, help="also write the figures to this file")
    p.add_argument("--config", default=str(CONFIG), help="UNet config (default the 256 release; a tiny one for a smoke test)")
    p.add_argument("--shape", default=",".join(map(str, SHAPE)), help="x shape B,C,T,h,w (default 2,8,16,32,32)")
    p.add_argument("--attention_chunk", type=int, default=256,
                   help="our attention's query chunk (default 256: bounds graph-mode memory; 0 = none)")
    p.add_argument("--split", type=int, default=1, help="run the CFG batch as this many sequential calls "
                   "(graph mode on a machine too small for the whole batch's graph; default 1)")
    p.add_argument("--train", action="store_true",
                   help="time a fine-tuning step (UNet + Resampler forward, backward, AdamW) instead; see benchmark_train.py")
    p.add_argument("--variants", default="pynative,pynative+ckpt,graph,graph+ckpt",
                   help="--train: comma list of pynative, graph, each optionally +ckpt (gradient checkpointing)")
    p.add_argument("--train_frames", type=int, default=16, help="--train: frames of the video (default 16)")
    p.add_argument("--e2e", action="store_true", help="time per video (encoders, VAE, one guided step x --steps); "
                   "see benchmark_e2e.py")
    p.add_argument("--steps", type=int, default=50, help="--e2e: DDIM steps of a video (default 50, run_infer.sh's)")
    p.add_argument("--mode", choices=["pynative", "graph"], default="graph",
                   help="--e2e: our denoiser step in graph (ms.jit, default) or PyNative mode")
    p.add_argument("--frames", type=int, default=None, help="--e2e: frames (default the config's temporal_length)")
    p.add_argument("--tiny", action="store_true", help="--e2e on the tiny demo config, ours only, parts in one process")
    p.add_argument("--timeout", type=float, default=None, help="--e2e: seconds per child process (default none)")
    p.add_argument("--e2e_worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--e2e_parts", default=None, help=argparse.SUPPRESS)
    p.add_argument("--variant", default=None, help=argparse.SUPPRESS)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--count", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--flops", type=float, default=0, help="FLOPs per call for the GFLOP/s column when no "
                   "PyNative mode runs (they are counted with PyNative forward hooks; 9.807e12 at the default)")
    args = p.parse_args(argv)
    CONFIG, SHAPE, CHUNK = Path(args.config), tuple(int(v) for v in args.shape.split(",")), args.attention_chunk
    SPLIT = args.split
    if args.e2e:
        import importlib.util  # the sibling script, found by its path (as --train's)

        spec = importlib.util.spec_from_file_location("dc_benchmark_e2e", Path(__file__).with_name("benchmark_e2e.py"))
        be = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(be)
        if args.steps < 1 or args.runs < 0 or args.split not in (1, 2) or (args.frames is not None and args.frames < 1):
            p.error("--e2e: --steps and --frames must be >= 1, --runs >= 0, --split 1 or 2")
        if args.e2e_worker:
            print(json.dumps(be.worker(args)))
            return 0
        return be.run(Path(__file__).resolve(), args, HERE / "configs" / "inference_256_v1.0.yaml")
    if args.train:
        import importlib.util  # the sibling script, found by its path (this file may be loaded from anywhere)

        spec = importlib.util.spec_from_file_location("dc_benchmark_train", Path(__file__).with_name("benchmark_train.py"))
        bt = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bt)

        if args.worker == "train_ms":
            print(json.dumps(bt.worker_ms(CONFIG, args.variant, args.train_frames, args.runs)))
            return 0
        if args.worker == "train_ref":
            print(json.dumps(bt.worker_ref(CONFIG, args.variant, args.train_frames, args.runs)))
            return 0
        variants = [v.strip() for v in args.variants.split(",") if v.strip()]
        bad = [v for v in variants if v not in bt.VARIANTS]
        if bad or args.train_frames < 1 or args.runs < 1:
            p.error(f"--variants {bad} not in {list(bt.VARIANTS)}" if bad else "--train_frames and --runs must be >= 1")
        bt.run_all(Path(__file__).resolve(), CONFIG, variants, args.train_frames, args.runs, args.json)
        return 0
    if args.worker == "peak":
        print(json.dumps({"matmul_gflops": _matmul_peak()}))
        return 0
    if args.worker == "torch":
        print(json.dumps(worker_ref(args.runs)))
        return 0
    if args.worker:
        print(json.dumps(worker_ms(args.worker, args.runs, args.count, args.attention_chunk, args.split)))
        return 0

    machine = machine_info()
    peak = _spawn("peak", 1)["matmul_gflops"]
    results = []
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for i, mode in enumerate(modes):
        results.append(_spawn(mode, args.runs, ["--count"] if i == 0 else []))  # PyNative counts
        print(f"done: {mode} {results[-1].get('median_s', results[-1].get('error'))}", file=sys.stderr)
    flops = next((r["flops_per_call"] for r in results if "flops_per_call" in r), 0)
    if not flops and args.flops:
        flops = args.flops
    ref = _spawn("torch", args.runs) if os.environ.get("REF_SRC") else None
    if ref and "error" in ref:
        ref = None
    print(f"DynamiCrafter UNet of {CONFIG.name}, x {SHAPE}, float32, {machine_line(machine)}, "
          f"{max(r.get('params', 0) for r in results) / 1e9:.3f} B params, {flops / 1e12:.2f} TFLOP per call "
          f"(matmul/conv/attention), MindSpore matmul peak {peak:.0f} GFLOP/s")
    print(f"{'mode':10s} {'median s/call':>14s} {'first call s':>12s} {'peak RSS GB':>12s} {'GFLOP/s':>8s} "
          f"{'% of peak':>9s} {'ours/torch':>10s}")
    for r in results + ([ref] if ref else []):
        if "error" in r:
            print(f"{r['mode']:10s} {'did not run: ' + r['error']}")
            continue
        gf = flops / r["median_s"] / 1e9 or float("nan")
        ratio = f"{r['median_s'] / ref['median_s']:.2f}" if ref else "-"
        print(f"{r['mode']:10s} {r['median_s']:14.1f} {r['first_call_s']:12.1f} {r['peak_rss_gb']:12.2f} {gf:8.1f} "
              f"{100 * gf / peak:8.0f}% {ratio:>10s}")
    if ref:
        print(f"(torch {ref['torch']}, {ref['threads']} threads, its 4096^2 matmul: "
              f"{ref['torch_matmul_gflops']:.0f} GFLOP/s)")
    if args.json:
        for key, value in {"machine": machine, "matmul_gflops": peak, "flops_per_call": flops, "results": results,
                           "reference": ref}.items():
            update_json(args.json, key, value)  # other keys (e.g. e2e) stay
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
