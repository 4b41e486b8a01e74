"""OpenCLIP towers (open_clip 2.x ``CLIP`` with the built-in text transformer and a ViT).

Parameter names equal open_clip's state-dict names, relative to the cell:

* :class:`OpenCLIPTextTower` (= ``CLIP`` without ``visual``): ``token_embedding.weight``,
  ``positional_embedding``, ``transformer.resblocks.N.{ln_1,attn.in_proj_weight,attn.in_proj_bias,
  attn.out_proj,ln_2,mlp.c_fc,mlp.c_proj}.*``, ``ln_final.*``, ``text_projection``, ``logit_scale``.
* :class:`OpenCLIPVisionTower` (= ``CLIP.visual``): ``conv1.weight`` (no bias), ``class_embedding``,
  ``positional_embedding``, ``ln_pre.*``, ``transformer.resblocks.N.*``, ``ln_post.*``, ``proj``.
* :class:`OpenCLIP` (= the whole ``CLIP``): the text names at top level plus ``visual.*``;
  ``text_transformer=False`` drops ``transformer.*`` (what DynamiCrafter's image embedder and SVD keep).

open_clip's ``attn_mask`` is a non-persistent buffer (never in a checkpoint); it is built here.
"""
from __future__ import annotations

import math

import mindspore as ms
from mindspore import Parameter, nn, ops
from mindspore.common.initializer import Normal, initializer

from common.nn import LayerNorm, conv2d

from .archs import OpenCLIPConfig
from .layers import Embedding, Transformer, causal_mask, init_scale
from .preprocess import clip_preprocess
from .tokenizer import tokenize

_LAYERS = {"last": 0, "penultimate": 1}


def layer_skip(layer) -> int:
    """Number of final blocks skipped: ``"last"`` -> 0, ``"penultimate"`` -> 1, an int n >= 0 -> n."""
    if isinstance(layer, str):
        if layer not in _LAYERS:
            raise ValueError(f"open_clip text layer {layer!r}: expected 'last', 'penultimate' or an int")
        return _LAYERS[layer]
    if int(layer) < 0:
        raise ValueError(f"open_clip text layer skip must be >= 0, got {layer}")
    return int(layer)


class OpenCLIPTextTower(nn.Cell):
    """open_clip CLIP text side (``CLIP`` minus ``visual``).

    Args:
        cfg: :class:`OpenCLIPConfig` (``text_cfg``, ``embed_dim``, ``quick_gelu`` are used).
        layer: default output of :meth:`encode_with_transformer` / ``construct``: ``"last"``,
            ``"penultimate"`` (DynamiCrafter/SD-2 conditioning) or the number of final blocks to skip.
        with_transformer: build ``transformer.*`` (False = the leftovers an image embedder keeps).
    """

    def __init__(self, cfg: OpenCLIPConfig, layer="last", with_transformer: bool = True):
        super().__init__()
        t = cfg.text_cfg
        self.cfg = cfg
        self.context_length = t.context_length
        self.layer_idx = layer_skip(layer)
        self.with_transformer = with_transformer
        if with_transformer and self.layer_idx >= t.layers:
            raise ValueError(f"open_clip text layer {layer!r} skips {self.layer_idx} of only {t.layers} blocks")
        self.token_embedding = Embedding(t.vocab_size, t.width, std=0.02)
        self.positional_embedding = Parameter(initializer(Normal(0.01), (t.context_length, t.width), ms.float32),
                                              name="positional_embedding")
        if with_transformer:
            self.transformer = Transformer(t.width, t.layers, t.heads, t.mlp_ratio, cfg.quick_gelu, t.ls_init_value)
        self.ln_final = LayerNorm(t.width)
        self.text_projection = Parameter(initializer(Normal(init_scale(t.width)), (t.width, cfg.embed_dim),
                                                     ms.float32), name="text_projection")
        self.logit_scale = Parameter(ms.Tensor(math.log(1 / 0.07), ms.float32), name="logit_scale")
        self.attn_mask = causal_mask(t.context_length)

    def _check_tokens(self, tokens):
        if tokens.ndim != 2 or tokens.shape[1] > self.context_length:
            raise ValueError(f"open_clip text tower: tokens must be (N, L<={self.context_length}), "
                             f"got {tuple(tokens.shape)}")
        if not self.with_transformer:
            raise ValueError("open_clip text tower was built with_transformer=False: it cannot encode text")

    def encode_with_transformer(self, tokens, layer=None):
        """Token + position embedding, the text blocks but the last ``layer`` ones (causal), ``ln_final``.

        Args:
            tokens: (N, L) integer ids, L <= context_length (77).
            layer: ``"last"`` / ``"penultimate"`` / int skip; None = the constructor's ``layer``.
        Returns:
            (N, L, width) float32 -- every position, no projection (DynamiCrafter's context).
        """
        self._check_tokens(tokens)
        skip = self.layer_idx if layer is None else layer_skip(layer)
        if skip >= self.transformer.layers:
            raise ValueError(f"open_clip text layer {layer!r} skips {skip} of only {self.transformer.layers} blocks")
        n = tokens.shape[1]
        x = self.token_embedding(tokens) + self.positional_embedding[:n]  # (N, L, w)
        mask = self.attn_mask[:n, :n]
        x = self.transformer(x, mask, self.transformer.layers - skip)
        return self.ln_final(x)

    def encode_text(self, tokens, normalize: bool = False):
        """open_clip ``encode_text``: all blocks, ``ln_final``, the EOT token (argmax id) ``@ text_projection``.

        Returns (N, embed_dim); L2-normalised if ``normalize``.
        """
        x = self.encode_with_transformer(tokens, layer=0)  # (N, L, w)
        eot = ops.argmax(tokens, dim=-1)  # (N,) highest id = <end_of_text>
        onehot = ops.one_hot(eot, tokens.shape[1], ms.Tensor(1.0, x.dtype), ms.Tensor(0.0, x.dtype))  # (N, L)
        pooled = ops.bmm(onehot.expand_dims(1), x).squeeze(1)  # (N, w)
        out = ops.matmul(pooled, self.text_projection)  # (N, embed_dim)
        if normalize:
            out = out / ops.norm(out, dim=-1, keepdim=True)
        return out

    def encode(self, texts, layer=None):
        """Prompts -> context: ``open_clip.tokenize`` (context_length of the config) then
        :meth:`encode_with_transformer` (PyNative; DynamiCrafter's ``get_learned_conditioning``).

        Args:
            texts: a string or a list of N strings.
            layer: see :meth:`encode_with_transformer`.
        Returns:
            (N, context_length, width).
        """
        tokens = ms.Tensor(tokenize(texts, context_length=self.context_length))
        return self.encode_with_transformer(tokens, layer)

    def construct(self, tokens):
        return self.encode_with_transformer(tokens)


class OpenCLIPVisionTower(nn.Cell):
    """open_clip ``VisionTransformer`` (``CLIP.visual``) with class-token pooling.

    Args:
        cfg: :class:`OpenCLIPConfig` (``vision_cfg``, ``embed_dim``, ``quick_gelu`` are used).

    Inputs are CLIP-normalised pixels (B, 3, image_size, image_size) (see
    :mod:`common.clip.preprocess`).
    """

    def __init__(self, cfg: OpenCLIPConfig):
        super().__init__()
        v = cfg.vision_cfg
        self.cfg = cfg
        self.width = v.width
        ph, pw = (v.patch_size, v.patch_size) if isinstance(v.patch_size, int) else tuple(v.patch_size)
        self.image_size = (v.image_size, v.image_size) if isinstance(v.image_size, int) else tuple(v.image_size)
        self.num_tokens = v.num_tokens
        scale = init_scale(v.width)
        self.conv1 = conv2d(3, v.width, (ph, pw), stride=(ph, pw), bias=False)
        self.class_embedding = Parameter(initializer(Normal(scale), (v.width,), ms.float32), name="class_embedding")
        self.positional_embedding = Parameter(initializer(Normal(scale), (v.num_tokens, v.width), ms.float32),
                                              name="positional_embedding")
        self.ln_pre = LayerNorm(v.width)
        self.transformer = Transformer(v.width, v.layers, v.heads, v.mlp_ratio, cfg.quick_gelu, v.ls_init_value)
        self.ln_post = LayerNorm(v.width)
        self.proj = Parameter(initializer(Normal(scale), (v.width, cfg.embed_dim), ms.float32), name="proj")

    def forward_tokens(self, pixels):
        """All tokens of the last block, before ``ln_post`` / ``proj`` (DynamiCrafter's image embedder).

        Args:
            pixels: (B, 3, H, W) normalised, (H, W) = vision_cfg.image_size.
        Returns:
            (B, 1 + grid**2, width): class token first.
        """
        if pixels.ndim != 4 or tuple(pixels.shape[1:]) != (3,) + self.image_size:
            raise ValueError(f"open_clip vision tower: pixels must be (B, 3, {self.image_size[0]}, "
                             f"{self.image_size[1]}), got {tuple(pixels.shape)}")
        b = pixels.shape[0]
        x = self.conv1(pixels)  # (B, w, gh, gw)
        x = x.reshape(b, self.width, -1).transpose(0, 2, 1)  # (B, gh*gw, w)
        cls = ops.broadcast_to(self.class_embedding.reshape(1, 1, -1).astype(x.dtype), (b, 1, self.width))
        x = ops.concat([cls, x], axis=1) + self.positional_embedding  # (B, 1+gh*gw, w)
        x = self.ln_pre(x)
        return self.transformer(x)

    def encode_image(self, pixels, normalize: bool = False):
        """open_clip ``visual(x)``: ``ln_post(class token) @ proj`` -> (B, embed_dim) (SVD's image embedding)."""
        x = self.forward_tokens(pixels)
        out = ops.matmul(self.ln_post(x[:, 0]), self.proj)  # (B, embed_dim)
        if normalize:
            out = out / ops.norm(out, dim=-1, keepdim=True)
        return out

    def embed(self, images, output: str = "pooled"):
        """Images in [-1, 1] of any size -> :func:`clip_preprocess` (kornia bicubic antialiased resize to
        image_size, CLIP normalisation) -> ``"tokens"`` (:meth:`forward_tokens`, DynamiCrafter) or
        ``"pooled"`` (:meth:`encode_image`, SVD). PyNative (the resize matrices depend on the input size).
        """
        if output not in ("tokens", "pooled"):
            raise ValueError(f"output must be 'tokens' or 'pooled', got {output!r}")
        pixels = clip_preprocess(images, size=self.image_size)
        return self.forward_tokens(pixels) if output == "tokens" else self.encode_image(pixels)

    def construct(self, pixels):
        return self.encode_image(pixels)


class OpenCLIP(OpenCLIPTextTower):
    """The whole open_clip ``CLIP``: text parameters at top level, the ViT under ``visual``.

    Args:
        cfg: :class:`OpenCLIPConfig`.
        text_transformer: build the text ``transformer.*`` (False = open_clip CLIP after
            ``del model.transformer``, the layout of DynamiCrafter's ``embedder.model.*`` and SVD's
            ``conditioner.embedders.0.open_clip.model.*``).
        layer: default text output (see :class:`OpenCLIPTextTower`).
    """

    def __init__(self, cfg: OpenCLIPConfig, text_transformer: bool = True, layer="last"):
        super().__init__(cfg, layer=layer, with_transformer=text_transformer)
        self.visual = OpenCLIPVisionTower(cfg)

    def encode_image(self, pixels, normalize: bool = False):
        """See :meth:`OpenCLIPVisionTower.encode_image`."""
        return self.visual.encode_image(pixels, normalize)

    def embed(self, images, output: str = "pooled"):
        """See :meth:`OpenCLIPVisionTower.embed`."""
        return self.visual.embed(images, output)

    def construct(self, pixels):
        return self.visual.encode_image(pixels)
