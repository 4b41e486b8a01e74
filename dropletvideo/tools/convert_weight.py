"""Convert the released DropletVideo weights folder to MindSpore checkpoints (optional: inference reads the folder).

    python tools/convert_weight.py --src DropletVideo-V1.0-weights --output_dir DropletVideo-V1.0-weights-ms
    python tools/convert_weight.py --src DropletVideo-V1.0-weights --kind transformer --dtype fp16 \
        --target transformer_fp16.ckpt

--src is the released folder (transformer/, vae/, text_encoder/ with its sharded safetensors and index,
tokenizer/, scheduler/, model_index.json). Every size comes from the component's config.json (or --config with a
single --kind). Each selected component is built from its config without allocating weights and every key of
its files is accounted for by the rename tables of dropletvideo_ms.weights (the transformer's and the VAE's are
empty: the names are the released ones; T5 drops only the tied copy encoder.embed_tokens.weight): equal in name
and shape to one parameter, or the conversion stops naming the first offending key.

--output_dir DIR writes a weights folder in the released layout that `inference.py --ckpt DIR` loads:
DIR/transformer/diffusion_pytorch_model.ckpt, DIR/vae/diffusion_pytorch_model.ckpt, DIR/text_encoder/model.ckpt
(the components --kind selects, default all), each beside its config.json, plus model_index.json, scheduler/ and
tokenizer/ copied. --target FILE writes the one component a single --kind selects. Memory: the converted tensors
of one component are written at once (the 5B transformer: 11 GB with --dtype fp16, 22 GB with fp32).
Exit status 0, or 2 with one error line.
"""
from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from common.cli import converter_parser, match_and_write, run_converter

COMPONENTS = ("transformer", "vae", "text_encoder")
KINDS = ("all",) + COMPONENTS
#: small files copied as they are, so that --output_dir is a complete weights folder
_COPIED = ("model_index.json", "scheduler", "tokenizer")

PARSER = converter_parser(
    __doc__, src_help="the released weights folder DropletVideo-V1.0-weights",
    config_help="with a single --kind: the component's config.json to check the weights against (default: the "
                "one in --src)",
    kinds=KINDS)
PARSER.set_defaults(kind="all")
_HELP = {  # this converter writes a folder (not DIR/<src stem>.ckpt), and --kind has a default
    "output_dir": "instead of --target: write a weights folder in the released layout there (a .ckpt per component "
                  "beside its config.json, plus model_index.json, scheduler/, tokenizer/)",
    "kind": "which component(s) to convert (default all)",
    "target": "with a single --kind: the MindSpore checkpoint to write; '.ckpt' is appended if missing",
}
for _action in PARSER._actions:
    _action.help = _HELP.get(_action.dest, _action.help)


def _build(name: str, config: Path):
    """The component ``name`` built from ``config`` without initial values, and its rename table."""
    from dropletvideo_ms import weights
    from dropletvideo_ms.transformer import DropletVideoTransformer3DModel
    from mindspore.nn.utils import no_init_parameters

    from common.text import T5Config, T5EncoderModel
    from common.text.t5 import T5_RENAME
    from common.vae3d import AutoencoderKLCausal3D

    with no_init_parameters():  # shapes only: nothing is allocated
        if name == "text_encoder":
            return T5EncoderModel(T5Config.from_json(config)), T5_RENAME
        cfg = weights.read_config_file(config, name)
        if name == "transformer":
            return DropletVideoTransformer3DModel(cfg), weights.TRANSFORMER_RENAME
        return AutoencoderKLCausal3D(cfg), weights.VAE_RENAME


def convert(args) -> list[Path]:
    """Check the selected components of ``args.src`` against their configs and write them; returns the files."""
    from dropletvideo_ms import weights

    from common.checkpoint import CheckpointError, match_state_dict, read_state_dict

    t = time.time()
    src = Path(args.src)
    if not src.is_dir():
        raise CheckpointError(f"--src {src} is not a folder: give the released weights folder")
    names = COMPONENTS if args.kind == "all" else (args.kind,)
    if len(names) > 1 and (args.target or args.config):
        raise ValueError("--target and --config need a single --kind (transformer, vae or text_encoder); "
                         "use --output_dir for all")
    for name in names:  # every file, shard and index, before anything is read
        weights.check_component(src, name)
        if weights.weights_path(src, name).suffix == ".ckpt":
            raise CheckpointError(f"{src / name} is already converted ({weights.CONVERTED[name]}) (--src)")
    jobs = []
    for name in names:  # every key and shape of every component (file headers only), before anything is written
        config = Path(args.config) if args.config else src / name / "config.json"
        model, rename = _build(name, config)
        sd = read_state_dict(src / name, lazy=True)  # shapes now, data one tensor at a time when written
        match_state_dict(model, sd, rename=rename)[1].check(str(src / name), args.allow_partial)
        jobs.append((name, config, model, rename, sd))
    written = []
    for name, config, model, rename, sd in jobs:
        out = argparse.Namespace(**vars(args))
        out.src = str(src / name)
        if args.output_dir:
            out.target, out.output_dir = str(Path(args.output_dir) / name / weights.CONVERTED[name]), None
        written.append(match_and_write(model, sd, out, rename=rename, label=name))
        if args.output_dir:
            shutil.copyfile(config, Path(args.output_dir) / name / "config.json")
    if args.output_dir:
        root = Path(args.output_dir)
        for item in _COPIED:
            if (src / item).is_dir():
                shutil.copytree(src / item, root / item, dirs_exist_ok=True)
            elif (src / item).is_file():
                shutil.copyfile(src / item, root / item)
        print(f"weights folder for inference.py --ckpt: {root}")
    print(f"done in {time.time() - t:.1f} s")
    return written


def main(argv=None) -> int:
    return run_converter(convert, PARSER, argv)


if __name__ == "__main__":
    raise SystemExit(main())
