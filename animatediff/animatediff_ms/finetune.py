"""The pieces ``train.py`` puts on :class:`common.train.Trainer`: the loss Cell, the host-side batch step (VAE,
captions, noise, timesteps), the motion-module / MotionLoRA files and the validation GIFs.

One optimizer step is the original ``train.py``'s: for every clip of the batch (``keys`` = its (epoch, index)),
a generator ``default_rng([seed, 1, epoch, index])`` draws, in this order, the caption drop (``cfg_random_null_text``
with ``cfg_random_null_text_ratio``), the VAE posterior noise, the diffusion noise and the timestep (uniform in
``[0, num_train_timesteps)``). Keying the draws on the clip, not on the process, makes a data-parallel run
(each rank its share of the batch) equal one process on the whole batch, and a resumed run equal an unbroken one.
The frozen VAE and text encoder run here, outside the gradient; the loss Cell holds only the UNet:
``mse(unet(add_noise(latents, noise, t), t, text_encoder(ids)), noise)``.
"""
from __future__ import annotations

from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import nn, ops

from common.checkpoint import save_safetensors_atomic
from common.vae import SD_SCALE_FACTOR

from . import training as T
from .loading import is_motion_param
from .motion_lora import motion_lora_state_dict

__all__ = ["MotionLoss", "use_mixed_precision", "make_batch_fn", "motion_module_state_dict", "save_motion_module", "save_motion_lora",
           "write_validation_samples"]


class MotionLoss(nn.Cell):
    """``loss(noisy (b, 4, f, h, w), timesteps (b,), encoder_hidden_states (b, 77, D), noise) -> mean (eps - noise)^2``
    (``F.mse_loss(model_pred.float(), noise.float())``)."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def construct(self, noisy, timesteps, encoder_hidden_states, noise):
        out = self.unet(noisy, timesteps, encoder_hidden_states)
        return ops.mean(ops.square(out.astype(ms.float32) - noise))


def use_mixed_precision(unet) -> int:
    """``mixed_precision_training``: the UNet computes in float16 (float32 master weights, the Trainer's loss
    scaling), except its GroupNorm / LayerNorm cells, which stay float32 as under torch's autocast (their backward
    overflows float16 on small groups: 1/sqrt(var + eps) cubed). Returns the number of norm cells kept float32."""
    unet.to_float(ms.float16)
    kept = 0
    for _, cell in unet.cells_and_names():
        if type(cell).__name__.endswith("Norm"):  # GroupNorm, LayerNorm, VideoGroupNorm
            cell.to_float(ms.float32)
            kept += 1
    return kept


def clip_draws(seed: int, key, n_frames: int, latent_hw: tuple[int, int], cfg) -> dict:
    """The random draws of one clip (see the module docstring for the order)."""
    rng = np.random.default_rng([int(seed), 1, int(key[0]), int(key[1])])
    h, w = latent_hw
    drop = bool(cfg.cfg_random_null_text) and bool(rng.random() < cfg.cfg_random_null_text_ratio)
    vae_noise = rng.standard_normal((n_frames, 4, h, w)).astype(np.float32)  # (f, 4, h, w)
    noise = rng.standard_normal((4, n_frames, h, w)).astype(np.float32)  # (4, f, h, w)
    t = int(rng.integers(0, cfg.noise_scheduler_kwargs.num_train_timesteps))
    return {"drop": drop, "vae_noise": vae_noise, "noise": noise, "t": t}


def make_batch_fn(vae, text_encoder, tokenize, cfg, seed: int, scale_factor: int = 8):
    """``batch_fn((pixel_values (B, f, 3, H, W), captions, keys (B, 2)), rng) -> (noisy, t, ehs, noise)`` for the
    :class:`MotionLoss` (the Trainer's own ``rng`` is not used: the draws are keyed on the clips).

    Args:
        tokenize: ``text -> (1, 77)`` ids (``AnimationPipeline.tokenize``). scale_factor: pixels per latent.
    """

    def batch_fn(batch, _rng):
        pixels, captions, keys = batch
        b, f, _, hh, ww = pixels.shape
        draws = [clip_draws(seed, k, f, (hh // scale_factor, ww // scale_factor), cfg) for k in keys]
        texts = ["" if d["drop"] else c for d, c in zip(draws, captions)]
        ids = np.concatenate([np.asarray(tokenize(t)) for t in texts])  # (b, 77)
        vae_noise = np.concatenate([d["vae_noise"] for d in draws])  # (b*f, 4, h, w)
        latents = T.encode_videos(vae, pixels, vae_noise, scaling_factor=SD_SCALE_FACTOR)  # (b, 4, f, h, w)
        noise = np.stack([d["noise"] for d in draws])  # (b, 4, f, h, w)
        t = np.array([d["t"] for d in draws], np.int64)
        ehs = text_encoder(ms.Tensor(ids, ms.int64))  # (b, 77, D), frozen
        noisy = T.add_noise(cfg.noise_scheduler_kwargs, latents, noise, t)
        return noisy, ms.Tensor(t), ehs, ms.Tensor(noise)

    return batch_fn


def motion_module_state_dict(unet) -> dict[str, np.ndarray]:
    """The released motion-module layout (``mm_*.ckpt``): every ``motion_modules.`` parameter of the UNet, float32,
    no MotionLoRA keys and no ``pos_encoder.pe`` tables (rebuilt on load; the original's ``train.py`` refuses them
    as ``unet_checkpoint_path``, so a saved file can start another training run too)."""
    return {n: p.asnumpy().astype(np.float32) for n, p in unet.parameters_and_names()
            if is_motion_param(n) and ".processor." not in n}


def save_motion_module(unet, path) -> Path:
    """Write :func:`motion_module_state_dict` atomically (temp + fsync + rename) as safetensors."""
    return save_safetensors_atomic(motion_module_state_dict(unet), str(path))


def save_motion_lora(unet, path) -> Path:
    """Write the MotionLoRA in the released key layout atomically (safetensors)."""
    return save_safetensors_atomic(motion_lora_state_dict(unet), str(path))


def write_validation_samples(pipeline, cfg, step: int, out_dir, say=print) -> list[Path]:
    """The original's validation: the prompts (the first two before step 1000), ``sample_n_frames`` frames at
    ``sample_size``, DDIM with ``noise_scheduler_kwargs``, each prompt's noise seeded by ``global_seed`` (the original
    draws the prompts one after the other from one generator); one GIF per prompt at
    ``<out_dir>/samples/sample-<step>/<i>.gif`` and all of them side by side in ``samples/sample-<step>.gif``. The UNet is put back in train mode afterwards."""
    from common.video_io import save_videos_grid

    v, d = cfg.validation_data, cfg.train_data
    prompts = list(v.prompts[:2] if step < 1000 else v.prompts)
    h, w = d.size
    folder = Path(out_dir) / "samples" / f"sample-{step}"
    paths, videos = [], []
    pipeline.unet.set_train(False)
    try:
        for i, prompt in enumerate(prompts):
            out = pipeline(prompt, num_frames=d.sample_n_frames, height=h, width=w,
                           num_inference_steps=v.num_inference_steps, guidance_scale=v.guidance_scale,
                           seed=cfg.global_seed, progress=False)
            frames = np.asarray(out.frames).transpose(0, 4, 1, 2, 3)  # (1, 3, f, H, W) in [0, 1]
            videos.append(frames)
            paths.append(save_videos_grid(frames, folder / f"{i}.gif", fps=8, value_range=(0, 1)))
        if videos:  # all prompts side by side, as the original's samples/sample-<step>.gif
            paths.append(save_videos_grid(np.concatenate(videos), folder.with_suffix(".gif"), fps=8, value_range=(0, 1)))
    finally:
        pipeline.unet.set_train(True)
    if paths:
        say(f"step {step}: validation samples in {folder.absolute()}")
    return paths

