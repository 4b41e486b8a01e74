"""UNetSD_temporal (``tools/videocomposer/unet_sd.py``) on :class:`common.nn.UNetSkeleton`.

Frames run as a batch of images ``(b*f, c, h, w)`` (``(b f)`` order). Every ResBlock is followed by its
temporal conv block (key ``temopral_conv``, sic); every SpatialTransformer (linear projections, context
width ``unet_context_dim``, 1024 in the output blocks) by a TemporalTransformer (Conv1d projections, self-attention over frames);
``input_blocks.0`` = [conv, TemporalTransformer of width ``num_heads*head_dim``]; downsamplers are bare
(``input_blocks.N.op``). The condition encoders (:mod:`.conditions`) sum into ``concat``, which is
concatenated after the latent channels; the style embedding goes through ``pre_image_condition`` and is
appended to the text context. Parameter names equal the released ``non_ema_228000.pth``.
"""
from __future__ import annotations

import math

import mindspore as ms
from mindspore import Parameter, nn, ops
from mindspore.common.initializer import HeUniform, Uniform, initializer

from common.nn import (
    BasicTransformerBlock,
    Downsample,
    GroupNorm,
    ResBlock,
    SpatialTransformer,
    TemporalConvBlock,
    UNetSkeleton,
    batch_to_frames,
    conv2d,
    frames_to_batch,
    linear,
    repeat_interleave,
    timestep_embedding,
)

from .conditions import (
    COMPOSITION_TO_CONDITION,
    CONDITION_MODULES,
    TransformerV2,
    condition_stack,
    run_condition_encoder,
)
from .config import SPATIAL, VideoComposerConfig

#: the columns of ``cond_keep``: the spatial conditions in the order of the sum, the text, the style token.
KEEP_ORDER = SPATIAL + ("y", "image")


def _input_attention_layers(cfg: VideoComposerConfig) -> int:
    """How many SpatialTransformers the input blocks have (levels whose scale is in ``attn_scales``)."""
    scales = [1.0 / 2 ** i for i in range(len(cfg.unet_dim_mult))]
    return sum(cfg.unet_res_blocks for s in scales if any(abs(s - a) < 1e-9 for a in cfg.unet_attn_scales))


class VCResBlock(ResBlock):
    """LDM ResBlock on (b*f, c, h, w) then :class:`TemporalConvBlock` over each video's frames;
    ``construct(x, emb, num_frames)``."""

    unet_args = ("emb", "extra")

    def __init__(self, channels: int, emb_channels: int, out_channels: int, dropout: float = 0.0):
        super().__init__(channels, emb_channels, out_channels, dropout=dropout, dims=2)
        self.temopral_conv = TemporalConvBlock(out_channels, dropout=0.1)

    def construct(self, x, emb, num_frames: int):
        h = super().construct(x, emb)
        return frames_to_batch(self.temopral_conv(batch_to_frames(h, num_frames)))


class Conv1x1(nn.Cell):
    """``torch.nn.Conv1d(cin, cout, 1)`` (weight (cout, cin, 1)) applied to tokens (N, L, cin) as a linear map."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.weight = Parameter(initializer(HeUniform(math.sqrt(5)), (out_channels, in_channels, 1), ms.float32),
                                name="weight")
        self.bias = Parameter(initializer(Uniform(1.0 / math.sqrt(in_channels)), (out_channels,), ms.float32),
                              name="bias")

    def construct(self, x):
        n, length, c = x.shape
        w = self.weight.reshape(self.weight.shape[0], c)
        y = ops.bias_add(ops.matmul(x.reshape(n * length, c), w.T), self.bias)  # (n*L, out)
        return y.reshape(n, length, -1)


class TemporalTransformer(nn.Cell):
    """Attention over the frames of every pixel: GroupNorm(32, eps 1e-6) on (b, c, f, h, w), Conv1d(k=1)
    ``proj_in``, transformer blocks whose ``attn1`` and ``attn2`` are both self-attention (the context is
    ignored), ``proj_out``, residual. ``construct(x (b*f, c, h, w), num_frames)``."""

    unet_args = ("extra",)

    def __init__(self, channels: int, heads: int, dim_head: int, depth: int = 1, dropout: float = 0.0):
        super().__init__()
        inner = heads * dim_head
        self.norm = GroupNorm(32, channels, 1e-6)
        self.proj_in = Conv1x1(channels, inner)
        self.transformer_blocks = nn.CellList([
            BasicTransformerBlock(inner, heads, dim_head, context_dim=None, dropout=dropout, attn2_self=True)
            for _ in range(depth)])
        self.proj_out = Conv1x1(inner, channels)

    def construct(self, x, num_frames: int):
        bf, c, h, w = x.shape
        b = bf // num_frames
        v = self.norm(batch_to_frames(x, num_frames))  # (b, c, f, h, w)
        t = v.transpose(0, 3, 4, 2, 1).reshape(b * h * w, num_frames, c)  # (b*h*w, f, c)
        t = self.proj_in(t)
        for block in self.transformer_blocks:
            t = block(t)
        t = self.proj_out(t)  # (b*h*w, f, c)
        t = t.reshape(b, h, w, num_frames, c).transpose(0, 3, 4, 1, 2).reshape(bf, c, h, w)
        return t + x


class UNetSDTemporal(UNetSkeleton):
    """The VideoComposer denoiser.

    ``construct(x, t, y, image=None, depth=None, local_image=None, motion=None, sketch=None,
    single_sketch=None, masked=None)``:
        x: (b, 4, f, h, w) noisy latent; t: (b,) int timesteps (0..999).
        y: (b, 77, C) text context (``zero_y`` repeated for the unconditional branch); C = 1024 in the
            released model (``unet_context_dim`` = ``hardcoded_context_dim``).
        image: (b, 1, hardcoded_context_dim) style embedding or None.
        spatial conditions (b, c, f, H, W) or None: depth (1), local_image (3), motion (2), sketch (1),
            single_sketch (1), masked (4). Any H, W; each encodes to 32x32, so h = w = 32 when one is given.
        cond_keep: (b, 8) float multipliers of the condition embeddings in :data:`KEEP_ORDER` (the six
            spatial embeddings, the text context ``y``, the style token), or None (inference: all 1). Training
            passes the original's ``misc_dropout`` masks here (drawn on the host, see ``training.py``): a
            dropped condition's embedding is zeroed after its encoder, as the original's DropPath does.
    Returns (b, out_dim, f, h, w), the predicted noise.
    """

    def __init__(self, cfg: VideoComposerConfig):
        dim, hd = cfg.unet_dim, cfg.unet_head_dim
        ted = dim * 4
        cd = cfg.unet_concat_dim

        def res(cin, cout):
            return VCResBlock(cin, ted, cout, dropout=cfg.unet_dropout)

        # the skeleton builds the input blocks' transformers, then the middle one, then the output blocks':
        # the first two groups attend to ``unet_context_dim``, the last to the hard-coded width
        n_first = _input_attention_layers(cfg) + 1
        built = [0]

        def spatial(ch, heads, dim_head, depth):
            built[0] += 1
            ctx = cfg.unet_context_dim if built[0] <= n_first else cfg.hardcoded_context_dim
            return SpatialTransformer(ch, heads, dim_head, depth=1, context_dim=ctx, use_linear=True)

        def temporal(ch, heads, dim_head, depth):
            return TemporalTransformer(ch, heads, dim_head, depth=1)

        def input_layers(cin, cout):
            layers = [conv2d(cin + cd, cout, 3, padding=1)]
            if cfg.temporal_attention:
                layers.append(TemporalTransformer(cout, cfg.unet_num_heads, hd, depth=1))
            return layers

        fps = None
        if cfg.use_fps_condition:
            fps = {"fps_embedding": lambda: nn.SequentialCell([linear(dim, ted), nn.SiLU(), linear(ted, ted)])}
        super().__init__(in_channels=cfg.unet_in_dim, model_channels=dim, out_channels=cfg.unet_out_dim,
                         channel_mult=list(cfg.unet_dim_mult), num_res_blocks=cfg.unet_res_blocks,
                         attention_resolutions=[int(round(1 / s)) for s in cfg.unet_attn_scales],
                         res_block=res, attention=spatial, temporal=temporal if cfg.temporal_attention else None,
                         num_head_channels=hd, input_layers=input_layers,
                         down=lambda ch: Downsample(ch, True, ch), wrap_down=False, extra_embeddings=fps)
        w = cfg.hardcoded_context_dim
        self.pre_image_condition = nn.SequentialCell([linear(w, w), nn.SiLU(), linear(w, w)])
        self.conditions = tuple(COMPOSITION_TO_CONDITION[c] for c in cfg.video_compositions
                                if c in COMPOSITION_TO_CONDITION)
        for name in self.conditions:
            stack, after, cin = CONDITION_MODULES[name]
            setattr(self, stack, condition_stack(cin, cd))
            setattr(self, after, TransformerV2(cd, depth=cfg.adapter_transformer_layers))
        self.concat_dim = cd
        self.use_fps_condition = cfg.use_fps_condition

    def encode_condition(self, name: str, cond):
        """Condition ``name`` (b, c, f, H, W) -> its (b, concat_dim, f, 32, 32) embedding."""
        if name not in self.conditions:
            raise ValueError(f"the UNet has no '{name}' encoder (its video_compositions lack it)")
        stack, after, _ = CONDITION_MODULES[name]
        return run_condition_encoder(getattr(self, stack), getattr(self, after), cond)

    def style_token(self, image):
        """(b, 1, C) style embedding -> (b, 1, C) context token (``pre_image_condition``)."""
        return self.pre_image_condition(image)

    def construct(self, x, t, y, image=None, depth=None, local_image=None, motion=None, sketch=None,
                  single_sketch=None, masked=None, fps=None, cond_keep=None):
        b, _, f, h, w = x.shape
        conds = {"depth": depth, "local_image": local_image, "motion": motion, "sketch": sketch,
                 "single_sketch": single_sketch, "masked": masked}
        concat = None
        for i, name in enumerate(SPATIAL):  # the original's order of the sum
            c = conds[name]
            if c is not None:
                e = self.encode_condition(name, c.astype(x.dtype))
                if cond_keep is not None:
                    e = e * cond_keep[:, i].astype(x.dtype).reshape(b, 1, 1, 1, 1)
                concat = e if concat is None else concat + e
        if concat is None:
            concat = ops.zeros((b, self.concat_dim, f, h, w), x.dtype)
        x = ops.concat([x, concat], axis=1)  # (b, 4+cd, f, h, w)
        emb = self.embed_time(t, x.dtype)  # (b, 4*dim)
        if self.use_fps_condition and fps is not None:
            emb = emb + self.fps_embedding(timestep_embedding(fps, self.model_channels).astype(x.dtype))
        context = y.astype(x.dtype)
        if cond_keep is not None:
            context = context * cond_keep[:, 6].astype(x.dtype).reshape(b, 1, 1)
        if image is not None:
            token = self.pre_image_condition(image.astype(x.dtype))
            if cond_keep is not None:
                token = token * cond_keep[:, 7].astype(x.dtype).reshape(b, 1, 1)
            context = ops.concat([context, token], axis=1)
        emb = repeat_interleave(emb, f)  # (b*f, 4*dim)
        context = repeat_interleave(context, f)  # (b*f, L, C)
        out = self.run_blocks(frames_to_batch(x), emb, context, f)  # (b*f, out, h, w)
        return batch_to_frames(out, f)
