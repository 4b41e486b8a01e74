"""SVD's first stage: the LDM encoder and the temporal ``VideoDecoder`` (sgm ``temporal_ae``).

The VideoDecoder is the LDM decoder (``common.vae.Decoder``) whose every ResnetBlock is followed
by a temporal ResBlock (``time_stack``: (k,1,1) convs, no time embedding, GroupNorm eps 1e-5),
mixed as ``alpha * temporal + (1 - alpha) * spatial`` with ``alpha = sigmoid(mix_factor)`` (the
opposite orientation of the UNet's AlphaBlender), and whose ``conv_out`` is a 2-D conv followed by a
3-D ``time_mix_conv``. Attention blocks stay 2-D (``time_mode: conv-only``, the release).

Keys (under ``first_stage_model.``): ``encoder.*`` (LDM), ``decoder.{conv_in, mid.*, up.*, norm_out}``
as LDM plus ``...block.N.time_stack.{in_layers.{0,2}, out_layers.{0,3}}.*``, ``...block.N.mix_factor``,
``decoder.conv_out.{weight,bias}``, ``decoder.conv_out.time_mix_conv.{weight,bias}``. No quant convs
(sgm ``AutoencodingEngine``).

Frames are decoded in chunks; the temporal layers of a chunk only see that chunk's frames.
"""
from __future__ import annotations

import math

import mindspore as ms
from mindspore import Parameter, nn, ops
from mindspore.common.initializer import HeUniform, Uniform

from common.nn import GroupNorm, TemporalConv, batch_to_frames, frames_to_batch
from common.vae import AutoencoderKL, Decoder, ResnetBlock

from .config import AutoencoderDDConfig


class TemporalResBlockNoEmb(nn.Cell):
    """openaimodel ``ResBlock(dims=3, skip_t_emb=True)``: GroupNorm(32, eps 1e-5) - SiLU - (k,1,1) conv, twice,
    residual; no ``emb_layers``. Input (B, C, T, h, w)."""

    def __init__(self, channels: int, kernel_size: int = 3, dropout: float = 0.0):
        super().__init__()
        self.in_layers = nn.SequentialCell([GroupNorm(32, channels, 1e-5), nn.SiLU(),
                                            TemporalConv(channels, channels, kernel_size)])
        self.out_layers = nn.SequentialCell([GroupNorm(32, channels, 1e-5), nn.SiLU(), nn.Dropout(p=dropout),
                                             TemporalConv(channels, channels, kernel_size)])

    def construct(self, x):
        return x + self.out_layers(self.in_layers(x))


class VideoResnetBlock(ResnetBlock):
    """ResnetBlock, then ``time_stack`` over the chunk's frames, mixed by ``mix_factor``."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0, video_kernel_size: int = 3,
                 alpha: float = 0.0, merge_strategy: str = "learned", num_groups: int = 32):
        super().__init__(in_channels, out_channels, dropout=dropout, num_groups=num_groups)
        self.time_stack = TemporalResBlockNoEmb(out_channels, video_kernel_size, dropout)
        self.learned = merge_strategy == "learned"
        self.mix_factor = Parameter(ms.Tensor([alpha], ms.float32), name="mix_factor", requires_grad=self.learned)

    def construct(self, x, num_frames: int):
        # x (b*t, c, h, w) -> (b*t, c', h, w)
        x_s = batch_to_frames(super().construct(x), num_frames)  # (b, c, t, h, w)
        x_t = self.time_stack(x_s)
        alpha = ops.sigmoid(self.mix_factor) if self.learned else self.mix_factor
        alpha = alpha.astype(x_s.dtype)
        return frames_to_batch(alpha * x_t + (1.0 - alpha) * x_s)


class AE3DConv(nn.Conv2d):
    """sgm ``AE3DConv``: 3x3 conv (``weight``/``bias``) then ``time_mix_conv`` ((k,1,1) Conv3d over the frames)."""

    def __init__(self, in_channels: int, out_channels: int, video_kernel_size: int = 3):
        super().__init__(in_channels, out_channels, 3, pad_mode="pad", padding=1, has_bias=True,
                         weight_init=HeUniform(math.sqrt(5)), bias_init=Uniform(1.0 / math.sqrt(in_channels * 9)))
        self.time_mix_conv = TemporalConv(out_channels, out_channels, video_kernel_size)

    def construct(self, x, num_frames: int):
        x = super().construct(x)  # (b*t, c, H, W)
        return frames_to_batch(self.time_mix_conv(batch_to_frames(x, num_frames)))


class VideoDecoder(Decoder):
    """sgm ``VideoDecoder`` (time_mode conv-only): ``construct(z, num_frames)``, z (b*t, z_channels, h, w)."""

    config_class = AutoencoderDDConfig
    conv_out_takes_args = True

    def make_resblock(self, in_channels: int, out_channels: int) -> nn.Cell:
        c = self.config
        return VideoResnetBlock(in_channels, out_channels, c.dropout, c.video_kernel_size, c.alpha, c.merge_strategy,
                                c.norm_num_groups)

    def make_conv_out(self, in_channels: int, out_channels: int) -> nn.Cell:
        return AE3DConv(in_channels, out_channels, self.config.video_kernel_size)


class VideoAutoencoder(AutoencoderKL):
    """sgm ``AutoencodingEngine`` of SVD: 2-D encoder (no quant convs) + :class:`VideoDecoder`.

    ``decode_frames(z, scale_factor, chunk_size)`` decodes ``chunk_size`` frames at a time, each chunk
    with its own frame count (the last one may be shorter), as sgm's ``decode_first_stage`` with
    ``en_and_decode_n_samples_a_time``.

    Args:
        ddconfig: the decoder's :class:`~svd_ms.config.AutoencoderDDConfig`; the encoder uses its DDConfig part.
    """

    def __init__(self, ddconfig, attn_chunk_size: int | None = None):
        super().__init__(ddconfig, use_quant_conv=False, attn_chunk_size=attn_chunk_size, decoder_class=VideoDecoder)

    def decode_chunk(self, z):
        return self.decode(z, z.shape[0])

    def construct(self, z):
        """Decode one chunk of frames (unscaled latents) with all its frames in the temporal layers."""
        return self.decoder(z, z.shape[0])
