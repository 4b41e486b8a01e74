"""Dropout whose masks a resumed run and gradient checkpointing repeat exactly.

``mindspore.nn.Dropout`` holds an ``ops.Dropout`` primitive whose random state is fixed when the cell is
built and advances with every call; ``mindspore.set_seed`` does not reset it, so after a resume (a new
process) the masks differ from an uninterrupted run. And under ``mindspore.recompute`` (gradient
checkpointing) the block runs twice, forward and again in the backward pass, and every ``ops.dropout``
draws a new mask the second time: the gradients then belong to another mask than the loss (on CPU
MindSpore 2.7 has no generator-based random kernel that ``recompute``'s RNG save/restore would cover).

:class:`ReseedableDropout` draws the two seeds of a stateless dropout kernel from Python's ``random``
(reseeded every step by :class:`~common.train.Trainer`), so the masks are a function of the step; a call
made without gradient recording (the forward pass of a recomputed block) keeps its seeds, and the next
call with recording (the recomputation in the backward pass) takes them back. :func:`use_reseedable_dropout`
swaps every ``nn.Dropout`` of a network for one (the same ``p`` and train/eval mode).
"""
from __future__ import annotations

import random

from mindspore import nn, ops
from mindspore.common.api import _pynative_executor
from mindspore.ops import operations as P
from mindspore.ops.function.random_func import _set_prim_op_user_data


def _recording() -> bool:
    return bool(_pynative_executor.enable_grad())


class ReseedableDropout(nn.Cell):
    """``nn.Dropout(p)`` with masks from seeds drawn from Python's ``random`` (see the module doc). No parameters.

    Args:
        p: drop probability.
        host_seeds: True (PyNative): the scheme above. False: plain ``ops.dropout`` (graph mode, where Python
            code in ``construct`` runs once at compile time; masks then follow MindSpore's op seeds).

    A forward pass without gradient recording in train mode outside ``recompute`` would leave its seeds for the
    next recorded call: run such passes in eval mode (no dropout), or call :meth:`reset` after them.
    """

    def __init__(self, p: float = 0.5, host_seeds: bool = True):
        super().__init__()
        self.p = float(p)
        self.host_seeds = bool(host_seeds)
        self._pending = []  # seeds of calls without gradient recording, newest last

    def reset(self) -> None:
        """Forget the seeds kept for recomputation."""
        self._pending.clear()

    def construct(self, x):
        if not self.training or self.p == 0.0:
            return x
        if not self.host_seeds:
            return ops.dropout(x, p=self.p, training=True)
        recording = _recording()
        if recording and self._pending:
            seeds = self._pending.pop()  # the recomputation of a checkpointed block: the forward pass's mask
        else:
            seeds = (random.randint(1, 2 ** 31 - 1), random.randint(1, 2 ** 31 - 1))
            if not recording:
                self._pending.append(seeds)
        op = _set_prim_op_user_data(P.Dropout(keep_prob=1.0 - self.p, Seed0=seeds[0], Seed1=seeds[1]),
                                    "random_cache", False)
        return op(x)[0]


def use_reseedable_dropout(net: nn.Cell, host_seeds: bool = True) -> int:
    """Replace every ``nn.Dropout`` below ``net`` (in place, keeping each one's train/eval mode) by a
    :class:`ReseedableDropout`; returns how many were replaced."""
    swaps = []
    for _, parent in net.cells_and_names():
        for name, child in parent.name_cells().items():
            if isinstance(child, nn.Dropout):
                swaps.append((parent, name, child))
    for parent, name, child in swaps:
        p = child.p if child.p is not None else 1.0 - child.keep_prob
        new = ReseedableDropout(p, host_seeds)
        new.set_train(child.training)
        parent.insert_child_to_cell(name, new)
        cells = getattr(parent, "cell_list", None)  # SequentialCell / CellList iterate this list
        if isinstance(cells, list):
            parent.cell_list = [new if c is child else c for c in cells]
    return len(swaps)
