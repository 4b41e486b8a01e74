"""Time per video of AnimateDiff (``benchmark.py --e2e``): each part of one text-to-video run timed at full size,
ours against diffusers' ``AnimateDiffPipeline`` parts in the same run, then ``fixed parts + steps x step``.

One video as ``text_to_video.py`` makes it at the release size (512x512, 16 frames, guidance 7.5, the prompt
configs' 25 steps), SD-1.5 + v2 motion modules, random float32 weights, CPU, each part in its own process:

* ``text``: the CLIP text encoder on the prompt and on the negative prompt: 2 calls of batch 1 (both pipelines);
* ``step``: one denoiser step, the CFG batch of 2 in one UNet call (both pipelines); ours in ``--mode`` (graph =
  ``ms.jit``);
* ``vae_decode``: the 16 latents through the VAE decoder: ours one frame per call (as our pipeline), diffusers
  ``--decode_chunk`` frames per call (its ``decode_chunk_size`` default 16).

Ours runs the text encoder and the VAE in PyNative (as ``text_to_video.py``). diffusers needs ``diffusers`` and
``transformers``. ``--tiny``: the demo's tiny sizes at 64x64 (``--size``), parts in one process, ours only unless
``--tiny_ref``.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from common.bench import machine_info, machine_line, run_e2e_parts, time_part, update_json

HERE = Path(__file__).resolve().parent
PARTS = ("text", "step", "vae_decode")


def _motion_kwargs() -> dict:
    import yaml

    return yaml.safe_load((HERE / "configs" / "inference" / "inference-v2.yaml").read_text())["unet_additional_kwargs"]


def ours_part(part: str, size: int, frames: int, runs: int, mode: str, chunk, tiny: bool, fill_random) -> dict:
    """Our part ``part`` (module docstring); its :func:`common.bench.time_part` figures (``fill_random(net)``: the
    UNet's random weights, benchmark.py's)."""
    import mindspore as ms
    from animatediff_ms.config import UNet3DConfig, VAEConfig
    from animatediff_ms.demo import TINY_TEXT, TINY_UNET, TINY_VAE
    from animatediff_ms.models import UNet3DConditionModel
    from animatediff_ms.sd15 import SD15_TEXT_ENCODER, SD15_UNET, SD15_VAE
    from mindspore.nn.utils import no_init_parameters

    from common.clip.hf_clip import CLIPTextConfig, CLIPTextModel
    from common.config import from_mapping
    from common.nn import set_attention
    from common.vae import AutoencoderKL

    ms.set_context(mode=ms.PYNATIVE_MODE)
    ms.runtime.launch_blocking()
    rng = np.random.default_rng(0)
    s = size // 8
    if part == "text":
        te = CLIPTextModel(CLIPTextConfig(vocab_size=1000, **TINY_TEXT) if tiny
                           else CLIPTextConfig.from_dict(SD15_TEXT_ENCODER))
        ids = [ms.Tensor(rng.integers(0, 1000, (1, 77)).astype(np.int32)) for _ in range(2)]
        return time_part(lambda: [te(i)[0].asnumpy() for i in ids], runs, "prompt + negative: 2 calls of batch 1")
    if part == "vae_decode":
        if tiny:
            vae = AutoencoderKL(TINY_VAE, 4)
        else:
            vae = AutoencoderKL(from_mapping(VAEConfig, SD15_VAE, "SD15_VAE").ddconfig(), 4)
        z = ms.Tensor(rng.standard_normal((1, 4, frames, s, s)).astype(np.float32))
        return time_part(lambda: vae.decode_video(z, 0.18215, chunk_size=1).asnumpy(), runs,
                         f"{frames} frames, 1 per call")
    with no_init_parameters():
        net = UNet3DConditionModel(UNet3DConfig.from_files(TINY_UNET if tiny else SD15_UNET, _motion_kwargs()))
    fill_random(net)
    if chunk:
        set_attention(net, "math", chunk)
    net.set_train(False)
    x = ms.Tensor(rng.standard_normal((2, 4, frames, s, s)).astype(np.float32))
    t = ms.Tensor(np.array([501, 501], np.int64))
    c = ms.Tensor(rng.standard_normal((2, 77, 32 if tiny else 768)).astype(np.float32))
    fn = ms.jit(net.construct) if mode == "graph" else net
    return time_part(lambda: fn(x, t, c).asnumpy(), runs, f"UNet {mode}, the CFG batch of 2 in one call")


def ref_part(part: str, size: int, frames: int, runs: int, decode_chunk: int, tiny: bool) -> dict:
    """diffusers' / transformers' part ``part`` at the same config; its figures."""
    import os

    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    torch.set_grad_enabled(False)
    torch.manual_seed(0)
    s = size // 8
    if part == "text":
        from animatediff_ms.demo import TINY_TEXT
        from animatediff_ms.sd15 import SD15_TEXT_ENCODER
        from transformers import CLIPTextConfig, CLIPTextModel

        cfg = dict(vocab_size=1000, **TINY_TEXT) if tiny else {k: v for k, v in SD15_TEXT_ENCODER.items()
                                                                 if k != "architectures"}
        te = CLIPTextModel(CLIPTextConfig(**cfg)).eval()
        ids = [torch.randint(0, 1000, (1, 77)) for _ in range(2)]
        return time_part(lambda: [te(i)[0] for i in ids], runs, "prompt + negative: 2 calls of batch 1")
    if part == "vae_decode":
        from animatediff_ms.sd15 import SD15_VAE
        from diffusers import AutoencoderKL

        cfg = {k: v for k, v in SD15_VAE.items() if k != "_class_name"}
        if tiny:
            cfg.update(block_out_channels=[32] * 4, layers_per_block=1)
        vae = AutoencoderKL(**cfg).eval()
        z = torch.randn(frames, 4, s, s)
        return time_part(lambda: torch.cat([vae.decode(z[i:i + decode_chunk] / 0.18215).sample
                                            for i in range(0, frames, decode_chunk)]), runs,
                         f"{frames} frames, {decode_chunk} per call (decode_chunk_size)")
    from diffusers import UNetMotionModel

    kw = dict(cross_attention_dim=768, num_attention_heads=8, motion_max_seq_length=32, motion_num_attention_heads=8,
              use_motion_mid_block=True)
    if tiny:
        kw.update(block_out_channels=(32, 32, 32, 32), layers_per_block=1, cross_attention_dim=32,
                  num_attention_heads=4, motion_num_attention_heads=4)
    net = UNetMotionModel(**kw).eval()
    x = torch.randn(2, 4, frames, s, s)
    t = torch.tensor([501, 501])
    c = torch.randn(2, 77, kw["cross_attention_dim"]).repeat_interleave(frames, dim=0)
    return time_part(lambda: net(x, t, c).sample, runs, "UNetMotionModel, the CFG batch of 2 in one call")


def worker(a, fill_random) -> dict:
    """A child: the parts ``a.e2e_parts`` of ``a.e2e_worker`` -> ``{"parts": {part: figures}}``."""
    out = {}
    for part in a.e2e_parts.split(","):
        if a.e2e_worker == "ours":
            out[part] = ours_part(part, a.size, a.frames, a.runs, a.mode, a.attention_chunk_size, a.tiny,
                                  fill_random)
        else:
            out[part] = ref_part(part, a.size, a.frames, a.runs, a.decode_chunk, a.tiny)
    return {"parts": out}


def run(script: Path, a) -> int:
    """The driver: every part of ours and diffusers', the summary table, the ``e2e`` key of the results file."""
    from common.bench import e2e_summary, e2e_table

    impls = ["ours"] + (["ref"] if not a.tiny or a.tiny_ref else [])
    chunk = a.attention_chunk_size or (1024 if a.size >= 512 else None)

    def cmd(impl, parts):
        return [sys.executable, str(script), "--e2e", "--e2e_worker", impl, "--e2e_parts", ",".join(parts),
                "--size", str(a.size), "--frames", str(a.frames), "--repeats", str(a.runs), "--mode", a.mode,
                "--decode_chunk", str(a.decode_chunk)] + (["--tiny"] if a.tiny else []) + (
                    ["--attention_chunk_size", str(chunk)] if chunk else [])
    t0 = time.perf_counter()
    parts = run_e2e_parts(cmd, impls, PARTS, together=a.tiny, timeout=a.timeout)
    summary = e2e_summary(parts, a.steps)
    machine = machine_info()
    print(f"AnimateDiff time per video, {a.size}x{a.size} x {a.frames} frames{' (tiny)' if a.tiny else ''}, "
          f"{a.steps} steps with guidance, step in {a.mode}; {machine_line(machine)}")
    print(e2e_table(summary, PARTS, {"ours": "ours", "ref": "diffusers"}))
    result = {"machine": machine, "size": a.size, "frames": a.frames, "steps": a.steps, "mode": a.mode,
              "attention_chunk": chunk, "decode_chunk": a.decode_chunk, "tiny": a.tiny, "parts": parts,
              "summary": summary, "wall_s": time.perf_counter() - t0}
    out = a.out or (None if a.tiny else HERE / "benchmark_results.json")
    if out:
        update_json(out, "e2e", result)
        print(f"wrote the 'e2e' key of {out}")
    return 0
