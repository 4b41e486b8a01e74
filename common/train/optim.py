"""Optimiser pieces: AdamW (torch numbers), learning-rate schedules, global-norm clipping, EMA.

Everything here works on a list of ``mindspore.Parameter`` and runs in PyNative; the tensor
updates go through ``ops.HyperMap`` so they also compile under ``ms.jit``. State is exposed as
``{name: np.ndarray}`` dicts plus a few scalars, for :mod:`common.train.state`.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import mindspore as ms
import numpy as np
from mindspore import Parameter, ParameterTuple, Tensor, nn, ops

_adamw = ops.MultitypeFuncGraph("adamw")
_ema = ops.MultitypeFuncGraph("ema")
_scale = ops.MultitypeFuncGraph("scale")
_sqnorm = ops.MultitypeFuncGraph("sqnorm")


def _names(params: Sequence[Parameter], what: str) -> list[str]:
    names = [p.name for p in params]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"{what}: parameter names must be unique, repeated: {dup[:5]}")
    return names


def _f32(x: float) -> Tensor:
    return Tensor(np.float32(x))


def _load_into(param: Parameter, arr: np.ndarray, key: str) -> None:
    if tuple(arr.shape) != tuple(param.shape):
        raise ValueError(f"state key {key!r}: shape {tuple(arr.shape)} does not match parameter {tuple(param.shape)}")
    param.set_data(Tensor(np.ascontiguousarray(arr).astype(ms.dtype_to_nptype(param.dtype), copy=False)))


# ----------------------------------------------------------------------------------------- AdamW
@_adamw.register("Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor",
                 "Tensor", "Tensor")
def _adamw_one(beta1c, beta2, beta2c, eps, step_size, bc2_sqrt, wd_mul, param, m, v, grad):
    """One tensor of torch's single-tensor AdamW, same operation order."""
    grad = ops.cast(grad, param.dtype)
    ops.assign(param, param * wd_mul)                       # decoupled weight decay
    m_new = m + (grad - m) * beta1c                         # exp_avg.lerp_(grad, 1 - beta1)
    v_new = v * beta2 + (beta2c * grad) * grad              # exp_avg_sq.mul_(b2).addcmul_(g, g, 1 - b2)
    ops.assign(m, m_new)
    ops.assign(v, v_new)
    denom = ops.sqrt(v_new) / bc2_sqrt + eps
    ops.assign(param, param - (step_size * m_new) / denom)  # addcdiv_(m, denom, -step_size)
    return True


class AdamW(nn.Cell):
    """AdamW with the numbers of ``torch.optim.AdamW`` (decoupled weight decay, bias correction).

    Per step ``t`` (1-based) and lr ``a``: ``p *= 1 - a*wd``; ``m = b1 m + (1-b1) g``;
    ``v = b2 v + (1-b2) g^2``; ``p -= a/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)``.

    Args:
        params: the trainable parameters (unique names); moments are zeros of their shapes and dtypes.
        lr: default learning rate, used when :meth:`step` gets none. Default 1e-3.
        betas: (beta1, beta2). Default (0.9, 0.999).
        eps: added to the denominator. Default 1e-8.
        weight_decay: decoupled decay factor. Default 1e-2 (torch's default).
        no_decay: optional predicate ``name -> True`` for parameters without weight decay
            (e.g. ``lambda n: n.endswith("bias")``). Default: every parameter decays.
    """

    def __init__(self, params: Sequence[Parameter], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, no_decay: Callable[[str], bool] | None = None):
        super().__init__(auto_prefix=False)
        params = list(params)
        if not params:
            raise ValueError("AdamW: the parameter list is empty")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"AdamW: betas must lie in [0, 1), got {betas}")
        self.names = _names(params, "AdamW")
        self.params = ParameterTuple(params)
        self.exp_avg = self.params.clone(prefix="exp_avg", init="zeros")
        self.exp_avg_sq = self.params.clone(prefix="exp_avg_sq", init="zeros")
        self.lr, self.betas, self.eps, self.weight_decay = float(lr), tuple(map(float, betas)), float(eps), \
            float(weight_decay)
        self.decay = tuple(not (no_decay and no_decay(n)) for n in self.names)
        self.step_count = 0  # optimizer steps taken (torch's ``state["step"]``)
        self._map = ops.HyperMap()

    def construct(self, grads, beta1c, beta2, beta2c, eps, step_size, bc2_sqrt, wd_muls):
        """Apply one update given gradients (tuple, same order as ``params``) and scalar tensors."""
        return self._map(ops.partial(_adamw, beta1c, beta2, beta2c, eps, step_size, bc2_sqrt),
                         wd_muls, self.params, self.exp_avg, self.exp_avg_sq, grads)

    def step(self, grads: Sequence[Tensor], lr: float | None = None) -> None:
        """One AdamW step with learning rate ``lr`` (default: the constructor's)."""
        if len(grads) != len(self.params):
            raise ValueError(f"AdamW.step: got {len(grads)} gradients for {len(self.params)} parameters")
        lr = self.lr if lr is None else float(lr)
        self.step_count += 1
        b1, b2 = self.betas
        t = self.step_count
        decayed, plain = _f32(1.0 - lr * self.weight_decay), _f32(1.0)
        wd_muls = tuple(decayed if d else plain for d in self.decay)
        self(tuple(grads), _f32(1.0 - b1), _f32(b2), _f32(1.0 - b2), _f32(self.eps),
             _f32(lr / (1.0 - b1 ** t)), _f32(math.sqrt(1.0 - b2 ** t)), wd_muls)

    def state_dict(self) -> tuple[dict[str, np.ndarray], dict]:
        """``({"exp_avg/<name>": m, "exp_avg_sq/<name>": v}, {"step": t})``."""
        arrays = {}
        for n, m, v in zip(self.names, self.exp_avg, self.exp_avg_sq):
            arrays[f"exp_avg/{n}"] = m.asnumpy()
            arrays[f"exp_avg_sq/{n}"] = v.asnumpy()
        return arrays, {"step": self.step_count}

    def load_state_dict(self, arrays: dict[str, np.ndarray], scalars: dict) -> None:
        """Inverse of :meth:`state_dict`; every moment must be present with its shape."""
        for n, m, v in zip(self.names, self.exp_avg, self.exp_avg_sq):
            for key, dst in ((f"exp_avg/{n}", m), (f"exp_avg_sq/{n}", v)):
                if key not in arrays:
                    raise KeyError(f"optimizer state: missing {key!r}")
                _load_into(dst, arrays[key], key)
        self.step_count = int(scalars["step"])


# -------------------------------------------------------------------------------------- Momentum
_momentum = ops.MultitypeFuncGraph("momentum")


@_momentum.register("Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor")
def _momentum_one(lr, mu, wd, param, buf, grad):
    """One tensor of SGD with momentum (torch ``SGD`` / MindSpore ``nn.Momentum``, no dampening)."""
    grad = ops.cast(grad, param.dtype) + wd * param         # L2 weight decay folded into the gradient
    buf_new = buf * mu + grad                               # buf = mu * buf + g
    ops.assign(buf, buf_new)
    ops.assign(param, param - lr * buf_new)
    return True


class Momentum(nn.Cell):
    """SGD with momentum, the numbers of ``torch.optim.SGD(momentum=mu, weight_decay=wd)`` and of
    MindSpore's ``nn.Momentum``: ``g += wd * p``; ``buf = mu * buf + g``; ``p -= lr * buf``.

    The same interface as :class:`AdamW` (``step(grads, lr)``, ``state_dict`` / ``load_state_dict``), so
    :class:`~common.train.trainer.Trainer` can use either (``TrainConfig.optimizer``). One buffer per
    parameter instead of AdamW's two: less memory (the reason the earlier MindSpore VideoComposer port
    recommends it on 32 GB devices).

    Args:
        params: the trainable parameters (unique names).
        lr: default learning rate. Default 1e-3.
        momentum: mu. Default 0.9.
        weight_decay: L2 factor added to the gradient. Default 0.0.
        no_decay: optional predicate ``name -> True`` for parameters without weight decay.
    """

    def __init__(self, params: Sequence[Parameter], lr: float = 1e-3, momentum: float = 0.9,
                 weight_decay: float = 0.0, no_decay: Callable[[str], bool] | None = None):
        super().__init__(auto_prefix=False)
        params = list(params)
        if not params:
            raise ValueError("Momentum: the parameter list is empty")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"Momentum: momentum must lie in [0, 1), got {momentum}")
        self.names = _names(params, "Momentum")
        self.params = ParameterTuple(params)
        self.moments = self.params.clone(prefix="moments", init="zeros")
        self.lr, self.momentum, self.weight_decay = float(lr), float(momentum), float(weight_decay)
        self.decay = tuple(not (no_decay and no_decay(n)) for n in self.names)
        self.step_count = 0
        self._map = ops.HyperMap()

    def construct(self, grads, lr, mu, wds):
        """Apply one update given gradients (same order as ``params``) and scalar tensors."""
        return self._map(ops.partial(_momentum, lr, mu), wds, self.params, self.moments, grads)

    def step(self, grads: Sequence[Tensor], lr: float | None = None) -> None:
        """One step with learning rate ``lr`` (default: the constructor's)."""
        if len(grads) != len(self.params):
            raise ValueError(f"Momentum.step: got {len(grads)} gradients for {len(self.params)} parameters")
        lr = self.lr if lr is None else float(lr)
        self.step_count += 1
        wd, zero = _f32(self.weight_decay), _f32(0.0)
        self(tuple(grads), _f32(lr), _f32(self.momentum), tuple(wd if d else zero for d in self.decay))

    def state_dict(self) -> tuple[dict[str, np.ndarray], dict]:
        """``({"moments/<name>": buf}, {"step": t})``."""
        return {f"moments/{n}": m.asnumpy() for n, m in zip(self.names, self.moments)}, {"step": self.step_count}

    def load_state_dict(self, arrays: dict[str, np.ndarray], scalars: dict) -> None:
        """Inverse of :meth:`state_dict`; every buffer must be present with its shape."""
        for n, m in zip(self.names, self.moments):
            key = f"moments/{n}"
            if key not in arrays:
                raise KeyError(f"optimizer state: missing {key!r} (a checkpoint of another optimizer?)")
            _load_into(m, arrays[key], key)
        self.step_count = int(scalars["step"])


# ------------------------------------------------------------------------------------- schedules
def cosine_with_warmup(base_lr: float, warmup_steps: int, total_steps: int, min_lr: float = 0.0) -> list[float]:
    """Learning rate of every optimizer step ``s = 0 .. total_steps-1``.

    Linear warm-up ``base_lr * (s+1) / warmup_steps`` for ``s < warmup_steps`` (the first step
    is not wasted at lr 0, step ``warmup_steps-1`` runs at ``base_lr``), then half a cosine from
    ``base_lr`` down towards ``min_lr``: ``min_lr + (base_lr - min_lr) * (1 + cos(pi * p)) / 2``
    with ``p = (s - warmup_steps) / (total_steps - warmup_steps)``.
    """
    if total_steps < 1 or not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"cosine_with_warmup: need 0 <= warmup_steps ({warmup_steps}) <= total_steps "
                         f"({total_steps}) and total_steps >= 1")
    out = []
    for s in range(total_steps):
        if s < warmup_steps:
            out.append(base_lr * (s + 1) / warmup_steps)
        else:
            p = (s - warmup_steps) / max(1, total_steps - warmup_steps)
            out.append(min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * p)))
    return out


def constant_with_warmup(base_lr: float, warmup_steps: int, total_steps: int) -> list[float]:
    """Linear warm-up as in :func:`cosine_with_warmup`, then ``base_lr`` to the end."""
    if total_steps < 1 or not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"constant_with_warmup: need 0 <= warmup_steps ({warmup_steps}) <= total_steps "
                         f"({total_steps}) and total_steps >= 1")
    return [base_lr * min(1.0, (s + 1) / warmup_steps) if warmup_steps else base_lr for s in range(total_steps)]


# -------------------------------------------------------------------------------------- clipping
@_sqnorm.register("Tensor")
def _sqnorm_one(g):
    n = ops.norm(ops.cast(g, ms.float32))
    return n * n


@_scale.register("Tensor", "Tensor")
def _scale_one(coef, g):
    return g * ops.cast(coef, g.dtype)


_hyper = ops.HyperMap()


def global_norm(grads: Sequence[Tensor]) -> Tensor:
    """L2 norm of all gradients together (float32 scalar), as torch's ``clip_grad_norm_``."""
    sq = _hyper(_sqnorm, tuple(grads))
    return ops.sqrt(ops.addn(list(sq))) if len(sq) > 1 else ops.sqrt(sq[0])


def clip_by_global_norm(grads: Sequence[Tensor], max_norm: float) -> tuple[tuple[Tensor, ...], Tensor]:
    """``torch.nn.utils.clip_grad_norm_``: scale by ``min(1, max_norm / (norm + 1e-6))``.

    Returns ``(clipped_grads, total_norm_before_clipping)``.
    """
    total = global_norm(grads)
    coef = ops.clamp(_f32(max_norm) / (total + 1e-6), max=1.0)
    return tuple(_hyper(ops.partial(_scale, coef), tuple(grads))), total


# ------------------------------------------------------------------------------------------- EMA
@_ema.register("Tensor", "Tensor", "Tensor")
def _ema_one(one_minus_decay, shadow, param):
    ops.assign(shadow, shadow - one_minus_decay * (shadow - ops.cast(param, shadow.dtype)))
    return True


class EMA:
    """Exponential moving average of parameters: ``shadow -= (1 - decay) * (shadow - param)``.

    Args:
        params: the parameters to follow (usually the trainable ones).
        decay: the EMA decay, e.g. 0.9999.
        use_num_updates: LitEma's warm-up: the decay used is ``min(decay, (1+n)/(10+n))``
            after ``n`` updates. Default False (constant decay).

    :meth:`apply` swaps the averages into the parameters (for evaluation / export),
    :meth:`restore` puts the trained values back.
    """

    def __init__(self, params: Sequence[Parameter], decay: float = 0.9999, use_num_updates: bool = False):
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA: decay must lie in [0, 1], got {decay}")
        params = list(params)
        self.names = _names(params, "EMA")
        self.params = ParameterTuple(params)
        self.shadow = ParameterTuple([Parameter(Tensor(p.asnumpy()), name=f"ema.{p.name}", requires_grad=False)
                                      for p in params])
        self.decay, self.use_num_updates, self.num_updates = float(decay), use_num_updates, 0
        self._backup: list[np.ndarray] | None = None

    def reset(self) -> None:
        """Set the averages to the current parameter values (and the update count to 0)."""
        for p, s in zip(self.params, self.shadow):
            s.set_data(Tensor(p.asnumpy()).astype(s.dtype))
        self.num_updates = 0

    def current_decay(self) -> float:
        """The decay the next :meth:`update` uses."""
        if self.use_num_updates:
            return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        return self.decay

    def update(self) -> None:
        """Move the averages one step towards the current parameters."""
        d = self.current_decay()
        self.num_updates += 1
        _hyper(ops.partial(_ema, _f32(1.0 - d)), self.shadow, self.params)

    def apply(self) -> None:
        """Copy the averages into the parameters (keeps a backup for :meth:`restore`)."""
        if self._backup is not None:
            raise RuntimeError("EMA.apply called twice without restore")
        self._backup = [p.asnumpy() for p in self.params]
        for p, s in zip(self.params, self.shadow):
            p.set_data(Tensor(s.asnumpy()).astype(p.dtype))

    def restore(self) -> None:
        """Undo :meth:`apply`."""
        if self._backup is None:
            raise RuntimeError("EMA.restore called without apply")
        for p, b in zip(self.params, self._backup):
            p.set_data(Tensor(b))
        self._backup = None

    def state_dict(self) -> tuple[dict[str, np.ndarray], dict]:
        """``({"<name>": average}, {"num_updates": n, "decay": d})``."""
        return ({n: s.asnumpy() for n, s in zip(self.names, self.shadow)},
                {"num_updates": self.num_updates, "decay": self.decay})

    def load_state_dict(self, arrays: dict[str, np.ndarray], scalars: dict) -> None:
        """Inverse of :meth:`state_dict`."""
        for n, s in zip(self.names, self.shadow):
            if n not in arrays:
                raise KeyError(f"EMA state: missing {n!r}")
            _load_into(s, arrays[n], f"ema/{n}")
        self.num_updates = int(scalars["num_updates"])
