"""DynamiCrafter fine-tuning on :mod:`common.train`: what is trained, the loss cell, and the host half of a step.

A batch of :class:`~dynamicrafter_ms.webvid.WebVidLoader` ``(video (B, 3, T, H, W), captions, fps (B,),
frame_stride (B,), keys (B, 2))`` becomes, on the host and outside the gradient (:func:`make_batch_fn`),
the frozen half of ``get_batch_input`` (:func:`~dynamicrafter_ms.training.frozen_conditioning`: VAE latent,
``c_concat``, dropped-out text context, CLIP tokens of the conditioning frame), the timesteps and the
noise. :class:`DiffusionLoss` then runs the trainable half: the Resampler, the dynamic rescale,
``q_sample``, the UNet and the loss of :func:`~dynamicrafter_ms.training.training_loss`.

Draws: ``random_num``, ``t``, the VAE posterior draws and the noise of each clip come from
``default_rng([seed, 11, epoch, index])`` of that clip, so a step does not depend on how the clips are split
over ranks; the conditioning frame (``rand_cond_frame``) is drawn once per micro-batch from the Trainer's
step generator (the original draws one per batch and process).

Trainable (``configure_optimizers``): the UNet, plus the Resampler with ``image_proj_model_trainable``;
the VAE and both CLIP towers stay frozen (eval mode), the UNet and Resampler train (dropout on).
"""
from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import nn, ops

from common.config import ConfigError

from .training import _at, diffusion_target, draw_randoms, frozen_conditioning, lvlb_weights, q_sample


def check_trainable(cfg, where: str = "model.params") -> None:
    """Refuse the training options this port does not run (none of the released configs sets them)."""
    d = cfg.diffusion
    if d.cond_stage_trainable:
        raise ConfigError(f"{where}.cond_stage_trainable: true is not supported (the text encoder stays frozen)")
    if d.learn_logvar:
        raise ConfigError(f"{where}.learn_logvar: true is not supported (logvar is the constant logvar_init)")


def trainable_parameters(model) -> list:
    """The UNet's parameters and, with ``image_proj_model_trainable``, the Resampler's."""
    params = list(model.model.get_parameters())
    if model.cfg.diffusion.image_proj_model_trainable:
        params += list(model.image_proj_model.get_parameters())
    return params


def describe_parameters(model, params) -> str:
    """One line: tensors and values trained out of the whole model's."""
    n = sum(int(np.prod(p.shape)) for p in params)
    total = sum(int(np.prod(p.shape)) for p in model.get_parameters())
    return f"training {len(params)} tensors / {n:,} parameters of {total:,} ({100.0 * n / max(total, 1):.1f}%)"


def set_train_mode(model) -> None:
    """Frozen parts in eval mode, the UNet and the Resampler in train mode (dropout on)."""
    model.set_train(False)
    model.model.set_train(True)
    model.image_proj_model.set_train(True)


class DiffusionLoss(nn.Cell):
    """The trainable half of one step: ``construct(z, c_concat, text, image_tokens, fs, t, noise) -> loss``.

    z / c_concat / noise: (B, 4, T, h, w); text: (B, 77, D); image_tokens: (B, N, W) CLIP tokens;
    fs: (B,) int64; t: (B,) int64. The loss is ``training_loss``'s (l_simple_weight, logvar_init,
    original_elbo_weight with the VLB weights).
    """

    def __init__(self, model):
        super().__init__(auto_prefix=False)
        self.dc = model
        d = model.cfg.diffusion
        self.rescale = bool(model.use_dynamic_rescale)
        self.l_simple = float(d.l_simple_weight)
        self.logvar = float(d.logvar_init)
        self.elbo = float(d.original_elbo_weight)
        self.lvlb = ms.Tensor(lvlb_weights(model))

    def construct(self, z, c_concat, text, image_tokens, fs, t, noise):
        m = self.dc
        context = ops.concat([text, m.image_proj_model(image_tokens)], axis=1)  # (B, 77 + 16T, D)
        x_start = z * _at(m.scale_arr, t) if self.rescale else z
        x_noisy = q_sample(m, x_start, t, noise)
        out = m.apply_model(x_noisy, t, c_concat, context, fs)
        target = diffusion_target(m, x_start, t, noise)
        per_sample = ((out - target) ** 2).mean(axis=(1, 2, 3, 4))  # (B,)
        loss = self.l_simple * (per_sample / float(np.exp(self.logvar)) + self.logvar).mean()
        if self.elbo:
            loss = loss + self.elbo * (ops.gather(self.lvlb, t, 0) * per_sample).mean()
        return loss


def clip_draws(model, key, frames: int, latent_hw: tuple[int, int], seed: int) -> dict:
    """The per-clip draws from ``default_rng([seed, 11, epoch, index])``: ``random_num``, ``t``,
    ``encode_noise`` and ``noise`` (each (4, T, h, w))."""
    r = np.random.default_rng([seed, 11, int(key[0]), int(key[1])])
    d = model.cfg.diffusion
    shape = (model.cfg.autoencoder.embed_dim, frames, *latent_hw)
    return {"random_num": np.float32(r.random()) if d.uncond_prob > 0 else np.float32(1.0),
            "t": np.int64(r.integers(0, model.num_timesteps)),
            "encode_noise": r.standard_normal(shape, dtype=np.float32),
            "noise": r.standard_normal(shape, dtype=np.float32)}


def make_batch_fn(model, seed: int):
    """``batch_fn(batch, rng) -> DiffusionLoss inputs`` for :class:`common.train.Trainer`."""
    d = model.cfg.diffusion
    down = 2 ** (len(model.cfg.autoencoder.ddconfig.ch_mult) - 1)

    def batch_fn(batch, rng):
        video, captions, fps, stride, keys = batch
        video = np.asarray(video, np.float32)
        b, _, frames, hh, ww = video.shape
        draws = [clip_draws(model, k, frames, (hh // down, ww // down), seed) for k in np.asarray(keys)]
        index = draw_randoms(model, b, frames, rng)["cond_frame_index"] if d.rand_cond_frame else 0
        stack = {k: np.stack([dr[k] for dr in draws]) for k in draws[0]}
        f = frozen_conditioning(model, video, list(captions), stack["random_num"], index, stack["encode_noise"])
        cond = np.asarray(fps if d.fps_condition_type == "fps" else stride, np.float32).astype(np.int64)
        return (ops.stop_gradient(f["z"]), ops.stop_gradient(f["c_concat"]), ops.stop_gradient(f["text"]),
                ops.stop_gradient(f["image_tokens"]), ms.Tensor(cond), ms.Tensor(stack["t"]),
                ms.Tensor(stack["noise"]))

    return batch_fn


def export_weights(model, path, overrides: dict | None = None):
    """The whole model in the released key layout (``load_weights`` reads it), ``overrides`` (e.g. the EMA)
    replacing trained parameters; written atomically."""
    from common.checkpoint import save_safetensors_atomic

    overrides = overrides or {}
    return save_safetensors_atomic({p.name: np.asarray(overrides.get(p.name, p.asnumpy()), np.float32)
                                    for p in model.get_parameters()}, path)
