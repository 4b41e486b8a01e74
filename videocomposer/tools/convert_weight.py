"""Convert one released VideoComposer file to a MindSpore ``.ckpt`` with this port's parameter names.

    python tools/convert_weight.py --kind unet --src model_weights/non_ema_228000.pth \
        --config configs/exp02_motion_transfer.yaml --output_dir model_weights_ms/

Kinds and their released files: ``unet`` (non_ema_228000.pth), ``clip`` (open_clip_pytorch_model.bin),
``vae`` (v2-1_512-ema-pruned.ckpt: only ``first_stage_model.*`` is kept), ``midas``
(midas_v3_dpt_large.pth), ``pidinet`` (table5_pidinet.pth: pixel-difference kernels converted to plain
ones), ``sketch`` (sketch_simplification_gan.pth). Every key is accounted for by the tables of
``videocomposer_ms.weights``: dropped for a stated reason or equal in name and shape to one parameter of
the part built from ``--config`` (without allocating its weights); every parameter must be present. Torch
files are read without running pickled code. Exit status 0, or 2 with one error line.

``run_net.py`` also reads the released files directly (``--weights_dir``); converted files, renamed to the
released names, load the same way.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

from common.cli import converter_parser, match_and_write, run_converter

KINDS = ("unet", "clip", "vae", "midas", "pidinet", "sketch")

PARSER = converter_parser(
    __doc__, src_help="a released file (see the kinds above)", config_help="a VideoComposer YAML (sizes)",
    config_required=True, kinds=KINDS, kind_help="which released file --src is")


def _part(kind: str, cfg):
    from videocomposer_ms import model as M
    from videocomposer_ms.weights import (
        CLIP_RENAMES,
        MIDAS_RENAMES,
        PIDINET_RENAMES,
        SKETCH_RENAMES,
        UNET_RENAMES,
        vae_renames,
    )

    if kind == "unet":
        return M.UNetSDTemporal(cfg), UNET_RENAMES, None
    if kind == "clip":
        from common.clip import OpenCLIP, OpenCLIPConfig
        return OpenCLIP(OpenCLIPConfig.from_dict(dict(cfg.clip_model_cfg)), layer=cfg.clip_layer), CLIP_RENAMES, None
    if kind == "vae":
        from common.vae import AutoencoderKL
        return AutoencoderKL(dict(cfg.ddconfig), embed_dim=4), vae_renames, None
    if kind == "midas":
        from videocomposer_ms.midas import MiDaS, midas_config
        return MiDaS(midas_config(dict(cfg.midas_cfg))), MIDAS_RENAMES, None
    from videocomposer_ms.sketch import PiDiNet, SketchSimplification, convert_pidinet, pidinet_config
    if kind == "pidinet":
        pcfg = pidinet_config(dict(cfg.pidinet_cfg))
        return PiDiNet(pcfg), PIDINET_RENAMES, partial(convert_pidinet, config=pcfg.config)
    return SketchSimplification(cfg.sketch_simplification_channels), SKETCH_RENAMES, None


def convert(args) -> Path:
    """Check ``args.src`` against the part ``args.kind`` of ``args.config`` and write it."""
    from mindspore.nn.utils import no_init_parameters
    from videocomposer_ms.config import load_config
    from videocomposer_ms.weights import read_weights

    cfg = load_config(args.config)
    with no_init_parameters():  # shapes only: nothing is allocated
        net, rename, pre = _part(args.kind, cfg)
    sd = read_weights(args.src, args.kind)
    if pre is not None:
        sd = pre(sd)
    if callable(rename):
        rename = rename(sd)
    return match_and_write(net, sd, args, rename=rename, label=args.kind)


def main(argv=None) -> int:
    return run_converter(convert, PARSER, argv)


if __name__ == "__main__":
    raise SystemExit(main())
