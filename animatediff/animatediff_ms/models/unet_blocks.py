"""Down / mid / up blocks of the inflated UNet (original ``CrossAttnDownBlock3D``, ``DownBlock3D``,
``UNetMidBlock3DCrossAttn``, ``CrossAttnUpBlock3D``, ``UpBlock3D``).

Per layer j: ``resnets.j`` -> ``attentions.j`` (cross-attention blocks) -> ``motion_modules.j`` (when the
block has motion modules); down blocks collect the output of every layer (and of the downsampler) as skip
connections; up blocks concatenate one skip per layer before the resnet. Mid block:
``resnets.0 -> attentions.0 -> motion_modules.0 (v2) -> resnets.1``.
"""
from __future__ import annotations

from mindspore import nn, ops

from ..config import MotionModuleConfig
from .attention import Transformer3DModel
from .motion_module import VanillaTemporalModule
from .resnet import Downsample3D, ResnetBlock3D, Upsample3D


class _BlockOptions:
    """Sizes shared by every block of one UNet (from :class:`~animatediff_ms.config.UNet3DConfig`)."""

    def __init__(self, temb_channels: int, groups: int, eps: float, inflated_norm: bool, cross_attention_dim: int,
                 use_linear_projection: bool, motion_cfg: MotionModuleConfig, motion_norm_over_frames: bool = False):
        self.temb_channels = temb_channels
        self.groups = groups
        self.eps = eps
        self.inflated_norm = inflated_norm
        self.cross_attention_dim = cross_attention_dim
        self.use_linear_projection = use_linear_projection
        self.motion_cfg = motion_cfg
        self.motion_norm_over_frames = motion_norm_over_frames  # SDXL motion modules: GroupNorm over all frames

    def resnet(self, cin: int, cout: int, scale: float = 1.0) -> ResnetBlock3D:
        return ResnetBlock3D(cin, cout, self.temb_channels, self.groups, self.eps, self.inflated_norm, scale)

    def attention(self, channels: int, heads: int, depth: int = 1) -> Transformer3DModel:
        if channels % heads:
            raise ValueError(f"UNet: {channels} channels are not divisible into {heads} attention heads "
                             f"(attention_head_dim)")
        return Transformer3DModel(heads, channels // heads, channels, depth, self.cross_attention_dim, self.groups,
                                  self.use_linear_projection)

    def motion(self, channels: int) -> VanillaTemporalModule:
        return VanillaTemporalModule(channels, self.motion_cfg, self.motion_norm_over_frames)


class DownBlock3D(nn.Cell):
    """``num_layers`` x (resnet [-> spatial transformer] [-> motion module]) then an optional downsampler.

    Args:
        opts: shared sizes. in_channels / out_channels: block channels. num_layers: ``layers_per_block``.
        heads: spatial-attention heads, or None for a block without attention (``DownBlock3D``).
        add_downsample: stride-2 conv at the end (all but the last level). has_motion: motion modules.
        downsample_padding: padding of the stride-2 conv. depth: transformer blocks per spatial transformer (1;
        SDXL's ``transformer_layers_per_block``).
    """

    def __init__(self, opts: _BlockOptions, in_channels: int, out_channels: int, num_layers: int, heads: int | None,
                 add_downsample: bool, has_motion: bool, downsample_padding: int = 1, depth: int = 1):
        super().__init__()
        self.num_layers = num_layers
        self.has_attention = heads is not None
        self.has_motion = has_motion
        self.add_downsample = add_downsample
        self.resnets = nn.CellList([opts.resnet(in_channels if j == 0 else out_channels, out_channels)
                                    for j in range(num_layers)])
        if self.has_attention:
            self.attentions = nn.CellList([opts.attention(out_channels, heads, depth) for _ in range(num_layers)])
        if has_motion:
            self.motion_modules = nn.CellList([opts.motion(out_channels) for _ in range(num_layers)])
        if add_downsample:
            self.downsamplers = nn.CellList([Downsample3D(out_channels, out_channels, downsample_padding)])

    def construct(self, x, temb, context, num_frames: int):
        skips = ()
        for j in range(self.num_layers):
            x = self.resnets[j](x, temb, num_frames)
            if self.has_attention:
                x = self.attentions[j](x, context, num_frames)
            if self.has_motion:
                x = self.motion_modules[j](x, num_frames)
            skips = skips + (x,)
        if self.add_downsample:
            x = self.downsamplers[0](x)
            skips = skips + (x,)
        return x, skips


class MidBlock3D(nn.Cell):
    """``UNetMidBlock3DCrossAttn`` with one layer: resnet -> spatial transformer -> [motion module] -> resnet.
    ``depth``: transformer blocks of the spatial transformer (1; SDXL: the last ``transformer_layers_per_block``)."""

    def __init__(self, opts: _BlockOptions, channels: int, heads: int, has_motion: bool, output_scale_factor=1.0,
                 depth: int = 1):
        super().__init__()
        self.has_motion = has_motion
        self.resnets = nn.CellList([opts.resnet(channels, channels, output_scale_factor) for _ in range(2)])
        self.attentions = nn.CellList([opts.attention(channels, heads, depth)])
        if has_motion:
            self.motion_modules = nn.CellList([opts.motion(channels)])

    def construct(self, x, temb, context, num_frames: int):
        x = self.resnets[0](x, temb, num_frames)
        x = self.attentions[0](x, context, num_frames)
        if self.has_motion:
            x = self.motion_modules[0](x, num_frames)
        return self.resnets[1](x, temb, num_frames)


class UpBlock3D(nn.Cell):
    """``num_layers`` x (concat skip -> resnet [-> spatial transformer] [-> motion module]) then upsampler.

    Args:
        opts: shared sizes. in_channels: channels of the deepest skip of this level. out_channels: block
        channels. prev_output_channel: channels coming from below. num_layers: ``layers_per_block + 1``.
        heads: spatial-attention heads or None (``UpBlock3D``). add_upsample: all but the last level.
        has_motion: motion modules. depth: transformer blocks per spatial transformer (1).
    """

    def __init__(self, opts: _BlockOptions, in_channels: int, out_channels: int, prev_output_channel: int,
                 num_layers: int, heads: int | None, add_upsample: bool, has_motion: bool, depth: int = 1):
        super().__init__()
        self.num_layers = num_layers
        self.has_attention = heads is not None
        self.has_motion = has_motion
        self.add_upsample = add_upsample
        resnets = []
        for j in range(num_layers):
            skip = in_channels if j == num_layers - 1 else out_channels
            cin = prev_output_channel if j == 0 else out_channels
            resnets.append(opts.resnet(cin + skip, out_channels))
        self.resnets = nn.CellList(resnets)
        if self.has_attention:
            self.attentions = nn.CellList([opts.attention(out_channels, heads, depth) for _ in range(num_layers)])
        if has_motion:
            self.motion_modules = nn.CellList([opts.motion(out_channels) for _ in range(num_layers)])
        if add_upsample:
            self.upsamplers = nn.CellList([Upsample3D(out_channels, out_channels)])

    def construct(self, x, skips, temb, context, num_frames: int, upsample_size=None):
        # skips: this level's skip connections, the last one is used first
        for j in range(self.num_layers):
            x = ops.concat((x, skips[self.num_layers - 1 - j]), axis=1)
            x = self.resnets[j](x, temb, num_frames)
            if self.has_attention:
                x = self.attentions[j](x, context, num_frames)
            if self.has_motion:
                x = self.motion_modules[j](x, num_frames)
        if self.add_upsample:
            x = self.upsamplers[0](x, upsample_size)
        return x
