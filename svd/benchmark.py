"""Speed and memory of the full-size SVD UNet: this port (PyNative and graph) vs diffusers' PyTorch
``UNetSpatioTemporalConditionModel`` at the same config, random weights, float32.

    python benchmark.py                       # 320x512 (latents 40x64), 14 frames, CFG batch 2x14
    python benchmark.py --sizes 320x512 576x1024 --repeats 2 --out bench.json

Measured, each in its own process (peak RSS = that process: weights + activations + runtime):

* ``ours_pynative`` / ``ours_graph``: one denoiser call (VScalingWithEDMcNoise + VideoUNet) at the
  CFG batch (2 videos x ``--frames``); graph = ``ms.jit`` (the first call, with the compile, is
  reported apart).
* ``diffusers``: one ``UNetSpatioTemporalConditionModel()`` call (its default config is the SVD UNet)
  on the same shapes, under ``torch.no_grad``.
* ``train_ours`` / ``train_ours_graph`` / ``train_diffusers``: one temporal-only fine-tuning step (forward,
  backward over the temporal parameters, AdamW update unless ``--no_optimizer``) on one video of
  ``--train_frames`` frames; ``train_ours_graph`` compiles forward + backward with ``ms.jit`` as
  ``train.py`` does with ``environment.mode: 0``. ``--recompute``: gradient checkpointing on both sides.

``--e2e``: time per video instead (CLIP image encoder, VAE encode, one guided step, temporal VAE decode, each at full
size in its own process; ``fixed + --steps x step``, ours against diffusers; the ``e2e`` key of ``--out``, default
benchmark_results.json): see ``benchmark_e2e.py``.

    python benchmark.py --e2e                                 # 576x1024 x 14 frames, 25 steps, step in graph mode
    python benchmark.py --e2e --tiny --size 64x64 --frames 2  # smoke test (configs/svd_tiny.yaml, ours only)

torch and diffusers are imported only here, as references (``pip install --no-deps diffusers``).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common.bench import machine_info, machine_line, mem_available_gib, peak_rss_gib, update_json

HERE = Path(__file__).resolve().parent
KINDS = ("ours_pynative", "ours_graph", "diffusers", "train_ours", "train_ours_graph", "train_diffusers")


def _ours_inputs(b, t, h, w, rng, ms):
    import numpy as np

    n = b * t
    return (ms.Tensor(rng.standard_normal((n, 4, h, w), dtype=np.float32)),
            ms.Tensor(np.full((n,), 1.0, np.float32)),  # sigma = 1: c_noise = 0
            ms.Tensor(rng.standard_normal((n, 1, 1024), dtype=np.float32)),
            ms.Tensor(rng.standard_normal((n, 768), dtype=np.float32)),
            ms.Tensor(rng.standard_normal((n, 4, h, w), dtype=np.float32)),
            ms.Tensor(np.zeros((b, t), np.float32)))


def child_ours(kind: str, h: int, w: int, frames: int, train_frames: int, repeats: int, chunk,
               optimizer: bool = True, split: int = 1, recompute: bool = False, ff_chunk=None) -> dict:
    import mindspore as ms
    import numpy as np

    from common.nn import set_attention, set_feed_forward_chunk_size
    from common.train import AdamW
    from svd_ms.config import load_svd_config
    from svd_ms.denoiser import Denoiser
    from svd_ms.loss import SVDDiffusionLoss, SVDMeanLoss
    from svd_ms.video_unet import VideoUNet, temporal_parameter_names

    ms.set_context(mode=ms.PYNATIVE_MODE)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    unet = VideoUNet(load_svd_config(HERE / "configs" / "svd.yaml").unet)
    den = Denoiser(unet)
    out = {"build_s": time.perf_counter() - t0, "rss_after_build_gib": peak_rss_gib(),
           "params": int(sum(int(np.prod(p.shape)) for p in unet.get_parameters()))}
    if chunk:
        set_attention(unet, "math", chunk)
        out["attn_chunk_size"] = chunk
    if ff_chunk:
        set_feed_forward_chunk_size(unet, ff_chunk)
        out["ff_chunk_size"] = ff_chunk
    if kind in ("ours_pynative", "ours_graph"):
        args = _ours_inputs(2, frames, h, w, rng, ms)
        fn = ms.jit(den.construct) if kind == "ours_graph" else den
        if split > 1:  # the CFG batch as `split` sequential calls (same work, 1/split of the activations)
            whole = fn

            def fn(*a):
                parts = [whole(*(x[i * x.shape[0] // split:(i + 1) * x.shape[0] // split] for x in a))
                         for i in range(split)]
                return ms.ops.concat(parts, axis=0)
            out["split"] = split
        t = time.perf_counter()
        y = fn(*args).asnumpy()
        out["first_call_s"] = time.perf_counter() - t
        runs = []
        for _ in range(repeats):
            t = time.perf_counter()
            y = fn(*args).asnumpy()
            runs.append(time.perf_counter() - t)
        out.update(runs_s=runs, output_shape=list(y.shape))
    else:
        unet.set_recompute(recompute)
        out["recompute"] = recompute
        x, s, ca, v, cc, _ = _ours_inputs(1, train_frames, h, w, rng, ms)
        names = set(temporal_parameter_names(unet))
        for p in unet.get_parameters():  # frozen as train.py freezes them
            p.requires_grad = p.name in names
        params = [p for p in unet.get_parameters() if p.name in names]
        out["trainable_params"] = int(sum(int(np.prod(p.shape)) for p in params))
        loss = SVDMeanLoss(SVDDiffusionLoss(den, sigma_data=1.0))
        grad = ms.value_and_grad(loss, None, params)
        if kind == "train_ours_graph":
            grad = ms.jit(grad)
        opt = AdamW(params, 1e-5) if optimizer else None
        noise = ms.Tensor(rng.standard_normal(x.shape, dtype=np.float32))
        ind = ms.Tensor(np.zeros((1, train_frames), np.float32))
        runs = []
        for i in range(repeats + 1):
            t = time.perf_counter()
            lv, g = grad(x, ca, v, cc, s, noise, ind)
            if opt is not None:
                opt.step(g, 1e-5)
            float(lv.asnumpy())
            (runs.append if i else lambda d: out.__setitem__("first_call_s", d))(time.perf_counter() - t)
        out["runs_s"] = runs
    out["peak_rss_gib"] = peak_rss_gib()
    return out


def child_diffusers(kind: str, h: int, w: int, frames: int, train_frames: int, repeats: int, threads: int,
                    optimizer: bool = True, recompute: bool = False) -> dict:
    import torch
    from diffusers import UNetSpatioTemporalConditionModel

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    unet = UNetSpatioTemporalConditionModel()  # default config = the SVD UNet
    out = {"build_s": time.perf_counter() - t0, "rss_after_build_gib": peak_rss_gib(),
           "params": int(sum(p.numel() for p in unet.parameters())), "torch": torch.__version__}
    b, t = (2, frames) if kind == "diffusers" else (1, train_frames)
    sample = torch.randn(b, t, 8, h, w)
    ts = torch.tensor(0.0)
    ehs = torch.randn(b, 1, 1024)
    ids = torch.tensor([[6.0, 127.0, 0.02]] * b)
    runs = []
    if kind == "diffusers":
        unet.eval()
        with torch.no_grad():
            for i in range(repeats + 1):
                s = time.perf_counter()
                y = unet(sample, ts, ehs, ids).sample
                (runs.append if i else lambda d: out.__setitem__("first_call_s", d))(time.perf_counter() - s)
        out["output_shape"] = list(y.shape)
    else:
        if recompute:
            unet.enable_gradient_checkpointing()
        out["recompute"] = recompute
        keys = ("temporal_transformer_blocks", "time_pos_embed", "temporal_res_block", "time_mixer")
        params = []
        for n, p in unet.named_parameters():
            p.requires_grad_(any(k in n for k in keys))
            if p.requires_grad:
                params.append(p)
        out["trainable_params"] = int(sum(p.numel() for p in params))
        opt = torch.optim.AdamW(params, 1e-5) if optimizer else None
        target = torch.randn(b, t, 4, h, w)
        for i in range(repeats + 1):
            s = time.perf_counter()
            loss = ((unet(sample, ts, ehs, ids).sample - target) ** 2).mean()
            loss.backward()
            if opt is not None:
                opt.step()
            unet.zero_grad(set_to_none=True)
            (runs.append if i else lambda d: out.__setitem__("first_call_s", d))(time.perf_counter() - s)
    out["runs_s"] = runs
    out["peak_rss_gib"] = peak_rss_gib()
    return out


# ---------------------------------------------------------------------------------------------- driver
def _run_child(kind, size, a) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--sizes", size, "--frames", str(a.frames),
           "--train_frames", str(a.train_frames), "--repeats", str(a.repeats), "--threads", str(a.threads)]
    if a.attn_chunk_size:
        cmd += ["--attn_chunk_size", str(a.attn_chunk_size)]
    if a.ff_chunk_size:
        cmd += ["--ff_chunk_size", str(a.ff_chunk_size)]
    if a.no_optimizer:
        cmd += ["--no_optimizer"]
    if a.split > 1:
        cmd += ["--split", str(a.split)]
    if a.recompute:
        cmd += ["--recompute"]
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    res = {"kind": kind, "size": size, "wall_s": time.perf_counter() - t}
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode != 0 or not lines:
        res["error"] = f"exit {r.returncode}: " + (r.stderr.strip().splitlines() or ["?"])[-1][:300]
    else:
        res.update(json.loads(lines[-1]))
        runs = res["runs_s"] or [res["first_call_s"]]  # --repeats 0: the first call is the figure
        res["median_s"] = sorted(runs)[len(runs) // 2]
    return res


def _table(results) -> str:
    rows = ["| size | what | ours / ref | s (median) | first call s | peak RSS GiB | ratio ours/ref |",
            "|---|---|---|---|---|---|---|"]
    by = {(r["size"], r["kind"]): r for r in results}
    for r in results:
        if "error" in r:
            rows.append(f"| {r['size']} | {r['kind']} | | not run: {r['error']} | | | |")
            continue
        ref = by.get((r["size"], "train_diffusers" if r["kind"].startswith("train") else "diffusers"))
        ratio = (f"{r['median_s'] / ref['median_s']:.2f}" if ref and "median_s" in ref and
                 not r["kind"].endswith("diffusers") else "")
        who = "diffusers (torch)" if "diffusers" in r["kind"] else "this port (MindSpore)"
        if r.get("split", 1) > 1:
            who += f", {r['split']} calls of {2 // r['split']} video"
        if r.get("recompute"):
            who += ", gradient checkpointing"
        for key, label in (("attn_chunk_size", "attention chunks"), ("ff_chunk_size", "feed-forward chunks")):
            if r.get(key):
                who += f", {label} of {r[key]}"
        rows.append(f"| {r['size']} | {r['kind']} | {who} | {r['median_s']:.1f} | {r['first_call_s']:.1f} | "
                    f"{r['peak_rss_gib']:.1f} | {ratio} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", default=["320x512"], help="pixel sizes HxW (latents are /8)")
    ap.add_argument("--frames", type=int, default=14, help="frames per video of the inference call (CFG batch = 2x)")
    ap.add_argument("--train_frames", type=int, default=4, help="frames of the training step")
    ap.add_argument("--repeats", type=int, default=1,
                    help="timed calls after the first one (0: report the first call, compile included)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads")
    ap.add_argument("--what", nargs="+", default=list(KINDS), choices=KINDS, help="measurements to run")
    ap.add_argument("--attn_chunk_size", type=int, default=None, help="attention query chunk of our port")
    ap.add_argument("--ff_chunk_size", type=int, default=None,
                    help="feed-forward token chunk of our port (common.nn.set_feed_forward_chunk_size)")
    ap.add_argument("--no_optimizer", action="store_true",
                    help="training step = forward + backward only (no AdamW states: ~5 GiB less at full size)")
    ap.add_argument("--recompute", action="store_true",
                    help="training step with gradient checkpointing: ours VideoUNet.set_recompute (every UNet "
                         "block recomputed in the backward pass), diffusers enable_gradient_checkpointing")
    ap.add_argument("--min_free_gib", type=float, default=16.0,
                    help="skip a size above 320x512 when less memory than this is available")
    ap.add_argument("--split", type=int, default=1,
                    help="ours_pynative / ours_graph: run the CFG batch of 2 videos as this many sequential calls "
                         "(of one graph in graph mode; 2 = one video per call: half the activation memory, the same work)")
    ap.add_argument("--out", default=None, help="write the results as JSON here (its other keys are kept)")
    ap.add_argument("--e2e", action="store_true", help="time per video (image encoder, VAE encode, guided step x "
                    "--steps, VAE decode); see benchmark_e2e.py")
    ap.add_argument("--size", default="576x1024", help="--e2e: HxW in pixels (default 576x1024)")
    ap.add_argument("--steps", type=int, default=25, help="--e2e: sampling steps (default 25, svd.yaml's)")
    ap.add_argument("--mode", choices=["pynative", "graph"], default="graph", help="--e2e: our step's mode (graph)")
    ap.add_argument("--decode_chunk", type=int, default=0, help="--e2e: frames per VAE decoder call (default 0 = all)")
    ap.add_argument("--config", default=None, help="--e2e: our model config (default configs/svd.yaml; --tiny: "
                    "configs/svd_tiny.yaml)")
    ap.add_argument("--tiny", action="store_true", help="--e2e on configs/svd_tiny.yaml, ours only, one process")
    ap.add_argument("--e2e_worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--e2e_parts", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.e2e:
        import importlib.util  # the sibling script, found by its path

        spec = importlib.util.spec_from_file_location("svd_benchmark_e2e", Path(__file__).with_name("benchmark_e2e.py"))
        be = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(be)
        hw = a.size.split("x")
        if len(hw) != 2 or not all(v.isdigit() and int(v) % 64 == 0 and int(v) > 0 for v in hw):
            ap.error(f"--size {a.size}: give HxW in pixels, both multiples of 64")
        if min(a.steps, a.frames) < 1 or a.decode_chunk < 0 or a.repeats < 0:
            ap.error("--e2e: --steps and --frames must be >= 1, --decode_chunk and --repeats >= 0")
        a.config = a.config or str(HERE / "configs" / ("svd_tiny.yaml" if a.tiny else "svd.yaml"))
        if a.e2e_worker:
            print(json.dumps(be.worker(a)), flush=True)
            os._exit(0)  # as --child: MindSpore 2.7.1 can deadlock in tensor destructors at exit
        return be.run(Path(__file__).resolve(), a)
    for size in a.sizes:
        hw = size.split("x")
        if len(hw) != 2 or not all(v.isdigit() and int(v) % 64 == 0 for v in hw):
            ap.error(f"--sizes {size}: give HxW in pixels, both multiples of 64 (the UNet halves the latents 3 times)")
    if a.child:
        h, w = (int(v) // 8 for v in a.sizes[0].split("x"))
        try:
            if a.child.startswith(("ours", "train_ours")):
                res = child_ours(a.child, h, w, a.frames, a.train_frames, a.repeats, a.attn_chunk_size,
                                 not a.no_optimizer, a.split, a.recompute, a.ff_chunk_size)
            else:
                res = child_diffusers(a.child, h, w, a.frames, a.train_frames, a.repeats, a.threads,
                                      not a.no_optimizer, a.recompute)
            print(json.dumps(res), flush=True)
            code = 0
        except Exception as e:  # noqa: BLE001 - reported by the driver as this measurement's error
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip().strip("-")]  # MindSpore: a ---- rule first
            print(f"{type(e).__name__}: {lines[0] if lines else ''}", file=sys.stderr, flush=True)
            code = 1
        # leave without interpreter teardown: MindSpore 2.7.1 can deadlock in tensor destructors at exit
        os._exit(code)
    results = []
    for size in a.sizes:
        for kind in a.what:
            if size != "320x512" and mem_available_gib() < a.min_free_gib:
                results.append({"kind": kind, "size": size, "error": f"memory: {mem_available_gib():.1f} GiB free"})
                continue
            print(f"running {kind} at {size} ...", file=sys.stderr, flush=True)
            results.append(_run_child(kind, size, a))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    machine = machine_info()
    print(machine_line(machine))
    print(_table(results))
    if a.out:
        for key, value in {"machine": machine, "args": vars(a), "results": results}.items():
            update_json(a.out, key, value)  # other keys (e.g. e2e) stay
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
