"""Train an AnimateDiff motion module (or a MotionLoRA) on your own clips, from the original's training YAML as it is.

    python train.py --config configs/training/v1/training.yaml \\
        --pretrained_model_path=models/StableDiffusion/stable-diffusion-v1-5 \\
        --train_data.csv_path=webvid/results.csv --train_data.video_folder=webvid/videos

Tiny demo, random weights, a few seconds on CPU (no downloads):

    python scripts/make_demo_training_data.py          # demo_data/webvid: moving shapes as mp4 + results.csv
    python train.py -c configs/training/demo_tiny.yaml --random_weights

MotionLoRA instead of the whole motion module: --motion_lora_rank=4 --motion_lora_alpha=1.0 (only the LoRA is
trained and saved, in the released v2_lora_*.ckpt key layout). Data parallel (one process per device):

    msrun --worker_num=8 --local_worker_num=8 --master_port=8118 --join=True --log_dir=msrun_log \\
        python train.py -c configs/training/v1/training.yaml ...      (or scripts/run/run_train_distributed.sh)

Every key of the YAML can be set as --key=value / --section.key=value (a YAML value). Re-running with the same
output_dir resumes exactly from its newest checkpoint. Outputs in output_dir: checkpoints/mm_step<N>.safetensors
(the motion module, loadable as a prompt config's motion_module) or motion_lora_step<N>.safetensors (a
motion_module_lora_configs path), ckpt-<N>.safetensors (resume state), samples/sample-<N>/<i>.gif, train_log.jsonl.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_CONFIG = HERE / "configs" / "training" / "v1" / "training.yaml"


def get_parser() -> argparse.ArgumentParser:
    """The script's own flags; the YAML keys (listed in the epilog) are given as --key=value."""
    from animatediff_ms.config import TrainingConfig, UNet3DAdditionalKwargs

    from common.cli import OneLineParser
    from common.config import options_help

    keys = options_help(TrainingConfig) + options_help(UNet3DAdditionalKwargs, "unet_additional_kwargs")
    p = OneLineParser(description=__doc__.split("\n\n")[0], allow_abbrev=False,
                      formatter_class=argparse.RawDescriptionHelpFormatter,
                      epilog="Every key of the config can be given as --key=value (YAML values):\n" + "\n".join(keys)
                             + "\n\n" + __doc__.split("\n\n", 1)[1])
    p.add_argument("-c", "--config", default=str(DEFAULT_CONFIG),
                   help="training YAML of the original's schema (default configs/training/v1/training.yaml)")
    p.add_argument("--random_weights", action="store_true",
                   help="start from the tiny random model of the demo (animatediff_ms.demo) instead of "
                        "pretrained_model_path: a smoke test of the code path, not a fine-tuning")
    p.add_argument("--keep_last", type=int, default=3, help="resume checkpoints kept (default 3)")
    p.add_argument("--no_video_check", action="store_true",
                   help="check only that every video of the CSV exists before training, not that ffmpeg reads it "
                        "(huge datasets): an unreadable one then stops the run when it is drawn")
    p.add_argument("--dump_rank_params", default=None,
                   help="[diagnostic] path with {rank}: every rank writes its trained parameters at the end")
    p.add_argument("--fp16_on_cpu", action="store_true",
                   help="[diagnostic] run mixed_precision_training (float16 UNet compute, dynamic loss scaling) on CPU "
                        "too (slow; the tests cover the loss scaler with it)")
    p.add_argument("--loss_scale_value", type=float, default=65536.0,
                   help="initial dynamic loss scale of mixed_precision_training (default 65536, torch's GradScaler)")
    p.add_argument("--no_progress", action="store_true", help="hide the progress bar")
    p.add_argument("--debug", action="store_true", help="on an error, show the traceback instead of one line")
    return p


def _positive(cfg, where: str, names: tuple[str, ...], allow_minus_one: tuple[str, ...] = ()):
    from common.cli import InputError

    for name in names:
        node = cfg
        for part in name.split("."):
            node = getattr(node, part)
        if node < 1 and not (name in allow_minus_one and node == -1):
            extra = " (or -1)" if name in allow_minus_one else ""
            raise InputError(f"{where}: {name} must be a positive count{extra}, got {node} (--{name})")


def read_config(args, overrides: list[str]):
    """The training config with the overrides applied, every key and value checked (no file is read but the YAML)."""
    from animatediff_ms.config import TrainingConfig, UNet3DAdditionalKwargs

    from common.cli import InputError, check_file
    from common.config import load_with_overrides

    path = check_file(args.config, "--config", "config")
    data = load_with_overrides(path, overrides, TrainingConfig, {"unet_additional_kwargs": UNet3DAdditionalKwargs})
    cfg = TrainingConfig.from_dict(data, str(path))
    where = str(path)
    _positive(cfg, where, ("train_batch_size", "gradient_accumulation_steps", "train_data.sample_stride",
                           "train_data.sample_n_frames", "validation_data.num_inference_steps", "validation_steps"))
    _positive(cfg, where, ("max_train_steps", "max_train_epoch", "checkpointing_steps", "checkpointing_epochs"),
              allow_minus_one=("max_train_steps", "max_train_epoch", "checkpointing_steps", "checkpointing_epochs"))
    if cfg.max_train_steps == -1 and cfg.max_train_epoch == -1:
        raise InputError(f"{where}: max_train_steps and max_train_epoch are both -1: the run has no length "
                         f"(--max_train_steps)")
    size = cfg.train_data.sample_size
    if isinstance(size, tuple) and len(size) != 2:
        raise InputError(f"{where}: train_data.sample_size must be one int or [H, W], got {list(size)} "
                         f"(--train_data.sample_size)")
    h, w = cfg.train_data.size
    if h < 8 or w < 8 or h % 8 or w % 8:
        raise InputError(f"{where}: train_data.sample_size {h}x{w}: height and width must be positive multiples of 8 "
                         f"(--train_data.sample_size)")
    for name, ok, rule in (("learning_rate", cfg.learning_rate > 0, "> 0"), ("adam_epsilon", cfg.adam_epsilon > 0, "> 0"),
                           ("adam_weight_decay", cfg.adam_weight_decay >= 0, ">= 0"),
                           ("max_grad_norm", cfg.max_grad_norm >= 0, ">= 0 (0 = no clipping)"),
                           ("adam_beta1", 0 <= cfg.adam_beta1 < 1, "in [0, 1)"),
                           ("adam_beta2", 0 <= cfg.adam_beta2 < 1, "in [0, 1)"),
                           ("cfg_random_null_text_ratio", 0 <= cfg.cfg_random_null_text_ratio <= 1, "in [0, 1]"),
                           ("validation_data.guidance_scale", cfg.validation_data.guidance_scale >= 0, ">= 0"),
                           ("lr_warmup_steps", cfg.lr_warmup_steps >= 0, ">= 0"),
                           ("motion_lora_rank", cfg.motion_lora_rank >= 0, ">= 0 (0 = off)"),
                           ("motion_lora_alpha", cfg.motion_lora_alpha > 0 or cfg.motion_lora_rank == 0, "> 0"),
                           ("validation_steps_tuple", all(s >= 1 for s in cfg.validation_steps_tuple), "steps >= 1")):
        if not ok:
            node = cfg
            for part in name.split("."):
                node = getattr(node, part)
            raise InputError(f"{where}: {name} {node}: must be {rule} (--{name})")
    if cfg.max_train_steps != -1 and cfg.lr_warmup_steps > cfg.max_train_steps:
        raise InputError(f"{where}: lr_warmup_steps {cfg.lr_warmup_steps} exceeds max_train_steps "
                         f"{cfg.max_train_steps}: the run would end inside its warm-up (--lr_warmup_steps)")
    if args.keep_last < 1:
        raise InputError(f"--keep_last must be >= 1, got {args.keep_last}")
    if args.loss_scale_value <= 0:
        raise InputError(f"--loss_scale_value must be > 0, got {args.loss_scale_value}")
    mm = cfg.unet_additional_kwargs.get("motion_module_kwargs") or {}
    max_len = mm.get("temporal_position_encoding_max_len", 24)
    if mm.get("temporal_position_encoding", False) and cfg.train_data.sample_n_frames > max_len:
        raise InputError(f"{where}: train_data.sample_n_frames {cfg.train_data.sample_n_frames} exceeds the motion "
                         f"module's temporal_position_encoding_max_len {max_len} (--train_data.sample_n_frames)")
    if not args.random_weights:
        from common.cli import check_dir

        if not cfg.pretrained_model_path:
            raise InputError(f"{where}: pretrained_model_path is empty: name the SD-1.5 diffusers folder, or give "
                             f"--random_weights for the tiny demo model (--pretrained_model_path)")
        check_dir(cfg.pretrained_model_path, "--pretrained_model_path", "pretrained_model_path folder")
    if cfg.unet_checkpoint_path:
        check_file(cfg.unet_checkpoint_path, "--unet_checkpoint_path", "unet_checkpoint_path")
    levels = _unet_levels(cfg, args.random_weights)
    need = 8 * 2 ** (levels - 1)
    if h % need or w % need:
        raise InputError(f"{where}: train_data.sample_size {h}x{w}: height and width must be multiples of {need} "
                         f"(8 pixels per latent x {levels} UNet levels) (--train_data.sample_size)")
    return cfg


def _unet_levels(cfg, random_weights: bool) -> int:
    from animatediff_ms.demo import TINY_UNET

    from common.cli import check_file
    from common.config import load_json

    if random_weights:
        return len(TINY_UNET["block_out_channels"])
    path = check_file(Path(cfg.pretrained_model_path) / "unet" / "config.json", "--pretrained_model_path", "UNet config")
    return len(load_json(path).get("block_out_channels", (0, 0, 0, 0)))


def check_unet_checkpoint(cfg) -> None:
    """The original's rule, before any model is built: a file with ``pos_encoder.pe`` keys (a released motion
    module) is refused as ``unet_checkpoint_path``."""
    from animatediff_ms.loading import WeightsError, read_weights

    sd = read_weights(cfg.unet_checkpoint_path, "unet_checkpoint_path")
    pe = [k for k in sd if "pos_encoder.pe" in k]
    if pe:
        raise WeightsError(f"unet_checkpoint_path {cfg.unet_checkpoint_path} carries {len(pe)} 'pos_encoder.pe' keys "
                           f"(a released motion module?), which the original train.py refuses (unexpected keys); "
                           f"drop them or use a checkpoint this script wrote (--unet_checkpoint_path)")


def build_models(cfg, random_weights: bool):
    """``(AnimationPipeline, unet)``: the diffusers folder's tokenizer, text encoder, VAE and UNet (+ the
    ``unet_checkpoint_path``), or the tiny random demo model."""
    from animatediff_ms.config import InferenceConfig
    from animatediff_ms.loading import build_pipeline, load_unet_checkpoint

    inf = InferenceConfig(unet_additional_kwargs=dict(cfg.unet_additional_kwargs), scheduler=cfg.noise_scheduler_kwargs)
    if random_weights:
        import mindspore as ms
        import numpy as np
        from animatediff_ms.demo import tiny_random_pipeline

        pipe = tiny_random_pipeline(inf, seed=cfg.global_seed)  # (its motion modules' proj_out randomised)
        if pipe.unet.cfg.motion_module_kwargs.zero_initialize:  # as the original builds it for training
            for name, p in pipe.unet.parameters_and_names():
                if "motion_modules." in name and ".proj_out." in name:
                    p.set_data(ms.Tensor(np.zeros(p.shape, np.float32)))
    else:
        pipe = build_pipeline(cfg.pretrained_model_path, inf)
        for p in pipe.unet.get_parameters():  # the motion modules' deferred initialisation (no file loads them)
            if getattr(p, "has_init", False):
                p.init_data()
    if cfg.unet_checkpoint_path:
        load_unet_checkpoint(pipe.unet, cfg.unet_checkpoint_path)
    return pipe


def run(args, cfg) -> int:
    """Train as configured; returns the exit status."""
    import math

    import mindspore as ms
    from animatediff_ms import finetune as F
    from animatediff_ms.motion_lora import add_motion_lora
    from animatediff_ms.train_data import WebVid10M, WebVidLoader
    from animatediff_ms.training import trainable_parameters

    from common.cli import InputError, prepare_output_dir
    from common.train import TrainConfig, Trainer, init_distributed

    rank, world = init_distributed()
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if rank == 0 else (lambda *a: None)
    ms.set_context(mode=ms.PYNATIVE_MODE)
    on_cpu = ms.get_context("device_target") == "CPU"
    if on_cpu:
        ms.runtime.launch_blocking()
    dataset = WebVid10M(cfg.train_data, seed=cfg.global_seed, check=not args.no_video_check)  # bad row: exit 2
    per_step = cfg.train_batch_size * world
    if len(dataset) < per_step:
        src = (f"train_data.csv_path {cfg.train_data.csv_path}" if cfg.train_data.csv_path
               else f"train_data.video_folder {cfg.train_data.video_folder}")
        raise InputError(f"{src}: {len(dataset)} videos cannot fill one batch "
                         f"of train_batch_size {cfg.train_batch_size} x {world} processes")
    if cfg.unet_checkpoint_path:
        check_unet_checkpoint(cfg)
    out = prepare_output_dir(cfg.output_dir, "--output_dir")

    steps_per_epoch = max(len(dataset) // per_step // cfg.gradient_accumulation_steps, 1)
    max_steps = cfg.max_train_steps if cfg.max_train_steps != -1 else cfg.max_train_epoch * steps_per_epoch
    every = cfg.checkpointing_steps if cfg.checkpointing_steps != -1 else (
        cfg.checkpointing_epochs * steps_per_epoch if cfg.checkpointing_epochs != -1 else 0)

    ms.set_seed(cfg.global_seed)  # the motion modules' initialisation (when no unet_checkpoint_path sets them)
    pipe = build_models(cfg, args.random_weights)
    unet = pipe.unet
    lora = cfg.motion_lora_rank > 0
    if lora:
        for p in unet.get_parameters():
            p.requires_grad = False
        params = add_motion_lora(unet, cfg.motion_lora_rank, cfg.motion_lora_alpha, seed=cfg.global_seed)
    else:
        params = trainable_parameters(unet, cfg.trainable_modules)
        if not params:
            raise InputError(f"trainable_modules {list(cfg.trainable_modules)} select no UNet parameter "
                             f"(--trainable_modules)")
    for net in (pipe.vae, pipe.text_encoder):
        net.set_train(False)
        for p in net.get_parameters():
            p.requires_grad = False
    unet.set_train(True)
    unet.set_gradient_checkpointing(cfg.gradient_checkpointing)
    fp16 = cfg.mixed_precision_training and (not on_cpu or args.fp16_on_cpu)
    if fp16:
        F.use_mixed_precision(unet)
    lr = cfg.learning_rate * (cfg.gradient_accumulation_steps * cfg.train_batch_size * world if cfg.scale_lr else 1)
    tcfg = TrainConfig(
        output_dir=str(out), max_steps=max_steps, lr=lr, lr_schedule=cfg.lr_scheduler, warmup_steps=cfg.lr_warmup_steps,
        betas=(cfg.adam_beta1, cfg.adam_beta2), eps=cfg.adam_epsilon, weight_decay=cfg.adam_weight_decay,
        accum_steps=cfg.gradient_accumulation_steps, clip_grad_norm=cfg.max_grad_norm or None, ckpt_every=every,
        keep_last=args.keep_last, seed=cfg.global_seed, progress=not args.no_progress,
        loss_scale="dynamic" if fp16 else "none", loss_scale_value=args.loss_scale_value, extra={"config": str(Path(args.config).absolute())})
    numel = sum(math.prod(p.shape) for p in params)
    h, w = cfg.train_data.size
    say(f"{len(dataset)} videos, {world} process(es), {max_steps} steps of {cfg.gradient_accumulation_steps} x {world} "
        f"x {cfg.train_batch_size} clips of {cfg.train_data.sample_n_frames} frames at {h}x{w}, lr {lr:g}; training "
        + (f"a MotionLoRA of rank {cfg.motion_lora_rank} (alpha {cfg.motion_lora_alpha:g})" if lora
           else f"{len(params)} tensors matching {list(cfg.trainable_modules)}")
        + f" ({numel / 1e6:.3f} M parameters)" + (", gradient checkpointing" if cfg.gradient_checkpointing else "")
        + (", fp16 with dynamic loss scaling" if fp16 else ", float32"))
    if args.random_weights:
        say("WARNING: --random_weights: training the tiny RANDOM demo model (a smoke test, not a fine-tuning)")

    ckpt_dir = out / "checkpoints"
    save = F.save_motion_lora if lora else F.save_motion_module
    stem = "motion_lora" if lora else "mm"

    def on_step_end(trainer, metrics):
        step = trainer.step
        if rank != 0:
            return
        if (every and step % every == 0) or step == max_steps:
            say(f"step {step}: wrote {save(unet, ckpt_dir / f'{stem}_step{step:06d}.safetensors')}")
        acc, per_epoch = cfg.gradient_accumulation_steps, loader.sampler.batches_per_epoch
        epoch = step * acc // per_epoch
        if epoch > (step - 1) * acc // per_epoch:  # an epoch ended in this step: the original saves then too
            say(f"epoch {epoch}: wrote {save(unet, ckpt_dir / f'{stem}_epoch{epoch:04d}.safetensors')}")
        if cfg.validation_data.prompts and (step % cfg.validation_steps == 0 or step in cfg.validation_steps_tuple):
            F.write_validation_samples(pipe, cfg, step, out, say)

    loader = WebVidLoader(dataset, cfg.train_batch_size, seed=cfg.global_seed)
    batch_fn = F.make_batch_fn(pipe.vae, pipe.text_encoder, pipe.tokenize, cfg, cfg.global_seed,
                               pipe.vae_scale_factor)
    trainer = Trainer(F.MotionLoss(unet), params, loader, tcfg, batch_fn=batch_fn, on_step_end=on_step_end)
    trainer.fit()
    if args.dump_rank_params:
        from common.checkpoint import save_safetensors_atomic

        save_safetensors_atomic(trainer.model_state(), str(args.dump_rank_params).format(rank=rank))
    final = ckpt_dir / f"{stem}_step{trainer.step:06d}.safetensors"
    if rank == 0 and not final.exists():  # a finished run started again: (re)write the last file
        save(unet, final)
    say(f"{'MotionLoRA' if lora else 'motion module'}: {final}")
    return 0


def _main(argv) -> int:
    args, overrides = get_parser().parse_known_args(argv)
    cfg = read_config(args, overrides)
    return run(args, cfg)


def main(argv=None) -> int:
    """Entry point: exit status 2 and one ``error:`` line on bad input (a config key, a video, a checkpoint)."""
    from common.cli import run_cli

    return run_cli(_main, argv)


if __name__ == "__main__":
    os.environ.setdefault("GLOG_v", "3")
    raise SystemExit(main())
