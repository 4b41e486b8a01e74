"""What the front door (``videogen`` and the app) knows about a model: its settings, releases, weights, and how
to build and call its pipeline.

Settings are one flat dict with the common names (:data:`COMMON`: ``prompt negative_prompt image num_frames height
width num_inference_steps guidance_scale seed fps mode attention_chunk_size``) plus the model's own
(:attr:`ModelSpec.extras`). A model lists the common names it takes in :attr:`ModelSpec.uses`; a setting it does
not take is refused. ``None`` means "the default" (``""`` is a value: an empty text): the tiny demo's without weights, the release's with weights
(:meth:`ModelSpec.resolve`). Everything is checked (:meth:`ModelSpec.check`) before any model is built.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from common.cli import InputError, check_dir, check_file, check_picture, check_range

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Param:
    """One setting.

    Attributes:
        name: the flag / field name (``--<name>``).
        type: ``int``, ``float``, ``str`` or ``bool``.
        help: what it does (shown by ``--help`` and in the app).
        choices: allowed values (None = any).
        lo / hi: inclusive bounds of numbers (None = unbounded).
        kind: ``"picture"`` / ``"video"`` / ``"file"``: a path checked to exist (a picture must open).
    """

    name: str
    type: type
    help: str
    choices: tuple | None = None
    lo: float | None = None
    hi: float | None = None
    kind: str | None = None


#: the common settings (the same name, meaning and checks in every model)
COMMON: dict[str, Param] = {p.name: p for p in (
    Param("prompt", str, "what the video should show"),
    Param("negative_prompt", str, "what it should not show (the guidance's unconditional text)"),
    Param("image", str, "the picture to animate (first frame / conditioning image)", kind="picture"),
    Param("num_frames", int, "frames to generate", lo=1, hi=1024),
    Param("height", int, "video height in pixels", lo=8, hi=4096),
    Param("width", int, "video width in pixels", lo=8, hi=4096),
    Param("num_inference_steps", int, "denoising steps (more: better, slower)", lo=1, hi=1000),
    Param("guidance_scale", float, "classifier-free guidance scale (higher: follows the condition more)", lo=0, hi=100),
    Param("seed", int, "random seed (the same seed and settings give the same video)", lo=0, hi=2 ** 32 - 1),
    Param("fps", float, "frame rate of the written video", lo=1, hi=120),
    Param("mode", str, "MindSpore execution: pynative (op by op) or graph (compiled)", choices=("pynative", "graph")),
    Param("attention_chunk_size", int, "attention queries per chunk (bounds memory; 0 = all at once)", lo=0),
)}


@dataclass
class ModelSpec:
    """A model behind the front door. Subclasses implement :meth:`load` and :meth:`generate` (and may add
    checks in :meth:`check_model`).

    Attributes:
        name: the command-line name (``videogen run <name>``).
        title: the display name. task: one line.
        releases: ``{release: description}``; the first is the default.
        weights_help: what the weights are and where they go (``videogen list``, the app).
        uses: the common settings the model takes.
        extras: the model's own settings.
        tiny: defaults of the tiny random-weight demo. release_defaults: ``{release: defaults}`` with weights.
        converter: the model's ``tools/convert_weight.py`` (None: the released files are read as they are).
        graph_context: ``--mode graph`` sets MindSpore's global GRAPH_MODE (as the model's CLI does); False: the
            context stays PyNative and the pipeline compiles its own parts (``ms.jit``) when told ``mode="graph"``.
        fps_is_condition: ``--fps`` is also what the model is conditioned on (SVD, DropletVideo: motion), not only
            the file's frame rate.
    """

    name: str = ""
    title: str = ""
    task: str = ""
    releases: dict[str, str] = field(default_factory=dict)
    weights_help: str = ""
    uses: tuple[str, ...] = ()
    extras: tuple[Param, ...] = ()
    tiny: dict[str, Any] = field(default_factory=dict)
    release_defaults: dict[str, dict[str, Any]] = field(default_factory=dict)
    converter: str | None = None
    graph_context: bool = False
    fps_is_condition: bool = False

    # ---- weights ----
    @property
    def env_var(self) -> str:
        """Environment variable naming the weights folder when ``--weights`` is not given."""
        return f"VIDEOGEN_{self.name.upper()}_WEIGHTS"

    def weights_from_env(self, weights: str | None) -> str | None:
        """``weights`` if given, else ``$VIDEOGEN_<NAME>_WEIGHTS`` (empty = none: the tiny random model)."""
        return weights if weights else (os.environ.get(self.env_var) or None)

    def weight_paths(self, weights: str | None, release: str, s: dict) -> list[str]:
        """The files / folders a run reads (for the run record); default: the weights path itself."""
        return [weights] if weights else []

    # ---- settings ----
    def params(self) -> dict[str, Param]:
        """Every setting of this model: the common ones it uses, then its own."""
        out = {n: COMMON[n] for n in self.uses}
        if self.fps_is_condition and "fps" in out:
            out["fps"] = replace(COMMON["fps"], help="frames per second: the model is conditioned on it (the motion "
                                 "it makes between frames) and the file plays at it")
        out.update({p.name: p for p in self.extras})
        return out

    def default_release(self) -> str:
        return next(iter(self.releases))

    def resolve(self, settings: dict, weights: str | None, release: str | None) -> tuple[dict, str]:
        """Fill the defaults (tiny or release) of every unset setting; returns (settings, release)."""
        release = release or self.default_release()
        if release not in self.releases:
            raise InputError(f"{self.name} has no release {release!r}; choose from {', '.join(self.releases)} "
                             "(--release)")
        known = set(self.params())
        for k, v in settings.items():
            if k not in known and v not in (None, ""):
                raise InputError(f"{self.name} takes no --{k} (its settings: {', '.join(sorted(known))})")
        defaults = dict(self.tiny if not weights else self.release_defaults.get(release, {}))
        out = {k: settings.get(k) if settings.get(k) is not None else defaults.get(k) for k in self.params()}
        return out, release

    def check(self, s: dict, weights: str | None, release: str) -> None:
        """Every setting checked (types, ranges, choices, files) before any model is built: InputError naming
        the flag. Then :meth:`check_model`."""
        for name, p in self.params().items():
            v = s.get(name)
            if v is None:
                continue
            flag = f"--{name}"
            if p.type in (int, float) and isinstance(v, bool) or p.type is int and not isinstance(v, int) \
                    or p.type is float and not isinstance(v, (int, float)):
                raise InputError(f"{flag} {v!r} is not a{'n integer' if p.type is int else ' number'}")
            if p.type is float and v != v:
                raise InputError(f"{flag} is NaN")
            if p.choices is not None and v not in p.choices:
                raise InputError(f"{flag} {v!r}: choose from {', '.join(map(str, p.choices))}")
            check_range(v, flag, p.lo, p.hi)
            if p.kind == "picture":
                check_picture(v, flag)
            elif p.kind in ("video", "file"):
                check_file(v, flag, p.kind)
        if weights:
            p = Path(weights)
            if not p.exists():
                raise InputError(f"weights not found: {p} (--weights or ${self.env_var})")
            if p.is_dir():
                check_dir(p, "--weights")
        self.check_model(s, weights, release)

    def check_model(self, s: dict, weights: str | None, release: str) -> None:
        """Model-specific checks (sizes a UNet can take, files the weights folder must hold, ...)."""

    # ---- running ----
    def load(self, weights: str | None, release: str, s: dict):
        """Build the pipeline (random tiny weights when ``weights`` is None). Cached by the caller per
        ``cache_key``."""
        raise NotImplementedError

    def cache_key(self, weights: str | None, release: str, s: dict) -> tuple:
        """What identifies a built pipeline (a change rebuilds it); starts with ``weights`` (None = tiny)."""
        return (weights, release, s.get("mode"), s.get("attention_chunk_size"))

    def generate(self, pipe, s: dict, callback) -> Any:
        """One video: float32 (T, H, W, 3) frames in [0, 1]. ``callback(step, total)`` after each denoising step."""
        raise NotImplementedError


def find_weight_file(folder: Path, names: tuple[str, ...], what: str, flag: str = "--weights") -> Path:
    """``folder`` itself if it is a file, else the first of ``names`` in it (InputError naming them if none)."""
    if folder.is_file():
        return folder
    for n in names:
        if (folder / n).is_file():
            return folder / n
    raise InputError(f"{folder} holds no {what} ({' / '.join(names)}) ({flag})")


def step_callback(callback, total: int):
    """A pipeline ``callback(dict)`` that reports ``(step, total)`` (steps count from 1)."""
    if callback is None:
        return None
    return lambda d: callback(int(d["i"]) + 1, total)
