"""Long videos on the tiny random pipeline: context windows, prompt travel, FreeInit."""
from __future__ import annotations

import copy

import numpy as np
import pytest
from animatediff_ms.config import InferenceConfig
from animatediff_ms.demo import tiny_random_pipeline

PROJECT = __import__("pathlib").Path(__file__).resolve().parents[1]
INF = InferenceConfig.load(PROJECT / "configs" / "inference" / "inference-v2.yaml")
LIMIT = 8  # the tiny motion modules' trained length (temporal_position_encoding_max_len), kept small
INF.unet_additional_kwargs = copy.deepcopy(INF.unet_additional_kwargs)
INF.unet_additional_kwargs.setdefault("motion_module_kwargs", {})["temporal_position_encoding_max_len"] = LIMIT
KW = dict(height=64, width=64, num_inference_steps=1, guidance_scale=7.5, negative_prompt="bad", seed=5,
          progress=False, output_type="latent")


@pytest.fixture(scope="module")
def pipe():
    return tiny_random_pipeline(INF, seed=1)


def test_one_window_and_one_pass_are_the_plain_pipeline(pipe):
    plain = pipe("a cat", num_frames=4, **KW).latents
    same = pipe("a cat", num_frames=4, context_length=8, free_init_iters=1, **KW).latents
    assert np.array_equal(plain, same)


def test_prompt_travel_with_one_text_is_the_plain_prompt(pipe):
    # a text per frame goes through the frame-by-frame cross-attention; the same keys per query as the
    # grouped path: equal up to float32 summation order
    plain = pipe("a cat", num_frames=4, **KW).latents
    travel = pipe({0: "a cat"}, num_frames=4, **KW).latents
    np.testing.assert_allclose(travel, plain, rtol=1e-4, atol=1e-5)
    two = pipe({0: "a cat", 3: "a dog on a hill"}, num_frames=4, **KW).latents
    assert np.abs(two - plain).max() > 1e-3
    emb = pipe.encode_prompt_travel({0: "a cat", 4: "a dog"}, "bad", True, 6).asnumpy()  # (2, 6, 77, D)
    np.testing.assert_allclose(emb[1, 2], 0.5 * emb[1, 0] + 0.5 * emb[1, 4], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(emb[1, 5], emb[1, 4])
    np.testing.assert_array_equal(emb[0, 0], emb[0, 5])  # the negative prompt on every frame
    with pytest.raises(ValueError, match="frame 9 is outside the video's 6 frames"):
        pipe({0: "a", 9: "b"}, num_frames=6, **KW)


def test_windows_make_videos_longer_than_the_motion_module(pipe):
    limit = LIMIT
    assert pipe.unet.cfg.motion_module_kwargs.temporal_position_encoding_max_len == limit
    with pytest.raises(ValueError, match="use context windows: context_length"):
        pipe("a cat", num_frames=limit + 4, **KW)
    out = pipe({0: "a cat", limit: "a dog"}, num_frames=limit + 4, context_length=limit, context_overlap=2,
               output_type="np", **{k: v for k, v in KW.items() if k != "output_type"})
    assert out.frames.shape == (1, limit + 4, 64, 64, 3) and np.isfinite(out.frames).all()


def test_free_init_passes(pipe):
    plain = pipe("a cat", num_frames=4, **KW).latents
    two = pipe("a cat", num_frames=4, free_init_iters=2, **KW).latents
    assert two.shape == plain.shape and np.isfinite(two).all() and np.abs(two - plain).max() > 1e-4
