"""Inflated 2-D layers of the AnimateDiff UNet, on features laid out ``(b*f, c, h, w)``.

The original applies every 2-D layer per frame (``InflatedConv3d``: ``b c f h w -> (b f) c h w``); keeping
frames folded into the batch throughout the UNet gives the same numbers without a transpose per layer.
The one layer that mixes frames is the v1 GroupNorm (``use_inflated_groupnorm: false``): a plain
``nn.GroupNorm`` on the 5-D tensor, i.e. statistics over (c/groups, f, h, w) of each video.
Keys: ``norm1, conv1, time_emb_proj, norm2, conv2, conv_shortcut``; ``downsamplers.0.conv``; ``upsamplers.0.conv``.
"""
from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import nn, ops

from common.nn import GroupNorm, conv2d, linear, upsample_nearest2x


class VideoGroupNorm(GroupNorm):
    """GroupNorm per frame (``inflated=True``) or over all frames of a video (``inflated=False``, v1).

    Args:
        num_groups / num_channels / eps: as ``torch.nn.GroupNorm``.
        inflated: True = ``InflatedGroupNorm`` (per frame); False = statistics over (c/G, f, h, w).
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, inflated: bool = True):
        super().__init__(num_groups, num_channels, eps)
        self.inflated = inflated

    def construct(self, x, num_frames: int = 1):
        # x (b*f, c, h, w)
        if self.inflated:
            return super().construct(x)
        bf, c, h, w = x.shape
        g = x.astype(ms.float32).reshape(bf // num_frames, num_frames, self.num_groups, -1)  # (b, f, G, c/G*h*w)
        mean = g.mean(axis=(1, 3), keep_dims=True)
        var = ops.square(g - mean).mean(axis=(1, 3), keep_dims=True)
        g = ((g - mean) * ops.rsqrt(var + self.eps)).reshape(bf, c, h, w)
        return (g * self.weight.reshape(1, c, 1, 1) + self.bias.reshape(1, c, 1, 1)).astype(x.dtype)


class ResnetBlock3D(nn.Cell):
    """diffusers-0.11 ``ResnetBlock2D`` applied per frame (time embedding added after ``conv1``).

    Args:
        in_channels / out_channels: channels; a 1x1 ``conv_shortcut`` when they differ.
        temb_channels: width of the time embedding.
        groups / eps: GroupNorm groups and eps (``norm_num_groups``, ``norm_eps``).
        inflated_norm: ``use_inflated_groupnorm`` (see :class:`VideoGroupNorm`).
        output_scale_factor: the sum is divided by it (1).
    """

    def __init__(self, in_channels: int, out_channels: int, temb_channels: int, groups: int = 32,
                 eps: float = 1e-5, inflated_norm: bool = True, output_scale_factor: float = 1.0):
        super().__init__()
        self.norm1 = VideoGroupNorm(groups, in_channels, eps, inflated_norm)
        self.conv1 = conv2d(in_channels, out_channels, 3, padding=1)
        self.time_emb_proj = linear(temb_channels, out_channels)
        self.norm2 = VideoGroupNorm(groups, out_channels, eps, inflated_norm)
        self.conv2 = conv2d(out_channels, out_channels, 3, padding=1)
        self.act = nn.SiLU()
        self.use_shortcut = in_channels != out_channels
        if self.use_shortcut:
            self.conv_shortcut = conv2d(in_channels, out_channels, 1)
        self.output_scale_factor = output_scale_factor

    def construct(self, x, temb, num_frames: int):
        # x (b*f, c, h, w); temb (b*f, E): the video's embedding repeated per frame
        h = self.conv1(self.act(self.norm1(x, num_frames)))
        h = h + self.time_emb_proj(self.act(temb)).reshape(temb.shape[0], -1, 1, 1)
        h = self.conv2(self.act(self.norm2(h, num_frames)))
        if self.use_shortcut:
            x = self.conv_shortcut(x)
        out = x + h
        if self.output_scale_factor != 1.0:
            out = out / self.output_scale_factor
        return out


class Downsample3D(nn.Cell):
    """3x3 stride-2 conv per frame (key ``conv``)."""

    def __init__(self, channels: int, out_channels: int | None = None, padding: int = 1):
        super().__init__()
        self.conv = conv2d(channels, out_channels or channels, 3, stride=2, padding=padding)

    def construct(self, x):
        return self.conv(x)


def nearest_indices(n_in: int, n_out: int) -> np.ndarray:
    """Source rows of torch's ``interpolate(mode='nearest', size=n_out)``: floor(i * n_in / n_out)."""
    scale = np.float32(n_in) / np.float32(n_out)
    return np.minimum(np.floor(np.arange(n_out, dtype=np.float32) * scale).astype(np.int64), n_in - 1)


class Upsample3D(nn.Cell):
    """Nearest upsampling to ``size`` (2x when ``size`` is None or exactly twice the input) then a 3x3 conv."""

    def __init__(self, channels: int, out_channels: int | None = None):
        super().__init__()
        self.conv = conv2d(channels, out_channels or channels, 3, padding=1)

    def construct(self, x, size=None):
        # x (b*f, c, h, w); size (H, W) of the skip connection the result is concatenated with
        h, w = x.shape[2], x.shape[3]
        if size is None or (size[0] == 2 * h and size[1] == 2 * w):
            x = upsample_nearest2x(x)
        else:
            rows = ms.Tensor(nearest_indices(h, size[0]).astype(np.int32))
            cols = ms.Tensor(nearest_indices(w, size[1]).astype(np.int32))
            x = ops.gather(ops.gather(x, rows, 2), cols, 3)
        return self.conv(x)
