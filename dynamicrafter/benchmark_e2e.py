"""Time per video of DynamiCrafter (``benchmark.py --e2e``): each part of one image-to-video run timed at full size,
ours against the original (``REF_SRC``) in the same run, then ``fixed parts + steps x step``.

One video as ``scripts/run/run_infer.sh`` makes it (the original's ``run.sh`` settings: 16 frames, guidance 7.5,
50 DDIM steps), random float32 weights, CPU, each part in its own process (its own peak RSS):

* ``text``: the OpenCLIP text tower on the prompt and on "" (the unconditional branch): 2 calls of batch 1;
* ``image``: the OpenCLIP image tower + Resampler on the picture and on a zero picture: 2 calls of batch 1;
* ``vae_encode``: the picture repeated over the T frames through the VAE encoder (as both pipelines do; one frame at
  a time with ``perframe_ae``);
* ``step``: one DDIM step's UNet work with guidance: ours one call of the stacked cond + uncond batch (2 videos;
  ``--mode graph``: ``ms.jit``, as ``inference.py --mode graph``; ``--split``: 2 calls of one), the original's DDIM
  two calls of batch 1 (cond, then uncond);
* ``vae_decode``: the T latents through the VAE decoder.

Ours runs the encoders and the VAE in PyNative (as ``inference.py`` does in both modes). The original needs
``einops``, ``open_clip_torch`` and ``kornia`` in the interpreter (``pytorch_lightning`` and ``cv2`` get stand-ins:
:data:`REF_STUBS`); its towers are built with ``version=None``
(random weights, nothing downloaded). ``--tiny``: ours only, every part in one process, no results file unless
``--json``; on the repository's tiny demo config unless ``--config`` names another (a smoke test).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

from common.bench import (
    E2E_PARTS,
    machine_info,
    machine_line,
    reference_env,
    run_e2e_parts,
    time_part,
    update_json,
)

HERE = Path(__file__).resolve().parent
TINY = HERE / "configs" / "inference_256_tiny_demo.yaml"
PROMPT = "a man in a boat, waves, sunset"


def _geometry(cfg, frames: int | None):
    """(T, H, W) of one video: ``frames`` (default the UNet's temporal_length) and the config's latent size x 8."""
    h, w = cfg.diffusion.image_size if isinstance(cfg.diffusion.image_size, (list, tuple)) else [cfg.diffusion.image_size] * 2
    return int(frames or cfg.unet.temporal_length or 16), 8 * int(h), 8 * int(w)


def _picture(t: int, h: int, w: int):
    return np.random.default_rng(0).uniform(-1, 1, (1, 3, t, h, w)).astype(np.float32)  # (1, 3, T, H, W)


def ours_part(part: str, config: Path, frames, runs: int, mode: str, chunk: int, split: int) -> dict:
    """Our part ``part`` (module docstring) at ``config``'s size; its :func:`common.bench.time_part` figures."""
    import mindspore as ms
    from dynamicrafter_ms.config import DynamiCrafterConfig
    from dynamicrafter_ms.model import FrozenOpenCLIPEmbedder, FrozenOpenCLIPImageEmbedderV2
    from dynamicrafter_ms.resampler import Resampler
    from dynamicrafter_ms.unet import UNetModel

    from common.clip import load_open_clip_config
    from common.nn import set_attention
    from common.vae import AutoencoderKL

    ms.set_context(mode=ms.PYNATIVE_MODE)
    ms.runtime.launch_blocking()
    cfg = DynamiCrafterConfig.from_yaml(config)
    t, h, w = _geometry(cfg, frames)
    video = ms.Tensor(_picture(t, h, w))
    search = (str(Path(config).parent),)
    d = cfg.diffusion
    if part == "text":
        enc = FrozenOpenCLIPEmbedder(load_open_clip_config(cfg.text_encoder.arch, search_dirs=search),
                                     layer=cfg.text_encoder.layer)
        tokens = [enc.tokenize([p]) for p in (PROMPT, "")]
        return time_part(lambda: [enc.encode_tokens(k).asnumpy() for k in tokens], runs, "prompt + '': 2 calls of batch 1")
    if part == "image":
        emb = FrozenOpenCLIPImageEmbedderV2(load_open_clip_config(cfg.image_encoder.arch, search_dirs=search),
                                            antialias=cfg.image_encoder.antialias)
        proj = Resampler(cfg.resampler)
        img = video[:, :, 0]
        pics = [img, ms.ops.zeros_like(img)]
        return time_part(lambda: [proj(emb(p)).asnumpy() for p in pics], runs, "picture + zeros: 2 calls of batch 1")
    chunk_ae = 1 if d.perframe_ae else None
    if part in ("vae_encode", "vae_decode"):
        vae = AutoencoderKL(cfg.autoencoder.ddconfig, cfg.autoencoder.embed_dim)
    if part == "vae_encode":
        noise = np.random.default_rng(1).standard_normal((1, cfg.autoencoder.embed_dim, t, h // 8, w // 8))
        noise = ms.Tensor(noise.astype(np.float32))
        return time_part(lambda: vae.encode_video(video, noise=noise, chunk_size=chunk_ae,
                                                  scale_factor=d.scale_factor).asnumpy(), runs, f"{t} frames")
    z = ms.Tensor(np.random.default_rng(2).standard_normal((1, 4, t, h // 8, w // 8)).astype(np.float32))
    if part == "vae_decode":
        return time_part(lambda: vae.decode_video(z, scale_factor=d.scale_factor, chunk_size=chunk_ae).asnumpy(),
                         runs, f"{t} frames")
    unet = UNetModel(cfg.unet)
    set_attention(unet, "math", chunk_size=chunk or None)
    unet.set_train(False)
    rng = np.random.default_rng(3)
    x = ms.Tensor(rng.standard_normal((2, 8, t, h // 8, w // 8)).astype(np.float32))  # cond + uncond, image latent
    ts = ms.Tensor(np.array([500, 500], np.int64))
    ctx = ms.Tensor(rng.standard_normal((2, 77 + 16 * t, cfg.unet.context_dim)).astype(np.float32))
    fss = ms.Tensor(np.full((2,), cfg.unet.default_fs, np.int64))
    fn = ms.jit(unet.construct) if mode == "graph" else unet
    n = 2 // split

    def step():
        return [fn(*(a[i * n:(i + 1) * n] for a in (x, ts, ctx, fss))).asnumpy() for i in range(split)]
    return time_part(step, runs, f"UNet {mode}, cond + uncond as {split} call(s) of batch {n}")


def ref_part(part: str, config: Path, frames, runs: int) -> dict:
    """The original's part ``part`` (``REF_SRC`` on the path) at the same config; its figures."""
    import torch
    import yaml

    from common.bench import time_part as timed

    params = yaml.safe_load(Path(config).read_text())["model"]["params"]
    h, w = (params["image_size"] if isinstance(params["image_size"], list) else [params["image_size"]] * 2)
    t, h, w = int(frames or params["unet_config"]["params"].get("temporal_length") or 16), 8 * h, 8 * w
    video = torch.from_numpy(_picture(t, h, w))
    torch.set_grad_enabled(False)
    if part == "text":
        from lvdm.modules.encoders.condition import FrozenOpenCLIPEmbedder

        p = dict(params["cond_stage_config"]["params"])
        enc = FrozenOpenCLIPEmbedder(arch=p.get("arch", "ViT-H-14"), version=None, device="cpu",
                                     layer=p.get("layer", "last")).eval()
        return timed(lambda: [enc([q]) for q in (PROMPT, "")], runs, "prompt + '': 2 calls of batch 1")
    if part == "image":
        from lvdm.modules.encoders.condition import FrozenOpenCLIPImageEmbedderV2
        from lvdm.modules.encoders.resampler import Resampler

        p = dict(params["img_cond_stage_config"]["params"])
        emb = FrozenOpenCLIPImageEmbedderV2(arch=p.get("arch", "ViT-H-14"), version=None, device="cpu").eval()
        proj = Resampler(**params["image_proj_stage_config"]["params"]).eval()
        img = video[:, :, 0]
        return timed(lambda: [proj(emb(q)) for q in (img, torch.zeros_like(img))], runs,
                     "picture + zeros: 2 calls of batch 1")
    scale, per_frame = float(params.get("scale_factor", 0.18215)), bool(params.get("perframe_ae", False))
    if part in ("vae_encode", "vae_decode"):
        from lvdm.models.autoencoder import AutoencoderKL

        a = params["first_stage_config"]["params"]
        vae = AutoencoderKL(a["ddconfig"], {"target": "torch.nn.Identity"}, a["embed_dim"]).eval()
        frames_in = video.permute(0, 2, 1, 3, 4).reshape(t, 3, h, w)  # b c t h w -> (b t) c h w
        z = torch.randn(t, a["embed_dim"], h // 8, w // 8)
        groups = [slice(i, i + 1) for i in range(t)] if per_frame else [slice(0, t)]  # the original's perframe_ae
        if part == "vae_encode":
            return timed(lambda: torch.cat([scale * vae.encode(frames_in[g]).sample() for g in groups]), runs,
                         f"{t} frames")
        return timed(lambda: torch.cat([vae.decode(z[g] / scale) for g in groups]), runs, f"{t} frames")
    from lvdm.modules.networks.openaimodel3d import UNetModel

    u = dict(params["unet_config"]["params"], use_checkpoint=False)
    unet = UNetModel(**u).eval()
    x = torch.randn(1, 8, t, h // 8, w // 8)
    ts, fss = torch.tensor([500]), torch.tensor([int(u.get("default_fs", 4))])
    ctx = [torch.randn(1, 77 + 16 * t, u["context_dim"]) for _ in range(2)]
    return timed(lambda: [unet(x, ts, context=c, fs=fss) for c in ctx], runs,
                 "UNet, cond then uncond: 2 calls of batch 1 (the original's DDIM)")


#: the original's utils/utils.py imports cv2 for functions never called here: an empty one stands in; its
#: AutoencoderKL is a pytorch_lightning LightningModule of which only the torch.nn.Module part runs here
REF_STUBS = {"cv2.py": "# stand-in: imported by the original utils/utils.py, unused here\n",
             "pytorch_lightning/__init__.py": "# stand-in: the original AutoencoderKL's base, used as a torch Module\n"
                                              "import torch\n\n\nclass LightningModule(torch.nn.Module):\n    pass\n"}


def worker(args) -> dict:
    """A child: the parts ``args.e2e_parts`` of ``args.e2e_worker`` -> ``{"parts": {part: figures}}``."""
    out = {}
    for part in args.e2e_parts.split(","):
        if args.e2e_worker == "ours":
            out[part] = ours_part(part, Path(args.config), args.frames, args.runs, args.mode, args.attention_chunk,
                                  args.split)
        else:
            out[part] = ref_part(part, Path(args.config), args.frames, args.runs)
    return {"parts": out}


def run(script: Path, args, default_config: Path) -> int:
    """The driver: every part of ours (and the original's with ``REF_SRC``), the summary table, the JSON key."""
    from common.bench import e2e_summary, e2e_table

    impls = ["ours"] + (["ref"] if os.environ.get("REF_SRC") and not args.tiny else [])
    config = TINY if args.tiny and Path(args.config).resolve() == default_config.resolve() else Path(args.config)

    def cmd(impl, parts):
        return [sys.executable, str(script), "--e2e", "--e2e_worker", impl, "--e2e_parts", ",".join(parts),
                "--config", str(config), "--runs", str(args.runs), "--mode", args.mode, "--split", str(args.split),
                "--attention_chunk", str(args.attention_chunk)] + (
                    ["--frames", str(args.frames)] if args.frames else [])
    t0 = time.perf_counter()
    parts = run_e2e_parts(cmd, impls, E2E_PARTS, together=args.tiny, timeout=args.timeout,
                          env_for=lambda i: reference_env(REF_STUBS, prefix="dc_ref_") if i == "ref" else None)
    summary = e2e_summary(parts, args.steps)
    machine = machine_info()
    print(f"DynamiCrafter time per video, {config.name}, {args.steps} DDIM steps with guidance, step in {args.mode}"
          f"{' (split)' if args.split > 1 else ''}; {machine_line(machine)}")
    print(e2e_table(summary, E2E_PARTS, {"ours": "ours", "ref": "original"}))
    result = {"machine": machine, "config": config.name, "steps": args.steps, "mode": args.mode, "split": args.split,
              "tiny": args.tiny, "parts": parts, "summary": summary, "wall_s": time.perf_counter() - t0}
    out = args.json or (None if args.tiny else HERE / "benchmark_results.json")
    if out:
        update_json(out, "e2e", result)
        print(f"wrote the 'e2e' key of {out}")
    return 0
