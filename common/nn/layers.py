"""Small building blocks with PyTorch parameter names: linear, convolutions, feed-forwards.

Conventions: every layer stores ``weight`` (and ``bias``) with the PyTorch shape, so a state
dict converted from PyTorch loads with identity key names.
"""
from __future__ import annotations

import math
import numbers

import mindspore as ms
from mindspore import Parameter, nn, ops
from mindspore.common.initializer import HeUniform, Uniform, initializer


def _probe():
    return 0


@ops.constexpr(check=False)
def _is_none(obj) -> bool:
    return obj is None


def in_graph() -> bool:
    """True while a graph is compiled (GRAPH_MODE or ``ms.jit``), False when run eagerly: a function
    handed to a constexpr arrives as None in a graph (what MindSpore's own ``_run_in_jit`` tests).
    For op forms that differ between graphs and eager runs with equal numbers (docs/performance.md)."""
    return _is_none(_probe)


_SQRT_HALF = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327


class _ErfGELU(nn.Cell):
    """Exact GELU for graphs: ``0.5 * x * (1 + erf(x / sqrt(2)))``, with its derivative written out as the
    backward, ``Phi(x) + x * phi(x)``. In a CPU training graph the automatic backward of the erf form holds
    about 3 outputs' worth of buffers per node, this one 1 (``python scripts/bench_graph_ops.py --backward``)."""

    def construct(self, x):
        return 0.5 * x * (1.0 + ops.erf(x * _SQRT_HALF))

    def bprop(self, x, out, dout):
        cdf = 0.5 * (1.0 + ops.erf(x * _SQRT_HALF))
        pdf = ops.exp(-0.5 * x * x) * _INV_SQRT_2PI
        return (dout * (cdf + x * pdf),)


_erf_gelu = _ErfGELU()


def gelu(x, approximate: str = "none"):
    """``torch.nn.functional.gelu``. Inside graphs the exact form is written out as
    ``0.5 * x * (1 + erf(x / sqrt(2)))`` with a hand-written backward: a CPU graph keeps ~4x the output
    of every ``ops.gelu`` node alive (docs/performance.md); eagerly ``ops.gelu`` is one kernel instead of five."""
    if approximate == "none" and in_graph():
        return _erf_gelu(x)
    return ops.gelu(x, approximate=approximate)


def linear(in_features: int, out_features: int, bias: bool = True) -> nn.Dense:
    """``torch.nn.Linear``: weight (out, in), bias (out,); PyTorch's default init."""
    bound = 1.0 / math.sqrt(in_features)
    return nn.Dense(in_features, out_features, has_bias=bias,
                    weight_init=HeUniform(math.sqrt(5)), bias_init=Uniform(bound) if bias else "zeros")


def conv2d(in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, bias: bool = True) -> nn.Conv2d:
    """``torch.nn.Conv2d`` with symmetric zero padding ``padding`` (int or (ph, pw))."""
    if isinstance(padding, (tuple, list)):
        padding = (padding[0], padding[0], padding[1], padding[1])
    fan_in = in_channels * (kernel_size * kernel_size if isinstance(kernel_size, int)
                            else kernel_size[0] * kernel_size[1])
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, pad_mode="pad", padding=padding,
                     has_bias=bias, weight_init=HeUniform(math.sqrt(5)),
                     bias_init=Uniform(1.0 / math.sqrt(fan_in)) if bias else "zeros")


class TemporalConv(nn.Cell):
    """``torch.nn.Conv3d`` with kernel ``(k, 1, 1)`` and padding ``(k // 2, 0, 0)`` on (B, C, T, H, W).

    The weight keeps the PyTorch Conv3d shape ``(out, in, k, 1, 1)``; the convolution runs as a
    Conv2d with kernel ``(k, 1)`` over ``(B, C, T, H*W)``, which gives the same numbers and is
    about twice as fast as ``nn.Conv3d`` on CPU (see ``docs/performance.md``).

    Args:
        in_channels / out_channels: channel counts.
        kernel_size: temporal kernel k (odd).
        bias: learnable bias.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, bias: bool = True):
        super().__init__()
        if isinstance(kernel_size, (tuple, list)):
            if tuple(kernel_size[1:]) != (1, 1):
                raise ValueError(f"TemporalConv: kernel {kernel_size} is not of the form (k, 1, 1)")
            kernel_size = kernel_size[0]
        self.out_channels = out_channels
        self.k = kernel_size
        fan_in = in_channels * kernel_size
        self.weight = Parameter(initializer(HeUniform(math.sqrt(5)), (out_channels, in_channels, kernel_size, 1, 1),
                                            ms.float32), name="weight")
        self.has_bias = bias
        if bias:
            self.bias = Parameter(initializer(Uniform(1.0 / math.sqrt(fan_in)), (out_channels,), ms.float32),
                                  name="bias")
        p = kernel_size // 2
        self.conv = ops.Conv2D(out_channels, (kernel_size, 1), pad_mode="pad", pad=(p, p, 0, 0))

    def construct(self, x):
        b, c, t, h, w = x.shape
        y = self.conv(x.reshape(b, c, t, h * w), self.weight.reshape(self.out_channels, c, self.k, 1))
        if self.has_bias:
            y = ops.bias_add(y, self.bias)  # not a broadcast add: in graph mode on CPU those keep extra buffers
        return y.reshape(b, self.out_channels, t, h, w)


class GELU(nn.Cell):
    """``torch.nn.GELU``: exact (erf) by default, ``approximate='tanh'`` for the tanh form."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        self.approximate = approximate

    def construct(self, x):
        return gelu(x, self.approximate)


class GEGLU(nn.Cell):
    """GEGLU (Shazeer 2020): ``proj`` to 2*dim_out, split into (x, gate), ``x * gelu(gate)`` (exact gelu)."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = linear(dim_in, dim_out * 2)

    def construct(self, x):
        h, gate = ops.chunk(self.proj(x), 2, axis=-1)
        return h * gelu(gate)


class GELUProj(nn.Cell):
    """``Linear`` then GELU, keyed ``proj`` (diffusers' ``GELU`` activation module)."""

    def __init__(self, dim_in: int, dim_out: int, approximate: str = "none"):
        super().__init__()
        self.proj = linear(dim_in, dim_out)
        self.approximate = approximate

    def construct(self, x):
        return gelu(self.proj(x), self.approximate)


class FeedForward(nn.Cell):
    """Transformer feed-forward keyed as LDM/diffusers: ``net.0`` (GEGLU or GELU projection), ``net.2``.

    Args:
        dim: input width.
        dim_out: output width (default ``dim``).
        mult: hidden width = ``mult * dim``.
        glu: GEGLU (True) or Linear + GELU (False).
        approximate: GELU form for the non-GLU projection ("none" or "tanh").
        dropout: dropout probability (only active in training).
        inner_dim: hidden width overriding ``mult * dim``.
        chunk_size: run the tokens through the feed-forward this many at a time (None = all at
            once; see :func:`set_feed_forward_chunk_size`). The hidden activation is the largest
            tensor of a transformer block (GEGLU: 8x the input), so this bounds memory at large
            sizes; the numbers are the whole batch's to float32 rounding (each token is computed alone;
            the matmul kernels only block the rows differently).
    """

    def __init__(self, dim: int, dim_out: int | None = None, mult: int = 4, glu: bool = False,
                 approximate: str = "none", dropout: float = 0.0, inner_dim: int | None = None,
                 chunk_size: int | None = None):
        super().__init__()
        inner = inner_dim if inner_dim is not None else int(dim * mult)
        dim_out = dim_out or dim
        first = GEGLU(dim, inner) if glu else GELUProj(dim, inner, approximate)
        self.net = nn.SequentialCell([first, nn.Dropout(p=dropout), linear(inner, dim_out)])
        self.chunk_size = _check_chunk(chunk_size)

    def construct(self, x):
        # x (..., dim) -> (..., dim_out); every token (row) is independent
        n = self.chunk_size
        if n is None:
            return self.net(x)
        lead = x.shape[:-1]
        rows = x.reshape(-1, x.shape[-1])  # (N, dim): all leading axes are tokens
        total = rows.shape[0]
        if n >= total:
            return self.net(x)
        outs = []
        for start in range(0, total, n):
            r = rows[start:min(start + n, total)]
            if outs:  # one chunk after the other (a graph would otherwise run them all at once)
                r = ops.depend(r, outs[-1])
            outs.append(self.net(r))
        y = ops.concat(outs, axis=0)  # (N, dim_out)
        return y.reshape(lead + (y.shape[-1],))


def _check_chunk(chunk_size):
    if chunk_size is None:
        return None
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral) or chunk_size <= 0:
        raise ValueError(f"feed-forward chunk_size must be a positive int or None, got {chunk_size!r}")
    return int(chunk_size)  # a Python int (NumPy integers too): a graph constant


def set_feed_forward_chunk_size(cell: nn.Cell, chunk_size: int | None) -> int:
    """Set ``chunk_size`` of every :class:`FeedForward` inside ``cell`` (diffusers'
    ``enable_forward_chunking``, over all tokens rather than one axis, so the temporal blocks' (B*H*W, T)
    sequences are chunked too). None turns chunking off. Set it before a graph is compiled.

    Returns:
        the number of feed-forwards changed.
    """
    chunk_size = _check_chunk(chunk_size)
    count = 0
    for _, sub in cell.cells_and_names():
        if isinstance(sub, FeedForward):
            sub.chunk_size = chunk_size
            count += 1
    return count
