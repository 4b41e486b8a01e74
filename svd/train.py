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
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


class OptionError(ValueError):
    """A bad command-line option or config value (one line)."""


def parse_args(argv=None):
    """``(TrainFile with the overrides applied and every value checked, svd_config path)``."""
    from common.cli import OneLineParser
    from common.config import apply_overrides, from_mapping, load_yaml, options_help
    from svd_ms.config import TrainFile

    ap = OneLineParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Every key of --config can be given as --section.key=value (YAML values):\n"
               + "\n".join(options_help(TrainFile)))
    ap.add_argument("-c", "--config", default=str(HERE / "configs" / "svd_train.yaml"), help="training YAML")
    ap.add_argument("--svd_config", default=str(HERE / "configs" / "svd.yaml"), help="SVD model YAML")
    known, rest = ap.parse_known_args(argv)
    path = Path(known.config)
    if not path.is_file():
        raise OptionError(f"--config {path} is not a file" if path.exists() else f"--config {path} does not exist")
    svd_config = Path(known.svd_config)
    if not svd_config.is_file():
        raise OptionError(f"--svd_config {svd_config} " + ("is not a file" if svd_config.exists() else "does not exist"))
    data = apply_overrides(load_yaml(path), rest, str(path))
    cfg = from_mapping(TrainFile, data, str(path))
    tr = cfg.train
    if tr.pretrained is not None and not Path(tr.pretrained).is_file():
        raise OptionError(f"--train.pretrained {tr.pretrained} " + (
            "is not a file" if Path(tr.pretrained).exists() else "does not exist"))
    if tr.dataset.init_args.metadata is None:
        raise OptionError("--train.dataset.init_args.metadata is required (CSV path,length,motion_bucket_id)")
    out = Path(tr.output_dir)
    if out.exists() and not out.is_dir():
        raise OptionError(f"--train.output_dir {out} is a file, not a folder")
    if any(p.exists() and not p.is_dir() for p in out.parents):
        raise OptionError(f"--train.output_dir {out} lies below a file")
    return cfg, svd_config


def run(cfg, svd_config: Path) -> int:
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

    env, tr = cfg.environment, cfg.train
    rank, world = init_distributed()
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if rank == 0 else (lambda *a: None)
    ms.set_context(mode=ms.PYNATIVE_MODE)
    seed = env.seed
    ms.set_seed(seed)
    if tr.pretrained is None:
        say("WARNING: --train.pretrained not given: fine-tuning RANDOM weights (only useful for tests)")
    ds = tr.dataset.init_args
    size = ds.size
    dataset = VideoDataset(ds.data_dir, ds.metadata, frames=ds.frames, step=ds.step, size=size,
                           on_bad_video=tr.on_bad_video, seed=seed, cond_aug_mean=ds.cond_aug_mean,
                           cond_aug_std=ds.cond_aug_std)  # bad CSVs fail fast

    model, report = load_svd_model(svd_config, tr.pretrained)
    if report is not None:
        say(f"loaded {tr.pretrained}: {report.loaded} tensors ({report.ignored} unused skipped)")
    model.set_train(False)
    loss_cfg = model.cfg.loss or LossConfig(loss_type=tr.loss.loss_type, p_mean=tr.loss.p_mean, p_std=tr.loss.p_std,
                                            sigma_data=tr.loss.sigma_data)
    mult = model.downscale * 2 ** (len(model.cfg.unet.channel_mult) - 1)
    if size[0] % mult or size[1] % mult:
        raise OptionError(f"--train.dataset.init_args.size={list(size)}: height and width must be multiples of {mult}")
    dl = tr.dataloader
    loader = VideoDataLoader(dataset, dl.batch_size, seed=seed, shuffle=dl.shuffle)

    opts = FinetuneOptions(temporal_only=tr.temporal_only, ucg_rate=tr.ucg_rate, encode_chunk_size=tr.encode_chunk_size,
                           amp_level=tr.amp_level, recompute=tr.recompute, seed=seed)
    params = trainable_parameters(model, opts.temporal_only)
    for p in model.get_parameters():
        p.requires_grad = False
    for p in params:
        p.requires_grad = True
    say(describe_parameters(model, params) + (" (temporal layers only)" if opts.temporal_only else ""))
    st, sch, opt, ls = tr.settings, tr.scheduler, tr.optimizer, cfg.LossScale
    accum = st.gradient_accumulation_steps
    steps_per_epoch = max(1, loader.sampler.batches_per_epoch // accum)
    max_steps = tr.max_steps or tr.epochs * steps_per_epoch
    if sch.warmup_steps >= max_steps > 1:
        raise OptionError(f"--train.scheduler.warmup_steps={sch.warmup_steps}: the run has only {max_steps} "
                          "optimizer steps (set a shorter warm-up or more --train.epochs / --train.max_steps)")
    tcfg = TrainConfig(
        output_dir=str(tr.output_dir), max_steps=max_steps, lr=sch.lr, lr_schedule="cosine",
        warmup_steps=sch.warmup_steps, min_lr=sch.end_lr, betas=opt.betas, eps=opt.eps,
        weight_decay=opt.weight_decay, accum_steps=accum, clip_grad_norm=st.clip_norm if st.clip_grad else None,
        ema_decay=tr.ema_decay, ckpt_every=tr.ckpt_every, keep_last=tr.keep_last, seed=seed,
        loss_scale=ls.loss_scale, loss_scale_value=ls.loss_scale_value, loss_scale_factor=ls.scale_factor,
        loss_scale_window=ls.scale_window, jit=env.mode == 0,
        extra={"svd_config": str(svd_config), "temporal_only": opts.temporal_only})
    say(f"{len(dataset)} videos, {world} process(es), {max_steps} steps of {accum} x {world} x "
        f"{dl.batch_size} clips of {dataset.frames} frames (every {dataset.step}th) at {size[0]}x{size[1]}")
    trainer = Trainer(build_loss(model, loss_cfg, opts.amp_level, opts.recompute), params, loader, tcfg,
                      batch_fn=make_batch_fn(model, loss_cfg, opts))
    try:
        trainer.fit()
    except BadVideoError as e:
        say(f"error: {e} (--train.on_bad_video=stop); training stopped, the checkpoints in {tr.output_dir} are kept")
        return 2
    if tr.dump_rank_params:  # diagnostic: every rank writes its trained parameters
        from common.checkpoint import save_safetensors_atomic

        save_safetensors_atomic(trainer.model_state(), str(tr.dump_rank_params).format(rank=rank))
    if rank == 0 and tr.export:
        overrides = trainer.model_state(ema=True) if trainer.ema is not None else None
        path = export_weights(model, Path(tr.output_dir) / "svd_finetuned.safetensors", overrides)
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
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
