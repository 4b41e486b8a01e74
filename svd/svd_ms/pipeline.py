"""Image-to-video with SVD: one image in, ``num_frames`` frames out (sgm ``simple_video_sample.py``).

Flow: clean image -> CLIP embedding (crossattn); ``image + noise_aug_strength * cond_noise`` -> conditioner
VAE latent (concat); fps_id / motion_bucket_id / noise_aug_strength (sgm's ``cond_aug``) -> vector; unconditional branch = zero
crossattn and concat; Euler EDM (or DPM-Solver++ 2M) sampling with the per-frame linear guidance ramp; temporal VAE
decoding in chunks of ``decode_chunk_size`` frames; ``clamp((x + 1) / 2, 0, 1)`` as a
:class:`common.pipeline_utils.VideoOutput` (frames ``(1, T, H, W, 3)``).
"""
from __future__ import annotations

from dataclasses import dataclass

import mindspore as ms
import numpy as np

from common.memory_plan import release_compiled_graphs
from common.pipeline_utils import VideoOutput, check_output_type, frames_from_decoded, numpy_generator

from .model import SVDModel
from .sampling import sample_svd


@dataclass
class SVDOutput(VideoOutput):
    """:class:`VideoOutput` (frames (1, T, H, W, 3) float32 in [0, 1]; latents (T, 4, H/8, W/8) sampled
    latents (scaled)) + sigmas: the noise levels used; fps_id: the value fed to the model."""

    sigmas: np.ndarray | None = None
    fps_id: float | None = None


class SVDPipeline:
    """Callable image-to-video pipeline around an :class:`~svd_ms.model.SVDModel`.

    Args:
        model: the loaded model.
        mode: ``"pynative"`` (default) or ``"graph"``: the denoiser (the UNet, called once per step at the CFG
            batch, or once per branch with ``split_cfg``) is compiled with ``ms.jit`` on first use and reused for
            every step and branch; conditioning and decoding stay PyNative.
        release_before_decode: (True) in graph mode, :meth:`release_graph` after the sampling and before the VAE
            decode (the graph's buffers are not held while the VAE decodes; the next call compiles again).
    """

    def __init__(self, model: SVDModel, mode: str = "pynative", release_before_decode: bool = True):
        if mode not in ("pynative", "graph"):
            raise ValueError(f"SVDPipeline: mode must be 'pynative' or 'graph', got {mode!r}")
        self.model = model
        self.mode = mode
        self.release_before_decode = bool(release_before_decode)
        self._compiled = None
        model.set_train(False)

    def denoise_fn(self):
        """The denoiser call handed to the sampler: the one ``ms.jit`` compiled ``model.denoiser.construct`` of
        this pipeline in graph mode (compiled on first use, kept until :meth:`release_graph`), else the eager
        denoiser."""
        if self.mode != "graph":
            return self.model.denoiser
        if self._compiled is None:
            self._compiled = ms.jit(self.model.denoiser.construct)
        return self._compiled

    def release_graph(self) -> None:
        """Drop the compiled denoiser and hand back what it holds (:func:`common.memory_plan.release_compiled_graphs`)."""
        if self._compiled is None:
            return
        self._compiled = None
        release_compiled_graphs()

    def check_inputs(self, image: np.ndarray, num_frames: int, num_inference_steps: int, decode_chunk_size,
                     height: int | None = None, width: int | None = None):
        """Raise ValueError naming the bad argument."""
        if image.ndim != 4 or image.shape[0] != 1 or image.shape[1] != 3:
            raise ValueError(f"image must be (1, 3, H, W) in [-1, 1], got shape {tuple(image.shape)}")
        mult = self.model.downscale * 2 ** (len(self.model.cfg.unet.channel_mult) - 1)
        h, w = image.shape[2:]
        if (height is not None and height != h) or (width is not None and width != w):
            raise ValueError(f"image is {h}x{w} but height x width = {height}x{width}: resize the image first")
        if h % mult or w % mult:
            raise ValueError(f"image is {h}x{w}; height and width must be multiples of {mult} "
                             f"(latent {self.model.downscale}x downscale times the UNet's downsamplings)")
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
        if decode_chunk_size is not None and decode_chunk_size < 1:
            raise ValueError(f"decode_chunk_size must be >= 1 (or None = all frames), got {decode_chunk_size}")

    def __call__(self, image, num_frames: int = 14, num_inference_steps: int = 25, height: int | None = None,
                 width: int | None = None, fps: float | None = 7, fps_id: float | None = None,
                 motion_bucket_id: float = 127, noise_aug_strength: float = 0.02, decode_chunk_size: int | None = None,
                 seed: int | None = 23, generator: np.random.Generator | None = None, cond_noise=None, latents=None,
                 min_guidance_scale: float | None = None, max_guidance_scale: float | None = None,
                 output_type: str = "np", callback=None, progress: bool = True, split_cfg: bool = False,
                 sampler: str = "euler") -> SVDOutput:
        """Generate one clip.

        Args:
            image: (1, 3, H, W) float32 in [-1, 1] (``ToTensor() * 2 - 1`` of the RGB picture); H, W
                multiples of 64. Trained at 576x1024.
            num_frames: frames to generate (SVD 14, SVD-XT 25).
            num_inference_steps: Euler EDM steps (SVD 25, XT 30).
            height / width: (None) checked against the image's size if given (the image is not resized).
            fps: frame rate the clip should look like; the model sees ``fps_id = fps - 1`` (as
                diffusers / the mindone port). Ignored when ``fps_id`` is given.
            fps_id: the raw micro-condition (sgm's script: 6 by default).
            motion_bucket_id: amount of motion (0..255; 127 default; higher = more motion).
            noise_aug_strength: sgm's ``cond_aug``: std of the Gaussian noise added to the image before the
                conditioner's VAE, and a micro-condition; more = less like the image, more motion (0.02).
            decode_chunk_size: frames decoded per VAE call (None = all frames: best temporal
                consistency, most memory).
            seed: seeds the two Gaussian draws (cond_noise, then the start noise) of a NumPy generator (23).
            generator: a numpy Generator for those draws (wins over ``seed``).
            cond_noise: (1, 3, H, W) injected N(0,1) draw for the image augmentation (overrides the draw).
            latents: (T, 4, H/8, W/8) injected N(0,1) start noise, before the sigma_0 scaling (overrides the draw).
            min_guidance_scale / max_guidance_scale: guidance ramp over the frames (default: the config's guider).
            output_type: ``"np"`` (decoded frames) or ``"latent"`` (no decoding; ``frames`` None).
            callback: called after each step with ``{"x", "i", "sigma", "denoised"}`` (+ ``"sigma_hat"`` under euler).
            progress: show the sampling progress bar.
            split_cfg: run the unconditional and the conditional branch as two UNet calls of one
                video each instead of one call of two (half the UNet's activation memory, the same
                work; equal to float32 rounding).
            sampler: ``"euler"`` (sgm's EulerEDMSampler, the release) or ``"dpmpp_2m"`` (DPM-Solver++ 2M on the same
                EDM sigmas: deterministic, about half the steps for the same result; refused with the config's
                ``s_churn > 0``).
        """
        check_output_type(output_type)
        image = np.asarray(image, dtype=np.float32)
        self.check_inputs(image, num_frames, num_inference_steps, decode_chunk_size, height, width)
        from .sampling import SAMPLERS

        if sampler not in SAMPLERS:
            raise ValueError(f"sampler {sampler!r}: expected one of {SAMPLERS}")
        if fps_id is None:
            if fps is None:
                raise ValueError("give fps (the model sees fps - 1) or fps_id")
            fps_id = float(fps) - 1.0
        scfg = self.model.cfg.sampler
        f = self.model.downscale
        h, w = image.shape[2] // f, image.shape[3] // f
        rng = numpy_generator(seed, generator)
        if cond_noise is None:
            cond_noise = rng.standard_normal(image.shape, dtype=np.float32)
        if latents is None:
            latents = rng.standard_normal((num_frames, self.model.latent_channels, h, w), dtype=np.float32)
        cond_noise = np.asarray(cond_noise, np.float32)
        noise = np.asarray(latents, np.float32)
        if cond_noise.shape != image.shape:
            raise ValueError(f"cond_noise has shape {cond_noise.shape}, expected {image.shape}")
        want = (num_frames, self.model.latent_channels, h, w)
        if noise.shape != want:
            raise ValueError(f"latents have shape {noise.shape}, expected {want}")
        img = ms.Tensor(image)
        aug = noise_aug_strength
        c, uc = self.model.conditioner.get_conditioning(img, ms.Tensor(image + aug * cond_noise), num_frames,
                                                        fps_id, motion_bucket_id, aug)
        z, sigmas = sample_svd(self.denoise_fn(), ms.Tensor(noise), c, uc, num_frames, num_inference_steps,
                               scfg.sigma_min, scfg.sigma_max, scfg.rho,
                               scfg.min_scale if min_guidance_scale is None else min_guidance_scale,
                               scfg.max_scale if max_guidance_scale is None else max_guidance_scale,
                               scfg.s_churn, scfg.s_tmin, scfg.s_tmax, scfg.s_noise, disable=not progress,
                               callback=callback, split_cfg=split_cfg, sampler=sampler)
        frames = None
        if output_type == "np":
            if self.release_before_decode:
                self.release_graph()
            x = self.model.decode_latents(z, decode_chunk_size)  # (T, 3, H, W)
            frames = frames_from_decoded(x.asnumpy()[None], 2, 1)  # (1, T, H, W, 3)
        return SVDOutput(frames=frames, latents=z.asnumpy(), seed=seed if generator is None else None,
                         sigmas=sigmas, fps_id=fps_id)
