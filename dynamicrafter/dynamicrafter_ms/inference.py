"""Command line of ``inference.py`` (flags of the original ``scripts/evaluation/inference.py``).

Reads a prompts folder (pictures + one prompt file), animates every picture with its prompt and
writes ``<savedir>/samples_separate/<picture>_sample<i>.mp4`` (and ``.gif`` with ``--save_gif``).
Long videos (:mod:`dynamicrafter_ms.longvideo`): ``--keyframes a.png b.png c.png ...`` (the interpolation model
between each consecutive pair, joined: ``keyframes_sample<i>.mp4``) and ``--extend N`` (each clip continued N
times from its last frame).
Bad input ends with one ``error: ...`` line naming the fault (exit status 2).
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from common.memory_plan import MemoryModel

DTYPES = ("float32", "float16", "bfloat16")


def get_parser() -> argparse.ArgumentParser:
    """The flags (names and defaults of the original; ours are marked [ms])."""
    from common.cli import OneLineParser, seed_or_random

    p = OneLineParser(description="DynamiCrafter image-to-video inference (MindSpore).")
    p.add_argument("--savedir", "--output_dir", dest="savedir", type=str, default="results", help="results folder (default results)")
    p.add_argument("--ckpt_path", "--ckpt", dest="ckpt_path", type=str, default=None,
                   help="released model.ckpt (PyTorch) or a converted MindSpore .ckpt")
    p.add_argument("--random_init", action="store_true",
                   help="[ms] no checkpoint: random weights (demo / smoke test; the video is noise)")
    p.add_argument("--config", type=str, required=True, help="inference yaml (original schema)")
    p.add_argument("--prompt_dir", type=str, default=None,
                   help="folder with pictures and one prompt .txt file (required unless --keyframes)")
    p.add_argument("--keyframes", nargs="+", metavar="PICTURE", default=None,
                   help="[ms] long video: the interpolation model between each consecutive pair of these pictures "
                        "(in the order given), segments joined without repeating the shared frame; one mp4")
    p.add_argument("--prompt", type=str, default=None, help="[ms] the text of --keyframes (implies --text_input)")
    p.add_argument("--extend", type=int, default=0, metavar="N",
                   help="[ms] long video: continue each clip N times from its last frame (T + N*(T-1) frames)")
    p.add_argument("--n_samples", type=int, default=1, help="videos per prompt (default 1)")
    p.add_argument("--ddim_steps", "--num_inference_steps", dest="ddim_steps", type=int, default=50, help="DDIM steps (default 50)")
    p.add_argument("--ddim_eta", type=float, default=None,
                   help="DDIM eta, 0 = deterministic (default 1.0, the original's: stochastic); --sampler dpmpp_2m "
                        "is deterministic and takes no eta other than 0")
    p.add_argument("--split_cfg", action="store_true", default=None,
                   help="[ms] run the guidance branches (conditional, unconditional) as separate UNet calls of one "
                        "batch each instead of one call of all: the UNet's activation memory of one branch (in graph "
                        "mode one compiled graph of the smaller batch), the same work and numbers (default: auto in "
                        "graph mode, from the latent size and the free memory; off in pynative)")
    p.add_argument("--no_split_cfg", dest="split_cfg", action="store_false",
                   help="[ms] every guidance branch in one UNet call, whatever the free memory")
    p.add_argument("--sampler", choices=("ddim", "dpmpp_2m"), default="ddim",
                   help="[ms] ddim = the original's DDIM (default); dpmpp_2m = DPM-Solver++ 2M on the same ODE, end point, "
                        "guidance, guidance rescale and dynamic rescale: deterministic (= DDIM eta 0), about half the "
                        "steps for the same result (e.g. --ddim_steps 25; README: Samplers); its steps start at t=999 "
                        "and are uniform in log-SNR, so --timestep_spacing does not apply")
    p.add_argument("--bs", type=int, default=1, help="pictures per batch (default 1)")
    p.add_argument("--height", type=int, default=512, help="video height in pixels, multiple of 8 (default 512)")
    p.add_argument("--width", type=int, default=512, help="video width in pixels, multiple of 8 (default 512)")
    p.add_argument("--frame_stride", type=int, default=3,
                   help="frame stride (256 model, larger = more motion) or FPS (512/1024, smaller = more motion)")
    p.add_argument("--unconditional_guidance_scale", "--guidance_scale", dest="unconditional_guidance_scale", type=float, default=1.0, help="CFG scale (default 1.0 = off)")
    p.add_argument("--seed", type=seed_or_random, default=123, help="random seed (default 123; < 0 = random)")
    p.add_argument("--video_length", "--num_frames", dest="video_length", type=int, default=16, help="frames (default 16)")
    p.add_argument("--negative_prompt", nargs="?", const="", default=None,
                   help="[ms] text of the unconditional branch (default \"\"; the original's bare flag is accepted)")
    p.add_argument("--text_input", action="store_true", help="condition on the prompts (else empty prompts)")
    p.add_argument("--multiple_cond_cfg", action="store_true", help="multi-condition CFG (text and image scales)")
    p.add_argument("--cfg_img", type=float, default=None, help="image guidance scale (enables multi-condition CFG)")
    p.add_argument("--timestep_spacing", type=str, default="uniform", choices=["uniform", "uniform_trailing"],
                   help="DDIM timestep spacing (default uniform; 512/1024 use uniform_trailing)")
    p.add_argument("--guidance_rescale", type=float, default=0.0, help="guidance rescale (default 0; 512/1024: 0.7)")
    p.add_argument("--perframe_ae", action="store_true", help="VAE encode/decode one frame at a time (less memory)")
    p.add_argument("--loop", action="store_true",
                   help="looping video (interp model: first and last frame latents of the one picture; saves T-1 frames)")
    p.add_argument("--interp", action="store_true",
                   help="frame interpolation (interp model): pictures in sorted pairs (start, end), one prompt per pair")
    p.add_argument("--mode", type=str, default="graph", choices=["pynative", "graph"],
                   help="[ms] graph (default): the UNet call compiled once (ms.jit) and reused for every step and "
                        "guidance branch, the encoders and the VAE run eagerly; pynative: everything eager")
    p.add_argument("--dtype", type=str, default="float32", choices=DTYPES, help="[ms] UNet compute dtype")
    p.add_argument("--fps", type=int, default=8, help="[ms] frame rate of the saved video (default 8)")
    p.add_argument("--save_gif", action="store_true", help="[ms] also write a .gif beside each .mp4")
    p.add_argument("--any_size", action="store_true",
                   help="[ms] allow a height/width other than the size the checkpoint was trained at")
    p.add_argument("--attention_chunk", "--attention_chunk_size", dest="attention_chunk", type=int, default=0,
                   help="[ms] attention queries per chunk (memory bound; 0 = auto: none up to 32x32 latents, "
                        "512 above, 128 above 2560 latent pixels; graph mode: at most 256 where the free memory "
                        "is short)")
    p.add_argument("--ff_chunk", "--feed_forward_chunk_size", dest="ff_chunk", type=int, default=0,
                   help="[ms] feed-forward tokens per chunk (memory bound; 0 = auto: none, 4096 in graph mode where "
                        "even --split_cfg is estimated not to fit the free memory)")
    p.add_argument("--no_progress", action="store_true", help="[ms] hide the progress bar")
    p.add_argument("--debug", action="store_true", help="[ms] on an error, show the traceback instead of one line")
    return p


class UsageError(ValueError):
    """A flag value that cannot work (the message names the flag)."""


def two_frame_model(cfg) -> bool:
    """Whether ``--interp`` / ``--loop`` may run with this config: it says ``interp_mode: true`` (the interp
    release's own config), or it is the 512 layout that the original's ``scripts/run_application.sh`` pairs with
    the interp checkpoint (``configs/inference_512_v1.0.yaml``: v-prediction, latent 40x64). The interp
    checkpoint has exactly the keys and shapes of the 512 one, so the weights cannot tell them apart."""
    d = cfg.diffusion
    size = d.image_size if d.image_size is None or isinstance(d.image_size, int) else tuple(d.image_size)
    return bool(d.interp_mode) or (d.parameterization == "v" and size == (40, 64))


def check_args(args, cfg) -> None:
    """Validate sizes and counts against the config; raise UsageError naming the flag."""
    for name in ("height", "width"):
        v = getattr(args, name)
        if v <= 0 or v % 8:
            raise UsageError(f"--{name} {v} is not a positive multiple of 8")
    levels = len(cfg.unet.channel_mult) - 1
    need = 8 * 2 ** levels
    for name in ("height", "width"):
        v = getattr(args, name)
        if v % need:
            raise UsageError(f"--{name} {v}: the UNet ({levels + 1} levels) needs a multiple of {need}")
    size = cfg.diffusion.image_size
    if size is not None and not args.any_size:
        th, tw = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        if (args.height, args.width) != (8 * th, 8 * tw):
            raise UsageError(f"--height {args.height} --width {args.width} do not match the checkpoint's size "
                             f"{8 * th}x{8 * tw} (model.params.image_size {[th, tw]} of {args.config}); "
                             f"pass --any_size to run anyway")
    for name in ("video_length", "ddim_steps", "bs", "n_samples", "fps", "frame_stride"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be >= 1, got {getattr(args, name)}")
    for name in ("attention_chunk", "ff_chunk"):
        if getattr(args, name) < 0:
            raise UsageError(f"--{name} must be >= 0 (0 = auto), got {getattr(args, name)}")
    if args.ddim_eta is not None and not 0.0 <= args.ddim_eta:
        raise UsageError(f"--ddim_eta must be >= 0, got {args.ddim_eta}")
    if args.sampler == "dpmpp_2m" and args.ddim_eta:
        raise UsageError(f"--ddim_eta {args.ddim_eta}: --sampler dpmpp_2m is deterministic (DDIM eta 0); the "
                         "stochastic eta needs --sampler ddim")
    if args.sampler == "dpmpp_2m" and args.ddim_steps >= cfg.diffusion.timesteps:
        raise UsageError(f"--ddim_steps {args.ddim_steps}: dpmpp_2m takes at most {cfg.diffusion.timesteps - 1} steps")
    if args.interp and args.video_length % 2:
        raise UsageError(f"--interp needs an even --video_length, got {args.video_length}")
    if args.interp and args.loop:
        raise UsageError("--interp and --loop exclude each other: pick one")
    if args.keyframes is not None:
        if len(args.keyframes) < 2:
            raise UsageError(f"--keyframes needs at least 2 pictures, got {len(args.keyframes)}")
        for flag in ("interp", "loop", "extend", "prompt_dir"):
            if getattr(args, flag):
                raise UsageError(f"--keyframes and --{flag} exclude each other (the keyframes are interpolated "
                                 f"pairwise; the text is --prompt)")
        if args.video_length % 2:
            raise UsageError(f"--keyframes needs an even --video_length, got {args.video_length}")
        if not two_frame_model(cfg):
            raise UsageError(f"--keyframes needs the interpolation model (DynamiCrafter_512_Interp with "
                             f"configs/inference_512_interp_v1.0.yaml); {args.config} is not one")
    elif args.prompt_dir is None:
        raise UsageError("--prompt_dir is required (or --keyframes PICTURE PICTURE ...)")
    elif args.prompt is not None:
        raise UsageError("--prompt is the text of --keyframes; with --prompt_dir the prompts come from its .txt file")
    if args.extend < 0:
        raise UsageError(f"--extend must be >= 0, got {args.extend}")
    if args.extend and (args.interp or args.loop):
        raise UsageError(f"--extend continues image-to-video clips; it does not combine with "
                         f"{'--interp' if args.interp else '--loop'}")
    if (args.interp or args.loop) and not two_frame_model(cfg):
        flag = "--interp" if args.interp else "--loop"
        raise UsageError(f"{flag} needs the interpolation model (DynamiCrafter_512_Interp with "
                         f"configs/inference_512_interp_v1.0.yaml); {args.config} is not one "
                         f"(no model.params.interp_mode: true, not the 512 layout)")
    import mindspore as ms

    if args.dtype == "bfloat16" and ms.get_context("device_target") == "CPU":
        raise UsageError("--dtype bfloat16: MindSpore 2.7 has no bfloat16 MatMul kernel on CPU; use float16 or float32")
    if args.ckpt_path is None and not args.random_init:
        raise UsageError("no checkpoint: pass --ckpt_path model.ckpt (see README: Weights) or --random_init")


def read_config(args):
    """The config file read and every flag checked against it (before any weight is read)."""
    from common.cli import check_file

    from .config import DynamiCrafterConfig

    check_file(args.config, "--config", "config")
    cfg = DynamiCrafterConfig.from_yaml(args.config)
    check_args(args, cfg)
    if args.ckpt_path is not None:
        check_file(args.ckpt_path, "--ckpt_path", "checkpoint")
    return cfg


def build_model(args):
    """Config -> model -> weights (or random init); returns (model, cfg)."""
    import mindspore as ms

    from common.checkpoint import CheckpointMismatchError, fitting_config_hint

    from .model import DynamiCrafter
    from .weights import load_weights, shipped_configs_that_fit

    cfg = read_config(args)
    model = DynamiCrafter(cfg)
    model.set_train(False)
    if args.ckpt_path is not None:
        try:
            n = load_weights(model, args.ckpt_path, args.config)
        except CheckpointMismatchError as e:  # say which shipped config the file belongs to
            hint = fitting_config_hint(shipped_configs_that_fit(args.ckpt_path), args.config, "--config")
            raise CheckpointMismatchError(f"{e}{hint} (--ckpt_path)", e.report) from None
        print(f">>> model checkpoint loaded: {n} tensors from {args.ckpt_path}")
    else:
        print("WARNING: random weights (--random_init): the video is noise. Real weights: see README "
              "(Doubiiu/DynamiCrafter, DynamiCrafter_512, DynamiCrafter_1024, DynamiCrafter_512_Interp model.ckpt "
              "on the Hugging Face hub).")
    model.perframe_ae = bool(args.perframe_ae or cfg.diffusion.perframe_ae)
    if args.dtype != "float32":
        model.model.set_dtype(getattr(ms, args.dtype))
    return model, cfg


def save_results_separate(frames: np.ndarray, filename: str, savedir: Path, fps: int, loop: bool,
                          save_gif: bool) -> list[Path]:
    """(n_samples, T, H, W, 3) in [0, 1] (``VideoOutput.frames``) -> ``<savedir>/<stem>_sample<i>.mp4`` (uint8)."""
    from common.video_io import write_video

    paths = []
    stem = filename.split(".")[0]
    for i, video in enumerate(frames):
        if loop:
            video = video[:-1]
        for suffix in (".mp4", ".gif") if save_gif else (".mp4",):
            paths.append(write_video(video, savedir / f"{stem}_sample{i}{suffix}", fps=fps, value_range=(0, 1)))
    return paths


def attention_chunk(args) -> int | None:
    """The query chunk that bounds the attention score matrices: ``--attention_chunk`` or a size-based default."""
    from common.memory_plan import attention_chunk_for

    return args.attention_chunk or attention_chunk_for((args.height // 8) * (args.width // 8))


#: The graph-mode UNet's peak memory while sampling, from full-size figures of the 256 release
#: (docs/performance.md): the UNet graph alone (benchmark.py, attention chunks of 256, 2-core Intel Xeon) peaked
#: at 12.2 GiB at batch 1 and 15.8 GiB at the CFG batch 2 of 16 x 32 x 32 latents, so one branch adds 3.6 GiB
#: and the UNet's weights and batch-independent buffers take 8.6; the OpenCLIP ViT-H towers and the VAE add
#: 4.0 GiB of weights (1.07 B parameters, float32). The 512 and 1024 releases have the same UNet, so the
#: figures scale with the latent pixels.
GRAPH_MEMORY = MemoryModel(fixed_gib=15.5, per_branch_gib=3.6, ref_pixels=16 * 32 * 32,
                           source="the whole DynamiCrafter-256 command (16 frames, CFG, graph UNet with split "
                                  "branches, eager encoders and VAE decode) peaked at 19.1 GiB (2-core AMD EPYC, "
                                  "measured alone); per branch 3.6 GiB = the UNet graph's 15.8 - 12.2 GiB at batch "
                                  "2 / 1")


def guidance_branches(args) -> int:
    """UNet branches per step: 1 without guidance, 3 with two-scale guidance, else 2 (as the pipeline builds)."""
    if args.unconditional_guidance_scale == 1.0:
        return 1
    return 3 if (args.multiple_cond_cfg or args.cfg_img is not None) and args.cfg_img != 1.0 else 2


def memory_knobs(args, available_gib: float | None = None):
    """``(split_cfg, attention_chunk, ff_chunk)``: the flags where given, else in graph mode the plan of
    :func:`common.memory_plan.plan_memory` for this size and the free memory (pynative: stacked branches, the
    attention size rule, no feed-forward chunks). Returns the plan too (None in pynative)."""
    from common.memory_plan import plan_memory

    plan = None
    split, chunk, ff = False, attention_chunk(args), None
    if args.mode == "graph":
        plan = plan_memory(GRAPH_MEMORY, (args.height // 8, args.width // 8), args.video_length * args.bs,
                           guidance_branches(args), available_gib=available_gib)
        split, chunk, ff = plan.split_cfg, plan.attention_chunk, plan.ff_chunk
    if args.split_cfg is not None:
        split = args.split_cfg
    return split, args.attention_chunk or chunk, args.ff_chunk or ff, plan


def run(args) -> list[Path]:
    """Run the whole inference; returns the written files."""
    import mindspore as ms

    from common.cli import prepare_output_dir
    from common.nn import set_attention, set_feed_forward_chunk_size

    from .data import load_data_prompts
    from .pipeline import DynamiCrafterPipeline

    ms.set_context(mode=ms.PYNATIVE_MODE)  # graph mode compiles the UNet call alone (DynamiCrafterPipeline(jit=True))
    if ms.get_context("device_target") == "CPU":
        # synchronous op launch: on a few CPU cores the asynchronous dispatch pipeline costs more
        # than it hides (the tiny UNet runs ~5x faster in PyNative); numbers are unchanged
        ms.runtime.launch_blocking()
    seed = args.seed if args.seed >= 0 else int(np.random.SeedSequence().entropy % 2 ** 31)
    ms.set_seed(seed)
    rng = np.random.default_rng(seed)
    read_config(args)  # every flag checked, then the inputs and the output folder, before any weight is read
    split, chunk, ff, plan = memory_knobs(args)  # the free memory before any weight is read
    args.split_cfg = split
    print(f">>> {args.mode} mode: split_cfg={split}, attention chunk {chunk}, feed-forward chunk {ff}"
          + ("" if plan is None else f" (estimated peak {plan.estimate_gib:.1f} GiB, budget {plan.budget_gib:.1f} GiB"
             + ("" if plan.fits else "; not measured to fit") + ")"))
    if args.keyframes is not None:
        from common.cli import check_picture

        from .data import load_frame

        keyframes = [load_frame(check_picture(k, "--keyframes"), (args.height, args.width)) for k in args.keyframes]
        out_dir = prepare_output_dir(Path(args.savedir) / "samples_separate", "--savedir")
        model, cfg = build_model(args)
        set_attention(model, "math", chunk_size=chunk)
        set_feed_forward_chunk_size(model.unet, ff)
        return run_keyframes(args, DynamiCrafterPipeline(model, jit=args.mode == "graph"), keyframes, out_dir, seed)
    filenames, videos, prompts = load_data_prompts(args.prompt_dir, (args.height, args.width), args.video_length,
                                                   interp=args.interp)
    out_dir = prepare_output_dir(Path(args.savedir) / "samples_separate", "--savedir")
    model, cfg = build_model(args)
    set_attention(model, "math", chunk_size=chunk)
    set_feed_forward_chunk_size(model.unet, ff)
    pipe = DynamiCrafterPipeline(model, jit=args.mode == "graph")
    if args.extend:
        return run_extend(args, pipe, filenames, videos, prompts, out_dir, seed)
    print(f"Inference with {args.video_length} frames; {len(prompts)} prompts from {args.prompt_dir}")
    written = []
    start = time.time()
    for s in range(0, len(prompts), args.bs):
        batch = np.stack(videos[s:s + args.bs])  # (B, 3, T, H, W)
        out = pipe(  # the original's flags mapped onto the pipeline's names
            prompts[s:s + args.bs], batch, num_inference_steps=args.ddim_steps, eta=args.ddim_eta, sampler=args.sampler,
            guidance_scale=args.unconditional_guidance_scale, image_guidance_scale=args.cfg_img,
            multiple_cond_cfg=args.multiple_cond_cfg, frame_stride=args.frame_stride, text_input=args.text_input,
            negative_prompt=args.negative_prompt or None, timestep_spacing=args.timestep_spacing,
            guidance_rescale=args.guidance_rescale, loop=args.loop, interp=args.interp, split_cfg=args.split_cfg,
            num_videos_per_prompt=args.n_samples, generator=rng, progress=not args.no_progress)
        n = args.n_samples
        for j, name in enumerate(filenames[s:s + args.bs]):
            written += save_results_separate(out.frames[j * n:(j + 1) * n], name, out_dir, args.fps, args.loop,
                                             args.save_gif)
    from common.sidecar import record_script_run

    for mp4 in (p for p in written if p.suffix == ".mp4"):  # the run record beside each video (<name>.json)
        record_script_run(mp4, model="dynamicrafter", script="dynamicrafter/inference.py", args=args,
                          weights=[args.ckpt_path], seed=seed, seconds=time.time() - start,
                          outputs=[p for p in written if p.with_suffix("") == mp4.with_suffix("")])
    print(f"Saved in {out_dir}: {', '.join(p.name for p in written)}. Time used: {time.time() - start:.2f} seconds")
    if args.ckpt_path is None:
        how = (f"Doubiiu/DynamiCrafter_512_Interp) and run: sh scripts/run/run_application.sh "
               f"{'interp' if args.interp else 'loop'} /path/to/model.ckpt" if args.interp or args.loop else
               "Doubiiu/DynamiCrafter for 256) and run: sh scripts/run/run_infer.sh 256 /path/to/model.ckpt")
        print(f"NOTE: these videos come from RANDOM weights. For real results download model.ckpt from the Hugging "
              f"Face hub ({how}")
    return written


def pipeline_options(args, text_input: bool | None = None) -> dict:
    """The pipeline arguments of the flags shared by every mode (steps, guidance, stride, ...)."""
    return dict(num_inference_steps=args.ddim_steps, eta=args.ddim_eta, sampler=args.sampler,
                guidance_scale=args.unconditional_guidance_scale,
                image_guidance_scale=args.cfg_img, multiple_cond_cfg=args.multiple_cond_cfg,
                frame_stride=args.frame_stride, text_input=args.text_input if text_input is None else text_input,
                negative_prompt=args.negative_prompt or None, timestep_spacing=args.timestep_spacing,
                guidance_rescale=args.guidance_rescale, split_cfg=args.split_cfg, progress=not args.no_progress)


def _write(video, path: Path, args) -> list[Path]:
    from common.video_io import write_video

    return [write_video(video, path.with_suffix(suffix), fps=args.fps, value_range=(0, 1))
            for suffix in ((".mp4", ".gif") if args.save_gif else (".mp4",))]


def run_keyframes(args, pipe, keyframes, out_dir: Path, seed: int) -> list[Path]:
    """``--keyframes``: one joined video per sample, ``keyframes_sample<i>.mp4``."""
    from .longvideo import keyframe_video

    opts = pipeline_options(args, text_input=args.text_input or args.prompt is not None)
    written = []
    start = time.time()
    for s in range(args.n_samples):
        video, segments = keyframe_video(pipe, keyframes, args.prompt or "", args.video_length, seed, s, **opts)
        written += _write(video, out_dir / f"keyframes_sample{s}", args)
        print(f"keyframes: {len(segments)} segments of {args.video_length} frames joined into {len(video)} frames")
    print(f"Saved in {out_dir}: {', '.join(p.name for p in written)}. Time used: {time.time() - start:.2f} seconds")
    return written


def run_extend(args, pipe, filenames, videos, prompts, out_dir: Path, seed: int) -> list[Path]:
    """``--extend N``: every picture's clip continued N times, ``<picture>_sample<i>.mp4``."""
    from .longvideo import extend_video

    opts = pipeline_options(args)
    written = []
    start = time.time()
    for name, video, prompt in zip(filenames, videos, prompts):
        for s in range(args.n_samples):
            joined, _ = extend_video(pipe, video[:, 0], prompt, args.video_length, args.extend, seed, s, **opts)
            written += _write(joined, out_dir / f"{name.split('.')[0]}_sample{s}", args)
    print(f"Saved in {out_dir}: {', '.join(p.name for p in written)} ({args.extend} continuations each). "
          f"Time used: {time.time() - start:.2f} seconds")
    return written


def _main(argv) -> int:
    run(get_parser().parse_args(argv))
    return 0


def main(argv=None) -> int:
    """Entry point; returns the exit status (2 and one ``error:`` line on bad input; ``--debug`` shows the
    traceback instead)."""
    from common.cli import run_cli

    return run_cli(_main, argv)


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("GLOG_v", "3")
    raise SystemExit(main())
