"""FreeInit (Wu et al. 2023, "FreeInit: Bridging Initialization Gap in Video Diffusion Models"): sample the
video several times; before every pass after the first, the finished latents are diffused back to the last
training timestep with the first pass's noise, and their low spatio-temporal frequencies are kept while the
high ones come from fresh noise. Matches diffusers' ``AnimateDiffPipeline.enable_free_init``.

The filter over a latent video ``(..., T, H, W)`` (frequencies centred, ``fftshift``) is a function of

    d^2 = ((d_s / d_t) (2t/T - 1))^2 + (2h/H - 1)^2 + (2w/W - 1)^2

``butterworth``: ``1 / (1 + (d^2 / d_s^2)^order)``; ``gaussian``: ``exp(-d^2 / (2 d_s^2))``; ``ideal``:
``1 if d^2 <= 2 d_s else 0`` (as diffusers writes it); a stop frequency of 0 gives an all-zero filter.
The FFT runs on the host (NumPy), once per pass.
"""
from __future__ import annotations

import numpy as np

__all__ = ["FREEINIT_METHODS", "freeinit_filter", "freeinit_reinit", "fast_sampling_steps"]

FREEINIT_METHODS = ("butterworth", "gaussian", "ideal")


def freeinit_filter(shape, method: str = "butterworth", order: float = 4, spatial_stop_frequency: float = 0.25,
                    temporal_stop_frequency: float = 0.25) -> np.ndarray:
    """The low-pass filter, ``shape[-3:] = (T, H, W)``, broadcast to ``shape`` (float64)."""
    if method not in FREEINIT_METHODS:
        raise ValueError(f"FreeInit method must be one of {FREEINIT_METHODS}, got {method!r}")
    T, H, W = shape[-3:]
    ds, dt = float(spatial_stop_frequency), float(temporal_stop_frequency)
    if ds == 0 or dt == 0:
        return np.zeros(shape)
    t = (ds / dt) * (2 * np.arange(T) / T - 1)
    h = 2 * np.arange(H) / H - 1
    w = 2 * np.arange(W) / W - 1
    d2 = t[:, None, None] ** 2 + h[None, :, None] ** 2 + w[None, None, :] ** 2  # (T, H, W)
    if method == "butterworth":
        mask = 1.0 / (1.0 + (d2 / ds ** 2) ** order)
    elif method == "gaussian":
        mask = np.exp(-d2 / (2 * ds ** 2))
    else:
        mask = (d2 <= ds * 2).astype(np.float64)
    return np.broadcast_to(mask, shape).copy()


def freeinit_reinit(latents: np.ndarray, initial_noise: np.ndarray, fresh_noise: np.ndarray, alpha_bar: float,
                    lpf: np.ndarray) -> np.ndarray:
    """The start of the next pass: ``z_T = sqrt(a) latents + sqrt(1 - a) initial_noise`` (``a`` = alphas_cumprod
    of the last training timestep), then the low frequencies of ``z_T`` and the high ones of ``fresh_noise``
    (3-D FFT over the last three axes), float32."""
    z_t = np.sqrt(alpha_bar) * latents.astype(np.float64) + np.sqrt(1.0 - alpha_bar) * initial_noise
    axes = (-3, -2, -1)
    z_f = np.fft.fftshift(np.fft.fftn(z_t, axes=axes), axes=axes)
    n_f = np.fft.fftshift(np.fft.fftn(fresh_noise.astype(np.float64), axes=axes), axes=axes)
    mixed = z_f * lpf + n_f * (1.0 - lpf)
    return np.fft.ifftn(np.fft.ifftshift(mixed, axes=axes), axes=axes).real.astype(np.float32)


def fast_sampling_steps(num_inference_steps: int, num_iters: int, i: int) -> int:
    """Coarse-to-fine steps of pass ``i`` (diffusers' ``use_fast_sampling``): ``int(steps / iters * (i + 1))``."""
    return max(1, int(num_inference_steps / num_iters * (i + 1)))
