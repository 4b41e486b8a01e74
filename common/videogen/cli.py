"""``videogen``: every model of the zoo behind one command line.

    videogen list                                   # models, releases, where the weights go
    videogen run dynamicrafter --image cat.png --prompt "a cat yawns" --weights ckpts/dynamicrafter_256
    videogen run animatediff --prompt "a corgi on the beach" --formats mp4,gif,webp --png_frames
    videogen run --from outputs/animatediff_20260101-120000_s42.json          # the same video again
    videogen run --from outputs/animatediff_20260101-120000_s42.json --seed 7 # ... with one setting changed
    videogen convert svd --src svd.safetensors --target svd.ckpt             # the model's tools/convert_weight.py

Common flags (the same in every model): --prompt --negative_prompt --image --num_frames --height --width
--num_inference_steps --guidance_scale --seed --fps --mode pynative|graph --attention_chunk_size, and
--weights (or $VIDEOGEN_<MODEL>_WEIGHTS) --release --output_dir --formats --png_frames. A model refuses the
ones it does not take; ``videogen run MODEL --help`` lists its own. Without weights the model's tiny
RANDOMLY INITIALISED demo runs (it says so; the video is noise). Every run writes the video and a ``.json``
beside it (model, weights with sizes and sha256 where cheap, every setting, seed, versions, time taken).
Bad input: one line ``error: ...`` and exit status 2, before any model is built.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from common.cli import InputError, OneLineParser, run_cli

from .run import FORMATS, MODEL_NAMES, get_spec
from .spec import COMMON, REPO


def _list() -> int:
    for name in MODEL_NAMES:
        spec = get_spec(name)
        env = os.environ.get(spec.env_var)
        print(f"{name}: {spec.title} -- {spec.task}")
        for r, what in spec.releases.items():
            print(f"    release {r}{' (default)' if r == spec.default_release() else ''}: {what}")
        print(f"    weights: {spec.weights_help}")
        print(f"             --weights PATH or ${spec.env_var}" + (f" (now {env})" if env else
                                                                  " (unset: the tiny random-weight demo)"))
        print("    convert: " + (f"videogen convert {name} ... ({spec.converter})" if spec.converter else
                                  "not needed (the released files are read as they are)"))
        print(f"    settings: {' '.join('--' + p for p in spec.params())}")
    return 0


def _formats(v: str) -> tuple[str, ...]:
    out = tuple(f.strip().lower().lstrip(".") for f in v.split(",") if f.strip())
    bad = [f for f in out if f not in FORMATS]
    if bad or not out:
        raise argparse.ArgumentTypeError(f"{v!r}: a comma-separated list of {', '.join(FORMATS)}")
    return out


def run_parser(name: str, defaults: dict | None = None) -> argparse.ArgumentParser:
    """The flags of ``videogen run <name>`` (every common flag, the model's own, the output flags)."""
    spec = get_spec(name)
    p = OneLineParser(prog=f"videogen run {name}", description=f"{spec.title}: {spec.task}. Unset settings take the "
                      "release's defaults with weights, the tiny demo's without.")
    own = spec.params()
    for pname, prm in {**COMMON, **own}.items():
        kw = {"type": prm.type, "default": None, "metavar": prm.type.__name__.upper()}
        if prm.choices:
            kw.update(choices=prm.choices, metavar=None)
        rel = spec.release_defaults.get(spec.default_release(), {})
        note = (f" (default: {spec.tiny.get(pname)!r} without weights, {rel.get(pname)!r} with "
                f"{spec.default_release()})" if pname in own else f" [{name} does not take it]")
        p.add_argument(f"--{pname}", help=prm.help + note, **kw)
    p.add_argument("--weights", default=None, help=f"{spec.weights_help} (default ${spec.env_var}; none: the tiny "
                                                   "RANDOM demo model)")
    p.add_argument("--release", choices=list(spec.releases), default=None,
                   help=f"which release the weights are (default {spec.default_release()})")
    p.add_argument("--output_dir", default="outputs", help="folder of the video and its .json (default outputs; "
                                                            "with --from: the record's folder)")
    p.add_argument("--formats", type=_formats, default=("mp4",), help="video formats, comma-separated: "
                   f"{','.join(FORMATS)} (default mp4)")
    p.add_argument("--png_frames", action="store_true", help="also write the frames as PNG (<name>_frames/)")
    p.add_argument("--name", default=None, help="file name stem (default <model>_<time>_s<seed>)")
    p.add_argument("--from", dest="from_record", default=None, metavar="JSON",
                   help="repeat the run recorded in this .json (flags given here change it)")
    p.add_argument("--no_progress", action="store_true", help="hide the progress bar")
    p.add_argument("--debug", action="store_true", help="on an error, show the traceback instead of one line")
    if defaults:
        p.set_defaults(**defaults)
    return p


def _run(argv: list[str]) -> int:
    from common.sidecar import read_sidecar

    from .run import execute, plan

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--from", dest="from_record", default=None)
    known, _ = pre.parse_known_args(argv)
    defaults, model = {}, None
    if known.from_record:
        rec = read_sidecar(known.from_record)
        if rec.get("script"):
            import shlex

            raise InputError(f"{known.from_record} records a run of {rec['script']}, not of videogen; repeat it with: "
                             f"cd {rec.get('cwd', '.')} && python {shlex.join(rec.get('command') or [])} (--from)")
        model = rec["model"]
        out = rec.get("output") or {}
        defaults = dict(rec["settings"], weights=rec.get("weights_arg"), release=rec.get("release"),
                        formats=tuple(out.get("formats") or ("mp4",)), png_frames=bool(out.get("png_frames")),
                        output_dir=str(Path(known.from_record).parent))  # beside the record unless told
    positional = argv[0] if argv and not argv[0].startswith("-") else None
    if positional is None and model is None:
        if argv and argv[0] in ("-h", "--help"):
            print(__doc__)
            return 0
        raise InputError(f"which model? videogen run MODEL ... ({', '.join(MODEL_NAMES)}) or videogen run --from JSON")
    if positional is not None and model is not None and positional != model:
        raise InputError(f"{known.from_record} records a {model} run, not {positional} (--from)")
    model = positional or model
    get_spec(model)
    args = run_parser(model, defaults).parse_args(argv[1:] if positional else argv)
    spec = get_spec(model)
    settings = {k: getattr(args, k) for k in {**COMMON, **spec.params()}}
    p = plan(model, settings, weights=args.weights, release=args.release, output_dir=args.output_dir,
             formats=args.formats, png_frames=args.png_frames, name=args.name,
             use_env=not (known.from_record and args.weights is None))  # a recorded tiny run stays tiny
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        state = {}

        def bar(i, n):
            if "bar" not in state:
                state["bar"] = tqdm(total=n, desc=f"{model} denoising", file=sys.stderr)
            state["bar"].update(i - state["bar"].n)
            if i >= n:
                state.pop("bar").close()
    execute(p, callback=bar)
    return 0


def _convert(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        raise InputError(f"which model? videogen convert MODEL ... ({', '.join(MODEL_NAMES)})")
    spec = get_spec(argv[0])
    if spec.converter is None:
        raise InputError(f"{spec.name} needs no conversion: {spec.weights_help}")
    script = REPO / spec.converter
    return subprocess.call([sys.executable, str(script), *argv[1:]])  # in the caller's folder: its paths hold


def _main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "list":
        return _list()
    if cmd == "run":
        return _run(rest)
    if cmd == "convert":
        return _convert(rest)
    raise InputError(f"unknown command {cmd!r}: list, run or convert (see videogen --help)")


def main(argv=None) -> int:
    """Entry point; returns the exit status."""
    return run_cli(_main, argv)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
