"""Normalisation layers whose parameters are named as in PyTorch (``weight`` / ``bias``).

MindSpore's ``nn.GroupNorm`` / ``nn.LayerNorm`` call their parameters ``gamma`` / ``beta``;
naming ours like the original state dicts keeps every checkpoint rename table short.
Both layers compute in float32 whatever the input dtype and cast back.

GroupNorm has two kernels behind one switch, :func:`set_groupnorm_kernel` (or ``MSVZ_GROUPNORM``):
``"native"`` (``ops.group_norm``, every device, the default) and ``"aot"`` (a C++ CPU kernel compiled on
first use, several times faster on CPU; :mod:`common.nn.group_norm_kernel`). Both give the same numbers to
float32 rounding (``common/tests/test_group_norm_kernel.py``).
"""
from __future__ import annotations

import mindspore as ms
from mindspore import Parameter, nn, ops
from mindspore.common.initializer import initializer

from .group_norm_kernel import (
    AotGroupNorm,
    GroupNormKernelError,
    build_library,
    check_kernel,
    default_kernel,
    set_default_kernel,
)


class GroupNorm(nn.Cell):
    """``torch.nn.GroupNorm`` for inputs of any rank ``(N, C, *)``.

    Args:
        num_groups: number of channel groups (C must be divisible by it).
        num_channels: C.
        eps: added to the variance (LDM UNets use 1e-5, VAEs and transformers 1e-6).
        affine: learnable per-channel ``weight`` (ones) and ``bias`` (zeros).
        kernel: ``"native"`` (``ops.group_norm``) or ``"aot"`` (the C++ CPU kernel); None = the process
            default (:func:`set_groupnorm_kernel`, ``MSVZ_GROUPNORM``, else ``"native"``).
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 kernel: str | None = None):
        super().__init__()
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: {num_channels} channels are not divisible into {num_groups} groups")
        self.num_groups = num_groups
        self.num_channels = num_channels
        self.eps = eps
        self.affine = affine
        if affine:
            self.weight = Parameter(initializer("ones", (num_channels,), ms.float32), name="weight")
            self.bias = Parameter(initializer("zeros", (num_channels,), ms.float32), name="bias")
        self.kernel = "native"
        self.aot = None
        self.set_kernel(kernel or default_kernel())

    def set_kernel(self, kernel: str) -> None:
        """Use ``kernel`` (``"native"`` or ``"aot"``) from the next call (or compilation) on."""
        check_kernel(kernel)
        if kernel == "aot":
            target = ms.get_context("device_target")
            if target != "CPU":
                raise GroupNormKernelError(f"the GroupNorm kernel 'aot' runs on CPU only, not {target} "
                                           "(MSVZ_GROUPNORM / set_groupnorm_kernel)")
            if self.aot is None:
                self.aot = AotGroupNorm(self.num_groups, self.eps)
        self.kernel = kernel

    def construct(self, x):
        dtype = x.dtype
        if self.affine:
            weight, bias = self.weight, self.bias
        else:
            weight = ops.ones((self.num_channels,), ms.float32)
            bias = ops.zeros((self.num_channels,), ms.float32)
        if self.kernel == "aot":
            return self.aot(x.astype(ms.float32), weight, bias).astype(dtype)
        # ops.group_norm: statistics over (C/G, *) per sample and group, as torch; several times faster
        # in PyNative than a reshape + mean/var form (see docs/performance.md).
        return ops.group_norm(x.astype(ms.float32), self.num_groups, weight, bias, self.eps).astype(dtype)


def set_groupnorm_kernel(kernel: str, cell: nn.Cell | None = None) -> int:
    """Choose the GroupNorm kernel: ``"native"`` (``ops.group_norm``, portable, default) or ``"aot"`` (C++,
    CPU only, needs ``g++``; compiled on first use).

    Args:
        kernel: ``"native"`` or ``"aot"``.
        cell: a model: set every :class:`GroupNorm` inside it (before it runs or is compiled); None: the default
            of GroupNorm cells built from now on (as ``MSVZ_GROUPNORM``).
    Returns:
        the number of GroupNorm cells set (0 when ``cell`` is None).
    Raises:
        GroupNormKernelError: an unknown name, no compiler, or a device other than CPU (one line).
    """
    check_kernel(kernel)
    if cell is None:
        if kernel == "aot":
            build_library()  # no compiler: fail here, at the switch
        set_default_kernel(kernel)
        return 0
    n = 0
    for _, sub in cell.cells_and_names():
        if isinstance(sub, GroupNorm):
            sub.set_kernel(kernel)
            n += 1
    return n


class LayerNorm(nn.Cell):
    """``torch.nn.LayerNorm`` over the last dimension, computed in float32.

    Args:
        normalized_shape: size of the last dimension.
        eps: added to the variance.
        elementwise_affine: learnable ``weight`` / ``bias``; when False they are fixed ones / zeros.
    """

    def __init__(self, normalized_shape: int, eps: float = 1e-5, elementwise_affine: bool = True):
        super().__init__()
        if isinstance(normalized_shape, (tuple, list)):
            if len(normalized_shape) != 1:
                raise ValueError("LayerNorm: only normalisation over the last dimension is supported")
            normalized_shape = normalized_shape[0]
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        self.layer_norm = ops.LayerNorm(begin_norm_axis=-1, begin_params_axis=-1, epsilon=eps)
        if elementwise_affine:
            self.weight = Parameter(initializer("ones", (normalized_shape,), ms.float32), name="weight")
            self.bias = Parameter(initializer("zeros", (normalized_shape,), ms.float32), name="bias")
        else:
            self.weight = ms.Tensor(ops.ones((normalized_shape,), ms.float32))
            self.bias = ms.Tensor(ops.zeros((normalized_shape,), ms.float32))

    def construct(self, x):
        dtype = x.dtype
        y, _, _ = self.layer_norm(x.astype(ms.float32), self.weight, self.bias)
        return y.astype(dtype)
