"""Convert a released DynamiCrafter checkpoint (PyTorch) to a MindSpore checkpoint.

    python tools/convert_weight.py --kind 256 --src model.ckpt --target ms/model_256.ckpt
    python tools/convert_weight.py --kind 512_interp --src model.ckpt --target ms/model_512_interp.ckpt
    python tools/convert_weight.py --kind clip --src open_clip_pytorch_model.bin --target ms/clip.ckpt
    (older spelling: --model_name 256 --src_ckpt model.ckpt --target_ckpt ms/model_256.ckpt)

* ``256`` / ``512`` / ``1024`` / ``512_interp``: the Lightning ``model.ckpt`` of
  Doubiiu/DynamiCrafter(_512|_1024|_512_Interp) (the interp file has the 512 layout). Keys are
  renamed by the explicit table of ``dynamicrafter_ms.weights.RENAMES`` (only the 256 release's
  ``framestride_embed`` -> ``fps_embedding`` and DeepSpeed's ``_forward_module.`` prefix); every key is
  then checked by name and shape against the model built from ``configs/inference_<kind>_v1.0.yaml``
  (or ``--config``) without allocating its weights, and the schedule buffers against the config.
* ``clip``: an open_clip CLIP (``laion/CLIP-ViT-H-14-laion2B-s32B-b79K``) -> the ``cond_stage_model.model.*``
  and ``embedder.model.*`` parts (already inside every DynamiCrafter checkpoint; rarely needed).

Pickles are read without executing code (a malicious file is refused). Nothing is written unless
every key is accounted for (or --allow_partial). torch is not needed. Exit status 0, or 2 with one
error line.
"""
from __future__ import annotations

from pathlib import Path

from common.cli import converter_parser, run_converter, write_state_dict

HERE = Path(__file__).resolve().parent.parent  # the dynamicrafter/ folder

PARSER = converter_parser(
    __doc__, src_help="the released checkpoint (.ckpt/.pt/.bin/.safetensors)",
    config_help="inference yaml (default configs/inference_<kind>_v1.0.yaml; 256's for clip)",
    kinds=["256", "512", "1024", "512_interp", "clip"], kind_help="which release the source checkpoint is",
    aliases={"kind": ["--model_name"], "src": ["--src_ckpt"], "target": ["--target_ckpt"]})


def convert(args) -> dict:
    """Check ``args.src`` against the model of the config and write it; returns a summary dict."""
    from dynamicrafter_ms.config import DynamiCrafterConfig
    from dynamicrafter_ms.model import DynamiCrafter
    from dynamicrafter_ms.weights import clip_to_dynamicrafter, match_checkpoint
    from mindspore.nn.utils import no_init_parameters

    from common.checkpoint import CheckpointError, match_state_dict, read_state_dict

    cfg_path = Path(args.config) if args.config else \
        HERE / "configs" / f"inference_{'256' if args.kind == 'clip' else args.kind}_v1.0.yaml"
    cfg = DynamiCrafterConfig.from_yaml(cfg_path)
    raw = read_state_dict(args.src, upcast=args.dtype != "keep")
    if not raw:
        raise CheckpointError(f"holds no tensors (--src {args.src})")
    with no_init_parameters():  # shapes only: nothing is allocated
        model = DynamiCrafter(cfg)
    if args.kind == "clip":
        part = {k: p.shape for k, p in model.parameters_and_names() if k.startswith(("cond_stage_model.", "embedder."))}
        sd, report = match_state_dict(part, clip_to_dynamicrafter(raw))
        report.check(args.src, args.allow_partial)
    else:
        sd, report = match_checkpoint(model, raw, args.src, cfg_path, allow_partial=args.allow_partial)
    out = write_state_dict(sd, args)
    for old, new in report.renamed.items():
        print(f"renamed {old} -> {new}")
    if not report.ok:
        print("partial (--allow_partial): " + report.message(args.src))
    print(f"converted {len(sd)} tensors ({len(report.renamed)} renamed, {len(sd) - len(report.renamed)} kept; "
          f"{'every key matches' if report.ok else 'NOT every key matches'} {cfg_path}) -> {out}")
    return {"tensors": len(sd), "renamed": report.renamed, "target": str(out), "config": str(cfg_path)}


def main(argv=None) -> int:
    return run_converter(convert, PARSER, argv)


if __name__ == "__main__":
    raise SystemExit(main())
