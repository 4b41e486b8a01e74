"""common.train.Trainer on a tiny MLP: learning, accumulation, loss scaling, jit, exact resume."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from common.train import TrainConfig, list_checkpoints

_spec = importlib.util.spec_from_file_location("train_tiny", Path(__file__).with_name("train_tiny.py"))
tiny = importlib.util.module_from_spec(_spec)
sys.modules["train_tiny"] = tiny  # MindSpore's graph parser looks the module up by name
_spec.loader.exec_module(tiny)


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def _maxdiff(a: dict, b: dict) -> float:
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


def test_loss_falls_on_repeated_batch(tmp_path):
    t = tiny.build(str(tmp_path), 40, batch=4, noise=0.0, hook=False, shuffle=False, ema=None, lr=3e-2, warmup=0,
                   lr_schedule="constant")
    t.data.dataset = t.data.dataset[:4]  # one batch, seen every step
    t.data.sampler = type(t.data.sampler)(4, 4, shuffle=False)
    t.fit()
    log = [json.loads(ln) for ln in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == list(range(1, 41))
    assert {"loss", "lr", "grad_norm", "step_time"} <= log[0].keys()
    first, last = log[0]["loss"], log[-1]["loss"]
    assert last < 0.1 * first, (first, last)


def test_grad_accumulation_equals_concatenated_batch(tmp_path):
    kw = dict(noise=0.0, hook=False, shuffle=False, ema=None, clip_grad_norm=None)
    acc = tiny.build(str(tmp_path / "a"), 3, batch=2, accum=2, **kw)
    big = tiny.build(str(tmp_path / "b"), 3, batch=4, accum=1, **kw)
    half = tiny.build(str(tmp_path / "c"), 3, batch=2, accum=1, **kw)
    for t in (acc, big, half):
        t.fit()
    err = _maxdiff(acc.model_state(), big.model_state())
    assert err <= 1e-6, err
    assert _maxdiff(half.model_state(), big.model_state()) > 1e-3  # the check can tell the difference


def test_resume_says_from_where_and_a_finished_run_says_so(tmp_path, capsys):
    tiny.build(str(tmp_path), 3, ckpt_every=2).fit(until=2)
    capsys.readouterr()
    tiny.build(str(tmp_path), 3, ckpt_every=2).fit()
    err = capsys.readouterr().err
    assert f"resumed from {(tmp_path / 'ckpt-00000002.safetensors').absolute()}" in err and "(step 2 of 3)" in err
    again = tiny.build(str(tmp_path), 3, ckpt_every=2)
    again.fit()
    err = capsys.readouterr().err
    assert "nothing left to do" in err and "(step 3 of 3)" in err and again.step == 3


def test_resume_is_bit_identical(tmp_path):
    full = tiny.build(str(tmp_path / "full"), 6, ckpt_every=2)
    full.fit()
    part = tiny.build(str(tmp_path / "part"), 6, ckpt_every=2)
    part.fit(until=4)
    assert [s for s, _ in list_checkpoints(tmp_path / "part")] == [2, 4]
    assert not _same(part.model_state(), full.model_state())
    again = tiny.build(str(tmp_path / "part"), 6, ckpt_every=2)  # new objects, as a new process would
    again.fit()
    assert again.step == 6
    assert _same(again.model_state(), full.model_state())
    assert _same(again.model_state(ema=True), full.model_state(ema=True))
    assert _same(again.optimizer.state_dict()[0], full.optimizer.state_dict()[0])
    assert again.data.state_dict() == full.data.state_dict()
    logs = [[json.loads(ln)["loss"] for ln in (tmp_path / d / "train_log.jsonl").read_text().splitlines()]
            for d in ("full", "part")]
    assert logs[0] == logs[1] and len(logs[0]) == 6
    # the noise matters: the same resume from step 4 with other seeds ends elsewhere
    other = tiny.build(str(tmp_path / "other"), 6, seed=1, resume=str(list_checkpoints(tmp_path / "part")[1][1]))
    other.fit()
    assert not _same(other.model_state(), full.model_state())


def test_keep_last_and_resume_flags(tmp_path):
    t = tiny.build(str(tmp_path), 5, ckpt_every=1, keep_last=2)
    t.fit()
    assert [s for s, _ in list_checkpoints(tmp_path)] == [4, 5]
    with pytest.raises(FileExistsError, match="resume is False"):
        tiny.build(str(tmp_path), 5, resume=False).setup()
    fresh = tiny.build(str(tmp_path / "new"), 5, resume=False)
    fresh.setup()
    assert fresh.step == 0
    chosen = tiny.build(str(tmp_path), 5, resume=str(list_checkpoints(tmp_path)[0][1]))
    chosen.setup()
    assert chosen.step == 4
    tiny.build(str(tmp_path / "noema"), 2, ema=None).fit()
    with pytest.raises(KeyError, match="uses an EMA but the checkpoint has none"):
        tiny.build(str(tmp_path / "noema"), 4).fit()


def test_loss_scaling_static_dynamic_and_overflow_skip(tmp_path):
    kw = dict(noise=0.0, hook=False, ema=None)
    plain = tiny.build(str(tmp_path / "p"), 3, **kw)
    plain.fit()
    dyn = tiny.build(str(tmp_path / "d"), 3, loss_scale="dynamic", loss_scale_value=2.0 ** 10,
                     loss_scale_window=2, **kw)
    dyn.fit()
    assert _maxdiff(dyn.model_state(), plain.model_state()) <= 1e-6  # power-of-two scale: same numbers
    assert float(dyn.scaler.scale_value.asnumpy()) == 2.0 ** 11  # grew once after 2 finite steps
    boom = tiny.build(str(tmp_path / "b"), 2, loss_scale="dynamic", loss_scale_value=3e38, **kw)
    before = boom.model_state()
    m = boom.train_step()
    assert m["skipped"] and _same(boom.model_state(), before) and boom.optimizer.step_count == 0
    assert float(boom.scaler.scale_value.asnumpy()) == pytest.approx(1.5e38)
    static = tiny.build(str(tmp_path / "s"), 3, loss_scale="static", loss_scale_value=256.0, **kw)
    static.fit()
    assert _maxdiff(static.model_state(), plain.model_state()) <= 1e-6
    arrays, meta = static.state()
    assert meta["loss_scaler"]["scale_value"] == 256.0


def test_jit_matches_pynative(tmp_path):
    kw = dict(noise=0.0, ema=0.9, accum=2, batch=2)
    ref = tiny.build(str(tmp_path / "p"), 3, **kw)
    ref.fit()
    jit = tiny.build(str(tmp_path / "j"), 3, jit=True, **kw)
    jit.fit()
    err = _maxdiff(jit.model_state(), ref.model_state())
    assert err <= 1e-5, err


def test_finite_data_gives_a_clear_error(tmp_path):
    t = tiny.build(str(tmp_path), 3)
    t.data = iter([next(t.data)])
    with pytest.raises(RuntimeError, match="ran out at step 1"):
        t.fit()


def test_bad_config_is_refused(tmp_path):
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(output_dir=str(tmp_path), max_steps=3, lr_schedule="linear")
    with pytest.raises(ValueError, match="accum_steps"):
        TrainConfig(output_dir=str(tmp_path), max_steps=3, accum_steps=0)
