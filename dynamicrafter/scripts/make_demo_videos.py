"""Write a WebVid-style demo set (moving shapes as real mp4 files) for train.py.

    python scripts/make_demo_videos.py --out data/demo_webvid --n 8 --frames 120 --height 320 --width 512
    python train.py -c configs/training_512_v1.0/config.yaml   # its data_dir / meta_path point there
"""
from __future__ import annotations


def main(argv=None) -> int:
    from dynamicrafter_ms.demo_data import make_demo_webvid

    from common.cli import OneLineParser, run_cli

    p = OneLineParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="data/demo_webvid", help="dataset root (default data/demo_webvid)")
    p.add_argument("--n", type=int, default=8, help="videos (default 8)")
    p.add_argument("--frames", type=int, default=120, help="frames per video (default 120: 16 frames x stride 6 fit)")
    p.add_argument("--height", type=int, default=320, help="height (default 320)")
    p.add_argument("--width", type=int, default=512, help="width (default 512)")
    p.add_argument("--fps", type=float, default=24.0, help="frame rate (default 24)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--layout", choices=["page_dir", "folder"], default="page_dir",
                   help="page_dir: <out>/videos/<page_dir>/<id>.mp4 + results.csv (WebVid, meta_path); folder: "
                        "<out>/<id>.mp4 + <id>.txt captions (a folder dataset, meta_path null) (default page_dir)")

    def _main(a):
        args = p.parse_args(a)
        if min(args.n, args.frames, args.height, args.width) < 1 or args.fps <= 0:
            raise ValueError("--n, --frames, --height, --width and --fps must be positive")
        out = make_demo_webvid(args.out, args.n, args.frames, (args.height, args.width), args.fps, args.seed,
                               layout=args.layout)
        print(f"wrote {args.n} videos and {out}" if args.layout == "page_dir" else
              f"wrote {args.n} videos with their .txt captions to {out}")
        return 0

    return run_cli(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
