"""Image-to-video with FPS control: ``DropletVideoPipeline(...)(prompt, image, ...)`` -> :class:`VideoOutput`.

One prompt through it (the original ``DropletVideo_Pipeline_Inpaint.__call__`` as ``inference.py`` calls it):

1. :func:`image_to_video_inputs`: the image (already H x W) tiled over F frames in [0, 1]; mask 0 for frame 0,
   255 for the frames to generate.
2. :meth:`encode_prompt`: T5 over ids padded to ``max_sequence_length``, no attention mask (pads attended).
3. :meth:`inpaint_latents`: masked video (``2v-1`` where the mask is 0, -1 where it is 1) + ``noise_aug_strength``
   noise except where it equals -1 (when the transformer config asks), VAE posterior mode * scaling_factor;
   the mask trilinearly resized to the latent grid (frame 0 alone) * scaling_factor; [mask, latents] on channels.
4. :meth:`sample`: DDIM (``common.schedulers.sample_ddim``; v-prediction, trailing spacing, zero terminal SNR,
   from ``scheduler_config.json``) on a CFG-guided denoiser (``common.schedulers.guided_denoiser`` + ``cfg``),
   batch [negative, positive]; RoPE tables for the grid (:func:`~.transformer.prepare_rotary`).
5. :meth:`decode_latents`: ``vae.decode(latents / scaling_factor) / 2 + 0.5`` clamped to [0, 1].
"""
from __future__ import annotations

import functools
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import ops

from common.pipeline_utils import VideoOutput
from common.schedulers import (
    cfg,
    ddim_schedule_from_diffusers,
    diffusers_prediction,
    guided_denoiser,
    sample_ddim,
)

from . import weights
from .transformer import prepare_rotary

__all__ = ["DropletVideoPipeline", "image_to_video_inputs", "resize_linear", "latent_frames"]


def latent_frames(num_frames: int, temporal_ratio: int = 4) -> int:
    """Latent frames of an F-frame video: ``(F - 1) // ratio + 1``."""
    return (num_frames - 1) // temporal_ratio + 1


def image_to_video_inputs(image: np.ndarray, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 -> ``video`` (1, 3, F, H, W) float32 in [0, 1] (the image on every frame) and
    ``mask_video`` (1, 1, F, H, W): 0 on frame 0 (kept), 255 on frames 1.. (generated)."""
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3), got {img.shape}")
    v = img.astype(np.float32).transpose(2, 0, 1)[None, :, None] / np.float32(255)
    video = np.ascontiguousarray(np.broadcast_to(v, (1, 3, num_frames) + img.shape[:2]))
    mask = np.full((1, 1, num_frames) + img.shape[:2], 255, np.float32)
    mask[:, :, 0] = 0
    return video, mask


def _linear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of torch's linear interpolation, ``align_corners=False`` (no antialias)."""
    scale = n_in / n_out
    src = np.maximum((np.arange(n_out) + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    lam = src - i0
    m = np.zeros((n_out, n_in), np.float64)
    m[np.arange(n_out), i0] += 1 - lam
    m[np.arange(n_out), i1] += lam
    return m


def resize_linear(x: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """Separable (tri)linear resize of the last ``len(size)`` axes, torch ``align_corners=False`` (float32)."""
    x = np.asarray(x, np.float64)
    nd = len(size)
    for k, n_out in enumerate(size):
        axis = x.ndim - nd + k
        m = _linear_matrix(x.shape[axis], n_out)
        x = np.moveaxis(np.tensordot(m, np.moveaxis(x, axis, 0), axes=1), 0, axis)
    return x.astype(np.float32)


class DropletVideoPipeline:
    """The released components, built and loaded from a weights folder (:meth:`from_pretrained`).

    Args:
        transformer / vae / text_encoder / tokenizer: the loaded models.
        scheduler_config: ``scheduler/scheduler_config.json`` as a dict.
        mode: ``"pynative"`` (default) or ``"graph"``: the transformer (called once per step on the CFG batch) is
            compiled with ``ms.jit``; text encoding, VAE and the loop stay PyNative.
    """

    def __init__(self, transformer, vae, text_encoder, tokenizer, scheduler_config: dict, mode: str = "pynative"):
        # text_encoder / tokenizer may be None when the caller passes prompt_embeds (the CLI encodes the prompt
        # first and frees the T5 encoder before the transformer is loaded)
        if mode not in ("pynative", "graph"):
            raise ValueError(f"mode must be 'pynative' or 'graph', got {mode!r}")
        self.mode = mode
        self.transformer = transformer
        self._transformer = ms.jit(transformer.construct) if mode == "graph" else transformer
        self.vae = vae
        self.text_encoder = text_encoder
        self.tokenizer = tokenizer
        self.scheduler_config = dict(scheduler_config)
        self.prediction = diffusers_prediction(self.scheduler_config)
        vc = vae.config
        self.vae_scale_spatial = vc.spatial_factor
        self.vae_scale_temporal = vc.temporal_compression_ratio
        self.scaling_factor = float(vc.scaling_factor)
        self._check_components()

    def _check_components(self):
        tc, vc = self.transformer.config, self.vae.config
        c = vc.latent_channels
        if tc.in_channels != 2 * c + 1:
            raise ValueError(f"transformer in_channels {tc.in_channels} != 2 * vae latent_channels + 1 = {2 * c + 1} "
                             "(the inpaint model concatenates latents, mask and masked-video latents)")
        if tc.out_channels != c:
            raise ValueError(f"transformer out_channels {tc.out_channels} != vae latent_channels {c}")
        d = self.text_encoder.config.d_model if self.text_encoder is not None else tc.text_embed_dim
        if tc.text_embed_dim != d:
            raise ValueError(f"transformer text_embed_dim {tc.text_embed_dim} != text encoder d_model {d}")

    @classmethod
    def from_pretrained(cls, folder, mode: str = "pynative", dtype=None, text_encoder: bool = True
                        ) -> DropletVideoPipeline:
        """Load the components of a released ``DropletVideo-V1.0-weights`` folder (validated first).

        Args:
            mode: see the class.
            dtype: compute dtype of the transformer (None = float32), applied before its weights are read.
            text_encoder: False leaves the T5 encoder and tokenizer out (pass ``prompt_embeds`` then).
        """
        folder = weights.check_folder(Path(folder))
        te = weights.load_text_encoder(folder) if text_encoder else None
        tok = weights.load_tokenizer(folder) if text_encoder else None
        return cls(weights.load_transformer(folder, dtype), weights.load_vae(folder), te, tok,
                   weights.scheduler_config(folder), mode=mode)

    # ---- conditioning ------------------------------------------------------------------------
    def encode_ids(self, ids: np.ndarray):
        """(B, L) int64 ids -> (B, L, D) T5 states (no attention mask)."""
        return self.text_encoder(ms.Tensor(np.asarray(ids, np.int64)))

    def encode_prompt(self, prompt: str, negative_prompt: str, max_sequence_length: int):
        """(positive, negative) T5 states, each (1, L, D)."""
        ids = self.tokenizer([prompt, negative_prompt], max_sequence_length)
        emb = self.encode_ids(ids)
        return emb[0:1], emb[1:2]

    def inpaint_latents(self, video: np.ndarray, mask_video: np.ndarray, ref_noise: np.ndarray | None = None,
                        noise_aug_strength: float = 0.0563, rng: np.random.Generator | None = None):
        """The transformer's inpaint conditioning (B, F_lat, 1 + C, h, w) for one CFG half.

        Args:
            video: (B, 3, F, H, W) in [0, 1].
            mask_video: (B, 1, F, H, W); values >= 0.5 mark frames/pixels to generate (the original passes 0/255).
            ref_noise: (B, 3, F, H, W) N(0,1) for the reference-noise augmentation (None: drawn from ``rng``);
                ignored unless the transformer config has ``add_noise_in_inpaint_model``.
            noise_aug_strength: its standard deviation (0.0563).
        """
        video = np.asarray(video, np.float32)
        mask = (np.asarray(mask_video, np.float32) >= 0.5).astype(np.float32)  # binarised, not normalised
        init = video * 2 - 1
        masked = np.where(mask < 0.5, init, np.float32(-1.0)).astype(np.float32)  # mask broadcasts over RGB
        if self.transformer.config.add_noise_in_inpaint_model:
            if ref_noise is None:
                ref_noise = (rng or np.random.default_rng()).standard_normal(masked.shape).astype(np.float32)
            noise = np.asarray(ref_noise, np.float32) * np.float32(noise_aug_strength)
            masked = masked + np.where(masked == -1, np.float32(0), noise)
        mean, _ = self.vae.encode(ms.Tensor(masked))
        latents = mean * self.scaling_factor  # (B, C, f, h, w)
        f, h, w = latents.shape[2:]
        inv = 1 - mask
        first = resize_linear(inv[:, :, :1], (1, h, w))
        parts = [first] + ([resize_linear(inv[:, :, 1:], (f - 1, h, w))] if f > 1 else [])
        mask_lat = np.concatenate(parts, axis=2) * np.float32(self.scaling_factor)  # (B, 1, f, h, w)
        cond = ops.concat([ms.Tensor(mask_lat.astype(np.float32)), latents], axis=1)
        return cond.transpose(0, 2, 1, 3, 4)  # (B, f, 1+C, h, w)

    def rotary(self, height: int, width: int, num_latent_frames: int):
        """(cos, sin) MindSpore tensors for the video tokens."""
        tc = self.transformer.config
        cos, sin, _ = prepare_rotary(height, width, num_latent_frames, self.vae_scale_spatial, tc.patch_size,
                                     tc.attention_head_dim)
        return ms.Tensor(cos), ms.Tensor(sin)

    # ---- denoising ---------------------------------------------------------------------------
    def denoiser(self, prompt_embeds, negative_prompt_embeds, inpaint_latents, cos, sin, fps: int,
                 guidance_scale: float, split_cfg: bool = False):
        """The guided :class:`~common.schedulers.Denoiser`: one transformer call on [negative, positive]
        (CFG when ``guidance_scale > 1``, as the original), ``uncond + s (cond - uncond)``.
        ``split_cfg``: one call per branch instead (half the activation memory, the same work)."""
        use_cfg = guidance_scale > 1.0
        texts = (negative_prompt_embeds, prompt_embeds)
        ctx = ops.concat(texts, axis=0) if use_cfg else prompt_embeds
        cond = ops.concat([inpaint_latents, inpaint_latents], axis=0) if use_cfg else inpaint_latents
        fps_t = ms.Tensor(np.array([int(fps)], np.int64))
        tr = self._transformer

        def model_fn(x, t, branch):
            if branch is not None:  # one branch: 0 = negative, 1 = positive
                return tr(x, texts[branch], t, fps_t, inpaint_latents, cos, sin)
            if use_cfg:
                x, t = ops.concat([x, x], axis=0), ops.concat([t, t], axis=0)
            return tr(x, ctx, t, fps_t, cond, cos, sin)

        if not use_cfg:
            return guided_denoiser(model_fn, ("cond",), None, prediction=self.prediction)
        return guided_denoiser(model_fn, ("uncond", "cond"), functools.partial(cfg, scale=float(guidance_scale)),
                               prediction=self.prediction, split=split_cfg)

    def sample(self, latents, prompt_embeds, negative_prompt_embeds, inpaint_latents, cos, sin, *, fps: int,
               num_inference_steps: int, guidance_scale: float = 6.0, eta: float = 0.0, callback=None,
               progress: bool = True, split_cfg: bool = False):
        """The denoising loop. ``latents`` (B, F_lat, C, h, w) initial noise (``init_noise_sigma`` is 1).

        Returns:
            ``(latents, timesteps)``.
        """
        schedule = ddim_schedule_from_diffusers(self.scheduler_config, int(num_inference_steps), eta=eta)
        den = self.denoiser(prompt_embeds, negative_prompt_embeds, inpaint_latents, cos, sin, fps, guidance_scale,
                            split_cfg)
        x = sample_ddim(den, latents, schedule, callback=callback, disable=not progress)
        return x, schedule.timesteps

    def decode_latents(self, latents, vae_tile: tuple[int, int] | None = None):
        """(B, F_lat, C, h, w) -> (B, 3, F_out, H, W) in [0, 1]; ``vae_tile`` (pixels) decodes in overlapping
        spatial tiles (a memory knob; see ``common.vae3d.AutoencoderKLCausal3D.decode``)."""
        z = latents.transpose(0, 2, 1, 3, 4) / self.scaling_factor
        return ops.clamp(self.vae.decode(z, self.latent_tile(vae_tile)) / 2 + 0.5, 0.0, 1.0)

    def latent_tile(self, vae_tile: tuple[int, int] | None) -> tuple[int, int] | None:
        """A (height, width) pixel tile as latents; ValueError unless multiples of the VAE factor, >= 2 latents."""
        if vae_tile is None:
            return None
        s = self.vae_scale_spatial
        if vae_tile[0] % s or vae_tile[1] % s or min(vae_tile) < 2 * s:
            raise ValueError(f"vae_tile {tuple(vae_tile)}: must be multiples of {s} pixels, at least {2 * s}")
        return vae_tile[0] // s, vae_tile[1] // s

    # ---- everything --------------------------------------------------------------------------
    def check_inputs(self, height: int, width: int, num_frames: int):
        unit = self.vae_scale_spatial * self.transformer.config.patch_size
        if height % unit or width % unit:
            raise ValueError(f"height and width must be multiples of {unit}, got {height}x{width}")
        if num_frames < 1 or (num_frames - 1) % self.vae_scale_temporal:
            raise ValueError(f"num_frames must be {self.vae_scale_temporal}k+1, got {num_frames}")
        if 1 < num_frames < self.vae_scale_temporal + 1:
            raise ValueError(f"num_frames must be 1 or at least {self.vae_scale_temporal + 1}")

    def __call__(self, prompt: str, image=None, *, negative_prompt: str = "", height: int = 384, width: int = 672,
                 num_frames: int = 85, num_inference_steps: int = 50, guidance_scale: float = 6.0, fps: int = 16,
                 seed: int | None = None, max_sequence_length: int = 400, eta: float = 0.0,
                 noise_aug_strength: float = 0.0563, video=None, mask_video=None, latents=None, ref_noise=None,
                 progress: bool = True, callback=None, vae_tile: tuple[int, int] | None = None,
                 prompt_embeds=None, negative_prompt_embeds=None, split_cfg: bool = False) -> VideoOutput:
        """Generate a video from an image and a prompt.

        Args:
            prompt: the text (the original CLI appends a quality suffix before calling).
            image: (H, W, 3) uint8 of exactly height x width (or give ``video`` / ``mask_video``).
            negative_prompt: text of the unconditional branch ("" default).
            height / width: pixels, multiples of ``8 * patch_size`` (default 384 x 672).
            num_frames: F = 4k + 1 (default 85); even latent counts decode to ``4 * f`` frames.
            num_inference_steps: DDIM steps (50).
            guidance_scale: CFG scale (6.0); <= 1 turns CFG off.
            fps: the FPS condition (motion strength: small = large motion per frame).
            seed: numpy seed of the initial latents and the reference noise (None: random).
            max_sequence_length: T5 tokens (400 in the original CLI).
            eta: DDIM eta (0).
            noise_aug_strength: std of the reference-image noise (0.0563).
            video / mask_video: the original's (1, 3, F, H, W) [0, 1] and (1, 1, F, H, W) {0, 255} inputs.
            latents: (1, F_lat, C, h, w) initial noise; ref_noise: (1, 3, F, H, W); both drawn from seed if None.
            progress: show the DDIM progress bar.
            callback: called after every step with ``{"x", "i", "t", "denoised"}``.
            vae_tile: (height, width) pixels of the VAE decode's spatial tiles (None: untiled, as the original).
            prompt_embeds / negative_prompt_embeds: (1, L, D) T5 states used instead of encoding ``prompt`` /
                ``negative_prompt`` (both or neither).
            split_cfg: run the negative and positive branches as two transformer calls of batch 1 (half the
                activation memory, the same work and numbers up to float32 rounding).
        Returns:
            :class:`VideoOutput` with ``frames`` (1, F_out, H, W, 3) in [0, 1] and ``latents``.
        """
        self.check_inputs(height, width, num_frames)
        self.latent_tile(vae_tile)  # an impossible tile fails before sampling
        if video is None:
            video, mask_video = image_to_video_inputs(image, num_frames)
        if tuple(video.shape[-2:]) != (height, width):
            raise ValueError(f"image is {video.shape[-2]}x{video.shape[-1]}, expected {height}x{width} (resize it)")
        rng = np.random.default_rng(seed)
        f_lat = latent_frames(num_frames, self.vae_scale_temporal)
        c = self.vae.config.latent_channels
        shape = (1, f_lat, c, height // self.vae_scale_spatial, width // self.vae_scale_spatial)
        if latents is None:
            latents = rng.standard_normal(shape).astype(np.float32)
        if ref_noise is None:
            ref_noise = rng.standard_normal(video.shape).astype(np.float32)
        if (prompt_embeds is None) != (negative_prompt_embeds is None):
            raise ValueError("give both prompt_embeds and negative_prompt_embeds, or neither")
        if prompt_embeds is None:
            if self.text_encoder is None:
                raise ValueError("this pipeline has no text encoder: pass prompt_embeds and negative_prompt_embeds")
            pos, neg = self.encode_prompt(prompt, negative_prompt, max_sequence_length)
        else:
            pos, neg = (e if isinstance(e, ms.Tensor) else ms.Tensor(np.asarray(e, np.float32))
                        for e in (prompt_embeds, negative_prompt_embeds))
        cond = self.inpaint_latents(video, mask_video, ref_noise, noise_aug_strength)
        cos, sin = self.rotary(height, width, f_lat)
        x, _ = self.sample(ms.Tensor(np.asarray(latents, np.float32)), pos, neg, cond, cos, sin, fps=fps,
                           num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, eta=eta,
                           callback=callback, progress=progress, split_cfg=split_cfg)
        frames = self.decode_latents(x, vae_tile).asnumpy()  # (1, 3, F_out, H, W)
        return VideoOutput(frames=frames.transpose(0, 2, 3, 4, 1), latents=x.asnumpy(), seed=seed)
