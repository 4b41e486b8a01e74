"""Deterministic, resumable data order: a seeded per-epoch permutation, strided over ranks.

Epoch ``e`` visits ``np.random.default_rng([seed, e]).permutation(n)`` (or ``arange(n)`` without
shuffling) in global batches of ``batch_size * world_size`` indices; rank ``r`` takes every
``world_size``-th index of a global batch starting at ``r``. So one process with
``batch_size * world_size`` sees exactly the union of what the ranks see. The incomplete last
global batch of an epoch is dropped. The position (epoch, batch) is the whole state.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


class EpochSampler:
    """Index batches for one rank; infinite (epochs follow each other).

    Args:
        num_samples: dataset length n.
        batch_size: indices per rank and batch.
        seed: permutation seed. Default 0.
        shuffle: permute every epoch (True) or keep 0..n-1 order. Default True.
        rank / world_size: this process's data-parallel rank and the number of ranks.
            Default 0 / 1.
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int = 0, shuffle: bool = True,
                 rank: int = 0, world_size: int = 1):
        if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"EpochSampler: bad batch_size={batch_size}, rank={rank}, world_size={world_size}")
        if num_samples < batch_size * world_size:
            raise ValueError(f"EpochSampler: {num_samples} samples cannot fill one global batch of "
                             f"batch_size {batch_size} x world_size {world_size}")
        self.num_samples, self.batch_size, self.seed, self.shuffle = num_samples, batch_size, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.batches_per_epoch = num_samples // (batch_size * world_size)
        self.epoch, self.batch = 0, 0  # position of the next batch
        self._perm_epoch, self._perm = -1, None

    def _order(self) -> np.ndarray:
        if self._perm_epoch != self.epoch:
            self._perm = (np.random.default_rng([self.seed, self.epoch]).permutation(self.num_samples)
                          if self.shuffle else np.arange(self.num_samples))
            self._perm_epoch = self.epoch
        return self._perm

    def __iter__(self):
        return self

    def __next__(self) -> np.ndarray:
        g = self.batch_size * self.world_size
        idx = self._order()[self.batch * g:(self.batch + 1) * g][self.rank::self.world_size]
        self.batch += 1
        if self.batch == self.batches_per_epoch:
            self.epoch, self.batch = self.epoch + 1, 0
        return idx

    def state_dict(self) -> dict:
        """``{"epoch", "batch", "seed", "num_samples", "batch_size", "world_size", "shuffle"}``."""
        return {"epoch": self.epoch, "batch": self.batch, "seed": self.seed, "num_samples": self.num_samples,
                "batch_size": self.batch_size, "world_size": self.world_size, "shuffle": self.shuffle}

    def load_state_dict(self, state: dict) -> None:
        """Restore the position; the data layout (n, batch size, ranks, seed, shuffle) must match."""
        for k in ("seed", "num_samples", "batch_size", "world_size", "shuffle"):
            if state[k] != getattr(self, k):
                raise ValueError(f"EpochSampler.load_state_dict: {k}={state[k]!r} in the checkpoint, "
                                 f"{getattr(self, k)!r} now; the data order would differ")
        self.epoch, self.batch = int(state["epoch"]), int(state["batch"])


def default_collate(items: Sequence) -> tuple[np.ndarray, ...]:
    """Stack a list of samples (each a tuple of arrays, or one array) field by field."""
    first = items[0]
    if isinstance(first, (tuple, list)):
        return tuple(np.stack([np.asarray(it[i]) for it in items]) for i in range(len(first)))
    return (np.stack([np.asarray(it) for it in items]),)


class DataLoader:
    """Infinite batch iterator over an indexable dataset, with a saved position.

    Args:
        dataset: ``len(dataset)`` and ``dataset[i] -> sample`` (tuple of arrays or one array).
        batch_size: samples per rank and micro-batch.
        seed / shuffle: see :class:`EpochSampler`. Default 0 / True.
        rank / world_size: None (default) = from ``mindspore.communication`` when it is
            initialised, else 0 / 1.
        collate_fn: list of samples -> tuple of batch arrays. Default :func:`default_collate`.

    ``next(loader)`` returns a tuple of arrays, the positional inputs of the loss.
    """

    def __init__(self, dataset, batch_size: int, seed: int = 0, shuffle: bool = True, rank: int | None = None,
                 world_size: int | None = None, collate_fn: Callable = default_collate):
        if rank is None or world_size is None:
            from .distributed import rank_and_world

            r, w = rank_and_world()
            rank = r if rank is None else rank
            world_size = w if world_size is None else world_size
        self.dataset, self.collate_fn = dataset, collate_fn
        self.sampler = EpochSampler(len(dataset), batch_size, seed, shuffle, rank, world_size)

    def __iter__(self):
        return self

    def __next__(self):
        return self.collate_fn([self.dataset[int(i)] for i in next(self.sampler)])

    def state_dict(self) -> dict:
        """The sampler position (see :meth:`EpochSampler.state_dict`)."""
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        """Restore the sampler position."""
        self.sampler.load_state_dict(state)
