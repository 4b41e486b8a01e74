"""Which op forms hold memory in MindSpore CPU graphs, and what the two attention head layouts cost.

    python scripts/bench_graph_ops.py            # both tables (about 2 minutes on 2 cores)
    python scripts/bench_graph_ops.py --memory   # only the memory table
    python scripts/bench_graph_ops.py --backward # the memory table of training graphs (forward + backward)

Memory: for each op form, a GRAPH_MODE cell applies it 16 times (each followed by a SiLU) to a float32
activation of shape (32, 1024, 320) = 42 MB, in its own process; printed is the peak RSS above the
process before the call, minus the same for a plain chain ``x * 1.01`` (the reference of the same run).
``--backward``: the same stacks compiled as ``ms.jit(ms.value_and_grad(sum of the output, 0, params))``,
as a training step compiles them (the chain keeps each SiLU's input for its gradient; what a form holds
beyond that shows as its extra).
Time: ``common.nn.multi_head_attention`` with ``heads_layout`` "transpose" and "slices", eagerly and under
``ms.jit``, at the attention shapes of the video UNets (best of 3 calls), with the largest difference
between the two outputs (they are bit-identical). The figures are quoted in docs/performance.md.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAPE = (32, 1024, 320)


def _forms():
    """name -> (description, f(x (32, 1024, 320), b (320,), w (320, 320))); imports MindSpore."""
    from mindspore import ops

    from common.nn import gelu as common_gelu
    from common.nn.attention import _graph_softmax

    ln = ops.LayerNorm(-1, -1, 1e-5)

    def chain(x, b, w):
        return x * 1.01

    def bcast_add(x, b, w):
        return x + b

    def bcast_mul(x, b, w):
        return x * x[:, :, :1]

    def center(x, b, w):
        return x - x.mean(-1, keep_dims=True)

    def broadcast_to(x, b, w):
        return x + ops.broadcast_to(b, x.shape)

    def bias_add(x, b, w):
        return ops.bias_add(x.reshape(-1, 320), b).reshape(x.shape)

    def gelu(x, b, w):
        return ops.gelu(x, approximate="none")

    def gelu_erf(x, b, w):
        return 0.5 * x * (1.0 + ops.erf(x * 0.7071067811865476))

    def transpose(x, b, w):
        return ops.transpose(x.reshape(32, 32, 32, 320), (0, 2, 1, 3)).reshape(x.shape)

    def transpose_2d(x, b, w):
        return ops.transpose(x.reshape(32768, 320), (1, 0)).reshape(x.shape)

    def head_slices(x, b, w):
        return ops.concat([t * 1.0 for t in ops.split(x, 64, -1)], -1)

    def matmul(x, b, w):
        return ops.matmul(x.reshape(-1, 320), w).reshape(x.shape)

    def softmax(x, b, w):
        return ops.softmax(x, -1)

    def softmax_common(x, b, w):
        return _graph_softmax(x)

    def gelu_common(x, b, w):
        return common_gelu(x)

    def layer_norm(x, b, w):
        return ln(x, b + 1.0, b)[0]

    return {
        "chain": ("x * 1.01 (reference)", chain),
        "bcast_add": ("implicit broadcast x + b", bcast_add),
        "bcast_mul": ("implicit broadcast x * x[..., :1]", bcast_mul),
        "center": ("x - x.mean(-1, keep_dims=True)", center),
        "broadcast_to": ("x + ops.broadcast_to(b, x.shape)", broadcast_to),
        "bias_add": ("ops.bias_add", bias_add),
        "gelu": ("ops.gelu (exact)", gelu),
        "gelu_erf": ("0.5*x*(1+erf(x/sqrt 2))", gelu_erf),
        "transpose": ("Transpose (0, 2, 1, 3)", transpose),
        "transpose_2d": ("Transpose of a 2-D view", transpose_2d),
        "head_slices": ("split into 5 heads + concat", head_slices),
        "matmul": ("MatMul", matmul),
        "softmax": ("Softmax", softmax),
        "softmax_common": ("Softmax, written backward (common.nn, graphs)", softmax_common),
        "gelu_common": ("common.nn.gelu (graphs: erf, written backward)", gelu_common),
        "layer_norm": ("LayerNorm", layer_norm),
    }


FORM_NAMES = ("chain", "bcast_add", "bcast_mul", "center", "broadcast_to", "bias_add", "gelu", "gelu_erf",
              "transpose", "transpose_2d", "head_slices", "matmul", "softmax", "layer_norm",
              "softmax_common", "gelu_common")


def _child(form: str, backward: bool = False) -> None:
    import mindspore as ms
    import numpy as np
    from mindspore import Parameter, Tensor, nn, ops

    ms.set_context(mode=ms.GRAPH_MODE)
    fn = _forms()[form][1]

    class Layer(nn.Cell):
        def __init__(self):
            super().__init__()
            self.b = Parameter(Tensor(np.zeros(320, np.float32)), name="b")
            self.w = Parameter(Tensor(np.eye(320, dtype=np.float32)), name="w")

        def construct(self, x):
            return ops.silu(fn(x, self.b, self.w))

    class Stack(nn.Cell):
        def __init__(self):
            super().__init__()
            self.layers = nn.CellList([Layer() for _ in range(16)])

        def construct(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

    x = Tensor(np.random.default_rng(0).random(SHAPE, dtype=np.float32))
    stack = Stack()
    if backward:
        params = stack.trainable_params()

        def total(x):
            return stack(x).sum()

        step = ms.jit(ms.value_and_grad(total, 0, params))  # d/dx: through every node
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    if backward:
        loss, (gx, gp) = step(x)
        loss.asnumpy(), gx.asnumpy(), [g.asnumpy() for g in gp]
    else:
        stack(x).asnumpy()
    print(json.dumps({"extra_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20 - before}))


def memory_table(backward: bool = False) -> None:
    res = {}
    for form in FORM_NAMES:
        cmd = [sys.executable, __file__, "--child", form] + (["--backward"] if backward else [])
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
        res[form] = json.loads(lines[-1])["extra_gib"] if lines else float("nan")
    ref = res["chain"]
    what = "forward + backward (ms.jit of value_and_grad)" if backward else "forward"
    print(f"16 graph nodes of one op on a {SHAPE} float32 activation (42 MB), {what}, "
          "extra peak RSS over the chain (chain row: its own peak):")
    print(f"| {'op form':42s} | extra GiB | per node / output |")
    print(f"|{'-' * 44}|-----------|-------------------|")
    descs = {"chain": "x * 1.01 (reference)"}
    descs.update({k: v[0] for k, v in _forms().items()})
    for form in FORM_NAMES:
        desc = descs[form]
        extra = res[form] - ref if form != "chain" else res[form]
        per = extra / 16 / (4 * 32 * 1024 * 320 / 2 ** 30) if form != "chain" else float("nan")
        print(f"| {desc:42s} | {extra:9.2f} | {per:17.1f} |")


def time_table() -> None:
    import mindspore as ms
    import numpy as np

    from common.nn import multi_head_attention

    print("\nmulti_head_attention, best of 3 calls (s):")
    print("| (B, Lq, Lk, C, heads) | eager transpose | eager slices | jit transpose | jit slices | max diff |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for b, lq, lk, c, h in [(32, 1024, 1024, 320, 5), (2048, 16, 16, 320, 5), (32, 1024, 77, 320, 5),
                            (32, 256, 256, 640, 10), (32, 64, 64, 1280, 20)]:
        q, k, v = (ms.Tensor(rng.standard_normal((b, n, c), dtype=np.float32)) for n in (lq, lk, lk))
        row, outs = [], []
        for jit in (False, True):
            for layout in ("transpose", "slices"):
                fn = ms.jit(multi_head_attention) if jit else multi_head_attention
                outs.append(fn(q, k, v, h, heads_layout=layout).asnumpy())
                best = float("inf")
                for _ in range(3):
                    t = time.perf_counter()
                    fn(q, k, v, h, heads_layout=layout).asnumpy()
                    best = min(best, time.perf_counter() - t)
                row.append(best)
        diff = max(float(np.abs(o - outs[0]).max()) for o in outs)
        print(f"| {(b, lq, lk, c, h)} | " + " | ".join(f"{t:.3f}" for t in row) + f" | {diff:.1e} |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--memory", action="store_true", help="only the memory table")
    p.add_argument("--time", action="store_true", help="only the attention timing table")
    p.add_argument("--backward", action="store_true",
                   help="only the memory table of forward + backward graphs (as a training step compiles them)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        _child(a.child, a.backward)
        return 0
    if a.backward:
        memory_table(backward=True)
        return 0
    if not a.time:
        memory_table()
    if not a.memory:
        time_table()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
