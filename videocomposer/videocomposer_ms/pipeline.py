"""Compose a video: condition extraction, text / style encoding, guided DDIM, decoding (``inference_single.py``).

:class:`VideoComposerPipeline` holds the parts a config needs (built once) and turns the files of one run
into the UNet's conditions (``guidances``), samples and decodes; :func:`condition_panels` lays the
conditions out for the side-by-side video the original saves.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import ops
from PIL import Image

from common.checkpoint import CheckpointError
from common.clip import tokenize
from common.config import ConfigError
from common.pipeline_utils import VideoOutput
from common.schedulers import cfg, guided_denoiser, ldm_alphas_cumprod, make_ddim_schedule, sample_ddim

from . import model as M
from .config import VideoComposerConfig
from .data import Inputs, prepare_inputs

# ---- the sampler --------------------------------------------------------------------------------------
# The original's sampler: ``GaussianDiffusion.ddim_sample_loop`` with classifier-free guidance, built from
# :mod:`common.schedulers`.
#
# * Betas ``linear_sd``: ``linspace(sqrt(0.00085), sqrt(0.012), 1000, float64) ** 2`` (hard-coded in
#   ``inference_single.py``), coefficients in float64 cast to float32.
# * Steps ``(1 + arange(0, 1000, 1000//S)).clamp(0, 999)`` reversed (S=3 -> 999, 667, 334, 1).
# * ``a_prev = alphas_cumprod[(t - 1000//S).clamp(0)]`` (``prev_rule="stride"``, no alpha of 1 at the end).
# * Guidance ``u + s * (c - u)`` (s = 9.0 in the original) with the unconditional branch the original builds:
#   ``y = zero_y``, ``image = zeros`` (still through ``pre_image_condition``), every spatial condition kept.

#: the original's hard-coded betas and guidance scale.
INIT_BETA, LAST_BETA = 0.00085, 0.012
GUIDE_SCALE = 9.0


def videocomposer_schedule(num_steps: int, num_timesteps: int = 1000, eta: float = 0.0, clamp: float | None = None):
    """The :class:`~common.schedulers.DDIMSchedule` of ``ddim_sample_loop(ddim_timesteps=num_steps, eta=eta,
    clamp=clamp)`` (``clamp``: x0 clipped to [-clamp, clamp] and eps re-derived from it; the original's
    inference passes None)."""
    ac = ldm_alphas_cumprod("linear", num_timesteps, INIT_BETA, LAST_BETA)
    return make_ddim_schedule(ac, num_steps, spacing="uniform", eta=eta, prev_rule="stride", set_alpha_to_one=False,
                              clip_x0=clamp)


def uncond_kwargs(cond: dict, zero_y) -> dict:
    """The original's unconditional branch: ``y`` -> ``zero_y`` repeated over the batch, ``image`` -> zeros,
    every other condition unchanged."""
    out = dict(cond)
    b = cond["y"].shape[0]
    out["y"] = ops.broadcast_to(zero_y, (b,) + tuple(zero_y.shape[1:]))
    if cond.get("image") is not None:
        out["image"] = ops.zeros_like(cond["image"])
    return out


def sample(unet, noise, cond: dict, zero_y, num_steps: int, *, guide_scale: float = GUIDE_SCALE, eta: float = 0.0,
           num_timesteps: int = 1000, clamp: float | None = None, callback=None, progress: bool = True):
    """DDIM from ``noise`` (b, 4, f, h, w) with guidance.

    Args:
        unet: :class:`~.unet.UNetSDTemporal`.
        cond: the conditional UNet kwargs (``y`` required; ``image``, spatial conditions as given).
        zero_y: (1, 77, 1024) text context of ``""``.
        num_steps: ``ddim_timesteps`` S. guide_scale: CFG scale. eta: DDIM eta. clamp: x0 clip (None).
        callback: called after each step with ``{"x", "i", "t", "denoised"}``. progress: show a bar.
    Returns: the final latent (b, 4, f, h, w).
    """
    branches = (uncond_kwargs(cond, zero_y), cond)

    def model_fn(x, t, k):
        return unet(x, t, **branches[k])

    den = guided_denoiser(model_fn, ("uncond", "cond"), partial(cfg, scale=guide_scale), prediction="eps",
                          split=True)
    schedule = videocomposer_schedule(num_steps, num_timesteps, eta, clamp)
    return sample_ddim(den, noise, schedule, callback=callback, disable=not progress), schedule


def step_list(num_steps: int, num_timesteps: int = 1000) -> np.ndarray:
    """The timesteps the sampler visits (descending)."""
    return videocomposer_schedule(num_steps, num_timesteps).timesteps


def part_files(cfg: VideoComposerConfig) -> dict[str, str]:
    """The file each part is read from in ``weights_dir``: the config's ``resume_checkpoint``,
    ``clip_checkpoint`` and ``sd_checkpoint`` (their file names), the released names of the extractors;
    ``<stem>.ckpt`` (a converted file) when the released one is absent."""
    return {"unet": Path(cfg.resume_checkpoint).name, "clip": Path(cfg.clip_checkpoint).name,
            "vae": Path(cfg.sd_checkpoint).name, "midas": M.MIDAS_FILE, "pidinet": M.PIDINET_FILE,
            "sketch": M.SKETCH_FILE}


@dataclass
class ComposerOutput(VideoOutput):
    """:class:`~common.pipeline_utils.VideoOutput` plus ``conditions``: ``{name: (B, F, H, W, 3)}`` panels in
    [0, 1] of the conditions used (the original's side-by-side columns) and ``source`` (B, F, H, W, 3) or None."""

    conditions: dict = field(default_factory=dict)
    source: np.ndarray | None = None


def _t(a) -> ms.Tensor:
    return ms.Tensor(np.ascontiguousarray(a, dtype=np.float32))


class VideoComposerPipeline:
    """The model parts of ``cfg`` loaded from ``weights_dir`` (the six released file names), or random
    weights when ``weights_dir`` is None (a demo of the code path, not of the model).

    Raises:
        CheckpointError: a missing file (named), a file that does not fit (first mismatched key and shapes).
    """

    def __init__(self, cfg: VideoComposerConfig, weights_dir: str | Path | None = None):
        self.cfg = cfg
        self.random = weights_dir is None
        g = set(cfg.guidances)
        self.need_depth = "depth" in g
        self.need_sketch = bool(g & {"sketch", "single_sketch"})
        self.need_style = "image" in g
        ctx, fixed = cfg.unet_context_dim, cfg.hardcoded_context_dim
        width, embed = cfg.clip_model_cfg["text_cfg"]["width"], cfg.clip_model_cfg["embed_dim"]
        # the text context feeds every cross-attention (the output blocks' are hardcoded_context_dim wide
        # unless only the middle block attends) and is concatenated with the style token
        need_fixed = bool(cfg.unet_attn_scales) or self.need_style
        if width != ctx or (need_fixed and ctx != fixed) or (self.need_style and embed != fixed):
            raise ConfigError(
                f"context widths disagree: clip_model_cfg text width {width}, embed_dim {embed}, unet_context_dim "
                f"{ctx}, hardcoded_context_dim {fixed} (the text width must equal unet_context_dim, which must "
                "equal hardcoded_context_dim when the output blocks attend or a style image is used, as must "
                "embed_dim with a style image)")

        def path(part):
            if weights_dir is None:
                return None
            name = part_files(cfg)[part]
            for p in (Path(weights_dir) / name, Path(weights_dir) / (Path(name).stem + ".ckpt")):
                if p.is_file():  # the released file, or what tools/convert_weight.py --output_dir wrote
                    return p
            raise CheckpointError(f"{part} weights not found: {Path(weights_dir) / name} (give --weights_dir, or "
                                  "--random_weights for a random-weight run)")

        self.unet = M.build_unet(cfg, path("unet"))
        self.clip = M.build_clip(cfg, path("clip"))
        self.vae = M.build_vae(cfg, path("vae"))
        self.midas = M.build_midas(cfg, path("midas")) if self.need_depth else None
        self.sketch = M.build_sketch(cfg, path("pidinet"), path("sketch")) if self.need_sketch else None

    # ---- conditions ---------------------------------------------------------------------------
    def encode_text(self, prompts: list[str]) -> ms.Tensor:
        """(N, 77, C) penultimate-layer text context of ``prompts``."""
        return self.clip.encode_with_transformer(ms.Tensor(tokenize(prompts).astype(np.int32)))

    def _per_frame(self, net, frames: np.ndarray, chunk: int):
        outs = []
        for s in range(0, frames.shape[0], chunk):
            outs.append(net(_t(frames[s:s + chunk])))
        return outs

    def depth(self, misc: np.ndarray) -> np.ndarray:
        """(F, 3, S, S) in [0, 1] -> (F, 1, S, S) ``(MiDaS(2x-1) / depth_std).clamp(0, depth_clamp)``."""
        raw = self._per_frame(lambda x: self.midas(x * 2.0 - 1.0), misc, max(self.cfg.chunk_size, 1))
        d = np.concatenate([r.asnumpy() for r in raw])
        return np.clip(d / self.cfg.depth_std, 0.0, self.cfg.depth_clamp)

    def sketches(self, images: np.ndarray) -> np.ndarray:
        """(F, 3, S, S) in [0, 1] -> (F, 1, S, S) cleaned sketches in [0, 1]."""
        out = self._per_frame(lambda x: self.sketch(x)[1], images, max(self.cfg.chunk_size, 1))
        return np.concatenate([o.asnumpy() for o in out])

    def build_conditions(self, inp: Inputs, prompt: str, zero_y) -> tuple[dict, dict]:
        """The conditional UNet kwargs of ``guidances`` (batch 1) and their numpy (1, C, F, H, W) forms;
        without ``y`` in ``guidances`` the text context is ``zero_y`` (the original UNet's fallback)."""
        cfg, f = self.cfg, self.cfg.frames
        g = cfg.guidances
        arrays: dict[str, np.ndarray] = {}
        sketch = None
        if "sketch" in g or "single_sketch" in g:
            src = np.repeat(inp.sketch_image[None], f, 0) if inp.sketch_image is not None else inp.misc
            sketch = self.sketches(src)  # (F, 1, S, S)
        for name in g:
            if name == "depth":
                arrays[name] = inp.depth if inp.depth is not None else self.depth(inp.misc)
            elif name == "sketch":
                arrays[name] = sketch
            elif name == "single_sketch":
                arrays[name] = np.repeat(sketch[:1], f, 0)
            elif name == "local_image":
                first = inp.image if inp.image is not None else inp.misc[0]
                arrays[name] = np.repeat(first[None], f, 0)
            elif name == "masked":
                keep = 1.0 - inp.mask[None, None]  # (1, 1, S, S)
                arrays[name] = np.concatenate([(inp.misc * 2 - 1) * keep, np.repeat(keep, f, 0)], axis=1)
            elif name == "motion":
                arrays[name] = inp.motion
        arrays = {k: v.transpose(1, 0, 2, 3)[None].astype(np.float32) for k, v in arrays.items()}  # (1, C, F, H, W)
        cond = {k: _t(v) for k, v in arrays.items()}
        cond["y"] = self.encode_text([prompt]) if "y" in g else zero_y
        if "image" in g:
            cond["image"] = self.clip.encode_image(_t(inp.style[None])).expand_dims(1)  # (1, 1, C)
        if cfg.use_fps_condition:  # both branches get it, as the original's prepare_model_kwargs
            cond["fps"] = ms.Tensor(np.array([cfg.feature_framerate], np.int64))
        return cond, arrays

    def __call__(self, prompt: str, *, video=None, image_path=None, style_image=None, sketch_path=None,
                 depth=None, num_inference_steps: int | None = None, guidance_scale: float = GUIDE_SCALE,
                 seed: int | None = None, progress: bool = True, callback=None) -> ComposerOutput:
        """One composition.

        Args:
            prompt: the caption. video: the source video (motion, depth, sketch, first frame, masks).
            image_path / style_image / sketch_path: used when the config's ``read_image`` / ``read_style`` /
                ``read_sketch`` is true.
            depth: (H, W) depth in [0, depth_clamp] used for every frame instead of MiDaS on ``video``.
            num_inference_steps: DDIM steps (default ``ddim_timesteps``). guidance_scale: CFG scale (9.0).
            seed: noise and input randomness (default ``cfg.seed``).
            callback: (None) called after each DDIM step with ``{"x", "i", "t", "denoised"}``.
        """
        cfg = self.cfg
        seed = cfg.seed if seed is None else int(seed)
        rng = np.random.default_rng(seed)
        g = set(cfg.guidances)
        need_video = bool(g & {"motion", "masked"}) or ("depth" in g and depth is None) or ("sketch" in g and not cfg.read_sketch) \
            or ("single_sketch" in g and not cfg.read_sketch) or ("local_image" in g and not cfg.read_image) \
            or ("image" in g and not cfg.read_style) or cfg.save_origin_video
        inp = prepare_inputs(cfg, video=video, image_path=image_path, style_image=style_image,
                             sketch_path=sketch_path, need_video=need_video, need_motion="motion" in g,
                             need_mask="masked" in g, rng=rng)
        zero_y = self.encode_text([""])
        if depth is not None:
            inp.depth = given_depth(np.asarray(depth, np.float32), cfg.misc_size, cfg.frames)
        cond, arrays = self.build_conditions(inp, prompt, zero_y)
        h, w = inp.latent_hw
        if cfg.share_noise:  # one (c, h, w) draw for every frame
            noise = np.repeat(rng.standard_normal((1, 4, 1, h, w)).astype(np.float32), cfg.frames, axis=2)
        else:
            noise = rng.standard_normal((1, 4, cfg.frames, h, w)).astype(np.float32)
        steps = int(num_inference_steps or cfg.ddim_timesteps)
        z, _ = sample(self.unet, _t(noise), cond, zero_y, steps, guide_scale=guidance_scale, eta=cfg.ddim_eta,
                      num_timesteps=cfg.num_timesteps, callback=callback, progress=progress)
        video_out = self.vae.decode_video(z, cfg.scale_factor, chunk_size=max(cfg.chunk_size, 1)).asnumpy()
        mean = np.asarray(cfg.mean, np.float32).reshape(1, 3, 1, 1, 1)
        std = np.asarray(cfg.std, np.float32).reshape(1, 3, 1, 1, 1)
        video01 = np.clip(video_out * std + mean, 0, 1)  # (1, 3, F, H, W)
        frames = np.ascontiguousarray(video01.transpose(0, 2, 3, 4, 1))
        size = frames.shape[2:4]
        panels = condition_panels(arrays, size)
        source = None
        if cfg.save_origin_video and inp.misc is not None:
            source = _resize_frames(inp.misc.transpose(0, 2, 3, 1)[None], size)
        return ComposerOutput(frames=frames, latents=z.asnumpy(), seed=seed, conditions=panels, source=source)


def given_depth(depth: np.ndarray, size: int, frames: int) -> np.ndarray:
    """(H, W) depth -> (frames, 1, size, size): ``CenterCropV2(size)`` (bicubic on the values), repeated."""
    from .data import center_crop_v2

    img = center_crop_v2(Image.fromarray(depth.astype(np.float32), mode="F"), size)
    return np.repeat(np.asarray(img, np.float32)[None, None], frames, 0)


def _resize_frames(x: np.ndarray, size) -> np.ndarray:
    """(B, F, H, W, 3) float -> (B, F, h, w, 3), area-averaged (the original's adaptive_avg_pool3d)."""
    b, f = x.shape[:2]
    out = np.empty((b, f, size[0], size[1], 3), np.float32)
    for i in range(b):
        for j in range(f):
            for c in range(3):
                im = Image.fromarray(x[i, j, :, :, c].astype(np.float32), mode="F")
                out[i, j, :, :, c] = np.asarray(im.resize((size[1], size[0]), Image.BOX))
    return out


def condition_panels(arrays: dict, size) -> dict:
    """Conditions (1, C, F, H, W) -> (1, F, h, w, 3) panels as the original draws them: 1 channel repeated,
    motion ``[dx, dy, dx]`` clipped to [0, 1], masked images ``color * keep + (1 - keep)``."""
    out = {}
    for name, a in arrays.items():
        c = a.shape[1]
        if c == 1:
            v = np.concatenate([a, a, a], axis=1)
        elif c == 2:
            v = np.concatenate([a, a[:, :1]], axis=1)
        elif c == 4:
            v = (a[:, :3] + 1.0) / 2.0 * a[:, 3:4] + (1.0 - a[:, 3:4])
        else:
            v = a
        out[name] = np.clip(_resize_frames(v.transpose(0, 2, 3, 4, 1), size), 0.0, 1.0)
    return out


def side_by_side(out: ComposerOutput) -> np.ndarray:
    """(F, H, W * k, 3): [source,] conditions..., result (the first video of the batch), in [0, 1]."""
    cols = ([out.source[0]] if out.source is not None else []) + [v[0] for v in out.conditions.values()]
    return np.concatenate(cols + [out.frames[0]], axis=2)


__all__ = ["VideoComposerPipeline", "ComposerOutput", "condition_panels", "side_by_side"]
