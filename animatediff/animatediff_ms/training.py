"""The motion-module training objective of the original ``train.py`` (one step, before the optimiser).

Plain functions, every random draw an argument, so a step is reproducible and a training loop
(``common.train.Trainer``) can wrap :func:`loss_and_grads`' objective. What one step of ``train.py`` computes:

1. ``latents = encode_videos(vae, pixel_values, noise_vae)``: frames ``(b f) c H W`` through the VAE, a
   posterior SAMPLE ``mean + std * noise``, ``* scaling_factor``, back to ``(b, 4, f, h, w)``;
2. captions tokenized (77, padded), a caption replaced by "" with probability ``cfg_random_null_text_ratio``
   (the caller's draw), ``encoder_hidden_states = text_encoder(input_ids)`` (frozen);
3. ``noisy = add_noise(noise_scheduler_kwargs, latents, noise, timesteps)`` (DDPM forward process with the
   config's betas; ``timesteps`` uniform in ``[0, num_train_timesteps)``, one per video);
4. ``model_out = unet(noisy, timesteps, encoder_hidden_states)`` with the UNet in train mode;
   ``loss = mean((model_out - noise)^2)`` (epsilon target);
5. gradients reach only the :func:`trainable_parameters` (names containing one of ``trainable_modules``);
   ``grad_norm`` is their total 2-norm, the value ``clip_grad_norm_(unet.parameters(), max_grad_norm)`` returns
   (clipping itself: :func:`common.train.clip_by_global_norm`).
"""
from __future__ import annotations

from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import ops

from common.schedulers.ddim import diffusers_alphas_cumprod
from common.train import global_norm

from .config import SchedulerConfig, TrainingConfig
from .loading import build_unet, load_unet_checkpoint


def _tensor(x, dtype=ms.float32):
    return x.astype(dtype) if isinstance(x, ms.Tensor) else ms.Tensor(np.asarray(x), dtype)


def _numpy(x) -> np.ndarray:
    return x.asnumpy() if isinstance(x, ms.Tensor) else np.asarray(x)


def encode_videos(vae, pixel_values, noise=None, *, scaling_factor: float, generator=None):
    """``train.py``'s latents: videos ``(b, f, 3, H, W)`` in [-1, 1] -> ``(b, 4, f, h, w)``.

    Args:
        vae: :class:`common.vae.AutoencoderKL`.
        pixel_values: the batch as the dataset gives it (frames before channels).
        noise: ``((b f), 4, h, w)`` N(0, 1) posterior draws (``latent_dist.sample()``); drawn when None.
        scaling_factor: the VAE config's ``scaling_factor`` (the original multiplies by 0.18215).
        generator: how to draw ``noise`` when it is None (int seed / numpy Generator).
    """
    x = _tensor(pixel_values)
    if x.ndim != 5:
        raise ValueError(f"pixel_values must be (b, f, c, H, W), got {tuple(x.shape)}")
    b, f, c, hh, ww = x.shape
    z = vae.encode_frames(x.reshape(b * f, c, hh, ww), noise, generator=generator,
                          scale_factor=scaling_factor)  # (b*f, 4, h, w)
    _, e, h, w = z.shape
    return z.reshape(b, f, e, h, w).transpose(0, 2, 1, 3, 4)  # (b, 4, f, h, w)


def trainable_parameters(unet, trainable_modules) -> list:
    """Freeze the UNet but the parameters whose name CONTAINS one of ``trainable_modules`` (the original's
    substring rule: ``"motion_modules."`` selects every motion-module weight); returns those, in the order
    of ``unet.parameters_and_names()``. Sets ``requires_grad`` as ``unet.requires_grad_(False)`` + the loop do."""
    mods = (trainable_modules,) if isinstance(trainable_modules, str) else tuple(trainable_modules)
    out = []
    for name, p in unet.parameters_and_names():
        p.requires_grad = any(m in name for m in mods)
        if p.requires_grad:
            out.append(p)
    return out


def add_noise(scheduler: SchedulerConfig | dict, latents, noise, timesteps):
    """``DDIMScheduler(**noise_scheduler_kwargs).add_noise``: ``sqrt(ac[t]) x + sqrt(1 - ac[t]) noise``, one
    ``t`` per batch element, ``alphas_cumprod`` in float32 from the config's betas."""
    cfg = SchedulerConfig.from_dict(scheduler) if isinstance(scheduler, dict) else scheduler
    ac = diffusers_alphas_cumprod(cfg.beta_schedule, cfg.num_train_timesteps, cfg.beta_start, cfg.beta_end,
                                  trained_betas=cfg.trained_betas)  # (T,) float32
    t = _numpy(timesteps).astype(np.int64).reshape(-1)
    if t.size and (t.min() < 0 or t.max() >= len(ac)):
        raise ValueError(f"timesteps must lie in [0, {len(ac)}) (num_train_timesteps), got {t.tolist()}")
    latents, noise = _tensor(latents), _tensor(noise)
    shape = (-1,) + (1,) * (latents.ndim - 1)
    a = ac[t]
    sa = ms.Tensor(np.sqrt(a).reshape(shape))
    s1a = ms.Tensor(np.sqrt(np.float32(1) - a).reshape(shape))
    return sa * latents + s1a * noise


def _step_inputs(text_encoder, scheduler, latents, noise, timesteps, input_ids):
    ehs = ops.stop_gradient(text_encoder(_tensor(input_ids, ms.int64)))  # (b, 77, D), frozen
    noisy = add_noise(scheduler, latents, noise, timesteps)  # (b, 4, f, h, w)
    return ehs, noisy, _tensor(timesteps, ms.int64), _tensor(noise)


def _mse(model_out, noise):
    return ops.mean(ops.square(model_out - noise))


def training_loss(unet, text_encoder, scheduler_kwargs, latents, noise, timesteps, input_ids) -> dict:
    """The loss of one step and its intermediates.

    Args:
        unet: the inflated UNet (put in train mode here, as the original's ``unet.train()``).
        text_encoder: CLIP text model (frozen). scheduler_kwargs: ``noise_scheduler_kwargs`` (dict or
            :class:`SchedulerConfig`).
        latents / noise: ``(b, 4, f, h, w)`` (:func:`encode_videos` output; the diffusion noise).
        timesteps: ``(b,)`` int. input_ids: ``(b, 77)`` token ids of the (possibly emptied) captions.

    Returns:
        ``{"encoder_hidden_states" (b, 77, D), "noisy_latents", "model_out" (b, 4, f, h, w), "loss" (0-d)}``.
    """
    ehs, noisy, t, noise = _step_inputs(text_encoder, scheduler_kwargs, latents, noise, timesteps, input_ids)
    unet.set_train(True)
    out = unet(noisy, t, ehs)
    return {"encoder_hidden_states": ehs, "noisy_latents": noisy, "model_out": out, "loss": _mse(out, noise)}


def loss_and_grads(unet, text_encoder, scheduler_kwargs, latents, noise, timesteps, input_ids, params=None):
    """:func:`training_loss`'s loss and its gradient w.r.t. ``params`` only (default: the UNet's parameters
    with ``requires_grad``, i.e. :func:`trainable_parameters`), before clipping.

    Returns:
        ``(loss 0-d, grads tuple in the order of params, grad_norm 0-d)``.
    """
    if params is None:
        params = [p for _, p in unet.parameters_and_names() if p.requires_grad]
    if not params:
        raise ValueError("loss_and_grads: no trainable parameter (see trainable_parameters)")
    ehs, noisy, t, noise = _step_inputs(text_encoder, scheduler_kwargs, latents, noise, timesteps, input_ids)
    unet.set_train(True)

    def objective(noisy, t, ehs, noise):
        return _mse(unet(noisy, t, ehs), noise)

    grad_fn = ms.value_and_grad(objective, grad_position=None, weights=ms.ParameterTuple(params))
    loss, grads = grad_fn(noisy, t, ehs, noise)
    return loss, tuple(grads), global_norm(grads)


def build_training_unet(cfg: TrainingConfig, base_dir=".", pretrained_model_path=None):
    """``train.py``'s UNet: ``from_pretrained_2d(pretrained_model_path, unet_additional_kwargs)``, then
    ``unet_checkpoint_path`` (when set), then the trainable set. Relative paths resolve against ``base_dir``.

    Returns:
        ``(unet, trainable parameters)``.
    """
    base = Path(base_dir)
    unet = build_unet(base / (pretrained_model_path or cfg.pretrained_model_path), cfg.unet_additional_kwargs)
    if cfg.unet_checkpoint_path:
        load_unet_checkpoint(unet, base / cfg.unet_checkpoint_path)
    return unet, trainable_parameters(unet, cfg.trainable_modules)
