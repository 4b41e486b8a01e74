"""The one config reader: the original repositories' YAML / JSON files, read as-is into dataclasses.

Every model describes the files it reads as (nested) dataclasses that declare EVERY key the original
files carry; :func:`from_mapping` builds them and refuses what it does not know:

    @dataclass
    class UNetConfig:
        model_channels: int
        channel_mult: tuple[int, ...] = (1, 2, 4, 4)
        use_checkpoint: bool = unused("gradient checkpointing of the training code", False)

    unet = from_mapping(UNetConfig, yaml_params, "configs/x.yaml: model.params.unet_config.params")

A key the port reads but does not use is declared with :func:`unused` and the reason; a key it supports at
one value only, with :func:`fixed` (another value is refused). Errors are one
:class:`ConfigError` (a ``ValueError``) naming the file and the key path::

    configs/x.yaml: model.params.unet_config.params.num_head_chanels: unknown key (did you mean 'num_head_channels'?)

The LDM family writes every module as ``{target: <dotted path of the original class>, params: {...}}``;
:func:`from_node` reads such a node (checking the target when asked). There is no registry of targets: each
model reads its tree into typed dataclasses and builds its modules from them, so every key is checked once,
in one place, before anything is built.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = ["ConfigError", "from_mapping", "from_node", "unused", "fixed", "join", "load_yaml", "load_json",
           "TRANSFORMERS_GENERIC_KEYS", "apply_overrides", "field_docs", "options_help"]


class ConfigError(ValueError):
    """A config that cannot be read: the message names the file and the key path at fault."""


def unused(why: str, default: Any = None) -> Any:
    """A dataclass field for a key that the original files carry and this port reads but does not use.

    Args:
        why: the reason it has no effect here (shown in the field's ``metadata["unused"]``).
        default: its value when the file does not set it (lists / dicts are copied per instance).
    """
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"unused": why})
    return dataclasses.field(default=default, metadata={"unused": why})


#: Attributes every transformers ``PretrainedConfig`` may write into a ``config.json`` (generation,
#: output and bookkeeping settings); none changes an encoder's numbers. Readers of transformers configs
#: drop these before :func:`from_mapping`, which then refuses any other key it does not declare.
TRANSFORMERS_GENERIC_KEYS = frozenset({
    "return_dict", "output_hidden_states", "output_attentions", "torchscript", "use_bfloat16", "tf_legacy_loss",
    "pruned_heads", "tie_word_embeddings", "chunk_size_feed_forward", "is_encoder_decoder", "is_decoder",
    "cross_attention_hidden_size", "add_cross_attention", "tie_encoder_decoder", "max_length", "min_length",
    "do_sample", "early_stopping", "num_beams", "num_beam_groups", "diversity_penalty", "temperature", "top_k",
    "top_p", "typical_p", "repetition_penalty", "length_penalty", "no_repeat_ngram_size",
    "encoder_no_repeat_ngram_size", "bad_words_ids", "num_return_sequences", "output_scores",
    "return_dict_in_generate", "forced_bos_token_id", "forced_eos_token_id", "remove_invalid_values",
    "exponential_decay_length_penalty", "suppress_tokens", "begin_suppress_tokens", "finetuning_task",
    "id2label", "label2id", "tokenizer_class", "prefix", "sep_token_id", "decoder_start_token_id",
    "task_specific_params", "problem_type", "architectures", "transformers_version", "torch_dtype",
    "_name_or_path", "_commit_hash", "_attn_implementation_autoset", "attn_implementation", "use_cache",
    "gradient_checkpointing",
    "dtype",  # transformers 5's name for torch_dtype
})


def fixed(value: Any, why: str) -> Any:
    """A dataclass field for a key that the original schema allows but this port supports at one value only.

    The file may omit the key or set it to ``value`` (for ``value=None`` also ``{}`` / ``[]``); any other
    value is refused naming the key: ``<where>.<key>=True is not supported by this port (only False: <why>)``.

    Args:
        value: the one supported value (also the default).
        why: what another value would need (shown in the error).
    """
    return dataclasses.field(default=value, metadata={"fixed": why})


def join(where: str, key: str | int) -> str:
    """``where`` extended by one key: ``"f.yaml"`` + ``"model"`` -> ``"f.yaml: model"``; then
    ``"f.yaml: model"`` + ``"params"`` -> ``"f.yaml: model.params"``; an int index -> ``"...[3]"``."""
    if isinstance(key, int):
        return f"{where}[{key}]"
    if not where:
        return str(key)
    return f"{where}.{key}" if ": " in where else f"{where}: {key}"


def load_yaml(path: str | os.PathLike) -> Any:
    """A YAML file through ``yaml.safe_load`` (no Python tags); an empty file gives ``{}``.

    Raises:
        ConfigError: the file is missing or not valid YAML.
    """
    p = _existing(path)
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML ({e})") from None
    return {} if data is None else data


def load_json(path: str | os.PathLike) -> Any:
    """A JSON file (``config.json`` of a diffusers / transformers folder, open_clip archs).

    Raises:
        ConfigError: the file is missing or not valid JSON.
    """
    p = _existing(path)
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{p}: not valid JSON ({e})") from None


def _existing(path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    return p


def from_mapping(cls: type, data: Mapping | None, where: str) -> Any:
    """Build dataclass ``cls`` from ``data`` (``None`` = empty), recursing into nested dataclasses.

    Each key of ``data`` must be a field of ``cls``; each value must match the field's annotation:
    ``int`` (not bool), ``float`` (ints and numeric strings such as YAML's ``1e-4`` are converted),
    ``bool``, ``str``, ``list[X]`` / ``tuple[X, ...]`` (either sequence, converted to the declared one),
    ``dict``, ``Literal[...]``, a dataclass (a nested mapping, or an instance passed through), ``X | None``
    and ``Any``. A
    :class:`ConfigError` raised by the class itself (``__post_init__``) is prefixed with ``where``, so its
    message should start with the key it is about.

    Args:
        cls: the dataclass.
        data: the mapping read from the file.
        where: ``"<file>: <key path>"`` of ``data`` (or just ``"<file>"`` at the top level).
    Raises:
        ConfigError: an unknown key (with the closest known one), a missing required key, a wrong type.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {_show(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            raise ConfigError(f"{join(where, str(key))}: unknown key{_did_you_mean(str(key), fields)}")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _convert(data[name], hints.get(name, Any), join(where, name))
            if "fixed" in f.metadata and kwargs[name] != f.default and not (
                    f.default is None and kwargs[name] in ({}, [], ())):
                raise ConfigError(f"{join(where, name)}={kwargs[name]!r} is not supported by this port "
                                  f"(only {f.default!r}: {f.metadata['fixed']})")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{join(where, name)}: missing (a required key)")
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(join(where, str(e))) from None


def from_node(cls: type, node: Mapping | None, where: str, targets: tuple[str, ...] | None = None) -> Any:
    """``cls`` from the ``params`` of an LDM ``{target, params}`` node.

    Args:
        cls: the dataclass of the params.
        node: the node mapping (only the keys ``target`` and ``params``).
        where: ``"<file>: <key path>"`` of the node.
        targets: the accepted ``target`` paths (None = any).
    """
    n = from_mapping(_Node, node, where)
    if targets is not None and n.target not in targets:
        raise ConfigError(f"{join(where, 'target')}: {n.target!r} is not supported (expected "
                          f"{' or '.join(repr(t) for t in targets)})")
    return from_mapping(cls, n.params, join(where, "params"))


@dataclasses.dataclass
class _Node:
    target: str
    params: dict | None = None


def _did_you_mean(key: str, known) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.75)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (known keys: {', '.join(sorted(known))})"


def _show(v: Any) -> str:
    text = repr(v)
    return f"{type(v).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _convert(v: Any, tp: Any, where: str) -> Any:
    """``v`` checked against annotation ``tp`` (and converted where the annotation asks for it)."""
    if tp is Any or tp is object:
        return v
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        if v is None and type(None) in args:
            return None
        errors = []
        for a in (a for a in args if a is not type(None)):
            try:
                return _convert(v, a, where)
            except ConfigError as e:
                errors.append(e)
        if len(errors) == 1:
            raise errors[0]
        raise ConfigError(f"{where}: expected {_name(tp)}, got {_show(v)}")
    if origin is typing.Literal:
        if v not in args:
            raise ConfigError(f"{where}: {v!r} is not one of {list(args)}")
        return v
    if dataclasses.is_dataclass(tp):
        return v if isinstance(v, tp) else from_mapping(tp, v, where)
    if tp in (list, tuple) or origin in (list, tuple):
        if not isinstance(v, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {_show(v)}")
        item = args[0] if args else Any
        out = [_convert(x, item, join(where, i)) for i, x in enumerate(v)]
        return tuple(out) if (origin or tp) is tuple else out
    if tp is dict or origin in (dict, Mapping):
        if not isinstance(v, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {_show(v)}")
        return dict(v)
    if tp is float:
        if isinstance(v, str):
            try:
                return float(v)
            except ValueError:
                pass
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    elif tp is int:
        if isinstance(v, int) and not isinstance(v, bool):
            return v
    elif isinstance(tp, type) and isinstance(v, tp):
        return v
    raise ConfigError(f"{where}: expected {_name(tp)}, got {_show(v)}")


def _name(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) else str(tp).replace("typing.", "")


def apply_overrides(data: Mapping, args: list[str], source: str) -> dict:
    """A copy of ``data`` with command-line overrides ``--section.key=value`` (or ``--section.key value``)
    applied; each value is read as YAML (``3``, ``1e-4``, ``null``, ``[576, 1024]``, ``true``).

    Only keys the file already has can be set (the shipped YAMLs list every key), so a misspelt option is
    refused here, naming the option and the closest key.

    Args:
        data: the mapping read from the config file.
        args: the command-line arguments left after the script's own flags.
        source: the config file (named in the errors).
    Raises:
        ConfigError: an argument that is not ``--key.path[=value]``, a missing value, an unknown key.
    """
    import copy

    out = copy.deepcopy(dict(data))
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise ConfigError(f"unexpected argument {arg!r} (options are --section.key=value)")
        if "=" in arg:
            dotted, raw = arg[2:].split("=", 1)
        else:
            if i + 1 >= len(args):
                raise ConfigError(f"option {arg} needs a value")
            dotted, raw = arg[2:], args[i + 1]
            i += 1
        node, parts = out, dotted.split(".")
        for depth, key in enumerate(parts):
            if not isinstance(node, dict) or key not in node:
                what = "a section" if depth < len(parts) - 1 else "a key"
                known = node if isinstance(node, dict) else {}
                raise ConfigError(f"unknown option --{dotted}: {'.'.join(parts[:depth + 1])} is not {what} of "
                                  f"{source}{_did_you_mean(key, known) if known else ''}")
            if depth < len(parts) - 1:
                node = node[key]
        try:
            node[parts[-1]] = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError:
            raise ConfigError(f"--{dotted}={raw}: not a YAML value") from None
        i += 1
    return out


def field_docs(cls: type) -> dict[str, str]:
    """``{field: text}`` from the class docstring's ``name: text`` lines (continuation lines indented deeper
    are joined; ``a / b: text`` documents both)."""
    docs: dict[str, str] = {}
    current: list[str] = []
    base_indent = None
    for line in (cls.__doc__ or "").splitlines():
        stripped = line.strip()
        indent = len(line) - len(stripped)
        head, sep, text = stripped.partition(": ")
        names = [n.strip() for n in head.split("/")]
        if sep and all(n.isidentifier() for n in names) and (base_indent is None or indent <= base_indent):
            base_indent = indent
            current = names
            for n in names:
                docs[n] = text.strip()
        elif current and stripped and base_indent is not None and indent > base_indent:
            for n in current:
                docs[n] += " " + stripped
        else:
            current = []
    return docs


def options_help(cls: type, prefix: str = "") -> list[str]:
    """One line per leaf key of dataclass ``cls`` as a command-line option: ``--prefix.key (default): text``,
    the text from each class's docstring (:func:`field_docs`); keys declared :func:`unused` are left out."""
    lines = []
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if "unused" in f.metadata:
            continue
        name = f"{prefix}.{f.name}" if prefix else f.name
        tp = hints.get(f.name)
        if dataclasses.is_dataclass(tp):
            lines += options_help(tp, name)
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else "required")
        lines.append(f"  --{name} ({default!r}): {docs.get(f.name, '')}".rstrip(": "))
    return lines


def _schema_default(f: dataclasses.Field) -> Any:
    default = f.default if f.default is not dataclasses.MISSING else (
        f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
    return dataclasses.asdict(default) if dataclasses.is_dataclass(default) else default


def _fill_from_schema(data: dict, parts: list[str], schema: type, sections: Mapping[str, type], prefix: str) -> None:
    """Give ``data`` the schema default of the key path ``parts`` where the file omits it (sections too)."""
    if not dataclasses.is_dataclass(schema) or not isinstance(data, dict):
        return
    fields = {f.name: f for f in dataclasses.fields(schema)}
    f = fields.get(parts[0])
    if f is None:
        if parts[0] in data:
            return
        raise ConfigError(f"unknown option --{prefix}{'.'.join(parts)}: {prefix}{parts[0]} is not a key of the "
                          f"{'file' if not prefix else prefix[:-1] + ' section'}"
                          f"{_did_you_mean(parts[0], set(fields) | set(data))}")
    if parts[0] not in data:
        data[parts[0]] = _schema_default(f)
    if len(parts) > 1:
        path = f"{prefix}{parts[0]}"
        sub = sections.get(path) or typing.get_type_hints(schema).get(parts[0])
        if data[parts[0]] is None and dataclasses.is_dataclass(sub):
            data[parts[0]] = {}
        _fill_from_schema(data[parts[0]], parts[1:], sub, sections, path + ".")


def load_with_overrides(path: str | os.PathLike, overrides: list[str], schema: type | None = None,
                        sections: Mapping[str, type] | None = None) -> dict:
    """A training/inference YAML with the command-line overrides applied: the one reader behind every
    ``train.py``'s ``--section.key=value`` options.

    ``--key=value`` may name any key the file has; with ``schema`` (the file's dataclass) also a key the file
    omits, at any depth of nested dataclasses, which then starts from the schema's default (so every key
    ``--help`` lists can be set).

    Args:
        path: the YAML file. overrides: the arguments left after the script's own flags.
        schema: optional dataclass of the file's top level.
        sections: optional ``{dotted section: dataclass}`` for sections the schema types as a plain ``dict``.
    Returns:
        the merged mapping (check it with :func:`from_mapping`).
    Raises:
        ConfigError: not a mapping at the top level, a bad or unknown option (nearest key suggested).
    """
    data = load_yaml(path)
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level, got {type(data).__name__}")
    data = dict(data)
    if schema is not None:
        for a in overrides:
            if a.startswith("--") and len(a) > 2:
                _fill_from_schema(data, a[2:].split("=", 1)[0].split("."), schema, sections or {}, "")
    return apply_overrides(data, overrides, str(path))
