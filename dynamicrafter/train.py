"""Fine-tune DynamiCrafter on your own videos, from the original's training YAML as it is.

    python train.py -c configs/training_512_v1.0/config.yaml --output_dir runs/dc512 \\
        --model.pretrained_checkpoint=checkpoints/dynamicrafter_512_v1/model.ckpt \\
        --data.params.train.params.data_dir=webvid --data.params.train.params.meta_path=webvid/results.csv

Data parallel (one process per device; CPU works too; Ascend rank tables: scripts/run/run_train_distributed.sh):

    msrun --worker_num=8 --local_worker_num=8 --master_port=8118 --join=True --log_dir=msrun_log \\
        python train.py -c configs/training_512_v1.0/config.yaml ...

Data: a WebVid CSV (meta_path) or a folder of mp4s with captions (meta_path null or a folder; see README).
Every key of the YAML can be set as --section.key=value (a YAML value). Re-running with the same
--output_dir resumes exactly from its newest checkpoint. Demo data: python scripts/make_demo_videos.py.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_CONFIG = HERE / "configs" / "training_512_v1.0" / "config.yaml"


def get_parser() -> argparse.ArgumentParser:
    """The script's own flags; the YAML keys (listed in the epilog) are given as --section.key=value."""
    from dynamicrafter_ms.config import DiffusionConfig, UNetConfig
    from dynamicrafter_ms.train_config import TrainingFile

    from common.cli import OneLineParser
    from common.config import options_help

    keys = (options_help(TrainingFile) + options_help(DiffusionConfig, "model.params")
            + options_help(UNetConfig, "model.params.unet_config.params"))
    p = OneLineParser(description=__doc__.split("\n\n")[0], allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter,
                      epilog="Every key of the config can be given as --section.key=value (YAML values):\n"
                             + "\n".join(k for k in keys if not k.startswith("  --model.params "))
                             + "\n\n" + __doc__.split("\n\n", 1)[1])
    p.add_argument("-c", "--config", "--base", dest="config", default=str(DEFAULT_CONFIG),
                   help=f"training YAML of the original's schema (default {DEFAULT_CONFIG.relative_to(HERE)})")
    p.add_argument("--output_dir", "--logdir", dest="output_dir", default=None,
                   help="checkpoints, train_log.jsonl and the exported weights (default output/<config folder>[_<stem>])")
    p.add_argument("--seed", type=int, default=123, help="seed of the data order and of every draw (default 123)")
    p.add_argument("--mode", choices=["pynative", "graph"], default="pynative",
                   help="[ms] PyNative, or graph: the gradient step compiled (default pynative)")
    p.add_argument("--ema_decay", type=float, default=0.9999,
                   help="EMA decay used when model.params.use_ema is true (LitEma: with its warm-up; default 0.9999)")
    p.add_argument("--keep_last", type=int, default=3, help="checkpoints kept (default 3)")
    p.add_argument("--adam_eps", type=float, default=1e-8, help="AdamW epsilon (default 1e-8, torch's, as the original)")
    p.add_argument("--weight_decay", type=float, default=1e-2,
                   help="AdamW decoupled weight decay (default 0.01, torch's, as the original)")
    p.add_argument("--loss_scale_value", type=float, default=65536.0,
                   help="initial dynamic loss scale of precision 16 on GPU/Ascend (default 65536)")
    p.add_argument("--no_video_check", action="store_true",
                   help="do not probe every video before training (huge datasets): an unreadable one then stops the run "
                        "when it is drawn, a short one gets a smaller stride (the original's fallback)")
    p.add_argument("--no_export", action="store_true",
                   help="do not write output_dir/model_finetuned.safetensors (the EMA weights with use_ema) at the end")
    p.add_argument("--dump_rank_params", default=None,
                   help="[diagnostic] path with {rank}: every rank writes its trained parameters at the end")
    p.add_argument("--dropout_off", action="store_true",
                   help="[diagnostic] train with the UNet's dropout off (masks are drawn per process; the "
                        "data-parallel test compares ranks with one process)")
    p.add_argument("--fp16_on_cpu", action="store_true",
                   help="[diagnostic] run precision 16 (float16 UNet compute, dynamic loss scaling) on CPU too (slow)")
    p.add_argument("--no_progress", action="store_true", help="hide the progress bar")
    p.add_argument("--debug", action="store_true", help="on an error, show the traceback instead of one line")
    return p


def default_output_dir(config) -> Path:
    """``output/<config folder>`` (``output/<folder>_<stem>`` for a file not named config.yaml, e.g.
    ``output/training_512_v1.0_config_interp``), so two configs of one folder do not resume each other's run."""
    c = Path(config)
    return Path("output") / (c.parent.name if c.stem == "config" else f"{c.parent.name}_{c.stem}")


def read_configs(args, overrides: list[str]):
    """``(TrainingFile, DynamiCrafterConfig)`` from ``--config`` with the overrides applied; every key checked."""
    from dynamicrafter_ms.config import DynamiCrafterConfig
    from dynamicrafter_ms.finetune import check_trainable
    from dynamicrafter_ms.train_config import read_training_file

    from common.cli import check_file
    from common.config import load_with_overrides

    path = check_file(args.config, "--config", "config")
    data = load_with_overrides(path, overrides)
    tf = read_training_file(data, str(path))
    cfg = DynamiCrafterConfig.from_dict({"model": data["model"]}, str(path))
    check_trainable(cfg, f"{path}: model.params")
    if tf.model.pretrained_checkpoint is not None:
        check_file(tf.model.pretrained_checkpoint, "--model.pretrained_checkpoint", "checkpoint")
    for name in ("keep_last",):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.adam_eps <= 0 or args.weight_decay < 0:
        raise ValueError(f"--adam_eps {args.adam_eps} must be > 0 and --weight_decay {args.weight_decay} >= 0")
    if not 0.0 < args.ema_decay < 1.0:
        raise ValueError(f"--ema_decay {args.ema_decay} must lie in (0, 1)")
    res = tf.data.params.train.params.resolution
    need = 8 * 2 ** (len(cfg.unet.channel_mult) - 1)
    if res[0] % need or res[1] % need:
        raise ValueError(f"{path}: data.params.train.params.resolution {res}: height and width must be multiples of "
                         f"{need} (VAE x UNet levels)")
    return tf, cfg


def run(args, tf, cfg) -> int:
    """Train as configured; returns the exit status."""
    import mindspore as ms
    from dynamicrafter_ms.finetune import (
        DiffusionLoss,
        describe_parameters,
        export_weights,
        make_batch_fn,
        set_train_mode,
        trainable_parameters,
    )
    from dynamicrafter_ms.model import DynamiCrafter
    from dynamicrafter_ms.webvid import WebVidDataset, WebVidLoader
    from dynamicrafter_ms.weights import load_weights

    from common.cli import prepare_output_dir
    from common.train import TrainConfig, Trainer, init_distributed, use_reseedable_dropout

    rank, world = init_distributed()
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if rank == 0 else (lambda *a: None)
    ms.set_context(mode=ms.PYNATIVE_MODE)
    if ms.get_context("device_target") == "CPU":
        ms.runtime.launch_blocking()
    ms.set_seed(args.seed)
    dp = tf.data.params
    dataset = WebVidDataset(dp.train.params, seed=args.seed, check=not args.no_video_check)  # bad rows: exit 2 here
    if len(dataset) < dp.batch_size * world:
        tp = dp.train.params
        raise ValueError(f"{tp.meta_path or 'data_dir ' + tp.data_dir}: {len(dataset)} videos cannot fill one batch of "
                         f"data.params.batch_size {dp.batch_size} x {world} processes")
    out = prepare_output_dir(args.output_dir or default_output_dir(args.config), "--output_dir")

    model = DynamiCrafter(cfg)
    ckpt = tf.model.pretrained_checkpoint
    if ckpt is not None:
        say(f"loaded {load_weights(model, ckpt, args.config)} tensors from {ckpt}")
    else:
        say("WARNING: model.pretrained_checkpoint is null: fine-tuning RANDOM weights (only useful for tests)")
    use_reseedable_dropout(model, host_seeds=args.mode != "graph")  # masks repeat on resume and under recompute
    set_train_mode(model)
    if args.dropout_off:
        model.model.set_train(False)
    model.unet.set_recompute(cfg.unet.use_checkpoint)
    lt = tf.lightning
    on_device = ms.get_context("device_target") != "CPU" or args.fp16_on_cpu
    if lt.fp16 and on_device:
        model.unet.to_float(ms.float16)
    params = trainable_parameters(model)
    for p in model.get_parameters():
        p.requires_grad = False
    for p in params:
        p.requires_grad = True
    say(describe_parameters(model, params))
    tr = lt.trainer
    lr = tf.model.base_learning_rate * (world * dp.batch_size if tf.model.scale_lr else 1)
    tcfg = TrainConfig(
        output_dir=str(out), max_steps=tr.max_steps, lr=lr, lr_schedule="constant", warmup_steps=0,
        eps=args.adam_eps, weight_decay=args.weight_decay,
        accum_steps=tr.accumulate_grad_batches, clip_grad_norm=tr.gradient_clip_val or None,
        ema_decay=args.ema_decay if cfg.diffusion.use_ema else None, ema_use_num_updates=True,
        ckpt_every=lt.callbacks.model_checkpoint.params.every_n_train_steps, keep_last=args.keep_last,
        seed=args.seed, log_every=tr.log_every_n_steps, progress=not args.no_progress,
        loss_scale="dynamic" if lt.fp16 and on_device else "none", loss_scale_value=args.loss_scale_value,
        jit=args.mode == "graph", extra={"config": str(Path(args.config).absolute())})
    loader = WebVidLoader(dataset, dp.batch_size, seed=args.seed)
    p = dp.train.params
    say(f"{len(dataset)} videos, {world} process(es), {tr.max_steps} steps of {tr.accumulate_grad_batches} x {world} x "
        f"{dp.batch_size} clips of {p.video_length} frames at {p.resolution[0]}x{p.resolution[1]}, lr {lr:g}"
        + (", gradient checkpointing" if cfg.unet.use_checkpoint else "")
        + (", fp16 with loss scaling" if lt.fp16 and on_device else ""))
    trainer = Trainer(DiffusionLoss(model), params, loader, tcfg, batch_fn=make_batch_fn(model, args.seed))
    trainer.fit()
    if args.dump_rank_params:
        from common.checkpoint import save_safetensors_atomic

        save_safetensors_atomic(trainer.model_state(), str(args.dump_rank_params).format(rank=rank))
    if rank == 0 and not args.no_export:
        ema = trainer.model_state(ema=True) if trainer.ema is not None else None
        say(f"wrote {export_weights(model, out / 'model_finetuned.safetensors', ema)}" + (" (EMA)" if ema else ""))
    return 0


def _main(argv) -> int:
    args, overrides = get_parser().parse_known_args(argv)
    tf, cfg = read_configs(args, overrides)
    return run(args, tf, cfg)


def main(argv=None) -> int:
    """Entry point: exit status 2 and one ``error:`` line on bad input (a config key, a video, a flag)."""
    from common.cli import run_cli

    return run_cli(_main, argv)


if __name__ == "__main__":
    os.environ.setdefault("GLOG_v", "3")
    raise SystemExit(main())
