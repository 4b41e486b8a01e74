"""Convert a released SVD checkpoint to a MindSpore ``.ckpt`` with this port's parameter names.

    python tools/convert_weight.py --src svd.safetensors --config configs/svd.yaml --output_dir checkpoints/
    (older spelling: --pt_weights_file svd.safetensors --config configs/svd.yaml --out_dir checkpoints/)

Every key is accounted for by the explicit table :data:`svd_ms.weights.RENAME_TABLE`: a key is
either dropped for a stated reason (tensors SVD never runs) or must equal one parameter of the model
built from ``--config`` (without allocating its weights) in name and shape; every parameter must be
present. Anything else stops the conversion with the offending keys named (or, with --allow_partial,
is reported). Reads .safetensors, torch .ckpt/.pt/.bin (without running pickled code) and sharded
folders; fp16/bf16 files are stored as float32 unless ``--dtype fp16``. Exit status 0, or 2 with
one error line.

Inference also accepts the released file directly (``--SVD.checkpoint=svd.safetensors``): this
step is optional (a converted .ckpt loads faster and holds only what SVD uses).
"""
from __future__ import annotations

from pathlib import Path

from common.cli import converter_parser, match_and_write, run_converter

PARSER = converter_parser(
    __doc__, src_help="released checkpoint (svd.safetensors / svd_xt.safetensors / svd_xt_1_1.safetensors, or .ckpt)",
    config_help="the matching original YAML (configs/svd.yaml, ...)", config_required=True,
    aliases={"src": ["--pt_weights_file"], "output_dir": ["--out_dir"]})


def convert(args) -> Path:
    """Check ``args.src`` against the model of ``args.config`` and write it; returns the written path."""
    from mindspore.nn.utils import no_init_parameters
    from svd_ms.model import SVDModel
    from svd_ms.weights import RENAME_TABLE

    from common.checkpoint import read_state_dict

    with no_init_parameters():  # shapes only: nothing is allocated
        model = SVDModel.from_config_file(args.config)
    target = match_and_write(model, read_state_dict(args.src), args, rename=RENAME_TABLE)
    return target


def main(argv=None) -> int:
    return run_converter(convert, PARSER, argv)


if __name__ == "__main__":
    raise SystemExit(main())
