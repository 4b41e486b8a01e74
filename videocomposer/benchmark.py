"""Time one classifier-free-guided denoiser call of the FULL-size UNetSD_temporal (random float32 weights).

    python benchmark.py                                  # exp02, 16 frames at 256x256, PyNative and graph
    REF_SRC=/path/to/videocomposer python benchmark.py   # + the original PyTorch UNet, same config and inputs
    python benchmark.py --tiny --runs 1                  # smoke test on a tiny model (seconds)

One call = what one DDIM step of ``run_net.py`` runs for ``configs/exp02_motion_transfer.yaml``: the UNet
on the conditional branch (caption context ``y``, the first frame ``local_image``, the ``motion`` vectors)
and on the unconditional one (``zero_y``, the same spatial conditions), then ``u + 9 (c - u)``; latents
(1, 4, 16, 32, 32). PyNative runs op by op; graph compiles the whole guided call once with ``ms.jit`` (the
first call, with the compile, is reported apart). The original (``REF_SRC``, a checkout of
ali-vilab/videocomposer, not part of this repository) runs its ``ddim_sample`` step the same way: two
``UNetSD_temporal`` calls under ``torch.no_grad``, float32, on CUDA when there is one (``--ref_device``).

Each measurement runs in its own process, so the peak memory is per mode: peak RSS (host) and, on a GPU /
Ascend device, the peak device memory allocated. Printed per mode: median seconds per call over
``--runs`` timed calls, first call, peaks, and with ``REF_SRC`` the original's time and our/its ratio;
``--json out.json`` writes everything.

The reference worker needs ``torch`` and ``einops`` (``pip install einops``); the original's modules
import ``xformers``, ``flash_attn``, ``rotary_embedding_torch`` and ``fairscale`` for things this call
does not use or that have a plain equivalent, so the worker puts small stand-ins for them on its path
(``xformers.ops.memory_efficient_attention`` = ``torch.nn.functional.scaled_dot_product_attention``, the
same softmax(qk^T / sqrt(d)) v).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from common.bench import machine_info, machine_line, peak_rss_gib, reference_env, run_child, time_calls

os.environ.setdefault("GLOG_v", "3")
HERE = Path(__file__).resolve().parent
FULL_CONFIG = HERE / "configs" / "exp02_motion_transfer.yaml"
TINY_CONFIG = HERE / "configs" / "demo_tiny.yaml"
#: the tiny smoke test: demo_tiny's UNet with 1024-wide contexts (the original hard-codes 1024 in places)
TINY_OVERRIDES = {"unet_context_dim": 1024, "hardcoded_context_dim": 1024, "guidances": ["y", "local_image", "motion"]}
GUIDE_SCALE = 9.0
TIMESTEP = 500


def _config(tiny: bool):
    from videocomposer_ms.config import load_config

    return load_config(TINY_CONFIG, dict(TINY_OVERRIDES)) if tiny else load_config(FULL_CONFIG)


def _inputs(cfg, frames: int, seed: int = 0) -> dict:
    """Numpy inputs of one guided call (batch 1): x, t, y, zero_y and the exp02 spatial conditions."""
    import numpy as np

    rng = np.random.default_rng(seed)
    r = cfg.resolution // 8
    w = cfg.unet_context_dim
    out = {"x": rng.standard_normal((1, 4, frames, r, r), dtype=np.float32),
           "t": np.array([TIMESTEP], np.int64),
           "y": rng.standard_normal((1, 77, w), dtype=np.float32),
           "zero_y": rng.standard_normal((1, 77, w), dtype=np.float32)}
    if "local_image" in cfg.guidances:
        out["local_image"] = np.repeat(rng.random((1, 3, 1, cfg.misc_size, cfg.misc_size), dtype=np.float32),
                                       frames, axis=2)
    if "motion" in cfg.guidances:
        out["motion"] = 4.0 * rng.standard_normal((1, 2, frames, cfg.resolution, cfg.resolution), dtype=np.float32)
    return out


def _timed(call, runs: int) -> dict:
    out = time_calls(call, runs)
    del out["result"]
    return out


# ---------------------------------------------------------------------------------------------- workers
def _guided_cell():
    from mindspore import nn

    class Guided(nn.Cell):
        """The original's guided step: ``u + s (c - u)`` of the unconditional and conditional UNet calls."""

        def __init__(self, unet):
            super().__init__(auto_prefix=False)
            self.unet = unet

        def construct(self, x, t, y, zero_y, local_image=None, motion=None):
            u = self.unet(x, t, zero_y, local_image=local_image, motion=motion)
            c = self.unet(x, t, y, local_image=local_image, motion=motion)
            return u + GUIDE_SCALE * (c - u)

    return Guided


def worker_ms(mode: str, tiny: bool, frames: int, runs: int, chunk: int, device: str | None) -> dict:
    import mindspore as ms
    import numpy as np
    from videocomposer_ms.unet import UNetSDTemporal

    from common.nn import set_attention

    if device:
        ms.set_device(device) if hasattr(ms, "set_device") else ms.set_context(device_target=device)
    ms.set_context(mode=ms.PYNATIVE_MODE)
    target = ms.get_context("device_target")
    if target == "CPU":
        ms.runtime.launch_blocking()
    cfg = _config(tiny)
    ms.set_seed(0)
    t0 = time.perf_counter()
    unet = UNetSDTemporal(cfg)
    unet.set_train(False)
    build = time.perf_counter() - t0
    if chunk:
        set_attention(unet, chunk_size=chunk)
    inp = {k: ms.Tensor(v.astype(np.int32) if k == "t" else v) for k, v in _inputs(cfg, frames).items()}
    guided = _guided_cell()(unet)
    fn = ms.jit(guided.construct) if mode == "graph" else guided
    args = (inp["x"], inp["t"], inp["y"], inp["zero_y"], inp.get("local_image"), inp.get("motion"))
    out = _timed(lambda: fn(*args).asnumpy(), runs)
    out.update(mode=mode, device=target, build_s=build, peak_rss_gib=peak_rss_gib(),
               params=int(sum(int(np.prod(p.shape)) for p in unet.get_parameters())),
               mindspore=ms.__version__, attention_chunk=chunk)
    if target != "CPU":
        out["peak_device_gib"] = ms.runtime.max_memory_allocated() / 2 ** 30
    return out


_STUBS = {
    "xformers/__init__.py": "from . import ops  # stand-in: see videocomposer/benchmark.py\n",
    "xformers/ops.py": (
        "import torch.nn.functional as F\n\n\n"
        "def memory_efficient_attention(q, k, v, attn_bias=None, op=None):\n"
        "    assert attn_bias is None\n"
        "    return F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(d)) v, as xformers\n"),
    "flash_attn/__init__.py": "",
    "flash_attn/flash_attention.py": (
        "class FlashAttention:  # imported by the original's mha_flash.py, never built by UNetSD_temporal\n"
        "    def __init__(self, *a, **k):\n        raise RuntimeError('flash_attn stand-in')\n"),
    "rotary_embedding_torch.py": (
        "class RotaryEmbedding:  # only for the non-transformer temporal attention (unused)\n"
        "    def __init__(self, *a, **k):\n        raise RuntimeError('rotary_embedding_torch stand-in')\n"),
    "fairscale/__init__.py": "",
    "fairscale/nn/__init__.py": "",
    "fairscale/nn/checkpoint.py": "def checkpoint_wrapper(module, *a, **k):  # inference: no checkpointing\n    return module\n",
}


def worker_ref(tiny: bool, frames: int, runs: int, device: str | None) -> dict:
    """The original PyTorch UNetSD_temporal (REF_SRC) at the same config and inputs."""
    import torch

    src = os.environ["REF_SRC"]
    try:  # REF_SRC and the stand-ins are on sys.path (set by _spawn)
        from tools.videocomposer.unet_sd import UNetSD_temporal
    except ImportError as e:
        raise SystemExit(f"error: cannot import the original UNet from REF_SRC={src}: {e} "
                         "(it needs torch and einops: pip install einops)") from None
    cfg = _config(tiny)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(0)
    t0 = time.perf_counter()
    unet = UNetSD_temporal(
        cfg=cfg, in_dim=cfg.unet_in_dim, concat_dim=cfg.unet_concat_dim, dim=cfg.unet_dim, y_dim=cfg.unet_y_dim,
        context_dim=cfg.unet_context_dim, out_dim=cfg.unet_out_dim, dim_mult=cfg.unet_dim_mult,
        num_heads=cfg.unet_num_heads, head_dim=cfg.unet_head_dim, num_res_blocks=cfg.unet_res_blocks,
        attn_scales=cfg.unet_attn_scales, dropout=cfg.unet_dropout, temporal_attention=cfg.temporal_attention,
        temporal_attn_times=cfg.temporal_attn_times, use_checkpoint=False, use_fps_condition=cfg.use_fps_condition,
        use_sim_mask=cfg.use_sim_mask, video_compositions=cfg.video_compositions, misc_dropout=cfg.misc_dropout,
        p_all_zero=cfg.p_all_zero, p_all_keep=cfg.p_all_zero, zero_y=None, black_image_feature=None).to(dev).eval()
    build = time.perf_counter() - t0
    inp = {k: torch.from_numpy(v).to(dev) for k, v in _inputs(cfg, frames).items()}
    kw = {k: inp[k] for k in ("local_image", "motion") if k in inp}
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def call():
        with torch.no_grad():  # the original's ddim_sample: two calls, then u + s (c - u)
            c = unet(inp["x"], inp["t"], y=inp["y"], **kw)
            u = unet(inp["x"], inp["t"], y=inp["zero_y"], **kw)
            out = u + GUIDE_SCALE * (c - u)
        sync()
        return out

    out = _timed(call, runs)
    out.update(mode="torch", device=str(dev), torch=torch.__version__, threads=torch.get_num_threads(),
               build_s=build, peak_rss_gib=peak_rss_gib(), params=int(sum(p.numel() for p in unet.parameters())))
    if dev.type == "cuda":
        out["peak_device_gib"] = torch.cuda.max_memory_allocated() / 2 ** 30
    return out


# ---------------------------------------------------------------------------------------------- driver
def _spawn(kind: str, a) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--runs", str(a.runs),
           "--frames", str(a.frames), "--attention_chunk", str(a.attention_chunk)]
    cmd += ["--tiny"] if a.tiny else []
    cmd += ["--device", a.device] if a.device else []
    cmd += ["--ref_device", a.ref_device] if a.ref_device else []
    env = reference_env(_STUBS, prefix="vc_ref_") if kind == "torch" else None
    return {"mode": kind, **run_child(cmd, env=env, label=f"{kind} worker")}


def _report(results, ref, label: str) -> str:
    rows = [label, f"{'mode':9s} {'median s/call':>14s} {'first call s':>13s} {'peak RSS GiB':>13s} "
                   f"{'peak dev GiB':>13s} {'ours/orig':>10s}"]
    for r in results + ([ref] if ref else []):
        if "error" in r:
            rows.append(f"{r['mode']:9s} did not run: {r['error']}")
            continue
        ratio = (f"{r['median_s'] / ref['median_s']:.2f}" if ref and "median_s" in ref and r is not ref else "-")
        dev = f"{r['peak_device_gib']:.2f}" if "peak_device_gib" in r else "-"
        rows.append(f"{r['mode']:9s} {r['median_s']:14.3f} {r['first_call_s']:13.2f} {r['peak_rss_gib']:13.2f} "
                    f"{dev:>13s} {ratio:>10s}")
    return "\n".join(rows)


def build_parser() -> argparse.ArgumentParser:
    head, _, rest = __doc__.strip().partition("\n\n")
    p = argparse.ArgumentParser(description=head, epilog=rest, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3, help="timed calls per mode after the first (default 3)")
    p.add_argument("--modes", default="pynative,graph", help="comma list of pynative, graph (default both)")
    p.add_argument("--frames", type=int, default=None, help="frames (default 16; --tiny: 2)")
    p.add_argument("--tiny", action="store_true", help="configs/demo_tiny.yaml's UNet instead of the released size "
                   "(a smoke test of this script; the figures mean nothing)")
    p.add_argument("--attention_chunk", type=int, default=0,
                   help="our attention's query chunk (0 = all queries at once, as the original)")
    p.add_argument("--device", default=None, help="MindSpore device_target (CPU, GPU, Ascend; default: the build's)")
    p.add_argument("--ref_device", default=None, help="torch device of the original (default cuda if available)")
    p.add_argument("--json", default=None, help="also write the figures to this file")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return p


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    a.frames = a.frames or (2 if a.tiny else 16)
    if a.runs < 0 or a.frames < 1 or a.attention_chunk < 0:
        print("error: --runs >= 0, --frames >= 1 and --attention_chunk >= 0 are needed", file=sys.stderr)
        return 2
    if a.worker == "torch":
        print(json.dumps(worker_ref(a.tiny, a.frames, a.runs, a.ref_device)))
        return 0
    if a.worker:
        print(json.dumps(worker_ms(a.worker, a.tiny, a.frames, a.runs, a.attention_chunk, a.device)))
        return 0
    modes = [m.strip() for m in a.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in ("pynative", "graph")]
    if bad or not modes:
        print(f"error: --modes: {bad or a.modes!r} (pynative, graph)", file=sys.stderr)
        return 2
    src = os.environ.get("REF_SRC")
    if src and not Path(src, "tools", "videocomposer", "unet_sd.py").is_file():
        print(f"error: REF_SRC={src} is not a checkout of ali-vilab/videocomposer (no tools/videocomposer/unet_sd.py)",
              file=sys.stderr)
        return 2
    results = []
    for mode in modes:
        results.append(_spawn(mode, a))
        print(f"done: {mode} {results[-1].get('median_s', results[-1].get('error'))}", file=sys.stderr)
    ref = _spawn("torch", a) if src else None
    cfg_name = TINY_CONFIG.name + " (tiny)" if a.tiny else FULL_CONFIG.name
    params = max((r.get("params", 0) for r in results), default=0)
    label = (f"UNetSD_temporal of {cfg_name}: {params / 1e9:.3f} B params, guided call on latents (1, 4, {a.frames}, "
             f"32, 32) with y, local_image, motion; float32; MindSpore on {results[0].get('device', '?')}"
             + (f"; original on {ref.get('device', '?')}" if ref else ""))
    machine = machine_info()
    print(_report(results, ref if ref and "error" not in ref else None, f"{label}\n{machine_line(machine)}"))
    if ref and "error" in ref:
        print(f"torch did not run: {ref['error']}")
    if a.json:
        Path(a.json).write_text(json.dumps({"machine": machine, "results": results, "reference": ref, "frames": a.frames,
                                            "tiny": a.tiny}, indent=1))
    return 0 if all("error" not in r for r in results) and not (ref and "error" in ref) else 1


if __name__ == "__main__":
    raise SystemExit(main())
