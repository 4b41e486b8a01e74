"""Tests of common.schedulers.ddim: schedules vs the golden numbers of the original code and vs
torch re-statements of the diffusers formulas; the sampling loop vs a NumPy reference."""
from __future__ import annotations

import functools
import json

import mindspore as ms
import numpy as np
import pytest
import torch
import yaml
from safetensors.numpy import load_file

from common.checkpoint import read_state_dict
from common.golden import golden_root as _golden_root
from common.schedulers import (
    Denoiser,
    cfg,
    ddim_schedule_from_diffusers,
    ddim_step,
    ddim_timesteps,
    diffusers_alphas_cumprod,
    diffusers_prediction,
    dynamic_rescale_arr,
    guided_denoiser,
    ldm_alphas_cumprod,
    make_betas,
    make_ddim_schedule,
    rescale_zero_terminal_snr,
    sample_ddim,
)

DC = _golden_root() / "dynamicrafter"


def _dc_case(case):
    root = DC / case
    params = yaml.safe_load((root / "config.yaml").read_text())["model"]["params"]
    check = next(c for c in json.loads((root / "case.json").read_text())["checks"] if c["name"] == "ddim_schedule")
    return root, params, check


def _assert_within_ulp32(got, want, msg=""):
    """Each value within one float32 ulp of the wanted one (both float32)."""
    got, want = np.asarray(got, np.float32), np.asarray(want, np.float32)
    gap = np.abs(got.astype(np.float64) - want) / np.spacing(np.abs(want)).astype(np.float64)
    assert got.shape == want.shape and np.all(gap <= 1), (msg, gap.max())


@pytest.mark.parametrize("case", ["tiny256", "tiny512"])
def test_dynamicrafter_ddim_schedule_golden(case):
    root, p, check = _dc_case(case)
    ac = ldm_alphas_cumprod(p.get("beta_schedule", "linear"), p["timesteps"], p["linear_start"], p["linear_end"],
                            rescale_betas_zero_snr=p.get("rescale_betas_zero_snr", False))
    buffers = read_state_dict(root / "model.ckpt")
    # the model's float32 buffers: float32 casts of float64 values (torch's float64 linspace there, our
    # emulation here: a few ulps of 2**-53 apart, <= ~1e-13 relative after 1000 products, x300 where the
    # zero-SNR rescale cancels) may still round to neighbouring float32s, so within one float32 ulp
    _assert_within_ulp32(ac.astype(np.float32), buffers["alphas_cumprod"])
    _assert_within_ulp32(np.sqrt(ac).astype(np.float32), buffers["sqrt_alphas_cumprod"])
    _assert_within_ulp32(np.sqrt(1 - ac).astype(np.float32), buffers["sqrt_one_minus_alphas_cumprod"])
    scale_arr = None
    if p.get("use_dynamic_rescale", False):
        scale_arr = dynamic_rescale_arr(p["base_scale"])
        _assert_within_ulp32(scale_arr, buffers["scale_arr"])  # np.linspace in float64, cast: same
    prm = check["params"]
    sched = make_ddim_schedule(ac, prm["steps"], spacing=prm["timestep_spacing"], eta=prm["eta"], scale_arr=scale_arr)
    ours = sched.index_order()
    ref = load_file(str(root / "tensors.safetensors"))
    for name, key in check["outputs"].items():
        want = ref[key]
        err = np.abs(ours[name].astype(np.float64) - want).max()
        assert err <= check["tol"] * max(1.0, np.abs(want).max()), (name, err)
        if name == "timesteps":
            np.testing.assert_array_equal(ours[name], want, err_msg=name)  # integers
        elif name != "sigmas":
            _assert_within_ulp32(ours[name], want, name)  # entries of the buffers above, copied
    # sigmas = eta sqrt((1 - p) / (1 - a) * (1 - a / p)), float32 reciprocal, float64 rest, float32 cast:
    # one-ulp changes of a and p (rel. <= 2**-23) grow by a / (1 - a), p / (1 - p) and 1 / (1 - a / p),
    # halved by the sqrt; + one ulp each for the float32 1 - a and its reciprocal (halved too), the float32
    # result and the float64 ops
    a, ap = (ref[check["outputs"][k]].astype(np.float64) for k in ("alphas", "alphas_prev"))
    with np.errstate(divide="ignore", invalid="ignore"):
        amp = a / (1 - a) + ap / (1 - ap) + 2 * np.abs(a / ap / (1 - a / ap))
    rel = np.where(np.isfinite(amp), 2.0 ** -23 * (amp / 2 + 2) + 8 * 2.0 ** -53, 0.0)
    want = ref[check["outputs"]["sigmas"]].astype(np.float64)
    assert np.all(np.abs(ours["sigmas"] - want) <= rel * want), (ours["sigmas"], want, rel)
    assert np.all(np.isfinite(np.sqrt(np.maximum(1 - sched.alphas_prev - sched.sigmas ** 2, 0))))


def test_timestep_spacings():
    np.testing.assert_array_equal(ddim_timesteps(4, "leading", steps_offset=1), [751, 501, 251, 1])  # AnimateDiff
    np.testing.assert_array_equal(ddim_timesteps(3, "trailing"), [999, 666, 332])  # DropletVideo
    np.testing.assert_array_equal(ddim_timesteps(3, "uniform_trailing"), [999, 666, 332])  # DynamiCrafter 512
    np.testing.assert_array_equal(ddim_timesteps(4, "uniform"), [751, 501, 251, 1])  # DynamiCrafter 256
    np.testing.assert_array_equal(ddim_timesteps(3, "uniform"), [999, 667, 334, 1])  # VideoComposer extra step
    np.testing.assert_array_equal(ddim_timesteps(5, "linspace"), [999, 749, 500, 250, 0])
    for s in (1, 7, 25, 50):
        assert len(ddim_timesteps(s, "trailing")) == s == len(ddim_timesteps(s, "leading"))
    with pytest.raises(ValueError, match="spacing"):
        ddim_timesteps(4, "bogus")
    with pytest.raises(ValueError, match="steps_offset"):
        ddim_timesteps(4, "trailing", steps_offset=1)


def test_golden_timesteps_of_diffusers_models():
    root = _golden_root()
    ad = load_file(str(root / "animatediff" / "tiny_v1" / "tensors.safetensors"))["ddim_sample.timesteps"]
    kw = yaml.safe_load((root / "animatediff" / "tiny_v1" / "config.yaml").read_text())["noise_scheduler_kwargs"]
    np.testing.assert_array_equal(ddim_schedule_from_diffusers(kw, len(ad)).timesteps, ad)
    dv_root = root / "dropletvideo" / "wide_13f"
    dv = load_file(str(dv_root / "tensors.safetensors"))["sample.timesteps"]
    cfg = json.loads((dv_root / "DropletVideo-V1.0-weights" / "scheduler" / "scheduler_config.json").read_text())
    s = ddim_schedule_from_diffusers(cfg, len(dv))
    np.testing.assert_array_equal(s.timesteps, dv)
    assert diffusers_prediction(cfg) == "v" and s.clip_x0 is None and s.alphas[0] == 0.0
    # prev_t = t - 1000//3 = 333 (not 332); alpha 1 below 0
    ac = diffusers_alphas_cumprod("scaled_linear", 1000, 0.00085, 0.012, rescale_betas_zero_snr=True)
    np.testing.assert_array_equal(s.alphas_prev, [ac[666], ac[333], 1.0])


# ---------------------------------------------------------------- torch statements of the originals
def _torch_diffusers_alphas_cumprod(schedule, start, end, rescale):
    if schedule == "linear":
        betas = torch.linspace(start, end, 1000, dtype=torch.float32)
    else:
        betas = torch.linspace(start ** 0.5, end ** 0.5, 1000, dtype=torch.float32) ** 2
    if rescale:
        sq = torch.cumprod(1.0 - betas, dim=0).sqrt()
        s0, sT = sq[0].clone(), sq[-1].clone()
        sq = (sq - sT) * (s0 / (s0 - sT))
        ab = sq ** 2
        betas = 1 - torch.cat([ab[0:1], ab[1:] / ab[:-1]])
    return torch.cumprod(1.0 - betas, dim=0).numpy()


# ---------------------------------------------------------------- error bounds of two implementations
# Two evaluations of one correctly rounded op (+ - * / sqrt) whose inputs differ differ by the
# propagated input difference plus at most one ulp of the result: |fl(x) - fl(y)| <= |x - y| + ulp.
_U32, _U64 = 2.0 ** -24, 2.0 ** -53  # unit roundoffs


def _ulp32(x):
    """One float32 ulp at each |x|, relative to |x| (between 2**-24 and 2**-23; 0 where x == 0)."""
    x = np.abs(np.asarray(x, np.float64))
    return np.spacing(x.astype(np.float32)).astype(np.float64) / np.where(x > 0, x, np.inf)


def _linspace_rel_bound(start, end, n, u):
    """Relative difference of two implementations of ``torch.linspace(start, end, n)`` (unit roundoff u).

    Each forms ``start + i * step`` (i < n/2) or ``end - (n-1-i) * step`` with ``step`` rounded to the
    dtype or not, the product rounded or fused, the sum rounded: within u (|x_i| + 2 m_i step) of the
    exact x_i, m_i = min(i, n-1-i). Two implementations: twice that."""
    i = np.arange(n)
    step = (end - start) / (n - 1)
    x = start + i * step
    return 2 * u * (1 + 2 * np.minimum(i, n - 1 - i) * abs(step) / np.abs(x))


def _diffusers_alphas_cumprod_rel_bound(betas, rescale):
    """Relative difference of two float32 evaluations of diffusers' ``alphas_cumprod`` (ours, torch on
    any CPU), to first order in 2**-24, per timestep.

    Only torch.linspace and ``** 2`` are vectorised kernels that may round differently by CPU: betas a
    few ulps apart, i.e. < 0.1 ulp of 1 - beta (beta <= 0.012), so each factor 1 - beta differs by <= 1
    ulp. The rest are correctly rounded ops (rule above); torch's CPU cumprod, like ours, multiplies
    in order in float64 and rounds each output once (products: <= n 2**-52, negligible).
    """
    a = (np.float32(1) - np.asarray(betas, np.float32)).astype(np.float64)  # the factors 1 - beta
    c = np.cumprod(a).astype(np.float32).astype(np.float64)
    phi = np.cumsum(_ulp32(a))  # product of i + 1 factors each off by <= 1 ulp: ~(i + 1) 2**-24
    if not rescale:
        return phi + _ulp32(c)  # + the rounding of each output
    # rescale_zero_terminal_snr: s = sqrt(c); sq = (s - s_T) * (s_0 / (s_0 - s_T)); ab = sq ** 2
    s = np.sqrt(c)
    s_t, d = s[-1], s - s[-1]
    own = _ulp32(c) / 2 + _ulp32(s)  # rounding of c (halved by the sqrt) and of the sqrt
    with np.errstate(divide="ignore", invalid="ignore"):
        # s_i - s_T: factors j <= i scale s_i and s_T alike; factors j > i and the own roundings do
        # not, and s_T / d_i, s_i / d_i amplify them (cancellation: ~300 at the last steps)
        dd = phi / 2 + (s_t * (phi[-1] - phi) / 2 + s * own + s_t * own[-1]) / d + _ulp32(d)
        dk = phi[0] / 2 + own[0] + dd[0] + _ulp32(s[0] / d[0])  # s_0 / (s_0 - s_T)
        sq = d * (s[0] / d[0])
        ab = sq * sq
        dab = 2 * (dd + dk + _ulp32(sq)) + 2 * _ulp32(ab)  # ** 2: a rounding (+ 1 ulp if a pow)
        # betas = 1 - [ab_0, ab_1 / ab_0, ...]; the final cumprod of 1 - betas telescopes back to ab_i:
        # ab_i's difference stays, plus 1 ulp per quotient r and, where r < 1/2, of 1 - r and
        # 1 - (1 - r) (both exact for r >= 1/2, Sterbenz), plus the output rounding
        r = ab[1:] / ab[:-1]
        step = _ulp32(r) + np.where(r < 0.5, (_ulp32(1 - r) * (1 - r) + _ulp32(r) * r) / r, 0.0)
        bound = dab + np.concatenate([[0.0], np.cumsum(step)]) + _ulp32(ab)
    bound[-1] = 0.0  # s_T - s_T is exactly 0 in any IEEE arithmetic: the last value is 0 in both
    return bound


@pytest.mark.parametrize("schedule,rescale", [("linear", False), ("scaled_linear", False), ("scaled_linear", True)])
def test_diffusers_alphas_cumprod_float32_path(schedule, rescale):
    ours = diffusers_alphas_cumprod(schedule, 1000, 0.00085, 0.012, rescale_betas_zero_snr=rescale)
    ref = _torch_diffusers_alphas_cumprod(schedule, 0.00085, 0.012, rescale).astype(np.float64)
    assert ours.dtype == np.float32
    # per timestep: ~(t + 1) 2**-24 from the product of t + 1 factors (<= 6.0e-5 at t = 999); with the
    # zero-SNR rescale, s_t - s_T cancels and multiplies that by up to ~300 near the end (<= 2.5e-4)
    rel = _diffusers_alphas_cumprod_rel_bound(make_betas(schedule, 1000, 0.00085, 0.012), rescale)
    err = np.abs(ours - ref)
    assert np.all(err <= rel * np.abs(ref)), (err / np.abs(ref)).max()
    if rescale:
        assert ours[-1] == ref[-1] == 0.0


def test_beta_schedules_vs_torch_linspace():
    t32 = torch.linspace(0.00085, 0.012, 1000, dtype=torch.float32).numpy()
    # our emulation of torch.linspace vs torch's kernel: <= 2 u (1 + 2 m step / x) each (<= 3.3e-7)
    rel32 = _linspace_rel_bound(float(np.float32(0.00085)), float(np.float32(0.012)), 1000, _U32)
    lin = make_betas("linear", 1000, 0.00085, 0.012)
    assert np.all(np.abs(lin - t32) <= rel32 * t32)
    t64 = (torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2).numpy()
    ldm = make_betas("linear", 1000, 0.00085, 0.012, convention="ldm")
    assert ldm.dtype == np.float64
    # float64 linspace as above, then squared: twice its relative difference + one rounding each (<= 1.2e-15)
    rel64 = 2 * _linspace_rel_bound(0.00085 ** 0.5, 0.012 ** 0.5, 1000, _U64) + 2 * _U64
    assert np.all(np.abs(ldm - t64) <= rel64 * t64)
    np.testing.assert_array_equal(ldm, make_betas("linear_sd", 1000, 0.00085, 0.012, convention="ldm"))
    sl = make_betas("scaled_linear", 1000, 0.00085, 0.012)
    np.testing.assert_allclose(sl, ldm, rtol=1e-6)  # same curve, float32 path
    assert not np.array_equal(sl, ldm)
    zs = rescale_zero_terminal_snr(ldm)
    assert zs[-1] == 1.0 and np.cumprod(1 - zs)[-1] == 0.0
    with pytest.raises(ValueError, match="beta_schedule"):
        make_betas("cosine", convention="diffusers")


def _torch_diffusers_ddim(ac32, ts, out_fn, x, eta, noises, prediction, set_alpha_to_one=True, clip=None):
    """diffusers DDIMScheduler.step as documented (torch float32)."""
    acs = torch.from_numpy(ac32)
    final = torch.tensor(1.0) if set_alpha_to_one else acs[0]
    stride = 1000 // len(ts)
    x = torch.from_numpy(x)
    for i, t in enumerate(ts):
        out = torch.from_numpy(out_fn(x.numpy(), t))
        a = acs[t]
        ap = acs[t - stride] if t - stride >= 0 else final
        b = 1 - a
        if prediction == "eps":
            x0 = (x - b ** 0.5 * out) / a ** 0.5
            e = out
        else:
            x0 = a ** 0.5 * x - b ** 0.5 * out
            e = a ** 0.5 * out + b ** 0.5 * x
        if clip is not None:
            x0 = x0.clamp(-clip, clip)
            e = (x - a ** 0.5 * x0) / b ** 0.5
        var = ((1 - ap) / b) * (1 - a / ap)
        std = eta * var ** 0.5
        x = ap ** 0.5 * x0 + (1 - ap - std ** 2) ** 0.5 * e
        if eta > 0:
            x = x + std * torch.from_numpy(noises[i])
    return x.numpy()


def _toy_model(w, bias):
    """A deterministic nonlinear 'denoiser' of (x, t) as numpy."""
    def f(x, t):
        return np.tanh(x * w + bias * (float(np.asarray(t).reshape(-1)[0]) / 1000.0)).astype(np.float32)
    return f


def _ms_wrap(f):
    def g(x, t, **kw):
        return ms.Tensor(f(x.asnumpy(), t.asnumpy()))
    return g


@pytest.mark.parametrize("cfg_name", ["animatediff_eps_leading", "droplet_v_trailing_zero_snr"])
def test_diffusers_style_loop_vs_torch(cfg_name):
    rng = np.random.default_rng(0)
    if cfg_name == "animatediff_eps_leading":
        cfg = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "linear", "steps_offset": 1,
               "clip_sample": False}
        steps, eta, pred = 4, 0.0, "eps"
    else:
        cfg = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "clip_sample": False,
               "prediction_type": "v_prediction", "rescale_betas_zero_snr": True, "set_alpha_to_one": True,
               "steps_offset": 0, "timestep_spacing": "trailing", "snr_shift_scale": 1.0,
               "_class_name": "CogVideoXDDIMScheduler"}
        steps, eta, pred = 3, 1.0, "v"
    sched = ddim_schedule_from_diffusers(cfg, steps, eta=eta)
    x = rng.standard_normal((1, 2, 3, 4, 4)).astype(np.float32)
    noises = rng.standard_normal((steps,) + x.shape).astype(np.float32)
    f = _toy_model(0.7, 0.3)
    ac = diffusers_alphas_cumprod(cfg["beta_schedule"], 1000, 0.00085, 0.012,
                                  rescale_betas_zero_snr=cfg.get("rescale_betas_zero_snr", False))
    ref = _torch_diffusers_ddim(ac, sched.timesteps.tolist(), f, x, eta, noises, pred)
    ours = sample_ddim(Denoiser(_ms_wrap(f), diffusers_prediction(cfg)), ms.Tensor(x), sched, noise=ms.Tensor(noises),
                       disable=True).asnumpy()
    assert np.all(np.isfinite(ours))
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)


def test_clip_sample_default_of_diffusers():
    s = ddim_schedule_from_diffusers({"beta_schedule": "linear"}, 5)
    assert s.clip_x0 == 1.0 and diffusers_prediction({}) == "eps"
    rng = np.random.default_rng(3)
    x = (3 * rng.standard_normal((2, 3, 4))).astype(np.float32)
    f = _toy_model(-1.3, 2.0)
    ac = diffusers_alphas_cumprod("linear")
    ref = _torch_diffusers_ddim(ac, s.timesteps.tolist(), f, x, 0.0, None, "eps", clip=1.0)
    ours = sample_ddim(Denoiser(f), x, s, disable=True)  # numpy in, numpy out
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="unknown DDIMScheduler config keys"):
        ddim_schedule_from_diffusers({"beta_schedul": "linear"}, 5)


# ---------------------------------------------------------------- DynamiCrafter-style loop vs NumPy
def _numpy_reference_dynamicrafter(ac64, ts_desc, x, model, *, eta, scale, rescale, v, noises, scale_arr=None):
    """DynamiCrafter's DDIMSampler.sample, written out plainly in float64."""
    ts_asc = ts_desc[::-1]
    a = ac64.astype(np.float32).astype(np.float64)
    alphas = a[ts_asc]
    alphas_prev = np.concatenate([[a[0]], a[ts_asc[:-1]]])
    sig = eta * np.sqrt((1 - alphas_prev) / (1 - alphas) * (1 - alphas / alphas_prev))
    if scale_arr is not None:
        sc = scale_arr.astype(np.float64)[ts_asc]
        sc_prev = np.concatenate([[sc[0]], sc[:-1]])
    x = x.astype(np.float64)
    S = len(ts_asc)
    for i, t in enumerate(ts_desc):
        index = S - 1 - i
        u, c = model(x, t)
        out = u + scale * (c - u)
        if rescale > 0:
            sd = lambda z: z.reshape(z.shape[0], -1).std(axis=1, ddof=1).reshape((-1,) + (1,) * (z.ndim - 1))  # noqa
            out = rescale * out * sd(c) / sd(out) + (1 - rescale) * out
        at, ap, st = alphas[index], alphas_prev[index], sig[index]
        if v:
            e = np.sqrt(ac64[t]) * out + np.sqrt(1 - ac64[t]) * x
            x0 = np.sqrt(ac64[t]) * x - np.sqrt(1 - ac64[t]) * out
        else:
            e = out
            x0 = (x - np.sqrt(1 - at) * e) / np.sqrt(at)
        if scale_arr is not None:
            x0 = x0 * sc_prev[index] / sc[index]
        # the original forms 1 - a_prev - sigma^2 in float32 (~6e-8 instead of ~0 for a zero-SNR
        # first step with eta=1), which its sqrt amplifies: follow that, clamped at 0
        f = np.float32
        dir_coef = np.sqrt(max(f(1) - f(ap) - f(st) ** 2, f(0)))
        x = np.sqrt(ap) * x0 + dir_coef * e + st * noises[i]
    return x


@pytest.mark.parametrize("variant", ["eps_uniform_eta0", "eps_uniform_eta1", "v_zero_snr_rescale_eta1"])
def test_dynamicrafter_style_loop_vs_numpy(variant):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 3, 4, 5)).astype(np.float32)
    ctx = rng.standard_normal((2, 1, 3, 1, 1)).astype(np.float32)
    if variant.startswith("eps"):
        ac = ldm_alphas_cumprod("linear", 1000, 0.00085, 0.012)
        steps, spacing, v, rescale, scale_arr = 4, "uniform", False, 0.0, None
        eta = 1.0 if variant.endswith("eta1") else 0.0
    else:
        ac = ldm_alphas_cumprod("linear", 1000, 0.00085, 0.012, rescale_betas_zero_snr=True)
        steps, spacing, v, rescale, eta = 3, "uniform_trailing", True, 0.7, 1.0
        scale_arr = dynamic_rescale_arr(0.7)
    sched = make_ddim_schedule(ac, steps, spacing=spacing, eta=eta, scale_arr=scale_arr)
    noises = rng.standard_normal((len(sched),) + x.shape).astype(np.float32)

    def np_model(xx, t):
        tt = float(np.asarray(t).reshape(-1)[0]) / 1000.0
        c = np.tanh(0.8 * xx + ctx * tt)
        u = np.tanh(0.5 * xx - 0.2 * tt)
        return u, c

    def ms_model(xx, t, branch):  # [uncond, cond] stacked along the batch
        u, c = np_model(xx.asnumpy(), t.asnumpy())
        assert t.shape == (2,) and t.dtype == ms.int64 and branch is None
        return ms.Tensor(np.concatenate([u, c]).astype(np.float32))

    seen = []
    guided = guided_denoiser(ms_model, ("uncond", "cond"), functools.partial(cfg, scale=7.5, rescale=rescale),
                             prediction="v" if v else "eps")
    ours = sample_ddim(guided, ms.Tensor(x), sched, noise=lambda i: ms.Tensor(noises[i]), disable=True,
                       callback=lambda d: seen.append((d["i"], d["t"])))
    ref = _numpy_reference_dynamicrafter(ac, sched.timesteps, x, np_model, eta=eta, scale=7.5, rescale=rescale,
                                         v=v, noises=noises, scale_arr=scale_arr)
    ours = ours.asnumpy()
    assert np.all(np.isfinite(ours))
    err = np.abs(ours - ref).max() / max(1.0, np.abs(ref).max())
    assert err < 5e-5, err  # float32 vs float64 (1.4e-5 at most); a wrong rule gives > 1e-4
    assert seen == list(enumerate(sched.timesteps.tolist()))


def test_step_errors_and_zero_snr_no_nan():
    ac = ldm_alphas_cumprod("linear", 1000, 0.00085, 0.012, rescale_betas_zero_snr=True)
    s = make_ddim_schedule(ac, 3, spacing="uniform_trailing", eta=1.0)
    x = ms.Tensor(np.ones((1, 2), np.float32))
    with pytest.raises(ValueError, match="v-prediction"):
        ddim_step(x, x, 0, s, prediction="eps")
    xp, x0 = ddim_step(x, x, 0, s, prediction="v", noise=ms.Tensor(np.zeros((1, 2), np.float32)))
    assert np.all(np.isfinite(xp.asnumpy()))
    with pytest.raises(TypeError, match="must be a common.schedulers.Denoiser"):
        sample_ddim(lambda x, t: x, x, s, disable=True)
    with pytest.raises(ValueError, match="time='timestep'"):
        sample_ddim(Denoiser(lambda x, t: x, "x0", time="sigma"), x, s, disable=True)
    with pytest.raises(ValueError, match="descending"):
        make_ddim_schedule(ac, 2, timesteps=[1, 500])
    with pytest.raises(ValueError, match="prev_rule"):
        make_ddim_schedule(ac, 2, prev_rule="nope")


def test_stride_rule_videocomposer():
    ac = ldm_alphas_cumprod("linear_sd", 1000, 0.00085, 0.012)
    s = make_ddim_schedule(ac, 3, spacing="uniform", prev_rule="stride", set_alpha_to_one=False)
    np.testing.assert_array_equal(s.timesteps, [999, 667, 334, 1])
    a = ac.astype(np.float32)
    np.testing.assert_array_equal(s.alphas_prev, [a[666], a[334], a[1], a[0]])
    assert np.all(s.sigmas == 0)
