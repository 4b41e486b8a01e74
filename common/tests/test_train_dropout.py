"""common.train.ReseedableDropout: masks follow the per-step reseed and survive gradient checkpointing."""
import random

import mindspore as ms
import numpy as np
from mindspore import nn

from common.train import ReseedableDropout, use_reseedable_dropout


class _Block(nn.Cell):
    def __init__(self):
        super().__init__()
        self.seq = nn.SequentialCell([nn.Dense(8, 8), nn.Dropout(p=0.5)])
        self.drop = nn.Dropout(p=0.3)

    def construct(self, x):
        return self.drop(self.seq(x))


class _Net(nn.Cell):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.recompute = _Block(), _Block(), False

    def construct(self, x):
        for block in (self.a, self.b):
            x = ms.recompute(block, x) if self.recompute else block(x)
        return (x * x).sum()


def test_swap_keeps_mode_and_reaches_sequential_cells():
    net = _Net()
    net.set_train(True)
    assert use_reseedable_dropout(net) == 4
    assert all(isinstance(c, ReseedableDropout) for c in (net.a.seq[1], net.a.drop, net.b.seq.cell_list[1]))
    assert net.a.drop.training and net.a.seq[1].p == 0.5
    net.set_train(False)
    x = ms.Tensor(np.ones((2, 8), np.float32))
    np.testing.assert_array_equal(net.a.drop(x).asnumpy(), x.asnumpy())  # eval: identity


def test_masks_follow_the_seed_and_recompute_reuses_them():
    ms.set_seed(0)
    net = _Net()
    use_reseedable_dropout(net)
    net.set_train(True)
    x = ms.Tensor(np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32))
    grad = ms.value_and_grad(net, None, net.trainable_params())
    runs = []
    for recompute, seed in ((False, 3), (True, 3), (False, 4)):
        net.recompute = recompute
        random.seed(seed)
        loss, grads = grad(x)
        runs.append((float(loss.asnumpy()), [g.asnumpy() for g in grads]))
    assert runs[0][0] == runs[1][0] != runs[2][0]
    for a, b in zip(runs[0][1], runs[1][1]):  # same masks in the recomputation: the same gradients
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
