"""Guidance, schedule and the synthesis pipeline on the tiny model."""
from __future__ import annotations

import mindspore as ms
import numpy as np
import pytest
from dynamicrafter_ms.pipeline import image_guided_synthesis
from dynamicrafter_ms.sampler import guided_denoiser, make_schedule


def _branch(rng, b=1, t=2, length=77 + 32, fs=3):
    return {"context": ms.Tensor(rng.standard_normal((b, length, 16)).astype(np.float32)),
            "c_concat": ms.Tensor(rng.standard_normal((b, 4, t, 8, 8)).astype(np.float32)),
            "fs": ms.Tensor(np.full((b,), fs, np.int64))}


def test_guidance_batches_branches_like_separate_calls(tiny_model):
    rng = np.random.default_rng(0)
    c, u, ui = _branch(rng), _branch(rng), _branch(rng)
    x = ms.Tensor(rng.standard_normal((1, 4, 2, 8, 8)).astype(np.float32))
    t = ms.Tensor(np.array([501], np.int64))

    def call(br):
        return tiny_model.apply_model(x, t, br["c_concat"], br["context"], br["fs"]).asnumpy()

    ec, eu, eui = call(c), call(u), call(ui)
    guided = guided_denoiser(tiny_model, c, u, 7.5, 0.7)(x, t).asnumpy()
    ref = eu + 7.5 * (ec - eu)
    ref = 0.7 * ref * ec.std(ddof=1) / ref.std(ddof=1) + 0.3 * ref
    np.testing.assert_allclose(guided, ref, atol=1e-4)
    multi = guided_denoiser(tiny_model, c, u, 7.5, 0.0, uncond_img=ui, cfg_img=2.0)(x, t).asnumpy()
    np.testing.assert_allclose(multi, eu + 2.0 * (eui - eu) + 7.5 * (ec - eui), atol=1e-4)
    single = guided_denoiser(tiny_model, c, u, 1.0)(x, t).asnumpy()  # scale 1: the cond branch only
    np.testing.assert_allclose(single, ec, atol=1e-5)


def test_schedule_from_model_buffers(tiny_model):
    s = make_schedule(tiny_model, 4, "uniform", 1.0)
    assert s.timesteps.tolist() == [751, 501, 251, 1]
    ac = tiny_model.buffer("alphas_cumprod")
    np.testing.assert_array_equal(s.alphas, ac[[751, 501, 251, 1]])
    assert s.alphas_prev[-1] == ac[0]  # the last step goes to alphas_cumprod[0], not 1
    assert make_schedule(tiny_model, 3, "uniform_trailing", 0.0).timesteps.tolist() == [999, 666, 332]
    with pytest.raises(ValueError, match="quad"):
        make_schedule(tiny_model, 4, "quad")
    with pytest.raises(ValueError, match="ddim_steps"):
        make_schedule(tiny_model, 0)


def test_synthesis_shapes_seed_and_negative_prompt(tiny_model):
    rng = np.random.default_rng(1)
    videos = np.repeat(rng.uniform(-1, 1, (1, 3, 1, 64, 64)).astype(np.float32), 2, axis=2)
    kw = dict(ddim_steps=1, ddim_eta=1.0, unconditional_guidance_scale=7.5, progress=False)
    a = image_guided_synthesis(tiny_model, ["a dog"], videos, generator=np.random.default_rng(5), **kw)
    b = image_guided_synthesis(tiny_model, ["a dog"], videos, generator=np.random.default_rng(5), **kw)
    assert a.shape == (1, 1, 3, 2, 64, 64) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    neg = image_guided_synthesis(tiny_model, ["a dog"], videos, generator=np.random.default_rng(5),
                                 negative_prompt="blurry", **kw)
    assert not np.array_equal(neg, a)  # runs are bit-reproducible, so any change comes from the prompt
    two = image_guided_synthesis(tiny_model, ["a dog"], videos, generator=np.random.default_rng(5), n_samples=2,
                                 loop=True, ddim_steps=1, unconditional_guidance_scale=1.0, progress=False)
    assert two.shape == (1, 2, 3, 2, 64, 64) and np.abs(two[0, 0] - two[0, 1]).max() > 1e-4
    with pytest.raises(ValueError, match="2 prompts for a batch of 1"):
        image_guided_synthesis(tiny_model, ["a", "b"], videos, **kw)


def test_float16_denoiser(tiny_dir):
    from dynamicrafter_ms.config import DynamiCrafterConfig
    from dynamicrafter_ms.model import DynamiCrafter

    model = DynamiCrafter(DynamiCrafterConfig.from_yaml(tiny_dir / "tiny256.yaml"))
    model.set_train(False)
    rng = np.random.default_rng(2)
    br = _branch(rng)
    x = ms.Tensor(rng.standard_normal((1, 4, 2, 8, 8)).astype(np.float32))
    t = ms.Tensor(np.array([500], np.int64))
    ref = model.apply_model(x, t, br["c_concat"], br["context"], br["fs"]).asnumpy()
    model.model.set_dtype(ms.float16)
    assert model.unet.input_blocks[1][0].in_layers[2].weight.dtype == ms.float16
    assert model.unet.input_blocks[1][0].in_layers[0].weight.dtype == ms.float32  # norms stay float32
    out = model.apply_model(x, t, br["c_concat"], br["context"], br["fs"])
    assert out.dtype == ms.float32
    assert np.abs(out.asnumpy() - ref).max() <= 1e-2 * max(1.0, np.abs(ref).max())
