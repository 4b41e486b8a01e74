"""The train.py objective: trainable set by substring, gradients only for it, the training checkpoint rule."""
import mindspore as ms
import numpy as np
import pytest
import torch
from animatediff_ms import loading as L
from animatediff_ms import training as T
from animatediff_ms.config import ConfigError, InferenceConfig, TrainingConfig
from animatediff_ms.demo import tiny_random_pipeline


@pytest.fixture(scope="module")
def v1(tiny_weights):
    inf = InferenceConfig.load(tiny_weights["root"] / "configs" / "inference" / "inference-v1.yaml")
    return tiny_random_pipeline(inf, seed=3)


def test_trainable_parameters_follow_the_substring_rule(v1):
    unet = v1.unet
    names = [n for n, _ in unet.parameters_and_names()]
    picked = T.trainable_parameters(unet, ["motion_modules."])
    by_id = {id(p): n for n, p in unet.parameters_and_names()}
    chosen = [by_id[id(p)] for p in picked]
    assert chosen == [n for n in names if "motion_modules." in n] and chosen  # model order, every motion weight
    assert all(p.requires_grad == ("motion_modules." in n) for n, p in unet.parameters_and_names())
    # any substring, anywhere in the name: spatial and temporal proj_out alike, plus conv_in
    chosen = [by_id[id(p)] for p in T.trainable_parameters(unet, ("proj_out", "conv_in."))]
    assert chosen == [n for n in names if "proj_out" in n or "conv_in." in n]
    assert any("attentions." in n for n in chosen) and any("motion_modules." in n for n in chosen)
    assert [by_id[id(p)] for p in T.trainable_parameters(unet, "conv_out")] == ["conv_out.weight", "conv_out.bias"]
    T.trainable_parameters(unet, ["motion_modules."])


def test_loss_gradient_reaches_only_the_trainable_parameters(v1):
    unet, te = v1.unet, v1.text_encoder
    params = T.trainable_parameters(unet, ["motion_modules."])
    rng = np.random.default_rng(0)
    latents = rng.standard_normal((1, 4, 2, 16, 16)).astype(np.float32)
    noise = rng.standard_normal(latents.shape).astype(np.float32)
    t = np.array([500], np.int64)
    ids = v1.tokenize("a robot")
    out = T.training_loss(unet, te, v1.scheduler, latents, noise, t, ids)
    loss, grads, norm = T.loss_and_grads(unet, te, v1.scheduler, latents, noise, t, ids)
    assert unet.training
    np.testing.assert_allclose(loss.asnumpy(), out["loss"].asnumpy(), rtol=1e-6)
    np.testing.assert_allclose(out["loss"].asnumpy(), np.mean((out["model_out"].asnumpy() - noise) ** 2), rtol=1e-5)
    assert len(grads) == len(params) and all(g.shape == p.shape for g, p in zip(grads, params))
    g = [x.asnumpy() for x in grads]
    np.testing.assert_allclose(norm.asnumpy(), np.sqrt(sum((x.astype(np.float64) ** 2).sum() for x in g)), rtol=1e-5)
    assert sum(np.abs(x).sum() > 0 for x in g) > len(g) // 2
    # default: the parameters marked trainable, the same gradients
    _, again, _ = T.loss_and_grads(unet, te, v1.scheduler, latents, noise, t, ids, params=None)
    assert all(np.array_equal(a.asnumpy(), b) for a, b in zip(again, g))
    # the gradient is the loss's: a finite difference along it
    k = int(np.argmax([np.linalg.norm(x) for x in g]))  # (some are exactly zero: a bias the next GroupNorm removes)
    p, d = params[k], g[k]
    base = p.asnumpy().copy()
    h = 1e-2 * d / np.linalg.norm(d)
    vals = []
    for s in (1, -1):
        p.set_data(ms.Tensor(base + s * h))
        vals.append(float(T.training_loss(unet, te, v1.scheduler, latents, noise, t, ids)["loss"].asnumpy()))
    p.set_data(ms.Tensor(base))
    np.testing.assert_allclose((vals[0] - vals[1]) / 2, float((d * h).sum()), rtol=5e-2)


def test_add_noise_is_the_ddpm_forward_process():
    x, n = np.ones((2, 4, 1, 2, 2), np.float32), np.zeros((2, 4, 1, 2, 2), np.float32)
    cfg = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "linear"}
    y = T.add_noise(cfg, x, n, np.array([0, 999])).asnumpy()
    ac = np.cumprod(1 - np.linspace(0.00085, 0.012, 1000, dtype=np.float32))
    np.testing.assert_allclose(y[:, 0, 0, 0, 0], np.sqrt(ac[[0, 999]]), rtol=1e-5)
    with pytest.raises(ValueError, match="num_train_timesteps"):
        T.add_noise(cfg, x, n, np.array([0, 1000]))


def test_training_checkpoint_rule(tiny_weights, tmp_path):
    tw = tiny_weights
    mm = tw["root"] / "models" / "Motion_Module" / "mm_tiny_v1.ckpt"
    unet = tw["pipes"][1].unet
    with pytest.raises(L.WeightsError, match="pos_encoder.pe"):  # the released layout: refused for training
        L.load_unet_checkpoint(unet, mm)
    sd = {k: v for k, v in L.read_weights(mm, "x").items() if "pos_encoder.pe" not in k}
    path = tmp_path / "init.ckpt"
    torch.save({"global_step": 0, "state_dict": {k: torch.from_numpy(v) for k, v in sd.items()}}, path)
    assert L.load_unet_checkpoint(unet, path) == len(sd)
    torch.save({"state_dict": {"down_blocks.0.motion_modules.0.nope.weight": torch.zeros(1)}}, path)
    with pytest.raises(ValueError, match="nope"):  # unexpected keys are refused (missing ones are not)
        L.load_unet_checkpoint(unet, path)


def test_training_config_reads_the_original_schema(tmp_path):
    y = tmp_path / "training.yaml"
    y.write_text("unet_additional_kwargs: {use_motion_module: true, motion_module_type: Vanilla}\n"
                 "noise_scheduler_kwargs: {beta_schedule: linear, steps_offset: 1}\n"
                 "trainable_modules: ['motion_modules.']\ngradient_accumulation_steps: 4\nuse_adamw8bit: true\n"
                 "validation_steps_tuple: [2, 50]\nmax_grad_norm: 0.5\n")
    cfg = TrainingConfig.load(y)
    assert cfg.trainable_modules == ("motion_modules.",) and cfg.max_grad_norm == 0.5
    assert cfg.noise_scheduler_kwargs.steps_offset == 1
    y.write_text("unet_additional_kwargs: {use_motion_module: true, motion_module_type: Vanilla}\n"
                 "trainable_modules: ['motion_modules.']\nlearning_rat: 1.0\n")
    with pytest.raises(ConfigError, match="learning_rat.*learning_rate"):
        TrainingConfig.load(y)
