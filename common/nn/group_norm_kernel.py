"""An optional C++ GroupNorm kernel for CPU (MindSpore ``ops.Custom(func_type="aot")``), with its backward.

MindSpore 2.7.1's CPU GroupNorm is a scalar double-precision loop; ``csrc/group_norm.cc`` computes the same
statistics (mean, then the mean squared deviation, float lanes summed in double per block of 256) with
vectorisable float loops and OpenMP over the (batch, group) pairs. It is compiled with
``g++ -O3 -march=native -fopenmp`` on first use into a cache folder (``$MSVZ_CACHE_DIR`` or ``~/.cache/msvz``;
the file name carries a hash of the source, the compiler flags and the CPU's model and instruction-set flags,
so a changed source or another CPU compiles afresh), or ahead of time by
``python -c "from common.nn.group_norm_kernel import build_library; print(build_library())"`` (what
``MSVZ_GROUPNORM=aot bash scripts/setup.sh`` runs).

The switch (default ``"native"``: ``ops.group_norm``, portable, no compiler needed)::

    common.nn.set_groupnorm_kernel("aot")            # GroupNorm cells built from now on
    common.nn.set_groupnorm_kernel("aot", model)     # every GroupNorm inside an existing model
    MSVZ_GROUPNORM=aot python ...                    # the process-wide default

``"aot"`` needs a CPU device target and ``g++`` (``$CXX``); without a compiler it raises one
:class:`GroupNormKernelError` line saying so.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import mindspore as ms
from mindspore import nn, ops

__all__ = ["GroupNormKernelError", "KERNELS", "build_library", "default_kernel", "set_default_kernel",
           "AotGroupNorm"]

#: the kernels the switch accepts
KERNELS = ("native", "aot")
_SOURCE = Path(__file__).with_name("csrc") / "group_norm.cc"
_FLAGS = ("-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-std=c++17")
_default = os.environ.get("MSVZ_GROUPNORM", "native")
_library: str | None = None


class GroupNormKernelError(RuntimeError):
    """The AOT GroupNorm kernel cannot be used here (no compiler, a failed build, an unknown kernel name)."""


def check_kernel(kernel: str) -> str:
    """``kernel`` if it is one of :data:`KERNELS`, else :class:`GroupNormKernelError`."""
    if kernel not in KERNELS:
        raise GroupNormKernelError(f"unknown GroupNorm kernel {kernel!r}: choose one of {', '.join(KERNELS)}"
                                   " (MSVZ_GROUPNORM / set_groupnorm_kernel)")
    return kernel


def default_kernel() -> str:
    """The kernel new :class:`common.nn.GroupNorm` cells use (``$MSVZ_GROUPNORM``, default ``"native"``)."""
    return check_kernel(_default)


def set_default_kernel(kernel: str) -> None:
    """Set the kernel of GroupNorm cells built from now on (``"native"`` or ``"aot"``)."""
    global _default
    _default = check_kernel(kernel)


def _cpu_id() -> str:
    """The CPU's model name and instruction-set flags (``-march=native`` builds differ by both)."""
    found = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key = line.split(":", 1)[0].strip().lower()
                if key in ("model name", "flags") and key not in found:
                    found[key] = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return " ".join(found.values())


def build_library(cache_dir: str | os.PathLike | None = None) -> str:
    """Compile ``csrc/group_norm.cc`` (once per source, flags and CPU model) and return the ``.so`` path."""
    global _library
    if _library is not None and cache_dir is None:
        return _library
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        raise GroupNormKernelError(f"the GroupNorm kernel 'aot' needs a C++ compiler and {cxx!r} was not found "
                                   "(install g++ or set CXX, or use MSVZ_GROUPNORM=native)")
    src = _SOURCE.read_bytes()
    key = hashlib.sha256(src + " ".join((cxx,) + _FLAGS).encode() + _cpu_id().encode()).hexdigest()[:16]
    folder = Path(cache_dir or os.environ.get("MSVZ_CACHE_DIR") or Path.home() / ".cache" / "msvz")
    lib = folder / f"group_norm_{key}.so"
    if not lib.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=folder)
        os.close(fd)
        r = subprocess.run([cxx, *_FLAGS, "-o", tmp, str(_SOURCE)], capture_output=True, text=True)
        if r.returncode != 0:
            os.unlink(tmp)
            last = (r.stderr.strip().splitlines() or ["?"])[-1]
            raise GroupNormKernelError(f"compiling the GroupNorm kernel failed: {last} ({_SOURCE})")
        os.replace(tmp, lib)  # atomic: a concurrent build sees the whole file or none
    if cache_dir is None:
        _library = str(lib)
    return str(lib)


def _custom(lib: str, name: str, out_shape, out_dtype):
    return ops.Custom(f"{lib}:{name}", out_shape=out_shape, out_dtype=out_dtype, func_type="aot")


class AotGroupNorm(nn.Cell):
    """GroupNorm of ``(N, C, *)`` float32 through the C++ kernel, with the kernel's backward as its ``bprop``.

    Args:
        num_groups: G (C divisible by it).
        eps: added to the variance.
    """

    def __init__(self, num_groups: int, eps: float):
        super().__init__()
        lib = build_library()
        self.num_groups = num_groups
        self.opts = ms.Tensor([eps, num_groups], ms.float32)  # read by the kernel: (eps, G)
        self.forward_op = _custom(lib, "GroupNormForward", lambda x, w, b, e: x, lambda x, w, b, e: x)
        self.backward_op = _custom(lib, "GroupNormBackward", lambda g, x, w, e: (x, w, w),
                                   lambda g, x, w, e: (x, w, w))

    def construct(self, x, weight, bias):
        # x (n, c, *) contiguous: group g of sample n is one run of c/G * prod(*) values, no reshape needed
        return self.forward_op(x, weight, bias, self.opts)

    def bprop(self, x, weight, bias, out, dout):
        return self.backward_op(dout, x, weight, self.opts)
