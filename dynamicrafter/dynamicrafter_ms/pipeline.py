"""Image-to-video synthesis (``scripts/evaluation/inference.py:image_guided_synthesis``).

Flow for one batch: the conditioning image -> CLIP ViT tokens -> Resampler (16 tokens per frame);
the prompt -> OpenCLIP text context; context = ``[text | image tokens]``; the video latent of
frame 0 (VAE posterior sample) repeated over T frames is concatenated to the noisy latent;
the unconditional branch is ``""`` (or the negative prompt) + the tokens of an all-zeros image,
with the same latent; DDIM with classifier-free guidance; VAE decode.
"""
from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import ops

from .model import DynamiCrafter
from .sampler import ddim_sample, guided_denoiser, make_schedule


def _tensor(x, dtype=ms.float32):
    return x.astype(dtype) if isinstance(x, ms.Tensor) else ms.Tensor(np.asarray(x), dtype)


def image_guided_synthesis(
    model: DynamiCrafter,
    prompts: list[str],
    videos,
    *,
    n_samples: int = 1,
    ddim_steps: int = 50,
    ddim_eta: float = 1.0,
    unconditional_guidance_scale: float = 1.0,
    cfg_img: float | None = None,
    multiple_cond_cfg: bool = False,
    fs: int | None = None,
    text_input: bool = True,
    negative_prompt: str | None = None,
    timestep_spacing: str = "uniform",
    guidance_rescale: float = 0.0,
    loop: bool = False,
    interp: bool = False,
    x_T=None,
    encode_noise=None,
    step_noise=None,
    generator: np.random.Generator | None = None,
    progress: bool = True,
):
    """Animate ``videos[:, :, 0]`` (the input picture(s)) guided by ``prompts``.

    Args:
        model: a loaded :class:`DynamiCrafter`.
        prompts: B prompts (one per video).
        videos: (B, 3, T, H, W) in [-1, 1]: the picture repeated T times (frames 0 and T-1 are the
            two key frames with ``interp`` / ``loop``).
        n_samples: (1) videos drawn per input.
        ddim_steps: (50) DDIM steps. ddim_eta: (1.0) 0 = deterministic DDIM.
        unconditional_guidance_scale: (1.0) text/image CFG scale; 1.0 = no guidance (one UNet branch).
        cfg_img / multiple_cond_cfg: multi-condition guidance with image scale ``cfg_img`` (default:
            the guidance scale); enabled by ``multiple_cond_cfg`` or by giving ``cfg_img``.
        fs: (None = the UNet's default_fs) frame stride (256) or fps (512/1024) conditioning.
        text_input: (True) use the prompts; False = empty prompts (image-only animation).
        negative_prompt: (None = "") text of the unconditional branch.
        timestep_spacing: ("uniform") or "uniform_trailing" (512/1024).
        guidance_rescale: (0.0) 0.7 for 512/1024.
        loop / interp: condition on the first AND last frame latents (others zero).
        x_T: (B, 4, T, h, w) initial noise (drawn from ``generator`` when None), per sample.
        encode_noise: (B, 4, T, h, w) VAE posterior draws (drawn when None).
        step_noise: per-step noise for eta > 0 (``step_noise[i]``; drawn when None).
        generator: numpy Generator for every draw (``np.random.default_rng(seed)``).
        progress: show the DDIM progress bar.

    Returns:
        numpy float32 (B, n_samples, 3, T, H, W), not clamped.
    """
    rng = generator if generator is not None else np.random.default_rng()
    videos = _tensor(videos)
    if videos.ndim != 5:
        raise ValueError(f"videos must be (B, 3, T, H, W), got {tuple(videos.shape)}")
    b, _, t, hh, ww = videos.shape
    if len(prompts) != b:
        raise ValueError(f"got {len(prompts)} prompts for a batch of {b} videos")
    unet = model.unet
    fs_value = unet.default_fs if fs is None else int(fs)
    fs_t = ms.Tensor(np.full((b,), fs_value, np.int64))
    if not text_input:
        prompts = [""] * b

    img = videos[:, :, 0]  # (B, 3, H, W)
    img_emb = model.embed_image(img)  # (B, 16*T', D)
    cond_emb = model.get_learned_conditioning(prompts)  # (B, 77, D)
    cond = {"context": ops.concat([cond_emb, img_emb], axis=1), "fs": fs_t}
    z = model.encode_first_stage(videos, noise=encode_noise, generator=rng)  # (B, 4, T, h, w)
    if loop or interp:
        mask = np.zeros((1, 1, t, 1, 1), np.float32)
        mask[:, :, 0] = mask[:, :, -1] = 1.0
        img_cat_cond = z * ms.Tensor(mask)
    else:
        img_cat_cond = ops.broadcast_to(z[:, :, :1], z.shape)
    cond["c_concat"] = img_cat_cond

    uncond = uncond_img = None
    guidance = float(unconditional_guidance_scale)
    if guidance != 1.0:
        if model.uncond_type == "empty_seq":
            uc_emb = model.get_learned_conditioning([negative_prompt or ""] * b)
        else:
            uc_emb = ops.zeros_like(cond_emb)
        uc_img_emb = model.embed_image(ops.zeros_like(img))
        uncond = {"context": ops.concat([uc_emb, uc_img_emb], axis=1), "c_concat": img_cat_cond, "fs": fs_t}
        if multiple_cond_cfg or cfg_img is not None:
            if cfg_img is None or cfg_img != 1.0:
                uncond_img = {"context": ops.concat([uc_emb, img_emb], axis=1), "c_concat": img_cat_cond, "fs": fs_t}
    model_fn = guided_denoiser(model, cond, uncond, guidance, guidance_rescale, uncond_img, cfg_img)
    schedule = make_schedule(model, ddim_steps, timestep_spacing, ddim_eta)

    noise_shape = (b, unet.out_channels, t) + tuple(z.shape[3:])
    variants = []
    for _ in range(n_samples):
        x0 = x_T if x_T is not None else rng.standard_normal(noise_shape).astype(np.float32)
        samples = ddim_sample(model, x0, schedule, model_fn, noise=step_noise, generator=rng, progress=progress)
        variants.append(model.decode_first_stage(samples).asnumpy())  # (B, 3, T, H, W)
    return np.stack(variants, axis=1)  # (B, n_samples, 3, T, H, W)
