"""LoRA merges exactly as the original ``load_weights`` does them (weights changed in place, no runtime branch).

* kohya (``lora_model_path``): ``lora_unet_<path with _>`` / ``lora_te_<path with _>`` with
  ``.lora_down.weight`` / ``.lora_up.weight`` / ``.alpha``; ``W += alpha * up @ down`` in float32
  (1x1-conv LoRAs squeezed to matrices). The stored ``.alpha`` tensors are IGNORED, as in the original
  (no alpha/rank scaling). The target is found by walking the underscore-separated name greedily
  (the shortest prefix that names a child module wins), like the original's ``getattr`` walk.
* diffusers attention-processor LoRA (v3 domain adapter, MotionLoRA):
  ``<module>.processor.to_{q,k,v,out}_lora.{down,up}.weight`` -> ``<module>.to_{q,k,v,out.0}.weight``;
  ``W += alpha * up @ down``.

Each merge is planned first from the shapes alone (:func:`plan_kohya_lora`, :func:`plan_diffusers_lora`; they
raise :class:`LoRAError` naming the first key that does not fit, before anything changes), then applied.
"""
from __future__ import annotations

import mindspore as ms
import numpy as np

from ..config import ConfigError


class LoRAError(ConfigError):
    """A LoRA file whose keys or shapes do not fit the model."""


def _shapes(net) -> dict:
    return net if isinstance(net, dict) else {k: tuple(p.shape) for k, p in net.parameters_and_names()}


def _module_tree(names) -> dict:
    """Tree of child-module names from parameter names."""
    tree: dict = {}
    for name in names:
        node = tree
        for part in name.split(".")[:-1]:
            node = node.setdefault(part, {})
    return tree


def _walk_underscored(tree: dict, tokens: list[str]) -> str | None:
    """Greedy walk of ``a_b_c`` tokens through the module tree -> dotted module path (or None)."""
    path, node, acc = [], tree, ""
    for tok in tokens:
        acc = tok if not acc else acc + "_" + tok
        if acc in node:
            path.append(acc)
            node, acc = node[acc], ""
    return ".".join(path) if not acc and path else None


def _matrix_shape(shape, key: str, source: str) -> tuple[int, int]:
    shape = tuple(shape)
    if len(shape) == 4 and shape[2:] == (1, 1):
        return shape[:2]
    if len(shape) != 2:
        raise LoRAError(f"{source}: '{key}' has shape {list(shape)}; only Linear and 1x1-conv LoRAs are supported")
    return shape


def _fail(bad: list[str], source: str):
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise LoRAError(f"{source}: {bad[0]}{more}")


def plan_kohya_lora(nets: dict, sd: dict, source: str = "LoRA") -> list[tuple[str, str, str, str]]:
    """Match every key of a kohya LoRA to a weight (shapes only are read).

    Args:
        nets: ``{"unet": ..., "text_encoder": ...}`` Cells or ``{name: shape}`` dicts; a part given as None is
            skipped (its keys are not merged).
        sd: the LoRA (arrays or anything with ``.shape``). source: file name for errors.
    Returns:
        ``[(part, weight name, up key, down key)]``. Raises LoRAError on the first key that does not fit.
    """
    shapes = {k: _shapes(v) for k, v in nets.items() if v is not None}
    trees = {k: _module_tree(v) for k, v in shapes.items()}
    plan, bad = [], []
    for key in sd:
        if key.endswith(".alpha"):
            continue
        if not key.endswith(".lora_down.weight"):
            if not key.endswith(".lora_up.weight"):
                bad.append(f"'{key}' is not a kohya LoRA key (.lora_down/.lora_up/.alpha)")
            elif key.replace(".lora_up.", ".lora_down.") not in sd:
                bad.append(f"'{key}' has no matching lora_down")
            continue
        stem = key.split(".")[0]
        part, prefix = ("text_encoder", "lora_te_") if "text" in stem else ("unet", "lora_unet_")
        if not stem.startswith(prefix):
            bad.append(f"'{key}' has neither the lora_unet_ nor the lora_te_ prefix")
            continue
        if part not in shapes:
            if part not in nets:
                bad.append(f"'{key}' targets the {part}, which is not loaded")
            continue
        module = _walk_underscored(trees[part], stem[len(prefix):].split("_"))
        if module is None or module + ".weight" not in shapes[part]:
            bad.append(f"'{key}' names no layer of the {part} (is the LoRA for another base model?)")
            continue
        up_key = key.replace(".lora_down.", ".lora_up.")
        if up_key not in sd:
            bad.append(f"'{key}' has no matching '{up_key}'")
            continue
        (o, r1), (r2, i) = _matrix_shape(sd[up_key].shape, up_key, source), _matrix_shape(sd[key].shape, key, source)
        w = tuple(shapes[part][module + ".weight"])
        if r1 != r2:
            bad.append(f"'{key}': ranks of lora_up ({r1}) and lora_down ({r2}) differ")
        elif [d for d in (o, i) if d != 1] != [d for d in w if d != 1] or o * i != int(np.prod(w)):
            bad.append(f"'{key}': update {o}x{i} does not fit {part} weight '{module}.weight' of shape {list(w)} "
                       f"(is the LoRA for another base model?)")
        else:
            plan.append((part, module + ".weight", up_key, key))
    _fail(bad, source)
    return plan


def diffusers_lora_target(key: str) -> str:
    """``a.processor.to_q_lora.down.weight`` -> ``a.to_q.weight``; ``to_out`` -> ``to_out.0``."""
    k = key.replace("processor.", "").replace("_lora", "").replace("down.", "").replace("up.", "")
    return k.replace("to_out.", "to_out.0.")


def plan_diffusers_lora(net, sd: dict, source: str = "LoRA", expect: str | None = None) -> list[tuple[str, str, str]]:
    """Match every key of a diffusers attention-processor LoRA to a UNet weight (shapes only are read).

    Args:
        net: the UNet (Cell or ``{name: shape}``). sd: the LoRA. source: file name for errors.
        expect: substring every target must contain (``"motion_modules."`` for a MotionLoRA), or None.
    Returns:
        ``[(weight name, up key, down key)]``. Raises LoRAError on the first key that does not fit.
    """
    shapes = _shapes(net)
    plan, bad = [], []
    for key in sd:
        if ".up." in key:
            if key.replace(".up.", ".down.") not in sd:
                bad.append(f"'{key}' has no matching down weight")
            continue
        if "_lora" not in key or ".down." not in key:
            bad.append(f"'{key}' is not a '<module>.processor.to_*_lora.down/up.weight' key")
            continue
        target = diffusers_lora_target(key)
        up_key = key.replace(".down.", ".up.")
        if target not in shapes:
            bad.append(f"'{key}' targets '{target}', which the UNet does not have (is it for another model "
                       f"or motion-module version?)")
            continue
        if expect is not None and expect not in target:
            bad.append(f"'{key}' targets '{target}', outside the {expect.rstrip('.')}")
            continue
        if up_key not in sd:
            bad.append(f"'{key}' has no matching '{up_key}'")
            continue
        (o, r1), (r2, i) = _matrix_shape(sd[up_key].shape, up_key, source), _matrix_shape(sd[key].shape, key, source)
        if r1 != r2 or (o, i) != tuple(shapes[target]):
            bad.append(f"'{key}': update {o}x{i} (rank {r2}) does not fit '{target}' of shape {list(shapes[target])}")
            continue
        plan.append((target, up_key, key))
    _fail(bad, source)
    if not plan:
        raise LoRAError(f"{source}: no LoRA weights found")
    return plan


def _matrix(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    return a[:, :, 0, 0] if a.ndim == 4 else a


def _add(p, up, down, alpha: float) -> None:
    w = p.asnumpy()
    delta = (np.float32(alpha) * (_matrix(up) @ _matrix(down))).reshape(w.shape)
    p.set_data(ms.Tensor((w.astype(np.float32) + delta).astype(w.dtype)))


def merge_kohya_lora(nets: dict, sd: dict, alpha: float, source: str = "LoRA") -> int:
    """Merge a kohya LoRA into ``nets = {"unet": unet, "text_encoder": text_encoder}`` at ``alpha``
    (``lora_alpha``); a part given as None is skipped. Returns the number of merged pairs."""
    plan = plan_kohya_lora(nets, sd, source)
    params = {k: dict(v.parameters_and_names()) for k, v in nets.items() if v is not None}
    for part, name, up, down in plan:
        _add(params[part][name], sd[up], sd[down], alpha)
    return len(plan)


def merge_diffusers_lora(net, sd: dict, alpha: float, source: str = "LoRA", expect: str | None = None) -> int:
    """Merge a domain adapter / MotionLoRA into the UNet at ``alpha``. Returns the number of merged pairs."""
    plan = plan_diffusers_lora(net, sd, source, expect)
    params = dict(net.parameters_and_names())
    for name, up, down in plan:
        _add(params[name], sd[up], sd[down], alpha)
    return len(plan)
