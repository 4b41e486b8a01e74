"""Text-to-video with AnimateDiff on MindSpore (the original ``scripts/animate.py``).

    python text_to_video.py --config configs/prompts/1_animate/1_3_animate_ToonYou.yaml
    python text_to_video.py --config configs/prompts/demo.yaml          # tiny random model, no downloads
    python text_to_video.py --config configs/prompts/demo_sdxl.yaml     # the same with the SDXL pipeline
    python text_to_video.py --config configs/prompts/3_sparsectrl/3_1_sparsectrl_i2v.yaml   # SparseCtrl
    python text_to_video.py --config configs/prompts/4_sdxl/4_1_sdxl.yaml \
        --pretrained_model_path models/StableDiffusion/stable-diffusion-xl-base-1.0         # SDXL motion module

Every entry of the prompt config is run: base model from ``--pretrained_model_path`` (a diffusers SD-1.5
folder; an SDXL folder runs the SDXL pipeline with ``mm_sdxl_v10_beta.ckpt``), then motion module, DreamBooth
file, LoRA, domain adapter and MotionLoRAs in the original order;
every prompt with its seed, negative prompt, steps and guidance scale; an entry with ``controlnet_path`` /
``controlnet_config`` / ``controlnet_images`` also builds the SparseCtrl controlnet and its condition (RGB images
encoded by the base VAE, before the DreamBooth file replaces it). Videos go to
``samples/<config name>-<time stamp>/sample/<i>-<prompt>.gif`` (+ ``.mp4`` with ``--save_mp4``), with a grid of
all of them in ``sample.gif`` and the config with the seeds used in ``config.yaml``.

A config none of whose entries names a weight file runs a tiny randomly initialised model (it says so; the
SDXL one for an ``inference-sdxl*.yaml`` inference config) unless ``--pretrained_model_path`` is given.
Graph mode by default: the UNet call compiled once per entry, split CFG and attention / feed-forward chunks chosen
from the size and the free memory (:mod:`animatediff_ms.memory`; each entry prints its choice), ``--mode pynative``
and the knob flags override. ``--random_init`` builds the full-size SD-1.5 model with random weights (time and
memory at a release size, no download).
Bad input ends with one ``error:`` line naming the fault (exit code 2).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import yaml


def parse_args(argv=None):
    from common.cli import OneLineParser, seed_type

    p = OneLineParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="prompt config (configs/prompts/*.yaml, the original's schema)")
    p.add_argument("--pretrained_model_path", "--pretrained-model-path", default=None,
                   help="diffusers Stable Diffusion 1.5 folder, or an SDXL one (with text_encoder_2/) for the SDXL motion "
                        "module (default models/StableDiffusion/stable-diffusion-v1-5)")
    p.add_argument("--inference_config", "--inference-config", default=None,
                   help="inference yaml for entries without 'inference_config'; given explicitly it overrides "
                        "the entries' (default configs/inference/inference-v1.yaml)")
    p.add_argument("--random_init", action="store_true",
                   help="full-size SD-1.5 UNet (with the inference config's motion modules), VAE and text encoder with "
                        "RANDOM weights, no weight file read (the entries' files are ignored): to measure time and "
                        "memory at a release size; the videos are noise")
    p.add_argument("--L", "--num_frames", dest="L", type=int, default=None, help="frames (default: the entry's L, else 16)")
    p.add_argument("--W", type=int, default=None, help="width in pixels, multiple of 8 (default: entry's W, else 512)")
    p.add_argument("--H", type=int, default=None, help="height in pixels, multiple of 8 (default: entry's H, else 512)")
    p.add_argument("--sampler", choices=("ddim", "dpmpp_2m"), default=None,
                   help="override the entries' sampler (default: the entry's 'sampler' key, else ddim)")
    p.add_argument("--steps", "--num_inference_steps", dest="steps", type=int, default=None, help="override the entries' steps")
    p.add_argument("--save_mp4", "--save-mp4", action="store_true", help="also write .mp4 files (H.264)")
    p.add_argument("--fps", type=int, default=8, help="frames per second of the written videos (8)")
    p.add_argument("--output_dir", default="samples", help="root of the time-stamped output folder (samples)")
    p.add_argument("--mode", choices=("pynative", "graph"), default="graph",
                   help="MindSpore execution of the UNet: graph (default: the UNet call compiled once and reused for "
                        "every step and guidance branch; text encoder and VAE eager; the graph released before the "
                        "VAE decode) or pynative (op by op, less memory, slower)")
    p.add_argument("--split_cfg", action="store_true", default=None,
                   help="the unconditional and the conditional guidance branch as two UNet calls of one video each "
                        "instead of one call of two: the activation memory of one branch (in graph mode one compiled "
                        "graph of the smaller batch), the same work and numbers (default: auto in graph mode, from "
                        "the latent size and the free memory; off in pynative)")
    p.add_argument("--no_split_cfg", dest="split_cfg", action="store_false",
                   help="both guidance branches in one UNet call, whatever the free memory")
    p.add_argument("--attention_chunk_size", "--attention_chunk", dest="attention_chunk_size", type=int, default=None,
                   help="attention queries per chunk (memory bound; default auto: none up to 32x32 latents "
                        "(256x256), 512 up to 2560 latent pixels, 128 above (512x512); graph mode: at most 256 where "
                        "even --split_cfg is estimated not to fit the free memory)")
    p.add_argument("--ff_chunk", "--feed_forward_chunk_size", dest="ff_chunk", type=int, default=None,
                   help="feed-forward tokens per chunk (memory bound; default auto: none, 4096 in graph mode where "
                        "even --split_cfg is estimated not to fit the free memory)")
    p.add_argument("--seed", type=seed_type, default=None, help="override every prompt's seed")
    p.add_argument("--context_length", type=int, default=None,
                   help="long videos: denoise in sliding windows of this many frames (<= the motion module's "
                        "trained length, 16 for v1-v3), so L may exceed it; overrides the entries' context_length")
    p.add_argument("--context_overlap", type=int, default=None,
                   help="frames shared by neighbouring windows (default: the entry's, else 4)")
    p.add_argument("--context_schedule", choices=("uniform", "static"), default=None,
                   help="windows shifted every step (uniform, default) or fixed (static)")
    p.add_argument("--free_init_iters", type=int, default=None,
                   help="FreeInit passes (low-frequency noise re-initialisation; 0 = off, 3 is typical; each pass "
                        "costs a whole sampling run)")
    p.add_argument("--no_progress", action="store_true", help="no progress bars")
    p.add_argument("--without-xformers", action="store_true", help="accepted for compatibility; no effect")
    p.add_argument("--debug", action="store_true", help="on an error, show the traceback instead of one line")
    return p.parse_args(argv)


def _main(argv) -> int:
    args = parse_args(argv)
    # imported here so that --help is instant
    from animatediff_ms.config import InferenceConfig
    from animatediff_ms.memory import describe, memory_knobs
    from animatediff_ms.prompt_config import load_prompt_config
    from animatediff_ms.runner import attach_controlnet, build_entry_pipeline, make_savedir, run_prompt_config

    from common.cli import check_dir, check_file, check_range, prepare_output_dir
    from common.config import ConfigError
    from common.bench import mem_available_gib
    from common.nn import set_attention, set_feed_forward_chunk_size

    default_inf = args.inference_config or "configs/inference/inference-v1.yaml"
    for k in ("H", "W"):
        v = getattr(args, k)
        if v is not None and (v <= 0 or v % 8):
            raise ConfigError(f"--{k} {v}: H and W must be positive multiples of 8")
    check_range(args.L, "--L", 1, what="frames")
    check_range(args.steps, "--steps", 1, what="sampling steps")
    check_range(args.fps, "--fps", 1, what="frames per second")
    check_range(args.attention_chunk_size, "--attention_chunk_size", 1)
    check_range(args.ff_chunk, "--ff_chunk", 1)
    check_range(args.context_length, "--context_length", 1, what="frames")
    check_range(args.context_overlap, "--context_overlap", 0, what="frames")
    check_range(args.free_init_iters, "--free_init_iters", 0)
    check_file(args.config, "--config", "prompt config")
    if args.inference_config:
        check_file(args.inference_config, "--inference_config", "inference config")
    entries = load_prompt_config(args.config, default_inf)
    raw = yaml.safe_load(Path(args.config).read_text())
    for e in entries:
        for k in ("H", "W"):
            v = getattr(e, k)
            if v is not None and (v <= 0 or v % 8):
                raise ConfigError(f"{args.config}[{e.index}].{k}: {v} is not a positive multiple of 8")
        e.check_controlnet(args.L or e.L or 16, f"{args.config}[{e.index}]")
        if args.inference_config:
            e.inference_config = args.inference_config
        if args.seed is not None:
            e.seeds = [args.seed] * len(e.prompts)
        for k in ("context_length", "context_overlap", "context_schedule", "free_init_iters"):
            if getattr(args, k) is not None:
                setattr(e, k, getattr(args, k))
        if e.context_length is not None and not 0 <= e.context_overlap < e.context_length:
            raise ConfigError(f"--context_overlap {e.context_overlap}: must be below --context_length "
                              f"{e.context_length}")
    sd = Path(args.pretrained_model_path or "models/StableDiffusion/stable-diffusion-v1-5")
    random_model = args.random_init or (args.pretrained_model_path is None
                                        and not any(e.names_weights for e in entries))
    for e in entries:
        if e.uses_controlnet and not e.controlnet_path and not random_model:
            raise ConfigError(f"{args.config}[{e.index}].controlnet_path: missing (controlnet_images are given; "
                              f"only a config naming no weight files runs a random controlnet)")
    if not random_model and not all(e.base_model_path for e in entries):
        check_dir(sd, "--pretrained_model_path", "diffusers Stable Diffusion 1.5 folder (see README 'Weights')")
    out_root = prepare_output_dir(args.output_dir, "--output_dir")
    jit = args.mode == "graph"
    free = mem_available_gib()  # before any weight is read
    import mindspore as ms

    if ms.get_context("device_target") == "CPU":
        # synchronous op launch: on a few CPU cores the asynchronous dispatch costs more than it hides; the
        # numbers are unchanged (as DynamiCrafter's and VideoComposer's CLIs)
        ms.runtime.launch_blocking()

    def make_pipeline(entry):
        # the entry's H, W, L are resolved (run_prompt_config); a context window is what one UNet call sees
        frames = min(entry.L, entry.context_length or entry.L)
        split, chunk, ff, plan = memory_knobs(
            args.mode, (entry.H // 8, entry.W // 8), frames, 2 if entry.guidance_scale > 1.0 else 1,
            split_cfg=args.split_cfg, attention_chunk=args.attention_chunk_size, ff_chunk=args.ff_chunk,
            available_gib=free)
        print(f"[animatediff] entry {entry.index}, {entry.H}x{entry.W} x {frames} frames: "
              + describe(args.mode, split, chunk, ff, plan))
        pipe = build_pipeline(entry)
        for cell in (pipe.unet, pipe.vae, pipe.text_encoder, getattr(pipe, "text_encoder_2", None)):
            if cell is not None:
                set_attention(cell, "math", chunk)
        set_feed_forward_chunk_size(pipe.unet, ff)
        if pipe.controlnet is not None:
            set_feed_forward_chunk_size(pipe.controlnet, ff)
        pipe.split_cfg = split
        return pipe

    def build_pipeline(entry):
        if args.random_init:
            from animatediff_ms.demo import full_random_pipeline, is_sdxl_inference_config

            if entry.uses_controlnet or is_sdxl_inference_config(entry.inference_config):
                raise ConfigError(f"entry {entry.index}: --random_init builds the SD-1.5 model without a controlnet")
            print("[animatediff] --random_init: the full-size SD-1.5 model with RANDOM weights (the videos are noise; "
                  "for time and memory measurements)")
            pipe = full_random_pipeline(InferenceConfig.load(entry.inference_config), jit=jit)
            if entry.sampler:
                pipe.scheduler.sampler = entry.sampler
            return pipe
        if random_model:
            from animatediff_ms.demo import tiny_random_pipeline

            print("[animatediff] this config names no weight files: running a TINY RANDOMLY INITIALISED "
                  "model (the videos are noise); pass --pretrained_model_path and weight files for real videos")
            from animatediff_ms.demo import is_sdxl_inference_config, tiny_random_sdxl_pipeline

            inf = InferenceConfig.load(entry.inference_config)
            if is_sdxl_inference_config(entry.inference_config):
                if entry.uses_controlnet:
                    raise ConfigError(f"entry {entry.index}: controlnet_images: SparseCtrl needs an SD-1.5 model")
                pipe = tiny_random_sdxl_pipeline(inf, jit=jit)
            else:
                pipe = tiny_random_pipeline(inf, jit=jit)
            attach_controlnet(pipe, entry, random_seed=1)
            if entry.sampler:
                pipe.scheduler.sampler = entry.sampler
            return pipe
        return build_entry_pipeline(entry, entry.base_model_path or sd, jit=jit)

    savedir = make_savedir(args.config, out_root)
    files = run_prompt_config(entries, raw, savedir, make_pipeline, H=args.H or 512, W=args.W or 512,
                              L=args.L or 16, mp4=args.save_mp4 or any(e.save_mp4 for e in entries),
                              fps=args.fps, sampler=args.sampler, steps=args.steps, progress=not args.no_progress,
                              override_size=(args.H, args.W, args.L))
    print(f"[animatediff] wrote {len(files)} files to {savedir}")
    return 0


def main(argv=None) -> int:
    """Entry point: 0, or 2 with one ``error:`` line on bad input (``--debug`` shows the traceback)."""
    from common.cli import run_cli

    return run_cli(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
