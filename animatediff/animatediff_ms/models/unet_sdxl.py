"""The SDXL UNet with AnimateDiff motion modules (original ``sdxl`` branch ``UNet3DConditionModel``;
diffusers' ``UNetMotionModel`` built from an SDXL UNet and ``MotionAdapter`` computes the same).

Parameter names are the diffusers SDXL ``UNet2DConditionModel`` names plus ``motion_modules`` of the
released ``mm_sdxl_v10_beta.ckpt`` (``down_blocks.1.attentions.0.transformer_blocks.1.attn2.to_k.weight``,
``add_embedding.linear_1.weight``, ``up_blocks.0.motion_modules.2.temporal_transformer.proj_in.weight``), so
an SDXL diffusers folder and the motion module load by identity.

Every size is read from :class:`~animatediff_ms.config_sdxl.UNetSDXLConfig` (``unet/config.json``): levels and
block types, resnets per block, transformer depth per level, heads, text width, the ``text_time`` embedding.
Features stay ``(b*f, c, h, w)`` through the network (every 2-D layer per frame); the motion modules attend
along frames and normalise over all frames of a video.
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

from ..config_sdxl import UNetSDXLConfig
from .resnet import VideoGroupNorm
from .unet import up_path
from .unet_blocks import DownBlock3D, MidBlock3D, UpBlock3D, _BlockOptions


class UNetSDXLMotionModel(nn.Cell):
    """eps-prediction SDXL UNet over videos ``(b, c, f, h, w)``.

    Args:
        cfg: :class:`~animatediff_ms.config_sdxl.UNetSDXLConfig` (``UNetSDXLConfig.from_files(unet/config.json,
            unet_additional_kwargs)``).

    ``construct(sample (b, 4, f, h, w), timestep (b,) / (1,) / (), encoder_hidden_states (b, L, D),
    text_embeds (b, P), time_ids (b, 6))`` -> predicted noise ``(b, 4, f, h, w)``. ``encoder_hidden_states`` is
    one text per video (the concatenated penultimate states of both text encoders), ``text_embeds`` the pooled,
    projected output of the second encoder and ``time_ids`` ``(orig_h, orig_w, crop_top, crop_left, target_h,
    target_w)``; the last two are only read when ``addition_embed_type`` is ``"text_time"``.
    """

    def __init__(self, cfg: UNetSDXLConfig):
        super().__init__()
        self.cfg = cfg
        ch = list(cfg.block_out_channels)
        n = len(ch)
        heads, depths, up_depths = cfg.heads, cfg.depths, cfg.up_depths
        c0 = ch[0]
        temb = 4 * c0
        opts = _BlockOptions(temb, cfg.norm_num_groups, cfg.norm_eps, True, cfg.cross_attention_dim,
                             cfg.use_linear_projection, cfg.motion_module_kwargs, motion_norm_over_frames=True)
        self.conv_in = conv2d(cfg.in_channels, c0, 3, padding=1)
        self.time_embedding = TimestepEmbedding(c0, temb)
        self.text_time = cfg.addition_embed_type == "text_time"
        if self.text_time:
            self.add_embedding = TimestepEmbedding(cfg.projection_class_embeddings_input_dim, temb)

        down = []
        out_c = c0
        for i in range(n):
            in_c, out_c = out_c, ch[i]
            down.append(DownBlock3D(opts, in_c, out_c, cfg.layers_per_block,
                                    heads[i] if cfg.down_has_attention(i) else None, add_downsample=i < n - 1,
                                    has_motion=cfg.down_has_motion(i), downsample_padding=cfg.downsample_padding,
                                    depth=depths[i]))
        self.down_blocks = nn.CellList(down)
        self.mid_block = MidBlock3D(opts, ch[-1], heads[-1], cfg.mid_has_motion, cfg.mid_block_scale_factor,
                                    depth=depths[-1])

        up = []
        rch, rheads = ch[::-1], heads[::-1]
        out_c = rch[0]
        for i in range(n):
            prev, out_c = out_c, rch[i]
            in_c = rch[min(i + 1, n - 1)]
            up.append(UpBlock3D(opts, in_c, out_c, prev, cfg.layers_per_block + 1,
                                rheads[i] if cfg.up_has_attention(i) else None, add_upsample=i < n - 1,
                                has_motion=cfg.up_has_motion(i), depth=up_depths[i]))
        self.up_blocks = nn.CellList(up)
        self.conv_norm_out = VideoGroupNorm(cfg.norm_num_groups, c0, cfg.norm_eps, True)
        self.conv_act = nn.SiLU()
        self.conv_out = conv2d(c0, cfg.out_channels, 3, padding=1)
        self.num_levels = n
        self.layers_per_up_block = cfg.layers_per_block + 1  # skips consumed per up block

    def embed_time(self, timestep, batch: int, text_embeds=None, time_ids=None):
        """Time embedding ``(b, 4*c0)``, plus ``add_embedding([text_embeds, sinusoid(time_ids)])`` for ``text_time``."""
        cfg = self.cfg
        t = ops.broadcast_to(timestep.reshape(-1), (batch,))
        emb = self.time_embedding(timestep_embedding(t, cfg.block_out_channels[0], flip_sin_to_cos=cfg.flip_sin_to_cos,
                                                     downscale_freq_shift=cfg.freq_shift))  # (b, E)
        if self.text_time:
            ids = timestep_embedding(time_ids.reshape(-1), cfg.addition_time_embed_dim,
                                     flip_sin_to_cos=cfg.flip_sin_to_cos, downscale_freq_shift=cfg.freq_shift)
            ids = ids.reshape(batch, -1)  # (b, 6 * addition_time_embed_dim)
            emb = emb + self.add_embedding(ops.concat((text_embeds.astype(ids.dtype), ids), axis=-1))
        return emb

    def construct(self, sample, timestep, encoder_hidden_states, text_embeds=None, time_ids=None):
        # sample (b, c, f, h, w); encoder_hidden_states (b, L, D); text_embeds (b, P); time_ids (b, 6)
        b, f = sample.shape[0], sample.shape[2]
        if self.cfg.center_input_sample:
            sample = 2 * sample - 1.0
        temb = repeat_interleave(self.embed_time(timestep, b, text_embeds, time_ids), f)  # (b*f, E)
        context = encoder_hidden_states
        x = self.conv_in(frames_to_batch(sample))  # (b*f, c0, h, w)
        skips = (x,)
        for i in range(self.num_levels):
            x, s = self.down_blocks[i](x, temb, context, f)
            skips = skips + s
        x = self.mid_block(x, temb, context, f)
        x = up_path(self.up_blocks, x, skips, self.layers_per_up_block, temb, context, f)
        x = self.conv_out(self.conv_act(self.conv_norm_out(x, f)))
        return batch_to_frames(x, f)  # (b, c_out, f, h, w)
