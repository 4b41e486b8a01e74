"""The ``scripts/animate.py`` flow: every entry of a prompt config, every prompt with its seed.

Output (as the original): ``<savedir>/sample/<i>-<first 10 words>.gif`` per video (and ``.mp4`` on
request), ``<savedir>/sample.gif`` (grid of all videos, 4 per row) and ``<savedir>/config.yaml`` (the
prompt config with the seeds actually used), in ``samples/<config name>-<YYYY-mm-ddTHH-MM-SS>``; SparseCtrl entries
also write their condition images to ``<savedir>/control_images/<i>.png`` (``<entry>-<i>.png`` when several
entries have them; the original overwrites one entry's with the next one's).
"""
from __future__ import annotations

import dataclasses
import datetime
import time
from pathlib import Path

import numpy as np
import yaml

from common.sidecar import record_script_run
from common.video_io import save_videos_grid

from .config import ConfigError, InferenceConfig
from .loading import build_pipeline, load_weights
from .prompt_config import PromptEntry
from .sparsectrl import build_controlnet, init_random, prepare_condition, save_condition_images


def condition_seed(entry: PromptEntry) -> int | None:
    """Seed of the RGB condition's VAE posterior noise: the entry's first seed (None when -1: random)."""
    s = entry.seeds[0] if entry.seeds else -1
    return None if s == -1 else int(s)


def attach_controlnet(pipe, entry: PromptEntry, log=print, random_seed: int | None = None):
    """SparseCtrl for an entry (before ``load_weights``, as ``scripts/animate.py``): the controlnet built from the
    UNet's config + ``controlnet_config`` with ``controlnet_path`` loaded (or random weights from ``random_seed``
    for the demo), and the condition images prepared with the pipeline's current (base) VAE at the entry's H x W."""
    if not entry.uses_controlnet:
        return pipe
    if not entry.controlnet_path and random_seed is None:
        raise ConfigError(f"entry {entry.index}: controlnet_path: missing (controlnet_images are given)")
    if entry.controlnet_path:
        (log or (lambda *_: None))(f"loading controlnet checkpoint from {entry.controlnet_path} ...")
    net = build_controlnet(pipe.unet.cfg, entry.controlnet_config, entry.controlnet_path or None)
    if not entry.controlnet_path:
        init_random(net, random_seed or 0)
    pipe.controlnet = net
    h, w = entry.H or 512, entry.W or 512
    pipe.condition = prepare_condition(entry, pipe.vae, net, h, w, seed=condition_seed(entry), log=log)
    return pipe


def build_entry_pipeline(entry: PromptEntry, pretrained_model_path, jit: bool = False, progress: bool = True,
                         log=print, inference_config: str | None = None):
    """Models for one prompt-config entry: the diffusers folder, the SparseCtrl controlnet and its condition
    (when the entry names one), then ``load_weights`` in the original order. An SDXL folder (with
    ``text_encoder_2/``) builds the SDXL pipeline instead (:func:`animatediff_ms.loading_sdxl.build_sdxl_entry_pipeline`)."""
    from .loading_sdxl import build_sdxl_entry_pipeline, is_sdxl_folder

    if is_sdxl_folder(pretrained_model_path):
        return build_sdxl_entry_pipeline(entry, pretrained_model_path, jit, inference_config, log)
    inf = InferenceConfig.load(inference_config or entry.inference_config)
    pipe = build_pipeline(pretrained_model_path, inf, jit=jit)
    attach_controlnet(pipe, entry, log)
    load_weights(pipe.unet, pipe.vae, pipe.text_encoder, motion_module_path=entry.motion_module,
                 motion_module_lora_configs=entry.motion_module_lora_configs,
                 adapter_lora_path=entry.adapter_lora_path, adapter_lora_scale=entry.adapter_lora_scale,
                 dreambooth_model_path=entry.dreambooth_path, lora_model_path=entry.lora_model_path,
                 lora_alpha=entry.lora_alpha, log=log)
    if entry.sampler:
        pipe.scheduler.sampler = entry.sampler
    return pipe


def prompt_slug(prompt: str) -> str:
    """The original's file name part: the first 10 words joined by '-', slashes removed."""
    return "-".join(prompt.replace("/", "").split(" ")[:10])


def make_savedir(config_path, root="samples") -> Path:
    """``samples/<config stem>-<time stamp>`` (created; a suffix is added if it exists)."""
    stamp = datetime.datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    d = Path(root) / f"{Path(config_path).stem}-{stamp}"
    k = 1
    while d.exists():
        d = Path(root) / f"{Path(config_path).stem}-{stamp}-{k}"
        k += 1
    d.mkdir(parents=True)
    return d


def run_prompt_config(entries: list[PromptEntry], raw_config, savedir: Path, make_pipeline, *, H: int, W: int,
                      L: int, mp4: bool = False, fps: int = 8, sampler: str | None = None, steps: int | None = None,
                      progress: bool = True, log=print, override_size=(None, None, None)) -> list[Path]:
    """Generate every video of every entry and write them.

    Args:
        entries: the validated prompt config. raw_config: the yaml data (saved with the seeds used).
        savedir: output folder. make_pipeline: ``entry -> AnimationPipeline``.
        H / W / L: size used where an entry gives none. mp4: also write ``.mp4`` files. fps: frame rate (8).
        override_size: (H, W, L) given explicitly on the command line: they win over the entries' values.
        sampler / steps: overrides of the entries' sampler and steps (None = from the config).
    Returns:
        the written files.
    """
    say = log or (lambda *_: None)
    written, videos = [], []
    sample_idx = 0
    n_control = sum(1 for e in entries if e.uses_controlnet)
    for entry in entries:
        oh, ow, ol = override_size
        h, w, n = oh or entry.H or H, ow or entry.W or W, ol or entry.L or L
        entry.H, entry.W, entry.L = h, w, n  # resolved before the models: SparseCtrl loads its images at H x W
        entry.check_controlnet(n, f"entry {entry.index}")
        pipe = make_pipeline(entry)
        control = {}
        if getattr(pipe, "condition", None) is not None:
            control = pipe.condition.kwargs()
            save_condition_images(pipe.condition.pixels, savedir / "control_images",
                                  f"{entry.index}-" if n_control > 1 else "")
        used = []
        for prompt, n_prompt, seed in zip(entry.prompts, entry.n_prompts, entry.seeds):
            say(f"sampling {prompt} ...")  # a str, or {frame: text} for prompt travel
            t0 = time.time()
            out = pipe(prompt, num_frames=n, height=h, width=w, num_inference_steps=steps or entry.steps,
                       guidance_scale=entry.guidance_scale, negative_prompt=n_prompt, seed=seed,
                       sampler=sampler or entry.sampler, progress=progress, context_length=entry.context_length,
                       context_overlap=entry.context_overlap, context_schedule=entry.context_schedule,
                       free_init_iters=entry.free_init_iters, **control)
            say(f"current seed: {out.seed}  ({time.time() - t0:.1f} s)")
            used.append(out.seed)
            video = out.frames.transpose(0, 4, 1, 2, 3)  # (1, T, H, W, 3) -> the grid writer's (1, 3, T, H, W)
            videos.append(video)
            text = prompt if isinstance(prompt, str) else prompt[min(prompt)]  # prompt travel: the first text
            stem = savedir / "sample" / f"{sample_idx}-{prompt_slug(text)}"
            for suffix in (".gif", ".mp4") if mp4 else (".gif",):
                written.append(save_videos_grid(video, stem.with_suffix(suffix), nrow=6, fps=fps,
                                                value_range=(0, 1)))
            say(f"save to {stem}.gif")
            record_script_run(  # the run record beside the video (<stem>.json)
                stem.with_suffix(".gif"), model="animatediff", script="animatediff/text_to_video.py",
                args={"prompt": prompt, "n_prompt": n_prompt, "seed": out.seed, "H": h, "W": w, "L": n,
                      "steps": steps or entry.steps, "guidance_scale": entry.guidance_scale,
                      "sampler": sampler or entry.sampler, "fps": fps, "entry": dataclasses.asdict(entry)},
                weights=[entry.motion_module, entry.dreambooth_path, entry.lora_model_path, entry.adapter_lora_path,
                         entry.controlnet_path], seed=out.seed, seconds=time.time() - t0,
                outputs=[stem.with_suffix(x) for x in ((".gif", ".mp4") if mp4 else (".gif",))])
            sample_idx += 1
        if isinstance(raw_config, list) and entry.index < len(raw_config) and isinstance(raw_config[entry.index], dict):
            raw_config[entry.index]["random_seed"] = used
        del pipe
    if videos:
        shapes = {v.shape[2:] for v in videos}
        if len(shapes) == 1:
            grid = np.concatenate(videos, axis=0)
            for suffix in (".gif", ".mp4") if mp4 else (".gif",):
                written.append(save_videos_grid(grid, savedir / f"sample{suffix}", nrow=4, fps=fps, value_range=(0, 1)))
        else:
            say("videos of different sizes: no grid written")
    (savedir / "config.yaml").write_text(yaml.safe_dump(raw_config, sort_keys=False, allow_unicode=True))
    return written
