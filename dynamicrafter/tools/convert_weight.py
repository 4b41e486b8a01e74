"""Convert a released DynamiCrafter checkpoint (PyTorch) to a MindSpore checkpoint.

    python tools/convert_weight.py --model_name 256 --src_ckpt model.ckpt --target_ckpt ms/model_256.ckpt
    python tools/convert_weight.py --model_name clip --src_ckpt open_clip_pytorch_model.bin --target_ckpt ms/clip.ckpt

* ``256`` / ``512`` / ``1024``: the Lightning ``model.ckpt`` of Doubiiu/DynamiCrafter(_512|_1024). Keys are
  renamed by the explicit table of ``dynamicrafter_ms.weights.RENAMES`` (only the 256 release's
  ``framestride_embed`` -> ``fps_embedding`` and DeepSpeed's ``_forward_module.`` prefix); every key is
  then checked by name and shape against the model built from ``configs/inference_<name>_v1.0.yaml``
  (or ``--config``) without allocating its weights, and the schedule buffers against the config.
* ``clip``: an open_clip CLIP (``laion/CLIP-ViT-H-14-laion2B-s32B-b79K``) -> the ``cond_stage_model.model.*``
  and ``embedder.model.*`` parts (already inside every DynamiCrafter checkpoint; rarely needed).

Pickles are read without executing code (a malicious file is refused). Nothing is written unless
every key is accounted for. torch is not needed.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("GLOG_v", "3")

HERE = Path(__file__).resolve().parent.parent  # the dynamicrafter/ folder


def build_shapes(config: Path):
    """(model, {name: shape}) of the model of ``config``, parameters not allocated."""
    from dynamicrafter_ms.config import DynamiCrafterConfig
    from dynamicrafter_ms.model import DynamiCrafter
    from mindspore.nn.utils import no_init_parameters

    cfg = DynamiCrafterConfig.from_yaml(config)
    with no_init_parameters():
        model = DynamiCrafter(cfg)
    return model, {n: tuple(p.shape) for n, p in model.parameters_and_names()}


def convert(model_name: str, src: str, target: str, config: str | None = None) -> dict:
    """Convert and write; returns a summary dict (counts, renamed keys, output path)."""
    import numpy as np
    from dynamicrafter_ms.weights import (
        account_keys,
        check_buffers,
        clip_to_dynamicrafter,
        mismatch_message,
        native,
        rename_key,
    )

    from common.checkpoint import (
        CheckpointError,
        CheckpointMismatchError,
        read_state_dict,
        save_checkpoint_atomic,
    )

    cfg_path = Path(config) if config else HERE / "configs" / f"inference_{'256' if model_name == 'clip' else model_name}_v1.0.yaml"
    if not Path(src).is_file():
        raise CheckpointError(f"--src_ckpt {src}: file not found")
    raw = read_state_dict(src)
    if not raw:
        raise CheckpointError(f"--src_ckpt {src}: holds no tensors")
    model, shapes = build_shapes(cfg_path)
    if model_name == "clip":
        sd = clip_to_dynamicrafter(raw)
        part = {k: v for k, v in shapes.items() if k.startswith(("cond_stage_model.", "embedder."))}
        acc = account_keys({k: tuple(v.shape) for k, v in sd.items()}, part)
        renamed = {}
    else:
        acc = account_keys({k: tuple(v.shape) for k, v in raw.items()}, shapes)
        sd = {rename_key(k): v for k, v in raw.items()}
        renamed = acc.renamed
    if not acc.ok:
        raise CheckpointMismatchError(mismatch_message(acc, src, cfg_path))
    if model_name != "clip":
        check_buffers(model, sd, src, cfg_path)
    out = save_checkpoint_atomic({k: np.ascontiguousarray(native(v)) for k, v in sd.items()}, target)
    return {"tensors": len(sd), "renamed": renamed, "kept": len(acc.kept), "target": str(out), "config": str(cfg_path)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model_name", required=True, choices=["256", "512", "1024", "clip"],
                   help="which release the source checkpoint is")
    p.add_argument("--src_ckpt", required=True, help="PyTorch checkpoint (.ckpt/.pt/.bin/.safetensors)")
    p.add_argument("--target_ckpt", required=True, help="MindSpore checkpoint to write (.ckpt)")
    p.add_argument("--config", default=None, help="inference yaml (default configs/inference_<model_name>_v1.0.yaml)")
    args = p.parse_args(argv)
    from dynamicrafter_ms.config import ConfigError

    from common.checkpoint import CheckpointError

    try:
        s = convert(args.model_name, args.src_ckpt, args.target_ckpt, args.config)
    except (CheckpointError, ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for old, new in s["renamed"].items():
        print(f"renamed {old} -> {new}")
    print(f"converted {s['tensors']} tensors ({len(s['renamed'])} renamed, {s['kept']} kept; every key matches "
          f"{s['config']}) -> {s['target']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
