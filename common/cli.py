"""The command line every model's ``tools/convert_weight.py`` shares: flags, one error line, exit codes.

Flags (each model adds its own and may name older spellings as aliases):

    --src PATH          the released checkpoint (file or folder)
    --target FILE       the MindSpore checkpoint to write (``.ckpt`` appended if missing)
    --output_dir DIR    instead of --target: write ``DIR/<src stem>.ckpt``
    --config PATH       the model's config (what the checkpoint is checked against)
    --kind KIND         what the source file is, where a model converts several kinds
    --dtype D           fp32 | fp16 | keep: dtype of the written floating-point tensors
    --allow_partial     write what matches even when keys are missing, unexpected or mis-shaped
    --debug             show the traceback of an error instead of the one line

Exit status: 0 written; 2 bad input, with ONE line ``error: <what> (<flag or file>)`` on stderr
and no traceback (unless ``--debug``). Nothing is written on an error.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["converter_parser", "run_converter", "target_path", "write_state_dict"]

_DTYPES = {"fp32": np.float32, "fp16": np.float16, "keep": None}


class _ConverterParser(argparse.ArgumentParser):
    """argparse with one-line usage errors, the older positional form and the src/target checks."""

    positional: Sequence[str] = ()

    def error(self, message):
        self.exit(2, f"error: {message} (see --help)\n")

    def parse_args(self, args=None, namespace=None):
        ns = super().parse_args(args, namespace)
        given = getattr(ns, "positional", None) or []
        if len(given) > len(self.positional):
            self.error(f"{len(given)} positional arguments, at most {len(self.positional)} "
                       f"({' '.join(n.upper() for n in self.positional)})")
        for name, value in zip(self.positional, given):
            if getattr(ns, name) not in (None, value):
                self.error(f"{name} given both as a flag and positionally")
            choices = next((a.choices for a in self._actions if a.dest == name), None)
            if choices is not None and value not in choices:
                self.error(f"argument {name.upper()}: invalid choice: {value!r} (choose from {', '.join(choices)})")
            setattr(ns, name, value)
        if not ns.src:
            self.error("the source checkpoint is required: --src")
        if not (ns.target or ns.output_dir):
            self.error("where to write is required: --target or --output_dir")
        if ns.target and ns.output_dir:
            self.error("--target and --output_dir exclude each other")
        if getattr(ns, "kind", "") is None:
            self.error("what the source is is required: --kind")
        return ns


def converter_parser(
    doc: str,
    *,
    src_help: str,
    config_help: str,
    config_required: bool = False,
    kinds: Sequence[str] | None = None,
    kind_help: str = "what the source file is",
    dtype_default: str = "fp32",
    aliases: dict[str, Sequence[str]] | None = None,
    positional: Sequence[str] = (),
) -> argparse.ArgumentParser:
    """A parser with the common converter flags (see the module docstring); the model adds its own.

    Args:
        doc: the converter's module docstring: first paragraph = description, the rest = epilog.
        src_help / config_help: what ``--src`` / ``--config`` are for this model.
        config_required: (default False) whether ``--config`` must be given.
        kinds: (default None: no ``--kind``) the kinds of source file the model converts.
        kind_help: help of ``--kind``.
        dtype_default: (default "fp32") default of ``--dtype``.
        aliases: (default none) older flag spellings per destination, e.g. ``{"src": ["--src_ckpt"]}``.
        positional: (default none) destinations that may also be given positionally, in order
            (an older command form), e.g. ``("kind", "src", "target")``.
    """
    aliases = aliases or {}
    head, _, rest = doc.strip().partition("\n\n")
    p = _ConverterParser(description=head, epilog=rest or None, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.positional = tuple(positional)

    def flag(dest: str, *names: str, **kw):
        return p.add_argument(*names, *aliases.get(dest, ()), dest=dest, **kw)

    if positional:
        p.add_argument("positional", nargs="*", metavar=" ".join(n.upper() for n in positional),
                       help="the older positional form: the same as " + " ".join(f"--{n} {n.upper()}" for n in positional))
    if kinds is not None:
        flag("kind", "--kind", choices=list(kinds), default=None, help=f"{kind_help} (required)")
    flag("src", "--src", default=None, metavar="PATH", help=f"{src_help} (required)")
    flag("target", "--target", default=None, metavar="FILE",
         help="MindSpore checkpoint to write; '.ckpt' is appended if missing (this or --output_dir)")
    flag("output_dir", "--output_dir", default=None, metavar="DIR",
         help="instead of --target: write DIR/<src file stem>.ckpt")
    flag("config", "--config", required=config_required, default=None, metavar="PATH",
         help=config_help + (" (required)" if config_required else ""))
    flag("dtype", "--dtype", choices=list(_DTYPES), default=dtype_default,
         help=f"dtype of the written floating-point tensors; keep = as in the source (default {dtype_default})")
    flag("allow_partial", "--allow_partial", action="store_true",
         help="write what matches even when keys are missing, unexpected or mis-shaped (they are still "
              "reported); without it such a file is refused and nothing is written")
    p.add_argument("--debug", action="store_true", help="on an error, show the traceback instead of one line")
    return p


def target_path(args) -> Path:
    """The file to write: ``--target`` (``.ckpt`` appended if missing) or ``<--output_dir>/<src stem>.ckpt``."""
    if args.target:
        t = Path(args.target)
        return t if t.suffix == ".ckpt" else t.with_name(t.name + ".ckpt")
    src = Path(args.src.rstrip("/\\"))
    stem = src.name if src.is_dir() else src.stem
    return Path(args.output_dir) / f"{stem}.ckpt"


def write_state_dict(sd: dict[str, Any], args) -> Path:
    """Write ``sd`` (``{name: array}``) atomically to :func:`target_path`, floating-point tensors cast to
    ``args.dtype``. Returns the path written."""
    from common.checkpoint import save_checkpoint_atomic

    dt = _DTYPES[args.dtype]
    out = {}
    for k, v in sd.items():
        v = np.asarray(v)
        out[k] = np.ascontiguousarray(v, dtype=dt if dt is not None and v.dtype.kind == "f" else None)
    return save_checkpoint_atomic(out, target_path(args))


def run_converter(convert: Callable[[argparse.Namespace], Any], parser: argparse.ArgumentParser,
                  argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, check ``--src`` exists, run ``convert(args)``; returns the exit status.

    Bad input (``ValueError``, which every checkpoint / config error of this repository is, or
    ``OSError``) prints one line ``error: ...`` and returns 2; ``--debug`` re-raises it instead.
    """
    os.environ.setdefault("GLOG_v", "3")  # MindSpore's C++ log lines stay out of the output
    args = parser.parse_args(argv)
    try:
        if not Path(args.src).exists():
            raise FileNotFoundError(f"no such file or folder (--src {args.src})")
        convert(args)
    except (ValueError, OSError) as e:
        if args.debug:
            raise
        msg = f"{e.strerror} ({e.filename})" if isinstance(e, OSError) and e.filename else str(e)
        print("error: " + " ".join(msg.split()), file=sys.stderr)  # one line
        return 2
    return 0
