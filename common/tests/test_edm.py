"""EDM discretization and Euler EDM sampler (common.schedulers.edm) against independent references."""
import math

import mindspore as ms
import numpy as np
import pytest
import torch

from common.schedulers.denoiser import Denoiser
from common.schedulers.edm import edm_sigmas, sample_euler_edm


def _torch_edm(n, sigma_min, sigma_max, rho):
    """sgm EDMDiscretization written out in torch (float32 ramp), zero appended."""
    ramp = torch.linspace(0, 1, n)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    s = (hi + ramp * (lo - hi)) ** rho
    return torch.cat([s, s.new_zeros([1])]).numpy()


def _torch_edm_rel_bound(n, sigma_min, sigma_max, rho):
    """Relative difference of ours (float64, rounded once to float32) and ``_torch_edm`` (float32),
    per level, to first order in u = 2**-24.

    torch: ramp from linspace within u (r + 2 m / (n - 1)), m = min(i, n-1-i); lo - hi and hi cast to
    float32, the product and the sum rounded (u each): base b = hi + r (lo - hi) off by
    u (hi + 2 r w + b) + w dramp, w = hi - lo (cancellation: ~23 u relative at sigma_min); ** rho
    multiplies the relative error by rho, + 1 ulp (2 u) for the pow kernel; + u for our cast."""
    u = 2.0 ** -24
    i = np.arange(n)
    r = np.linspace(0.0, 1.0, n)
    dramp = u * (r + 2 * np.minimum(i, n - 1 - i) / max(n - 1, 1))
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    w = hi - lo
    b = hi - r * w
    db = u * (hi + 2 * r * w + b) + w * dramp
    return np.concatenate([rho * db / b + 3 * u, [0.0]])  # the appended 0 is exact in both


@pytest.mark.parametrize("n,smax", [(1, 80.0), (3, 700.0), (25, 700.0), (30, 80.0)])
def test_edm_sigmas_match_the_formula(n, smax):
    ours = edm_sigmas(n, 0.002, smax, 7.0)
    ref = _torch_edm(n, 0.002, smax, 7.0)
    assert ours.shape == (n + 1,) and ours.dtype == np.float32
    # torch's float32 path vs ours: up to (7 * 23 + 3) 2**-24 = 9.7e-6 relative at sigma_min (analysis above)
    rel = _torch_edm_rel_bound(n, 0.002, smax, 7.0)
    err = np.abs(ours.astype(np.float64) - ref)
    assert np.all(err <= rel * np.abs(ref)), (err / np.maximum(np.abs(ref), 1e-30)).max()
    assert ours[0] == pytest.approx(smax, rel=1e-6) and ours[-1] == 0.0
    if n > 1:
        assert ours[-2] == pytest.approx(0.002, rel=1e-5)
        assert np.all(np.diff(ours) < 0)
    assert edm_sigmas(n, 0.002, smax, append_zero=False).shape == (n,)


def test_edm_sigmas_reject_bad_arguments():
    with pytest.raises(ValueError, match="steps must be >= 1"):
        edm_sigmas(0)
    with pytest.raises(ValueError, match="sigma_min <= sigma_max"):
        edm_sigmas(5, sigma_min=2.0, sigma_max=1.0)


def _gaussian_denoiser(sd):
    """Ideal denoiser of N(0, sd^2) data: D(x; s) = x sd^2 / (sd^2 + s^2)."""
    def fn(x, sigma):
        s = sigma.reshape(-1, 1)
        return x * (sd ** 2) / (sd ** 2 + s * s)
    return Denoiser(fn, "x0", time="sigma")


def test_euler_follows_the_probability_flow_ode():
    # the PF-ODE of Gaussian data has x(s) = x0 sqrt(sd^2 + s^2) / sqrt(sd^2 + s0^2); Euler converges to it
    sd = 0.5
    sig = edm_sigmas(400, 0.002, 80.0)
    x0 = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32) * sig[0]
    out = sample_euler_edm(_gaussian_denoiser(sd), ms.Tensor(x0), sig, disable=True).asnumpy()
    exact_at_min = x0 * math.sqrt(sd ** 2 + 0.002 ** 2) / math.sqrt(sd ** 2 + float(sig[0]) ** 2)
    # the last step to 0 returns the denoised estimate at sigma_min
    exact = exact_at_min * sd ** 2 / (sd ** 2 + 0.002 ** 2)
    np.testing.assert_allclose(out, exact, rtol=2e-2, atol=1e-4)


def test_euler_matches_a_step_by_step_reference_and_reports_steps():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((4, 4)).astype(np.float32) * 0.3

    def model(x, sigma, scale):
        return ms.ops.matmul(x, ms.Tensor(w)) * scale / (1.0 + sigma.reshape(-1, 1))

    sig = edm_sigmas(5, 0.002, 700.0)
    x = rng.standard_normal((2, 4)).astype(np.float32)
    seen = []
    out = sample_euler_edm(Denoiser(model, "x0", "sigma"), ms.Tensor(x), sig, extra_args={"scale": 0.7}, disable=True,
                           callback=lambda d: seen.append((d["i"], d["sigma"])))
    ref = torch.tensor(x)
    tw = torch.tensor(w)
    for i in range(5):
        s = torch.full((2, 1), float(sig[i]))
        den = ref @ tw * 0.7 / (1.0 + s)
        ref = ref + (float(sig[i + 1]) - s) * (ref - den) / s
    np.testing.assert_allclose(out.asnumpy(), ref.numpy(), rtol=1e-4, atol=1e-5)
    assert [i for i, _ in seen] == list(range(5))
    assert seen[0][1] == pytest.approx(700.0, rel=1e-6)


def test_churn_adds_the_given_noise():
    sig = np.array([2.0, 1.0, 0.0], np.float32)
    noise = np.full((1, 3), 0.5, np.float32)
    calls = []

    def sampler(t):
        calls.append(1)
        return ms.Tensor(noise)

    def model(x, sigma):
        return x * 0.0

    x = np.ones((1, 3), np.float32)
    churn = 0.5  # gamma = min(0.5 / 2, sqrt2 - 1) = 0.25
    model = Denoiser(model, "x0", "sigma")
    out = sample_euler_edm(model, ms.Tensor(x), sig, s_churn=churn, noise_sampler=sampler, disable=True).asnumpy()
    ref = x.copy()
    for i in range(2):
        s = float(sig[i])
        s_hat = s * 1.25
        ref = ref + noise * math.sqrt(s_hat ** 2 - s ** 2)
        ref = ref + (float(sig[i + 1]) - s_hat) * ref / s_hat
    np.testing.assert_allclose(out, ref, rtol=1e-5)
    assert len(calls) == 2
    calls.clear()
    sample_euler_edm(model, ms.Tensor(x), sig, noise_sampler=sampler, disable=True)
    assert not calls  # s_churn = 0: deterministic


def test_sampler_rejects_bad_sigmas():
    with pytest.raises(ValueError, match="at least 2 levels"):
        sample_euler_edm(Denoiser(lambda x, s: x, "x0", "sigma"), ms.Tensor(np.ones((1, 2), np.float32)), [1.0],
                         disable=True)


def test_discrete_time_denoisers_are_refused_with_a_clear_error():
    x = ms.Tensor(np.ones((1, 2), np.float32))
    with pytest.raises(ValueError, match="sample_euler_edm: needs a denoiser of time='sigma'"):
        sample_euler_edm(Denoiser(lambda x, t: x, "eps"), x, [1.0, 0.0], disable=True)
    with pytest.raises(ValueError, match="runs prediction in"):
        sample_euler_edm(Denoiser(lambda x, s: x, "v", "sigma"), x, [1.0, 0.0], disable=True)
