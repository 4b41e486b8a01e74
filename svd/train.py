"""Fine-tune Stable Video Diffusion (by default its temporal layers) on your own videos.

    python train.py --config=configs/svd_train.yaml --svd_config=configs/svd.yaml \
        --train.pretrained=svd.safetensors --train.output_dir=runs/svd_ft --train.temporal_only=True \
        --train.epochs=10 --train.dataset.init_args.frames=4 --train.dataset.init_args.step=5 \
        --train.dataset.init_args.data_dir=videos/ --train.dataset.init_args.metadata=videos/metadata.csv

Data parallel (one process per device; CPU works too):

    msrun --worker_num=2 --local_worker_num=2 --master_port=8118 --join=True --log_dir=msrun_log \
        python train.py --config=configs/svd_train.yaml ...

Every key of the ``--config`` YAML can be overridden as ``--section.key=value``. Re-running with the
same ``--train.output_dir`` resumes exactly from its newest checkpoint.
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent


class OptionError(ValueError):
    """A bad command-line option or config value (one line)."""


def _set(cfg: dict, dotted: str, value, source: str):
    node = cfg
    parts = dotted.split(".")
    for i, key in enumerate(parts[:-1]):
        if not isinstance(node, dict) or key not in node:
            raise OptionError(f"unknown option --{dotted}: {'.'.join(parts[:i + 1])} is not a section of {source}")
        node = node[key]
    if not isinstance(node, dict) or parts[-1] not in node:
        raise OptionError(f"unknown option --{dotted}: not a key of {source}")
    node[parts[-1]] = value


def parse_args(argv=None) -> tuple[dict, Path]:
    """``(config dict with the overrides applied, svd_config path)``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=True,
                                 epilog="Any key of --config can be given as --section.key=value "
                                        "(see configs/svd_train.yaml for every key and its meaning).")
    ap.add_argument("--config", default=str(HERE / "configs" / "svd_train.yaml"), help="training YAML")
    ap.add_argument("--svd_config", default=str(HERE / "configs" / "svd.yaml"), help="SVD model YAML")
    known, rest = ap.parse_known_args(argv)
    path = Path(known.config)
    if not path.is_file():
        raise OptionError(f"--config {path} does not exist")
    cfg = yaml.safe_load(path.read_text()) or {}
    cfg = copy.deepcopy(cfg)
    i = 0
    while i < len(rest):
        arg = rest[i]
        if not arg.startswith("--"):
            raise OptionError(f"unexpected argument {arg!r} (options are --section.key=value)")
        if "=" in arg:
            key, raw = arg[2:].split("=", 1)
        else:
            if i + 1 >= len(rest):
                raise OptionError(f"option {arg} needs a value")
            key, raw = arg[2:], rest[i + 1]
            i += 1
        _set(cfg, key, yaml.safe_load(raw) if raw != "" else None, str(path))
        i += 1
    return cfg, Path(known.svd_config)


def run(cfg: dict, svd_config: Path) -> int:
    """Train as configured; returns the process exit code."""
    import mindspore as ms

    from common.train import TrainConfig, Trainer, init_distributed
    from svd_ms.config import LossConfig
    from svd_ms.data import BadVideoError, VideoDataLoader, VideoDataset
    from svd_ms.model import load_svd_model
    from svd_ms.training import (
        FinetuneOptions,
        build_loss,
        describe_parameters,
        export_weights,
        make_batch_fn,
        trainable_parameters,
    )

    env, tr = cfg["environment"], cfg["train"]
    rank, world = init_distributed()
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if rank == 0 else (lambda *a: None)
    ms.set_context(mode=ms.PYNATIVE_MODE)
    seed = int(env.get("seed", 0))
    ms.set_seed(seed)
    if not svd_config.is_file():
        raise OptionError(f"--svd_config {svd_config} does not exist")
    pretrained = tr.get("pretrained")
    if pretrained is None:
        say("WARNING: --train.pretrained not given: fine-tuning RANDOM weights (only useful for tests)")
    elif not Path(pretrained).is_file():
        raise OptionError(f"--train.pretrained {pretrained} does not exist")
    ds_args = dict(tr["dataset"]["init_args"])
    if ds_args.get("metadata") is None:
        raise OptionError("--train.dataset.init_args.metadata is required (CSV path,length,motion_bucket_id)")
    size = ds_args.pop("size", [576, 1024])
    dataset = VideoDataset(ds_args.pop("data_dir", None), ds_args.pop("metadata"), size=size,
                           on_bad_video=tr.get("on_bad_video", "skip"), seed=seed, **ds_args)  # bad CSVs fail fast

    model, report = load_svd_model(svd_config, pretrained)
    if report is not None:
        say(f"loaded {pretrained}: {report.loaded} tensors ({report.ignored} unused skipped)")
    model.set_train(False)
    loss_cfg = model.cfg.loss or LossConfig(**tr["loss"])
    mult = model.downscale * 2 ** (len(model.cfg.unet.channel_mult) - 1)
    if size[0] % mult or size[1] % mult:
        raise OptionError(f"--train.dataset.init_args.size={size}: height and width must be multiples of {mult}")
    dl = tr["dataloader"]
    loader = VideoDataLoader(dataset, int(dl.get("batch_size", 1)), seed=seed, shuffle=bool(dl.get("shuffle", True)))

    opts = FinetuneOptions(temporal_only=bool(tr["temporal_only"]), ucg_rate=float(tr.get("ucg_rate", 0.0)),
                           encode_chunk_size=tr.get("encode_chunk_size"), amp_level=tr.get("amp_level", "O0"),
                           recompute=bool(tr.get("recompute", False)), seed=seed)
    params = trainable_parameters(model, opts.temporal_only)
    for p in model.get_parameters():
        p.requires_grad = False
    for p in params:
        p.requires_grad = True
    say(describe_parameters(model, params) + (" (temporal layers only)" if opts.temporal_only else ""))
    st = tr["settings"]
    accum = int(st.get("gradient_accumulation_steps", 1))
    steps_per_epoch = max(1, loader.sampler.batches_per_epoch // accum)
    max_steps = int(tr.get("max_steps") or int(tr["epochs"]) * steps_per_epoch)
    sch, opt, ls = tr["scheduler"], tr["optimizer"], cfg.get("LossScale", {})
    tcfg = TrainConfig(
        output_dir=str(tr["output_dir"]), max_steps=max_steps, lr=float(sch["lr"]), lr_schedule="cosine",
        warmup_steps=int(sch.get("warmup_steps", 0)), min_lr=float(sch.get("end_lr", 0.0)),
        betas=tuple(float(b) for b in opt.get("betas", (0.9, 0.999))), eps=float(opt.get("eps", 1e-8)),
        weight_decay=float(opt.get("weight_decay", 0.01)), accum_steps=accum,
        clip_grad_norm=float(st.get("clip_norm", 1.0)) if st.get("clip_grad", True) else None,
        ema_decay=tr.get("ema_decay"), ckpt_every=int(tr.get("ckpt_every", 0)), keep_last=int(tr.get("keep_last", 3)),
        seed=seed, loss_scale=str(ls.get("loss_scale", "auto")),
        loss_scale_value=float(ls.get("loss_scale_value", 2.0 ** 16)), loss_scale_factor=int(ls.get("scale_factor", 2)),
        loss_scale_window=int(ls.get("scale_window", 1000)), jit=int(env.get("mode", 1)) == 0,
        extra={"svd_config": str(svd_config), "temporal_only": opts.temporal_only})
    say(f"{len(dataset)} videos, {world} process(es), {max_steps} steps of {accum} x {world} x "
        f"{int(dl.get('batch_size', 1))} clips of {dataset.frames} frames (every {dataset.step}th) at {size[0]}x{size[1]}")
    trainer = Trainer(build_loss(model, loss_cfg, opts.amp_level, opts.recompute), params, loader, tcfg,
                      batch_fn=make_batch_fn(model, loss_cfg, opts))
    try:
        trainer.fit()
    except BadVideoError as e:
        say(f"error: {e} (--train.on_bad_video=stop); training stopped, the checkpoints in {tr['output_dir']} are kept")
        return 2
    if tr.get("dump_rank_params"):  # diagnostic: every rank writes its trained parameters
        from common.checkpoint import save_safetensors_atomic

        save_safetensors_atomic(trainer.model_state(), str(tr["dump_rank_params"]).format(rank=rank))
    if rank == 0 and tr.get("export", True):
        overrides = trainer.model_state(ema=True) if trainer.ema is not None else None
        path = export_weights(model, Path(tr["output_dir"]) / "svd_finetuned.safetensors", overrides)
        say(f"wrote {path}" + (" (EMA weights)" if overrides else ""))
    return 0


def main(argv=None) -> int:
    from common.checkpoint import CheckpointError
    from common.config import ConfigError
    from svd_ms.data import BadVideoError, MetadataError

    try:
        cfg, svd_config = parse_args(argv)
        return run(cfg, svd_config)
    except BadVideoError as e:  # a bad row found before training (--train.on_bad_video=stop)
        print(f"error: {e} (--train.on_bad_video=stop)", file=sys.stderr)
        return 2
    except (OptionError, MetadataError, ConfigError, CheckpointError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)  # bad option, metadata, config or checkpoint: one line
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
