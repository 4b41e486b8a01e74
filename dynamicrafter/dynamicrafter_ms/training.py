"""The fine-tuning loss of ``LatentVisualDiffusion`` (``shared_step`` -> ``get_batch_input`` -> ``p_losses``).

Plain functions over a :class:`~dynamicrafter_ms.model.DynamiCrafter`, with every random draw injectable
(and drawn from a numpy Generator when not given), so one step is reproducible and a ``train.py`` can wrap
:func:`training_loss` in a ``Cell`` for ``value_and_grad``. What one step computes:

1. ``z = encode_first_stage(video)`` (VAE posterior sample, scaled);
2. conditioning dropout from ONE uniform draw ``r`` per sample and ``p = uncond_prob``: text replaced by the
   embedding of ``""`` where ``r < 2p``; conditioning image zeroed (mid-grey through CLIP + Resampler) where
   ``p <= r < 3p``; so text only, both, image only each with probability p. ``c_concat`` is never dropped;
3. ``context = [text | image tokens of video[:, :, cond_frame_index]]``; ``c_concat`` = the latent of the
   conditioning frame repeated (``interp_mode``: first and last frame latents, zeros between);
4. ``x_start = z * scale_arr[t]`` (dynamic rescale, BEFORE noising); ``x_noisy = q_sample(x_start, t, noise)``;
5. ``model_out = UNet(cat(x_noisy, c_concat), t, context, fs = int(fps))``; target ``v`` (or ``eps``);
6. ``loss_per_sample`` = mean of ``(model_out - target)^2`` over (C, T, h, w);
   ``loss = l_simple_weight * mean(loss_per_sample / exp(logvar[t]) + logvar[t]) + original_elbo_weight * loss_vlb``
   with ``loss_vlb = mean(lvlb_weights[t] * loss_per_sample)``.
"""
from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import ops

from .model import image_latent_condition


def _tensor(x, dtype=ms.float32):
    return x.astype(dtype) if isinstance(x, ms.Tensor) else ms.Tensor(np.asarray(x), dtype)


def _at(buffer, t):
    """``buffer[t]`` shaped (B, 1, 1, 1, 1) to broadcast over (B, C, T, h, w) (``extract_into_tensor``)."""
    return ops.gather(buffer, t, 0).reshape(-1, 1, 1, 1, 1)


def dropout_masks(random_num, uncond_prob: float):
    """Conditioning dropout of ``get_batch_input`` from one uniform draw per sample.

    Returns ``(drop_text (B,) bool, keep_image (B,) float32)``: text dropped where ``r < 2p``, image dropped
    (``keep_image`` 0) where ``p <= r < 3p``.
    """
    r = np.asarray(random_num, np.float32)
    p = float(uncond_prob)
    drop_text = r < 2 * p
    keep_image = 1.0 - ((r >= p) & (r < 3 * p)).astype(np.float32)
    return drop_text, keep_image


def draw_randoms(model, batch_size: int, num_frames: int, generator: np.random.Generator,
                 random_uncond: bool = True) -> dict:
    """The draws of one step that do not depend on the latent's shape: ``random_num`` (B,) uniform
    (ones without ``random_uncond``: nothing dropped), ``cond_frame_index`` (``rand_cond_frame``: uniform in
    ``[0, temporal_length - 1]`` of the UNet config, as the original's ``random.randint``, capped to the
    video's frames; else 0) and ``t`` (B,) uniform in ``[0, num_timesteps)``."""
    d = model.cfg.diffusion
    random_num = (generator.random(batch_size).astype(np.float32) if random_uncond
                  else np.ones(batch_size, np.float32))
    index = 0
    if d.rand_cond_frame:
        index = int(generator.integers(0, min(model.cfg.unet.temporal_length, num_frames)))
    t = generator.integers(0, model.num_timesteps, batch_size).astype(np.int64)
    return {"random_num": random_num, "cond_frame_index": index, "t": t}


def frozen_conditioning(model, video, captions, random_num, cond_frame_index: int = 0, encode_noise=None,
                        generator: np.random.Generator | None = None) -> dict:
    """The frozen half of ``get_batch_input`` (no trainable parameter is used, so a trainer runs it outside the
    gradient): ``{"z", "c_concat", "text" (B, 77, D) with the text dropout applied, "image_tokens" (B, N, W)
    the CLIP tokens of the (possibly zeroed) conditioning frame}``. Arguments as :func:`get_batch_input`."""
    video = _tensor(video)
    t = video.shape[2]
    if not 0 <= cond_frame_index < t:
        raise ValueError(f"cond_frame_index {cond_frame_index} is outside the video's {t} frames")
    z = model.encode_first_stage(video, noise=encode_noise, generator=generator)  # (B, 4, T, h, w)
    drop_text, keep_image = dropout_masks(random_num, model.cfg.diffusion.uncond_prob)
    text = model.get_learned_conditioning(list(captions))  # (B, 77, D)
    null = model.get_learned_conditioning([""])  # (1, 77, D)
    text = ops.where(ms.Tensor(drop_text[:, None, None]), ops.broadcast_to(null, text.shape), text)
    img = video[:, :, cond_frame_index] * ms.Tensor(keep_image[:, None, None, None])  # (B, 3, H, W)
    c_concat = image_latent_condition(z, key_frames=model.cfg.diffusion.interp_mode, index=cond_frame_index)
    return {"z": z, "c_concat": c_concat, "text": text, "image_tokens": model.embedder(img)}


def get_batch_input(model, video, captions, random_num, cond_frame_index: int = 0, encode_noise=None,
                    generator: np.random.Generator | None = None) -> dict:
    """``LatentVisualDiffusion.get_batch_input``: the clean latent and the conditioning of a training batch.

    Args:
        model: DynamiCrafter.
        video: (B, 3, T, H, W) in [-1, 1].
        captions: B strings.
        random_num: (B,) the dropout draw (:func:`dropout_masks`); ones = no dropout.
        cond_frame_index: the conditioning frame (0 unless ``rand_cond_frame``).
        encode_noise: (B, 4, T, h, w) VAE posterior draws (drawn from ``generator`` when None).

    Returns:
        ``{"z" (B, 4, T, h, w), "c_concat" (B, 4, T, h, w), "context" (B, 77 + 16*T, D)}``.
    """
    f = frozen_conditioning(model, video, captions, random_num, cond_frame_index, encode_noise, generator)
    context = ops.concat([f["text"], model.image_proj_model(f["image_tokens"])], axis=1)
    return {"z": f["z"], "c_concat": f["c_concat"], "context": context}


def q_sample(model, x_start, t, noise):
    """``x_t = sqrt(ac[t]) x_start + sqrt(1 - ac[t]) noise`` from the model's float32 buffers."""
    return _at(model.sqrt_alphas_cumprod, t) * x_start + _at(model.sqrt_one_minus_alphas_cumprod, t) * noise


def diffusion_target(model, x_start, t, noise):
    """The regression target: ``v = sqrt(ac[t]) noise - sqrt(1 - ac[t]) x_start`` (v-models) or ``noise`` (eps)."""
    if model.parameterization == "v":
        return _at(model.sqrt_alphas_cumprod, t) * noise - _at(model.sqrt_one_minus_alphas_cumprod, t) * x_start
    return noise


def lvlb_weights(model) -> np.ndarray:
    """The per-timestep VLB weights (``DDPM.register_schedule``): ones for v; for eps
    ``betas^2 / (2 post_var alphas (1 - ac))`` with entry 0 copied from entry 1."""
    if model.parameterization == "v":
        return np.ones(model.num_timesteps, np.float32)
    betas, ac, var = (model.buffer(n).astype(np.float64) for n in ("betas", "alphas_cumprod", "posterior_variance"))
    with np.errstate(divide="ignore", invalid="ignore"):
        w = betas ** 2 / (2 * var * (1.0 - betas) * (1.0 - ac))
    w[0] = w[1]
    return w.astype(np.float32)


def training_loss(model, video, captions, fps, *, random_num=None, cond_frame_index: int | None = None, t=None,
                  noise=None, encode_noise=None, generator: np.random.Generator | None = None,
                  random_uncond: bool = True) -> dict:
    """One ``shared_step(batch, random_uncond)``: the loss and every intermediate.

    Args:
        model: DynamiCrafter (UNet dropout follows its train/eval mode).
        video / captions / fps: the batch: (B, 3, T, H, W) in [-1, 1], B strings, (B,) fps (or frame stride for
            ``fps_condition_type: fs``), cast to int as the original's ``.float().long()``.
        random_num / cond_frame_index / t: the draws of :func:`draw_randoms` (drawn from ``generator`` when None).
        noise: (B, 4, T, h, w) diffusion noise (drawn when None). encode_noise: VAE posterior draws (drawn when None).
        random_uncond: conditioning dropout on (``classifier_free_guidance``, i.e. ``uncond_prob > 0``).

    Returns:
        dict of Tensors: ``loss``, ``loss_simple``, ``loss_vlb`` (0-d), ``loss_per_sample`` (B,), ``x_start``,
        ``x_noisy``, ``target``, ``model_out``, ``c_concat`` (B, 4, T, h, w), ``context`` (B, L, D), ``t`` (B,).
    """
    rng = generator if generator is not None else np.random.default_rng()
    b, _, frames = np.shape(video)[:3]
    draws = draw_randoms(model, b, frames, rng, random_uncond)
    random_num = draws["random_num"] if random_num is None else random_num
    cond_frame_index = draws["cond_frame_index"] if cond_frame_index is None else int(cond_frame_index)
    t = ms.Tensor(np.asarray(draws["t"] if t is None else t, np.int64))
    batch = get_batch_input(model, video, captions, random_num, cond_frame_index, encode_noise, rng)
    z = batch["z"]
    fs = ms.Tensor(np.asarray(fps, np.float32).astype(np.int64))
    x_start = z * _at(model.scale_arr, t) if model.use_dynamic_rescale else z
    noise = _tensor(rng.standard_normal(tuple(z.shape)).astype(np.float32) if noise is None else noise)
    x_noisy = q_sample(model, x_start, t, noise)
    model_out = model.apply_model(x_noisy, t, batch["c_concat"], batch["context"], fs)
    target = diffusion_target(model, x_start, t, noise)
    per_sample = ((model_out - target) ** 2).mean(axis=(1, 2, 3, 4))  # (B,)
    d = model.cfg.diffusion
    logvar_t = ops.fill(ms.float32, (b,), float(d.logvar_init))  # learn_logvar would make it a parameter
    loss = d.l_simple_weight * (per_sample / ops.exp(logvar_t) + logvar_t).mean()
    loss_vlb = (ops.gather(ms.Tensor(lvlb_weights(model)), t, 0) * per_sample).mean()
    loss = loss + d.original_elbo_weight * loss_vlb
    return {"loss": loss, "loss_simple": per_sample.mean(), "loss_vlb": loss_vlb, "loss_per_sample": per_sample,
            "x_start": x_start, "x_noisy": x_noisy, "target": target, "model_out": model_out,
            "c_concat": batch["c_concat"], "context": batch["context"], "t": t}
