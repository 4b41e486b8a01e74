"""One generation through the front door: settings checked, pipeline built (cached), video and run record written.

Shared by ``videogen run`` and the app (:mod:`common.app`).
"""
from __future__ import annotations

import datetime
import importlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from common.cli import InputError, prepare_output_dir

from .spec import ModelSpec

#: the models behind the front door, in display order
MODEL_NAMES = ("dynamicrafter", "svd", "animatediff", "videocomposer", "dropletvideo")
#: the video formats written (``--formats``); PNG frames are a separate switch
FORMATS = ("mp4", "gif", "webp")
#: the seed the tiny random-weight models are drawn from (the same tiny model in every run and process)
TINY_WEIGHTS_SEED = 0

#: model -> (cache key, pipeline): one built pipeline per model, and one model with released weights at a time
#: (keys start with the weights path; None = tiny)
_CACHE: dict[str, tuple[tuple, object]] = {}
_LOCKS = {name: threading.Lock() for name in MODEL_NAMES}  # one generation at a time per model
_MS_LOCK = threading.Lock()  # MindSpore's execution mode is global: runs of different models do not overlap


def get_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of a model name (InputError listing the names if unknown)."""
    if name not in MODEL_NAMES:
        raise InputError(f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}")
    return importlib.import_module(f"common.videogen.{name}").SPEC


@dataclass
class Plan:
    """A checked run: the model, its resolved settings, weights (None = tiny random) and release."""

    spec: ModelSpec
    settings: dict
    weights: str | None
    release: str
    output_dir: Path
    formats: tuple[str, ...] = ("mp4",)
    png_frames: bool = False
    name: str | None = None

    @property
    def random_weights(self) -> bool:
        return self.weights is None


def plan(model: str, settings: dict, *, weights: str | None = None, release: str | None = None,
         output_dir="outputs", formats=("mp4",), png_frames: bool = False, name: str | None = None,
         use_env: bool = True) -> Plan:
    """Resolve defaults and check every input (InputError, one line naming the flag) before anything is built.

    ``weights`` None: ``$VIDEOGEN_<MODEL>_WEIGHTS`` (``use_env``), else the tiny random model."""
    spec = get_spec(model)
    weights = spec.weights_from_env(weights) if use_env else (weights or None)
    s, release = spec.resolve(settings, weights, release)
    formats = tuple(formats)
    bad = [f for f in formats if f not in FORMATS]
    if bad or not (formats or png_frames):
        raise InputError(f"--formats {','.join(formats)}: choose one or more of {', '.join(FORMATS)}")
    spec.check(s, weights, release)
    out = prepare_output_dir(output_dir, "--output_dir")
    return Plan(spec, s, str(Path(weights).expanduser()) if weights else None, release, out, formats, png_frames, name)


@dataclass
class Result:
    """What a generation wrote."""

    files: list[Path]
    record: Path
    frames: object  # float32 (T, H, W, 3) in [0, 1]
    seconds: float
    plan: Plan


def _pipeline(p: Plan):
    import mindspore as ms
    import numpy as np

    key = p.spec.cache_key(p.weights, p.release, p.settings)
    cached = _CACHE.get(p.spec.name)
    if cached is not None and cached[0] == key:
        return cached[1]
    _CACHE.pop(p.spec.name, None)  # the old one goes before the new one is built
    if not p.random_weights:  # released models are large: only one of them stays built at a time
        for name in [n for n, (k, _) in _CACHE.items() if k and k[0] is not None]:
            del _CACHE[name]
    import gc

    gc.collect()
    if p.random_weights:  # random initialisers draw from the global seeds: a fixed tiny model
        ms.set_seed(TINY_WEIGHTS_SEED)
        np.random.seed(TINY_WEIGHTS_SEED)
    pipe = p.spec.load(p.weights, p.release, p.settings)
    _CACHE[p.spec.name] = (key, pipe)
    return pipe


def _stem(p: Plan) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = p.name or f"{p.spec.name}_{stamp}_s{p.settings.get('seed')}"
    stem, k = p.output_dir / base, 1
    while any(stem.with_name(stem.name + s).exists() for s in (".json", ".mp4", ".gif", ".webp", "_frames")):
        stem, k = p.output_dir / f"{base}-{k}", k + 1
    return stem


def execute(p: Plan, callback=None, log=print) -> Result:
    """Build (or reuse) the pipeline, generate, write the video in each format (+ PNG frames) and the run record.

    Args:
        p: a checked :func:`plan`.
        callback: ``callback(step, total)`` after each denoising step.
        log: one-line messages (None: silent).
    """
    import mindspore as ms

    from common.sidecar import write_sidecar
    from common.video_io import write_video

    say = log or (lambda *_: None)
    s = p.settings
    if p.random_weights:
        say(f"[videogen] no weights for {p.spec.name} (--weights or ${p.spec.env_var}): a TINY RANDOMLY "
            "INITIALISED model runs; the video is noise, not the model's output")
    with _LOCKS[p.spec.name], _MS_LOCK:
        graph = s.get("mode") == "graph" and p.spec.graph_context
        ms.set_context(mode=ms.GRAPH_MODE if graph else ms.PYNATIVE_MODE)
        if ms.get_context("device_target") == "CPU":
            ms.runtime.launch_blocking()  # synchronous launch: faster on a few CPU cores, same numbers
        t0 = time.time()
        pipe = _pipeline(p)
        built = time.time() - t0
        if s.get("seed") is not None:
            ms.set_seed(int(s["seed"]))
        t1 = time.time()
        frames = p.spec.generate(pipe, s, callback)
        seconds = time.time() - t1
    stem = _stem(p)
    fps = float(s.get("fps") or 8)
    files = [write_video(frames, stem.with_name(stem.name + "." + f), fps=fps, value_range=(0, 1)) for f in p.formats]
    if p.png_frames:
        files.append(write_video(frames, stem.with_name(stem.name + "_frames"), fps=fps, value_range=(0, 1)))
    record = write_sidecar(
        stem.with_suffix(".json"), model=p.spec.name, release=p.release, settings=s,
        weights=p.spec.weight_paths(p.weights, p.release, s), seed=s.get("seed"), seconds=seconds,
        random_weights=p.random_weights, outputs=files,
        extra={"weights_arg": p.weights, "output": {"formats": list(p.formats), "png_frames": p.png_frames},
               "frames": {"count": int(frames.shape[0]), "height": int(frames.shape[1]),
                          "width": int(frames.shape[2]), "fps": fps},
               "build_seconds": round(built, 3),
               **({"tiny_weights_seed": TINY_WEIGHTS_SEED} if p.random_weights else {})})
    say(f"[videogen] wrote {', '.join(str(f) for f in files)} and {record.name} ({frames.shape[0]} frames "
        f"{frames.shape[2]}x{frames.shape[1]}, {seconds:.1f} s)" + (" -- RANDOM weights" if p.random_weights else ""))
    return Result(files, record, frames, seconds, p)
