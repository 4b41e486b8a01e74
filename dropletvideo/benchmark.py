"""Speed and memory of DropletVideo's transformer: this port (PyNative and graph) vs diffusers' PyTorch
``CogVideoXTransformer3DModel`` (the same architecture without the FPS branch) at the same config, random
weights, float32, one classifier-free-guidance call (batch 2).

    python benchmark.py                                    # the full 42-layer transformer, 13 latent frames 480x720
    python benchmark.py --num_layers 2 --frames 2 --size 240x368 --repeats 2     # what a small CPU box can run

Each kind runs in its own process, so ``peak_rss_gib`` is that process's peak (weights + activations + runtime):

* ``ours_pynative`` / ``ours_graph``: ``DropletVideoTransformer3DModel`` on (2, F, 16, h, w) latents + the
  (2, F, 17, h, w) inpaint conditioning, T5 states (2, 226, 4096), RoPE tables; graph = ``ms.jit`` (its first
  call, with the compile, is reported apart as ``first_call_s``).
* ``diffusers``: ``CogVideoXTransformer3DModel`` (in_channels 33, RoPE) on the same shapes under ``no_grad``.

Reported: median seconds of ``--repeats`` calls after a first (warm-up / compile) call, peak RSS, and the
ratio ours / diffusers. torch and diffusers are imported only here, as references
(``pip install --no-deps diffusers==0.32.2 huggingface_hub==0.27.1`` plus ``requests``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from common.bench import machine_info, machine_line, peak_rss_gib, run_child, time_calls

HERE = Path(__file__).resolve().parent
KINDS = ("ours_pynative", "ours_graph", "diffusers")
#: the release's transformer sizes (transformer/config.json of DropletVideo-5B)
RELEASE = dict(num_attention_heads=48, attention_head_dim=64, in_channels=33, out_channels=16, time_embed_dim=512,
               text_embed_dim=4096, num_layers=42, patch_size=2)


def _time(fn, repeats: int, out: dict) -> None:
    timed = time_calls(fn, repeats)
    del timed["result"]
    out.update(timed)


def child_ours(kind: str, a) -> dict:
    import mindspore as ms
    import numpy as np
    from dropletvideo_ms.transformer import DropletVideoTransformer3DModel, TransformerConfig, prepare_rotary

    from common.config import from_mapping
    from common.nn import set_attention

    ms.set_context(mode=ms.PYNATIVE_MODE)
    if ms.get_context("device_target") == "CPU":
        ms.runtime.launch_blocking()
    cfg = dict(RELEASE, num_layers=a.num_layers, use_rotary_positional_embeddings=True)
    t0 = time.perf_counter()
    model = DropletVideoTransformer3DModel(from_mapping(TransformerConfig, cfg, "benchmark"))
    model.set_train(False)
    out = {"build_s": time.perf_counter() - t0, "params": int(sum(int(np.prod(p.shape))
                                                                   for p in model.get_parameters()))}
    if a.attn_chunk_size:
        set_attention(model, "math", a.attn_chunk_size)
        out["attn_chunk_size"] = a.attn_chunk_size
    rng = np.random.default_rng(0)
    h, w = (int(v) // 8 for v in a.size.split("x"))
    t = lambda *s: ms.Tensor(rng.standard_normal(s, dtype=np.float32))  # noqa: E731
    cos, sin, _ = prepare_rotary(h * 8, w * 8, a.frames, 8, 2, RELEASE["attention_head_dim"])
    args = (t(2, a.frames, 16, h, w), t(2, a.text_len, 4096), ms.Tensor(np.array([500, 500], np.int64)),
            ms.Tensor(np.array([8], np.int64)), t(2, a.frames, 17, h, w), ms.Tensor(cos), ms.Tensor(sin))
    fn = ms.jit(model.construct) if kind == "ours_graph" else model
    _time(lambda: fn(*args).asnumpy(), a.repeats, out)
    out["peak_rss_gib"] = peak_rss_gib()
    return out


def child_diffusers(a) -> dict:
    import torch
    from diffusers import CogVideoXTransformer3DModel
    from dropletvideo_ms.transformer import prepare_rotary

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = CogVideoXTransformer3DModel(**dict(RELEASE, num_layers=a.num_layers),
                                        use_rotary_positional_embeddings=True).eval()
    out = {"build_s": time.perf_counter() - t0, "params": int(sum(p.numel() for p in model.parameters())),
           "torch": torch.__version__}
    h, w = (int(v) // 8 for v in a.size.split("x"))
    cos, sin, _ = prepare_rotary(h * 8, w * 8, a.frames, 8, 2, RELEASE["attention_head_dim"])
    x = torch.randn(2, a.frames, 33, h, w)
    ctx = torch.randn(2, a.text_len, 4096)
    ts = torch.tensor([500, 500])
    rope = (torch.from_numpy(cos), torch.from_numpy(sin))

    def call():
        with torch.no_grad():
            return model(x, ctx, ts, image_rotary_emb=rope, return_dict=False)[0]

    _time(call, a.repeats, out)
    out["peak_rss_gib"] = peak_rss_gib()
    return out


def _run_child(kind: str, a) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--num_layers", str(a.num_layers),
           "--frames", str(a.frames), "--size", a.size, "--text_len", str(a.text_len), "--repeats", str(a.repeats),
           "--threads", str(a.threads)]
    if a.attn_chunk_size:
        cmd += ["--attn_chunk_size", str(a.attn_chunk_size)]
    return run_child(cmd, env=dict(os.environ, GLOG_v="3"), label=kind)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--num_layers", type=int, default=42, help="transformer blocks (42 = the release)")
    p.add_argument("--frames", type=int, default=13, help="latent frames (13 = 49 video frames)")
    p.add_argument("--size", default="480x720", help="video HxW in pixels (multiples of 16)")
    p.add_argument("--text_len", type=int, default=226, help="text tokens")
    p.add_argument("--repeats", type=int, default=3, help="timed calls after the first (median reported)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads of the reference")
    p.add_argument("--attn_chunk_size", type=int, default=None, help="our attention query chunk (memory knob)")
    p.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        res = child_diffusers(a) if a.child == "diffusers" else child_ours(a.child, a)
        print(json.dumps(res))
        return res
    h, w = (int(v) for v in a.size.split("x"))
    tokens = a.frames * (h // 16) * (w // 16)
    results = {"machine": machine_info(), "config": {"num_layers": a.num_layers, "frames": a.frames, "size": a.size, "video_tokens": tokens,
                          "text_len": a.text_len, "batch": 2, "dtype": "float32"}}
    for kind in a.kinds:
        results[kind] = _run_child(kind, a)
        print(kind, json.dumps(results[kind]), flush=True)
    ref = results.get("diffusers", {}).get("median_s")
    for kind in ("ours_pynative", "ours_graph"):
        mine = results.get(kind, {}).get("median_s")
        if ref and mine:
            results[kind]["ratio_vs_diffusers"] = mine / ref
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=2))
    print(machine_line(results["machine"]))
    print(json.dumps({k: {m: v.get(m) for m in ("median_s", "peak_rss_gib", "ratio_vs_diffusers")}
                      for k, v in results.items() if k not in ("config", "machine")}, indent=1))
    return results


if __name__ == "__main__":
    main()
