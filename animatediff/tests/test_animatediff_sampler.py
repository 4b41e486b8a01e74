"""Samplers on a tiny random inflated UNet run as a compiled graph (``ms.jit``): graph mode equals PyNative,
and DPM-Solver++(2M) converges to the DDIM result (both solve the same probability-flow ODE)."""
import mindspore as ms
import numpy as np
import pytest
from animatediff_ms.config import InferenceConfig, UNet3DConfig
from animatediff_ms.demo import TINY_UNET
from animatediff_ms.models import UNet3DConditionModel

from common.schedulers.ddim import DDIMSchedule, diffusers_alphas_cumprod, sample_ddim
from common.schedulers.denoiser import Denoiser
from common.schedulers.dpm_solver import make_dpmpp_2m_schedule, sample_dpmpp_2m

PROJECT = __import__("pathlib").Path(__file__).resolve().parents[1]
INF = InferenceConfig.load(PROJECT / "configs" / "inference" / "inference-v2.yaml")
AC = diffusers_alphas_cumprod(INF.scheduler.beta_schedule, 1000, INF.scheduler.beta_start, INF.scheduler.beta_end)


@pytest.fixture(scope="module")
def tiny():
    ms.set_seed(3)
    net = UNet3DConditionModel(UNet3DConfig.from_files(dict(TINY_UNET, cross_attention_dim=16),
                                                       INF.unet_additional_kwargs))
    rng = np.random.default_rng(3)
    for name, p in net.parameters_and_names():  # let the motion modules act
        if "motion_modules." in name and ".proj_out." in name:
            p.set_data(ms.Tensor((rng.standard_normal(p.shape) * 0.05).astype(np.float32)))
    x = ms.Tensor(rng.standard_normal((1, 4, 3, 8, 8)).astype(np.float32))
    ctx = ms.Tensor(rng.standard_normal((1, 7, 16)).astype(np.float32))
    return net, ms.jit(net.construct), x, ctx


def ddim_on(ts):
    ts = np.asarray(ts, np.int64)
    al = AC[ts]
    return DDIMSchedule(timesteps=ts, alphas=al, alphas_prev=np.concatenate([al[1:], [np.float32(1)]]),
                        sigmas=np.zeros_like(al), sqrt_alphas=np.sqrt(al), sqrt_one_minus_alphas=np.sqrt(1 - al))


def grid(n):
    """n steps from t=999 to t=1 (then the last step to a clean sample)."""
    return np.round(np.linspace(999, 1, n)).astype(np.int64)


def test_graph_mode_equals_pynative(tiny):
    net, jitted, x, ctx = tiny
    t = ms.Tensor(np.array([601], np.int64))
    np.testing.assert_allclose(jitted(x, t, ctx).asnumpy(), net(x, t, ctx).asnumpy(), atol=1e-5)


def test_dpmpp_2m_converges_to_the_ddim_result(tiny):
    _, unet, x, ctx = tiny

    model = Denoiser(lambda z, t: unet(z, t[:1], ctx), "eps")

    ref = sample_ddim(model, x, ddim_on(grid(160)), disable=True).asnumpy()
    err_dpm, err_ddim = [], []
    for n in (5, 10, 20):
        out = sample_dpmpp_2m(model, x, make_dpmpp_2m_schedule(AC, n, timesteps=grid(n)), disable=True).asnumpy()
        err_dpm.append(np.abs(out - ref).max())
        err_ddim.append(np.abs(sample_ddim(model, x, ddim_on(grid(n)), disable=True).asnumpy() - ref).max())
    scale = float(np.abs(ref).max())
    assert err_dpm[0] > err_dpm[1] > err_dpm[2], err_dpm
    assert err_dpm[1] / err_dpm[2] > 2.5, err_dpm  # faster than DDIM's first order (2x per doubling)
    assert all(d < c for d, c in zip(err_dpm, err_ddim)) and err_dpm[2] < err_ddim[2] / 2, (err_dpm, err_ddim)
    assert err_dpm[2] < 0.05 * scale, (err_dpm, scale)


def test_dpmpp_2m_reaches_the_500_step_ddim_result_in_fewer_steps():
    """Through the pipeline (CFG 7.5, diffusers' DDIM of the v2 config, fixed prompt and start noise): the error
    against 500-step DDIM (eta 0) falls with the DPM-Solver++ steps, and 25 of them beat 50 DDIM steps."""
    from animatediff_ms.demo import tiny_random_pipeline
    from animatediff_ms.sampler_convergence import runner

    from common.schedulers.convergence import convergence_errors

    pipe = tiny_random_pipeline(INF, seed=2, jit=True)
    errors = convergence_errors(runner(pipe), {"ddim": (50,), "dpmpp_2m": (5, 10, 25)}, ("ddim", 500))
    dpm = errors["dpmpp_2m"]
    assert dpm[5] > dpm[10] > dpm[25], errors
    assert dpm[25] < errors["ddim"][50], errors


def test_graph_unet_gives_the_frames_of_pynative():
    """The CLI's default: the UNet call compiled once (``jit=True``; text encoder and VAE eager), here with the
    guidance branches split (two calls of one batch-1 graph) as on a machine short of memory, against the
    all-eager stacked run of the same pipeline. The same float32 arithmetic through other kernels: one UNet call
    differs by at most ~1e-5 of its scale (1e-5 absolute on outputs of ~1 in the graph test above); guidance at 7.5
    amplifies a branch's difference at most 1 + 2 * 7.5 = 16 times, and DDIM with eta 0 adds one such difference
    per step (its coefficients stay below the final latent's scale), so the final latents agree to
    ``steps * 16 * 1e-5`` of their scale. The frames must agree within a quarter of an 8-bit level (1e-3)."""
    from animatediff_ms.demo import tiny_random_pipeline

    pipe = tiny_random_pipeline(INF, seed=2)
    steps = 3
    kw = dict(num_frames=3, height=64, width=64, num_inference_steps=steps, guidance_scale=7.5, seed=4,
              negative_prompt="blurry", progress=False)
    eager = pipe("a fish swimming", **kw)
    pipe.jit = True
    assert pipe.compiled("unet") is pipe.compiled("unet")  # one compiled function for every step and branch
    graph = pipe("a fish swimming", split_cfg=True, **kw)
    assert pipe._compiled == {}  # released before the VAE decode
    scale = np.abs(eager.latents).max()
    np.testing.assert_allclose(graph.latents, eager.latents, rtol=0, atol=steps * 16 * 1e-5 * scale)
    np.testing.assert_allclose(graph.frames, eager.frames, rtol=0, atol=1e-3)
