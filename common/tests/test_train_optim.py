"""common.train pieces: AdamW and clipping vs torch, schedules, EMA, checkpoint files, sampler."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from mindspore import Parameter, Tensor

from common.train import (
    EMA,
    AdamW,
    EpochSampler,
    clip_by_global_norm,
    constant_with_warmup,
    cosine_with_warmup,
    latest_checkpoint,
    list_checkpoints,
    load_state,
    save_state,
)
from common.train.state import checkpoint_path, prune_checkpoints, read_meta, remove_stale_temps

SHAPES = [(4, 3), (3,), (2, 2, 2)]


def _arrays(seed, scale=1.0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(s) * scale).astype(np.float32) for s in SHAPES]


def _adamw_diff_bounds(init, grads, lrs, betas, eps, weight_decay, decays):
    """Per element bounds on |ours - torch| of (param, exp_avg, exp_avg_sq) after AdamW steps, to first
    order in u = 2**-24, propagated along the exact (float64) trajectory.

    Same operation order on both sides, but torch's lerp / addcmul / addcdiv kernels may fuse (FMA) or
    not by CPU, and a quotient by a scalar may be a product by its reciprocal: each side keeps every
    op's rounding (<= u of its result), so each op adds 2 u |result| to the difference."""
    u = 2.0 ** -24
    b1, b2 = betas
    out = []
    for p, decay, gs in zip(init, decays, zip(*grads)):
        p, m, v = p.astype(np.float64), 0.0, 0.0
        ep = em = ev = 0.0
        for t, (g, lr) in enumerate(zip(gs, lrs), 1):
            g = g.astype(np.float64)
            p = p * (1 - lr * weight_decay if decay else 1.0)
            ep = ep * (1 - lr * weight_decay if decay else 1.0) + 2 * u * np.abs(p)
            m_new = m + (g - m) * (1 - b1)  # g - m, times 1 - b1, plus m: 3 roundings
            em = b1 * em + 2 * u * (2 * (1 - b1) * np.abs(g - m) + np.abs(m_new))
            v_new = b2 * v + (1 - b2) * g * g  # 4 roundings
            ev = b2 * ev + 2 * u * (b2 * v + 2 * (1 - b2) * g * g + v_new)
            m, v = m_new, v_new
            root = np.sqrt(v) / math.sqrt(1 - b2 ** t)
            d = root + eps  # sqrt, / (or * 1/x: 2), + eps: <= 4 roundings
            ed = root * ev / (2 * v) + 2 * 4 * u * d
            upd = lr / (1 - b1 ** t) * m / d  # 2 roundings, then p - upd: 1
            eu = lr / (1 - b1 ** t) * em / d + np.abs(upd) * ed / d + 2 * 2 * u * np.abs(upd)
            p = p - upd
            ep = ep + eu + 2 * u * np.abs(p)
        out.append((ep, em, ev))
    return out


def test_adamw_matches_torch():
    init = _arrays(0)
    ours = [Parameter(Tensor(a.copy()), name=f"p{i}") for i, a in enumerate(init)]
    opt = AdamW(ours, lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, no_decay=lambda n: n == "p1")
    ref = [torch.nn.Parameter(torch.tensor(a.copy())) for a in init]
    topt = torch.optim.AdamW([{"params": [ref[0], ref[2]]}, {"params": [ref[1]], "weight_decay": 0.0}],
                             lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)
    grads, lrs = [], []
    for k in range(6):
        g = _arrays(10 + k, scale=10.0 ** (k % 3 - 1))
        lr = 1e-2 * (k + 1)
        grads.append(g)
        lrs.append(lr)
        opt.step([Tensor(x) for x in g], lr)
        for group in topt.param_groups:
            group["lr"] = lr
        for t, x in zip(ref, g):
            t.grad = torch.tensor(x)
        topt.step()
    assert opt.step_count == 6
    # a few roundings per op and step, each up to 2 u |value| apart: 2e-7 .. 4e-6 per element here
    bounds = _adamw_diff_bounds(init, grads, lrs, (0.8, 0.99), 1e-6, 0.1, [True, False, True])
    for p, t, a, (ep, _, _) in zip(ours, ref, init, bounds):
        err = np.abs(p.asnumpy() - t.detach().numpy())
        assert np.all(err <= ep), (err / ep).max()
        assert np.abs(p.asnumpy() - a).max() > 1e-3  # it moved
    arrays, scalars = opt.state_dict()
    m_ref = topt.state[ref[0]]["exp_avg"].numpy()
    assert np.all(np.abs(arrays["exp_avg/p0"] - m_ref) <= bounds[0][1])
    assert np.all(np.abs(arrays["exp_avg_sq/p0"] - topt.state[ref[0]]["exp_avg_sq"].numpy()) <= bounds[0][2])
    # state round trip into a fresh optimizer
    opt2 = AdamW([Parameter(Tensor(a.copy()), name=f"p{i}") for i, a in enumerate(init)])
    opt2.load_state_dict(arrays, scalars)
    assert opt2.step_count == 6 and np.array_equal(opt2.exp_avg_sq[2].asnumpy(), arrays["exp_avg_sq/p2"])
    with pytest.raises(KeyError, match="exp_avg/p0"):
        opt2.load_state_dict({}, scalars)
    with pytest.raises(ValueError, match="2 gradients for 3"):
        opt.step([Tensor(x) for x in g[:2]])


def test_adamw_rejects_duplicate_names():
    with pytest.raises(ValueError, match="unique"):
        AdamW([Parameter(Tensor(np.zeros(2, np.float32)), name="w")] * 2)


def test_cosine_with_warmup_values():
    lrs = cosine_with_warmup(1.0, 2, 6, min_lr=0.1)
    expect = [0.5, 1.0] + [0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(4)]
    assert np.allclose(lrs, expect, rtol=0, atol=1e-12)
    assert lrs[2] == 1.0 and all(a > b for a, b in zip(lrs[2:], lrs[3:])) and lrs[-1] > 0.1
    assert cosine_with_warmup(2.0, 0, 3) == pytest.approx([2.0, 1.5, 0.5])
    assert constant_with_warmup(1.0, 4, 6) == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="warmup_steps"):
        cosine_with_warmup(1.0, 7, 6)


def test_clip_by_global_norm_matches_torch():
    g = _arrays(3, scale=5.0)
    clipped, norm = clip_by_global_norm([Tensor(x) for x in g], 2.0)
    ref = [torch.tensor(x) for x in g]
    params = [torch.nn.Parameter(torch.zeros_like(r)) for r in ref]
    for p, r in zip(params, ref):
        p.grad = r
    tnorm = torch.nn.utils.clip_grad_norm_(params, 2.0)
    # each side: n <= 12 squares summed in any order (n u), sqrt, squared, 3 summed, sqrt:
    # (n / 2 + 3.5) u relative; both sides (n + 7) u = 19 u (~3e-5 at a norm of 29)
    assert abs(float(norm.asnumpy()) - float(tnorm)) <= 19 * 2.0 ** -24 * float(tnorm)
    for c, p in zip(clipped, params):
        # coefficient max_norm / (norm + 1e-6): 2 more roundings, then the product: (n + 13) u = 25 u
        assert np.all(np.abs(c.asnumpy() - p.grad.numpy()) <= 25 * 2.0 ** -24 * np.abs(p.grad.numpy()))
    small, _ = clip_by_global_norm([Tensor(x * 1e-3) for x in g], 2.0)  # under the limit: unchanged
    assert all(np.array_equal(s.asnumpy(), x * np.float32(1e-3)) for s, x in zip(small, g))


def test_ema_update_apply_restore_and_state():
    init = _arrays(4)
    ps = [Parameter(Tensor(a.copy()), name=f"p{i}") for i, a in enumerate(init)]
    ema = EMA(ps, decay=0.9)
    shadow = [a.copy() for a in init]
    for k in range(3):
        new = _arrays(20 + k)
        for p, x in zip(ps, new):
            p.set_data(Tensor(x))
        ema.update()
        shadow = [s - np.float32(0.1) * (s - x) for s, x in zip(shadow, new)]
    arrays, scalars = ema.state_dict()
    assert scalars["num_updates"] == 3
    for i, s in enumerate(shadow):
        assert np.abs(arrays[f"p{i}"] - s).max() <= 1e-6
    trained = [p.asnumpy() for p in ps]
    ema.apply()
    assert np.array_equal(ps[0].asnumpy(), arrays["p0"])
    ema.restore()
    assert all(np.array_equal(p.asnumpy(), t) for p, t in zip(ps, trained))
    ema2 = EMA(ps, decay=0.9)
    ema2.load_state_dict(arrays, scalars)
    assert ema2.num_updates == 3 and np.array_equal(ema2.shadow[1].asnumpy(), arrays["p1"])
    warm = EMA(ps, decay=0.999, use_num_updates=True)
    assert warm.current_decay() == pytest.approx(0.1)


def test_state_files_atomic_latest_and_prune(tmp_path):
    arrays = {"model/w": np.arange(6, dtype=np.float32).reshape(2, 3), "rng/mt": np.arange(4, dtype=np.uint32)}
    for step in (2, 4, 6):
        save_state(checkpoint_path(tmp_path, step), arrays, {"step": step})
    assert [s for s, _ in list_checkpoints(tmp_path)] == [2, 4, 6]
    got, meta = load_state(checkpoint_path(tmp_path, 4))
    assert meta == {"step": 4} and np.array_equal(got["model/w"], arrays["model/w"])
    assert got["rng/mt"].dtype == np.uint32
    # a truncated newest file (what a non-atomic writer leaves) is refused and skipped
    good = checkpoint_path(tmp_path, 6).read_bytes()
    checkpoint_path(tmp_path, 8).write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="ckpt-00000008"):
        read_meta(checkpoint_path(tmp_path, 8))
    assert latest_checkpoint(tmp_path) == checkpoint_path(tmp_path, 6)
    # a leftover temp file of an interrupted save is never listed and gets cleaned
    (tmp_path / ".tmp-ckpt-00000010.safetensors-abc").write_bytes(good[:10])
    assert [s for s, _ in list_checkpoints(tmp_path)] == [2, 4, 6, 8]
    assert [p.name for p in remove_stale_temps(tmp_path)] == [".tmp-ckpt-00000010.safetensors-abc"]
    os.unlink(checkpoint_path(tmp_path, 8))
    prune_checkpoints(tmp_path, 2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [4, 6]
    prune_checkpoints(tmp_path, 0)  # never below one
    assert [s for s, _ in list_checkpoints(tmp_path)] == [6]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp")]


def test_epoch_sampler_order_ranks_and_state():
    s = EpochSampler(10, 3, seed=5)
    assert s.batches_per_epoch == 3
    epoch0 = np.concatenate([next(s) for _ in range(3)])
    assert len(set(epoch0.tolist())) == 9 and (s.epoch, s.batch) == (1, 0)
    epoch1 = np.concatenate([next(s) for _ in range(3)])
    assert not np.array_equal(epoch0, epoch1)
    # two ranks of batch 2 see exactly the indices of one process with batch 4
    one = EpochSampler(10, 4, seed=5)
    r0, r1 = EpochSampler(10, 2, seed=5, rank=0, world_size=2), EpochSampler(10, 2, seed=5, rank=1, world_size=2)
    for _ in range(5):
        a, b, c = next(one), next(r0), next(r1)
        assert sorted(a.tolist()) == sorted(b.tolist() + c.tolist()) and not set(b) & set(c)
    # the state resumes the same stream
    st = one.state_dict()
    ahead = [next(one).tolist() for _ in range(4)]
    again = EpochSampler(10, 4, seed=5)
    again.load_state_dict(st)
    assert [next(again).tolist() for _ in range(4)] == ahead
    with pytest.raises(ValueError, match="batch_size=4 in the checkpoint"):
        EpochSampler(10, 2, seed=5).load_state_dict(st)
    with pytest.raises(ValueError, match="cannot fill"):
        EpochSampler(3, 2, world_size=2)
    assert np.array_equal(next(EpochSampler(6, 6, shuffle=False)), np.arange(6))


def test_momentum_matches_torch_sgd():
    """Momentum = torch.optim.SGD(momentum, weight_decay) with per-step lrs; state round-trips.

    Per step each element takes 4 float32 roundings on either side (wd * p + g, mu * buf + g, lr * buf,
    p - update), so over 5 steps of O(1) values the two agree to a few 1e-7 (bound: 1e-5 absolute)."""
    from common.train import Momentum

    init = _arrays(0)
    grads = [_arrays(10 + s) for s in range(5)]
    lrs = [0.1, 0.05, 0.1, 0.02, 0.1]
    params = [Parameter(Tensor(a.copy()), name=f"p{i}") for i, a in enumerate(init)]
    opt = Momentum(params, momentum=0.9, weight_decay=0.01, no_decay=lambda n: n == "p1")
    tp = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in init]
    topt = torch.optim.SGD([{"params": [tp[0], tp[2]], "weight_decay": 0.01}, {"params": [tp[1]], "weight_decay": 0.0}],
                           lr=0.1, momentum=0.9)
    for gs, lr in zip(grads, lrs):
        opt.step([Tensor(g) for g in gs], lr)
        for group in topt.param_groups:
            group["lr"] = lr
        for p, g in zip(tp, gs):
            p.grad = torch.from_numpy(g.copy())
        topt.step()
    for p, t in zip(params, tp):
        np.testing.assert_allclose(p.asnumpy(), t.detach().numpy(), rtol=0, atol=1e-5)
    arrays, scalars = opt.state_dict()
    assert scalars == {"step": 5} and sorted(arrays) == ["moments/p0", "moments/p1", "moments/p2"]
    for i, t in enumerate(tp):
        np.testing.assert_allclose(arrays[f"moments/p{i}"], topt.state[t]["momentum_buffer"].numpy(), atol=1e-5)
    other = Momentum([Parameter(Tensor(a.copy()), name=f"p{i}") for i, a in enumerate(init)])
    other.load_state_dict(arrays, scalars)
    assert other.step_count == 5 and np.array_equal(other.moments[1].asnumpy(), arrays["moments/p1"])
    with pytest.raises(KeyError, match="moments/p0"):
        other.load_state_dict({}, scalars)
