"""The LDM UNet skeleton (``openaimodel.UNetModel`` layout) shared by the video UNets.

:class:`UNetSkeleton` builds what every ``openaimodel``-family UNet has in common -- ``time_embed``, the
levels from ``channel_mult`` with ``num_res_blocks`` res blocks each, attention where the downsampling
factor is in ``attention_resolutions`` (heads from ``num_heads`` / ``num_head_channels``), down/up sampling,
``input_blocks`` / ``middle_block`` / ``output_blocks`` with the skip connections, the ``out`` head -- from
block factories that a model supplies. Parameter names are the originals' (``time_embed.0.weight``,
``input_blocks.1.0.in_layers.0.weight``, ``middle_block.1.proj_in.weight``, ``out.2.bias``, ...).

Every layer of a block is called as ``layer(x, *args)`` where ``args`` are the values named by the layer's
class attribute ``unet_args``, in the order ``("emb", "context", "extra")`` (default: none): a
:class:`~common.nn.ResBlock` declares ``("emb",)``, a :class:`~common.nn.SpatialTransformer` ``("context",)``,
a Downsample/Upsample/conv nothing. ``extra`` is the model's per-call video argument (DynamiCrafter: the
number of frames, a Python int; SVD: ``image_only_indicator`` (b, t)). The routes are fixed when a block is
built, so ``construct`` has no data-dependent control flow (graph mode).

Users:

* DynamiCrafter (``dynamicrafter_ms.unet.UNetModel``): res block = ResBlock + temporal conv block,
  attention = DC spatial transformer + (``temporal``) TemporalTransformer, input conv ``InputConv``,
  ``extra_embeddings={"fps_embedding": ...}``, ``after_input_conv=("init_attn", ...)`` (a temporal
  transformer after the first conv); ``extra`` = num_frames.
* SVD (``svd_ms.video_unet.VideoUNet``): res block = VideoResBlock, attention = SpatialVideoTransformer,
  per-level ``transformer_depth``, ``extra_embeddings={"label_emb": ...}``; ``extra`` = image_only_indicator.
* VideoComposer (``UNetSD_temporal`` of ali-vilab/videocomposer, ``tools/videocomposer/unet_sd.py``) fits the
  same way: ``channel_mult=dim_mult``, ``attention_resolutions`` = ``1/s`` for ``s in attn_scales``,
  ``num_head_channels=head_dim``; res block = its ResBlock (with the temporal conv, ``("emb", "extra")``),
  ``attention`` = SpatialTransformer (use_linear), ``temporal`` = its TemporalTransformer (``("extra",)``,
  folding frames with :mod:`common.nn.frames`), ``input_layers`` = ``[conv, TemporalTransformer]``
  (its ``input_blocks.0.{0,1}``), ``wrap_down=False`` (its Downsample blocks are bare layers:
  ``input_blocks.3.op.weight``), ``extra_embeddings={"fps_embedding": ...}`` when ``use_fps_condition``; its
  condition encoders (depth/sketch/motion embeddings, ``pre_image``) run before :meth:`UNetSkeleton.run_blocks`.
"""
from __future__ import annotations

import mindspore as ms
from mindspore import nn, ops

from .embeddings import timestep_embedding
from .layers import conv2d, linear
from .norm import GroupNorm
from .unet_blocks import Downsample, Upsample

#: the values a UNet layer may take after ``x``, in this order (see ``unet_args``).
UNET_ARGS = ("emb", "context", "extra")
_ALL = (True, True, True)


def layer_route(layer) -> tuple[bool, bool, bool]:
    """Which of ``(emb, context, extra)`` ``layer`` takes, from its ``unet_args`` (default: none)."""
    args = tuple(getattr(layer, "unet_args", ()))
    unknown = [a for a in args if a not in UNET_ARGS]
    if unknown or list(args) != [a for a in UNET_ARGS if a in args]:
        raise ValueError(f"{type(layer).__name__}.unet_args={args!r}: use names of {UNET_ARGS} in that order")
    return tuple(a in args for a in UNET_ARGS)


def call_layer(layer, route, x, emb, context, extra):
    """``layer(x, *args)`` with the values ``route`` (from :func:`layer_route`) selects; a graph constant."""
    args = ()
    if route[0]:
        args = args + (emb,)
    if route[1]:
        args = args + (context,)
    if route[2]:
        args = args + (extra,)
    return layer(x, *args)


class TimestepEmbedSequential(nn.SequentialCell):
    """The layers of one UNet block (keys ``0``, ``1``, ...), each given the values it declares in ``unet_args``.

    ``construct(x, emb=None, context=None, extra=None)``; layers run in order.
    """

    unet_args = UNET_ARGS

    def __init__(self, layers):
        super().__init__(layers)
        self.routes = tuple(layer_route(layer) for layer in layers)

    def construct(self, x, emb=None, context=None, extra=None):
        for layer, route in zip(self.cell_list, self.routes):
            x = call_layer(layer, route, x, emb, context, extra)
        return x


def attention_heads(channels: int, num_heads: int = -1, num_head_channels: int = -1) -> tuple[int, int]:
    """(heads, dim_head) of a transformer at width ``channels``, as ``openaimodel`` derives them:
    ``num_head_channels`` wins unless it is -1, then ``num_heads`` fixed heads."""
    if num_head_channels == -1:
        if num_heads == -1:
            raise ValueError("UNet: set num_heads or num_head_channels (both are -1)")
        return num_heads, channels // num_heads
    return channels // num_head_channels, num_head_channels


class UNetSkeleton(nn.Cell):
    """Levels, skips, time embedding and head of an LDM UNet, built from block factories.

    Args:
        in_channels / model_channels / out_channels: input, base and output widths (time embedding width
            ``4 * model_channels``).
        channel_mult: width multiplier per level. num_res_blocks: res blocks per level (the decoder has one more).
        attention_resolutions: downsampling factors (1, 2, 4, ...) whose levels get attention; the middle
            block always has it.
        res_block: ``res_block(cin, cout) -> Cell`` (``unet_args`` ``("emb", ...)``).
        attention: ``attention(ch, heads, dim_head, depth) -> Cell``, the spatial transformer.
        temporal: optional ``temporal(ch, heads, dim_head, depth) -> Cell`` placed after every attention layer.
        num_heads / num_head_channels: heads per level (:func:`attention_heads`).
        transformer_depth: blocks per transformer, an int or one per level.
        transformer_depth_middle: the middle block's (default: the last level's).
        input_layers: ``input_layers(in_channels, model_channels) -> list[Cell]``, the layers of
            ``input_blocks.0`` (default: one 3x3 conv).
        down / up: ``down(ch) -> Cell`` / ``up(ch) -> Cell`` (default Downsample / Upsample with
            ``conv_resample``).
        conv_resample: 3x3 convs in the default down/up sampling (else average pooling / plain nearest x2).
        wrap_down: the downsampler is ``input_blocks.N.0`` (True, LDM) or ``input_blocks.N`` itself (False).
        extra_embeddings: ``{name: factory() -> Cell}`` built and registered right after ``time_embed`` (e.g.
            ``fps_embedding``, ``label_emb``); the subclass adds them to the time embedding in its ``construct``.
        after_input_conv: optional ``(name, factory() -> Cell)``: a layer registered under ``name`` and run on
            the output of ``input_blocks.0`` before it is kept as a skip (DynamiCrafter's ``init_attn``).
        norm_groups: GroupNorm groups of the ``out`` head (32).

    A subclass computes ``emb`` (:meth:`embed_time` plus its own embeddings) and the context, then calls
    :meth:`run_blocks`. ``recompute_blocks`` (False, :meth:`set_recompute`): every block runs under
    :func:`mindspore.recompute` (gradient checkpointing).
    """

    def __init__(self, *, in_channels: int, model_channels: int, out_channels: int, channel_mult,
                 num_res_blocks: int, attention_resolutions, res_block, attention, temporal=None,
                 num_heads: int = -1, num_head_channels: int = -1, transformer_depth=1,
                 transformer_depth_middle: int | None = None, input_layers=None, down=None, up=None,
                 conv_resample: bool = True, wrap_down: bool = True, extra_embeddings: dict | None = None,
                 after_input_conv: tuple | None = None, norm_groups: int = 32):
        super().__init__()
        mc = model_channels
        ted = 4 * mc
        levels = len(channel_mult)
        depths = [transformer_depth] * levels if isinstance(transformer_depth, int) else list(transformer_depth)
        if len(depths) != levels:
            raise ValueError(f"UNet: transformer_depth {transformer_depth} has not one entry per level ({levels})")
        depth_middle = depths[-1] if transformer_depth_middle is None else transformer_depth_middle
        self.model_channels = mc
        self.time_embed_dim = ted
        self.recompute_blocks = False
        self.time_embed = nn.SequentialCell([linear(mc, ted), nn.SiLU(), linear(ted, ted)])
        for name, factory in (extra_embeddings or {}).items():
            setattr(self, name, factory())
        input_layers = input_layers or (lambda cin, cout: [conv2d(cin, cout, 3, padding=1)])
        down = down or (lambda ch: Downsample(ch, conv_resample, ch))
        up = up or (lambda ch: Upsample(ch, conv_resample, ch))

        def attn_layers(ch, depth):
            heads, dim_head = attention_heads(ch, num_heads, num_head_channels)
            layers = [attention(ch, heads, dim_head, depth)]
            if temporal is not None:
                layers.append(temporal(ch, heads, dim_head, depth))
            return layers

        # every list is filled before it becomes a CellList: a CellList appended to after it is set on its
        # parent gives the new parameters wrong names (``input_blocks.0.1.0...`` for ``input_blocks.1.0...``)
        blocks = [TimestepEmbedSequential(input_layers(in_channels, mc))]
        after_input = after_input_conv[1]() if after_input_conv is not None else None
        chans = [mc]
        ch, ds = mc, 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers = [res_block(ch, mult * mc)]
                ch = mult * mc
                if ds in attention_resolutions:
                    layers += attn_layers(ch, depths[level])
                blocks.append(TimestepEmbedSequential(layers))
                chans.append(ch)
            if level != levels - 1:
                blocks.append(TimestepEmbedSequential([down(ch)]) if wrap_down else down(ch))
                chans.append(ch)
                ds *= 2
        self.input_blocks = nn.CellList(blocks)
        self.input_routes = tuple(layer_route(block) for block in blocks)
        self.after_input_name = None
        self.after_input_route = (False, False, False)
        if after_input is not None:
            self.after_input_name = after_input_conv[0]
            setattr(self, self.after_input_name, after_input)
            self.after_input_route = layer_route(after_input)
        self.middle_block = TimestepEmbedSequential([res_block(ch, ch)] + attn_layers(ch, depth_middle)
                                                    + [res_block(ch, ch)])
        out_blocks = []
        for level, mult in list(enumerate(channel_mult))[::-1]:
            for i in range(num_res_blocks + 1):
                layers = [res_block(ch + chans.pop(), mc * mult)]
                ch = mc * mult
                if ds in attention_resolutions:
                    layers += attn_layers(ch, depths[level])
                if level and i == num_res_blocks:
                    layers.append(up(ch))
                    ds //= 2
                out_blocks.append(TimestepEmbedSequential(layers))
        self.output_blocks = nn.CellList(out_blocks)
        self.out = nn.SequentialCell([GroupNorm(norm_groups, ch, 1e-5), nn.SiLU(),
                                      conv2d(mc, out_channels, 3, padding=1)])

    def set_recompute(self, enabled: bool = True):
        """Turn gradient checkpointing of the UNet blocks on or off (see the class doc)."""
        self.recompute_blocks = bool(enabled)
        return self

    def embed_time(self, timesteps, dtype):
        """(N,) timesteps -> (N, 4*model_channels): ``time_embed`` of the sinusoidal embedding."""
        return self.time_embed(timestep_embedding(timesteps, self.model_channels).astype(dtype))

    def _block(self, block, route, h, emb, context, extra):
        if self.recompute_blocks and route == _ALL:
            return ms.recompute(block, h, emb, context, extra)
        return call_layer(block, route, h, emb, context, extra)

    def run_blocks(self, h, emb, context=None, extra=None):
        """Input blocks (keeping skips), middle block, output blocks (each after concatenating its skip), ``out``.

        h: (N, in_channels, H, W); emb: (N, 4*model_channels); context / extra: handed to the layers that
        take them. Returns (N, out_channels, H, W); H and W divisible by 2**(levels-1).
        """
        hs = []
        first = True
        for block, route in zip(self.input_blocks, self.input_routes):
            h = self._block(block, route, h, emb, context, extra)
            if first and self.after_input_name is not None:
                h = call_layer(getattr(self, self.after_input_name), self.after_input_route, h, emb, context, extra)
            first = False
            hs.append(h)
        h = self._block(self.middle_block, _ALL, h, emb, context, extra)
        skip = len(hs)
        for block in self.output_blocks:
            skip -= 1
            h = self._block(block, _ALL, ops.concat([h, hs[skip]], axis=1), emb, context, extra)
        return self.out(h)
