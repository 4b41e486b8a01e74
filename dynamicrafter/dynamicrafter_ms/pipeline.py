"""Image-to-video synthesis (``scripts/evaluation/inference.py:image_guided_synthesis``) as one pipeline.

Flow for one batch: the conditioning image -> CLIP ViT tokens -> Resampler (16 tokens per frame);
the prompt -> OpenCLIP text context; context = ``[text | image tokens]``; the video latent of
frame 0 (VAE posterior sample) repeated over T frames is concatenated to the noisy latent;
the unconditional branch is ``""`` (or the negative prompt) + the tokens of an all-zeros image,
with the same latent; DDIM with classifier-free guidance (folded into the denoiser); VAE decode.
Returns a :class:`common.pipeline_utils.VideoOutput`.

The sampling side (``lvdm.models.samplers.ddim.DDIMSampler``): its schedule and its denoiser.

The DDIM schedule is built from the model's own float32 buffers, as the original does:
``alphas = alphas_cumprod[ts]``, ``alphas_prev`` = the next lower step's alpha and
``alphas_cumprod[0]`` for the last step, sigmas in float64 from those; v-prediction uses the
``sqrt_alphas_cumprod`` / ``sqrt_one_minus_alphas_cumprod`` buffers; dynamic rescale
(512/1024) uses ``scale_arr``. The denoiser calls the UNet on every guidance branch in one batch
(``[cond, uncond, uncond_img]``) and combines them with :mod:`common.schedulers.guidance`
(``cfg`` or ``cfg_two_scale``, then guidance rescale, on the raw output: v for v-models).
The loop itself is :func:`common.schedulers.sample_ddim` (``sampler="ddim"``, the original) or
:func:`common.schedulers.sample_dpmpp_2m` (``sampler="dpmpp_2m"``, :func:`make_dpm_schedule`): the same guided
denoiser (guidance, guidance rescale and the conditioning unchanged), the same end point (``alphas_cumprod[0]``),
dynamic rescale as the data scale of the ODE, zero terminal SNR as the exact ``lambda = -inf`` first step.
DDIM's eta has no DPM-Solver++ 2M counterpart: the DPM path is deterministic (eta 0 only).
"""
from __future__ import annotations

import dataclasses
import functools

import mindspore as ms
import numpy as np
from mindspore import ops

from common.memory_plan import release_compiled_graphs
from common.pipeline_utils import VideoOutput, check_output_type, frames_from_decoded, numpy_generator
from common.schedulers.ddim import DDIMSchedule, make_ddim_schedule, sample_ddim
from common.schedulers.denoiser import Denoiser
from common.schedulers.dpm_solver import DPMSolverSchedule, make_dpmpp_2m_schedule, sample_dpmpp_2m
from common.schedulers.guidance import cfg, cfg_two_scale, guided_denoiser

from .model import DynamiCrafter, image_latent_condition

#: the timestep spacings of the original sampler.
SPACINGS = ("uniform", "uniform_trailing")
#: ``ddim`` = the original's DDIMSampler; ``dpmpp_2m`` = DPM-Solver++ 2M on the same ODE (deterministic).
SAMPLERS = ("ddim", "dpmpp_2m")


def make_schedule(model, steps: int, spacing: str = "uniform", eta: float = 1.0) -> DDIMSchedule:
    """``DDIMSampler.make_schedule(steps, spacing, eta)`` from the buffers of ``model`` (a DynamiCrafter)."""
    if spacing not in SPACINGS and spacing != "quad":
        raise ValueError(f"timestep_spacing {spacing!r}: expected one of {SPACINGS}")
    if spacing == "quad":
        raise ValueError("timestep_spacing 'quad' is not supported (use 'uniform' or 'uniform_trailing')")
    if steps < 1 or steps > model.num_timesteps:
        raise ValueError(f"ddim_steps must be in [1, {model.num_timesteps}], got {steps}")
    ac = model.buffer("alphas_cumprod")
    scale_arr = model.buffer("scale_arr") if model.use_dynamic_rescale else None
    sched = make_ddim_schedule(ac, steps, spacing=spacing, eta=eta, prev_rule="ldm", scale_arr=scale_arr)
    if model.parameterization == "v":  # the original reads these two buffers of the model
        ts = sched.timesteps
        sched = dataclasses.replace(sched, sqrt_alphas=model.buffer("sqrt_alphas_cumprod")[ts],
                                    sqrt_one_minus_alphas=model.buffer("sqrt_one_minus_alphas_cumprod")[ts])
    return sched


def make_dpm_schedule(model, steps: int) -> DPMSolverSchedule:
    """The DPM-Solver++ 2M schedule of ``model``: ``steps`` model calls from t = n-1 (where both DDIM spacings
    start in the many-step limit) on a grid uniform in log-SNR (:func:`common.schedulers.dpm_solver.logsnr_timesteps`;
    a grid uniform in t leaves the last steps long log-SNR strides and converged only at first order on the
    v-prediction models), ending where the original's DDIM ends (``alphas_cumprod[0]``, not a clean sample),
    with the model's ``scale_arr`` as the data scale when ``use_dynamic_rescale`` (512/1024). Zero-terminal-SNR
    models (``alphas_cumprod[n-1] = 0``) take the exact ``lambda = -inf`` first step."""
    n = model.num_timesteps
    if steps < 1 or steps >= n:
        raise ValueError(f"ddim_steps must be in [1, {n - 1}] for dpmpp_2m, got {steps}")
    ac = model.buffer("alphas_cumprod").astype(np.float64)
    scale_arr = model.buffer("scale_arr") if model.use_dynamic_rescale else None
    return make_dpmpp_2m_schedule(ac, steps, spacing="logsnr", final_alpha=float(ac[0]), scale_arr=scale_arr)


def sample(fn: Denoiser, x, schedule, noise=None, progress: bool = True, callback=None):
    """Run ``fn`` from ``x`` under the sampler of ``schedule``: a :class:`DDIMSchedule` (:func:`make_schedule`,
    ``noise`` = its eta > 0 draws) or a :class:`DPMSolverSchedule` (:func:`make_dpm_schedule`)."""
    if isinstance(schedule, DPMSolverSchedule):
        return sample_dpmpp_2m(fn, x, schedule, disable=not progress, callback=callback)
    return sample_ddim(fn, x, schedule, noise=noise, disable=not progress, callback=callback)


def sampler_schedule(model, sampler: str, steps: int, spacing: str = "uniform", eta: float | None = None):
    """The schedule of ``sampler`` (:data:`SAMPLERS`): DDIM with ``spacing`` and ``eta`` (None = 1.0, the
    original's default), or DPM-Solver++ 2M (``spacing`` unused; ``eta`` must be None or 0)."""
    if sampler == "ddim":
        return make_schedule(model, steps, spacing, 1.0 if eta is None else eta)
    if sampler == "dpmpp_2m":
        if eta:
            raise ValueError(f"eta={eta}: dpmpp_2m is deterministic (DDIM eta 0); DDIM's stochastic eta has no "
                             "DPM-Solver++ 2M counterpart")
        return make_dpm_schedule(model, steps)
    raise ValueError(f"sampler {sampler!r}: expected one of {SAMPLERS}")


def _tile(x, n: int):
    """(b, ...) -> (n*b, ...) by concatenating n copies along the batch."""
    return x if n == 1 else ops.concat([x] * n, axis=0)


def denoiser(model, cond, uncond=None, guidance_scale: float = 1.0, guidance_rescale: float = 0.0,
             uncond_img=None, cfg_img: float | None = None, apply=None, split: bool = False) -> Denoiser:
    """The guided :class:`~common.schedulers.denoiser.Denoiser` of DynamiCrafter (prediction = the model's
    ``parameterization``, eps or v; int timesteps), every branch in ONE UNet call.

    Args:
        model: DynamiCrafter.
        cond: dict with ``context`` (b, L, D), ``c_concat`` (b, 4, T, h, w), ``fs`` (b,) int.
        uncond: same for the unconditional branch ("" + zero-image tokens), or None (no guidance).
        guidance_scale: ``unconditional_guidance_scale`` (no guidance at 1.0, as the original).
        guidance_rescale: 0 = off.
        uncond_img / cfg_img: two-scale guidance (``DDIMSampler_multicond``, :func:`cfg_two_scale`):
            ``u + cfg_img (u_img - u) + g (c - u_img)`` with ``u_img`` = text "" + the real image tokens
            (``cfg_img`` None: the guidance scale).
        apply: the model call ``apply(x, t, c_concat, context, fs)`` (default ``model.apply_model``; e.g. an
            ``ms.jit`` compiled ``model.model.construct``).
        split: one UNet call per guidance branch (batch b) instead of one call of all of them (batch k*b): the
            activation memory of one branch, the same work; in graph mode one compiled graph serves every branch.
    """
    apply = model.apply_model if apply is None else apply
    branches = {"cond": cond}
    guidance = None
    if uncond is not None and guidance_scale != 1.0:
        branches["uncond"] = uncond
        if uncond_img is None:
            guidance = functools.partial(cfg, scale=guidance_scale, rescale=guidance_rescale)
        else:
            branches["uncond_img"] = uncond_img
            guidance = functools.partial(cfg_two_scale, scale=guidance_scale, rescale=guidance_rescale,
                                         image_scale=guidance_scale if cfg_img is None else cfg_img)
    n = len(branches)
    conds = list(branches.values())
    stacked = {k: ops.concat([br[k] for br in conds], axis=0) for k in ("context", "c_concat", "fs")}

    def model_fn(x, t, branch):
        c, k = (stacked, n) if branch is None else (conds[branch], 1)
        return apply(_tile(x, k), _tile(t, k), c["c_concat"], c["context"], c["fs"])  # (k*b, 4, T, h, w)

    return guided_denoiser(model_fn, tuple(branches), guidance, prediction=model.parameterization, split=split)


def step_noise(shape, noise=None, generator: np.random.Generator | None = None):
    """The per-step N(0, 1) draws of DDIM with eta > 0, as ``sample_ddim``'s ``noise(i)`` (i = loop step).

    Args:
        shape: the latent's shape (b, 4, T, h, w).
        noise: recorded draws ``noise[i]`` (array / sequence), or None to draw.
        generator: numpy ``Generator`` for the draws (reproducible; None: fresh entropy).
    """
    if noise is not None:
        return lambda i: ms.Tensor(np.asarray(noise[i], np.float32))
    rng = generator if generator is not None else np.random.default_rng()
    return lambda i: ms.Tensor(rng.standard_normal(tuple(shape)).astype(np.float32))


def _tensor(x, dtype=ms.float32):
    return x.astype(dtype) if isinstance(x, ms.Tensor) else ms.Tensor(np.asarray(x), dtype)


class DynamiCrafterPipeline:
    """Callable image(+text)-to-video pipeline around a loaded :class:`DynamiCrafter`.

    Args:
        model: the loaded model (eval mode).
        jit: (False) compile the UNet call (``model.model.construct``, :meth:`unet_apply`) with ``ms.jit``
            once and reuse it for every step, both guidance branches and every later call of the same shapes;
            the encoders and the VAE stay eager (PyNative), so no graph of theirs holds buffers. False: all
            eager (``--mode pynative``).
        release_before_decode: (True) with ``jit``, :meth:`release_graph` after the sampling of a call's videos
            and before their VAE decode (the graph's buffers are not held while the VAE decodes; the next call
            compiles again: at full size ~50 s against ~55 s per UNet call x 2 x 50 steps).
    """

    def __init__(self, model: DynamiCrafter, jit: bool = False, release_before_decode: bool = True):
        self.model = model
        self.jit = bool(jit)
        self.release_before_decode = bool(release_before_decode)
        self._compiled = None

    def unet_apply(self):
        """The UNet call ``apply(x, t, c_concat, context, fs)`` handed to :func:`denoiser`: the one ``ms.jit``
        compiled ``model.model.construct`` of this pipeline with ``jit``, else the eager ``model.apply_model``."""
        if not self.jit:
            return self.model.apply_model
        if self._compiled is None:
            self._compiled = ms.jit(self.model.model.construct)
        return self._compiled

    def release_graph(self) -> None:
        """Drop the compiled UNet graph and what it holds (:func:`common.memory_plan.release_compiled_graphs`:
        ``ms.ms_memory_recycle``, then the freed heap handed back to the system); the next sampling compiles again. Measured (``scripts/unet_graph_memory.py``, docs/performance.md): of the
        2.6 GiB a 96-channel UNet graph (16 x 256 x 256) holds beyond PyNative after sampling, this gives back
        0.45 GiB; the rest stays with the process."""
        if self._compiled is None:
            return
        self._compiled = None
        release_compiled_graphs()

    def check_inputs(self, prompt, image, num_frames, height, width, num_inference_steps):
        """Raise ValueError naming the bad argument; returns (prompts, videos (B, 3, T, H, W))."""
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        videos = _tensor(image)
        if videos.ndim == 4:  # (B, 3, H, W): one picture per video, repeated over the frames
            if num_frames is None:
                raise ValueError("num_frames is required with a (B, 3, H, W) image")
            videos = ops.tile(videos[:, :, None], (1, 1, int(num_frames), 1, 1))
        if videos.ndim != 5 or videos.shape[1] != 3:
            raise ValueError(f"image must be (B, 3, H, W) or (B, 3, T, H, W) in [-1, 1], got {tuple(videos.shape)}")
        b, _, t, h, w = videos.shape
        if num_frames is not None and int(num_frames) != t:
            raise ValueError(f"num_frames={num_frames} but image has {t} frames")
        if (height is not None and height != h) or (width is not None and width != w):
            raise ValueError(f"image is {h}x{w} but height x width = {height}x{width}: resize the image first")
        if len(prompts) != b:
            raise ValueError(f"got {len(prompts)} prompts for a batch of {b} videos")
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
        return prompts, videos

    def encode_conditions(self, prompts, videos, *, negative_prompt=None, guidance_scale: float = 1.0,
                          image_guidance_scale=None, multiple_cond_cfg: bool = False, frame_stride=None,
                          text_input: bool = True, loop: bool = False, interp: bool = False, encode_noise=None,
                          generator=None):
        """The conditioning of every guidance branch, as ``image_guided_synthesis`` hands it to the sampler.

        Args: as :meth:`__call__`; ``prompts`` a list of B strings, ``videos`` (B, 3, T, H, W) in [-1, 1],
        ``generator`` the numpy Generator of the VAE posterior draws (used when ``encode_noise`` is None).

        Returns:
            ``(cond, uncond, uncond_img)``: dicts with ``context`` (B, 77 + 16*T, D), ``c_concat`` (B, 4, T, h, w)
            and ``fs`` (B,) int64; ``uncond`` is None without guidance (scale 1.0), ``uncond_img`` None
            unless two-scale guidance is on. The image tokens come from frame 0 only (the start frame with
            ``interp``); every branch shares the one ``c_concat``.
        """
        model = self.model
        b = videos.shape[0]
        fs_value = model.unet.default_fs if frame_stride is None else int(frame_stride)
        fs = ms.Tensor(np.full((b,), fs_value, np.int64))
        if not text_input:
            prompts = [""] * b
        img = videos[:, :, 0]  # (B, 3, H, W)
        img_emb = model.embed_image(img)  # (B, 16*T, D)
        cond_emb = model.get_learned_conditioning(prompts)  # (B, 77, D)
        z = model.encode_first_stage(videos, noise=encode_noise, generator=generator)  # (B, 4, T, h, w)
        c_concat = image_latent_condition(z, key_frames=loop or interp)
        cond = {"context": ops.concat([cond_emb, img_emb], axis=1), "c_concat": c_concat, "fs": fs}
        if float(guidance_scale) == 1.0:
            return cond, None, None
        if model.uncond_type == "empty_seq":
            uc_emb = model.get_learned_conditioning([negative_prompt or ""] * b)
        else:
            uc_emb = ops.zeros_like(cond_emb)
        uc_img_emb = model.embed_image(ops.zeros_like(img))
        uncond = {"context": ops.concat([uc_emb, uc_img_emb], axis=1), "c_concat": c_concat, "fs": fs}
        uncond_img = None
        if (multiple_cond_cfg or image_guidance_scale is not None) and image_guidance_scale != 1.0:
            uncond_img = {"context": ops.concat([uc_emb, img_emb], axis=1), "c_concat": c_concat, "fs": fs}
        return cond, uncond, uncond_img

    def __call__(
        self,
        prompt,
        image,
        *,
        negative_prompt: str | None = None,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int = 50,
        guidance_scale: float = 1.0,
        image_guidance_scale: float | None = None,
        multiple_cond_cfg: bool = False,
        guidance_rescale: float = 0.0,
        eta: float | None = None,
        timestep_spacing: str = "uniform",
        sampler: str = "ddim",
        split_cfg: bool = False,
        frame_stride: int | None = None,
        text_input: bool = True,
        loop: bool = False,
        interp: bool = False,
        num_videos_per_prompt: int = 1,
        seed: int | None = None,
        generator: np.random.Generator | None = None,
        latents=None,
        encode_noise=None,
        step_noise_draws=None,
        output_type: str = "np",
        callback=None,
        progress: bool = True,
    ) -> VideoOutput:
        """Animate the input picture(s) guided by the prompt(s).

        Args:
            prompt: a string or B strings (one per video).
            image: (B, 3, H, W) in [-1, 1], repeated over ``num_frames``; or the original's (B, 3, T, H, W)
                video (frames 0 and T-1 are the two key frames with ``interp`` / ``loop``).
            negative_prompt: (None = "") text of the unconditional branch.
            num_frames: (None = the image's T) frames; required for a (B, 3, H, W) image.
            height / width: (None) checked against the image's size if given (the image is not resized).
            num_inference_steps: (50) DDIM steps (``--ddim_steps``).
            guidance_scale: (1.0) text/image CFG scale (``--unconditional_guidance_scale``); 1.0 = no guidance.
            image_guidance_scale / multiple_cond_cfg: two-scale guidance with image scale
                ``image_guidance_scale`` (``--cfg_img``; default: the guidance scale); on with
                ``multiple_cond_cfg`` or a given ``image_guidance_scale``.
            guidance_rescale: (0.0) 0.7 for 512/1024.
            eta: (None = 1.0, the original's) DDIM eta (``--ddim_eta``); 0 = deterministic. ``dpmpp_2m``: None or 0.
            timestep_spacing: ("uniform") or "uniform_trailing" (512/1024); DDIM only (dpmpp_2m starts at
                t = n-1, where both start in the many-step limit, on a log-SNR-uniform grid).
            sampler: ("ddim") the original's DDIM, or "dpmpp_2m": DPM-Solver++ 2M, deterministic, on the same
                ODE and end point (:func:`make_dpm_schedule`): about half the steps for DDIM's (eta 0) result.
            split_cfg: (False) one UNet call per guidance branch instead of one stacked call (``--split_cfg``):
                less activation memory (graph mode: one compiled graph of batch B), the same numbers.
            frame_stride: (None = the UNet's default_fs) frame stride (256) or fps (512/1024) conditioning.
            text_input: (True) use the prompts; False = empty prompts (image-only animation).
            loop / interp: condition on the first AND last frame latents (others zero).
            num_videos_per_prompt: (1) videos drawn per input (``--n_samples``).
            seed / generator: (None) numpy ``default_rng(seed)``, or the given numpy Generator (wins), for every draw.
            latents: (B, 4, T, h, w) initial noise x_T, the same for every video of a prompt (drawn when None).
            encode_noise: (B, 4, T, h, w) VAE posterior draws (drawn when None).
            step_noise_draws: per-step noise for eta > 0 (``[i]`` indexed; drawn when None).
            output_type: ("np") decoded frames, or "latent" (no decoding; ``frames`` None).
            callback: called after each sampler step with ``{"x", "i", "t", "denoised"}``.
            progress: show the DDIM progress bar.

        Returns:
            :class:`VideoOutput`: frames (B * num_videos_per_prompt, T, H, W, 3) in [0, 1], prompt-major
            (video j of prompt i at ``i * num_videos_per_prompt + j``); latents the same order, (.., 4, T, h, w).
        """
        model = self.model
        check_output_type(output_type)
        prompts, videos = self.check_inputs(prompt, image, num_frames, height, width, num_inference_steps)
        schedule = sampler_schedule(model, sampler, num_inference_steps, timestep_spacing, eta)  # bad options first
        rng = numpy_generator(seed, generator)
        b, _, t = videos.shape[:3]
        cond, uncond, uncond_img = self.encode_conditions(
            prompts, videos, negative_prompt=negative_prompt, guidance_scale=guidance_scale,
            image_guidance_scale=image_guidance_scale, multiple_cond_cfg=multiple_cond_cfg, frame_stride=frame_stride,
            text_input=text_input, loop=loop, interp=interp, encode_noise=encode_noise, generator=rng)
        fn = denoiser(model, cond, uncond, float(guidance_scale), guidance_rescale, uncond_img, image_guidance_scale,
                      apply=self.unet_apply(), split=split_cfg)

        noise_shape = (b, model.unet.out_channels, t) + tuple(cond["c_concat"].shape[3:])
        stochastic = isinstance(schedule, DDIMSchedule) and schedule.eta > 0
        noise = step_noise(noise_shape, step_noise_draws, rng) if stochastic else None
        finals = []
        for _ in range(num_videos_per_prompt):  # every video sampled first, then decoded (the same draws)
            x_t = latents if latents is not None else rng.standard_normal(noise_shape).astype(np.float32)
            finals.append(sample(fn, _tensor(x_t), schedule, noise=noise, progress=progress,
                                 callback=callback).asnumpy())
        if self.release_before_decode:
            self.release_graph()
        frames = [frames_from_decoded(model.decode_first_stage(ms.Tensor(x)).asnumpy(), 1, 2)  # (B, T, H, W, 3)
                  for x in finals] if output_type == "np" else []

        def prompt_major(arrs):  # n x (B, ...) -> (B*n, ...), video j of prompt i at i*n + j
            return np.stack(arrs, axis=1).reshape((-1,) + arrs[0].shape[1:])

        return VideoOutput(frames=prompt_major(frames) if frames else None, latents=prompt_major(finals), seed=seed)
