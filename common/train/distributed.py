"""Data-parallel helpers over ``mindspore.communication`` (CPU: mccl, GPU: nccl, Ascend: hccl).

Launch with ``msrun --worker_num=N --local_worker_num=N --master_port=P python train.py``; the
script calls :func:`init_distributed` (which calls ``mindspore.communication.init()`` when
msrun's environment is present, or, on Ascend, a rank table's: ``RANK_TABLE_FILE`` with ``RANK_SIZE`` > 1).
Without it everything here is a no-op for one process.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

from mindspore import Parameter, Tensor, ops
from mindspore.communication import GlobalComm, get_group_size, get_rank, init


def is_distributed() -> bool:
    """True when ``mindspore.communication`` is initialised with more than one rank."""
    return bool(GlobalComm.INITED) and get_group_size() > 1


def rank_and_world() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` when communication is not initialised."""
    if not GlobalComm.INITED:
        return 0, 1
    return get_rank(), get_group_size()


def init_distributed() -> tuple[int, int]:
    """Initialise communication when launched by msrun (``MS_WORKER_NUM`` > 1 and ``MS_ROLE`` set) or by a rank
    table (``RANK_TABLE_FILE`` and ``RANK_SIZE`` > 1, one process per device with ``RANK_ID`` / ``DEVICE_ID``, Ascend
    hccl); return (rank, world)."""
    if GlobalComm.INITED:
        return rank_and_world()
    if int(os.environ.get("MS_WORKER_NUM", "1")) > 1 and "MS_ROLE" in os.environ:
        init()
    elif os.environ.get("RANK_TABLE_FILE") and int(os.environ.get("RANK_SIZE", "1")) > 1:
        import mindspore as ms

        if os.environ.get("DEVICE_ID"):
            ms.set_context(device_id=int(os.environ["DEVICE_ID"]))
        init("hccl")
    return rank_and_world()


_allreduce_sum = None


def allreduce_mean(tensors: Sequence[Tensor]) -> tuple[Tensor, ...]:
    """Mean over ranks of every tensor (AllReduce sum / world size); identity for one process."""
    global _allreduce_sum
    if not is_distributed():
        return tuple(tensors)
    if _allreduce_sum is None:
        _allreduce_sum = ops.AllReduce(ops.ReduceOp.SUM)
    n = get_group_size()
    return tuple(_allreduce_sum(t) / n for t in tensors)


def broadcast_parameters(params: Sequence[Parameter], root: int = 0) -> None:
    """Overwrite every parameter with rank ``root``'s value (no-op for one process)."""
    if not is_distributed() or not params:
        return
    bcast = ops.Broadcast(root)
    for p in params:  # one at a time: mccl (CPU) fills only the first tensor of a tuple
        p.set_data(bcast((p.value(),))[0])


def barrier() -> None:
    """Wait until every rank gets here (a tiny AllReduce); no-op for one process."""
    if is_distributed():
        import numpy as np

        allreduce_mean([Tensor(np.zeros((1,), np.float32))])[0].asnumpy()
