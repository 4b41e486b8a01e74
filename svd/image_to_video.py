"""Turn one picture into a short clip with Stable Video Diffusion (SVD / SVD-XT / SVD-XT-1.1).

    python image_to_video.py --SVD.config=configs/svd.yaml --SVD.checkpoint=svd.safetensors \
        --SVD.num_frames=14 --SVD.fps=7 --SVD.motion_bucket_id=127 --SVD.noise_aug_strength=0.02 \
        --SVD.decode_chunk_size=7 --image=picture.png [--seed=42 --output_dir=./output --num_steps=25]

Without ``--SVD.checkpoint`` a TINY RANDOM model (configs/svd_tiny.yaml) runs on the bundled image
(assets/demo.png) and writes a real mp4 of noise-like frames: a smoke test of the installation.
Graph mode by default (the denoiser compiled once), with split CFG and attention / feed-forward chunks chosen from
the size and the free memory (:mod:`svd_ms.memory`); where even that is estimated not to fit, PyNative with the
chunks, and one line says why. Run ``python image_to_video.py --help`` for every flag.
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TINY_CONFIG = HERE / "configs" / "svd_tiny.yaml"
DEMO_IMAGE = HERE / "assets" / "demo.png"


def _mode(v: str) -> int:
    """``--mode``: 0 / graph, 1 / pynative (the common spelling of every model's CLI)."""
    names = {"graph": 0, "pynative": 1}
    if v.lower() in names:
        return names[v.lower()]
    try:
        return int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{v!r} is not 0, 1, graph or pynative") from None


def build_parser() -> argparse.ArgumentParser:
    from common.cli import OneLineParser, seed_type

    p = OneLineParser(
        description="Stable Video Diffusion image-to-video (MindSpore). Flags follow the mindone SVD port.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--SVD.config", dest="config", default=None,
                   help="original SVD YAML (configs/svd.yaml, svd_xt.yaml, svd_xt_1_1.yaml). Default: configs/svd.yaml "
                        "with a checkpoint, configs/svd_tiny.yaml without one")
    p.add_argument("--SVD.checkpoint", dest="checkpoint", default=None,
                   help="released single-file checkpoint (svd.safetensors, svd_xt.safetensors, svd_xt_1_1.safetensors) or "
                        "a .ckpt written by tools/convert_weight.py. Omitted: RANDOM weights (tiny demo)")
    p.add_argument("--SVD.num_frames", "--num_frames", dest="num_frames", type=int, default=None,
                   help="frames to generate (SVD: 14, SVD-XT: 25; default: the config's guider num_frames)")
    p.add_argument("--SVD.fps", dest="fps", type=float, default=7,
                   help="frame rate of the output mp4 and the motion speed the model is asked for: the model is "
                        "conditioned on fps_id = fps - 1 (trained around 5..30)")
    p.add_argument("--SVD.motion_bucket_id", dest="motion_bucket_id", type=float, default=127,
                   help="amount of motion, 0..255: higher = more motion (the training clips' optical-flow bucket)")
    p.add_argument("--SVD.noise_aug_strength", dest="noise_aug_strength", type=float, default=0.02,
                   help="cond_aug: std of Gaussian noise added to the input image before it is encoded as the "
                        "concat latent, also a micro-condition; higher = less like the image, more motion")
    p.add_argument("--SVD.decode_chunk_size", dest="decode_chunk_size", type=int, default=0,
                   help="frames decoded per VAE call (0 = all at once: best temporal consistency, most memory); "
                        "the temporal decoder layers only see frames within a chunk")
    p.add_argument("--SVD.sampling_steps", dest="sampling_steps", type=int, default=0,
                   help="alias of --num_steps (mindone's name); 0 = not set")
    p.add_argument("--num_steps", "--num_inference_steps", dest="num_steps", type=int, default=None,
                   help="sampling steps (default: the config's num_steps: 25 SVD, 30 XT)")
    p.add_argument("--sampler", choices=("euler", "dpmpp_2m"), default="euler",
                   help="euler = sgm's EulerEDMSampler on the EDM sigmas (the release); dpmpp_2m = DPM-Solver++ 2M "
                        "on the same sigmas, start and guidance: deterministic, about half the steps for the same "
                        "result (README: Samplers); refused with a config of s_churn > 0")
    p.add_argument("--image", default=None,
                   help="input picture (RGB; sides are cut down to multiples of 64; trained at 576x1024). Default "
                        "without a checkpoint: the bundled assets/demo.png")
    p.add_argument("--seed", type=seed_type, default=42, help="seed of the two Gaussian draws (image noise, start noise)")
    p.add_argument("--output_dir", default="./output", help="folder for the mp4 (created if missing)")
    p.add_argument("--mode", type=_mode, default=None, choices=[0, 1], metavar="{0,1,graph,pynative}",
                   help="MindSpore execution: 0 or graph = graph (the denoiser compiled once and reused for every step "
                        "and guidance branch, released before the VAE decode), 1 or pynative = PyNative. Default: "
                        "graph, unless the memory plan estimates that even the split, chunked graph does not fit the "
                        "free memory (576x1024 on 24 GiB): then PyNative with the chunks, and one line says why")
    p.add_argument("--attn_chunk_size", "--attention_chunk_size", "--attention_chunk", dest="attn_chunk_size",
                   type=int, default=None,
                   help="attention query chunk (bounds the score matrices of long sequences); default auto: none up "
                        "to 32x32 latents, 512 up to 2560 latent pixels (320x512), 128 above (576x1024); at most 256 "
                        "where even --split_cfg is estimated not to fit the free memory in graph mode")
    p.add_argument("--ff_chunk_size", "--ff_chunk", dest="ff_chunk_size", type=int, default=None,
                   help="run the transformer feed-forwards this many tokens at a time (their GEGLU hidden layer is the "
                        "largest tensor: 2.6 GB at 576x1024 x 14 frames x 2 branches); default auto: all at once, "
                        "4096 where even --split_cfg is estimated not to fit the free memory in graph mode")
    p.add_argument("--split_cfg", action="store_true", default=None,
                   help="run the unconditional and conditional guidance branches as two UNet calls of one video "
                        "each instead of one call of two: half the UNet's activation memory, the same work; default "
                        "auto: split where both branches in one graph are estimated not to fit the free memory")
    p.add_argument("--no_split_cfg", dest="split_cfg", action="store_false",
                   help="both guidance branches in one UNet call, whatever the free memory")
    p.add_argument("--no_progress", action="store_true", help="hide the progress bar")
    p.add_argument("--debug", action="store_true", help="on an error, show the traceback instead of one line")
    return p


def prepare_image(path, multiple: int = 64) -> np.ndarray:
    """(1, 3, H, W) float32 in [-1, 1] (``ToTensor() * 2 - 1``); H, W cut down to multiples of ``multiple``."""
    from PIL import Image

    from common.video_io import load_image

    img = load_image(path)  # PIL RGB
    w, h = img.size
    if h % multiple or w % multiple:
        nw, nh = w - w % multiple, h - h % multiple
        if nw == 0 or nh == 0:
            raise ValueError(f"{path} is {w}x{h}; both sides must be at least {multiple} pixels (--image)")
        print(f"WARNING: image {w}x{h} is not a multiple of {multiple}: resizing to {nw}x{nh}", file=sys.stderr)
        img = img.resize((nw, nh), Image.BICUBIC)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return (arr.transpose(2, 0, 1)[None] * 2.0 - 1.0).astype(np.float32)


def check_args(args) -> tuple[Path, Path]:
    """Every flag checked before any weight is read or MindSpore is started: ``(config, image)``."""
    from common.cli import InputError, check_file, check_picture, check_range, prepare_output_dir

    random_weights = args.checkpoint is None
    config = Path(args.config) if args.config else (TINY_CONFIG if random_weights else HERE / "configs" / "svd.yaml")
    check_file(config, "--SVD.config", "config")
    if args.checkpoint is not None:
        check_file(args.checkpoint, "--SVD.checkpoint", "checkpoint")
    image_path = args.image or (DEMO_IMAGE if random_weights else None)
    if image_path is None:
        raise InputError("a picture is required with a checkpoint (--image)")
    check_picture(image_path, "--image")
    from PIL import Image

    from svd_ms.config import load_svd_config

    cfg = load_svd_config(config)  # the picture's sides must hold one latent pixel per UNet level
    multiple = 2 ** (len(cfg.first_stage_encoder.ch_mult) - 1) * 2 ** (len(cfg.unet.channel_mult) - 1)
    if args.sampler == "dpmpp_2m" and cfg.sampler.s_churn > 0:
        raise InputError(f"--sampler dpmpp_2m is deterministic, but {config.name} sets s_churn {cfg.sampler.s_churn} "
                         "(EDM churn needs --sampler euler) (--sampler)")
    with Image.open(image_path) as im:
        if min(im.size) < multiple:
            raise InputError(f"{image_path} is {im.size[0]}x{im.size[1]}; both sides must be at least {multiple} "
                             "pixels (--image)")
        w, h = im.size
    down = 2 ** (len(cfg.first_stage_encoder.ch_mult) - 1)
    # what the UNet will see (the memory plan): the picture cut down to multiples of `multiple`, every frame
    args.latent_hw = ((h - h % multiple) // down, (w - w % multiple) // down)
    args.latent_frames = args.num_frames or cfg.sampler.num_frames or 14
    check_range(args.num_frames, "--SVD.num_frames", 1, what="frames")
    check_range(args.num_steps, "--num_steps", 1, what="sampling steps")
    check_range(args.sampling_steps, "--SVD.sampling_steps", 0, what="sampling steps (0 = not set)")
    check_range(args.fps, "--SVD.fps", 1, what="frames per second")
    check_range(args.motion_bucket_id, "--SVD.motion_bucket_id", 0, 255)
    check_range(args.noise_aug_strength, "--SVD.noise_aug_strength", 0.0, what="a noise std")
    check_range(args.decode_chunk_size, "--SVD.decode_chunk_size", 0, what="frames per VAE call (0 = all)")
    check_range(args.attn_chunk_size, "--attn_chunk_size", 1)
    check_range(args.ff_chunk_size, "--ff_chunk_size", 1)
    args.output_dir = prepare_output_dir(args.output_dir, "--output_dir")
    return config, Path(image_path)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    config, image_path = check_args(args)
    import mindspore as ms

    from common.checkpoint import CheckpointMismatchError
    from common.nn import set_attention, set_feed_forward_chunk_size
    from common.video_io import write_video
    from svd_ms.model import load_svd_model
    from svd_ms.pipeline import SVDPipeline

    from svd_ms.memory import choose_knobs

    ms.set_context(mode=ms.PYNATIVE_MODE)  # graph mode compiles the denoiser alone (SVDPipeline(mode="graph"))
    knobs = choose_knobs({0: "graph", 1: "pynative", None: None}[args.mode], args.latent_hw, args.latent_frames,
                         split_cfg=args.split_cfg, attention_chunk=args.attn_chunk_size, ff_chunk=args.ff_chunk_size)
    if knobs.fallback:
        print(f"NOTE: {knobs.fallback}", file=sys.stderr)
    print(knobs.describe())
    random_weights = args.checkpoint is None
    if random_weights:
        print(f"NOTE: no --SVD.checkpoint given: the weights are RANDOM ({config.name}); the clip shows noise, "
              "not your picture in motion. Pass a released checkpoint for real videos.", file=sys.stderr)
    t0 = time.time()
    try:
        model, report = load_svd_model(config, args.checkpoint)
    except CheckpointMismatchError as e:  # say which shipped config the file belongs to
        from common.checkpoint import fitting_config_hint
        from common.cli import InputError
        from svd_ms.weights import configs_that_fit

        shipped = sorted(p for p in (HERE / "configs").glob("svd*.yaml") if p.name != "svd_train.yaml")
        hint = fitting_config_hint(configs_that_fit(args.checkpoint, shipped), config, "--SVD.config")
        raise InputError(f"{e}{hint} (--SVD.config)") from None
    if report is not None:
        print(f"loaded {args.checkpoint}: {report.loaded} tensors, {report.ignored} unused tensors skipped "
              f"({time.time() - t0:.1f} s)", file=sys.stderr)
    if knobs.attention_chunk:
        set_attention(model, "math", knobs.attention_chunk)
    if knobs.ff_chunk:
        set_feed_forward_chunk_size(model, knobs.ff_chunk)
    scfg = model.cfg.sampler
    num_frames = args.num_frames or scfg.num_frames or 14
    num_steps = args.num_steps or args.sampling_steps or scfg.num_steps or 25
    if not 5 <= args.fps <= 30:
        print("WARNING: fps outside 5..30 (the training range) may give poor results", file=sys.stderr)
    image = prepare_image(image_path, model.downscale * 2 ** (len(model.cfg.unet.channel_mult) - 1))
    pipe = SVDPipeline(model, mode=knobs.mode)
    t1 = time.time()
    out = pipe(image, num_frames=num_frames, num_inference_steps=num_steps, fps=args.fps,
               motion_bucket_id=args.motion_bucket_id, noise_aug_strength=args.noise_aug_strength,
               decode_chunk_size=args.decode_chunk_size or None, seed=args.seed, progress=not args.no_progress,
               split_cfg=knobs.split_cfg, sampler=args.sampler)
    name = datetime.now().strftime("%Y-%m-%d_%H-%M-%S") + ("_random" if random_weights else "") + ".mp4"
    path = write_video(out.frames[0], args.output_dir / name, fps=args.fps, value_range=(0, 1))
    from common.sidecar import record_script_run

    record_script_run(path, model="svd", script="svd/image_to_video.py", args=args, weights=[args.checkpoint],
                      seed=args.seed, seconds=time.time() - t1, config=str(config), image=str(image_path),
                      frames=int(out.frames.shape[1]), execution=knobs.describe())
    print(f"wrote {path} ({num_frames} frames {image.shape[2]}x{image.shape[3]}, {num_steps} {args.sampler} steps, "
          f"fps_id {out.fps_id:g}, {time.time() - t1:.1f} s)" + (" -- RANDOM weights" if random_weights else ""))
    return 0


if __name__ == "__main__":
    from common.cli import run_cli

    raise SystemExit(run_cli(main))
