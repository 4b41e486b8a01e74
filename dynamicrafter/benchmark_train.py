"""``benchmark.py --train``: one fine-tuning step of the FULL-size 256 model (1 video x 16 frames, batch 1).

    python benchmark.py --train                        # PyNative and graph, with and without checkpointing
    REF_SRC=/path/to/DynamiCrafter python benchmark.py --train     # + the original's step (PyTorch)

The step is what ``train.py`` runs under the gradient (:class:`dynamicrafter_ms.finetune.DiffusionLoss`): the
Resampler on the CLIP tokens of the conditioning frame, the dynamic rescale / ``q_sample``, the UNet (dropout on,
as in training), the loss, the backward pass and the AdamW update of the UNet + Resampler (random float32
weights). The frozen encoders (VAE, both CLIP towers) run once per batch outside the gradient and are not timed.
Inputs: latent (1, 4, 16, 32, 32), text context (1, 77, 1024), 257 CLIP tokens of width 1280, one timestep.
Each variant runs in its own process: peak memory (max RSS) is per variant. The original's step: its UNetModel
(``use_checkpoint`` as the variant) and Resampler, the same loss, ``loss.backward()`` and ``torch.optim.AdamW``.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from common.bench import machine_info, machine_line, peak_rss_gib, reference_env, run_child, time_calls

VARIANTS = ("pynative", "pynative+ckpt", "graph", "graph+ckpt")
TOKENS = 257  # CLIP ViT-H-14 at 224: 1 + 16 x 16 tokens


#: the original's utils/utils.py imports cv2 for functions the model never calls: an empty one stands in
REF_STUBS = {"cv2.py": "# stand-in: imported by the original utils/utils.py, unused here\n"}


def _inputs(cfg, frames: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    h, w = cfg.diffusion.image_size if cfg.diffusion.image_size is not None else (32, 32)
    lat = (1, cfg.autoencoder.embed_dim, frames, int(h), int(w))
    return {"z": rng.standard_normal(lat).astype(np.float32), "c_concat": rng.standard_normal(lat).astype(np.float32),
            "text": rng.standard_normal((1, 77, cfg.unet.context_dim)).astype(np.float32),
            "tokens": rng.standard_normal((1, TOKENS, cfg.resampler.embedding_dim)).astype(np.float32),
            "fs": np.array([3], np.int64), "t": np.array([500], np.int64),
            "noise": rng.standard_normal(lat).astype(np.float32)}


def _trainable_model(cfg):
    """The parts of DynamiCrafter that train (UNet, Resampler) and the schedule, without the frozen encoders."""
    import mindspore as ms
    from dynamicrafter_ms.model import DiffusionWrapper
    from dynamicrafter_ms.resampler import Resampler
    from dynamicrafter_ms.schedule import ddpm_buffers
    from dynamicrafter_ms.unet import UNetModel
    from mindspore import Parameter, nn

    class Trainable(nn.Cell):
        def __init__(self):
            super().__init__()
            d = cfg.diffusion
            self.cfg = cfg
            self.model = DiffusionWrapper(UNetModel(cfg.unet))
            self.image_proj_model = Resampler(cfg.resampler)
            self.parameterization, self.use_dynamic_rescale = d.parameterization, d.use_dynamic_rescale
            self.num_timesteps = int(d.timesteps)
            for name, value in ddpm_buffers(d).items():
                setattr(self, name, Parameter(ms.Tensor(value), name=name, requires_grad=False))

        @property
        def unet(self):
            return self.model.diffusion_model

        def buffer(self, name):
            return getattr(self, name).asnumpy()

        def apply_model(self, x, t, c_concat, context, fs):
            return self.model(x, t, c_concat, context, fs)

    return Trainable()


def worker_ms(config: Path, variant: str, frames: int, runs: int) -> dict:
    """Our step in ``variant`` (pynative | graph, ``+ckpt`` = gradient checkpointing)."""
    import mindspore as ms
    from dynamicrafter_ms.config import DynamiCrafterConfig
    from dynamicrafter_ms.finetune import DiffusionLoss

    from common.nn import set_attention
    from common.train import AdamW, use_reseedable_dropout

    graph = variant.startswith("graph")
    ms.set_context(mode=ms.PYNATIVE_MODE)
    ms.runtime.launch_blocking()
    t0 = time.perf_counter()
    cfg = DynamiCrafterConfig.from_yaml(config)
    model = _trainable_model(cfg)
    set_attention(model, "math", chunk_size=None)
    use_reseedable_dropout(model, host_seeds=not graph)
    model.set_train(True)
    model.unet.set_recompute(variant.endswith("+ckpt"))
    params = list(model.model.get_parameters()) + list(model.image_proj_model.get_parameters())
    opt = AdamW(params, 1e-5)
    grad_fn = ms.value_and_grad(DiffusionLoss(model), None, params)
    if graph:
        grad_fn = ms.jit(grad_fn)
    x = _inputs(cfg, frames)
    args = [ms.Tensor(x[k]) for k in ("z", "c_concat", "text", "tokens", "fs", "t", "noise")]
    build = time.perf_counter() - t0

    def step():
        loss, grads = grad_fn(*args)
        opt.step(grads, 1e-5)
        return float(loss.asnumpy())

    losses = []
    timed = time_calls(lambda: losses.append(step()), runs)
    del timed["result"]
    return {"variant": variant, "build_s": build, **timed, "peak_rss_gb": peak_rss_gib(), "loss": losses[0],
            "trainable_params": int(sum(p.size for p in params))}


def worker_ref(config: Path, variant: str, frames: int, runs: int) -> dict:
    """The original's step (REF_SRC): its UNet (``use_checkpoint`` per variant) and Resampler, AdamW."""
    import numpy as np
    import torch
    import yaml
    from dynamicrafter_ms.schedule import ddpm_buffers

    try:
        from lvdm.modules.encoders.resampler import Resampler as RefResampler
        from lvdm.modules.networks.openaimodel3d import UNetModel as RefUNet
    except ImportError as e:
        raise SystemExit(f"error: cannot import the original from REF_SRC={os.environ.get('REF_SRC')}: {e} "
                         f"(it needs einops: pip install --no-deps einops)") from None
    from dynamicrafter_ms.config import DynamiCrafterConfig

    cfg = DynamiCrafterConfig.from_yaml(config)
    params = yaml.safe_load(Path(config).read_text())["model"]["params"]
    up = dict(params["unet_config"]["params"])
    up["use_checkpoint"] = variant.endswith("+ckpt")
    t0 = time.perf_counter()
    torch.manual_seed(0)
    unet = RefUNet(**up).train()
    resampler = RefResampler(**params["image_proj_stage_config"]["params"]).train()
    trained = list(unet.parameters()) + list(resampler.parameters())
    opt = torch.optim.AdamW(trained, lr=1e-5)
    build = time.perf_counter() - t0
    x = {k: torch.from_numpy(v) for k, v in _inputs(cfg, frames).items()}
    ac = torch.from_numpy(np.asarray(ddpm_buffers(cfg.diffusion)["alphas_cumprod"]))
    a, s = ac[x["t"]].sqrt().view(-1, 1, 1, 1, 1), (1 - ac[x["t"]]).sqrt().view(-1, 1, 1, 1, 1)

    def step():
        opt.zero_grad(set_to_none=True)
        context = torch.cat([x["text"], resampler(x["tokens"])], dim=1)
        noisy = a * x["z"] + s * x["noise"]
        out = unet(torch.cat([noisy, x["c_concat"]], dim=1), x["t"], context=context, fs=x["fs"])
        target = a * x["noise"] - s * x["z"] if cfg.diffusion.parameterization == "v" else x["noise"]
        loss = ((out - target) ** 2).mean()
        loss.backward()
        opt.step()
        return float(loss)

    losses = []
    timed = time_calls(lambda: losses.append(step()), runs)
    del timed["result"]
    return {"variant": "torch" + variant[len("pynative"):], "torch": torch.__version__, "threads": torch.get_num_threads(),
            "build_s": build, **timed, "peak_rss_gb": peak_rss_gib(), "loss": losses[0],
            "trainable_params": int(sum(p.numel() for p in trained))}


def spawn(script: Path, config: Path, kind: str, variant: str, frames: int, runs: int) -> dict:
    """Run one variant in a fresh process (``benchmark.py --train --worker ...``); its figures or ``{"error"}``."""
    cmd = [sys.executable, str(script), "--train", "--worker", f"train_{kind}", "--variant", variant,
           "--config", str(config), "--train_frames", str(frames), "--runs", str(runs)]
    name = variant if kind == "ms" else "torch" + variant[len("pynative"):]
    env = reference_env(REF_STUBS, prefix="dc_ref_") if kind == "ref" else None
    return {"variant": name, **run_child(cmd, env=env, label=f"{kind} {variant}")}


def run_all(script: Path, config: Path, variants, frames: int, runs: int, json_path=None) -> list[dict]:
    """Every variant of ours (and of the original with REF_SRC: pynative / pynative+ckpt); prints the table."""
    machine = machine_info()
    rows = []
    for v in variants:
        rows.append(spawn(script, config, "ms", v, frames, runs))
        print(f"done: {v} {rows[-1].get('median_s', rows[-1].get('error'))}", file=sys.stderr)
    if os.environ.get("REF_SRC"):
        for v in [v for v in variants if v.startswith("pynative")]:
            rows.append(spawn(script, config, "ref", v, frames, runs))
    print(f"DynamiCrafter training step of {Path(config).name} (UNet + Resampler trained), 1 video x {frames} frames, "
          f"float32, {machine_line(machine)}")
    print(f"{'variant':16s} {'median s/step':>14s} {'first call s':>12s} {'peak RSS GB':>12s} {'loss':>10s}")
    for r in rows:
        if "error" in r:
            print(f"{r['variant']:16s} did not run: {r['error']}")
            continue
        print(f"{r['variant']:16s} {r['median_s']:14.2f} {r['first_call_s']:12.2f} {r['peak_rss_gb']:12.2f} {r['loss']:10.4g}")
    if json_path:
        from common.bench import update_json

        for key, value in {"machine": machine, "config": str(config), "frames": frames, "results": rows}.items():
            update_json(json_path, key, value)  # other keys (e.g. e2e) stay
    return rows
