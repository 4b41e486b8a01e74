"""DPM-Solver++(2M): exact on a Gaussian toy problem whose probability-flow ODE is solvable in closed form."""
import mindspore as ms
import numpy as np
import pytest

from common.schedulers.ddim import DDIMSchedule, cfg_combine, ddim_step, diffusers_alphas_cumprod, sample_ddim
from common.schedulers.dpm_solver import (
    dpmpp_2m_schedule_from_diffusers,
    dpmpp_2m_step,
    make_dpmpp_2m_schedule,
    sample_dpmpp_2m,
)

AC = diffusers_alphas_cumprod("linear", 1000, 0.00085, 0.012)  # AnimateDiff's schedule
RNG = np.random.default_rng(0)
MEAN = RNG.standard_normal((2, 3, 4)).astype(np.float32) * 0.5
STD = (0.2 + RNG.random((2, 3, 4))).astype(np.float32)


def gaussian_eps(x, t):
    """The exact eps-prediction when the data are N(MEAN, STD^2) per element."""
    a = np.float64(AC[int(np.asarray(t).reshape(-1)[0])])
    al, si = np.sqrt(a), np.sqrt(1 - a)
    x0 = MEAN + al * STD ** 2 / (a * STD ** 2 + 1 - a) * (x - al * MEAN)
    return ((x - al * x0) / si).astype(np.float32)


def exact_endpoint(x_t, t0, a_end=1.0):
    """The ODE keeps z = (x - alpha m) / sqrt(alpha^2 s^2 + sigma^2) fixed: the sample at alphas_cumprod
    ``a_end`` is ``sqrt(a_end) m + sqrt(a_end s^2 + 1 - a_end) z``."""
    a = np.float64(AC[t0])
    z = (x_t - np.sqrt(a) * MEAN) / np.sqrt(a * STD ** 2 + 1 - a)
    return np.sqrt(a_end) * MEAN + np.sqrt(a_end * STD ** 2 + 1 - a_end) * z


def fine_ddim(ts, final=1.0):
    """A deterministic DDIM schedule on an explicit grid; the last step goes to alphas_cumprod ``final``."""
    ts = np.asarray(ts, np.int64)
    al = AC[ts].astype(np.float32)
    prev = np.concatenate([al[1:], [np.float32(final)]]).astype(np.float32)
    return DDIMSchedule(timesteps=ts, alphas=al, alphas_prev=prev, sigmas=np.zeros_like(al),
                        sqrt_alphas=np.sqrt(al), sqrt_one_minus_alphas=np.sqrt(1 - al))


def test_linspace_schedule_matches_diffusers_dpm_solver_grid():
    s = make_dpmpp_2m_schedule(AC, 4)
    assert s.timesteps.tolist() == [999, 749, 500, 250]
    assert s.alphas_next[-1] == 1.0 and np.allclose(s.alphas_next[:-1], AC[[749, 500, 250]])
    lead = dpmpp_2m_schedule_from_diffusers({"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "linear",
                                             "steps_offset": 1}, 4, spacing="leading")
    assert lead.timesteps.tolist() == [751, 501, 251, 1]


def test_first_order_step_is_the_ddim_step():
    x = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    eps = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    s = make_dpmpp_2m_schedule(AC, 5)
    dd = fine_ddim(s.timesteps)
    for i in range(len(s)):
        ours, _, _ = dpmpp_2m_step(x, eps, i, s)
        ref, _ = ddim_step(x, eps, i, dd)
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)


def test_second_order_convergence_on_a_log_snr_uniform_grid():
    """On a fine (near-continuous) VP table and steps uniform in log-SNR the error falls ~4x per halving."""
    tau = np.linspace(0, 1, 100001)
    fine = np.exp(-(0.1 * tau + 0.5 * 19.9 * tau ** 2))  # VP-SDE alphas_cumprod, beta in [0.1, 20]
    lam = 0.5 * np.log(fine[1:] / (1 - fine[1:]))  # decreasing in tau

    def eps_fine(x, t):
        a = fine[int(np.asarray(t).reshape(-1)[0])]
        al, si = np.sqrt(a), np.sqrt(1 - a)
        x0 = MEAN + al * STD ** 2 / (a * STD ** 2 + 1 - a) * (x - al * MEAN)
        return (x - al * x0) / si

    x_t = RNG.standard_normal((2, 3, 4))
    t_end = 1000  # tau = 0.01
    errs = []
    for n in (16, 32, 64, 128):
        targets = np.linspace(lam[-1], lam[t_end - 1], n + 1)
        ts = 1 + np.array([np.argmin(np.abs(lam - v)) for v in targets])
        s = make_dpmpp_2m_schedule(fine, n, timesteps=ts[:-1], final_alpha=float(fine[ts[-1]]))
        a0, a1 = fine[ts[0]], fine[ts[-1]]
        z = (x_t - np.sqrt(a0) * MEAN) / np.sqrt(a0 * STD ** 2 + 1 - a0)
        exact = np.sqrt(a1) * MEAN + np.sqrt(a1 * STD ** 2 + 1 - a1) * z
        errs.append(np.abs(sample_dpmpp_2m(eps_fine, x_t, s, disable=True) - exact).max())
    assert errs[0] > errs[1] > errs[2] > errs[3], errs
    for k in (1, 2):  # asymptotic regime
        assert 3.2 < errs[k] / errs[k + 1] < 5.0, errs


def test_beats_ddim_on_the_animatediff_schedule():
    """Same model calls, same grid (diffusers' DPM-Solver grid, last step to a clean sample): smaller error."""
    x_t = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    exact = exact_endpoint(x_t.astype(np.float64), 999)
    prev = np.inf
    for n in (10, 20, 40):
        s = make_dpmpp_2m_schedule(AC, n)
        e_dpm = np.abs(sample_dpmpp_2m(gaussian_eps, x_t, s, disable=True) - exact).max()
        e_ddim = np.abs(sample_ddim(gaussian_eps, x_t, fine_ddim(s.timesteps), disable=True) - exact).max()
        assert e_dpm < e_ddim / (1.5 if n < 40 else 3) and e_dpm < prev, (n, e_dpm, e_ddim)
        prev = e_dpm


def test_converges_to_the_fine_ddim_result():
    """Both solve the same ODE: DPM-Solver++ with n steps approaches DDIM with 999 steps."""
    x_t = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    ref = sample_ddim(gaussian_eps, x_t, fine_ddim(np.arange(999, 0, -1)), disable=True)
    errs = [np.abs(sample_dpmpp_2m(gaussian_eps, x_t, make_dpmpp_2m_schedule(AC, n), disable=True) - ref).max()
            for n in (10, 20, 40, 80)]
    assert all(errs[k + 1] < errs[k] for k in range(3)) and errs[-1] < 0.015, errs


def test_mindspore_tensors_guidance_and_callback():
    x_t = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    s = make_dpmpp_2m_schedule(AC, 6)

    def pair_np(x, t):
        e = gaussian_eps(x, t)
        return e * 0.9, e

    def pair_ms(x, t):
        u, c = pair_np(x.asnumpy(), t.asnumpy())
        return ms.Tensor(u), ms.Tensor(c)

    seen = []
    ref = sample_dpmpp_2m(lambda x, t: cfg_combine(*pair_np(x, t), 3.0), x_t, s, disable=True)
    out = sample_dpmpp_2m(pair_ms, ms.Tensor(x_t), s, guidance_scale=3.0, disable=True,
                          callback=lambda d: seen.append(d["t"]))
    np.testing.assert_allclose(out.asnumpy(), ref, rtol=1e-5, atol=1e-5)
    assert seen == s.timesteps.tolist()
    with pytest.raises(ValueError, match="uncond_out, cond_out"):
        sample_dpmpp_2m(gaussian_eps, x_t, s, guidance_scale=3.0, disable=True)


def test_bad_schedules_are_refused():
    with pytest.raises(ValueError, match="descending"):
        make_dpmpp_2m_schedule(AC, 3, timesteps=[10, 20, 5])
    with pytest.raises(ValueError, match="num_steps"):
        make_dpmpp_2m_schedule(AC, 0)
    with pytest.raises(ValueError, match="epsilon"):
        dpmpp_2m_schedule_from_diffusers({"prediction_type": "v_prediction"}, 4)
