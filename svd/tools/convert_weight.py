"""Convert a released SVD checkpoint to a MindSpore ``.ckpt`` with this port's parameter names.

    python svd_tools/convert.py --pt_weights_file svd.safetensors --config configs/svd.yaml --out_dir checkpoints/

Every key is accounted for by the explicit table :data:`svd_ms.weights.RENAME_TABLE`: a key is
either dropped for a stated reason (tensors SVD never runs) or must equal one parameter of the model
built from ``--config`` in name and shape; every parameter must be present. Anything else stops
the conversion with the offending keys named. Reads .safetensors, torch .ckpt/.pt/.bin (without
running pickled code) and sharded folders; fp16/bf16 files are stored as float32 unless ``--dtype fp16``.

Inference also accepts the released file directly (``--SVD.checkpoint=svd.safetensors``): this
step is optional (a converted .ckpt loads faster and holds only what SVD uses).
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--pt_weights_file", required=True,
                   help="released checkpoint (svd.safetensors / svd_xt.safetensors / svd_xt_1_1.safetensors, or .ckpt)")
    p.add_argument("--config", required=True, help="the matching original YAML (configs/svd.yaml, ...)")
    p.add_argument("--out_dir", required=True, help="output folder; the file is <out_dir>/<input stem>.ckpt")
    p.add_argument("--dtype", choices=["fp32", "fp16"], default="fp32", help="dtype of the written tensors")
    return p


def convert(pt_weights_file, config, out_dir, dtype: str = "fp32") -> Path:
    """Convert one file; returns the written path. Raises CheckpointMismatchError / SVDConfigError on bad input."""
    import numpy as np
    from mindspore.nn.utils import no_init_parameters

    from common.checkpoint import CheckpointMismatchError, save_checkpoint_atomic
    from svd_ms.model import SVDModel
    from svd_ms.weights import drop_reason, read_svd_checkpoint, rename_key

    src = Path(pt_weights_file)
    sd = read_svd_checkpoint(src)
    with no_init_parameters():  # shapes only: nothing is allocated
        model = SVDModel.from_config_file(config)
    ours = {p.name: tuple(p.shape) for p in model.get_parameters()}
    out, reasons = {}, Counter()
    for key, value in sd.items():
        new = rename_key(key)
        if new is None:
            reasons[drop_reason(key)] += 1
            continue
        out[new] = value
    missing = sorted(set(ours) - set(out))
    unexpected = sorted(set(out) - set(ours))
    mismatched = [(k, ours[k], tuple(out[k].shape)) for k in ours if k in out and tuple(out[k].shape) != ours[k]]
    if missing or unexpected or mismatched:
        lines = [f"{src} does not match {config}:"]
        if missing:
            lines.append(f"  {len(missing)} parameters missing from the file, e.g. {missing[:5]}")
        if unexpected:
            lines.append(f"  {len(unexpected)} keys of the file have no parameter, e.g. {unexpected[:5]}")
        if mismatched:
            lines.append("  mis-shaped (key: ours vs file): " + "; ".join(f"{k}: {a} vs {b}" for k, a, b in mismatched[:5]))
        raise CheckpointMismatchError("\n".join(lines))
    np_dtype = np.float16 if dtype == "fp16" else np.float32
    out = {k: np.ascontiguousarray(out[k], dtype=np_dtype) for k in ours}  # model order
    target = Path(out_dir) / (src.stem + ".ckpt")
    save_checkpoint_atomic(out, target)
    print(f"converted {len(out)} tensors -> {target}")
    for why, n in reasons.items():
        print(f"  dropped {n} tensors: {why}")
    return target


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from common.checkpoint import CheckpointError
    from svd_ms.config import SVDConfigError

    t = time.time()
    try:
        convert(args.pt_weights_file, args.config, args.out_dir, args.dtype)
    except (CheckpointError, SVDConfigError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"done in {time.time() - t:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
