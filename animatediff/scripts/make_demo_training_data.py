"""Write the tiny demo training set of ``configs/training/demo_tiny.yaml``: a few real mp4 clips of coloured shapes
moving over a gradient and their WebVid CSV (``videoid,name,page_dir``), in the original ``WebVid10M`` layout
(``<video_folder>/<videoid>.mp4``). ffmpeg via imageio-ffmpeg (:mod:`common.train.webvid`).

    python scripts/make_demo_training_data.py [--root demo_data/webvid] [--n 4] [--frames 24]
    python scripts/make_demo_training_data.py --folder --root demo_data/clips   # a folder dataset, no CSV:
    python train.py -c configs/training/demo_tiny.yaml --train_data.csv_path= --train_data.video_folder=demo_data/clips
"""
from __future__ import annotations


def main(argv=None) -> int:
    from common.cli import OneLineParser, run_cli

    def _main(args_list):
        p = OneLineParser(description=__doc__.split("\n\n")[0])
        p.add_argument("--root", default="demo_data/webvid", help="output folder (default demo_data/webvid)")
        p.add_argument("--n", type=int, default=4, help="clips (default 4)")
        p.add_argument("--frames", type=int, default=24, help="frames per clip (default 24)")
        p.add_argument("--size", type=int, nargs=2, default=(64, 96), metavar=("H", "W"), help="clip size (64 96)")
        p.add_argument("--folder", action="store_true",
                       help="a folder dataset instead: <root>/<id>.mp4 with <id>.txt captions beside, no CSV")
        p.add_argument("--debug", action="store_true", help="show the traceback of an error")
        a = p.parse_args(args_list)
        from common.cli import check_range, prepare_output_dir
        from common.train.webvid import make_demo_webvid

        check_range(a.n, "--n", 1)
        check_range(a.frames, "--frames", 1)
        check_range(min(a.size), "--size", 8)
        root = prepare_output_dir(a.root, "--root")
        if a.folder:
            make_demo_webvid(root, n=a.n, frames=a.frames, size=tuple(a.size), layout="folder")
            print(f"wrote {a.n} clips with their .txt captions in {root}")
            return 0
        csv = make_demo_webvid(root, n=a.n, frames=a.frames, size=tuple(a.size), layout="flat")
        print(f"wrote {a.n} clips in {root / 'videos'} and {csv}")
        return 0

    return run_cli(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
