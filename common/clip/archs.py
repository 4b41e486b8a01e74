"""OpenCLIP model configs: typed dataclasses, the released archs, and JSON loading.

The schema is open_clip's ``model_configs/<arch>.json`` (``embed_dim``, ``vision_cfg``,
``text_cfg``, optional ``quick_gelu``). Only options that change the numbers of the plain CLIP
ViT / text transformer are implemented; a config that asks for anything else (timm or HF towers,
attention pooling, patch-norm, ...) is refused with an error naming the key.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.config import ConfigError, fixed, from_mapping, unused

_NO_EFFECT = "no effect on the inference numbers of the plain CLIP towers"
_NOT_PORTED = "the other value needs a tower this port does not have"


def _pair(v, key: str) -> tuple[int, int]:
    if isinstance(v, (list, tuple)):
        if len(v) != 2:
            raise ConfigError(f"{key}: must be an int or a pair, got {v!r}")
        return int(v[0]), int(v[1])
    return int(v), int(v)


@dataclass
class CLIPVisionCfg:
    """open_clip ``vision_cfg`` of a ViT tower.

    Args:
        layers: residual attention blocks (ViT-H-14: 32).
        width: token width (ViT-H-14: 1280).
        head_width: width per attention head; heads = width // head_width (default 64).
        mlp_ratio: MLP hidden width = int(width * mlp_ratio) (default 4.0; bigG 4.9231).
        patch_size: patch side, int or (h, w) (ViT-*-14: 14).
        image_size: input side, int or (h, w) (default 224).
        ls_init_value: LayerScale init (None = no ``ls_1``/``ls_2`` parameters).
    The other keys of open_clip's schema are read and either have no effect here (``unused``) or are
    supported at their default only (``fixed``: timm towers, attention pooling, patch-norm, ...).
    """

    layers: int = 12
    width: int = 768
    head_width: int = 64
    mlp_ratio: float = 4.0
    patch_size: int | tuple[int, int] = 16
    image_size: int | tuple[int, int] = 224
    ls_init_value: float | None = None
    patch_dropout: Any = unused("training-time token dropout")
    output_tokens: Any = unused(_NO_EFFECT)
    timm_model_pretrained: Any = unused(_NO_EFFECT)
    timm_pool: Any = unused(_NO_EFFECT)
    timm_proj: Any = unused(_NO_EFFECT)
    timm_proj_bias: Any = unused(_NO_EFFECT)
    timm_drop: Any = unused(_NO_EFFECT)
    timm_drop_path: Any = unused(_NO_EFFECT)
    n_queries: Any = unused(_NO_EFFECT)
    attn_pooler_heads: Any = unused(_NO_EFFECT)
    final_ln_after_pool: Any = unused(_NO_EFFECT)
    input_patchnorm: bool = fixed(False, _NOT_PORTED)
    global_average_pool: bool = fixed(False, _NOT_PORTED)
    attentional_pool: bool = fixed(False, _NOT_PORTED)
    timm_model_name: str | None = fixed(None, _NOT_PORTED)
    no_ln_pre: bool = fixed(False, _NOT_PORTED)
    pos_embed_type: str = fixed("learnable", _NOT_PORTED)
    attn_pooler_queries: int = fixed(256, _NOT_PORTED)

    def __post_init__(self):
        if self.width % self.head_width:
            raise ConfigError(f"width: {self.width} is not a multiple of head_width {self.head_width}")

    @property
    def heads(self) -> int:
        return self.width // self.head_width

    @property
    def grid(self) -> tuple[int, int]:
        """Patches per (row, column)."""
        ih, iw = _pair(self.image_size, "vision_cfg.image_size")
        ph, pw = _pair(self.patch_size, "vision_cfg.patch_size")
        return ih // ph, iw // pw

    @property
    def num_tokens(self) -> int:
        """Class token + patches (ViT-H-14 at 224: 257)."""
        gh, gw = self.grid
        return gh * gw + 1


@dataclass
class CLIPTextCfg:
    """open_clip ``text_cfg`` of the built-in text transformer.

    Args:
        context_length: token positions (77).
        vocab_size: token embedding rows (49408 for the CLIP BPE).
        width: token width (ViT-H-14: 1024).
        heads: attention heads (ViT-H-14: 16).
        layers: residual attention blocks (ViT-H-14: 24).
        mlp_ratio: MLP hidden width = int(width * mlp_ratio) (4.0).
        ls_init_value: LayerScale init (None = none).
    """

    context_length: int = 77
    vocab_size: int = 49408
    width: int = 512
    heads: int = 8
    layers: int = 12
    mlp_ratio: float = 4.0
    ls_init_value: float | None = None
    output_tokens: Any = unused(_NO_EFFECT)
    proj: Any = unused(_NO_EFFECT)
    hf_model_pretrained: Any = unused(_NO_EFFECT)
    hf_proj_type: Any = unused(_NO_EFFECT)
    hf_pooler_type: Any = unused(_NO_EFFECT)
    pooler_type: Any = unused(_NO_EFFECT)
    pool_type: Any = unused(_NO_EFFECT)
    pad_id: Any = unused(_NO_EFFECT)
    hf_model_name: str | None = fixed(None, _NOT_PORTED)
    hf_tokenizer_name: str | None = fixed(None, _NOT_PORTED)
    embed_cls: bool = fixed(False, _NOT_PORTED)
    no_causal_mask: bool = fixed(False, _NOT_PORTED)
    proj_bias: bool = fixed(False, _NOT_PORTED)
    attn_mask: bool = fixed(True, _NOT_PORTED)

    def __post_init__(self):
        if self.width % self.heads:
            raise ConfigError(f"width: {self.width} is not divisible into {self.heads} heads")


@dataclass
class OpenCLIPConfig:
    """A whole open_clip model config (``model_configs/<arch>.json``).

    Args:
        embed_dim: joint embedding width (``text_projection`` / ``visual.proj`` output).
        vision_cfg: :class:`CLIPVisionCfg`.
        text_cfg: :class:`CLIPTextCfg`.
        quick_gelu: ``x * sigmoid(1.702 x)`` instead of exact GELU in every MLP (OpenAI weights).
        name: arch name, informative (not a key of the files).
    """

    embed_dim: int
    vision_cfg: CLIPVisionCfg = field(default_factory=CLIPVisionCfg)
    text_cfg: CLIPTextCfg = field(default_factory=CLIPTextCfg)
    quick_gelu: bool = False
    cast_dtype: Any = unused("the compute dtype is the caller's")
    custom_text_cfg: Any = unused(_NO_EFFECT)
    custom_text: bool = fixed(False, _NOT_PORTED)
    init_logit_bias: float | None = fixed(None, _NOT_PORTED)
    multimodal_cfg: dict | None = fixed(None, _NOT_PORTED)
    name: str = ""

    @classmethod
    def from_dict(cls, d: dict, name: str = "", source: str = "open_clip config") -> OpenCLIPConfig:
        """Parse the JSON dict through :func:`common.config.from_mapping`: unknown or unsupported keys raise
        :class:`~common.config.ConfigError` (a ValueError) naming ``source`` and the key."""
        if not isinstance(d, dict) or "embed_dim" not in d:
            raise ConfigError(f"{source}: not an open_clip model config (no 'embed_dim' key)")
        if "name" in d:
            raise ConfigError(f"{source}: name: unknown key")
        cfg = from_mapping(cls, d, source)
        cfg.name = name
        return cfg


#: Released archs (numbers from open_clip's ``src/open_clip/model_configs``).
#: ViT-H-14: DynamiCrafter, SVD, VideoComposer; ViT-L-14: OpenAI CLIP L/14 layout; ViT-bigG-14: SDXL.
OPEN_CLIP_ARCHS: dict[str, dict] = {
    "ViT-H-14": {
        "embed_dim": 1024,
        "vision_cfg": {"image_size": 224, "layers": 32, "width": 1280, "head_width": 80, "patch_size": 14},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 1024, "heads": 16, "layers": 24},
    },
    "ViT-L-14": {
        "embed_dim": 768,
        "vision_cfg": {"image_size": 224, "layers": 24, "width": 1024, "patch_size": 14},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 768, "heads": 12, "layers": 12},
    },
    "ViT-bigG-14": {
        "embed_dim": 1280,
        "vision_cfg": {"image_size": 224, "layers": 48, "width": 1664, "head_width": 104, "mlp_ratio": 4.9231,
                       "patch_size": 14},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 1280, "heads": 20, "layers": 32},
    },
}


def load_open_clip_config(arch: str | Path, archs_file: str | Path | None = None,
                          search_dirs: tuple = ()) -> OpenCLIPConfig:
    """Resolve an open_clip arch to an :class:`OpenCLIPConfig`.

    Args:
        arch: a built-in arch name (``OPEN_CLIP_ARCHS``), an arch name defined in ``archs_file`` or in
            ``search_dirs``, or the path of a JSON file holding one config (arch name = file stem).
        archs_file: JSON file holding either one config or ``{arch_name: config, ...}`` (like a case's
            ``open_clip_archs.json``).
        search_dirs: folders in which ``<arch>.json`` (one config) or ``open_clip_archs.json`` (several) is
            looked for, before the built-in table (a config folder beside the model's yaml).
    Raises:
        ValueError: the arch is found nowhere, or its config has unsupported keys.
    """
    p = Path(arch)
    if p.suffix == ".json" and p.is_file():
        return _from_file(p, p.stem)
    name = str(arch)
    if archs_file is not None:
        return _from_file(Path(archs_file), name)
    for d in search_dirs:
        d = Path(d)
        if (d / f"{name}.json").is_file():
            return _from_file(d / f"{name}.json", name)
        if (d / "open_clip_archs.json").is_file():
            cfg = _from_file(d / "open_clip_archs.json", name, missing_ok=True)
            if cfg is not None:
                return cfg
    if name in OPEN_CLIP_ARCHS:
        return OpenCLIPConfig.from_dict(OPEN_CLIP_ARCHS[name], name=name, source=f"built-in arch {name}")
    raise ValueError(f"unknown open_clip arch {name!r}: not built in ({sorted(OPEN_CLIP_ARCHS)}) and not found "
                     f"in {[str(d) for d in search_dirs] or 'any search folder'}")


def _from_file(path: Path, name: str, missing_ok: bool = False) -> OpenCLIPConfig | None:
    try:
        d = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read an open_clip config ({e})") from e
    if isinstance(d, dict) and "embed_dim" in d:
        return OpenCLIPConfig.from_dict(d, name=name, source=str(path))
    if isinstance(d, dict) and name in d:
        return OpenCLIPConfig.from_dict(d[name], name=name, source=f"{path}[{name!r}]")
    if missing_ok:
        return None
    raise ValueError(f"{path}: holds no open_clip config named {name!r} (has {sorted(d) if isinstance(d, dict) else '?'})")
