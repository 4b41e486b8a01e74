"""The EDM denoiser of SVD (sgm ``Denoiser`` + ``VScalingWithEDMcNoise`` + ``OpenAIWrapper``).

For a noise level sigma (per frame):
``c_skip = 1/(s^2+1)``, ``c_out = -s/sqrt(s^2+1)``, ``c_in = 1/sqrt(s^2+1)``, ``c_noise = 0.25 ln s``;
``D(x; s) = unet(cat(x * c_in, concat), c_noise, crossattn, vector) * c_out + x * c_skip``.
"""
from __future__ import annotations

import mindspore as ms
from mindspore import nn, ops

from .video_unet import VideoUNet


def vscaling_edm_cnoise(sigma):
    """(c_skip, c_out, c_in, c_noise) of sgm ``VScalingWithEDMcNoise`` for sigma (N,), each (N,)."""
    s2 = sigma * sigma + 1.0
    return 1.0 / s2, -sigma / ops.sqrt(s2), 1.0 / ops.sqrt(s2), 0.25 * ops.log(sigma)


class Denoiser(nn.Cell):
    """D(x; sigma) for the VideoUNet. ``construct(x, sigma, crossattn, vector, concat, image_only_indicator)``.

    * x: (B*T, 4, h, w) noisy latents; sigma: (B*T,) noise levels (> 0).
    * crossattn (B*T, L, D), vector (B*T, A), concat (B*T, 4, h, w): the conditioning.
    * image_only_indicator: (B, T) (zeros for video sampling).

    Returns the denoised latents (B*T, 4, h, w). The cell does not own the UNet's parameter names
    (``auto_prefix=False``): they stay ``model.diffusion_model.*``.
    """

    def __init__(self, unet: VideoUNet):
        super().__init__(auto_prefix=False)
        self.unet = unet

    def construct(self, x, sigma, crossattn, vector, concat, image_only_indicator):
        c_skip, c_out, c_in, c_noise = vscaling_edm_cnoise(sigma.astype(ms.float32))
        n = x.shape[0]
        xin = x * c_in.reshape(n, 1, 1, 1).astype(x.dtype)
        out = self.unet(ops.concat([xin, concat.astype(x.dtype)], axis=1), c_noise, crossattn.astype(x.dtype),
                        vector, image_only_indicator)
        return out.astype(x.dtype) * c_out.reshape(n, 1, 1, 1).astype(x.dtype) + x * c_skip.reshape(n, 1, 1, 1).astype(x.dtype)
