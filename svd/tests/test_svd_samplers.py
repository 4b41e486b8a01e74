"""DPM-Solver++ 2M on SVD's EDM sigmas: the same result as the release's Euler EDM in fewer steps.

On the tiny model with a fixed picture, conditioning and start noise: the relative error of the final latent
against a 500-step Euler EDM run falls with the step count, and 25 DPM-Solver++ steps land closer than 50 Euler
steps. Numbers: README "Samplers" (``scripts/sampler_convergence.py``).
"""
import numpy as np
import pytest
from svd_ms.pipeline import SVDPipeline
from svd_ms.sampler_convergence import runner

from common.schedulers.convergence import convergence_errors


def test_dpmpp_2m_converges_to_euler(tiny_model):
    errors = convergence_errors(runner(tiny_model), {"euler": (50,), "dpmpp_2m": (5, 10, 25)}, ("euler", 500))
    dpm, euler50 = errors["dpmpp_2m"], errors["euler"][50]
    assert dpm[5] > dpm[10] > dpm[25], errors
    assert dpm[25] < euler50, errors


def test_pipeline_sampler_option(tiny_model):
    image = np.random.default_rng(3).uniform(-1, 1, (1, 3, 64, 64)).astype(np.float32)
    pipe = SVDPipeline(tiny_model)
    seen = []
    out = pipe(image, num_frames=3, num_inference_steps=3, seed=1, output_type="latent", progress=False,
               sampler="dpmpp_2m", callback=lambda d: seen.append(d["sigma"]))
    assert out.latents.shape == (3, 4, 8, 8) and np.isfinite(out.latents).all()
    np.testing.assert_allclose(seen, out.sigmas[:-1])
    with pytest.raises(ValueError, match="sampler 'heun'"):
        pipe(image, num_frames=3, num_inference_steps=3, sampler="heun", progress=False)


def test_churn_is_refused_under_dpmpp_2m(tiny_model):
    from svd_ms.sampling import sample_svd

    with pytest.raises(ValueError, match="s_churn=0.5: dpmpp_2m is deterministic"):
        sample_svd(tiny_model.denoiser, None, {}, {}, 3, 2, s_churn=0.5, sampler="dpmpp_2m")
