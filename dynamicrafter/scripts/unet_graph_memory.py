"""Is the compiled UNet graph's memory held while the VAE decodes? Measured per mode in a child process.

    python scripts/unet_graph_memory.py [--model_channels 96] [--frames 16] [--steps 2] [--modes pynative,graph]

Builds DynamiCrafter-256 with a narrower UNet (``model_channels`` instead of 320, heads of 32 channels; the
release's layout otherwise), the release's
VAE (full size) and the tiny demo encoders (``configs/inference_256_tiny_demo.yaml``'s open_clip archs), random
weights, and runs the pipeline at 256x256 x ``frames`` with CFG 7.5 (stacked branches) in each mode, each in its
own process (:func:`common.bench.run_child`). The child reports the resident memory at each stage:
``peak_sample`` (the sampler done), ``rss_before_decode`` (the compiled graph still alive in ``graph``) and
``peak_total`` (after the VAE decode). ``graph`` = the pipeline's ``jit=True`` (PyNative context, only the UNet
call compiled) with ``release_before_decode=False``; ``graph_release`` = the pipeline's default, the graph
released (:meth:`DynamiCrafterPipeline.release_graph`) before the decode. Never full size.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import yaml

DC_DIR = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(DC_DIR), str(DC_DIR.parent)]


def rss_gib() -> float:
    """Current resident memory of this process, GiB (/proc/self/statm)."""
    import os

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 30


def config(model_channels: int, frames: int, folder: Path) -> Path:
    """The measured config written to ``folder`` (next to a copy of the demo archs)."""
    demo = yaml.safe_load((DC_DIR / "configs" / "inference_256_tiny_demo.yaml").read_text())
    full = yaml.safe_load((DC_DIR / "configs" / "inference_256_v1.0.yaml").read_text())
    p = demo["model"]["params"]
    unet = dict(full["model"]["params"]["unet_config"]["params"])
    unet.update(model_channels=model_channels, num_head_channels=32, temporal_length=frames,
                context_dim=p["unet_config"]["params"]["context_dim"])
    p["unet_config"]["params"] = unet
    p["first_stage_config"] = full["model"]["params"]["first_stage_config"]
    p["image_proj_stage_config"]["params"]["video_length"] = frames
    (folder / "open_clip_archs.json").write_text((DC_DIR / "configs" / "open_clip_archs.json").read_text())
    path = folder / "measured.yaml"
    path.write_text(yaml.safe_dump(demo))
    return path


def child(mode: str, args) -> dict:
    import tempfile

    import mindspore as ms
    from dynamicrafter_ms.config import DynamiCrafterConfig
    from dynamicrafter_ms.model import DynamiCrafter
    from dynamicrafter_ms.pipeline import DynamiCrafterPipeline

    from common.bench import peak_rss_gib

    ms.runtime.launch_blocking()
    ms.set_seed(0)
    cfg = DynamiCrafterConfig.from_yaml(str(config(args.model_channels, args.frames, Path(tempfile.mkdtemp()))))
    model = DynamiCrafter(cfg)
    model.set_train(False)
    rss_built = rss_gib()
    pipe = DynamiCrafterPipeline(model, jit=mode != "pynative", release_before_decode=mode == "graph_release")
    image = np.random.default_rng(0).uniform(-1, 1, (1, 3, args.size, args.size)).astype(np.float32)
    t0 = time.perf_counter()
    out = pipe("a boat", image, num_frames=args.frames, num_inference_steps=args.steps, guidance_scale=7.5,
               eta=0.0, seed=1, progress=False, output_type="latent")
    sample_s = time.perf_counter() - t0
    rss_sample, peak_sample = rss_gib(), peak_rss_gib()
    rss_release = rss_gib()
    t0 = time.perf_counter()
    model.decode_first_stage(ms.Tensor(out.latents)).asnumpy()
    decode_s = time.perf_counter() - t0
    return {"mode": mode, "rss_built": rss_built, "sample_s": sample_s, "rss_after_sample": rss_sample,
            "peak_sample": peak_sample, "rss_before_decode": rss_release, "decode_s": decode_s,
            "peak_total": peak_rss_gib()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model_channels", type=int, default=96,
                   help="UNet width, a multiple of 32 (default 96; the release's 320)")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=256, help="height = width in pixels (default 256)")
    p.add_argument("--steps", type=int, default=2, help="DDIM steps (default 2)")
    p.add_argument("--modes", default="pynative,graph,graph_release")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args)))
        return
    from common.bench import machine_line, run_child

    print(machine_line())
    for mode in args.modes.split(","):
        cmd = [sys.executable, __file__, "--child", mode, "--model_channels", str(args.model_channels), "--frames",
               str(args.frames), "--steps", str(args.steps), "--size", str(args.size)]
        r = run_child(cmd, label=mode)
        print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()}), flush=True)


if __name__ == "__main__":
    main()
