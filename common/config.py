"""The original repositories' YAML configs, read as-is, and a registry of their ``target:`` paths.

The LDM family (DynamiCrafter, generative-models, VideoComposer ...) describes every module as

    unet_config:
      target: lvdm.modules.networks.openaimodel3d.UNetModel   # dotted class path of the original
      params: {model_channels: 320, ...}                        # its constructor arguments

We never import the original path. Our classes (or factories) declare which original path they
stand for with :func:`register_target`, and :func:`instantiate` maps a node through that registry:

    @register_target("lvdm.modules.networks.openaimodel3d.UNetModel")
    class UNetModel(nn.Cell): ...

    unet = instantiate(cfg.model.params.unet_config)            # UNetModel(**params)

Nested ``*_config`` nodes inside ``params`` are passed through unchanged (as the originals do,
the receiving class instantiates them itself).
"""
from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import yaml

__all__ = [
    "ConfigError", "UnknownTargetError", "AttrDict", "load_yaml", "Registry", "TARGETS",
    "register_target", "get_target_class", "instantiate",
]


class ConfigError(ValueError):
    """A config that cannot be read or a node that cannot be instantiated."""


class UnknownTargetError(ConfigError):
    """A ``target:`` that no class of ours is registered for."""


class AttrDict(dict):
    """A ``dict`` whose keys can also be read as attributes (``cfg.model.params``).

    Nested mappings (also inside lists) are wrapped on access; plain ``cfg["key"]`` works too.
    A missing attribute raises ``AttributeError`` naming the key and the keys present.
    """

    def __getattr__(self, key: str) -> Any:
        try:
            return _wrap(self[key])
        except KeyError:
            raise AttributeError(f"config has no key '{key}' (keys: {sorted(map(str, self))})") from None

    def __getitem__(self, key):
        return _wrap(dict.__getitem__(self, key))

    def get(self, key, default=None):
        return _wrap(dict.get(self, key, default))

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def to_dict(self) -> dict:
        """A deep copy as plain dicts and lists."""
        return _unwrap(self)


def _wrap(v: Any) -> Any:
    if isinstance(v, dict) and not isinstance(v, AttrDict):
        return AttrDict(v)
    if isinstance(v, list):
        return [_wrap(x) for x in v]
    return v


def _unwrap(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _unwrap(x) for k, x in dict.items(v)}
    if isinstance(v, list):
        return [_unwrap(x) for x in v]
    return v


def load_yaml(path: str | os.PathLike) -> AttrDict:
    """Read a YAML file with ``yaml.safe_load`` (no Python tags) into an :class:`AttrDict`.

    Raises:
        ConfigError: missing file, invalid YAML, or a top level that is not a mapping.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such config file")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: invalid YAML: {e}") from e
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level is a {type(data).__name__}, not a mapping")
    return AttrDict(data)


class Registry:
    """Original dotted path (``target:``) -> our class or factory."""

    def __init__(self, name: str = "targets"):
        self.name = name
        self._table: dict[str, Callable] = {}

    def register(self, *targets: str) -> Callable[[Callable], Callable]:
        """Decorator: register the decorated class/factory under one or more original paths.

        Registering a path twice for two different objects is an error.
        """
        if not targets or not all(isinstance(t, str) and t for t in targets):
            raise ConfigError("register_target needs one or more non-empty dotted paths")

        def deco(obj: Callable) -> Callable:
            for t in targets:
                old = self._table.get(t)
                if old is not None and old is not obj:
                    raise ConfigError(f"target '{t}' is already registered to {_name(old)}; "
                                      f"cannot register {_name(obj)} too")
                self._table[t] = obj
            return obj

        return deco

    def get(self, target: str) -> Callable:
        """The object registered for ``target``; :class:`UnknownTargetError` with close names if none."""
        try:
            return self._table[target]
        except KeyError:
            raise UnknownTargetError(self._unknown_message(target)) from None

    def names(self) -> list[str]:
        """Every registered path, sorted."""
        return sorted(self._table)

    def __contains__(self, target: str) -> bool:
        return target in self._table

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._table)

    def _unknown_message(self, target: str) -> str:
        names = self.names()
        close = difflib.get_close_matches(target, names, n=5, cutoff=0.6)
        leaf = str(target).rsplit(".", 1)[-1]
        leaves = {n.rsplit(".", 1)[-1]: n for n in names}
        close += [leaves[m] for m in difflib.get_close_matches(leaf, list(leaves), n=3, cutoff=0.6)
                  if leaves[m] not in close]
        hint = f"; close registered targets: {close}" if close else ""
        return (f"no class is registered for target '{target}' in the {self.name} registry "
                f"({len(names)} registered{hint}). Register one with @register_target('{target}') "
                "or import the model package that defines it.")


def _name(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


#: The default registry shared by all model packages.
TARGETS = Registry()


def register_target(*targets: str, registry: Registry | None = None) -> Callable[[Callable], Callable]:
    """Decorator registering our class/factory for original ``target:`` path(s) (default registry
    :data:`TARGETS`)."""
    return (registry or TARGETS).register(*targets)


def get_target_class(target: str, registry: Registry | Mapping[str, Callable] | None = None) -> Callable:
    """Our class/factory for an original dotted path.

    Args:
        target: e.g. ``"lvdm.modules.networks.openaimodel3d.UNetModel"``.
        registry: a :class:`Registry` or a plain ``{path: class}`` mapping (default :data:`TARGETS`).
    """
    reg = registry if registry is not None else TARGETS
    if isinstance(reg, Registry):
        return reg.get(target)
    if target in reg:
        return reg[target]
    tmp = Registry("given")
    tmp._table = dict(reg)
    raise UnknownTargetError(tmp._unknown_message(target))


def instantiate(node: Mapping, registry: Registry | Mapping[str, Callable] | None = None, **overrides) -> Any:
    """Build ``node['target']`` with ``node['params']`` (missing/None = no params) and ``overrides``.

    Args:
        node: a config mapping with ``target:`` and optional ``params:``.
        registry: see :func:`get_target_class` (default :data:`TARGETS`).
        **overrides: keyword arguments that replace / extend ``params``.

    Raises:
        ConfigError: the node is not a mapping with a ``target``, ``params`` is not a mapping, or
            our class rejects the arguments (the message names the target and the class).
        UnknownTargetError: the target is not registered (close names are listed).
    """
    if not isinstance(node, Mapping) or "target" not in node:
        keys = sorted(node) if isinstance(node, Mapping) else type(node).__name__
        raise ConfigError(f"cannot instantiate a config node without 'target' (got {keys})")
    target = node["target"]
    params = node.get("params") or {}
    if not isinstance(params, Mapping):
        raise ConfigError(f"'params' of target '{target}' is a {type(params).__name__}, not a mapping")
    factory = get_target_class(target, registry)
    kwargs = {**params, **overrides}
    try:
        return factory(**kwargs)
    except TypeError as e:
        if "argument" not in str(e):
            raise
        raise ConfigError(f"target '{target}' -> {_name(factory)} rejected its params "
                          f"{sorted(kwargs)}: {e}") from e
