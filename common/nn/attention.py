"""The one attention of this repository.

``scaled_dot_product_attention`` is a plain function used by every model; ``Attention`` is the
LDM / diffusers attention module (``to_q``, ``to_k``, ``to_v``, ``to_out.0``) built on it.

Options, per model instance: every cell that attends (:class:`Attention`, the VAE's ``AttnBlock``, the CLIP
towers' attentions, ...) is an :class:`AttentionOptions` and holds ``attn_backend``, ``chunk_size`` and
``heads_layout`` as plain Python attributes, which graph mode compiles as constants. :func:`set_attention`
sets them on every such cell inside a model (as :func:`common.nn.set_feed_forward_chunk_size` does for the
feed-forwards), so two models in one process keep their own settings; no global is mutated.

Backends (``attn_backend``):

* ``"math"`` (default, every device): ``BatchMatMul(transpose_b)`` -> softmax in float32 ->
  ``BatchMatMul``. With ``chunk_size`` the queries are processed ``chunk_size`` at a time, so the
  score matrix never exceeds ``(B, H, chunk_size, Lk)``: this bounds memory for long sequences
  (a 576x1024 frame has 9216 latent tokens). Chunks are static slices, so the path works in
  graph mode too.
* ``"flash"`` (Ascend only): ``ops.flash_attention_score``. Not used unless selected.

Heads (``heads_layout``): :func:`multi_head_attention` either reshapes ``(B, L, H*D)`` to
``(B, H, L, D)`` with transposes (``"transpose"``) or splits the last axis into H slices and
attends head by head (``"slices"``). Both give bit-identical numbers. ``"auto"`` (default) takes
slices in graphs (GRAPH_MODE or ``ms.jit``) and transposes when run eagerly: in MindSpore 2.7 graph mode on CPU every
Transpose node keeps about twice its output's size alive for the life of the graph (16 transposes
of a 42 MB activation hold 1.28 GiB; the same data as slices + concat 0.03 GiB), and there the
slices are also faster; eagerly, transposes are faster for many heads (fewer kernel launches).
Figures: ``python scripts/bench_graph_ops.py``.
"""
from __future__ import annotations

import math
import numbers

import mindspore as ms
from mindspore import nn, ops

from .layers import in_graph, linear

_BACKENDS = ("math", "flash")
_LAYOUTS = ("auto", "transpose", "slices")


def _check_options(backend: str, chunk_size, heads_layout: str):
    """Validated options; ``chunk_size`` as a Python int (NumPy integers too) or None: graph constants."""
    if backend not in _BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}: expected 'math' or 'flash'")
    if chunk_size is not None:
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral) or chunk_size <= 0:
            raise ValueError(f"attention chunk_size must be a positive int or None, got {chunk_size!r}")
        chunk_size = int(chunk_size)
    if heads_layout not in _LAYOUTS:
        raise ValueError(f"unknown heads_layout {heads_layout!r}: expected one of {', '.join(_LAYOUTS)}")
    return backend, chunk_size, heads_layout


class AttentionOptions:
    """Mixin of every cell that attends: its options are plain attributes (graph constants).

    ``attn_backend`` (``"math"`` / ``"flash"``), ``chunk_size`` (query chunk of the math path, None = all
    queries at once), ``heads_layout`` (``"auto"`` / ``"transpose"`` / ``"slices"``). Set them for a whole
    model with :func:`set_attention`; a cell passes them to :func:`multi_head_attention` /
    :func:`scaled_dot_product_attention` through :meth:`attention_kwargs`.
    """

    attn_backend: str = "math"
    chunk_size: int | None = None
    heads_layout: str = "auto"

    def set_attention_options(self, backend: str = "math", chunk_size: int | None = None,
                              heads_layout: str = "auto") -> None:
        """Set this cell's options (validated)."""
        self.attn_backend, self.chunk_size, self.heads_layout = _check_options(backend, chunk_size, heads_layout)


def set_attention(cell: nn.Cell, backend: str = "math", chunk_size: int | None = None,
                  heads_layout: str = "auto") -> int:
    """Set the attention options of every :class:`AttentionOptions` cell inside ``cell`` (itself included).

    Call it on the model you built, before it runs (or is compiled): the options are Python constants of
    each cell, so another model in the same process keeps its own.

    Args:
        cell: the model (or any cell).
        backend: ``"math"`` (portable, default) or ``"flash"`` (Ascend fused kernel).
        chunk_size: query chunk of the math path (None = no chunking); bounds the score matrices of long
            sequences.
        heads_layout: how :func:`multi_head_attention` separates the heads: ``"auto"`` (slices in graph
            mode, transposes in PyNative), ``"transpose"`` or ``"slices"`` (module docstring).
    Returns:
        the number of attention cells set.
    """
    options = _check_options(backend, chunk_size, heads_layout)
    n = 0
    for _, sub in cell.cells_and_names():
        if isinstance(sub, AttentionOptions):
            sub.set_attention_options(*options)
            n += 1
    return n


_bmm_t = ops.BatchMatMul(transpose_b=True)
_bmm = ops.BatchMatMul()


class _GraphSoftmax(nn.Cell):
    """Softmax over the last axis with its backward written out, ``y * (g - sum(g * y))``: in a CPU
    training graph the automatic backward of ``ops.softmax`` holds about 4 score matrices' worth of
    buffers per attention, this one none beyond the saved output (``scripts/bench_graph_ops.py --backward``).
    Used inside graphs only; eagerly ``ops.softmax`` keeps less (a custom backward also keeps the input)."""

    def construct(self, x):
        return ops.softmax(x, axis=-1)

    def bprop(self, x, out, dout):
        s = (dout * out).sum(-1, keepdims=True)
        return (out * (dout - ops.broadcast_to(s, out.shape)),)


_graph_softmax = _GraphSoftmax()


def _math_attention(q, k, v, mask, scale):
    # q (..., Lq, D), k (..., Lk, D), v (..., Lk, Dv)
    # scale q (Lq x D) rather than the scores (Lq x Lk): one score-sized temporary fewer
    s = _bmm_t(q * scale, k)  # (..., Lq, Lk)
    if s.dtype != ms.float32:
        s = s.astype(ms.float32)
    if mask is not None:
        if mask.dtype == ms.bool_:
            s = ops.masked_fill(s, ops.logical_not(mask), float("-inf"))
        else:
            s = s + mask.astype(ms.float32)
    p = _graph_softmax(s) if in_graph() else ops.softmax(s, axis=-1)
    if p.dtype != v.dtype:
        p = p.astype(v.dtype)
    return _bmm(p, v)  # (..., Lq, Dv)


def scaled_dot_product_attention(q, k, v, mask=None, scale: float | None = None, chunk_size: int | None = None,
                                 backend: str = "math"):
    """softmax(q k^T * scale + mask) v, with the softmax in float32.

    Args:
        q: (..., Lq, D) queries (any number of leading batch/head axes, e.g. (B, H, Lq, D)).
        k: (..., Lk, D) keys.
        v: (..., Lk, Dv) values.
        mask: None, a bool tensor (True = attend) or an additive float tensor, broadcastable to
            (..., Lq, Lk).
        scale: score scale, default ``D ** -0.5``.
        chunk_size: process the queries this many at a time (memory bound for long sequences; None = all).
        backend: ``"math"`` or ``"flash"`` (Ascend).
    Returns:
        (..., Lq, Dv) in the dtype of ``v``.
    """
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    if backend == "flash":
        return _flash_attention(q, k, v, mask, scale)
    chunk = chunk_size
    lq = q.shape[-2]
    if chunk is None or chunk >= lq:
        return _math_attention(q, k, v, mask, scale)
    outs = []
    for start in range(0, lq, chunk):
        stop = min(start + chunk, lq)
        m = mask
        if mask is not None and mask.shape[-2] != 1:
            m = mask[..., start:stop, :]
        qc = q[..., start:stop, :]
        if outs:  # run the chunks one after another: in graph mode the executor would otherwise
            qc = ops.depend(qc, outs[-1])  # compute all score matrices first and keep them all alive
        outs.append(_math_attention(qc, k, v, m, scale))
    return ops.concat(outs, axis=-2)


def _flash_attention(q, k, v, mask, scale):  # pragma: no cover - Ascend only
    if q.ndim != 4:
        raise ValueError("flash attention expects (B, H, L, D) tensors")
    heads = q.shape[1]
    attn_mask = None
    if mask is not None:
        if mask.dtype != ms.bool_:
            raise ValueError("flash attention takes only boolean masks")
        attn_mask = ops.logical_not(mask).astype(ms.uint8)
    out = ops.flash_attention_score(q.astype(ms.float16), k.astype(ms.float16), v.astype(ms.float16), heads,
                                    attn_mask=attn_mask, scalar_value=scale, input_layout="BNSD")
    return out.astype(v.dtype)


def split_heads(x, heads: int):
    """(B, L, H*D) -> (B, H, L, D)."""
    b, l, c = x.shape
    return x.reshape(b, l, heads, c // heads).transpose(0, 2, 1, 3)


def merge_heads(x):
    """(B, H, L, D) -> (B, L, H*D)."""
    b, h, l, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, l, h * d)


def _head_slices(backend: str, layout: str) -> bool:
    if backend == "flash" or layout == "transpose":
        return False
    if layout == "slices":
        return True
    return in_graph()


def _head_mask(mask, h: int):
    """The part for head ``h`` of a mask broadcastable (right-aligned) to (B, H, Lq, Lk)."""
    if mask is None or mask.ndim < 3:
        return mask  # (Lk,) or (Lq, Lk): the same for every head
    axis = mask.ndim - 3  # the heads axis: 1 of (B, H, Lq, Lk), 0 of (H, Lq, Lk)
    i = h if mask.shape[axis] != 1 else 0
    return mask[:, i] if axis == 1 else mask[i]


def multi_head_attention(q, k, v, heads: int, mask=None, scale: float | None = None, chunk_size: int | None = None,
                         backend: str = "math", heads_layout: str = "auto"):
    """Attention of packed heads: q (B, Lq, H*D), k (B, Lk, H*D), v (B, Lk, H*Dv) -> (B, Lq, H*Dv).

    Head h uses channels ``h*D:(h+1)*D`` (the LDM / diffusers / open_clip packing). ``mask`` as for
    :func:`scaled_dot_product_attention` with the heads on axis 1 when it has 4 axes. The heads are
    separated by transposes or by slices (``heads_layout``, module docstring); same numbers. ``chunk_size``
    and ``backend`` as for :func:`scaled_dot_product_attention`.
    """
    if not _head_slices(backend, heads_layout):
        out = scaled_dot_product_attention(split_heads(q, heads), split_heads(k, heads), split_heads(v, heads),
                                           mask=mask, scale=scale, chunk_size=chunk_size, backend=backend)
        return merge_heads(out)
    qs = ops.split(q, q.shape[-1] // heads, -1)  # H x (B, Lq, D)
    ks = ops.split(k, k.shape[-1] // heads, -1)
    vs = ops.split(v, v.shape[-1] // heads, -1)
    outs = []
    for h in range(heads):
        qh = qs[h] if not outs else ops.depend(qs[h], outs[-1])  # one head after another (one score matrix alive)
        outs.append(scaled_dot_product_attention(qh, ks[h], vs[h], mask=_head_mask(mask, h), scale=scale,
                                                 chunk_size=chunk_size, backend=backend))
    return ops.concat(outs, axis=-1)  # (B, Lq, H*Dv)


class Attention(AttentionOptions, nn.Cell):
    """Multi-head self/cross attention with LDM/diffusers parameter names.

    ``to_q`` (query_dim -> heads*dim_head), ``to_k`` / ``to_v`` (context_dim -> heads*dim_head),
    ``to_out.0`` (heads*dim_head -> out_dim, with bias), ``to_out.1`` dropout.

    Args:
        query_dim: width of the queries' input.
        context_dim: width of the context (None = self-attention).
        heads: number of heads.
        dim_head: width of each head.
        dropout: output dropout (training only).
        qkv_bias: bias on the q/k/v projections (LDM: False).
        out_dim: output width (default ``query_dim``).
        chunk_size: query chunk for the memory-bounded path (None = none; see :func:`set_attention`).
    """

    def __init__(self, query_dim: int, context_dim: int | None = None, heads: int = 8, dim_head: int = 64,
                 dropout: float = 0.0, qkv_bias: bool = False, out_dim: int | None = None,
                 chunk_size: int | None = None):
        super().__init__()
        inner = heads * dim_head
        context_dim = context_dim if context_dim is not None else query_dim
        self.heads = heads
        self.dim_head = dim_head
        self.scale = dim_head ** -0.5
        self.set_attention_options(chunk_size=chunk_size)
        self.to_q = linear(query_dim, inner, bias=qkv_bias)
        self.to_k = linear(context_dim, inner, bias=qkv_bias)
        self.to_v = linear(context_dim, inner, bias=qkv_bias)
        self.to_out = nn.SequentialCell([linear(inner, out_dim or query_dim), nn.Dropout(p=dropout)])

    def attend(self, q, k, v, mask=None):
        """q (B, Lq, H*D), k/v (B, Lk, H*D) -> (B, Lq, H*D) (before ``to_out``)."""
        return multi_head_attention(q, k, v, self.heads, mask=mask, scale=self.scale, chunk_size=self.chunk_size,
                                    backend=self.attn_backend, heads_layout=self.heads_layout)

    def construct(self, x, context=None, mask=None):
        # x (B, Lq, query_dim), context (B, Lk, context_dim) or None
        q = self.to_q(x)
        # graph mode: project a given context here (after q), not every layer's k/v up front
        ctx = x if context is None else ops.depend(context, q)
        out = self.attend(q, self.to_k(ctx), self.to_v(ctx), mask)
        return self.to_out(out)
