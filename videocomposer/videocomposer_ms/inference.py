"""VideoComposer inference (``run_net.py``): compose a video from a text, a source video (motion, depth, sketch, first frame,
masks), a style image, a first frame or a single sketch, as the config's ``guidances`` say.

    python run_net.py --cfg configs/exp02_motion_transfer_vs_style.yaml --seed 9999 \
        --input_video demo_video/motion_transfer.mp4 --image_path demo_video/moon_on_water.jpg \
        --style_image demo_video/moon_on_water.jpg --input_text_desc "A beautiful big silver moon on the water"

Writes ``<output_dir>/<cfg name>-S<seed>/`` with ``result.mp4`` / ``result.gif`` (the source clip, each
condition and the result side by side, as the original's gif), ``video.mp4`` (the result alone) and
``text_description.txt``. Weights: the six released files in ``--weights_dir`` (default ``model_weights``);
``--random_weights`` runs the code path with random weights (the output is noise) and says so.
Exit status 0, or 2 with one ``error: ...`` line.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    head, _, rest = __doc__.strip().partition("\n\n")
    from common.cli import OneLineParser, seed_type

    p = OneLineParser(description=head, epilog=rest, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cfg", dest="cfg_file", default="configs/exp01_vidcomposer_full.yaml",
                   help="experiment YAML in the original schema (configs/exp01..exp06*.yaml); its guidances pick "
                        "the conditions")
    p.add_argument("--seed", type=seed_type, default=8888, help="seed of the noise, the clip start and the resize filter")
    p.add_argument("--input_video", default="demo_video/video_8800.mp4",
                   help="source video: its motion vectors (motion), depth maps (depth), sketches (sketch, "
                        "single_sketch), first frame (local_image without --image_path), middle frame (style "
                        "without --style_image) and masked frames (masked)")
    p.add_argument("--image_path", default="",
                   help="first frame to animate (local_image), used when the config has read_image: True")
    p.add_argument("--sketch_path", default="",
                   help="a single sketch image (sketch / single_sketch), used when the config has read_sketch: True")
    p.add_argument("--style_image", default=None,
                   help="style image, encoded by the OpenCLIP visual tower (image), used when the config has "
                        "read_style: True")
    p.add_argument("--depth_path", default=None,
                   help="a depth image to use instead of MiDaS on --input_video: its grey level in [0, 1] is "
                        "scaled to [0, depth_clamp] and repeated over the frames")
    p.add_argument("--input_text_desc", default="A colorful and beautiful fish swimming in a small glass bowl "
                   "with multicolored piece of stone, Macro Video", help="the caption (y)")
    p.add_argument("--output_dir", default=None, help="where results go (default: the config's log_dir)")
    p.add_argument("--mode", choices=["pynative", "graph"], default="pynative",
                   help="MindSpore execution mode of the UNet: graph compiles it once (faster steps, a "
                        "compilation first), pynative runs op by op")
    p.add_argument("--num_inference_steps", type=int, default=None,
                   help="DDIM steps (default: the config's ddim_timesteps, 50)")
    p.add_argument("--num_frames", type=int, default=None,
                   help="frames of the video (default: the config's max_frames / frame_lens[0], 16)")
    p.add_argument("--guidance_scale", type=float, default=9.0,
                   help="classifier-free guidance scale (the original hard-codes 9.0)")
    p.add_argument("--attention_chunk_size", type=int, default=0,
                   help="process attention queries this many at a time (bounds the score matrices' memory; 0 = "
                        "all at once)")
    p.add_argument("--weights_dir", default="model_weights",
                   help="folder of the six released files (non_ema_228000.pth, open_clip_pytorch_model.bin, "
                        "v2-1_512-ema-pruned.ckpt, midas_v3_dpt_large.pth, table5_pidinet.pth, "
                        "sketch_simplification_gan.pth)")
    p.add_argument("--random_weights", action="store_true",
                   help="no weights: random initialisation (a smoke test of the code path; the video is noise)")
    p.add_argument("--no_progress", action="store_true", help="hide the progress bar")
    p.add_argument("--debug", action="store_true", help="on an error, show the traceback instead of one line")
    return p


def _check_args(args):
    from common.cli import check_file

    if args.num_inference_steps is not None and not 1 <= args.num_inference_steps <= 1000:
        raise ValueError(f"--num_inference_steps must be in [1, 1000], got {args.num_inference_steps}")
    if args.num_frames is not None and args.num_frames < 1:
        raise ValueError(f"--num_frames must be >= 1, got {args.num_frames}")
    if args.attention_chunk_size < 0:
        raise ValueError(f"--attention_chunk_size must be >= 0, got {args.attention_chunk_size}")
    check_file(args.cfg_file, "--cfg", "config")
    if args.input_video:
        check_file(args.input_video, "--input_video", "video")


def run(args) -> Path:
    import mindspore as ms
    import numpy as np

    from common.cli import check_dir, check_picture, prepare_output_dir
    from common.nn import set_attention
    from common.video_io import load_image, write_video

    from .config import load_config
    from .pipeline import VideoComposerPipeline, side_by_side

    _check_args(args)
    cfg = load_config(args.cfg_file, {"seed": args.seed, **({"max_frames": args.num_frames} if args.num_frames else {})})
    g = set(cfg.guidances)
    for flag, value, needed in (("--image_path", args.image_path, cfg.read_image and "local_image" in g),
                                ("--style_image", args.style_image, cfg.read_style and "image" in g),
                                ("--sketch_path", args.sketch_path, cfg.read_sketch and bool(g & {"sketch", "single_sketch"}))):
        if needed and not value:
            raise ValueError(f"the config reads {flag} (guidances {cfg.guidances}) but none was given ({flag})")
        if value:
            check_picture(value, flag)
    if args.depth_path:
        check_picture(args.depth_path, "--depth_path")
    weights = None if args.random_weights else args.weights_dir
    if weights is not None:
        if not Path(weights).exists():
            raise ValueError(f"weights folder not found: {weights} (--weights_dir; --random_weights runs without "
                             "weights)")
        check_dir(weights, "--weights_dir", "weights folder")
    name = f"{Path(args.cfg_file).stem}-S{cfg.seed:05d}"
    folder = prepare_output_dir(Path(args.output_dir or cfg.log_dir) / name, "--output_dir")
    ms.set_context(mode=ms.GRAPH_MODE if args.mode == "graph" else ms.PYNATIVE_MODE)
    if ms.get_context("device_target") == "CPU":
        # synchronous op launch: on a few CPU cores the asynchronous dispatch costs more than it hides
        # (PyNative several times faster); the numbers are unchanged
        ms.runtime.launch_blocking()
    ms.set_seed(cfg.seed)
    t0 = time.time()
    pipe = VideoComposerPipeline(cfg, weights)
    if args.attention_chunk_size:
        for part in (pipe.unet, pipe.clip, pipe.vae, pipe.midas):
            if part is not None:
                set_attention(part, chunk_size=args.attention_chunk_size)
    if pipe.random:
        print("NOTE: the weights are random (--random_weights): the video shows the code path, not the model")
    depth = None
    if args.depth_path:
        grey = np.asarray(load_image(args.depth_path, mode="L"), np.float32) / 255.0
        depth = grey * cfg.depth_clamp
    print(f"built in {time.time() - t0:.1f} s; composing {cfg.frames} frames with {', '.join(cfg.guidances)}")
    out = pipe(args.input_text_desc, video=args.input_video, image_path=args.image_path or None,
               style_image=args.style_image, sketch_path=args.sketch_path or None, depth=depth,
               num_inference_steps=args.num_inference_steps, guidance_scale=args.guidance_scale,
               progress=not args.no_progress)
    grid = side_by_side(out)
    write_video(grid, folder / "result.mp4", fps=8, value_range=(0, 1))
    write_video(grid, folder / "result.gif", fps=8, value_range=(0, 1))
    write_video(out.frames[0], folder / "video.mp4", fps=8, value_range=(0, 1))
    (folder / "text_description.txt").write_text(args.input_text_desc + "\n")
    from common.sidecar import record_script_run

    record_script_run(folder / "video.mp4", model="videocomposer", script="videocomposer/run_net.py", args=args,
                      weights=[weights], seed=cfg.seed, seconds=time.time() - t0,
                      outputs=[folder / n for n in ("video.mp4", "result.mp4", "result.gif", "text_description.txt")])
    cols = (["source"] if out.source is not None else []) + list(out.conditions) + ["result"]
    print(f"saved {folder / 'result.mp4'} (+ .gif; columns: {', '.join(cols)}) in {time.time() - t0:.1f} s")
    return folder


def _main(argv) -> int:
    run(build_parser().parse_args(argv))
    return 0


def main(argv=None) -> int:
    """Entry point: 0, or 2 with one ``error:`` line (``--debug`` shows the traceback)."""
    from common.cli import run_cli

    return run_cli(_main, argv)
