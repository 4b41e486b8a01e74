"""Fine-tuning the tiny SVD in-process: the loss falls, temporal_only freezes the rest, batch draws, EMA, scaling."""
import itertools

import mindspore as ms
import numpy as np
import pytest

from common.train import TrainConfig, Trainer
from svd_ms.data import VideoDataLoader, VideoDataset
from svd_ms.model import SVDModel, load_svd_model
from svd_ms.training import FinetuneOptions, build_loss, export_weights, make_batch_fn, trainable_parameters

from .conftest import TINY_CONFIG, make_videos, randomize


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    csv = make_videos(tmp_path_factory.mktemp("videos"), n=2)
    return VideoDataset(None, csv, frames=2, step=2, size=(32, 32))


def _model():
    ms.set_seed(5)
    model = SVDModel.from_config_file(TINY_CONFIG)
    randomize(model, seed=5)
    return model


def _trainer(model, data, tmp_path, steps, temporal_only=True, repeat=False, **cfg):
    loss_cfg = model.cfg.loss
    opts = FinetuneOptions(temporal_only=temporal_only, amp_level=cfg.pop("amp_level", "O0"))
    loader = VideoDataLoader(data, 1, seed=0)
    it = itertools.repeat(next(loader)) if repeat else loader
    params = trainable_parameters(model, temporal_only)
    tc = TrainConfig(output_dir=str(tmp_path), max_steps=steps, lr=cfg.pop("lr", 1e-3), lr_schedule="constant",
                     progress=False, save_final=False, **cfg)
    return Trainer(build_loss(model, loss_cfg, opts.amp_level), params, it, tc, batch_fn=make_batch_fn(model, loss_cfg, opts))


def test_loss_falls_on_a_repeated_batch_training_only_temporal_layers(data, tmp_path):
    model = _model()
    before = {p.name: p.asnumpy().copy() for p in model.get_parameters()}
    losses = []
    tr = _trainer(model, data, tmp_path, 6, repeat=True, ema_decay=0.5)
    tr.on_step_end = lambda t, m: losses.append(m["loss"])
    tr.fit()
    assert len(losses) == 6
    assert losses[-1] < 0.7 * losses[0], losses
    assert sum(b < a for a, b in zip(losses, losses[1:])) >= 4, losses
    trained = {p.name for p in trainable_parameters(model, True)}
    changed = {p.name for p in model.get_parameters() if not np.array_equal(before[p.name], p.asnumpy())}
    assert changed == trained  # temporal_only: exactly the temporal layers moved
    # the EMA of the trained parameters exports as a checkpoint that loads for inference
    ema = tr.model_state(ema=True)
    path = export_weights(model, tmp_path / "ft.safetensors", ema)
    loaded, report = load_svd_model(TINY_CONFIG, path)
    assert report.ok
    got = {p.name: p.asnumpy() for p in loaded.get_parameters()}
    name = sorted(ema)[0]
    np.testing.assert_array_equal(got[name], ema[name])
    assert not np.array_equal(ema[name], {p.name: p.asnumpy() for p in model.get_parameters()}[name])
    spatial = "model.diffusion_model.input_blocks.1.0.in_layers.2.weight"
    np.testing.assert_array_equal(got[spatial], before[spatial])


def test_full_unet_in_fp16_with_dynamic_loss_scale_moves_spatial_layers_only(data, tmp_path):
    model = _model()
    before = {p.name: p.asnumpy().copy() for p in model.get_parameters()}
    metrics = []
    tr = _trainer(model, data, tmp_path, 1, temporal_only=False, amp_level="O2", loss_scale="dynamic",
                  loss_scale_value=1024.0)
    tr.on_step_end = lambda t, m: metrics.append(m)
    tr.fit()
    m = metrics[0]
    assert np.isfinite(m["loss"]) and m["loss_scale"] == 1024.0 and m["skipped"] is False
    changed = {p.name for p in model.get_parameters() if not np.array_equal(before[p.name], p.asnumpy())}
    assert "model.diffusion_model.input_blocks.1.0.in_layers.2.weight" in changed
    assert len(changed) > 0.9 * len(trainable_parameters(model, False))
    assert not [n for n in changed if not n.startswith("model.diffusion_model.")]  # encoders/VAE stay frozen


def test_batch_draws_are_keyed_by_the_sample(data):
    model = _model()
    cfg = model.cfg.loss
    fn = make_batch_fn(model, cfg, FinetuneOptions(seed=3))
    batch = VideoDataLoader(data, 2, seed=0, shuffle=False).__next__()
    a, b = fn(batch), fn(batch, np.random.default_rng(99))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.asnumpy(), y.asnumpy())
    latents, crossattn, vector, concat, sigmas, noise, ind = a
    assert latents.shape == (4, 4, 4, 4) and crossattn.shape == (4, 1, 32) and vector.shape == (4, 24)
    assert concat.shape == (4, 4, 4, 4) and sigmas.shape == (4,) and ind.shape == (2, 2)
    # the same sample in another batch position gets the same draws
    single = tuple(x[1:2] for x in batch)
    one = fn(single)
    np.testing.assert_array_equal(one[4].asnumpy(), sigmas.asnumpy()[2:])
    dropped = make_batch_fn(model, cfg, FinetuneOptions(ucg_rate=1.0))(batch)
    assert not dropped[1].asnumpy().any() and not dropped[3].asnumpy().any()


@pytest.mark.parametrize("jit", [False, True], ids=["pynative", "graph"])
def test_recompute_gives_the_same_loss_and_gradients(data, jit):
    model = _model()
    loss_cfg = model.cfg.loss
    batch = make_batch_fn(model, loss_cfg, FinetuneOptions())(next(VideoDataLoader(data, 2, seed=0)))
    params = trainable_parameters(model, True)
    results = []
    for recompute in (False, True):
        step = ms.value_and_grad(build_loss(model, loss_cfg, recompute=recompute), None, params)
        lv, grads = (ms.jit(step) if jit else step)(*batch)
        assert model.unet.recompute_blocks is recompute
        results.append((float(lv.asnumpy()), [g.asnumpy() for g in grads]))
    (l0, g0), (l1, g1) = results
    assert l1 == pytest.approx(l0, rel=1e-6)
    assert max(float(np.abs(g).max()) for g in g0) > 0
    for a, b, p in zip(g0, g1, params):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7, err_msg=p.name)
