"""Text-to-video with AnimateDiff on MindSpore (the original ``scripts/animate.py``).

    python text_to_video.py --config configs/prompts/1_animate/1_3_animate_ToonYou.yaml
    python text_to_video.py --config configs/prompts/demo.yaml          # tiny random model, no downloads
    python text_to_video.py --config configs/prompts/3_sparsectrl/3_1_sparsectrl_i2v.yaml   # SparseCtrl

Every entry of the prompt config is run: base model from ``--pretrained_model_path`` (a diffusers SD-1.5
folder), then motion module, DreamBooth file, LoRA, domain adapter and MotionLoRAs in the original order;
every prompt with its seed, negative prompt, steps and guidance scale; an entry with ``controlnet_path`` /
``controlnet_config`` / ``controlnet_images`` also builds the SparseCtrl controlnet and its condition (RGB images
encoded by the base VAE, before the DreamBooth file replaces it). Videos go to
``samples/<config name>-<time stamp>/sample/<i>-<prompt>.gif`` (+ ``.mp4`` with ``--save_mp4``), with a grid of
all of them in ``sample.gif`` and the config with the seeds used in ``config.yaml``.

A config none of whose entries names a weight file runs a tiny randomly initialised model (it says so)
unless ``--pretrained_model_path`` is given. Bad input ends with one ``error:`` line naming the fault (exit code 2).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="prompt config (configs/prompts/*.yaml, the original's schema)")
    p.add_argument("--pretrained_model_path", "--pretrained-model-path", default=None,
                   help="diffusers Stable Diffusion 1.5 folder (default models/StableDiffusion/stable-diffusion-v1-5)")
    p.add_argument("--inference_config", "--inference-config", default=None,
                   help="inference yaml for entries without 'inference_config'; given explicitly it overrides "
                        "the entries' (default configs/inference/inference-v1.yaml)")
    p.add_argument("--L", "--num_frames", dest="L", type=int, default=None, help="frames (default: the entry's L, else 16)")
    p.add_argument("--W", type=int, default=None, help="width in pixels, multiple of 8 (default: entry's W, else 512)")
    p.add_argument("--H", type=int, default=None, help="height in pixels, multiple of 8 (default: entry's H, else 512)")
    p.add_argument("--sampler", choices=("ddim", "dpmpp_2m"), default=None,
                   help="override the entries' sampler (default: the entry's 'sampler' key, else ddim)")
    p.add_argument("--steps", "--num_inference_steps", dest="steps", type=int, default=None, help="override the entries' steps")
    p.add_argument("--save_mp4", "--save-mp4", action="store_true", help="also write .mp4 files (H.264)")
    p.add_argument("--fps", type=int, default=8, help="frames per second of the written videos (8)")
    p.add_argument("--output_dir", default="samples", help="root of the time-stamped output folder (samples)")
    p.add_argument("--mode", choices=("pynative", "graph"), default="pynative",
                   help="MindSpore execution of the UNet: pynative (default) or graph (compiled once, faster calls)")
    p.add_argument("--attention_chunk_size", type=int, default=None,
                   help="process attention queries in chunks of this size (memory bound at 512x512; default off)")
    p.add_argument("--seed", type=int, default=None, help="override every prompt's seed")
    p.add_argument("--no_progress", action="store_true", help="no progress bars")
    p.add_argument("--without-xformers", action="store_true", help="accepted for compatibility; no effect")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    # imported here so that --help is instant
    from animatediff_ms.config import InferenceConfig
    from animatediff_ms.prompt_config import load_prompt_config
    from animatediff_ms.runner import attach_controlnet, build_entry_pipeline, make_savedir, run_prompt_config

    from common.config import ConfigError
    from common.nn import set_attention

    default_inf = args.inference_config or "configs/inference/inference-v1.yaml"
    try:
        for k in ("H", "W"):
            v = getattr(args, k)
            if v is not None and (v <= 0 or v % 8):
                raise ConfigError(f"--{k} {v}: H and W must be positive multiples of 8")
        if args.L is not None and args.L < 1:
            raise ConfigError(f"--L {args.L}: at least one frame")
        if args.attention_chunk_size is not None and args.attention_chunk_size < 1:
            raise ConfigError(f"--attention_chunk_size {args.attention_chunk_size}: must be >= 1")
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
        sd = Path(args.pretrained_model_path or "models/StableDiffusion/stable-diffusion-v1-5")
        random_model = args.pretrained_model_path is None and not any(e.names_weights for e in entries)
        for e in entries:
            if e.uses_controlnet and not e.controlnet_path and not random_model:
                raise ConfigError(f"{args.config}[{e.index}].controlnet_path: missing (controlnet_images are given; "
                                  f"only a config naming no weight files runs a random controlnet)")
        if not random_model and not sd.is_dir():
            raise ConfigError(f"pretrained_model_path: folder not found: {sd} (a diffusers Stable Diffusion 1.5 "
                              f"folder; see README 'Weights')")
        jit = args.mode == "graph"

        def make_pipeline(entry):
            pipe = build_pipeline(entry)
            for cell in (pipe.unet, pipe.vae, pipe.text_encoder):
                set_attention(cell, "math", args.attention_chunk_size)
            return pipe

        def build_pipeline(entry):
            if random_model:
                from animatediff_ms.demo import tiny_random_pipeline

                print("[animatediff] this config names no weight files: running a TINY RANDOMLY INITIALISED "
                      "model (the videos are noise); pass --pretrained_model_path and weight files for real videos")
                pipe = tiny_random_pipeline(InferenceConfig.load(entry.inference_config), jit=jit)
                attach_controlnet(pipe, entry, random_seed=1)
                if entry.sampler:
                    pipe.scheduler.sampler = entry.sampler
                return pipe
            return build_entry_pipeline(entry, sd, jit=jit)

        savedir = make_savedir(args.config, args.output_dir)
        files = run_prompt_config(entries, raw, savedir, make_pipeline, H=args.H or 512, W=args.W or 512,
                                  L=args.L or 16, mp4=args.save_mp4 or any(e.save_mp4 for e in entries),
                                  fps=args.fps, sampler=args.sampler, steps=args.steps, progress=not args.no_progress,
                                  override_size=(args.H, args.W, args.L))
    except (ConfigError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"[animatediff] wrote {len(files)} files to {savedir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
