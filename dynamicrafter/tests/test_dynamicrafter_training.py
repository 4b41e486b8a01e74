"""The fine-tuning loss functions (``dynamicrafter_ms.training``) beyond the golden cases: dropout bands,
drawn randomness, the eps parameterisation, and gradients reaching the trainable parts."""
from __future__ import annotations

import mindspore as ms
import numpy as np
import pytest
from dynamicrafter_ms.training import draw_randoms, dropout_masks, lvlb_weights, training_loss


def test_dropout_bands():
    drop_text, keep_image = dropout_masks([0.0, 0.049, 0.05, 0.099, 0.1, 0.149, 0.15, 0.9], 0.05)
    assert drop_text.tolist() == [True, True, True, True, False, False, False, False]
    assert keep_image.tolist() == [1, 1, 0, 0, 0, 0, 1, 1]


def _video(b=2, t=2):
    return np.random.default_rng(0).uniform(-1, 1, (b, 3, t, 64, 64)).astype(np.float32)


def test_drawn_randomness_is_reproducible_and_in_range(tiny_model):
    rng = np.random.default_rng(0)
    d = draw_randoms(tiny_model, 3, 2, rng)
    assert d["t"].dtype == np.int64 and d["t"].min() >= 0 and d["t"].max() < tiny_model.num_timesteps
    assert d["cond_frame_index"] == 0 and (d["random_num"] < 1).all()
    assert (draw_randoms(tiny_model, 3, 2, rng, random_uncond=False)["random_num"] == 1).all()
    a, b = (training_loss(tiny_model, _video(), ["a", "b"], [3, 3], generator=np.random.default_rng(5))["loss"]
            for _ in range(2))
    assert np.isfinite(a.asnumpy()) and a.asnumpy() == b.asnumpy()


def test_eps_model_target_and_vlb_weights(tiny_model):
    """The 256-style tiny model is eps: target = noise; its VLB weights are finite with w[0] = w[1]."""
    noise = np.random.default_rng(1).standard_normal((2, 4, 2, 8, 8)).astype(np.float32)
    out = training_loss(tiny_model, _video(), ["a", "b"], [3, 3], random_num=[1.0, 1.0], t=[0, 999], noise=noise,
                        generator=np.random.default_rng(2))
    np.testing.assert_array_equal(out["target"].asnumpy(), noise)
    w = lvlb_weights(tiny_model)
    assert np.isfinite(w).all() and w[0] == w[1]
    np.testing.assert_allclose(out["loss"].asnumpy(), out["loss_simple"].asnumpy(), rtol=1e-6)


def test_gradients_reach_unet_and_resampler(tiny_model):
    params = [p for p in tiny_model.trainable_params()
              if p.name.startswith(("model.diffusion_model.out", "image_proj_model.proj_out"))]
    assert params
    video = _video()

    def loss_fn():
        return training_loss(tiny_model, video, ["a", "b"], [3, 3], random_num=[1.0, 1.0], t=[10, 500],
                             generator=np.random.default_rng(3))["loss"]

    grads = ms.grad(loss_fn, None, params)()
    assert all(np.abs(g.asnumpy()).sum() > 0 for g in grads)


def test_cond_frame_outside_the_video_is_refused(tiny_model):
    with pytest.raises(ValueError, match="outside the video's 2 frames"):
        training_loss(tiny_model, _video(), ["a", "b"], [3, 3], cond_frame_index=2, generator=np.random.default_rng(0))
