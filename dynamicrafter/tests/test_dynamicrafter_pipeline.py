"""Guidance, schedule and the synthesis pipeline on the tiny model."""
from __future__ import annotations

import mindspore as ms
import numpy as np
import pytest
from dynamicrafter_ms.pipeline import DynamiCrafterPipeline, denoiser, make_schedule


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
    guided = denoiser(tiny_model, c, u, 7.5, 0.7)(x, t).asnumpy()
    ref = eu + 7.5 * (ec - eu)
    ref = 0.7 * ref * ec.std(ddof=1) / ref.std(ddof=1) + 0.3 * ref
    np.testing.assert_allclose(guided, ref, atol=1e-4)
    multi = denoiser(tiny_model, c, u, 7.5, 0.0, uncond_img=ui, cfg_img=2.0)(x, t).asnumpy()
    np.testing.assert_allclose(multi, eu + 2.0 * (eui - eu) + 7.5 * (ec - eui), atol=1e-4)
    single = denoiser(tiny_model, c, u, 1.0)(x, t).asnumpy()  # scale 1: the cond branch only
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


def test_pipeline_shapes_seed_and_negative_prompt(tiny_model):
    rng = np.random.default_rng(1)
    image = rng.uniform(-1, 1, (1, 3, 64, 64)).astype(np.float32)
    videos = np.repeat(image[:, :, None], 2, axis=2)
    pipe = DynamiCrafterPipeline(tiny_model)
    kw = dict(num_inference_steps=1, eta=1.0, guidance_scale=7.5, progress=False)
    a = pipe("a dog", videos, seed=5, **kw)
    b = pipe(["a dog"], image, num_frames=2, generator=np.random.default_rng(5), **kw)  # (B, 3, H, W) image
    assert a.frames.shape == (1, 2, 64, 64, 3) and a.frames.dtype == np.float32 and a.latents.shape == (1, 4, 2, 8, 8)
    assert 0.0 <= a.frames.min() and a.frames.max() <= 1.0
    np.testing.assert_array_equal(a.frames, b.frames)
    neg = pipe("a dog", videos, seed=5, negative_prompt="blurry", **kw)
    assert not np.array_equal(neg.frames, a.frames)  # runs are bit-reproducible, so any change comes from the prompt
    two = pipe("a dog", videos, seed=5, num_videos_per_prompt=2, loop=True, num_inference_steps=1, progress=False)
    assert two.frames.shape == (2, 2, 64, 64, 3) and np.abs(two.frames[0] - two.frames[1]).max() > 1e-4
    lat = pipe("a dog", videos, seed=5, output_type="latent", **kw)
    assert lat.frames is None
    np.testing.assert_array_equal(lat.latents, a.latents)
    with pytest.raises(ValueError, match="2 prompts for a batch of 1"):
        pipe(["a", "b"], videos, **kw)
    with pytest.raises(ValueError, match="num_frames is required"):
        pipe("a", image, **kw)
    with pytest.raises(ValueError, match="resize the image"):
        pipe("a", videos, height=32, **kw)
    with pytest.raises(ValueError, match="output_type"):
        pipe("a", videos, output_type="pil", **kw)


def test_other_samplers_run_the_dynamicrafter_denoiser(tiny_model):
    """The DC denoiser (eps here) under DPM-Solver++ 2M on the model's own alphas_cumprod."""
    from common.schedulers import make_dpmpp_2m_schedule, sample_dpmpp_2m, sample_euler_edm

    rng = np.random.default_rng(4)
    c, u = _branch(rng), _branch(rng)
    fn = denoiser(tiny_model, c, u, 7.5)
    x = ms.Tensor(rng.standard_normal((1, 4, 2, 8, 8)).astype(np.float32))
    sched = make_dpmpp_2m_schedule(tiny_model.buffer("alphas_cumprod"), 3)
    out = sample_dpmpp_2m(fn, x, sched, disable=True)
    assert out.shape == x.shape and np.isfinite(out.asnumpy()).all()
    with pytest.raises(ValueError, match="time='sigma'"):
        sample_euler_edm(fn, x, [1.0, 0.0], disable=True)


def test_split_cfg_calls_each_branch_alone_with_the_same_result(tiny_model):
    """--split_cfg: one UNet call per branch (batch b) instead of one stacked call; the same guided output up to
    float32 rounding (kernels of another batch size sum in another order: ~1e-6 of the output's scale)."""
    rng = np.random.default_rng(5)
    c, u, ui = _branch(rng), _branch(rng), _branch(rng)
    x = ms.Tensor(rng.standard_normal((1, 4, 2, 8, 8)).astype(np.float32))
    t = ms.Tensor(np.array([500], np.int64))
    calls = []
    apply = lambda *a: calls.append(a[0].shape[0]) or tiny_model.apply_model(*a)  # noqa: E731
    for kw in ({}, {"uncond_img": ui, "cfg_img": 2.0}):  # CFG (2 branches) and two-scale CFG (3)
        calls.clear()
        whole = denoiser(tiny_model, c, u, 7.5, 0.7, apply=apply, **kw)(x, t).asnumpy()
        n = calls[0]
        calls.clear()
        split = denoiser(tiny_model, c, u, 7.5, 0.7, apply=apply, split=True, **kw)(x, t).asnumpy()
        assert calls == [1] * n and n == (3 if kw else 2)
        np.testing.assert_allclose(split, whole, rtol=0, atol=1e-5 * np.abs(whole).max())


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


def test_graph_unet_gives_the_frames_of_pynative(tiny_model):
    """The CLI's default: the UNet call compiled once (``jit=True``; encoders and VAE eager), here with the
    branches split as on a machine short of memory, against the all-eager stacked run. The same float32
    arithmetic through other kernels (fused, other summation orders): one guided call differs by at most
    ~1e-5 of its scale (the bound of the split test above); guidance at 7.5 amplifies a branch's difference at
    most 1 + 2 * 7.5 = 16 times, and DDIM with eta 0 adds one such difference per step (its coefficients stay
    below the final latent's scale), so the final latents agree to ``steps * 16 * 1e-5`` of their scale. The
    frames must agree within a quarter of an 8-bit level (1e-3 of [0, 1]): the same video."""
    from dynamicrafter_ms.pipeline import DynamiCrafterPipeline

    image = np.random.default_rng(2).uniform(-1, 1, (1, 3, 64, 64)).astype(np.float32)
    steps = 3
    kw = dict(num_frames=2, num_inference_steps=steps, guidance_scale=7.5, eta=0.0, seed=4, progress=False)
    eager = DynamiCrafterPipeline(tiny_model)("a boat", image, **kw)
    pipe = DynamiCrafterPipeline(tiny_model, jit=True)
    graph = pipe("a boat", image, split_cfg=True, **kw)
    assert pipe._compiled is None  # released before the VAE decode
    assert pipe.unet_apply() is pipe.unet_apply()  # one compiled function for every step and branch of a call
    scale = np.abs(eager.latents).max()
    np.testing.assert_allclose(graph.latents, eager.latents, rtol=0, atol=steps * 16 * 1e-5 * scale)
    np.testing.assert_allclose(graph.frames, eager.frames, rtol=0, atol=1e-3)
