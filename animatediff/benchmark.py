"""Benchmark one denoiser call of the full-size AnimateDiff UNet (SD-1.5 + v2 motion modules, random weights).

    python benchmark.py                      # 16 frames at 256x256 (32x32 latents), CFG batch 2
    python benchmark.py --sizes 256 512      # also 512x512 (64x64 latents; attention chunked)

Cases, each in its own subprocess (so the peak resident memory, ``ru_maxrss``, is the case's own):
``ours-pynative`` and ``ours-graph`` (this port, MindSpore PyNative / ``ms.jit`` graph), and ``diffusers``
(PyTorch ``diffusers.UNetMotionModel`` with the same sizes: SD-1.5 UNet + a v2-like motion adapter with a
mid-block module; torch threads = the CPU count). Inputs: sample ``(2, 4, 16, s, s)``, timesteps
``[501, 501]``, text ``(2, 77, 768)`` (diffusers' model takes it repeated per frame, ``(32, 77, 768)``).
One warm-up call (for graph mode: the compilation), then ``--repeats`` timed calls (median reported).
Results go to stdout as a table and to ``--out`` (JSON; its other keys, e.g. ``e2e``, are kept). torch and diffusers
are only needed for the ``diffusers`` case (``pip install --no-deps diffusers==0.42.1`` plus ``huggingface_hub``).

``--e2e``: time per video instead (text encoder, one guided step, VAE decode, each at full size in its own process;
``fixed + --steps x step``, ours against diffusers; the ``e2e`` key of ``--out``): see ``benchmark_e2e.py``.

    python benchmark.py --e2e                 # 512x512 x 16 frames, 25 steps, step in graph mode
    python benchmark.py --e2e --tiny --size 64 --frames 2 --out /tmp/e2e.json   # smoke test (tiny sizes)
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from common.bench import machine_info, machine_line, peak_rss_gib, update_json

HERE = Path(__file__).resolve().parent
FRAMES = 16


def _inputs(size: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    s = size // 8
    return (rng.standard_normal((2, 4, FRAMES, s, s)).astype(np.float32), np.array([501, 501], np.int64),
            rng.standard_normal((2, 77, 768)).astype(np.float32))


def _fill_random(net, seed: int = 0) -> None:
    """Random weights without a second copy of the model: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for matrices and
    convolutions (PyTorch's default scale), ones / zeros for norm weights / biases."""
    import mindspore as ms

    rng = np.random.default_rng(seed)
    for name, p in net.parameters_and_names():
        shape = tuple(p.shape)
        if len(shape) >= 2:
            bound = 1.0 / np.sqrt(np.prod(shape[1:]))
            v = (rng.random(shape, dtype=np.float32) * 2 - 1) * np.float32(bound)
        elif name.endswith("weight"):
            v = np.ones(shape, np.float32)
        else:
            v = np.zeros(shape, np.float32)
        p.set_data(ms.Tensor(v))


def case_ours(mode: str, size: int, repeats: int, chunk: int | None, split: int = 1) -> dict:
    import mindspore as ms
    import yaml
    from animatediff_ms.config import UNet3DConfig
    from animatediff_ms.models import UNet3DConditionModel
    from animatediff_ms.sd15 import SD15_UNET
    from mindspore.nn.utils import no_init_parameters

    from common.nn import set_attention

    kwargs = yaml.safe_load((HERE / "configs" / "inference" / "inference-v2.yaml").read_text())["unet_additional_kwargs"]
    t0 = time.time()
    with no_init_parameters():  # as when loading a checkpoint: no second copy of the weights
        net = UNet3DConditionModel(UNet3DConfig.from_files(SD15_UNET, kwargs))
    _fill_random(net)
    if chunk:
        set_attention(net, "math", chunk)
    build = time.time() - t0
    params = sum(int(np.prod(p.shape)) for _, p in net.parameters_and_names())
    rss_build = peak_rss_gib() * 1024
    x, t, c = (ms.Tensor(a) for a in _inputs(size))
    fn = ms.jit(net.construct) if mode == "graph" else net
    if split > 1:  # the CFG batch as `split` sequential calls of one compiled graph (same work, less memory)
        whole, n = fn, x.shape[0] // split

        def fn(x, t, c):
            return ms.ops.concat([whole(x[i * n:(i + 1) * n], t[i * n:(i + 1) * n], c[i * n:(i + 1) * n])
                                  for i in range(split)], axis=0)
    t0 = time.time()
    out = fn(x, t, c).asnumpy()
    warm = time.time() - t0
    times = []
    for _ in range(repeats):
        t0 = time.time()
        out = fn(x, t, c).asnumpy()
        times.append(time.time() - t0)
    return dict(params=params, build_s=build, rss_after_build_mib=rss_build, warmup_s=warm, times_s=times,
                out_shape=list(out.shape), out_finite=bool(np.isfinite(out).all()), split=split)


def case_diffusers(size: int, repeats: int) -> dict:
    import torch
    from diffusers import UNetMotionModel

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    t0 = time.time()
    net = UNetMotionModel(cross_attention_dim=768, num_attention_heads=8, motion_max_seq_length=32,
                          motion_num_attention_heads=8, use_motion_mid_block=True).eval()
    build = time.time() - t0
    params = sum(p.numel() for p in net.parameters())
    rss_build = peak_rss_gib() * 1024
    x, t, c = (torch.from_numpy(a) for a in _inputs(size))
    c = c.repeat_interleave(FRAMES, dim=0)
    with torch.no_grad():
        t0 = time.time()
        out = net(x, t, c).sample
        warm = time.time() - t0
        times = []
        for _ in range(repeats):
            t0 = time.time()
            out = net(x, t, c).sample
            times.append(time.time() - t0)
    return dict(params=params, build_s=build, rss_after_build_mib=rss_build, warmup_s=warm, times_s=times,
                out_shape=list(out.shape), out_finite=bool(torch.isfinite(out).all()), torch=torch.__version__,
                threads=torch.get_num_threads())


def run_case(name: str, size: int, repeats: int, chunk: int | None, timeout: int, split: int = 1) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_case", name, "--sizes", str(size),
           "--repeats", str(repeats), "--split", str(split)] + (["--attention_chunk_size", str(chunk)] if chunk else [])
    t0 = time.time()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=HERE)
    except subprocess.TimeoutExpired:
        return dict(case=name, size=size, error=f"timed out after {timeout} s")
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode or not lines:
        tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
        return dict(case=name, size=size, error=f"exit {p.returncode}: {' | '.join(tail)}")
    r = json.loads(lines[-1])
    r.update(case=name, size=size, wall_incl_build_s=time.time() - t0)
    return r


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256], help="frame sizes in pixels (256; 512)")
    ap.add_argument("--repeats", type=int, default=1,
                    help="timed calls after the warm-up (1; 0 = report the first call alone)")
    ap.add_argument("--cases", nargs="+", default=["ours-pynative", "ours-graph", "diffusers"])
    ap.add_argument("--attention_chunk_size", type=int, default=None,
                    help="query chunk of our attention (default: none at 256, 1024 at 512)")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per case")
    ap.add_argument("--split", type=int, default=1,
                    help="ours-graph only: run the CFG batch of 2 as this many sequential calls of one graph "
                         "(2 = batch 1: half the activation memory, for machines where the whole batch's graph "
                         "does not fit; same total work)")
    ap.add_argument("--out", default=None, help="results JSON (default benchmark_results.json; --e2e --tiny: none)")
    ap.add_argument("--e2e", action="store_true", help="time per video (text encoder, guided step x --steps, VAE "
                    "decode); see benchmark_e2e.py")
    ap.add_argument("--size", type=int, default=512, help="--e2e: frame size in pixels (default 512)")
    ap.add_argument("--frames", type=int, default=FRAMES, help=f"--e2e: frames (default {FRAMES})")
    ap.add_argument("--steps", type=int, default=25, help="--e2e: denoising steps (default 25, the prompt configs')")
    ap.add_argument("--mode", choices=["pynative", "graph"], default="graph", help="--e2e: our step's mode (graph)")
    ap.add_argument("--decode_chunk", type=int, default=16,
                    help="--e2e: diffusers' frames per VAE decoder call (decode_chunk_size, default 16)")
    ap.add_argument("--tiny", action="store_true", help="--e2e on tiny random sizes, parts in one process, ours only")
    ap.add_argument("--tiny_ref", action="store_true", help="--e2e --tiny: diffusers' parts too")
    ap.add_argument("--e2e_worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--e2e_parts", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_case", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.e2e:
        import importlib.util  # the sibling script, found by its path

        spec = importlib.util.spec_from_file_location("ad_benchmark_e2e", Path(__file__).with_name("benchmark_e2e.py"))
        be = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(be)
        if min(args.steps, args.frames, args.decode_chunk) < 1 or args.size % 64 or args.size < 64 or args.repeats < 0:
            ap.error("--e2e: --steps, --frames, --decode_chunk must be >= 1, --size a multiple of 64, --repeats >= 0")
        args.runs = args.repeats
        if args.e2e_worker:
            print(json.dumps(be.worker(args, _fill_random)))
            return 0
        return be.run(Path(__file__).resolve(), args)
    args.out = args.out or str(HERE / "benchmark_results.json")
    if args._case:  # child process: one case, one JSON line
        size = args.sizes[0]
        r = case_diffusers(size, args.repeats) if args._case == "diffusers" else \
            case_ours(args._case.split("-")[1], size, args.repeats, args.attention_chunk_size, args.split)
        r["peak_rss_mib"] = peak_rss_gib() * 1024
        print(json.dumps(r))
        return 0
    results = []
    for size in args.sizes:
        chunk = args.attention_chunk_size or (1024 if size >= 512 else None)
        for name in args.cases:
            print(f"[benchmark] {name} at {size}x{size} ...", flush=True)
            r = run_case(name, size, args.repeats, chunk if name.startswith("ours") else None, args.timeout,
                         args.split if name == "ours-graph" else 1)
            if "times_s" in r:  # --repeats 0: only the first call (graph mode: including the compilation)
                r["median_s"] = statistics.median(r["times_s"]) if r["times_s"] else r["warmup_s"]
                r["first_call_only"] = not r["times_s"]
            results.append(r)
            print(json.dumps(r), flush=True)
    meta = dict(machine_info(), cpu_count=os.cpu_count(), frames=FRAMES, cfg_batch=2)
    update_json(args.out, "meta", meta)
    update_json(args.out, "results", results)  # other keys (e.g. e2e) stay
    print(f"\n{machine_line(meta)}")
    print("\n| size | case | warm-up / compile (s) | call (s) | peak RSS (MiB) | ours / diffusers |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes:
        ref = next((r for r in results if r["size"] == size and r["case"] == "diffusers" and r.get("median_s")), None)
        for r in (r for r in results if r["size"] == size):
            if "error" in r:
                print(f"| {size} | {r['case']} | - | {r['error']} | - | - |")
                continue
            ratio = f"{r['median_s'] / ref['median_s']:.2f}" if ref and r["case"] != "diffusers" else "-"
            call = f"{r['median_s']:.1f}" + (" (first call)" if r.get("first_call_only") else "")
            call += f" ({r['split']} calls of batch {2 // r['split']})" if r.get("split", 1) > 1 else ""
            print(f"| {size} | {r['case']} | {r['warmup_s']:.1f} | {call} | {r['peak_rss_mib']:.0f} | {ratio} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
