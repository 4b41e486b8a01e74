"""Time per video of SVD (``benchmark.py --e2e``): each part of one image-to-video run timed at full size, ours
against diffusers' ``StableVideoDiffusionPipeline`` parts in the same run, then ``fixed parts + steps x step``.

One video as ``image_to_video.py`` makes it at the release size (576x1024, 14 frames, 25 EDM steps, guidance 1.0 to
2.5 over the frames, so every step runs both branches), random float32 weights, CPU, each part in its own process:

* ``image``: the CLIP image encoder (ViT-H/14) on the picture, resized to 224 with antialiasing inside the call; the
  unconditional branch's embedding is zeros (both pipelines): 1 call;
* ``vae_encode``: the noise-augmented picture through the VAE encoder (mode of the posterior): 1 call;
* ``step``: one denoiser call of the CFG batch (2 x 14 frames; ours ``--mode graph`` = ``ms.jit``);
* ``vae_decode``: the 14 latents through the temporal VAE decoder, ``--decode_chunk`` frames per call (0 = all:
  ``image_to_video.py``'s ``--SVD.decode_chunk_size 0`` and diffusers' ``decode_chunk_size=None``).

Ours runs the encoders and the VAE in PyNative (as ``image_to_video.py``). diffusers needs ``diffusers`` and
``transformers``. ``--tiny``: ``configs/svd_tiny.yaml`` at 64x64 (``--size``), ours only, parts in one process.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from common.bench import machine_info, machine_line, run_e2e_parts, time_part, update_json

HERE = Path(__file__).resolve().parent
PARTS = ("image", "vae_encode", "step", "vae_decode")


def _picture(h: int, w: int):
    return np.random.default_rng(0).uniform(-1, 1, (1, 3, h, w)).astype(np.float32)  # (1, 3, H, W)


def ours_part(part: str, size: tuple[int, int], frames: int, runs: int, mode: str, decode_chunk: int, config: Path,
              attn_chunk=None, ff_chunk=None) -> dict:
    """Our part ``part`` (module docstring) of ``config``; its :func:`common.bench.time_part` figures."""
    import mindspore as ms
    from svd_ms.conditioner import ImageLatentEmbedder, ImagePredictionEmbedder
    from svd_ms.config import load_svd_config
    from svd_ms.denoiser import Denoiser
    from svd_ms.temporal_vae import VideoAutoencoder
    from svd_ms.video_unet import VideoUNet

    from common.clip import load_open_clip_config
    from common.nn import set_attention, set_feed_forward_chunk_size

    ms.set_context(mode=ms.PYNATIVE_MODE)
    ms.runtime.launch_blocking()
    cfg = load_svd_config(config)
    h, w = size
    img = ms.Tensor(_picture(h, w))
    cc = cfg.conditioner
    if part == "image":
        clip = load_open_clip_config(cc.image.arch, search_dirs=(Path(config).parent,))
        emb = ImagePredictionEmbedder(clip, cc.image.antialias)
        return time_part(lambda: emb(img).asnumpy(), runs, "the picture: 1 call (uncond = zeros)")
    if part == "vae_encode":
        enc = ImageLatentEmbedder(cc.encoder, cc.encoder_embed_dim, cc.encoder_scale_factor)
        return time_part(lambda: enc(img).asnumpy(), runs, "the noise-augmented picture: 1 call")
    rng = np.random.default_rng(1)
    if part == "vae_decode":
        vae = VideoAutoencoder(cfg.first_stage)
        z = ms.Tensor(rng.standard_normal((frames, 4, h // 8, w // 8)).astype(np.float32))
        return time_part(lambda: vae.decode_frames(z, cfg.scale_factor, decode_chunk or None).asnumpy(), runs,
                         f"{frames} frames, {decode_chunk or frames} per call")
    unet = VideoUNet(cfg.unet)
    if attn_chunk:
        set_attention(unet, "math", attn_chunk)
    if ff_chunk:
        set_feed_forward_chunk_size(unet, ff_chunk)
    den = Denoiser(unet)
    n = 2 * frames
    ctx, adm = cfg.unet.context_dim, cfg.unet.adm_in_channels or 768
    args = (ms.Tensor(rng.standard_normal((n, 4, h // 8, w // 8)).astype(np.float32)),
            ms.Tensor(np.full((n,), 1.0, np.float32)),
            ms.Tensor(rng.standard_normal((n, 1, ctx)).astype(np.float32)),
            ms.Tensor(rng.standard_normal((n, adm)).astype(np.float32)),
            ms.Tensor(rng.standard_normal((n, 4, h // 8, w // 8)).astype(np.float32)),
            ms.Tensor(np.zeros((2, frames), np.float32)))
    fn = ms.jit(den.construct) if mode == "graph" else den
    return time_part(lambda: fn(*args).asnumpy(), runs, f"denoiser {mode}, the CFG batch of 2 x {frames} frames")


def ref_part(part: str, size: tuple[int, int], frames: int, runs: int, decode_chunk: int, threads: int) -> dict:
    """diffusers' / transformers' part ``part`` at the release config; its figures."""
    import torch

    torch.set_num_threads(threads)
    torch.set_grad_enabled(False)
    torch.manual_seed(0)
    h, w = size
    img = torch.from_numpy(_picture(h, w))
    if part == "image":
        import torch.nn.functional as F
        from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

        enc = CLIPVisionModelWithProjection(CLIPVisionConfig(
            hidden_size=1280, intermediate_size=5120, num_attention_heads=16, num_hidden_layers=32, patch_size=14,
            image_size=224, projection_dim=1024, hidden_act="gelu")).eval()

        def call():
            x = F.interpolate(img, (224, 224), mode="bicubic", align_corners=True, antialias=True)
            return enc((x + 1) / 2).image_embeds
        return time_part(call, runs, "the picture: 1 call (uncond = zeros)")
    if part in ("vae_encode", "vae_decode"):
        from diffusers import AutoencoderKLTemporalDecoder

        vae = AutoencoderKLTemporalDecoder().eval()  # its default config is SVD's
        if part == "vae_encode":
            return time_part(lambda: vae.encode(img).latent_dist.mode(), runs, "the noise-augmented picture: 1 call")
        z = torch.randn(frames, 4, h // 8, w // 8)
        k = decode_chunk or frames
        return time_part(lambda: torch.cat([vae.decode(z[i:i + k] / 0.18215, num_frames=len(z[i:i + k])).sample
                                            for i in range(0, frames, k)]), runs, f"{frames} frames, {k} per call")
    from diffusers import UNetSpatioTemporalConditionModel

    unet = UNetSpatioTemporalConditionModel().eval()  # its default config is SVD's
    sample = torch.randn(2, frames, 8, h // 8, w // 8)
    ehs, ids = torch.randn(2, 1, 1024), torch.tensor([[6.0, 127.0, 0.02]] * 2)
    return time_part(lambda: unet(sample, torch.tensor(0.5), ehs, ids).sample, runs,
                     f"UNet, the CFG batch of 2 x {frames} frames")


def worker(a) -> dict:
    """A child: the parts ``a.e2e_parts`` of ``a.e2e_worker`` -> ``{"parts": {part: figures}}``."""
    size = tuple(int(v) for v in a.size.split("x"))
    out = {}
    for part in a.e2e_parts.split(","):
        if a.e2e_worker == "ours":
            out[part] = ours_part(part, size, a.frames, a.repeats, a.mode, a.decode_chunk, Path(a.config),
                                  a.attn_chunk_size, a.ff_chunk_size)
        else:
            out[part] = ref_part(part, size, a.frames, a.repeats, a.decode_chunk, a.threads)
    return {"parts": out}


def run(script: Path, a) -> int:
    """The driver: every part of ours and diffusers', the summary table, the ``e2e`` key of the results file."""
    from common.bench import e2e_summary, e2e_table

    impls = ["ours"] + ([] if a.tiny else ["ref"])

    def cmd(impl, parts):
        c = [sys.executable, str(script), "--e2e", "--e2e_worker", impl, "--e2e_parts", ",".join(parts),
             "--size", a.size, "--frames", str(a.frames), "--repeats", str(a.repeats), "--mode", a.mode,
             "--decode_chunk", str(a.decode_chunk), "--config", str(a.config), "--threads", str(a.threads)]
        for flag, v in (("--attn_chunk_size", a.attn_chunk_size), ("--ff_chunk_size", a.ff_chunk_size)):
            c += [flag, str(v)] if v else []
        return c
    t0 = time.perf_counter()
    parts = run_e2e_parts(cmd, impls, PARTS, together=a.tiny)
    summary = e2e_summary(parts, a.steps)
    machine = machine_info()
    print(f"SVD time per video, {a.size} x {a.frames} frames ({Path(a.config).name}), {a.steps} steps with guidance, "
          f"step in {a.mode}; {machine_line(machine)}")
    print(e2e_table(summary, PARTS, {"ours": "ours", "ref": "diffusers"}))
    result = {"machine": machine, "size": a.size, "frames": a.frames, "steps": a.steps, "mode": a.mode,
              "config": Path(a.config).name, "decode_chunk": a.decode_chunk, "attn_chunk_size": a.attn_chunk_size,
              "ff_chunk_size": a.ff_chunk_size, "tiny": a.tiny, "parts": parts, "summary": summary,
              "wall_s": time.perf_counter() - t0}
    out = a.out or (None if a.tiny else HERE / "benchmark_results.json")
    if out:
        update_json(out, "e2e", result)
        print(f"wrote the 'e2e' key of {out}")
    return 0
