"""The inflated UNet of AnimateDiff (original ``animatediff/models/unet.py::UNet3DConditionModel``).

Parameter names are the diffusers-0.11 ``UNet2DConditionModel`` names plus ``motion_modules`` (e.g.
``down_blocks.0.resnets.0.norm1.weight``, ``down_blocks.0.motion_modules.0.temporal_transformer.proj_in.weight``),
so an SD-1.5 diffusers folder and a released motion module load by identity.

Levels: down blocks 0-2 with cross-attention, 3 without; up block 0 without, 1-3 with (the reference forces
these block types whatever ``unet/config.json`` says); see :class:`~animatediff_ms.config.UNet3DConfig` for
where motion modules go.
"""
from __future__ import annotations

import mindspore as ms
from mindspore import nn, ops

from common.nn import (
    TimestepEmbedding,
    batch_to_frames,
    conv2d,
    frames_to_batch,
    repeat_interleave,
    timestep_embedding,
)

from ..config import UNet3DConfig
from .resnet import VideoGroupNorm
from .unet_blocks import DownBlock3D, MidBlock3D, UpBlock3D, _BlockOptions


def _fold_residual(r, num_frames: int):
    """A controlnet residual ``(b, c, f, h, w)`` -> ``(b*f, c, h, w)``; ``(b, c, h, w)`` is repeated per frame."""
    if r.ndim == 4:
        return repeat_interleave(r, num_frames)
    return frames_to_batch(r)


def up_path(up_blocks, x, skips: tuple, per_level: int, temb, context, num_frames: int):
    """The decoder half: each up block takes the last ``per_level`` skips (deepest first) and upsamples to the size
    of the next skip. Skips come as a tuple (not recomputed under gradient checkpointing)."""
    n = len(up_blocks)
    for i in range(n):
        level = skips[len(skips) - per_level:]
        skips = skips[:len(skips) - per_level]
        size = None
        if i < n - 1:
            nxt = skips[len(skips) - 1]
            size = (nxt.shape[2], nxt.shape[3])
        x = up_blocks[i](x, level, temb, context, num_frames, size)
    return x


class UNet3DConditionModel(nn.Cell):
    """eps-prediction UNet over videos ``(b, c, f, h, w)`` conditioned on one text embedding per video.

    Args:
        cfg: :class:`~animatediff_ms.config.UNet3DConfig` (``UNet3DConfig.from_files(unet/config.json,
            unet_additional_kwargs)``).

    ``construct(sample (b, 4, f, h, w), timestep (b,) or scalar, encoder_hidden_states (b, L, D),
    down_block_additional_residuals=None, mid_block_additional_residual=None)`` returns the predicted noise
    ``(b, 4, f, h, w)``. The optional residuals (a SparseCtrl controlnet's outputs) are added to the skip
    connections after the whole down path (one per skip: ``conv_in`` output, every layer, every downsampler) and
    to the mid-block output; each is ``(b, c, f, h, w)``, or ``(b, c, h, w)`` for the same residual on every frame.
    """

    def __init__(self, cfg: UNet3DConfig):
        super().__init__()
        self.cfg = cfg
        ch = list(cfg.block_out_channels)
        heads = cfg.heads
        n = len(ch)
        c0 = ch[0]
        temb = 4 * c0
        opts = _BlockOptions(temb, cfg.norm_num_groups, cfg.norm_eps, cfg.use_inflated_groupnorm,
                             cfg.cross_attention_dim, cfg.use_linear_projection, cfg.motion_module_kwargs)
        self.conv_in = conv2d(cfg.in_channels, c0, 3, padding=1)
        self.time_embedding = TimestepEmbedding(c0, temb)

        down = []
        out_c = c0
        for i in range(n):
            in_c, out_c = out_c, ch[i]
            down.append(DownBlock3D(opts, in_c, out_c, cfg.layers_per_block, heads[i] if i < n - 1 else None,
                                    add_downsample=i < n - 1, has_motion=cfg.down_has_motion(i),
                                    downsample_padding=cfg.downsample_padding))
        self.down_blocks = nn.CellList(down)
        self.mid_block = MidBlock3D(opts, ch[-1], heads[-1], cfg.mid_has_motion, cfg.mid_block_scale_factor)

        up = []
        rch, rheads = ch[::-1], heads[::-1]
        out_c = rch[0]
        for i in range(n):
            prev, out_c = out_c, rch[i]
            in_c = rch[min(i + 1, n - 1)]
            up.append(UpBlock3D(opts, in_c, out_c, prev, cfg.layers_per_block + 1, rheads[i] if i > 0 else None,
                                add_upsample=i < n - 1, has_motion=cfg.up_has_motion(i)))
        self.up_blocks = nn.CellList(up)
        self.conv_norm_out = VideoGroupNorm(cfg.norm_num_groups, c0, cfg.norm_eps, cfg.use_inflated_groupnorm)
        self.conv_act = nn.SiLU()
        self.conv_out = conv2d(c0, cfg.out_channels, 3, padding=1)
        self.num_levels = n
        self.layers_per_up_block = cfg.layers_per_block + 1  # skips consumed per up block
        self.recompute_blocks = False

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Gradient checkpointing (the training yaml's ``gradient_checkpointing``): in train mode every down block and the mid
        block run under :func:`mindspore.recompute`, their activations recomputed in the backward pass (less memory,
        the same numbers). The up blocks are not: they take their skip connections as a tuple, which MindSpore's
        PyNative recompute cannot differentiate through."""
        self.recompute_blocks = bool(enabled)

    def _block(self, block, *args):
        if self.recompute_blocks and self.training:
            return ms.recompute(block, *args)
        return block(*args)

    def construct(self, sample, timestep, encoder_hidden_states, down_block_additional_residuals=None,
                  mid_block_additional_residual=None):
        # sample (b, c, f, h, w); timestep (b,) / (1,) / (); encoder_hidden_states (b, L, D)
        b, f = sample.shape[0], sample.shape[2]
        if self.cfg.center_input_sample:
            sample = 2 * sample - 1.0
        x = frames_to_batch(sample)  # (b*f, c, h, w)
        t = ops.broadcast_to(timestep.reshape(-1), (b,))
        emb = self.time_embedding(timestep_embedding(t, self.cfg.block_out_channels[0],
                                                     flip_sin_to_cos=self.cfg.flip_sin_to_cos,
                                                     downscale_freq_shift=self.cfg.freq_shift))  # (b, E)
        temb = repeat_interleave(emb, f)  # (b*f, E)
        context = encoder_hidden_states

        x = self.conv_in(x)
        skips = (x,)
        for i in range(self.num_levels):
            x, s = self._block(self.down_blocks[i], x, temb, context, f)
            skips = skips + s
        if down_block_additional_residuals is not None:
            if len(down_block_additional_residuals) != len(skips):
                raise ValueError(f"UNet: {len(down_block_additional_residuals)} down-block residuals for "
                                 f"{len(skips)} skip connections")
            skips = tuple(s + _fold_residual(r, f) for s, r in zip(skips, down_block_additional_residuals))
        x = self._block(self.mid_block, x, temb, context, f)
        if mid_block_additional_residual is not None:
            x = x + _fold_residual(mid_block_additional_residual, f)
        x = up_path(self.up_blocks, x, skips, self.layers_per_up_block, temb, context, f)
        x = self.conv_out(self.conv_act(self.conv_norm_out(x, f)))
        return batch_to_frames(x, f)  # (b, c_out, f, h, w)
