"""Command line of ``inference.py``: the original's flags (``--ckpt --ref_img_dir --FPS --prompt --width --height
--video_length --num_inference_steps --seed --guidance_scale``) plus ours.

Everything is validated before a weight is read; bad input ends with ONE line ``error: <what> (<flag>)`` and exit
status 2 (``--debug`` shows the traceback instead). Without ``--ckpt`` (or with ``--demo``) a tiny RANDOM model is
written to a temporary folder in the released layout and run on the bundled picture: a smoke test of the install.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parents[1]
DEMO_IMAGE = HERE / "assets" / "demo.png"
#: appended to every prompt by the original inference.py (``--prompt_suffix ""`` turns it off)
QUALITY_SUFFIX = ("The video is of high quality, and the view is very clear. High quality, masterpiece, best quality, "
                  "highres, ultra-detailed, fantastic.")
NEGATIVE_PROMPT = "The video is low quality, blurry, distortion. "
DEMO_PROMPT = "A red panda sits on a mossy log in a quiet forest while soft light filters through the trees."
#: FPS values accepted: the original shows results at FPS 4, 8, 16 and 32 (its samples/); the training range is
#: not published, so the CLI keeps to 1..32
FPS_RANGE = (1, 32)
DTYPES = ("float32", "float16", "bfloat16")
#: sizes of the --demo run unless given on the command line
DEMO_DEFAULTS = {"width": 96, "height": 64, "video_length": 9, "num_inference_steps": 4, "max_sequence_length": 32}
RELEASE_DEFAULTS = {"width": 672, "height": 384, "video_length": 85, "num_inference_steps": 50,
                    "max_sequence_length": 400}


class UsageError(ValueError):
    """A flag value that cannot work (the message names the flag)."""


def get_parser() -> argparse.ArgumentParser:
    from common.cli import OneLineParser, seed_type

    p = OneLineParser(
        description="DropletVideo image-to-video with FPS control (MindSpore). Animates --ref_img_dir following "
                    "--prompt; writes <output_dir>/<image>_FPS<FPS>.mp4. Flags of the original inference.py; "
                    "ours are marked [ms].")
    p.add_argument("--ckpt", default=None,
                   help="the released weights folder DropletVideo-V1.0-weights (model_index.json, scheduler/, "
                        "text_encoder/ sharded T5 + index, tokenizer/, transformer/, vae/), read as it is. Omitted: "
                        "the tiny RANDOM demo (see --demo)")
    p.add_argument("--demo", action="store_true",
                   help="[ms] run a tiny RANDOM model (written to a temporary folder in the released layout) on the "
                        "bundled assets/demo.png: checks the installation; the video shows noise, not your picture")
    p.add_argument("--ref_img_dir", default=None,
                   help="the reference picture (first frame; any format PIL reads; resized to width x height). "
                        "Required with --ckpt; the demo uses assets/demo.png")
    p.add_argument("--FPS", type=int, default=16,
                   help=f"frame-rate condition = motion strength: a low FPS asks for large motion between frames "
                        f"(more happens in the clip), a high FPS for small, smooth motion. Accepted {FPS_RANGE[0]}.."
                        f"{FPS_RANGE[1]} (the original shows 4, 8, 16, 32). Also the mp4's frame rate "
                        "(default 16)")
    p.add_argument("--prompt", default=None,
                   help="what should happen, in detail (long descriptive prompts work best). The original appends "
                        "a quality sentence, see --prompt_suffix. Required with --ckpt")
    p.add_argument("--prompt_suffix", default=QUALITY_SUFFIX,
                   help="[ms] appended to --prompt after a space, as the original does (\"\" = nothing)")
    p.add_argument("--negative_prompt", default=NEGATIVE_PROMPT,
                   help="[ms] text of the classifier-free-guidance negative branch (default: the original's)")
    p.add_argument("--width", type=int, default=None,
                   help="video width in pixels, a multiple of 16 (default 672; demo 96). Any aspect ratio; the "
                        "release was shown from 512x512 to 896x896 pixels per frame")
    p.add_argument("--height", type=int, default=None, help="video height in pixels, a multiple of 16 (default 384; "
                                                             "demo 64)")
    p.add_argument("--video_length", "--num_frames", dest="video_length", type=int, default=None,
                   help="frames to generate; rounded down to 4k+1 as the original does (default 85; demo 9). "
                        "An even number of latent frames ((L-1)/4+1) decodes to 4 frames per latent, e.g. 85 -> 88")
    p.add_argument("--num_inference_steps", type=int, default=None,
                   help="DDIM denoising steps: more = better and slower (default 50; demo 4)")
    p.add_argument("--seed", type=seed_type, default=42, help="random seed of the initial noise and the reference-image "
                                                        "noise (default 42)")
    p.add_argument("--guidance_scale", type=float, default=6.0,
                   help="classifier-free guidance scale: higher follows the prompt more closely; <= 1 turns guidance "
                        "off (one transformer branch instead of two) (default 6.0)")
    p.add_argument("--max_sequence_length", type=int, default=None,
                   help="[ms] T5 tokens of the prompt (padded/truncated; default 400 as the original; demo 32)")
    p.add_argument("--output_dir", default="samples", help="[ms] folder of the mp4 (default samples, as the original)")
    p.add_argument("--mode", default="pynative", choices=["pynative", "graph"],
                   help="[ms] MindSpore execution: graph compiles the transformer once (ms.jit), pynative runs it "
                        "op by op (default pynative)")
    p.add_argument("--dtype", default="float32", choices=DTYPES,
                   help="[ms] compute dtype of the transformer (T5 and VAE stay float32; norms and softmax are "
                        "float32 always). bfloat16 has no CPU MatMul kernel in MindSpore 2.7 (default float32)")
    p.add_argument("--attention_chunk_size", type=int, default=None,
                   help="[ms] attention queries per chunk: bounds the score matrices of long sequences (85 frames "
                        "at 672x384 are 22k video tokens); default: no chunking")
    p.add_argument("--ff_chunk_size", type=int, default=None,
                   help="[ms] tokens per feed-forward chunk (its 4x-wide hidden layer is the largest activation); "
                        "default: all at once")
    p.add_argument("--split_cfg", action="store_true",
                   help="[ms] run the guidance's negative and positive branches as two transformer calls of one "
                        "video each instead of one call of two: half the activation memory, the same work")
    p.add_argument("--vae_tile_size", type=int, nargs=2, default=None, metavar=("HEIGHT", "WIDTH"),
                   help="[ms] decode the video in overlapping spatial tiles of HEIGHT x WIDTH pixels (multiples of the "
                        "VAE factor, 8): less decoder memory at large sizes; tiles overlap by a quarter, the middle "
                        "of each overlap is blended, their norms see only the tile so the video differs slightly "
                        "(README: VAE tiling) (default: untiled, as the original)")
    p.add_argument("--no_progress", action="store_true", help="[ms] hide the progress bar")
    p.add_argument("--debug", action="store_true", help="[ms] show the traceback of an error instead of one line")
    return p


def resolve(args) -> argparse.Namespace:
    """Fill the size defaults (release or demo) and validate every flag that needs no weights."""
    args.demo = bool(args.demo or args.ckpt is None)
    defaults = DEMO_DEFAULTS if args.demo else RELEASE_DEFAULTS
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.demo and args.ckpt is not None:
        raise UsageError("--demo runs random weights; it excludes --ckpt")
    if not args.demo:
        if args.prompt is None:
            raise UsageError("--prompt is required with --ckpt")
        if args.ref_img_dir is None:
            raise UsageError("--ref_img_dir is required with --ckpt")
    for name in ("width", "height"):
        v = getattr(args, name)
        if v <= 0 or v % 16:
            raise UsageError(f"--{name} {v} is not a positive multiple of 16")
    for name in ("video_length", "num_inference_steps", "max_sequence_length"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.num_inference_steps > 1000:
        raise UsageError(f"--num_inference_steps {args.num_inference_steps} exceeds the 1000 training timesteps")
    if not FPS_RANGE[0] <= args.FPS <= FPS_RANGE[1]:
        raise UsageError(f"--FPS {args.FPS} is outside {FPS_RANGE[0]}..{FPS_RANGE[1]} (the range the model is used "
                         "with; the original shows 4, 8, 16, 32)")
    if not np.isfinite(args.guidance_scale) or args.guidance_scale < 0:
        raise UsageError(f"--guidance_scale must be a finite number >= 0, got {args.guidance_scale}")
    for name in ("attention_chunk_size", "ff_chunk_size"):
        v = getattr(args, name)
        if v is not None and v < 1:
            raise UsageError(f"--{name} must be >= 1, got {v}")
    from common.cli import check_picture, prepare_output_dir

    if args.ref_img_dir is not None:
        check_picture(args.ref_img_dir, "--ref_img_dir")
    args.output_dir = prepare_output_dir(args.output_dir, "--output_dir")
    import mindspore as ms

    if args.dtype == "bfloat16" and ms.get_context("device_target") == "CPU":
        raise UsageError("--dtype bfloat16: MindSpore 2.7 has no bfloat16 MatMul kernel on CPU; use float16 or "
                         "float32")
    return args


def read_image(path, width: int, height: int) -> np.ndarray:
    """(height, width, 3) uint8: the picture as RGB, resized (bicubic) as the original does."""
    from PIL import Image

    from common.video_io import ImageReadError, load_image

    try:
        img = load_image(path)
    except ImageReadError as e:
        raise UsageError(f"{e} (--ref_img_dir)") from None
    if img.size != (width, height):
        img = img.resize((width, height), Image.BICUBIC)
    return np.asarray(img)


def encode_prompts(folder, text_embed_dim: int, texts: list[str], max_length: int):
    """T5 states (1, L, D) of each text; the encoder is built, used and released here."""
    import gc

    import mindspore as ms

    from . import weights

    encoder = weights.load_text_encoder(folder)
    if encoder.config.d_model != text_embed_dim:
        raise UsageError(f"text_encoder d_model {encoder.config.d_model} != transformer text_embed_dim "
                         f"{text_embed_dim} ({folder})")
    states = encoder(ms.Tensor(weights.load_tokenizer(folder)(texts, max_length)))  # (N, L, D)
    out = [states[i:i + 1] for i in range(len(texts))]
    del encoder, states
    gc.collect()
    return out


def run(args) -> Path:
    """The whole inference; returns the written mp4."""
    import mindspore as ms

    from common.nn import set_attention, set_feed_forward_chunk_size
    from common.video_io import write_video

    from . import weights
    from .pipeline import DropletVideoPipeline

    args = resolve(args)
    ms.set_context(mode=ms.PYNATIVE_MODE)
    if ms.get_context("device_target") == "CPU":
        ms.runtime.launch_blocking()  # synchronous launch: faster on a few CPU cores, same numbers
    image_path = args.ref_img_dir or DEMO_IMAGE
    with tempfile.TemporaryDirectory(prefix="dropletvideo_demo_") as tmp:
        if args.demo:
            from .tiny import write_tiny_weights

            print("NOTE: no --ckpt: the weights are RANDOM (a tiny model written to a temporary folder); the video "
                  "shows noise, not your picture in motion. Real weights: DropletX/DropletVideo-5B on the Hugging "
                  "Face hub, then --ckpt DropletVideo-V1.0-weights.", file=sys.stderr)
            folder = write_tiny_weights(Path(tmp) / "DropletVideo-tiny-random", seed=args.seed)
        else:
            folder = weights.check_folder(args.ckpt)
        # sizes against the configs, before any weight is read
        tcfg, vcfg = weights.read_config(folder, "transformer"), weights.read_config(folder, "vae")
        unit = vcfg.spatial_factor * tcfg.patch_size
        if args.vae_tile_size is not None and (min(args.vae_tile_size) < 2 * vcfg.spatial_factor
                                               or any(v % vcfg.spatial_factor for v in args.vae_tile_size)):
            raise UsageError(f"--vae_tile_size {args.vae_tile_size[0]} {args.vae_tile_size[1]}: multiples of "
                             f"{vcfg.spatial_factor} pixels, at least {2 * vcfg.spatial_factor}")
        for name in ("width", "height"):
            if getattr(args, name) % unit:
                raise UsageError(f"--{name} {getattr(args, name)} is not a multiple of {unit} (VAE factor "
                                 f"{vcfg.spatial_factor} x patch {tcfg.patch_size})")
        ratio = vcfg.temporal_compression_ratio
        length = (args.video_length - 1) // ratio * ratio + 1
        if length != args.video_length:
            print(f"NOTE: --video_length {args.video_length} -> {length} (a multiple of {ratio} plus 1, as the "
                  "original rounds it)", file=sys.stderr)
        image = read_image(image_path, args.width, args.height)
        prompt = args.prompt if args.prompt is not None else DEMO_PROMPT
        if args.prompt_suffix:
            prompt = f"{prompt} {args.prompt_suffix}"
        t0 = time.time()
        pos, neg = encode_prompts(folder, tcfg.text_embed_dim, [prompt, args.negative_prompt],
                                  args.max_sequence_length)
        # the T5 encoder is gone before the transformer is read: the two never share the memory
        pipe = DropletVideoPipeline.from_pretrained(folder, mode=args.mode, text_encoder=False,
                                                    dtype=getattr(ms, args.dtype))
        print(f"loaded {folder} ({time.time() - t0:.1f} s)", file=sys.stderr)
    if args.attention_chunk_size:
        set_attention(pipe.transformer, "math", args.attention_chunk_size)
    if args.ff_chunk_size:
        set_feed_forward_chunk_size(pipe.transformer, args.ff_chunk_size)
    t1 = time.time()
    out = pipe(None, image, prompt_embeds=pos, negative_prompt_embeds=neg, height=args.height, width=args.width,
               num_frames=length, num_inference_steps=args.num_inference_steps, guidance_scale=args.guidance_scale,
               fps=args.FPS, seed=args.seed, max_sequence_length=args.max_sequence_length,
               progress=not args.no_progress, split_cfg=args.split_cfg,
               vae_tile=tuple(args.vae_tile_size) if args.vae_tile_size else None)
    frames = out.frames[0]  # (F_out, H, W, 3) in [0, 1]
    stem = Path(image_path).stem
    path = write_video(frames, Path(args.output_dir) / f"{stem}_FPS{args.FPS}.mp4", fps=args.FPS, value_range=(0, 1))
    from common.sidecar import record_script_run

    record_script_run(path, model="dropletvideo", script="dropletvideo/inference.py", args=args,
                      weights=[None if args.demo else args.ckpt], seed=args.seed, seconds=time.time() - t1,
                      frames=int(frames.shape[0]))
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # KiB on Linux -> GiB
    print(f"wrote {path}: {frames.shape[0]} frames {args.width}x{args.height} at {args.FPS} fps, "
          f"{args.num_inference_steps} steps, {time.time() - t1:.1f} s, peak RSS {peak:.2f} GiB"
          + (" -- RANDOM weights" if args.demo else ""))
    return path


def _main(argv) -> int:
    from common.checkpoint import CheckpointError
    from common.cli import InputError
    from common.config import ConfigError

    try:
        run(get_parser().parse_args(argv))
    except (ConfigError, CheckpointError) as e:  # about the weights folder: name the flag
        msg = str(e)
        raise InputError(msg if "--ckpt" in msg else msg + " (--ckpt)") from e
    return 0


def main(argv=None) -> int:
    """Entry point: 0, or 2 with one ``error:`` line (``--debug`` shows the traceback)."""
    from common.cli import run_cli

    return run_cli(_main, argv)
