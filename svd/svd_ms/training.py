"""SVD fine-tuning on top of :mod:`common.train`: what is trained, how a batch becomes loss inputs.

A data batch ``(frames (B, T, 3, H, W), fps_id (B,), motion_bucket_id (B,), cond_aug (B,), key (B, 2))``
becomes the inputs of :class:`~svd_ms.loss.SVDMeanLoss` on the host (:func:`make_batch_fn`), with
the frozen parts in inference mode:

* latents: ``first_stage_model`` encoder, a posterior sample, times 0.18215 (sgm ``encode_first_stage``);
* crossattn: CLIP embedding of the clean first frame; concat: conditioner VAE latent of
  ``first frame + cond_aug * noise``; both repeated over the T frames and, with ``ucg_rate``, zeroed
  per video with that probability (sgm's unconditional-guidance dropout, each embedder on its own);
* vector: fps_id, motion_bucket_id, cond_aug per frame;
* sigmas ``exp(p_mean + p_std N(0,1))`` per frame (EDMSampling) and the noise.

Every draw comes from ``default_rng([seed, 7, epoch, index])`` of the sample, so a step is a
function of the parameters and the sample keys: identical on every rank, after a resume, and in
graph mode.
"""
from __future__ import annotations

from dataclasses import dataclass

import mindspore as ms
import numpy as np
from mindspore import ops

from .config import LossConfig
from .loss import SVDDiffusionLoss, SVDMeanLoss, sample_edm_sigmas
from .model import SVDModel


@dataclass
class FinetuneOptions:
    """Training knobs of the SVD objective.

    temporal_only: train only the UNet's temporal layers (True) or the whole UNet.
    ucg_rate: probability to zero a video's crossattn and (independently) concat (0.0).
    encode_chunk_size: frames per VAE-encoder call when encoding the clips (None = all).
    amp_level: ``"O0"`` float32, ``"O2"`` float16 UNet compute with float32 master weights
        (use with loss scaling on GPU/Ascend).
    recompute: gradient checkpointing of the UNet blocks (:meth:`VideoUNet.set_recompute`): the
        activations of a block are computed again in the backward pass instead of kept; the same
        gradients for less activation memory and one more forward pass of work.
    seed: base of the per-sample generators.
    """

    temporal_only: bool = True
    ucg_rate: float = 0.0
    encode_chunk_size: int | None = None
    amp_level: str = "O0"
    recompute: bool = False
    seed: int = 0


def trainable_parameters(model: SVDModel, temporal_only: bool) -> list:
    """The parameters to optimise: the UNet's temporal ones (``time_stack`` / ``time_mixer`` /
    ``time_pos_embed``) or every UNet parameter. Everything else stays frozen."""
    if temporal_only:
        return model.temporal_parameters()
    return list(model.unet.get_parameters())


def describe_parameters(model: SVDModel, params) -> str:
    """One line: how many tensors / values are trained out of the UNet's."""
    n = sum(int(np.prod(p.shape)) for p in params)
    total = sum(int(np.prod(p.shape)) for p in model.unet.get_parameters())
    return (f"training {len(params)} tensors / {n:,} parameters of the UNet's {total:,} "
            f"({100.0 * n / max(total, 1):.1f}%)")


def build_loss(model: SVDModel, loss_cfg: LossConfig, amp_level: str = "O0", recompute: bool = False) -> SVDMeanLoss:
    """The scalar loss cell (mean over the B*T frames) for the Trainer; ``recompute`` switches the
    UNet's gradient checkpointing on or off."""
    model.unet.set_recompute(recompute)
    if amp_level not in ("O0", "O2"):
        raise ValueError(f"amp_level must be 'O0' or 'O2', got {amp_level!r}")
    if amp_level == "O2":
        model.unet.to_float(ms.float16)
    if loss_cfg.offset_noise_level:
        raise ValueError("loss_fn_config offset_noise_level > 0 is not supported")
    return SVDMeanLoss(SVDDiffusionLoss(model.denoiser, loss_cfg.sigma_data, loss_cfg.loss_type))


def make_batch_fn(model: SVDModel, loss_cfg: LossConfig, opts: FinetuneOptions):
    """``batch_fn(batch, rng) -> loss inputs`` for :class:`common.train.Trainer` (``rng`` is unused: the
    draws are keyed by the samples, see the module doc)."""
    cond = model.conditioner
    ae = model.first_stage_model
    f = model.downscale
    c_lat = model.latent_channels

    def batch_fn(batch, rng=None):
        frames, fps_id, motion, cond_aug, keys = (np.asarray(x) for x in batch)
        b, t, _, hh, ww = frames.shape
        h, w = hh // f, ww // f
        post, cnoise, sig, noise, drop = [], [], [], [], []
        for k in keys:
            r = np.random.default_rng([opts.seed, 7, int(k[0]), int(k[1])])
            post.append(r.standard_normal((t, c_lat, h, w), dtype=np.float32))
            cnoise.append(r.standard_normal((3, hh, ww), dtype=np.float32))
            sig.append(sample_edm_sigmas(t, loss_cfg.p_mean, loss_cfg.p_std, r))
            noise.append(r.standard_normal((t, c_lat, h, w), dtype=np.float32))
            drop.append(r.uniform(size=2) < opts.ucg_rate)
        flat = ms.Tensor(frames.reshape(b * t, 3, hh, ww).astype(np.float32))
        latents = ae.encode_frames(flat, np.concatenate(post), sample=True, chunk_size=opts.encode_chunk_size,
                                   scale_factor=model.scale_factor)  # (b*t, 4, h, w)
        first = frames[:, 0].astype(np.float32)  # (b, 3, H, W)
        crossattn = cond.image_embedding(ms.Tensor(first))  # (b, 1, D)
        concat = cond.cond_latent(ms.Tensor(first + cond_aug.reshape(b, 1, 1, 1) * np.stack(cnoise)))  # (b, 4, h, w)
        keep = ms.Tensor(1.0 - np.stack(drop).astype(np.float32))  # (b, 2)
        crossattn = crossattn * keep[:, 0].reshape(b, 1, 1)
        concat = concat * keep[:, 1].reshape(b, 1, 1, 1)
        per_frame = {"fps_id": np.repeat(fps_id, t), "motion_bucket_id": np.repeat(motion, t),
                     "cond_aug": np.repeat(cond_aug, t)}
        vector = cond.vector({k: ms.Tensor(v.astype(np.float32)) for k, v in per_frame.items()})
        return (ops.stop_gradient(latents), ops.stop_gradient(ops.repeat_interleave(crossattn, t, 0)),
                ops.stop_gradient(vector), ops.stop_gradient(ops.repeat_interleave(concat, t, 0)),
                ms.Tensor(np.concatenate(sig)), ms.Tensor(np.concatenate(noise)),
                ms.Tensor(np.zeros((b, t), np.float32)))

    return batch_fn


def export_weights(model: SVDModel, path, overrides: dict | None = None):
    """Write the whole model as a released-layout safetensors file (loadable by ``--SVD.checkpoint``).

    Args:
        model: the model.
        path: target ``.safetensors`` (written atomically).
        overrides: ``{name: array}`` replacing parameters (e.g. the EMA of the trained ones).
    """
    from common.checkpoint import save_safetensors_atomic

    overrides = overrides or {}
    sd = {p.name: np.asarray(overrides.get(p.name, p.asnumpy()), np.float32) for p in model.get_parameters()}
    return save_safetensors_atomic(sd, path)
