"""``AnimationPipeline``: text -> video with the inflated UNet (original ``pipelines/pipeline_animation.py``).

One call: encode the prompt and the negative prompt with the CLIP text encoder (``[uncond, cond]``), draw
or take the initial latents ``(b, 4, L, H/s, W/s)`` (used unscaled: DDIM's init sigma is 1), denoise with
classifier-free guidance (DDIM as configured by ``noise_scheduler_kwargs``, or DPM-Solver++ 2M), decode
each frame with the VAE (``latents / 0.18215``) and return a :class:`AnimationPipelineOutput`
(:class:`common.pipeline_utils.VideoOutput`: frames ``(b, L, H, W, 3)`` in [0, 1]).

With a SparseCtrl controlnet (``controlnet=``) and ``controlnet_images`` (RGB: VAE latents ``(1, 4, n, h, w)``;
scribble: pixels ``(1, 3, n, H, W)``; see :mod:`animatediff_ms.sparsectrl`), every UNet call is preceded by a
controlnet call on the same (CFG-doubled) latents, timestep and text embeddings, whose residuals the UNet adds
to its skip connections and mid block; the condition places image k at frame ``controlnet_image_index[k]``.
"""
from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass

import mindspore as ms
import numpy as np
from mindspore import ops

from common.memory_plan import release_compiled_graphs
from common.pipeline_utils import VideoOutput, check_output_type, to_unit_range
from common.schedulers.context import FUSE_METHODS, SCHEDULES, windowed_denoiser
from common.schedulers.ddim import (
    ddim_schedule_from_diffusers,
    diffusers_alphas_cumprod,
    diffusers_prediction,
    sample_ddim,
)
from common.schedulers.dpm_solver import dpmpp_2m_schedule_from_diffusers, sample_dpmpp_2m
from common.schedulers.freeinit import fast_sampling_steps, freeinit_filter, freeinit_reinit
from common.schedulers.guidance import cfg, guided_denoiser
from common.vae import SD_SCALE_FACTOR

from .config import ConfigError, SchedulerConfig
from .random import torch_randn


@dataclass
class AnimationPipelineOutput(VideoOutput):
    """:class:`VideoOutput` (``frames`` (b, L, H, W, 3) in [0, 1], ``latents`` the final latents (b, 4, L, h, w),
    ``seed`` used for the noise) + ``text_embeddings``, what the UNet saw ([uncond, cond] with guidance)."""

    text_embeddings: np.ndarray | None = None


class AnimationPipeline:
    """Tokenizer + CLIP text encoder + inflated UNet + VAE + sampler.

    Args:
        unet: :class:`~animatediff_ms.models.UNet3DConditionModel`.
        vae: :class:`common.vae.AutoencoderKL`.
        text_encoder: :class:`common.clip.hf_clip.CLIPTextModel`.
        tokenizer: :class:`common.clip.hf_tokenizer.CLIPTokenizer`.
        scheduler: :class:`~animatediff_ms.config.SchedulerConfig` (``noise_scheduler_kwargs`` + sampler).
        jit: compile the UNet call (and the controlnet's) with ``ms.jit`` once, on first use, and reuse it for
            every step and guidance branch (``--mode graph``); the text encoder and the VAE stay eager (PyNative).
        controlnet: optional :class:`~animatediff_ms.models.SparseControlNetModel` (SparseCtrl).
        split_cfg: default of ``__call__``'s ``split_cfg`` (the guidance branches as separate UNet calls).
        release_before_decode: (True) with ``jit``, :meth:`release_graph` after the sampling and before the VAE
            decode, so the graph's buffers are not held while the VAE decodes (the next call compiles again).
    """

    def __init__(self, unet, vae, text_encoder, tokenizer, scheduler: SchedulerConfig, jit: bool = False,
                 controlnet=None, split_cfg: bool = False, release_before_decode: bool = True):
        self.unet = unet
        self.vae = vae
        self.text_encoder = text_encoder
        self.tokenizer = tokenizer
        self.scheduler = scheduler
        self.jit = bool(jit)
        self.split_cfg = bool(split_cfg)
        self.release_before_decode = bool(release_before_decode)
        self._compiled = {}  # "unet" / "controlnet" -> the ms.jit of that cell's construct
        self.controlnet = controlnet
        #: the condition prepared from a prompt entry (:class:`animatediff_ms.sparsectrl.SparseCondition`), if any
        self.condition = None

    @property
    def controlnet(self):
        return self._controlnet

    @controlnet.setter
    def controlnet(self, net):
        self._controlnet = net
        self._compiled.pop("controlnet", None)
        #: a replacement of the controlnet call (None: the controlnet, compiled with ``jit``); e.g. a recorder
        self._controlnet_fn = None

    def compiled(self, name: str):
        """The one ``ms.jit`` of ``getattr(self, name).construct`` (``"unet"`` / ``"controlnet"``), compiled on
        first use and kept until :meth:`release_graph`."""
        fn = self._compiled.get(name)
        if fn is None:
            fn = self._compiled[name] = ms.jit(getattr(self, name).construct)
        return fn

    def release_graph(self) -> None:
        """Drop the compiled graphs and hand back what they hold (:func:`common.memory_plan.release_compiled_graphs`);
        the next sampling compiles again."""
        if not self._compiled:
            return
        self._compiled = {}
        release_compiled_graphs()

    def _run_unet(self, x, t, emb, branch, *residuals):
        """One UNet call on ``x`` (the stacked ``[uncond, cond]`` batch when ``branch`` is None, else guidance
        branch ``branch`` alone) with its text embeddings ``emb`` and the controlnet's residuals, if any."""
        return (self.compiled("unet") if self.jit else self.unet)(x, t, emb, *residuals)

    def _run_controlnet(self, *args):
        if self._controlnet_fn is not None:
            return self._controlnet_fn(*args)
        return (self.compiled("controlnet") if self.jit else self.controlnet)(*args)

    @property
    def vae_scale_factor(self) -> int:
        """Pixels per latent (2 ** (VAE levels - 1); 8 for SD)."""
        return self.vae.downscale

    # ------------------------------------------------------------------------------------------ pieces
    def check_inputs(self, prompt, height: int, width: int, num_frames: int, num_inference_steps: int,
                     context_length: int | None = None):
        """Raise ValueError (one line) for inputs the original refuses or cannot run."""
        if isinstance(prompt, dict):
            if not prompt or not all(isinstance(k, int) and isinstance(v, str) for k, v in prompt.items()):
                raise ValueError("a prompt-travel prompt is a mapping {frame: text} with int frames, "
                                 f"got {prompt!r}")
            bad = [k for k in prompt if not 0 <= k < num_frames]
            if bad:
                raise ValueError(f"prompt travel: frame {bad[0]} is outside the video's {num_frames} frames")
        elif not isinstance(prompt, str):
            raise ValueError(f"prompt must be a string, got {type(prompt).__name__}")
        if height % 8 or width % 8:
            raise ValueError(f"H and W must be multiples of 8, got H={height}, W={width}")
        if height <= 0 or width <= 0:
            raise ValueError(f"H and W must be positive, got H={height}, W={width}")
        mm = self.unet.cfg.motion_module_kwargs
        if num_frames < 1:
            raise ValueError(f"L (num_frames) must be at least 1, got {num_frames}")
        window = num_frames if context_length is None else context_length
        if self.unet.cfg.use_motion_module and mm.temporal_position_encoding \
                and window > mm.temporal_position_encoding_max_len:
            what = f"L={num_frames} frames" if context_length is None else f"context_length={context_length}"
            hint = "" if context_length is not None else " (use context windows: context_length)"
            raise ValueError(f"{what} exceed the motion module's "
                             f"temporal_position_encoding_max_len={mm.temporal_position_encoding_max_len}{hint}")
        if not 1 <= num_inference_steps <= self.scheduler.num_train_timesteps:
            raise ValueError(f"steps must be in [1, {self.scheduler.num_train_timesteps}], got {num_inference_steps}")

    def tokenize(self, text: str) -> np.ndarray:
        """(1, 77) int64 ids: padding to max_length, truncation to 75 tokens + bos/eos (as the original)."""
        return self.tokenizer([text], max_length=self.tokenizer.model_max_length, padding="max_length",
                              truncation=True)

    def encode_prompt(self, prompt: str, negative_prompt: str | None, do_cfg: bool) -> ms.Tensor:
        """Text embeddings ``(2, 77, D)`` = [uncond, cond] with guidance, else ``(1, 77, D)`` = [cond].
        The unconditional text is the negative prompt, "" when None."""
        cond = self.text_encoder(ms.Tensor(self.tokenize(prompt)))
        if not do_cfg:
            return cond
        uncond = self.text_encoder(ms.Tensor(self.tokenize(negative_prompt if negative_prompt is not None else "")))
        return ops.concat([uncond, cond], axis=0)

    def encode_prompt_travel(self, prompts: dict[int, str], negative_prompt: str | None, do_cfg: bool,
                             num_frames: int) -> ms.Tensor:
        """Per-frame text embeddings ``(branches, L, 77, D)`` for a ``{frame: text}`` schedule (prompt travel): a
        keyframe's frame gets its text's embedding, the frames between two keyframes the linear interpolation of
        the two, the frames before the first / after the last keyframe that keyframe's; the unconditional
        branch is the negative prompt on every frame."""
        keys = sorted(prompts)
        embs = {k: self.text_encoder(ms.Tensor(self.tokenize(prompts[k]))).asnumpy()[0] for k in keys}  # (77, D)
        rows = []
        for f in range(num_frames):
            before = [k for k in keys if k <= f]
            after = [k for k in keys if k > f]
            if not before:
                rows.append(embs[keys[0]])
            elif not after:
                rows.append(embs[before[-1]])
            else:
                k0, k1 = before[-1], after[0]
                w = (f - k0) / (k1 - k0)
                rows.append((1 - w) * embs[k0] + w * embs[k1])
        cond = np.stack(rows)[None].astype(np.float32)  # (1, L, 77, D)
        if not do_cfg:
            return ms.Tensor(cond)
        neg = self.text_encoder(ms.Tensor(self.tokenize(negative_prompt if negative_prompt is not None else "")))
        uncond = np.broadcast_to(neg.asnumpy()[:, None], cond.shape)
        return ms.Tensor(np.concatenate([uncond, cond], axis=0).astype(np.float32))

    def latent_shape(self, num_frames: int, height: int, width: int, batch: int = 1) -> tuple:
        s = self.vae_scale_factor
        return (batch, self.unet.cfg.in_channels, num_frames, height // s, width // s)

    def prepare_latents(self, shape, seed: int | None, latents=None) -> tuple[np.ndarray, int | None]:
        """Initial noise: ``latents`` as given (shape checked), else torch-compatible ``randn`` of ``seed``
        (-1 / None = a fresh random seed, returned)."""
        if latents is not None:
            latents = np.asarray(latents.asnumpy() if hasattr(latents, "asnumpy") else latents, np.float32)
            if tuple(latents.shape) != tuple(shape):
                raise ValueError(f"latents have shape {tuple(latents.shape)}, expected {tuple(shape)}")
            return latents, seed
        if seed is None or int(seed) == -1:
            seed = secrets.randbits(63)
        return torch_randn(int(seed), shape), int(seed)

    def prepare_control(self, controlnet_images, controlnet_image_index, num_frames: int, height: int, width: int):
        """``(cond, mask)`` Tensors for the controlnet (:func:`animatediff_ms.sparsectrl.make_condition`), the
        condition's size checked against the controlnet (RGB: latent size; scribble: pixel size)."""
        from .sparsectrl import make_condition

        images = np.asarray(controlnet_images.asnumpy() if hasattr(controlnet_images, "asnumpy")
                            else controlnet_images, np.float32)
        cfg = self.controlnet.cfg
        if images.ndim != 5 or images.shape[1] != cfg.conditioning_channels:
            raise ValueError(f"controlnet_images must be (b, {cfg.conditioning_channels}, n, h, w) for the "
                             f"{cfg.kind} controlnet, got {tuple(images.shape)}")
        s = self.vae_scale_factor // self.controlnet.cond_downscale
        want = (height // s, width // s)
        if tuple(images.shape[3:]) != want:
            raise ValueError(f"controlnet_images are {images.shape[3]}x{images.shape[4]}, the {cfg.kind} controlnet "
                             f"needs {want[0]}x{want[1]} for a {height}x{width} video")
        cond, mask = make_condition(images, controlnet_image_index, num_frames)
        return ms.Tensor(cond), ms.Tensor(mask)

    def denoiser(self, text_embeddings, batch: int, guidance_scale: float, control=None, split_cfg: bool = False):
        """The guided :class:`~common.schedulers.denoiser.Denoiser` (eps, int timesteps): both CFG branches
        ``[uncond, cond]`` in one UNet call (``split_cfg``: one call per branch, batch ``batch`` each: the
        activation memory of one branch, the same work; with ``jit`` one compiled graph serves both), combined by
        :func:`common.schedulers.guidance.cfg`. ``control``: ``(cond, mask, conditioning_scale)`` for the
        controlnet, called before every UNet call on the same batch."""
        do_cfg = guidance_scale > 1.0
        emb = text_embeddings
        b = batch
        if emb.ndim == 4:  # (branches, f, 77, D): a text per frame (prompt travel) -> (branches*b*f, 77, D)
            n_br, f = emb.shape[0], emb.shape[1]
            emb = ops.tile(emb.reshape(n_br, 1, f, emb.shape[2], emb.shape[3]), (1, b, 1, 1, 1))
            emb = emb.reshape(n_br * b * f, emb.shape[3], emb.shape[4])
        elif do_cfg and emb.shape[0] == 2 and b > 1:  # one [uncond, cond] pair for every video
            emb = ops.concat([ops.tile(emb[:1], (b, 1, 1)), ops.tile(emb[1:], (b, 1, 1))], axis=0)
        elif not do_cfg and emb.shape[0] == 1 and b > 1:
            emb = ops.tile(emb, (b, 1, 1))

        half = emb.shape[0] // 2
        per_branch = (emb[:half], emb[half:]) if do_cfg else (emb,)  # (b*f', 77, D) each

        def model_fn(x, t, branch):
            if branch is None:  # every branch stacked: (branches*b, 4, f, h, w)
                x_in, e = (ops.concat([x, x], axis=0) if do_cfg else x), emb
            else:
                x_in, e = x, per_branch[branch]
            if control is None:
                return self._run_unet(x_in, t[:1], e, branch)
            cond, mask, scale = control
            down, mid = self._run_controlnet(x_in, t[:1], e, cond, mask, scale)
            if self.jit:  # a tuple of tensors is a graph constant unless marked mutable (one compile, not one per call)
                down = ms.mutable(tuple(down))
            return self._run_unet(x_in, t[:1], e, branch, down, mid)

        if do_cfg:
            return guided_denoiser(model_fn, ("uncond", "cond"), functools.partial(cfg, scale=guidance_scale),
                                   prediction=diffusers_prediction(self._scheduler_kwargs()), split=bool(split_cfg))
        return guided_denoiser(model_fn, ("cond",), prediction=diffusers_prediction(self._scheduler_kwargs()))

    def denoise(self, latents, text_embeddings, num_inference_steps: int, guidance_scale: float, eta: float = 0.0,
                sampler: str | None = None, progress: bool = True, callback=None, control=None, context=None,
                split_cfg: bool | None = None):
        """The sampling loop; ``latents`` (b, 4, L, h, w) -> final latents. ``callback({"i", "t", "x", ...})``
        after every step. ``control`` / ``split_cfg`` (None: the pipeline's): see :meth:`denoiser`. ``context``:
        ``(context_length, context_overlap, schedule, fuse)`` to denoise in sliding frame windows
        (:mod:`common.schedulers.context`), None = all frames in one call."""
        sampler = sampler or self.scheduler.sampler
        x = ms.Tensor(np.asarray(latents, np.float32))
        b, num_frames = x.shape[0], x.shape[2]
        split = self.split_cfg if split_cfg is None else bool(split_cfg)
        if context is None:
            fn = self.denoiser(text_embeddings, b, guidance_scale, control, split)
        else:
            length, overlap, schedule, fuse = context

            def for_frames(idx):
                sel = ms.Tensor(np.asarray(idx, np.int32))
                emb = ops.gather(text_embeddings, sel, 1) if text_embeddings.ndim == 4 else text_embeddings
                ctl = None if control is None else (ops.gather(control[0], sel, 2), ops.gather(control[1], sel, 2),
                                                    control[2])
                return self.denoiser(emb, b, guidance_scale, ctl, split)

            fn = windowed_denoiser(for_frames, num_frames, length, overlap, schedule=schedule, fuse=fuse)
        if sampler == "ddim":
            sched = ddim_schedule_from_diffusers(self._scheduler_kwargs(), num_inference_steps, eta=eta)
            return sample_ddim(fn, x, sched, callback=callback, disable=not progress)
        if sampler == "dpmpp_2m":
            sched = dpmpp_2m_schedule_from_diffusers(self._scheduler_kwargs(), num_inference_steps)
            return sample_dpmpp_2m(fn, x, sched, callback=callback, disable=not progress)
        raise ConfigError(f"sampler: {sampler!r} is not one of {list(SchedulerConfig.SAMPLERS)}")

    def _scheduler_kwargs(self) -> dict:
        s = self.scheduler
        return dict(num_train_timesteps=s.num_train_timesteps, beta_start=s.beta_start, beta_end=s.beta_end,
                    beta_schedule=s.beta_schedule, steps_offset=s.steps_offset, clip_sample=s.clip_sample,
                    set_alpha_to_one=s.set_alpha_to_one, prediction_type=s.prediction_type)

    def decode_latents(self, latents) -> np.ndarray:
        """``(b, 4, L, h, w)`` -> video ``(b, 3, L, H, W)`` in [0, 1]: every frame decoded on its own
        (``latents / 0.18215``), then ``clamp((x + 1) / 2, 0, 1)``."""
        z = latents if isinstance(latents, ms.Tensor) else ms.Tensor(np.asarray(latents, np.float32))
        video = self.vae.decode_video(z, SD_SCALE_FACTOR, chunk_size=1).asnumpy()
        return to_unit_range(video)

    # ------------------------------------------------------------------------------------------ call
    def __call__(self, prompt: str, num_frames: int = 16, height: int = 512, width: int = 512,
                 num_inference_steps: int = 25, guidance_scale: float = 7.5, negative_prompt: str | None = None,
                 eta: float = 0.0, seed: int | None = None, latents=None, sampler: str | None = None,
                 output_type: str = "np", callback=None, progress: bool = True, controlnet_images=None,
                 controlnet_image_index=(0,), controlnet_conditioning_scale: float = 1.0,
                 context_length: int | None = None, context_overlap: int = 4, context_schedule: str = "uniform",
                 context_fuse: str = "pyramid", free_init_iters: int = 0, free_init_method: str = "butterworth",
                 free_init_order: float = 4, free_init_spatial_stop_frequency: float = 0.25,
                 free_init_temporal_stop_frequency: float = 0.25, free_init_fast_sampling: bool = False,
                 split_cfg: bool | None = None) -> AnimationPipelineOutput:
        """Generate one video.

        Args:
            prompt: the text.
            num_frames: frames L (16; the prompt config's ``L``).
            height / width: pixels H, W (multiples of 8; 512).
            num_inference_steps: sampler steps (25, as the released prompt configs; their ``steps``).
            guidance_scale: classifier-free guidance weight; <= 1 disables guidance (7.5).
            negative_prompt: the unconditional text ("" when None; the config's ``n_prompt``).
            eta: DDIM eta (0 = deterministic, as the original).
            seed: noise seed; the same seed as the original's ``torch.manual_seed`` gives the same noise
                (None / -1 = random). No numpy ``generator``: the noise is torch's ``randn`` of the seed.
            latents: explicit initial noise (b, 4, L, H/8, W/8) instead of the seed.
            sampler: ``"ddim"`` / ``"dpmpp_2m"`` (default: the configured one).
            output_type: ``"np"`` (decoded frames) or ``"latent"`` (no decoding; ``frames`` None).
            callback: called after each step with a dict. progress: show a progress bar.
            controlnet_images: the SparseCtrl condition images (RGB controlnet: VAE latents (1, 4, n, H/8, W/8);
                scribble: pixels (1, 3, n, H, W) in [0, 1]); None = no controlnet call.
            controlnet_image_index: the frame of each image (python indexing, -1 = last; the prompt config's
                ``controlnet_image_indexs``; [0]). controlnet_conditioning_scale: residual weight (1.0).
            context_length: denoise in sliding windows of this many frames (videos longer than the motion
                module's trained length; :mod:`common.schedulers.context`); None = all frames at once (default).
            context_overlap / context_schedule / context_fuse: frames shared by neighbouring windows (4), the
                window schedule (``"uniform"``: shifted every step; ``"static"``), the per-frame weights
                (``"pyramid"`` or ``"flat"``).
            free_init_iters: FreeInit passes (:mod:`common.schedulers.freeinit`; 0 or 1 = off). The fresh noise of
                pass i is drawn from NumPy's generator seeded ``(seed, i)`` (diffusers continues torch's generator).
            free_init_method / free_init_order / free_init_spatial_stop_frequency /
                free_init_temporal_stop_frequency: the low-pass filter (butterworth, 4, 0.25, 0.25 as diffusers).
            free_init_fast_sampling: coarse-to-fine steps, pass i runs ``steps / iters * (i + 1)`` steps.
            split_cfg: the guidance branches as separate UNet calls of one compiled graph (less memory, the same
                work and numbers to float32 rounding); None: the pipeline's ``split_cfg`` (``--split_cfg``).
        A ``prompt`` given as ``{frame: text}`` travels between the texts (:meth:`encode_prompt_travel`).
        """
        check_output_type(output_type)
        self.check_inputs(prompt, height, width, num_frames, num_inference_steps, context_length)
        context = None
        if context_length is not None:
            if context_schedule not in SCHEDULES or context_fuse not in FUSE_METHODS:
                raise ValueError(f"context_schedule must be one of {SCHEDULES} and context_fuse one of "
                                 f"{FUSE_METHODS}, got {context_schedule!r}, {context_fuse!r}")
            if not 0 <= context_overlap < context_length:
                raise ValueError(f"context_overlap must be in [0, context_length={context_length}), got "
                                 f"{context_overlap}")
            context = (int(context_length), int(context_overlap), context_schedule, context_fuse)
        control = None
        if controlnet_images is not None:
            if self.controlnet is None:
                raise ValueError("controlnet_images given but the pipeline has no controlnet (controlnet_path)")
            limit = self.controlnet.max_frames
            if limit is not None and num_frames > limit:
                raise ValueError(f"L={num_frames} frames exceed the controlnet's temporal_position_encoding_max_len="
                                 f"{limit}")
            cond, mask = self.prepare_control(controlnet_images, controlnet_image_index, num_frames, height, width)
            control = (cond, mask, float(controlnet_conditioning_scale))
        do_cfg = guidance_scale > 1.0
        if isinstance(prompt, dict):
            emb = self.encode_prompt_travel(prompt, negative_prompt, do_cfg, num_frames)
        else:
            emb = self.encode_prompt(prompt, negative_prompt, do_cfg)
        b = 1 if latents is None else int(np.shape(latents)[0])
        shape = self.latent_shape(num_frames, height, width, b)
        x, seed = self.prepare_latents(shape, seed, latents)
        iters = max(1, int(free_init_iters))
        if iters > 1:
            lpf = freeinit_filter((1,) + tuple(shape[1:]), free_init_method, free_init_order,
                                  free_init_spatial_stop_frequency, free_init_temporal_stop_frequency)
            k = self._scheduler_kwargs()
            alpha_bar = float(diffusers_alphas_cumprod(k["beta_schedule"], k["num_train_timesteps"], k["beta_start"],
                                                       k["beta_end"])[-1])
        initial_noise = np.asarray(x, np.float32)
        out = None
        for i in range(iters):
            steps = num_inference_steps
            if i > 0:
                fresh = np.random.default_rng([int(seed or 0), i]).standard_normal(shape).astype(np.float32)
                x = freeinit_reinit(out.asnumpy(), initial_noise, fresh, alpha_bar, lpf)
                if free_init_fast_sampling:
                    steps = fast_sampling_steps(num_inference_steps, iters, i)
            elif iters > 1 and free_init_fast_sampling:
                steps = fast_sampling_steps(num_inference_steps, iters, 0)
            out = self.denoise(x, emb, steps, guidance_scale, eta, sampler, progress, callback, control, context,
                               split_cfg)
        frames = None
        if output_type == "np":
            if self.release_before_decode:
                self.release_graph()
            frames = np.ascontiguousarray(self.decode_latents(out).transpose(0, 2, 3, 4, 1))  # (b, L, H, W, 3)
        return AnimationPipelineOutput(frames=frames, latents=out.asnumpy(), seed=seed, text_embeddings=emb.asnumpy())
