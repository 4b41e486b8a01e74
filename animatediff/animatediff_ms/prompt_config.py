"""Prompt configs in the original schema (``configs/prompts/*.yaml``): a list of entries, each with

``inference_config``, ``motion_module``, ``motion_module_lora_configs`` (``[{path, alpha}]``),
``adapter_lora_path`` / ``adapter_lora_scale``, ``dreambooth_path``, ``lora_model_path`` / ``lora_alpha``,
``seed`` (int or list; -1 = random), ``steps``, ``guidance_scale``, ``prompt`` (list), ``n_prompt``
(list: one entry for all prompts, or one per prompt), optional ``H`` / ``W`` / ``L``, and this port's
optional ``sampler`` (``ddim`` / ``dpmpp_2m``) and ``save_mp4`` (also write .mp4), and for long videos
``context_length`` / ``context_overlap`` / ``context_schedule`` (sliding frame windows,
:mod:`common.schedulers.context`), ``free_init_iters`` (FreeInit passes) and prompts given as ``{frame: text}``
mappings (prompt travel). SparseCtrl entries add
``controlnet_path`` (``v3_sd15_sparsectrl_{rgb,scribble}.ckpt``), ``controlnet_config``
(``configs/inference/sparsectrl/*.yaml``), ``controlnet_images`` (list of image files), ``controlnet_image_indexs``
(the frame of each image, python indexing; [0]) and ``normalize_condition_images`` (false). Relative paths are
resolved against the current folder first (as the original, run from the project root), then against the
config's folder and each folder above it (so ``configs/...`` and ``models/...`` paths also work from elsewhere).

The original ``sdxl`` branch's prompt files (one top-level mapping: ``base_model_path``, ``motion_module_path``,
``ckpt_path``, ``lora_path`` / ``lora_alpha``, ``seed``, ``steps``, ``guidance_scale``, ``prompt``, ``n_prompt``)
are read as one entry of this schema (:func:`from_sdxl_branch`) with ``configs/inference/inference-sdxl.yaml``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.config import ConfigError, from_mapping, join, load_yaml, unused

from .config import SchedulerConfig


@dataclass
class _EntryKeys:
    """Every key of a prompt-config entry with its type (checked by :func:`common.config.from_mapping`;
    the values are validated and resolved into a :class:`PromptEntry` below)."""

    steps: int
    guidance_scale: float
    prompt: list[str | dict] | str | dict
    inference_config: str | None = None
    motion_module: Any = None
    motion_module_lora_configs: list | None = None
    adapter_lora_path: Any = None
    adapter_lora_scale: float = 1.0
    dreambooth_path: Any = None
    lora_model_path: Any = None
    lora_alpha: float = 0.8
    seed: Any = -1
    n_prompt: list[str] | str | None = None
    H: int | None = None
    W: int | None = None
    L: int | None = None
    sampler: str | None = None
    save_mp4: bool = False
    random_seed: Any = unused("written by the original into the config it saves next to the videos")
    controlnet_path: Any = None
    controlnet_config: Any = None
    controlnet_images: Any = None
    controlnet_image_indexs: Any = None
    normalize_condition_images: bool = False
    context_length: int | None = None
    context_overlap: int = 4
    context_schedule: str = "uniform"
    free_init_iters: int = 0
    base_model_path: Any = None


WEIGHT_KEYS = ("motion_module", "adapter_lora_path", "dreambooth_path", "lora_model_path")


@dataclass
class PromptEntry:
    """One entry of a prompt config, validated, with paths resolved (empty string = not used)."""

    index: int
    inference_config: str
    motion_module: str = ""
    motion_module_lora_configs: list = field(default_factory=list)
    adapter_lora_path: str = ""
    adapter_lora_scale: float = 1.0
    dreambooth_path: str = ""
    lora_model_path: str = ""
    lora_alpha: float = 0.8
    seeds: list = field(default_factory=list)
    steps: int = 25
    guidance_scale: float = 7.5
    prompts: list = field(default_factory=list)
    n_prompts: list = field(default_factory=list)
    H: int | None = None
    W: int | None = None
    L: int | None = None
    sampler: str | None = None
    save_mp4: bool = False
    controlnet_path: str = ""
    controlnet_config: str = ""
    controlnet_images: list = field(default_factory=list)
    controlnet_image_indexs: list = field(default_factory=lambda: [0])
    normalize_condition_images: bool = False
    context_length: int | None = None
    context_overlap: int = 4
    context_schedule: str = "uniform"
    free_init_iters: int = 0
    #: the diffusers folder of this entry's base model (the sdxl branch's ``base_model_path``; "" = the
    #: command line's ``--pretrained_model_path``)
    base_model_path: str = ""

    @property
    def names_weights(self) -> bool:
        """Whether the entry names any weight file."""
        return bool(self.motion_module or self.dreambooth_path or self.lora_model_path or self.adapter_lora_path
                    or self.motion_module_lora_configs or self.controlnet_path or self.base_model_path)

    @property
    def uses_controlnet(self) -> bool:
        """SparseCtrl: a controlnet config and condition images (with a checkpoint, or random for the demo)."""
        return bool(self.controlnet_config and self.controlnet_images)

    def check_controlnet(self, video_length: int, where: str = "") -> None:
        """One ConfigError line for condition images that cannot fit a video of ``video_length`` frames
        (:func:`animatediff_ms.sparsectrl.check_condition`); call before any weight is loaded."""
        if self.uses_controlnet:
            from .sparsectrl import check_condition

            check_condition(len(self.controlnet_images), self.controlnet_image_indexs, video_length,
                            f"{where}.controlnet_image_indexs" if where else "controlnet_image_indexs")


#: the sdxl branch's prompt-file keys -> this schema's (its ``animate.py`` defaults: 100 steps, guidance 10)
SDXL_BRANCH_KEYS = {"base_model_path": "base_model_path", "motion_module_path": "motion_module",
                    "ckpt_path": "dreambooth_path", "lora_path": "lora_model_path", "lora_alpha": "lora_alpha",
                    "seed": "seed", "steps": "steps", "guidance_scale": "guidance_scale", "prompt": "prompt",
                    "n_prompt": "n_prompt"}
SDXL_INFERENCE_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "inference" / "inference-sdxl.yaml"


def is_sdxl_branch_config(data) -> bool:
    """A prompt file of the original sdxl branch (a mapping with ``motion_module_path``)."""
    return isinstance(data, dict) and "motion_module_path" in data


def from_sdxl_branch(data: dict, where: str) -> dict:
    """One entry of this schema from an sdxl-branch prompt file (unknown keys refused, naming the file)."""
    bad = [k for k in data if k not in SDXL_BRANCH_KEYS]
    if bad:
        raise ConfigError(f"{where}: {bad[0]}: unknown key of an sdxl-branch prompt file (known: "
                          f"{', '.join(SDXL_BRANCH_KEYS)})")
    e = {SDXL_BRANCH_KEYS[k]: v for k, v in data.items()}
    e.setdefault("steps", 100)
    e.setdefault("guidance_scale", 10)
    e["H"], e["W"] = 1024, 1024  # the sdxl branch's --H / --W defaults (its files carry no size; --H/--W win)
    e["inference_config"] = str(SDXL_INFERENCE_CONFIG)
    return e


def _is_travel(p) -> bool:
    """A prompt-travel prompt: ``{frame: text}`` with int frames >= 0 (YAML keys ``0:``, ``16:``)."""
    return isinstance(p, dict) and bool(p) and all(isinstance(k, int) and k >= 0 and isinstance(v, str)
                                                   for k, v in p.items())


def _resolve(p: str, base: Path, where: str, must_exist: bool = True) -> str:
    if not p:
        return ""
    cand = [Path(p)] if Path(p).is_absolute() else [Path(p), base / p] + [d / p for d in base.parents]
    for c in cand:
        if c.exists():
            return str(c)
    if must_exist:
        raise ConfigError(f"{where}: file not found: {p}")
    return str(cand[0])


def load_prompt_config(path, default_inference_config: str | None = None, check_files: bool = True) -> list[PromptEntry]:
    """Read and validate a prompt config.

    Args:
        path: the yaml file.
        default_inference_config: ``--inference_config`` for entries without ``inference_config``.
        check_files: raise ConfigError (one line naming the key) when a named weight file does not exist.
    """
    path = Path(path)
    data = load_yaml(path)
    if is_sdxl_branch_config(data):
        data = [from_sdxl_branch(data, str(path))]
    elif isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data:
        raise ConfigError(f"{path}: a prompt config is a non-empty list of entries")
    base = path.parent
    out = []
    for i, e in enumerate(data):
        where = join(str(path), i)
        from_mapping(_EntryKeys, e, where)  # unknown keys, missing steps / guidance_scale, wrong types
        inf = e.get("inference_config") or default_inference_config
        if not inf:
            raise ConfigError(f"{where}: no inference_config (and no --inference_config given)")
        entry = PromptEntry(index=i, inference_config=_resolve(str(inf), base, f"{where}.inference_config"))
        for k in WEIGHT_KEYS:
            v = e.get(k) or ""
            if not isinstance(v, str):
                raise ConfigError(f"{where}.{k}: expected a path string, got {v!r}")
            setattr(entry, k, _resolve(v, base, f"{where}.{k}", check_files))
        mls = e.get("motion_module_lora_configs") or []
        if not isinstance(mls, list):
            raise ConfigError(f"{where}.motion_module_lora_configs: expected a list of {{path, alpha}}")
        for j, c in enumerate(mls):
            if not isinstance(c, dict) or "path" not in c or "alpha" not in c:
                raise ConfigError(f"{where}.motion_module_lora_configs[{j}]: needs 'path' and 'alpha'")
            entry.motion_module_lora_configs.append(
                {"path": _resolve(str(c["path"]), base, f"{where}.motion_module_lora_configs[{j}].path",
                                  check_files), "alpha": float(c["alpha"])})
        base_model = e.get("base_model_path") or ""
        if not isinstance(base_model, str):
            raise ConfigError(f"{where}.base_model_path: expected a folder path, got {base_model!r}")
        entry.base_model_path = _resolve(base_model, base, f"{where}.base_model_path", check_files)
        entry.adapter_lora_scale = float(e.get("adapter_lora_scale", 1.0))
        entry.lora_alpha = float(e.get("lora_alpha", 0.8))
        prompts = e.get("prompt")
        if isinstance(prompts, (str, dict)):
            prompts = [prompts]
        if not prompts or not all(isinstance(p, str) or _is_travel(p) for p in prompts):
            raise ConfigError(f"{where}.prompt: expected a non-empty list of strings (or of {{frame: text}} "
                              "mappings for prompt travel)")
        for k in ("context_length", "context_overlap", "context_schedule", "free_init_iters"):
            if k in e:
                setattr(entry, k, e[k])
        if entry.context_length is not None and not 0 <= entry.context_overlap < entry.context_length:
            raise ConfigError(f"{where}.context_overlap: {entry.context_overlap} must be in [0, context_length="
                              f"{entry.context_length})")
        if entry.context_schedule not in ("uniform", "static"):
            raise ConfigError(f"{where}.context_schedule: {entry.context_schedule!r} is not 'uniform' or 'static'")
        if entry.free_init_iters < 0:
            raise ConfigError(f"{where}.free_init_iters: {entry.free_init_iters} must be >= 0")
        n = e.get("n_prompt", [""]) or [""]
        if isinstance(n, str):
            n = [n]
        if len(n) == 1:
            n = list(n) * len(prompts)
        if len(n) != len(prompts):
            raise ConfigError(f"{where}.n_prompt: {len(n)} negative prompts for {len(prompts)} prompts "
                              f"(give one, or one per prompt)")
        seeds = e.get("seed", [-1])
        seeds = [seeds] if isinstance(seeds, int) else list(seeds)
        if len(seeds) == 1:
            seeds = seeds * len(prompts)
        if len(seeds) != len(prompts) or not all(isinstance(s, int) for s in seeds):
            raise ConfigError(f"{where}.seed: {len(seeds)} integer seeds for {len(prompts)} prompts")
        entry.prompts, entry.n_prompts, entry.seeds = list(prompts), [str(x) for x in n], seeds
        entry.steps, entry.guidance_scale = int(e["steps"]), float(e["guidance_scale"])
        for k in ("H", "W", "L"):
            if e.get(k) is not None:
                setattr(entry, k, int(e[k]))
        if e.get("sampler") is not None:
            if e["sampler"] not in SchedulerConfig.SAMPLERS:
                raise ConfigError(f"{where}.sampler: {e['sampler']!r} is not one of {list(SchedulerConfig.SAMPLERS)}")
            entry.sampler = e["sampler"]
        entry.save_mp4 = bool(e.get("save_mp4", False))
        _read_controlnet(entry, e, base, where, check_files)
        out.append(entry)
    return out


def _read_controlnet(entry: PromptEntry, e: dict, base: Path, where: str, check_files: bool) -> None:
    """The SparseCtrl keys (what ``scripts/animate.py`` asserts, and files that must exist)."""
    for k in ("controlnet_path", "controlnet_config"):
        v = e.get(k) or ""
        if not isinstance(v, str):
            raise ConfigError(f"{where}.{k}: expected a path string, got {v!r}")
        setattr(entry, k, _resolve(v, base, f"{where}.{k}", check_files or k == "controlnet_config"))
    images = e.get("controlnet_images") or []
    if isinstance(images, str):
        images = [images]
    if not isinstance(images, list) or not all(isinstance(p, str) and p for p in images):
        raise ConfigError(f"{where}.controlnet_images: expected a list of image paths, got {images!r}")
    entry.controlnet_images = [_resolve(p, base, f"{where}.controlnet_images[{j}]", check_files)
                               for j, p in enumerate(images)]
    index = e.get("controlnet_image_indexs", [0])
    if isinstance(index, int) and not isinstance(index, bool):
        index = [index]
    if not isinstance(index, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in index):
        raise ConfigError(f"{where}.controlnet_image_indexs: expected a list of frame indices, got {index!r}")
    entry.controlnet_image_indexs = list(index)
    entry.normalize_condition_images = bool(e.get("normalize_condition_images") or False)
    if entry.controlnet_path:
        if not entry.controlnet_images:
            raise ConfigError(f"{where}.controlnet_images: required with controlnet_path (the condition images)")
        if not entry.controlnet_config:
            raise ConfigError(f"{where}.controlnet_config: required with controlnet_path (e.g. "
                              f"configs/inference/sparsectrl/latent_condition.yaml for the RGB controlnet)")
    elif entry.controlnet_images and not entry.controlnet_config:
        raise ConfigError(f"{where}.controlnet_images: given without controlnet_path / controlnet_config "
                          f"(the original would ignore them)")
    if entry.uses_controlnet and entry.L is not None:
        entry.check_controlnet(entry.L, where)
