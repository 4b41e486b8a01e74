"""Fine-tune VideoComposer's UNet (with its condition encoders) on your own captioned videos.

    python train.py -c configs/train_exp02_motion_transfer.yaml --output_dir outputs/train_exp02

Data: ``root_dir`` holds the videos and ``video_caption.csv`` (``video,caption`` rows; ``csv_path`` points
elsewhere); ``python tools/make_demo_videos.py`` writes a small demo set to ``demo_video/train``. Weights:
the released files in ``--weights_dir`` (``model_weights``). The conditions of ``conditions_for_train``
are extracted on the fly by the frozen parts. Every config key can be overridden as ``--key=value`` (a
YAML value). Re-running with the same ``--output_dir`` resumes exactly from its newest checkpoint.

Data parallel (one process per device; CPU works too): ``bash run_train_distribute.sh`` or
``msrun --worker_num=2 --local_worker_num=2 --master_port=8118 --join=True python train.py -c ...``.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_CONFIG = "configs/train_exp02_motion_transfer.yaml"


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from videocomposer_ms.train_config import VCTrainConfig

    from common.config import options_help

    head, _, rest = __doc__.strip().partition("\n\n")
    p = _Parser(description=head, formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog=rest + "\n\nConfig keys (--key=value overrides the config file):\n"
                + "\n".join(options_help(VCTrainConfig)))
    p.add_argument("-c", "--config", "--cfg", dest="config", default=DEFAULT_CONFIG,
                   help="training YAML (configs/train_exp02..06*.yaml)")
    p.add_argument("--output_dir", default=None,
                   help="checkpoints, train_log.jsonl and the fine-tuned UNet (default outputs/<config name>); "
                        "an existing run there is resumed")
    p.add_argument("--weights_dir", default="model_weights",
                   help="folder of the released files (the UNet to fine-tune, OpenCLIP, the VAE, and MiDaS / "
                        "PiDiNet / the sketch cleaner when the conditions need them)")
    p.add_argument("--random_weights", action="store_true",
                   help="start from random weights (a smoke test of the code path, not a fine-tuning)")
    p.add_argument("--no_progress", action="store_true", help="hide the progress bar")
    p.add_argument("--dump_rank_params", default=None,
                   help="diagnostic: every rank writes its trained parameters to this path ({rank} is replaced)")
    p.add_argument("--debug", action="store_true", help="on an error, show the traceback instead of one line")
    return p


def load_train_config(path: Path, overrides: list[str]):
    """The config file with ``--key=value`` overrides applied (any key of the schema), checked."""
    from videocomposer_ms.train_config import VCTrainConfig

    from common.config import from_mapping, load_with_overrides

    merged = load_with_overrides(path, overrides, VCTrainConfig)  # a key the file omits starts from its default
    return from_mapping(VCTrainConfig, merged, str(path))


def parse(argv):
    """``(args, cfg, output_dir)`` with every option checked before any work."""
    from common.cli import InputError, check_dir, check_file, prepare_output_dir

    args, rest = build_parser().parse_known_args(argv)
    cfg_path = check_file(args.config, "-c", "config")
    cfg = load_train_config(cfg_path, rest)
    if not Path(cfg.root_dir).exists() and Path(cfg.root_dir).name.startswith("train"):
        raise InputError(f"video folder not found: {cfg.root_dir} ({cfg_path}:root_dir; python "
                         f"tools/make_demo_videos.py --out {cfg.root_dir} writes a demo set)")
    root = check_dir(cfg.root_dir, f"{cfg_path}:root_dir", "video folder")
    csv = Path(cfg.csv_path) if cfg.csv_path else root / "video_caption.csv"
    check_file(csv, f"{cfg_path}:csv_path", "CSV")
    if not args.random_weights:
        check_dir(args.weights_dir, "--weights_dir", "weights folder (--random_weights runs without weights)")
    out = prepare_output_dir(args.output_dir or Path("outputs") / cfg_path.stem, "--output_dir")
    if cfg.warmup_steps > (cfg.max_steps or 1 << 62):
        raise InputError(f"warmup_steps {cfg.warmup_steps} is longer than the run (max_steps {cfg.max_steps})")
    return args, cfg, root, csv, out


def run(args, cfg, root: Path, csv: Path, out: Path) -> int:
    import mindspore as ms
    from videocomposer_ms.pipeline import VideoComposerPipeline
    from videocomposer_ms.training import (
        DataError,
        DiffusionLoss,
        KeyedLoader,
        VideoCaptionDataset,
        make_batch_fn,
        set_dropout,
    )

    from common.checkpoint import save_safetensors_atomic
    from common.cli import InputError
    from common.train import TrainConfig, Trainer, init_distributed

    if os.environ.get("RANK_TABLE_FILE") and int(os.environ.get("RANK_SIZE", "1")) > 1:
        # the rank-table launch of run_train_distribute.sh (Ascend): one process per DEVICE_ID, HCCL
        from mindspore.communication import init

        if "DEVICE_ID" in os.environ:
            ms.set_context(device_id=int(os.environ["DEVICE_ID"]))
        init()
    rank, world = init_distributed()
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if rank == 0 else (lambda *a: None)
    ms.set_context(mode=ms.PYNATIVE_MODE)
    cpu = ms.get_context("device_target") == "CPU"
    if cpu:
        ms.runtime.launch_blocking()  # faster PyNative on few cores; same numbers
    if cfg.use_fp16 and cpu:
        raise InputError("use_fp16: float16 training with loss scaling needs a GPU or Ascend device (this run is on CPU)")
    dataset = VideoCaptionDataset(cfg, csv, root, cfg.seed)
    dataset.check()  # every file is a video, before any model is built
    loader = KeyedLoader(dataset, cfg.videos_per_batch, seed=cfg.seed, shuffle=cfg.shuffle)
    accum = cfg.gradient_accumulation_steps
    max_steps = cfg.max_steps or cfg.epochs * max(1, loader.sampler.batches_per_epoch // accum)
    if cfg.warmup_steps > max_steps:
        raise InputError(f"warmup_steps {cfg.warmup_steps} is longer than the run ({max_steps} optimizer steps)")

    ms.set_seed(cfg.seed)
    if args.random_weights:
        say("WARNING: --random_weights: fine-tuning RANDOM weights (a smoke test of the code path only)")
    parts = VideoComposerPipeline(cfg, None if args.random_weights else args.weights_dir)
    unet = parts.unet
    for cell in (parts.clip, parts.vae, parts.midas, parts.sketch):
        if cell is not None:
            cell.set_train(False)
            for p in cell.get_parameters():
                p.requires_grad = False
    unet.set_train(True)
    set_dropout(unet, cfg.train_dropout, host_seeds=cfg.ms_mode != 0)
    unet.set_recompute(cfg.use_recompute)
    if cfg.use_fp16:
        unet.to_float(ms.float16)
    params = list(unet.trainable_params())
    n = sum(int(p.size) for p in params)
    batch_fn, names = make_batch_fn(cfg, parts, cfg.seed)
    init = {p.name: p.asnumpy().copy() for p in params} if args.dump_rank_params else None
    tcfg = TrainConfig(
        output_dir=str(out), max_steps=max_steps, lr=cfg.learning_rate,
        lr_schedule="cosine" if cfg.scheduler == "cosine_decay" else "constant", warmup_steps=cfg.warmup_steps,
        min_lr=cfg.end_learning_rate, betas=tuple(cfg.betas), eps=cfg.optim_eps, weight_decay=cfg.weight_decay,
        optimizer=cfg.optim, momentum=cfg.momentum, accum_steps=accum,
        clip_grad_norm=cfg.max_grad_norm if cfg.clip_grad else None, ema_decay=cfg.ema_decay if cfg.use_ema else None,
        ckpt_every=cfg.ckpt_save_interval, keep_last=cfg.ckpt_max_keep, seed=cfg.seed, log_every=cfg.log_interval,
        progress=not args.no_progress, loss_scale="dynamic" if cfg.use_fp16 else "none",
        loss_scale_value=cfg.loss_scale, loss_scale_window=cfg.loss_scale_window, jit=cfg.ms_mode == 0,
        extra={"config": str(args.config), "conditions_for_train": list(cfg.conditions_for_train)})
    say(f"training {len(params)} tensors / {n:,} parameters (UNet with its condition encoders); conditions "
        f"{', '.join(cfg.conditions_for_train)}")
    say(f"{len(dataset)} videos, {world} process(es), {max_steps} steps of {accum} x {world} x "
        f"{cfg.videos_per_batch} clips of {cfg.frames} frames at {cfg.resolution}x{cfg.resolution}; {cfg.optim}, "
        f"lr {cfg.learning_rate:g} ({cfg.scheduler})")
    trainer = Trainer(DiffusionLoss(unet, names, cfg.use_div_loss), params, loader, tcfg, batch_fn=batch_fn)
    try:
        trainer.fit()
    except DataError as e:  # a video that opened but does not decode, met mid-run
        print(f"error: {e}; training stopped at step {trainer.step}, the checkpoints in {out} are kept",
              file=sys.stderr)
        return 2
    if args.dump_rank_params:
        path = str(args.dump_rank_params).format(rank=rank)
        save_safetensors_atomic(trainer.model_state(), path)
        save_safetensors_atomic(init, path.replace(".safetensors", "") + "_init.safetensors")
    if rank == 0:
        state = trainer.model_state(ema=trainer.ema is not None)
        full = {p.name: state.get(p.name, p.asnumpy()) for p in unet.get_parameters()}
        path = save_safetensors_atomic(full, out / "unet_finetuned.safetensors")
        say(f"wrote {path}" + (" (EMA weights)" if trainer.ema is not None else "") +
            f"; checkpoints and train_log.jsonl in {out}")
    return 0


def main(argv=None) -> int:
    os.environ.setdefault("GLOG_v", "3")
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        return run(*parse(argv))
    except (ValueError, OSError, KeyError) as e:  # config, data, checkpoint errors: one line
        if debug:
            raise
        msg = f"{e.strerror}: {e.filename}" if isinstance(e, OSError) and e.filename and e.strerror else str(e)
        print("error: " + " ".join(msg.split()), file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
