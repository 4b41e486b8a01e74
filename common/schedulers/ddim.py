"""DDIM sampling (Song et al. 2021, "Denoising Diffusion Implicit Models", arXiv:2010.02502, Eq. 12).

Shared by DynamiCrafter, AnimateDiff, VideoComposer and DropletVideo. The originals agree on the
update ``x_prev = sqrt(a_prev) x0 + sqrt(1 - a_prev - sigma^2) eps + sigma z`` but differ in how
the noise schedule, the step list and ``a_prev`` are built, and in which dtype. Each option below
reproduces one original (the dtype path too, so the numbers match bit for bit or within 1 ulp):

Noise schedule (``alphas_cumprod``)
    * :func:`ldm_alphas_cumprod` -- LDM / DynamiCrafter (``lvdm.models.utils_diffusion``) and
      VideoComposer: ``beta_schedule`` ``"linear"`` (= VideoComposer ``"linear_sd"``) is
      ``torch.linspace(sqrt(start), sqrt(end), n, float64) ** 2``; optional
      ``rescale_betas_zero_snr`` (numpy float64); cumprod in float64. The model's float32 buffer
      is ``.astype(float32)`` of it.
    * :func:`diffusers_alphas_cumprod` -- diffusers ``DDIMScheduler`` (AnimateDiff, DropletVideo):
      ``"linear"`` = ``torch.linspace(start, end, n, float32)``, ``"scaled_linear"`` =
      ``torch.linspace(sqrt(start), sqrt(end), n, float32) ** 2``, ``rescale_betas_zero_snr`` in
      float32, cumprod in float32 (torch accumulates it in float64 on CPU).
    * :func:`make_betas`, :func:`rescale_zero_terminal_snr` (Lin et al. 2023, arXiv:2305.08891,
      Alg. 1) and :func:`alphas_cumprod_from_betas` are the building blocks of both.

Step list (:func:`ddim_timesteps`, loop order = descending)
    * ``"uniform"`` -- LDM/DynamiCrafter ``range(0, n, n//S) + 1``; VideoComposer's
      ``(1 + arange(0, n, n//S)).clamp(0, n-1)`` (S not dividing n gives extra steps: S=3 ->
      999, 667, 334, 1).
    * ``"uniform_trailing"`` (DynamiCrafter) = ``"trailing"`` (diffusers):
      ``round(arange(n, 0, -n/S)) - 1`` (S=3 -> 999, 666, 332).
    * ``"leading"`` (diffusers; AnimateDiff's diffusers 0.11.1 always): ``arange(S) * (n//S)``
      reversed ``+ steps_offset`` (S=4, offset 1 -> 751, 501, 251, 1).
    * ``"linspace"`` (diffusers): ``round(linspace(0, n-1, S))`` reversed.

Previous alpha (``prev_rule`` of :func:`make_ddim_schedule`)
    * ``"ldm"`` -- DynamiCrafter ``make_ddim_sampling_parameters``: ``a_prev`` of a step is
      ``a`` of the next (lower) DDIM step, and ``alphas_cumprod[0]`` (not 1) for the last one;
      sigmas in float64 from the float32 alphas (``1 / (1 - a)`` in float32, as there).
    * ``"stride"`` -- diffusers ``DDIMScheduler.step`` and VideoComposer ``ddim_sample``:
      ``prev_t = t - n//S``; ``alphas_cumprod[prev_t]``, and for ``prev_t < 0`` 1.0 when
      ``set_alpha_to_one`` (diffusers) else ``alphas_cumprod[0]`` (diffusers with
      ``set_alpha_to_one=False``; VideoComposer's ``clamp(0)``); sigmas in float32.

Per step (:func:`ddim_step`): ``eps``-prediction ``x0 = (x - sqrt(1-a) e) / sqrt(a)``;
``v``-prediction ``e = sqrt(a_t) v + sqrt(1-a_t) x``, ``x0 = sqrt(a_t) x - sqrt(1-a_t) v``;
``x0``-prediction; DynamiCrafter's dynamic rescale ``x0 *= scale_prev / scale`` (e unchanged);
diffusers' ``clip_sample``. ``1 - a_prev - sigma^2`` is clamped at 0 (zero-terminal-SNR with
eta=1 rounds to ~0). The parameterisation is the denoiser's (:class:`~common.schedulers.denoiser.Denoiser`);
guidance is folded into the denoiser (:mod:`common.schedulers.guidance`).

The step arithmetic uses only ``+ - * /`` with Python floats, so it runs on MindSpore tensors
(the models' outputs) and on numpy arrays alike; every coefficient is the float32 value the
original uses.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .denoiser import Denoiser, as_denoiser, is_mindspore, time_input

__all__ = [
    "make_betas", "rescale_zero_terminal_snr", "alphas_cumprod_from_betas", "ldm_alphas_cumprod",
    "diffusers_alphas_cumprod", "dynamic_rescale_arr", "ddim_timesteps", "DDIMSchedule",
    "make_ddim_schedule", "ddim_schedule_from_diffusers", "diffusers_prediction", "ddim_step", "sample_ddim",
]

_F32 = np.float32


# --------------------------------------------------------------------------- beta schedules
def _torch_linspace(start: float, end: float, n: int, dtype) -> np.ndarray:
    """``torch.linspace(start, end, n, dtype)`` on CPU, bit-exact: ``fma(step, i, start)`` for the
    first half, ``fma(-step, n-1-i, end)`` for the second, with ``step`` in ``dtype``."""
    i = np.arange(n)
    if n == 1:
        return np.array([start], dtype)
    if dtype == np.float32:
        s, e = _F32(start), _F32(end)
        step = _F32((e - s) / _F32(n - 1))
        wide = np.float64  # f32 x f32 is exact in f64: one rounding, as an FMA
    else:
        s, e = float(start), float(end)
        step = (e - s) / (n - 1)
        wide = np.longdouble
    lo = wide(step) * i.astype(wide) + wide(s)
    hi = wide(-step) * (n - 1 - i).astype(wide) + wide(e)
    return np.where(i < n // 2, lo, hi).astype(dtype)


def make_betas(
    schedule: str,
    n: int = 1000,
    linear_start: float = 1e-4,
    linear_end: float = 2e-2,
    *,
    convention: str = "diffusers",
    cosine_s: float = 8e-3,
) -> np.ndarray:
    """Beta schedule as float64 numpy, following one original's naming and dtype path.

    Args:
        schedule: with ``convention="diffusers"`` (``DDIMScheduler.beta_schedule``): ``"linear"``
            (``torch.linspace(start, end, n, float32)``), ``"scaled_linear"``
            (``torch.linspace(sqrt(start), sqrt(end), n, float32) ** 2``), ``"squaredcos_cap_v2"``.
            With ``convention="ldm"`` (``make_beta_schedule`` of LDM/DynamiCrafter, VideoComposer):
            ``"linear"`` / ``"linear_sd"`` (``torch.linspace(sqrt(start), sqrt(end), n, float64) ** 2``
            -- the diffusers "scaled_linear" in float64), ``"sqrt_linear"``, ``"sqrt"``, ``"cosine"``.
        n: number of training timesteps (1000).
        linear_start / linear_end: ``linear_start``/``linear_end`` (LDM) = ``beta_start``/``beta_end``
            (diffusers).
        convention: ``"diffusers"`` (default) or ``"ldm"``; the same name means different betas.
        cosine_s: offset of the cosine schedules (8e-3).

    Returns:
        ``(n,)`` float64 (diffusers values are exactly the float32 ones).
    """
    if convention == "diffusers":
        if schedule == "linear":
            b = _torch_linspace(linear_start, linear_end, n, _F32)
        elif schedule == "scaled_linear":
            r = _torch_linspace(linear_start ** 0.5, linear_end ** 0.5, n, _F32)
            b = r * r
        elif schedule == "squaredcos_cap_v2":
            f = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
            b = np.array([min(1 - f((i + 1) / n) / f(i / n), 0.999) for i in range(n)], _F32)
        else:
            raise ValueError(f"unknown diffusers beta_schedule '{schedule}' "
                             "(linear, scaled_linear, squaredcos_cap_v2)")
        return b.astype(np.float64)
    if convention == "ldm":
        if schedule in ("linear", "linear_sd"):
            return _torch_linspace(linear_start ** 0.5, linear_end ** 0.5, n, np.float64) ** 2
        if schedule == "sqrt_linear":
            return _torch_linspace(linear_start, linear_end, n, np.float64)
        if schedule == "sqrt":
            return _torch_linspace(linear_start, linear_end, n, np.float64) ** 0.5
        if schedule == "cosine":
            t = np.arange(n + 1, dtype=np.float64) / n + cosine_s
            a = np.cos(t / (1 + cosine_s) * np.pi / 2) ** 2
            a = a / a[0]
            return np.clip(1 - a[1:] / a[:-1], 0, 0.999)
        raise ValueError(f"unknown LDM beta_schedule '{schedule}' (linear, linear_sd, sqrt_linear, sqrt, cosine)")
    raise ValueError(f"unknown convention '{convention}' (diffusers or ldm)")


def _cumprod(a: np.ndarray) -> np.ndarray:
    """Cumulative product in ``a``'s dtype, accumulated in float64 (torch's CPU cumprod does so)."""
    return np.cumprod(a.astype(np.float64)).astype(a.dtype)


def rescale_zero_terminal_snr(betas: np.ndarray, *, dtype=np.float64) -> np.ndarray:
    """Rescale betas so that ``alphas_cumprod[-1] == 0`` (Lin et al. 2023, Alg. 1).

    Args:
        betas: ``(n,)`` betas.
        dtype: arithmetic dtype: ``np.float64`` as DynamiCrafter's numpy version (default),
            ``np.float32`` as diffusers' torch version.

    Returns:
        ``(n,)`` float64 (values computed in ``dtype``).
    """
    b = np.asarray(betas).astype(dtype)
    sqrt_ac = np.sqrt(_cumprod(dtype(1) - b))
    first, last = sqrt_ac[0], sqrt_ac[-1]
    sqrt_ac = (sqrt_ac - last) * (first / (first - last))
    ac = sqrt_ac * sqrt_ac
    alphas = np.concatenate([ac[:1], ac[1:] / ac[:-1]])
    return (dtype(1) - alphas).astype(np.float64)


def alphas_cumprod_from_betas(betas: np.ndarray, *, dtype=np.float64) -> np.ndarray:
    """``cumprod(1 - betas)`` computed and returned in ``dtype`` (float64: LDM; float32: diffusers)."""
    return _cumprod(dtype(1) - np.asarray(betas).astype(dtype))


def ldm_alphas_cumprod(
    beta_schedule: str = "linear",
    timesteps: int = 1000,
    linear_start: float = 1e-4,
    linear_end: float = 2e-2,
    *,
    rescale_betas_zero_snr: bool = False,
    cosine_s: float = 8e-3,
) -> np.ndarray:
    """``alphas_cumprod`` of an LDM-style model config (DynamiCrafter ``model.params``,
    VideoComposer ``linear_sd``), float64 as the original computes it (its buffer is the
    float32 cast). Argument names are the config's."""
    betas = make_betas(beta_schedule, timesteps, linear_start, linear_end, convention="ldm", cosine_s=cosine_s)
    if rescale_betas_zero_snr:
        betas = rescale_zero_terminal_snr(betas, dtype=np.float64)
    return alphas_cumprod_from_betas(betas, dtype=np.float64)


def diffusers_alphas_cumprod(
    beta_schedule: str = "linear",
    num_train_timesteps: int = 1000,
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
    *,
    rescale_betas_zero_snr: bool = False,
    trained_betas: Sequence[float] | None = None,
) -> np.ndarray:
    """``DDIMScheduler.alphas_cumprod`` (float32) from its config values (same names and defaults)."""
    if trained_betas is not None:
        betas = np.asarray(trained_betas, _F32).astype(np.float64)
    else:
        betas = make_betas(beta_schedule, num_train_timesteps, beta_start, beta_end, convention="diffusers")
    if rescale_betas_zero_snr:
        betas = rescale_zero_terminal_snr(betas, dtype=_F32)
    return alphas_cumprod_from_betas(betas, dtype=_F32)


def dynamic_rescale_arr(base_scale: float, turning_step: int = 400, num_timesteps: int = 1000) -> np.ndarray:
    """DynamiCrafter's ``scale_arr`` (``use_dynamic_rescale``): ``linspace(1, base_scale, turning_step)``
    then ``num_timesteps`` times ``base_scale`` (float64 numpy, stored as a float32 buffer)."""
    arr = np.concatenate([np.linspace(1.0, base_scale, turning_step), np.full(num_timesteps, base_scale)])
    return arr.astype(_F32)


# --------------------------------------------------------------------------- step lists
def ddim_timesteps(num_steps: int, spacing: str = "uniform", num_train: int = 1000, steps_offset: int = 0) -> np.ndarray:
    """DDIM timesteps in loop order (descending, int64).

    Args:
        num_steps: S, the number of DDIM steps requested.
        spacing: ``"uniform"`` (LDM/DynamiCrafter/VideoComposer; may give more than S steps when S does
            not divide ``num_train``, clamped at ``num_train-1`` as VideoComposer does),
            ``"uniform_trailing"`` / ``"trailing"``, ``"leading"`` (diffusers, ``+ steps_offset``),
            ``"linspace"`` (diffusers). See the module docstring.
        num_train: number of training timesteps n (1000).
        steps_offset: diffusers ``steps_offset`` (``"leading"`` only; AnimateDiff uses 1).
    """
    if num_steps < 1 or num_steps > num_train:
        raise ValueError(f"num_steps must be in [1, {num_train}], got {num_steps}")
    if steps_offset and spacing != "leading":
        raise ValueError(f"steps_offset={steps_offset} only applies to 'leading' spacing, not '{spacing}'")
    if spacing == "uniform":
        ts = np.minimum(np.arange(0, num_train, num_train // num_steps) + 1, num_train - 1)[::-1]
    elif spacing in ("uniform_trailing", "trailing"):
        ts = np.round(np.arange(num_train, 0, -num_train / num_steps)) - 1
    elif spacing == "leading":
        ts = (np.arange(num_steps) * (num_train // num_steps)).round()[::-1] + steps_offset
    elif spacing == "linspace":
        ts = np.linspace(0, num_train - 1, num_steps).round()[::-1]
    else:
        raise ValueError(f"unknown timestep spacing '{spacing}' (uniform, uniform_trailing, trailing, leading, linspace)")
    return np.ascontiguousarray(ts).astype(np.int64)


# --------------------------------------------------------------------------- schedule
@dataclass
class DDIMSchedule:
    """Per-step DDIM coefficients, in loop order (element 0 = the first, noisiest step).

    Attributes:
        timesteps: ``(S,)`` int64, the model's timestep at each step (descending).
        alphas: ``(S,)`` float32 ``alphas_cumprod[t]``.
        alphas_prev: ``(S,)`` float32 alpha the step moves to.
        sigmas: ``(S,)`` float32 noise std (``eta`` times the DDPM posterior std).
        sqrt_alphas / sqrt_one_minus_alphas: ``(S,)`` float32 ``sqrt(ac[t])``, ``sqrt(1 - ac[t])``
            computed in the dtype of the given ``alphas_cumprod`` (the originals' buffers); used by
            v- and x0-prediction (eps-prediction takes the roots of the float32 ``alphas``, as
            both LDM and diffusers do).
        scale / scale_prev: ``(S,)`` float32 dynamic-rescale factors (DynamiCrafter) or None.
        eta: the eta used for ``sigmas``.
        clip_x0: clamp x0 to ``[-clip_x0, clip_x0]`` (diffusers ``clip_sample``) or None.
    """

    timesteps: np.ndarray
    alphas: np.ndarray
    alphas_prev: np.ndarray
    sigmas: np.ndarray
    sqrt_alphas: np.ndarray
    sqrt_one_minus_alphas: np.ndarray
    scale: np.ndarray | None = None
    scale_prev: np.ndarray | None = None
    eta: float = 0.0
    clip_x0: float | None = None

    def __len__(self) -> int:
        return int(self.timesteps.shape[0])

    def index_order(self) -> dict[str, np.ndarray]:
        """The arrays in LDM's stored order (ascending timesteps: element i is used at ``index`` i)."""
        names = ("timesteps", "alphas", "alphas_prev", "sigmas", "scale", "scale_prev")
        return {k: getattr(self, k)[::-1].copy() for k in names if getattr(self, k) is not None}


def make_ddim_schedule(
    alphas_cumprod: np.ndarray,
    num_steps: int,
    *,
    spacing: str = "uniform",
    eta: float = 0.0,
    prev_rule: str = "ldm",
    set_alpha_to_one: bool = True,
    steps_offset: int = 0,
    scale_arr: np.ndarray | None = None,
    clip_x0: float | None = None,
    timesteps: Sequence[int] | None = None,
) -> DDIMSchedule:
    """Build a :class:`DDIMSchedule`.

    Args:
        alphas_cumprod: ``(n,)`` in the dtype the original computes it: float64 for LDM-style models
            (:func:`ldm_alphas_cumprod`; alphas are its float32 cast), float32 for diffusers
            (:func:`diffusers_alphas_cumprod`).
        num_steps: S requested.
        spacing: see :func:`ddim_timesteps` (default ``"uniform"``).
        eta: 0 = deterministic DDIM (default), 1 = DDPM-like noise.
        prev_rule: ``"ldm"`` (DynamiCrafter, default) or ``"stride"`` (diffusers, VideoComposer).
        set_alpha_to_one: ``"stride"`` rule only: the alpha below t=0 is 1.0 (True, diffusers default)
            or ``alphas_cumprod[0]`` (False; VideoComposer's clamp).
        steps_offset: diffusers ``steps_offset`` for ``"leading"`` spacing.
        scale_arr: DynamiCrafter's ``scale_arr`` buffer (:func:`dynamic_rescale_arr`) to enable
            dynamic rescale; ``scale_prev`` follows DynamiCrafter (``[scale[0]] + scale[:-1]`` in
            ascending order).
        clip_x0: see :class:`DDIMSchedule`.
        timesteps: explicit descending step list instead of ``spacing`` (e.g. from a golden case).
    """
    ac = np.asarray(alphas_cumprod)
    if ac.ndim != 1 or ac.dtype not in (np.float32, np.float64):
        raise ValueError(f"alphas_cumprod must be a 1-D float32/float64 array, got {ac.dtype} {ac.shape}")
    n = ac.shape[0]
    ts = (np.asarray(timesteps, np.int64) if timesteps is not None
          else ddim_timesteps(num_steps, spacing, n, steps_offset))
    if ts.min() < 0 or ts.max() >= n or np.any(np.diff(ts) >= 0):
        raise ValueError(f"timesteps must be strictly descending within [0, {n}), got {ts.tolist()}")
    ac32 = ac.astype(_F32)
    alphas = ac32[ts]
    if prev_rule == "ldm":
        alphas_prev = np.concatenate([alphas[1:], ac32[:1]])
        # The original mixes a float32 torch tensor (alphas) with a float64 numpy array (alphas_prev):
        # ``(1 - a_prev) / (1 - a)`` runs as torch's ``(1 - a).reciprocal() * (1 - a_prev)``, the
        # reciprocal in float32; everything else in float64. Reproduced so sigmas match bit for bit.
        a64, p64 = alphas.astype(np.float64), alphas_prev.astype(np.float64)
        recip = (_F32(1) / (_F32(1) - alphas)).astype(np.float64)
        sigmas = (eta * np.sqrt((1 - p64) * recip * (1 - a64 / p64))).astype(_F32)
    elif prev_rule == "stride":
        prev_t = ts - n // num_steps
        final = _F32(1.0) if set_alpha_to_one else ac32[0]
        alphas_prev = np.where(prev_t >= 0, ac32[np.maximum(prev_t, 0)], final).astype(_F32)
        one = _F32(1)
        with np.errstate(divide="ignore", invalid="ignore"):
            var = (one - alphas_prev) / (one - alphas) * (one - alphas / alphas_prev)
        sigmas = (_F32(eta) * np.sqrt(var)).astype(_F32)
    else:
        raise ValueError(f"unknown prev_rule '{prev_rule}' (ldm or stride)")
    if eta == 0:
        sigmas = np.zeros_like(sigmas)
    at = ac[ts]
    scale = scale_prev = None
    if scale_arr is not None:
        sa = np.asarray(scale_arr).astype(_F32)
        if sa.shape[0] < n:
            raise ValueError(f"scale_arr has {sa.shape[0]} entries, fewer than {n} timesteps")
        scale = sa[ts]
        scale_prev = np.concatenate([scale[1:], scale[-1:]])
    return DDIMSchedule(
        timesteps=ts, alphas=alphas, alphas_prev=alphas_prev, sigmas=sigmas,
        sqrt_alphas=np.sqrt(at).astype(_F32), sqrt_one_minus_alphas=np.sqrt(at.dtype.type(1) - at).astype(_F32),
        scale=scale, scale_prev=scale_prev, eta=float(eta), clip_x0=clip_x0,
    )


_DIFFUSERS_PREDICTIONS = {"epsilon": "eps", "v_prediction": "v", "sample": "x0"}


def diffusers_prediction(config: Mapping[str, Any]) -> str:
    """The :class:`~common.schedulers.denoiser.Denoiser` ``prediction`` of a diffusers scheduler config's
    ``prediction_type`` (``epsilon`` -> ``eps``, ``v_prediction`` -> ``v``, ``sample`` -> ``x0``)."""
    pred = dict(config).get("prediction_type", "epsilon")
    if pred not in _DIFFUSERS_PREDICTIONS:
        raise ValueError(f"unknown prediction_type '{pred}' ({sorted(_DIFFUSERS_PREDICTIONS)})")
    return _DIFFUSERS_PREDICTIONS[pred]


def ddim_schedule_from_diffusers(config: Mapping[str, Any], num_steps: int, *, eta: float = 0.0) -> DDIMSchedule:
    """A :class:`DDIMSchedule` equal to ``diffusers.DDIMScheduler(**config)`` after
    ``set_timesteps(num_steps)`` (AnimateDiff ``noise_scheduler_kwargs``, DropletVideo
    ``scheduler/scheduler_config.json``); its ``prediction_type`` is the denoiser's
    (:func:`diffusers_prediction`). Missing keys take ``DDIMScheduler``'s defaults
    (note ``clip_sample`` defaults to True there); keys starting with ``_`` and
    ``snr_shift_scale`` are ignored (diffusers' DDIMScheduler ignores them too)."""
    known = {"num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas", "clip_sample",
             "set_alpha_to_one", "steps_offset", "prediction_type", "thresholding", "dynamic_thresholding_ratio",
             "clip_sample_range", "sample_max_value", "timestep_spacing", "rescale_betas_zero_snr",
             "snr_shift_scale"}
    bad = [k for k in config if not k.startswith("_") and k not in known]
    if bad:
        raise ValueError(f"unknown DDIMScheduler config keys {bad}")
    c = dict(config)
    if c.get("thresholding", False):
        raise ValueError("DDIMScheduler thresholding=True is not supported")
    diffusers_prediction(c)  # validated here too
    ac = diffusers_alphas_cumprod(
        c.get("beta_schedule", "linear"), c.get("num_train_timesteps", 1000), c.get("beta_start", 1e-4),
        c.get("beta_end", 0.02), rescale_betas_zero_snr=c.get("rescale_betas_zero_snr", False),
        trained_betas=c.get("trained_betas"))
    return make_ddim_schedule(
        ac, num_steps, spacing=c.get("timestep_spacing", "leading"), eta=eta, prev_rule="stride",
        set_alpha_to_one=c.get("set_alpha_to_one", True),
        steps_offset=c.get("steps_offset", 0) if c.get("timestep_spacing", "leading") == "leading" else 0,
        clip_x0=float(c.get("clip_sample_range", 1.0)) if c.get("clip_sample", True) else None,
    )


# --------------------------------------------------------------------------- step / loop
def ddim_step(x, model_out, i: int, schedule: DDIMSchedule, *, prediction: str = "eps", noise=None):
    """One DDIM update at loop step ``i`` (0 = noisiest).

    Args:
        x: current latent (MindSpore tensor or numpy array).
        model_out: the (guided) model output at ``schedule.timesteps[i]``.
        i: loop index.
        schedule: :class:`DDIMSchedule`.
        prediction: what ``model_out`` is: ``"eps"`` (default), ``"v"`` or ``"x0"``.
        noise: N(0,1) of x's shape, used when ``sigma > 0``; None draws one (``ops.randn_like`` /
            ``np.random.standard_normal``).

    Returns:
        ``(x_prev, x0)``.
    """
    pred = prediction
    sa, s1a = float(schedule.sqrt_alphas[i]), float(schedule.sqrt_one_minus_alphas[i])
    if pred == "eps":
        if sa == 0:
            raise ValueError(f"eps-prediction at a timestep with alphas_cumprod == 0 (t={schedule.timesteps[i]}): "
                             "x0 is undefined; zero-terminal-SNR schedules need v-prediction")
        # both LDM (ddim_sqrt_one_minus_alphas) and diffusers take these roots of the float32 alpha
        a = schedule.alphas[i]
        e = model_out
        x0 = (x - e * float(np.sqrt(_F32(1) - a))) / float(np.sqrt(a))
    elif pred == "v":
        e = model_out * sa + x * s1a
        x0 = x * sa - model_out * s1a
    elif pred == "x0":
        x0 = model_out
        e = (x - x0 * sa) / s1a
    else:
        raise ValueError(f"unknown prediction '{pred}' (eps, v, x0)")
    if schedule.clip_x0 is not None:
        x0 = x0.clip(-schedule.clip_x0, schedule.clip_x0)
        if pred != "x0":  # diffusers re-derives eps from the clipped x0
            e = (x - x0 * sa) / s1a
    if schedule.scale is not None:
        x0 = x0 * float(schedule.scale_prev[i] / schedule.scale[i])
    a_prev, sigma = schedule.alphas_prev[i], schedule.sigmas[i]
    dir_coef = float(np.sqrt(max(_F32(1) - a_prev - sigma * sigma, _F32(0))))
    out = x0 * float(np.sqrt(a_prev)) + e * dir_coef
    if sigma > 0:
        if noise is None:
            if is_mindspore(x):
                from mindspore import ops

                noise = ops.randn_like(x)
            else:
                noise = np.random.standard_normal(x.shape).astype(x.dtype)
        out = out + noise * float(sigma)
    return out, x0


def sample_ddim(
    denoiser: Denoiser,
    x,
    schedule: DDIMSchedule,
    *,
    extra_args: Mapping[str, Any] | None = None,
    callback: Callable[[dict], None] | None = None,
    disable: bool = False,
    noise=None,
):
    """DDIM (Song et al. 2021, Eq. 12; eta > 0 adds the DDPM-like noise of Eq. 16) on a discrete VP schedule.

    Args:
        denoiser: :class:`~common.schedulers.denoiser.Denoiser` of ``time="timestep"``, any prediction
            (``eps``, ``v``, ``x0``); called ``denoiser(x, t, **extra_args)`` with ``t`` int64 ``(B,)``
            filled with the step's timestep. Guided already, if guidance is wanted.
        x: initial latent x_T (MindSpore tensor or numpy array), used as is.
        schedule: :class:`DDIMSchedule`.
        extra_args: keyword arguments forwarded to ``denoiser`` (context, fs, ...).
        callback: called after each step with ``{"x", "i", "t", "denoised"}``.
        disable: turn the tqdm progress bar off.
        noise: per-step noise for ``eta > 0``: a sequence / array / tensor indexed by the loop step
            (``noise[i]`` has x's shape) or a callable ``noise(i)``; None draws fresh noise.

    Returns:
        The final latent x_0.
    """
    from tqdm.auto import trange

    denoiser = as_denoiser(denoiser, "sample_ddim", time="timestep")
    extra_args = dict(extra_args or {})
    for i in trange(len(schedule), desc="DDIM", disable=disable):
        t_val = int(schedule.timesteps[i])
        out = denoiser(x, time_input(x, t_val), **extra_args)
        n_i = noise(i) if callable(noise) else (noise[i] if noise is not None else None)
        x, x0 = ddim_step(x, out, i, schedule, prediction=denoiser.prediction, noise=n_i)
        if callback is not None:
            callback({"x": x, "i": i, "t": t_val, "denoised": x0})
    return x
