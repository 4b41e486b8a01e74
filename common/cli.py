"""The command line every model shares: the converters' flags, one error line, exit codes; the input checks of
every inference / training CLI (:func:`check_file`, :func:`check_picture`, :func:`prepare_output_dir`,
:func:`check_range`, :func:`run_cli`).

Converters (``tools/convert_weight.py``):

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
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["OneLineParser", "converter_parser", "run_converter", "target_path", "write_state_dict", "match_and_write", "InputError", "check_file",
           "check_dir", "check_picture", "prepare_output_dir", "check_range", "quiet_runtime", "run_cli",
           "finite_float", "seed_type", "seed_or_random", "SEED_MAX"]

_DTYPES = {"fp32": np.float32, "fp16": np.float16, "keep": None}


def finite_float(text: str) -> float:
    """argparse ``type`` of every float flag (:class:`OneLineParser` uses it for ``type=float``): a finite number;
    ``nan`` and ``inf``, which ``float()`` accepts, would only surface as NaN frames after the whole run."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


#: the seeds every CLI accepts: those of ``numpy.random.default_rng`` / ``mindspore.set_seed`` / torch's
#: ``seed_everything`` alike (the originals' range)
SEED_MAX = 2 ** 32 - 1


def seed_type(text: str) -> int:
    """argparse ``type`` of ``--seed``: an integer in ``0..SEED_MAX``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"{value} is outside 0..{SEED_MAX}")
    return value


def seed_or_random(text: str) -> int:
    """argparse ``type`` of a ``--seed`` where a negative value means "draw one" (DynamiCrafter's): an integer
    ``<= SEED_MAX``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value > SEED_MAX:
        raise argparse.ArgumentTypeError(f"{value} is above {SEED_MAX}")
    return value


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, ``error: <what> (see --help)``, exit status 2 (every CLI).
    ``type=float`` flags take finite numbers only (:func:`finite_float`)."""

    def _get_value(self, action, arg_string):  # argument groups included
        if action.type is float:
            action = argparse.Action(action.option_strings, action.dest, type=finite_float, metavar=action.metavar)
        return super()._get_value(action, arg_string)

    def error(self, message):
        self.exit(2, f"error: {' '.join(message.split())} (see --help)\n")


class _ConverterParser(OneLineParser):
    """The converters' parser: the older positional form and the src/target checks."""

    positional: Sequence[str] = ()

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


def match_and_write(model, sd: dict[str, Any], args, *, rename=None, label: str = "") -> Path:
    """The converters' last step: match ``sd`` against ``model``'s parameters (:func:`common.checkpoint.
    match_state_dict` with ``rename``), refuse a partial match unless ``--allow_partial``, write the renamed
    tensors (:func:`write_state_dict`) and print what was converted, dropped and (when allowed) left out.
    Returns the file written."""
    from common.checkpoint import match_state_dict

    matched, report = match_state_dict(model, sd, rename=rename)
    report.check(args.src, args.allow_partial)
    target = write_state_dict(matched, args)
    print(f"converted {len(matched)} tensors{f' ({label})' if label else ''} -> {target}")
    for why, keys in report.dropped.items():
        print(f"  dropped {len(keys)} tensors: {why}")
    if not report.ok:
        print("  partial (--allow_partial): " + report.message(args.src))
    return target


def run_converter(convert: Callable[[argparse.Namespace], Any], parser: argparse.ArgumentParser,
                  argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, check ``--src`` exists, run ``convert(args)`` and print its time; returns the exit status.

    Bad input (``ValueError``, which every checkpoint / config error of this repository is, or
    ``OSError``) prints one line ``error: ...`` and returns 2; ``--debug`` re-raises it instead.
    """
    os.environ.setdefault("GLOG_v", "3")  # MindSpore's C++ log lines stay out of the output
    args = parser.parse_args(argv)
    try:
        if not Path(args.src).exists():
            raise FileNotFoundError(f"no such file or folder (--src {args.src})")
        t = time.perf_counter()
        convert(args)
        print(f"done in {time.perf_counter() - t:.1f} s")
    except (ValueError, OSError) as e:
        if args.debug:
            raise
        msg = f"{e.strerror} ({e.filename})" if isinstance(e, OSError) and e.filename else str(e)
        print("error: " + " ".join(msg.split()), file=sys.stderr)  # one line
        return 2
    return 0


# ---- checks every model's inference / training CLI shares (one wording, one exit status) ----------------


class InputError(ValueError):
    """Bad user input found before any work: the message is one line naming the flag or file at fault."""


def check_file(path, flag: str, what: str = "file") -> Path:
    """``path`` exists, is a file (not a folder) and is readable; returns it as a Path.

    Args:
        path: the path given.
        flag: the flag or ``file:key`` it came from, named in the error.
        what: what the file is for the message (``"checkpoint"``, ``"picture"``, ...).
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{what} not found: {p} ({flag})")
    if p.is_dir():
        raise InputError(f"{what} {p} is a folder, not a file ({flag})")
    if not os.access(p, os.R_OK):
        raise InputError(f"{what} {p} is not readable ({flag})")
    return p


def check_dir(path, flag: str, what: str = "folder") -> Path:
    """``path`` exists and is a readable folder; returns it as a Path."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{what} not found: {p} ({flag})")
    if not p.is_dir():
        raise InputError(f"{what} {p} is a file, not a folder ({flag})")
    if not os.access(p, os.R_OK | os.X_OK):
        raise InputError(f"{what} {p} is not readable ({flag})")
    return p


def check_picture(path, flag: str) -> Path:
    """``path`` is a readable picture (PIL opens it: PNG, JPEG, WebP, ...); a video or any other file is refused."""
    from PIL import Image, UnidentifiedImageError

    p = check_file(path, flag, "picture")
    try:
        with Image.open(p) as im:
            im.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        kind = " (a video?)" if p.suffix.lower() in {".mp4", ".gif", ".avi", ".mov", ".webm", ".mkv"} else ""
        raise InputError(f"{p} is not a picture{kind}: {' '.join(str(e).split()) or type(e).__name__} ({flag})") from None
    return p


def prepare_output_dir(path, flag: str) -> Path:
    """Create the output folder (and its parents) and check that a file can be written there, before any work.

    Refused: a path that is a file, a path below a file, a folder that cannot be written. Returns the
    absolute path (outputs are reported absolute).
    """
    p = Path(path).expanduser().absolute()
    if p.exists() and not p.is_dir():
        raise InputError(f"output folder {p} is a file ({flag})")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"output folder {p} lies below the file {parent} ({flag})")
            break
    try:
        p.mkdir(parents=True, exist_ok=True)
        import tempfile

        with tempfile.NamedTemporaryFile(dir=p, prefix=".write-test-"):
            pass
    except OSError as e:
        raise InputError(f"output folder {p} is not writable: {e.strerror or e} ({flag})") from None
    return p


def check_range(value, flag: str, lo=None, hi=None, *, what: str = "") -> None:
    """``lo <= value <= hi`` (either bound optional; None values pass: they mean "the default")."""
    if value is None:
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{flag} {value}: {what + ' ' if what else ''}must be a finite number")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        span = (f"{lo}..{hi}" if lo is not None and hi is not None else f">= {lo}" if lo is not None else f"<= {hi}")
        raise InputError(f"{flag} {value}: {what + ' ' if what else ''}must be {span}")


def quiet_runtime() -> None:
    """Keep library chatter that is not the user's business off the terminal: MindSpore's C++ log below
    ERROR and Python deprecation / future warnings (set before MindSpore is imported)."""
    import warnings

    os.environ.setdefault("GLOG_v", "3")
    for cat in (DeprecationWarning, FutureWarning, PendingDeprecationWarning):
        warnings.filterwarnings("ignore", category=cat)


def run_cli(main: Callable[[list[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run a CLI's ``main(argv)``: bad input (``ValueError`` - every config, checkpoint and input error here
    is one - or ``OSError``) prints ONE line ``error: ...`` on stderr and returns 2; ``--debug`` in ``argv``
    shows the traceback instead. Returns ``main``'s status (None = 0)."""
    quiet_runtime()
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        status = main(args)
    except (ValueError, OSError) as e:
        if debug:
            raise
        msg = f"{e.strerror} ({e.filename})" if isinstance(e, OSError) and e.filename else str(e)
        print("error: " + " ".join(msg.split()), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0 if status is None else int(status)
