"""DPM-Solver++ 2M on DynamiCrafter: the same result as the original's deterministic DDIM in fewer steps.

On the tiny models (256-style eps; 512-style v with zero terminal SNR, dynamic rescale and guidance rescale),
with a fixed start noise and conditioning: the relative error of the final latent against a 500-step DDIM
(eta 0) falls with the step count, and 25 DPM-Solver++ steps land closer than 50 DDIM steps.
Numbers: README "Samplers" (``scripts/sampler_convergence.py``).
"""
from __future__ import annotations

import numpy as np
import pytest
from dynamicrafter_ms.pipeline import DynamiCrafterPipeline, make_dpm_schedule, sampler_schedule
from dynamicrafter_ms.sampler_convergence import runner

from common.schedulers.convergence import convergence_errors

STEPS = {"ddim": (50,), "dpmpp_2m": (5, 10, 25)}


@pytest.fixture(scope="module")
def tiny512(tiny_dir, dc):
    from dynamicrafter_ms.config import DynamiCrafterConfig
    from dynamicrafter_ms.model import DynamiCrafter

    model = DynamiCrafter(DynamiCrafterConfig.from_yaml(tiny_dir / "tiny512.yaml"))
    dc.randomize(model)
    model.set_train(False)
    return model


def _check(errors):
    dpm, ddim50 = errors["dpmpp_2m"], errors["ddim"][50]
    assert dpm[5] > dpm[10] > dpm[25], errors
    assert dpm[25] < ddim50, errors


def test_dpmpp_2m_converges_to_ddim_eps_256(tiny_model):
    _check(convergence_errors(runner(tiny_model), STEPS, ("ddim", 500)))


def test_dpmpp_2m_converges_to_ddim_v_zero_snr_rescale_512(tiny512):
    assert tiny512.parameterization == "v" and tiny512.use_dynamic_rescale
    assert tiny512.buffer("alphas_cumprod")[-1] == 0  # zero terminal SNR: the first step starts at lambda = -inf
    _check(convergence_errors(runner(tiny512), STEPS, ("ddim", 500)))


def test_dpm_schedule_of_the_model(tiny512, tiny_model):
    s = make_dpm_schedule(tiny512, 4)  # uniform in log-SNR from -lambda(0) (zero SNR) to lambda(0)
    assert s.timesteps.tolist() == [999, 763, 337, 28]
    ac = tiny512.buffer("alphas_cumprod")
    assert s.alpha[0] == 0 and np.isclose(s.alpha[-1] ** 2, ac[0])  # zero SNR start, the original's DDIM end
    np.testing.assert_allclose(s.scale, np.append(tiny512.buffer("scale_arr")[[999, 763, 337, 28]], 1.0))
    s256 = make_dpm_schedule(tiny_model, 4)
    assert s256.scale is None and s256.timesteps.tolist() == [999, 681, 233, 20]  # 256: no dynamic rescale
    with pytest.raises(ValueError, match="eta=1.0: dpmpp_2m is deterministic"):
        sampler_schedule(tiny_model, "dpmpp_2m", 4, eta=1.0)
    with pytest.raises(ValueError, match="sampler 'unipc'"):
        sampler_schedule(tiny_model, "unipc", 4)
    assert sampler_schedule(tiny_model, "ddim", 4).eta == 1.0  # the original's default eta


def test_pipeline_runs_dpmpp_2m(tiny512):
    rng = np.random.default_rng(1)
    image = rng.uniform(-1, 1, (1, 3, 64, 64)).astype(np.float32)
    pipe = DynamiCrafterPipeline(tiny512)
    kw = dict(num_frames=2, guidance_scale=7.5, guidance_rescale=0.7, seed=3, output_type="latent", progress=False)
    seen = []
    a = pipe("a dog", image, num_inference_steps=3, sampler="dpmpp_2m", callback=lambda d: seen.append(d["t"]), **kw)
    b = pipe("a dog", image, num_inference_steps=3, sampler="dpmpp_2m", eta=0.0, **kw)
    assert seen == [999, 650, 79] and np.isfinite(a.latents).all()
    np.testing.assert_array_equal(a.latents, b.latents)  # deterministic
    with pytest.raises(ValueError, match="dpmpp_2m is deterministic"):
        pipe("a dog", image, num_inference_steps=3, sampler="dpmpp_2m", eta=1.0, **kw)
