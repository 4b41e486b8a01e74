"""The image-to-video pipeline on the tiny random model: fps mapping, seeding, guidance ramp, bad input."""
import mindspore as ms
import numpy as np
import pytest
from svd_ms.pipeline import SVDPipeline
from svd_ms.sampling import denoiser as guided

from common.nn import set_feed_forward_chunk_size
from common.schedulers.guidance import linear_frame_scales

IMAGE = np.random.default_rng(3).uniform(-1, 1, (1, 3, 64, 64)).astype(np.float32)
ARGS = dict(num_frames=3, num_inference_steps=2, progress=False)


def test_fps_is_fed_as_fps_id_minus_one_and_seed_fixes_the_draws(tiny_model):
    pipe = SVDPipeline(tiny_model)
    a = pipe(IMAGE, fps=7, seed=1, **ARGS)
    b = pipe(IMAGE, fps_id=6, seed=1, **ARGS)
    assert a.fps_id == 6.0
    np.testing.assert_allclose(a.frames, b.frames, atol=1e-4)  # CPU kernels may reorder sums between runs (x starts at 700 x noise)
    assert a.frames.shape == (1, 3, 64, 64, 3) and a.latents.shape == (3, 4, 8, 8)
    assert a.frames.min() >= 0.0 and a.frames.max() <= 1.0
    rng = np.random.default_rng(1)  # the same two draws, injected
    cn = rng.standard_normal(IMAGE.shape, dtype=np.float32)
    nz = rng.standard_normal((3, 4, 8, 8), dtype=np.float32)
    c = pipe(IMAGE, fps=7, seed=None, cond_noise=cn, latents=nz, **ARGS)
    np.testing.assert_allclose(c.frames, a.frames, atol=1e-4)
    g = pipe(IMAGE, fps=7, generator=np.random.default_rng(1), height=64, width=64, **ARGS)
    np.testing.assert_allclose(g.frames, a.frames, atol=1e-4)
    d = pipe(IMAGE, fps=7, seed=2, **ARGS)
    assert np.abs(d.latents - a.latents).max() > 1e-3


@pytest.mark.parametrize("mode", ["pynative", "graph"])
def test_memory_knobs_keep_the_denoised_frames(tiny_model, mode):
    """split_cfg (two UNet calls a step) and feed-forward chunks change memory, not the numbers."""
    t = 3
    img = ms.Tensor(IMAGE)
    c, uc = tiny_model.conditioner.get_conditioning(img, img, t, 6.0, 127.0, 0.02)
    denoiser = ms.jit(tiny_model.denoiser.construct) if mode == "graph" else tiny_model.denoiser
    x = ms.Tensor(np.random.default_rng(5).standard_normal((t, 4, 8, 8)).astype(np.float32) * 2.0)
    sigma = ms.Tensor(np.full((t,), 2.0, np.float32))
    whole = guided(denoiser, c, uc, t)(x, sigma).asnumpy()
    try:
        assert set_feed_forward_chunk_size(tiny_model, 7) > 0
        denoiser = ms.jit(tiny_model.denoiser.construct) if mode == "graph" else tiny_model.denoiser
        split = guided(denoiser, c, uc, t, split_cfg=True)(x, sigma).asnumpy()
    finally:
        set_feed_forward_chunk_size(tiny_model, None)
    np.testing.assert_allclose(split, whole, rtol=1e-5, atol=1e-5)


def test_guidance_ramp_is_per_frame():
    scale = linear_frame_scales(4, 1.0, 2.5)
    np.testing.assert_allclose(scale, [1.0, 1.5, 2.0, 2.5])

    def fake(x, sigma, crossattn, vector, concat, ind):  # uncond half -> 0, cond half -> 1
        n = x.shape[0] // 2
        return ms.ops.concat([ms.ops.zeros_like(x[:n]), ms.ops.ones_like(x[n:])], axis=0)

    t = 4
    c = {"crossattn": ms.ops.ones((t, 1, 2)), "vector": ms.ops.ones((t, 3)), "concat": ms.ops.ones((t, 1, 1, 1))}
    fn = guided(fake, c, c, t, 1.0, 2.5)
    out = fn(ms.ops.zeros((t, 1, 1, 1)), ms.ops.ones((t,))).asnumpy()
    np.testing.assert_allclose(out.reshape(-1), scale)  # x_u + s_t (x_c - x_u) = s_t

    def fake_branch(x, sigma, crossattn, vector, concat, ind):  # one branch a call: 0 for uncond, 1 for cond
        assert x.shape[0] == t and ind.shape == (1, t)
        return ms.ops.ones_like(x) * crossattn[0, 0, 0]

    u = dict(c, crossattn=ms.ops.zeros((t, 1, 2)))
    fn = guided(fake_branch, c, u, t, 1.0, 2.5, split_cfg=True)
    out = fn(ms.ops.zeros((t, 1, 1, 1)), ms.ops.ones((t,))).asnumpy()
    np.testing.assert_allclose(out.reshape(-1), scale)


def test_bad_inputs_raise_clear_errors(tiny_model):
    pipe = SVDPipeline(tiny_model)
    with pytest.raises(ValueError, match="multiples of 32"):
        pipe(IMAGE[:, :, :48], **ARGS)
    with pytest.raises(ValueError, match=r"image must be \(1, 3, H, W\)"):
        pipe(IMAGE[0], **ARGS)
    with pytest.raises(ValueError, match="latents have shape"):
        pipe(IMAGE, latents=np.zeros((2, 4, 8, 8), np.float32), **ARGS)
    with pytest.raises(ValueError, match="num_inference_steps must be >= 1"):
        pipe(IMAGE, num_frames=3, num_inference_steps=0)
    with pytest.raises(ValueError, match="resize the image"):
        pipe(IMAGE, width=32, **ARGS)
    with pytest.raises(ValueError, match="decode_chunk_size"):
        pipe(IMAGE, decode_chunk_size=0, **ARGS)
    with pytest.raises(ValueError, match="mode must be"):
        SVDPipeline(tiny_model, mode="fast")


def test_dpm_solver_runs_the_svd_edm_denoiser(tiny_model):
    """SVD's guided EDM denoiser (x0 on sigma) under DPM-Solver++ 2M on the EDM sigmas, besides Euler."""
    from common.schedulers import dpmpp_2m_schedule_from_sigmas, edm_sigmas, sample_dpmpp_2m

    t = 3
    img = ms.Tensor(IMAGE)
    c, uc = tiny_model.conditioner.get_conditioning(img, img, t, 6.0, 127.0, 0.02)
    fn = guided(tiny_model.denoiser, c, uc, t)
    assert (fn.prediction, fn.time) == ("x0", "sigma")
    sig = edm_sigmas(2, 0.002, 700.0)
    x = ms.Tensor(np.random.default_rng(5).standard_normal((t, 4, 8, 8)).astype(np.float32)) * float(sig[0])
    out = sample_dpmpp_2m(fn, x, dpmpp_2m_schedule_from_sigmas(sig), disable=True)
    assert out.shape == (t, 4, 8, 8) and np.isfinite(out.asnumpy()).all()


def test_graph_denoiser_gives_the_frames_of_pynative(tiny_model):
    """The CLI's default: the denoiser compiled once (``mode="graph"``; conditioning and VAE eager), here with the
    branches split as on a machine short of memory, against the all-eager stacked run. The same float32 arithmetic
    through other kernels: one denoiser output differs by at most ~1e-5 of its scale (the split / graph bounds of
    the tests above); the guidance ramp (at most 2.5 here) amplifies a branch's difference at most 1 + 2 * 2.5 = 6
    times, and an Euler EDM step adds the denoised output's difference with a weight 1 - sigma_next / sigma <= 1
    (the latents' own rounding at sigma 700 shrinks by sigma_next / sigma), so the final latents agree to
    ``steps * 6 * 1e-5`` of their scale. The frames must agree within a quarter of an 8-bit level (1e-3)."""
    steps = 3
    kw = dict(num_frames=3, num_inference_steps=steps, seed=4, progress=False)
    eager = SVDPipeline(tiny_model)(IMAGE, **kw)
    pipe = SVDPipeline(tiny_model, mode="graph")
    assert pipe.denoise_fn() is pipe.denoise_fn()  # one compiled function for every step and branch
    graph = pipe(IMAGE, split_cfg=True, **kw)
    assert pipe._compiled is None  # released before the VAE decode
    scale = np.abs(eager.latents).max()
    np.testing.assert_allclose(graph.latents, eager.latents, rtol=0, atol=steps * 6 * 1e-5 * scale)
    np.testing.assert_allclose(graph.frames, eager.frames, rtol=0, atol=1e-3)
