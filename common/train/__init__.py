"""Model-agnostic training: AdamW, schedules, clipping, EMA, accumulation, data parallel, resume.

Typical use (a model's ``train.py``)::

    from common.train import DataLoader, TrainConfig, Trainer, init_distributed

    rank, world = init_distributed()            # no-op unless launched by msrun
    loss_cell = MyLoss(model)                   # nn.Cell: loss_cell(*batch) -> scalar mean loss
    params = [p for p in model.trainable_params() if "temporal" in p.name]   # or None = all trainable
    data = DataLoader(dataset, batch_size=1, seed=0)   # dataset[i] -> tuple of np arrays
    cfg = TrainConfig(output_dir="runs/x", max_steps=1000, lr=1e-5, warmup_steps=100,
                      accum_steps=4, clip_grad_norm=1.0, ema_decay=0.9999, ckpt_every=200)
    trainer = Trainer(loss_cell, params, data, cfg, batch_fn=None)
    trainer.fit()                               # resumes from output_dir's newest checkpoint
    weights = trainer.model_state(ema=True)     # {param name: np.ndarray}

What one step does (:meth:`Trainer.train_step`): reseed numpy / python / MindSpore from
``(seed, rank, step)``; for each of ``accum_steps`` micro-batches ``batch = next(data)``,
``batch = batch_fn(batch, rng)`` (optional host hook with a seeded ``np.random.Generator``),
``loss, grads = value_and_grad(loss_cell)(*batch)`` (times the loss scale when one is on);
average the gradients over micro-batches, then over ranks (AllReduce mean when
``mindspore.communication`` is initialised); unscale and skip the step on inf/nan (loss
scaling); clip to ``clip_grad_norm`` (global L2, torch's formula); AdamW (or Momentum) with the lr of the step;
EMA update. Then rank 0 logs ``{"step","loss","lr","grad_norm","step_time"[,"loss_scale","skipped"]}``
to ``output_dir/train_log.jsonl``, updates the tqdm bar, and saves every ``ckpt_every`` steps.

``TrainConfig`` fields: output_dir, max_steps, lr, lr_schedule ("cosine"|"constant"), warmup_steps,
min_lr, betas, eps, weight_decay, accum_steps, clip_grad_norm, ema_decay, ema_use_num_updates,
optimizer ("adamw"|"momentum"), momentum, ckpt_every, keep_last, save_final, resume, seed, log_every, log_file, progress, loss_scale
("auto"|"none"|"static"|"dynamic") and its value/factor/window, jit, extra (free-form, saved).
``Trainer`` methods: ``fit(until=None)``, ``setup()``, ``train_step() -> metrics``,
``save_checkpoint()``, ``load_checkpoint(path)``, ``resume_latest()``, ``state()`` /
``load_state(arrays, meta)``, ``model_state(ema=False)``, ``lr_at(step)``; attributes ``step``,
``optimizer`` (:class:`AdamW` or :class:`Momentum`), ``ema`` (:class:`EMA` or None), ``scaler``, ``params``, ``names``.

Checkpoints (:mod:`common.train.state`): ``output_dir/ckpt-<step:08d>.safetensors`` with arrays
``model/<name>``, ``optim/exp_avg/<name>``, ``optim/exp_avg_sq/<name>``, ``ema/<name>``,
``rng/numpy_mt`` and a JSON of scalars (step, optimizer step, EMA count, loss scale, data
sampler position, RNG states, config). Written atomically (temp + fsync + ``os.replace``), the
newest ``keep_last`` kept. Resume is exact: a run stopped after any saved step and resumed
ends bit-identical to an uninterrupted one, provided the data iterator has
``state_dict``/``load_state_dict`` (``DataLoader`` has) and randomness comes from the reseeded
global RNGs (numpy, python, ``ops.randn``-style ops in PyNative) or from ``batch_fn``'s
generator. Under ``jit=True``, random ops compiled into the graph keep their own state and are
*not* restored: draw noise in ``batch_fn`` there. Data parallel assumes all ranks read the same
``output_dir`` (rank 0 writes; every rank loads; parameters are then broadcast from rank 0).

Dropout: ``use_reseedable_dropout(net)`` makes ``nn.Dropout`` masks follow the per-step reseed (exact resume).

Modules: :mod:`.optim` (``AdamW``, ``Momentum``, ``cosine_with_warmup``, ``constant_with_warmup``,
``clip_by_global_norm``, ``global_norm``, ``EMA``), :mod:`.data` (``EpochSampler``,
``DataLoader``, ``default_collate``), :mod:`.distributed` (``init_distributed``,
``rank_and_world``, ``allreduce_mean``, ``broadcast_parameters``), :mod:`.state`
(``save_state``, ``load_state``, ``read_meta``, ``list_checkpoints``, ``latest_checkpoint``,
``prune_checkpoints``), :mod:`.trainer` (``TrainConfig``, ``Trainer``), :mod:`.webvid` (WebVid CSV, video
probing and frame decoding with errors naming the CSV line, the moving-shapes demo set; imported on demand),
:mod:`.testing` (the msrun-vs-one-process and SIGKILL helpers of the tests).
"""
from .data import DataLoader, EpochSampler, default_collate
from .distributed import allreduce_mean, broadcast_parameters, init_distributed, rank_and_world
from .dropout import ReseedableDropout, use_reseedable_dropout
from .optim import (
    EMA,
    AdamW,
    Momentum,
    clip_by_global_norm,
    constant_with_warmup,
    cosine_with_warmup,
    global_norm,
)
from .state import latest_checkpoint, list_checkpoints, load_state, read_meta, save_state
from .trainer import TrainConfig, Trainer

__all__ = [
    "AdamW", "EMA", "DataLoader", "Momentum", "ReseedableDropout", "use_reseedable_dropout", "EpochSampler",
    "TrainConfig", "Trainer", "allreduce_mean",
    "broadcast_parameters", "clip_by_global_norm", "constant_with_warmup", "cosine_with_warmup",
    "default_collate", "global_norm", "init_distributed", "latest_checkpoint", "list_checkpoints",
    "load_state", "rank_and_world", "read_meta", "save_state",
]
