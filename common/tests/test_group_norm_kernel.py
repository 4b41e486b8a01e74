"""The C++ GroupNorm kernel (``set_groupnorm_kernel("aot")``) against float64 torch and ``ops.group_norm``.

Error analysis (u = 2^-24, float32's unit roundoff), per element, for both kernels against the exact (float64)
result. Forward y = (x - m) r w + b with m the group mean, r = 1/sqrt(var + eps):
  * m and var are sums of float32 values; ours adds 16 values per float lane, then in double (torch and
    MindSpore: similar cascades or double), so |dm| <= 16 u mean|x| and |dr| / r <= ~9 u;
  * y is x * (r w) + (b - m r w) in float32: <= u (2 |x| r |w| + |b - m r w| + |y|), large only where
    |m| >> std (the input below has mean 3, std 2, to exercise that).
Hence |y - y_exact| <= 32 u (r |w| (|x| + mean|x|) + |xhat w| + |b| + |y|), a factor 2 over the sum of the
terms. Backward, with g = w dy: dx = r (g - mean(g) - xhat mean(g xhat)), the same kind of sums, so
|dx - dx_exact| <= 32 u r (|g| + mean|g| + |xhat| (mean|g xhat| + mean|g|) + (|x| + mean|x|) r mean|g|);
dw = sum dy xhat and db = sum dy over (n, *): <= 32 u sum(|dy| (|xhat| + r mean|x|)) and 32 u sum |dy|.
Both kernels are held to these bounds, and to twice them against each other (the errors add).
"""
from __future__ import annotations

import mindspore as ms
import numpy as np
import pytest
import torch

import common.nn.group_norm_kernel as gnk
from common.nn import GroupNorm, GroupNormKernelError, ResBlock, set_groupnorm_kernel
from common.nn.group_norm_kernel import AotGroupNorm

U = 2.0 ** -24
C_BOUND = 32
EPS = 1e-5
# (shape, groups): a group of 280 values (a block of 256 + a tail of 16 + 8), 12800 values (50 blocks), 5-D
CASES = [((2, 64, 5, 7), 8), ((2, 32, 40, 40), 4), ((2, 64, 3, 4, 5), 32)]


def _data(shape, seed=0):
    rng = np.random.default_rng(seed)
    c = shape[1]
    x = (3.0 + 2.0 * rng.standard_normal(shape)).astype(np.float32)
    w = (1.0 + 0.5 * rng.standard_normal(c)).astype(np.float32)
    b = rng.standard_normal(c).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    return x, w, b, dy


def _reference(x, w, b, dy, groups):
    """float64 torch outputs and gradients, and the per-element error bounds of the module docstring."""
    xt, wt, bt = (torch.from_numpy(a).double().requires_grad_() for a in (x, w, b))
    y = torch.nn.functional.group_norm(xt, groups, wt, bt, EPS)
    y.backward(torch.from_numpy(dy).double())
    n, c = x.shape[:2]
    cshape = (1, c) + (1,) * (x.ndim - 2)
    xg = x.astype(np.float64).reshape(n, groups, -1)
    m = xg.mean(-1, keepdims=True)
    r = 1.0 / np.sqrt(xg.var(-1, keepdims=True) + EPS)
    absx_mean = np.abs(xg).mean(-1, keepdims=True)
    xhat = ((xg - m) * r).reshape(x.shape)
    r_e = np.broadcast_to(r, xg.shape).reshape(x.shape)
    ax_e = np.broadcast_to(absx_mean, xg.shape).reshape(x.shape)
    wb, bb = np.abs(w.reshape(cshape)), np.abs(b.reshape(cshape))
    yv = y.detach().numpy()
    fwd = C_BOUND * U * (r_e * wb * (np.abs(x) + ax_e) + np.abs(xhat) * wb + bb + np.abs(yv))
    g = (dy * w.reshape(cshape)).astype(np.float64)

    def group_mean(a):
        return np.broadcast_to(np.abs(a).reshape(n, groups, -1).mean(-1, keepdims=True), xg.shape).reshape(x.shape)

    gm = group_mean(g)
    dx = C_BOUND * U * r_e * (np.abs(g) + gm + np.abs(xhat) * (group_mean(g * xhat) + gm)
                              + (np.abs(x) + ax_e) * r_e * gm)
    axes = (0,) + tuple(range(2, x.ndim))
    dw = C_BOUND * U * (np.abs(dy) * (np.abs(xhat) + r_e * ax_e)).sum(axes)
    db = C_BOUND * U * np.abs(dy).sum(axes)
    return ({"y": yv, "dx": xt.grad.numpy(), "dw": wt.grad.numpy(), "db": bt.grad.numpy()},
            {"y": fwd, "dx": dx, "dw": dw, "db": db})


def _outputs(fn, x, w, b, dy, jit: bool):
    """y and the gradients of <y, dy> for x, weight, bias through ``fn(x, w, b)``."""
    grad = ms.ops.GradOperation(get_all=True, sens_param=True)(fn)
    f, g = (ms.jit(fn), ms.jit(grad)) if jit else (fn, grad)
    args = [ms.Tensor(a) for a in (x, w, b)]
    y = f(*args).asnumpy()
    dx, dw, db = (t.asnumpy() for t in g(*args, ms.Tensor(dy)))
    return {"y": y, "dx": dx, "dw": dw, "db": db}


def _native(groups):
    def f(x, w, b):
        return ms.ops.group_norm(x, groups, w, b, EPS)

    return f


def _assert_within(got, ref, bound, factor=1.0, what=""):
    for k in ref:
        err = np.abs(got[k].astype(np.float64) - ref[k])
        worst = float((err / (factor * bound[k])).max())
        assert worst <= 1.0, f"{what} {k}: error {err.max():.3g} is {worst:.2f}x its bound"


@pytest.fixture(scope="module")
def cases():
    return [(shape, groups, _data(shape), _reference(*_data(shape), groups)) for shape, groups in CASES]


@pytest.mark.parametrize("jit", [False, True], ids=["pynative", "jit"])
def test_aot_and_native_within_bound(cases, jit):
    for shape, groups, data, (ref, bound) in cases:
        aot = _outputs(AotGroupNorm(groups, EPS), *data, jit=jit)
        _assert_within(aot, ref, bound, what=f"aot {shape}")
        native = _outputs(_native(groups), *data, jit=jit)
        _assert_within(native, ref, bound, what=f"native {shape}")
        _assert_within(aot, native, bound, factor=2.0, what=f"aot vs native {shape}")


def test_switch_on_a_block():
    """set_groupnorm_kernel(kernel, model) sets every GroupNorm in it; a ResBlock gives the same output."""
    rng = np.random.default_rng(1)
    block = ResBlock(64, 32, 64)
    block.set_train(False)
    x = ms.Tensor(rng.standard_normal((2, 64, 6, 6)).astype(np.float32))
    emb = ms.Tensor(rng.standard_normal((2, 32)).astype(np.float32))
    assert all(c.kernel == "native" for _, c in block.cells_and_names() if isinstance(c, GroupNorm))
    ref = block(x, emb).asnumpy()
    assert set_groupnorm_kernel("aot", block) == 2
    out = block(x, emb).asnumpy()
    np.testing.assert_allclose(out, ref, rtol=0, atol=64 * U * float(np.abs(ref).max()))
    assert set_groupnorm_kernel("native", block) == 2
    np.testing.assert_array_equal(block(x, emb).asnumpy(), ref)


def test_default_and_errors(monkeypatch):
    assert GroupNorm(8, 16).kernel == "native"  # the portable default
    monkeypatch.setattr(gnk, "_default", "native")
    set_groupnorm_kernel("aot")
    assert GroupNorm(8, 16).kernel == "aot"
    set_groupnorm_kernel("native")
    assert GroupNorm(8, 16).kernel == "native"
    with pytest.raises(GroupNormKernelError, match="unknown GroupNorm kernel 'fast'"):
        set_groupnorm_kernel("fast")
    monkeypatch.setattr(gnk, "_library", None)
    monkeypatch.setenv("CXX", "no-such-compiler-msvz")
    with pytest.raises(GroupNormKernelError) as e:
        set_groupnorm_kernel("aot")
    assert "needs a C++ compiler" in str(e.value) and "\n" not in str(e.value)
    assert GroupNorm(8, 16).kernel == "native"  # the default path needs no compiler


def test_non_contiguous_input():
    """A transposed view (PyNative keeps it strided) reaches the kernel as its values, not its storage order."""
    rng = np.random.default_rng(2)
    a = ms.Tensor(rng.standard_normal((3, 2, 64, 5, 4)).astype(np.float32))
    x = ms.ops.transpose(a, (1, 2, 0, 3, 4))  # (2, 64, 3, 5, 4)
    ref = GroupNorm(8, 64)(ms.Tensor(x.asnumpy())).asnumpy()
    out = GroupNorm(8, 64, kernel="aot")(x).asnumpy()
    np.testing.assert_allclose(out, ref, rtol=0, atol=64 * U * float(np.abs(ref).max()))
