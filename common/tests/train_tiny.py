"""Tiny regression run for the common.train tests (a script, and a module the tests load by path).

A 2-layer tanh MLP fits ``y = sin(sum(x))`` on 64 fixed samples. The loss draws MindSpore noise
(``ops.randn``) and the batch hook numpy noise, so RNG handling is part of what resume must redo.

    python train_tiny.py --out DIR --steps 6 --ckpt-every 2 [--until 4] [--sleep 0.2] [--dump f.npz]
    msrun --worker_num=2 ... python train_tiny.py --distributed ...
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from mindspore import Tensor, nn, ops

from common.nn import linear
from common.train import DataLoader, TrainConfig, Trainer, init_distributed


class TinyMLP(nn.Cell):
    """x (b, d_in) -> (b, 1); parameters initialised from a numpy seed (same on every process)."""

    def __init__(self, d_in: int = 4, hidden: int = 8, seed: int = 0):
        super().__init__()
        self.fc1 = linear(d_in, hidden)
        self.fc2 = linear(hidden, 1)
        rng = np.random.default_rng(seed)
        for _, p in sorted(self.parameters_and_names()):
            p.set_data(Tensor(rng.standard_normal(p.shape).astype(np.float32) * 0.5))

    def construct(self, x):
        return self.fc2(ops.tanh(self.fc1(x)))


class MSELoss(nn.Cell):
    """Mean squared error of the MLP on (x, y); ``noise`` > 0 adds ``noise * randn`` to x."""

    def __init__(self, net: nn.Cell, noise: float = 0.0):
        super().__init__()
        self.net, self.noise = net, noise

    def construct(self, x, y):
        if self.noise > 0:  # a Python constant: same graph every call
            x = x + self.noise * ops.randn(x.shape)
        return ((self.net(x) - y) ** 2).mean()


def make_dataset(n: int = 64, d_in: int = 4, seed: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
    """n samples (x (d_in,), y (1,)) with y = sin(sum(x))."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d_in)).astype(np.float32)
    y = np.sin(x.sum(1, keepdims=True)).astype(np.float32)
    return list(zip(x, y))


def jitter(batch, rng: np.random.Generator):
    """Batch hook: host-side noise on y from the trainer's per-step generator."""
    x, y = batch
    return x, y + rng.normal(0.0, 0.01, y.shape).astype(np.float32)


def build(out: str, steps: int, *, batch: int = 4, accum: int = 1, ckpt_every: int = 0, noise: float = 0.05,
          ema: float | None = 0.9, shuffle: bool = True, hook: bool = True, on_step_end=None, init_seed: int = 0,
          **cfg) -> Trainer:
    """The trainer of the tiny run (fresh model, data and optimizer)."""
    loss = MSELoss(TinyMLP(seed=init_seed), noise)
    data = DataLoader(make_dataset(), batch, seed=3, shuffle=shuffle)
    cfg = TrainConfig(output_dir=out, max_steps=steps, lr=cfg.pop("lr", 1e-2), warmup_steps=cfg.pop("warmup", 2),
                      accum_steps=accum, ckpt_every=ckpt_every, ema_decay=ema, progress=False, **cfg)
    return Trainer(loss, None, data, cfg, batch_fn=jitter if hook else None, on_step_end=on_step_end)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--until", type=int, default=None)
    ap.add_argument("--ckpt-every", type=int, default=0)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--sleep", type=float, default=0.0, help="seconds to wait after each step")
    ap.add_argument("--no-resume", action="store_true")
    ap.add_argument("--distributed", action="store_true",
                    help="data parallel under msrun; the model starts from a rank-dependent init (rank 0's wins)")
    ap.add_argument("--clean", action="store_true", help="no noise in the loss or the batch hook")
    ap.add_argument("--dump", default=None, help="write the final params (and EMA) to this .npz")
    a = ap.parse_args()
    rank = init_distributed()[0] if a.distributed else 0
    t = build(a.out, a.steps, batch=a.batch, ckpt_every=a.ckpt_every, resume=not a.no_resume, init_seed=rank,
              noise=0.0 if a.clean else 0.05, hook=not a.clean, on_step_end=(lambda tr, m: time.sleep(a.sleep)) if a.sleep else None)
    t.fit(until=a.until)
    if a.dump:
        path = a.dump.format(rank=rank)
        np.savez(path, **{f"model/{k}": v for k, v in t.model_state().items()},
                 **{f"ema/{k}": v for k, v in t.model_state(ema=True).items()}, step=np.int64(t.step))
        print(f"rank {rank} wrote {path} at step {t.step}", flush=True)


if __name__ == "__main__":
    main()
