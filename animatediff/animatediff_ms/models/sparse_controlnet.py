"""SparseCtrl (Guo et al. 2023, "SparseCtrl: Adding Sparse Controls to Text-to-Video Diffusion Models"): the
controlnet of the original ``animatediff/models/sparse_controlnet.py::SparseControlNetModel``.

A copy of the UNet's encoder half (down blocks with their motion modules, mid block) that sees the condition
frames instead of the noisy latents and hands every skip connection and the mid-block output, through zero-
initialised 1x1 convs, to the UNet as residuals. Built as ``scripts/animate.py`` builds it
(``SparseControlNetModel.from_unet`` with ``unet.config.num_attention_heads = 8``):

* sizes from the UNet's config (:class:`~animatediff_ms.config.UNet3DConfig`), the condition and motion modules
  from ``controlnet_additional_kwargs`` (:class:`~animatediff_ms.config.SparseControlNetKwargs`);
* GroupNorms always per frame (``use_inflated_groupnorm=True`` is hard-coded in the original);
* down-block spatial attention with the UNet's ``attention_head_dim[i]`` heads, the MID block with
  ``num_attention_heads`` heads (8, whatever the UNet has).

Parameter names are the released checkpoints' (``conv_in``, ``time_embedding.linear_{1,2}``,
``controlnet_cond_embedding.*``, ``down_blocks.*`` incl. ``motion_modules``, ``controlnet_down_blocks.<i>``,
``mid_block.*``, ``controlnet_mid_block``).
"""
from __future__ import annotations

from mindspore import nn, ops

from common.nn import (
    TimestepEmbedding,
    batch_to_frames,
    conv2d,
    frames_to_batch,
    repeat_interleave,
    timestep_embedding,
)

from ..config import ConfigError, SparseControlNetKwargs, UNet3DConfig
from .unet_blocks import DownBlock3D, MidBlock3D, _BlockOptions

#: widths of the scribble condition embedding (``from_unet``'s default; the yaml cannot set them).
CONDITION_EMBEDDING_CHANNELS = (16, 32, 96, 256)


class SparseControlNetConditioningEmbedding(nn.Cell):
    """Pixel condition -> features at latent size, per frame: ``conv_in`` 3x3 + SiLU, then for each width step
    ``blocks.{2k}`` 3x3 (same width) + SiLU and ``blocks.{2k+1}`` 3x3 stride 2 + SiLU, then ``conv_out`` 3x3.

    Three stride-2 steps: the condition must be 8x the latent size (a VAE of scale factor 8).

    Args:
        out_channels: the controlnet's first block width. in_channels: condition channels (+1 with the mask).
        widths: the stack's widths ((16, 32, 96, 256)).
    """

    def __init__(self, out_channels: int, in_channels: int = 3, widths=CONDITION_EMBEDDING_CHANNELS):
        super().__init__()
        self.conv_in = conv2d(in_channels, widths[0], 3, padding=1)
        blocks = []
        for ci, co in zip(widths[:-1], widths[1:]):
            blocks.append(conv2d(ci, ci, 3, padding=1))
            blocks.append(conv2d(ci, co, 3, stride=2, padding=1))
        self.blocks = nn.CellList(blocks)
        self.conv_out = conv2d(widths[-1], out_channels, 3, padding=1)
        self.act = nn.SiLU()
        self.downscale = 2 ** (len(widths) - 1)

    def construct(self, x):
        # x (n, C, H, W) -> (n, out_channels, H/8, W/8)
        x = self.act(self.conv_in(x))
        for block in self.blocks:
            x = self.act(block(x))
        return self.conv_out(x)


class SparseControlNetModel(nn.Cell):
    """The SparseCtrl controlnet.

    Args:
        unet_cfg: the config of the UNet it is built from (:class:`~animatediff_ms.config.UNet3DConfig`).
        cfg: ``controlnet_additional_kwargs`` (:class:`~animatediff_ms.config.SparseControlNetKwargs`).
        num_attention_heads: heads of the mid block's spatial attention (``scripts/animate.py`` sets 8 for
            every UNet; an int or one per level, the last entry is used). None = the UNet's ``attention_head_dim``.

    ``construct(sample (b, 4, f, h, w), timestep (b,) / (1,) / (), encoder_hidden_states (b', L, D),
    controlnet_cond (b'', C, f, H', W'), conditioning_mask (b'', 1, f, H', W'), conditioning_scale=1.0)`` returns
    ``(down residuals, mid residual)``: ``1 + 4 * layers_per_block + 3`` (4 levels) tensors ``(b, c_i, f, h_i, w_i)`` (one
    per skip connection of the UNet's down path) and ``(b, c, f, h/8, w/8)``, all times ``conditioning_scale``.
    b' and b'' divide b (the condition of batch 1 serves both classifier-free-guidance halves); the
    condition is at latent size (RGB: VAE latents) or 8x it (scribble: pixels).
    """

    def __init__(self, unet_cfg: UNet3DConfig, cfg: SparseControlNetKwargs, num_attention_heads=8):
        super().__init__()
        self.unet_cfg = unet_cfg
        self.cfg = cfg
        ch = list(unet_cfg.block_out_channels)
        n = len(ch)
        c0 = ch[0]
        temb = 4 * c0
        heads = unet_cfg.heads
        mid_heads = num_attention_heads if num_attention_heads is not None else heads
        mid_heads = int(mid_heads) if isinstance(mid_heads, int) else int(list(mid_heads)[-1])
        self.mid_heads = mid_heads
        if ch[-1] % mid_heads:
            raise ConfigError(f"SparseCtrl: the mid block's {ch[-1]} channels are not divisible into {mid_heads} "
                              f"heads (num_attention_heads; scripts/animate.py sets 8)")
        opts = _BlockOptions(temb, unet_cfg.norm_num_groups, unet_cfg.norm_eps, True, unet_cfg.cross_attention_dim,
                             unet_cfg.use_linear_projection, cfg.motion_module_kwargs)
        self.conv_in = conv2d(unet_cfg.in_channels, c0, 3, padding=1)
        cond_in = cfg.conditioning_channels + (1 if cfg.concate_conditioning_mask else 0)
        if cfg.use_simplified_condition_embedding:
            self.controlnet_cond_embedding = conv2d(cond_in, c0, 3, padding=1)
            self.cond_downscale = 1
        else:
            self.controlnet_cond_embedding = SparseControlNetConditioningEmbedding(c0, cond_in)
            self.cond_downscale = self.controlnet_cond_embedding.downscale
        self.time_embedding = TimestepEmbedding(c0, temb)

        down, res = [], [conv2d(c0, c0, 1)]
        out_c = c0
        for i in range(n):
            in_c, out_c = out_c, ch[i]
            last = i == n - 1
            down.append(DownBlock3D(opts, in_c, out_c, unet_cfg.layers_per_block, heads[i] if not last else None,
                                    add_downsample=not last, has_motion=cfg.down_has_motion(i),
                                    downsample_padding=unet_cfg.downsample_padding))
            res += [conv2d(out_c, out_c, 1) for _ in range(unet_cfg.layers_per_block + (0 if last else 1))]
        self.down_blocks = nn.CellList(down)
        self.controlnet_down_blocks = nn.CellList(res)
        self.mid_block = MidBlock3D(opts, ch[-1], mid_heads, cfg.mid_has_motion, unet_cfg.mid_block_scale_factor)
        self.controlnet_mid_block = conv2d(ch[-1], ch[-1], 1)
        self.num_levels = n
        self.num_residuals = len(res)

    @property
    def max_frames(self) -> int | None:
        """Longest video the motion modules' position table allows (None: no limit)."""
        mm = self.cfg.motion_module_kwargs
        return mm.temporal_position_encoding_max_len if self.cfg.use_motion_module and \
            mm.temporal_position_encoding else None

    def embed_condition(self, controlnet_cond, conditioning_mask, num_frames: int):
        """``cat(cond, mask)`` through the condition embedding, per frame: ``(b'', C, f, H', W')`` ->
        ``(b'', c0, f, h, w)`` flattened to ``(b''*f, c0, h, w)``."""
        if self.cfg.concate_conditioning_mask:
            controlnet_cond = ops.concat((controlnet_cond, conditioning_mask.astype(controlnet_cond.dtype)), axis=1)
        return self.controlnet_cond_embedding(frames_to_batch(controlnet_cond))

    def residuals(self, sample, timestep, encoder_hidden_states, controlnet_cond, conditioning_mask,
                  conditioning_scale=1.0):
        """The residuals with frames folded into the batch: ``(b*f, c_i, h_i, w_i)`` tensors (see the class doc)."""
        b, f = sample.shape[0], sample.shape[2]
        x = frames_to_batch(sample)  # (b*f, 4, h, w)
        if self.cfg.set_noisy_sample_input_to_zero:
            x = ops.zeros_like(x)
        t = timestep.reshape(-1)
        t = ops.tile(t, (b // t.shape[0],))
        emb = self.time_embedding(timestep_embedding(t, self.unet_cfg.block_out_channels[0],
                                                     flip_sin_to_cos=self.unet_cfg.flip_sin_to_cos,
                                                     downscale_freq_shift=self.unet_cfg.freq_shift))  # (b, E)
        temb = repeat_interleave(emb, f)  # (b*f, E)
        context = encoder_hidden_states
        if context.shape[0] != b and context.shape[0] != b * f:  # (b*f, L, D): one text per frame
            context = ops.tile(context, (b // context.shape[0], 1, 1))  # torch ``repeat``: whole batch repeated

        x = self.conv_in(x)
        cond = self.embed_condition(controlnet_cond, conditioning_mask, f)  # (b''*f, c0, h, w)
        c, h, w = x.shape[1], x.shape[2], x.shape[3]
        x = (x.reshape(b, f, c, h, w) + cond.reshape(-1, f, c, h, w)).reshape(b * f, c, h, w)  # b'' broadcast to b

        skips = (x,)
        for i in range(self.num_levels):
            x, s = self.down_blocks[i](x, temb, context, f)
            skips = skips + s
        x = self.mid_block(x, temb, context, f)
        down = tuple(self.controlnet_down_blocks[i](skips[i]) * conditioning_scale
                     for i in range(self.num_residuals))
        return down, self.controlnet_mid_block(x) * conditioning_scale

    def construct(self, sample, timestep, encoder_hidden_states, controlnet_cond, conditioning_mask,
                  conditioning_scale=1.0):
        f = sample.shape[2]
        down, mid = self.residuals(sample, timestep, encoder_hidden_states, controlnet_cond, conditioning_mask,
                                   conditioning_scale)
        return tuple(batch_to_frames(r, f) for r in down), batch_to_frames(mid, f)
