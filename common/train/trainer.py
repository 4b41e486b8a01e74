"""The training loop: gradients, accumulation, loss scaling, data parallel, logging, checkpoints.

See :mod:`common.train` for the API summary and the resume guarantees.
"""
from __future__ import annotations

import json
import math
import os
import random
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor, amp, nn, ops
from tqdm import tqdm

from . import distributed as dist
from . import state as st
from .optim import (
    EMA,
    AdamW,
    Momentum,
    clip_by_global_norm,
    constant_with_warmup,
    cosine_with_warmup,
    global_norm,
)


@dataclass
class TrainConfig:
    """Knobs of :class:`Trainer` (defaults in brackets).

    Attributes:
        output_dir: folder for checkpoints and the log (created).
        max_steps: optimizer steps of the whole run (each consumes ``accum_steps`` micro-batches).
        lr: peak learning rate [1e-4].
        lr_schedule: "cosine" (warm-up then cosine to ``min_lr``) or "constant" (warm-up then flat) ["cosine"].
        warmup_steps: linear warm-up steps [0].
        min_lr: final lr of the cosine [0.0].
        betas / eps / weight_decay: AdamW's [(0.9, 0.999) / 1e-8 / 1e-2] (``weight_decay`` is also
            Momentum's L2 factor).
        optimizer: "adamw" (:class:`~common.train.optim.AdamW`) or "momentum"
            (:class:`~common.train.optim.Momentum`, SGD with momentum: one state buffer instead of two) ["adamw"].
        momentum: mu of "momentum" [0.9].
        accum_steps: micro-batches whose gradients are averaged into one step [1].
        clip_grad_norm: max global L2 norm of the gradients; None or 0 = no clipping [1.0].
        ema_decay: keep an EMA of the trainable parameters with this decay; None = none [None].
        ema_use_num_updates: LitEma warm-up of the EMA decay [False].
        ckpt_every: save every this many steps; 0 = only at the end [0].
        keep_last: checkpoints kept (older ones are deleted after a new one is in place) [3].
        save_final: save after the last step [True].
        resume: True = continue from the newest checkpoint in ``output_dir`` if there is one,
            False = start fresh (refused when ``output_dir`` already holds checkpoints), or a
            path to one checkpoint file [True].
        seed: base seed; step ``s`` on rank ``r`` reseeds numpy, python and MindSpore from
            ``(seed, r, s)`` [0].
        log_every: write a log line every this many steps [1].
        log_file: JSONL log inside ``output_dir`` ["train_log.jsonl"].
        progress: tqdm bar on rank 0 [True].
        loss_scale: "auto" (dynamic on GPU/Ascend, none on CPU), "none", "static", "dynamic" ["auto"].
        loss_scale_value / loss_scale_factor / loss_scale_window: initial scale, growth factor
            and growth window of the scaler [2**16 / 2 / 1000].
        jit: compile the forward+backward with ``ms.jit`` [False].
    """

    output_dir: str
    max_steps: int
    lr: float = 1e-4
    lr_schedule: str = "cosine"
    warmup_steps: int = 0
    min_lr: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 1e-2
    optimizer: str = "adamw"
    momentum: float = 0.9
    accum_steps: int = 1
    clip_grad_norm: float | None = 1.0
    ema_decay: float | None = None
    ema_use_num_updates: bool = False
    ckpt_every: int = 0
    keep_last: int = 3
    save_final: bool = True
    resume: bool | str = True
    seed: int = 0
    log_every: int = 1
    log_file: str = "train_log.jsonl"
    progress: bool = True
    loss_scale: str = "auto"
    loss_scale_value: float = 2.0 ** 16
    loss_scale_factor: int = 2
    loss_scale_window: int = 1000
    jit: bool = False
    extra: dict = field(default_factory=dict)  # free-form, saved in checkpoints (e.g. model config)

    def __post_init__(self):
        if self.max_steps < 1 or self.accum_steps < 1 or self.keep_last < 1 or self.log_every < 1:
            raise ValueError(f"TrainConfig: max_steps ({self.max_steps}), accum_steps ({self.accum_steps}), "
                             f"keep_last ({self.keep_last}) and log_every ({self.log_every}) must be >= 1")
        if self.lr_schedule not in ("cosine", "constant"):
            raise ValueError(f"TrainConfig.lr_schedule: {self.lr_schedule!r} is not 'cosine' or 'constant'")
        if self.optimizer not in ("adamw", "momentum"):
            raise ValueError(f"TrainConfig.optimizer: {self.optimizer!r} is not 'adamw' or 'momentum'")
        if self.loss_scale not in ("auto", "none", "static", "dynamic"):
            raise ValueError(f"TrainConfig.loss_scale: {self.loss_scale!r} is not auto/none/static/dynamic")


def _step_seed(seed: int, rank: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(1)[0] & 0x7FFFFFFF)


def _to_tensor(x):
    return Tensor(x) if isinstance(x, np.ndarray) else x


class Trainer:
    """Trains ``params`` of ``loss_fn`` with AdamW on batches from ``data``.

    Args:
        loss_fn: ``nn.Cell`` with ``loss_fn(*batch) -> scalar loss`` (a mean over the batch,
            so that accumulation and data parallel average correctly).
        params: the parameters to train; None = ``loss_fn.trainable_params()``. Others stay frozen.
        data: endless iterator of batches (tuples of numpy arrays / Tensors, the positional
            inputs of ``loss_fn``), e.g. a
            :class:`~common.train.data.DataLoader`; its ``state_dict``/``load_state_dict``, when
            present, are saved and restored, which exact resume needs.
        config: :class:`TrainConfig`.
        batch_fn: optional ``batch_fn(batch, rng) -> batch`` run on the host before the loss, with
            a ``np.random.Generator`` seeded from (seed, rank, step, micro-batch): draw noise,
            timesteps, dropout masks here to keep resume exact under ``jit`` too.
        lr_schedule: optional override: list of per-step lrs or ``callable(step) -> lr``.
        no_decay: optional predicate ``param_name -> True`` for parameters without weight decay.
        on_step_end: optional ``callback(trainer, metrics)`` after every step (all ranks).
    """

    def __init__(self, loss_fn: nn.Cell, params: Sequence[Parameter] | None, data, config: TrainConfig,
                 batch_fn: Callable | None = None, lr_schedule: Sequence[float] | Callable[[int], float] | None = None,
                 no_decay: Callable[[str], bool] | None = None,
                 on_step_end: Callable[[Trainer, dict], None] | None = None):
        self.cfg = config
        self.loss_fn, self.data, self.batch_fn, self.on_step_end = loss_fn, data, batch_fn, on_step_end
        self.params = list(params) if params is not None else list(loss_fn.trainable_params())
        if not self.params:
            raise ValueError("Trainer: no trainable parameters")
        self.names = [p.name for p in self.params]
        self.rank, self.world = dist.rank_and_world()
        self.out = Path(config.output_dir)
        self.step = 0  # optimizer steps done

        c = config
        self.optimizer = (AdamW(self.params, c.lr, c.betas, c.eps, c.weight_decay, no_decay) if c.optimizer == "adamw"
                          else Momentum(self.params, c.lr, c.momentum, c.weight_decay, no_decay))
        self.ema = EMA(self.params, c.ema_decay, c.ema_use_num_updates) if c.ema_decay else None
        if lr_schedule is None:
            lr_schedule = (cosine_with_warmup(c.lr, c.warmup_steps, c.max_steps, c.min_lr)
                           if c.lr_schedule == "cosine" else constant_with_warmup(c.lr, c.warmup_steps, c.max_steps))
        self._lr = lr_schedule
        self.scaler = self._make_scaler()
        self._grad_fn = self._make_grad_fn()
        self._bar = None
        self._ready = False
        self.resumed_from: str | os.PathLike | None = None  # the checkpoint file a resume loaded

    # ------------------------------------------------------------------------------ pieces
    def _make_scaler(self):
        mode = self.cfg.loss_scale
        if mode == "auto":
            mode = "none" if ms.get_context("device_target") == "CPU" else "dynamic"
        if mode == "static":
            return amp.StaticLossScaler(self.cfg.loss_scale_value)
        if mode == "dynamic":
            return amp.DynamicLossScaler(self.cfg.loss_scale_value, self.cfg.loss_scale_factor,
                                         self.cfg.loss_scale_window)
        return None

    def _make_grad_fn(self):
        loss_fn = self.loss_fn
        if self.scaler is None:
            fn = ms.value_and_grad(loss_fn, None, self.params)
        else:
            def scaled(*args):
                loss = loss_fn(*args[:-1])
                return loss * args[-1], loss

            fn = ms.value_and_grad(scaled, None, self.params, has_aux=True)
        return ms.jit(fn) if self.cfg.jit else fn

    def lr_at(self, step: int) -> float:
        """Learning rate of optimizer step ``step`` (0-based); past the list's end its last value."""
        if callable(self._lr):
            return float(self._lr(step))
        return float(self._lr[min(step, len(self._lr) - 1)])

    def _seed_step(self, step: int) -> None:
        s = _step_seed(self.cfg.seed, self.rank, step)
        np.random.seed(s)
        random.seed(s)
        ms.set_seed(s)

    # ------------------------------------------------------------------------------ one step
    def train_step(self) -> dict:
        """One optimizer step over ``accum_steps`` micro-batches; returns its metrics.

        :meth:`fit` calls :meth:`setup` first; call it yourself when driving steps by hand."""
        c, t0 = self.cfg, time.perf_counter()
        self._seed_step(self.step)
        acc, losses = None, []
        scale = self.scaler.scale_value.value() if self.scaler is not None else None
        for micro in range(c.accum_steps):
            try:
                batch = next(self.data)
            except StopIteration:
                raise RuntimeError(f"Trainer: the data iterator ran out at step {self.step}, micro-batch {micro}; "
                                   "give an endless one (DataLoader cycles epochs)") from None
            if self.batch_fn is not None:
                batch = self.batch_fn(batch, np.random.default_rng([c.seed, self.rank, self.step, micro]))
            inputs = tuple(_to_tensor(x) for x in (batch if isinstance(batch, (tuple, list)) else (batch,)))
            if self.scaler is None:
                loss, grads = self._grad_fn(*inputs)
            else:
                (_, loss), grads = self._grad_fn(*inputs, scale)
            losses.append(loss)
            acc = grads if acc is None else tuple(a + g for a, g in zip(acc, grads))
        grads = acc if c.accum_steps == 1 else tuple(g / c.accum_steps for g in acc)
        loss = losses[0] if len(losses) == 1 else ops.stack(losses).mean()
        if self.world > 1:
            grads = dist.allreduce_mean(grads)
            loss = dist.allreduce_mean([loss])[0]
        finite = True
        if self.scaler is not None:
            grads = tuple(self.scaler.unscale(grads))
            finite_t = amp.all_finite(grads)
            self.scaler.adjust(finite_t)
            finite = bool(finite_t.asnumpy())
        lr = self.lr_at(self.step)
        if c.clip_grad_norm:
            grads, gnorm = clip_by_global_norm(grads, c.clip_grad_norm)
        else:
            gnorm = global_norm(grads)
        if finite:
            self.optimizer.step(grads, lr)
            if self.ema is not None:
                self.ema.update()
        self.step += 1
        m = {"step": self.step, "loss": float(loss.asnumpy()), "lr": lr, "grad_norm": float(gnorm.asnumpy()),
             "step_time": time.perf_counter() - t0}
        if self.scaler is not None:
            m["loss_scale"], m["skipped"] = float(self.scaler.scale_value.asnumpy()), not finite
        return m

    # ------------------------------------------------------------------------------ the loop
    def fit(self, until: int | None = None) -> dict | None:
        """Resume (per ``config.resume``), then train to ``config.max_steps`` (or to ``until``,
        a step count, to stop early, saving there when ``save_final``); checkpoints, logs and
        shows progress on the way.
        Returns the metrics of the last step run (None if none ran)."""
        c = self.cfg
        stop = c.max_steps if until is None else min(until, c.max_steps)
        self.setup()
        last = None
        self._bar = tqdm(total=c.max_steps, initial=self.step, disable=not (c.progress and self.rank == 0),
                         desc="train", dynamic_ncols=True)
        try:
            while self.step < stop:
                last = self.train_step()
                if self.rank == 0:
                    self._bar.update(1)
                    self._bar.set_postfix(loss=f"{last['loss']:.4g}", lr=f"{last['lr']:.3g}",
                                          s_step=f"{last['step_time']:.2f}")
                    if self.step % c.log_every == 0 or self.step == c.max_steps:
                        self._log(last)
                if self.on_step_end is not None:
                    self.on_step_end(self, last)
                if (c.ckpt_every and self.step % c.ckpt_every == 0) or (c.save_final and self.step == c.max_steps):
                    self.save_checkpoint()
            if last is not None and self.step < c.max_steps and c.save_final and not (
                    c.ckpt_every and self.step % c.ckpt_every == 0):
                self.save_checkpoint()  # stopped early by ``until``: keep the place
        finally:
            self._bar.close()
        return last

    def setup(self) -> None:
        """Prepare the output folder, resume if asked, and align parameters across ranks."""
        if self._ready:
            return
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            st.remove_stale_temps(self.out)
        resumed = None
        if not self.cfg.resume and st.list_checkpoints(self.out):
            raise FileExistsError(f"{self.out} holds checkpoints of an earlier run but TrainConfig.resume is False; "
                                  "resume, choose another output_dir, or delete them")
        if self.cfg.resume:
            resumed = (self.load_checkpoint(self.cfg.resume) if isinstance(self.cfg.resume, (str, os.PathLike))
                       else self.resume_latest())
        if self.rank == 0:
            self._trim_log(self.step if resumed is not None else 0)
            if resumed is not None:
                print(f"resumed from {Path(self.resumed_from).absolute()} (step {self.step} of {self.cfg.max_steps})",
                      file=sys.stderr, flush=True)
            if self.step >= self.cfg.max_steps:
                print(f"nothing left to do: {self.out.absolute()} already holds the finished run (step {self.step} of "
                      f"{self.cfg.max_steps}); raise the step count or choose another output folder to train more",
                      file=sys.stderr, flush=True)
        dist.broadcast_parameters(self.params)
        if resumed is None and self.ema is not None and self.world > 1:
            self.ema.reset()  # follow rank 0's (broadcast) start values
        self._ready = True

    # ------------------------------------------------------------------------------ state
    def state(self) -> tuple[dict[str, np.ndarray], dict]:
        """Everything a resume needs: ``(arrays, meta)`` as stored by :func:`common.train.state.save_state`."""
        arrays = {f"model/{n}": p.asnumpy() for n, p in zip(self.names, self.params)}
        opt_arrays, opt_meta = self.optimizer.state_dict()
        arrays.update({f"optim/{k}": v for k, v in opt_arrays.items()})
        meta = {"step": self.step, "lr_position": self.step, "optimizer": opt_meta, "world_size": self.world,
                "param_names": self.names, "config": json.loads(json.dumps(asdict(self.cfg), default=str))}
        if self.ema is not None:
            ema_arrays, meta["ema"] = self.ema.state_dict()
            arrays.update({f"ema/{k}": v for k, v in ema_arrays.items()})
        if self.scaler is not None:
            meta["loss_scaler"] = {"scale_value": float(self.scaler.scale_value.asnumpy()),
                                   "counter": int(self.scaler.counter.asnumpy())
                                   if hasattr(self.scaler, "counter") else 0}
        meta["data"] = self.data.state_dict() if hasattr(self.data, "state_dict") else None
        kind, mt, pos, has_gauss, cached = np.random.get_state()
        arrays["rng/numpy_mt"] = mt
        meta["rng"] = {"numpy": [kind, int(pos), int(has_gauss), float(cached)],
                       "python": [list(x) if isinstance(x, tuple) else x for x in random.getstate()],
                       "mindspore_seed": ms.get_seed(), "step_seed": _step_seed(self.cfg.seed, self.rank, self.step)}
        return arrays, meta

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict, source: str = "state") -> None:
        """Inverse of :meth:`state`; raises naming ``source`` and the key when something is missing."""
        groups = st.split_groups(arrays)
        model = groups.get("model", {})
        missing = [n for n in self.names if n not in model]
        if missing:
            raise KeyError(f"{source}: no saved value for trainable parameters {missing[:5]} "
                           f"({len(missing)} missing); saved: {sorted(model)[:5]}...")
        for n, p in zip(self.names, self.params):
            if tuple(model[n].shape) != tuple(p.shape):
                raise ValueError(f"{source}: model/{n} has shape {model[n].shape}, parameter has {tuple(p.shape)}")
            p.set_data(Tensor(model[n]).astype(p.dtype))
        self.optimizer.load_state_dict(groups.get("optim", {}), meta["optimizer"])
        if self.ema is not None:
            if "ema" not in meta:
                raise KeyError(f"{source}: the run uses an EMA but the checkpoint has none")
            self.ema.load_state_dict(groups.get("ema", {}), meta["ema"])
        if self.scaler is not None and "loss_scaler" in meta:
            self.scaler.scale_value.set_data(Tensor(np.float32(meta["loss_scaler"]["scale_value"])))
            if hasattr(self.scaler, "counter"):
                self.scaler.counter.set_data(Tensor(np.int32(meta["loss_scaler"]["counter"])))
        if meta.get("data") is not None and hasattr(self.data, "load_state_dict"):
            self.data.load_state_dict(meta["data"])
        elif meta["step"] > 0:
            warnings.warn(f"{source}: no data position saved/restorable; the resumed run sees other batches",
                          stacklevel=2)
        rng = meta["rng"]
        kind, pos, has_gauss, cached = rng["numpy"]
        np.random.set_state((kind, arrays["rng/numpy_mt"], pos, has_gauss, cached))
        py = rng["python"]
        random.setstate((py[0], tuple(py[1]), py[2]))
        if rng.get("mindspore_seed") is not None:
            ms.set_seed(int(rng["mindspore_seed"]))
        self.step = int(meta["step"])

    def save_checkpoint(self) -> Path | None:
        """Write ``ckpt-<step>.safetensors`` atomically (rank 0), then prune to ``keep_last``."""
        if self.rank != 0:
            return None
        arrays, meta = self.state()
        path = st.save_state(st.checkpoint_path(self.out, self.step), arrays, meta)
        st.prune_checkpoints(self.out, self.cfg.keep_last)
        return path

    def load_checkpoint(self, path: str | os.PathLike) -> int:
        """Load one checkpoint file; returns its step."""
        arrays, meta = st.load_state(path)
        self.load_state(arrays, meta, source=str(path))
        self.resumed_from = path
        return self.step

    def resume_latest(self) -> int | None:
        """Load the newest readable checkpoint in ``output_dir``; its step, or None if there is none."""
        for _, path in reversed(st.list_checkpoints(self.out)):
            try:
                return self.load_checkpoint(path)
            except ValueError as e:  # an unreadable file: fall back to the one before
                warnings.warn(f"skipping checkpoint {path}: {e}", stacklevel=2)
        return None

    def model_state(self, ema: bool = False) -> dict[str, np.ndarray]:
        """``{name: array}`` of the trained parameters (or of their EMA)."""
        if ema:
            if self.ema is None:
                raise ValueError("model_state(ema=True): this run has no EMA (TrainConfig.ema_decay)")
            return self.ema.state_dict()[0]
        return {n: p.asnumpy() for n, p in zip(self.names, self.params)}

    # ------------------------------------------------------------------------------ log
    def _log(self, metrics: dict) -> None:
        with open(self.out / self.cfg.log_file, "a") as f:
            f.write(json.dumps({k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                                for k, v in metrics.items()}) + "\n")

    def _trim_log(self, step: int) -> None:
        """Drop log lines of steps after ``step`` (they are redone after a resume)."""
        path = self.out / self.cfg.log_file
        if not path.exists():
            return
        keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= step]
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(ln + "\n" for ln in keep))
        os.replace(tmp, path)
