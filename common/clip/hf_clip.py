"""Hugging Face ``CLIPTextModel`` (transformers 4.x) with its state-dict names.

Keys (relative to the cell): ``text_model.embeddings.token_embedding.weight``,
``text_model.embeddings.position_embedding.weight``,
``text_model.encoder.layers.N.{self_attn.{q,k,v,out}_proj, layer_norm1, mlp.fc1, mlp.fc2, layer_norm2}.*``,
``text_model.final_layer_norm.*``; with ``with_projection`` (``CLIPTextModelWithProjection``, SDXL's
second encoder) also ``text_projection.weight``. The ``text_model.embeddings.position_ids`` buffer of
older checkpoints carries no weights: skip it (:data:`HF_CLIP_IGNORED_KEYS`).

Math: token + position embedding; per layer ``h += self_attn(layer_norm1(h))`` (causal, q scaled by
head_dim**-0.5) and ``h += fc2(act(fc1(layer_norm2(h))))`` with ``hidden_act`` (``quick_gelu`` for
OpenAI CLIP); ``final_layer_norm``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import mindspore as ms
from mindspore import nn, ops

from common.config import TRANSFORMERS_GENERIC_KEYS, ConfigError, from_mapping, join, unused
from common.nn import AttentionOptions, LayerNorm, linear, scaled_dot_product_attention

from .layers import Embedding, activation, causal_mask

#: checkpoint keys that are buffers, not weights, of a transformers CLIPTextModel.
HF_CLIP_IGNORED_KEYS = ("text_model.embeddings.position_ids",)


@dataclass
class CLIPTextConfig:
    """transformers ``CLIPTextConfig`` fields that matter (defaults = transformers' defaults).

    Args:
        vocab_size: token rows (49408).
        hidden_size: width (SD-1.5: 768).
        intermediate_size: MLP hidden width (SD-1.5: 3072).
        num_attention_heads: heads (SD-1.5: 12).
        num_hidden_layers: encoder layers (SD-1.5: 12).
        max_position_embeddings: positions (77).
        hidden_act: ``quick_gelu`` (OpenAI), ``gelu`` (open_clip-trained, e.g. SD-2 / SDXL encoder 2).
        layer_norm_eps: LayerNorm epsilon (1e-5).
        projection_dim: ``text_projection`` output width (only with ``with_projection``).
    """

    vocab_size: int = 49408
    hidden_size: int = 512
    intermediate_size: int = 2048
    num_attention_heads: int = 8
    num_hidden_layers: int = 12
    max_position_embeddings: int = 77
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5
    projection_dim: int = 512
    attention_dropout: float = unused("training only", 0.0)
    dropout: float = unused("training only", 0.0)
    initializer_factor: float = unused("weight init of the training code", 1.0)
    initializer_range: float = unused("weight init of the training code", 0.02)
    bos_token_id: int = unused("the tokenizer's (the pooled token is found by the highest id)", 0)
    eos_token_id: int = unused("the tokenizer's (the pooled token is found by the highest id)", 2)
    pad_token_id: int = unused("the tokenizer's", 1)
    model_type: str = unused("transformers' model type", "clip_text_model")

    def __post_init__(self):
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(f"hidden_size: {self.hidden_size} is not divisible by num_attention_heads "
                              f"{self.num_attention_heads}")
        try:
            activation(self.hidden_act)
        except ValueError as e:
            raise ConfigError(f"hidden_act: {e}") from None

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> CLIPTextConfig:
        """From a ``config.json`` dict (a full CLIPConfig's ``text_config`` is used if present), read by
        :func:`common.config.from_mapping` (transformers' generic keys dropped first,
        ``common.config.TRANSFORMERS_GENERIC_KEYS``): an unknown key is refused with the file and key named
        (:class:`~common.config.ConfigError`, a ValueError)."""
        if "text_config" in d and isinstance(d["text_config"], dict):
            d, source = d["text_config"], join(source, "text_config")
        d = {k: v for k, v in d.items() if k not in TRANSFORMERS_GENERIC_KEYS}
        return from_mapping(cls, d, source)

    @classmethod
    def from_json(cls, path: str | Path) -> CLIPTextConfig:
        """From a ``text_encoder/config.json`` file (or the folder holding it)."""
        path = Path(path)
        if path.is_dir():
            path = path / "config.json"
        try:
            d = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"cannot read the CLIP text config {path}: {e}") from e
        return cls.from_dict(d, source=str(path))


class CLIPAttention(AttentionOptions, nn.Cell):
    """HF ``CLIPAttention``: ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj`` (all with bias)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q_proj = linear(width, width)
        self.k_proj = linear(width, width)
        self.v_proj = linear(width, width)
        self.out_proj = linear(width, width)

    def construct(self, x, mask=None):
        # x (B, L, w)
        b, l, w = x.shape
        d = w // self.heads

        def heads(t):
            return t.reshape(b, l, self.heads, d).transpose(0, 2, 1, 3)  # (B, H, L, d)

        out = scaled_dot_product_attention(heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x)),
                                           mask=mask, chunk_size=self.chunk_size, backend=self.attn_backend)
        return self.out_proj(out.transpose(0, 2, 1, 3).reshape(b, l, w))


class CLIPMLP(nn.Cell):
    """HF ``CLIPMLP``: ``fc1`` -> act -> ``fc2``."""

    def __init__(self, cfg: CLIPTextConfig):
        super().__init__()
        self.fc1 = linear(cfg.hidden_size, cfg.intermediate_size)
        self.act = activation(cfg.hidden_act)
        self.fc2 = linear(cfg.intermediate_size, cfg.hidden_size)

    def construct(self, x):
        return self.fc2(self.act(self.fc1(x)))


class CLIPEncoderLayer(nn.Cell):
    """HF ``CLIPEncoderLayer`` (pre-LN)."""

    def __init__(self, cfg: CLIPTextConfig):
        super().__init__()
        self.self_attn = CLIPAttention(cfg.hidden_size, cfg.num_attention_heads)
        self.layer_norm1 = LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.mlp = CLIPMLP(cfg)
        self.layer_norm2 = LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def construct(self, x, mask=None):
        x = x + self.self_attn(self.layer_norm1(x), mask)
        return x + self.mlp(self.layer_norm2(x))


class CLIPEncoder(nn.Cell):
    """``layers.0..N-1``."""

    def __init__(self, cfg: CLIPTextConfig):
        super().__init__()
        self.num_layers = cfg.num_hidden_layers
        self.layers = nn.CellList([CLIPEncoderLayer(cfg) for _ in range(cfg.num_hidden_layers)])


class CLIPTextEmbeddings(nn.Cell):
    """``token_embedding`` + ``position_embedding`` (positions 0..L-1)."""

    def __init__(self, cfg: CLIPTextConfig):
        super().__init__()
        self.token_embedding = Embedding(cfg.vocab_size, cfg.hidden_size)
        self.position_embedding = Embedding(cfg.max_position_embeddings, cfg.hidden_size)

    def construct(self, input_ids):
        n = input_ids.shape[1]
        return self.token_embedding(input_ids) + self.position_embedding.weight[:n]  # (B, L, w)


class CLIPTextTransformer(nn.Cell):
    """HF ``CLIPTextTransformer`` (``text_model``)."""

    def __init__(self, cfg: CLIPTextConfig):
        super().__init__()
        self.embeddings = CLIPTextEmbeddings(cfg)
        self.encoder = CLIPEncoder(cfg)
        self.final_layer_norm = LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.causal = causal_mask(cfg.max_position_embeddings)


class CLIPTextModel(nn.Cell):
    """transformers ``CLIPTextModel`` (and ``CLIPTextModelWithProjection`` with ``with_projection``).

    Args:
        cfg: :class:`CLIPTextConfig` (e.g. ``CLIPTextConfig.from_json("<sd>/text_encoder")``).
        with_projection: add ``text_projection`` (Linear hidden -> projection_dim, no bias) for
            :meth:`text_embeds`.

    ``construct(input_ids, attention_mask=None, clip_skip=0)`` -> (B, L, hidden): ``last_hidden_state``
    for ``clip_skip=0``; with ``clip_skip=k`` the output of layer N-k through ``final_layer_norm``
    (diffusers' ``clip_skip``: ``final_layer_norm(hidden_states[-(k + 1)])``).
    """

    def __init__(self, cfg: CLIPTextConfig, with_projection: bool = False):
        super().__init__()
        self.cfg = cfg
        self.text_model = CLIPTextTransformer(cfg)
        self.with_projection = with_projection
        if with_projection:
            self.text_projection = linear(cfg.hidden_size, cfg.projection_dim, bias=False)

    @classmethod
    def from_config_file(cls, path: str | Path, with_projection: bool = False) -> CLIPTextModel:
        """Build (random weights) from ``text_encoder/config.json`` or its folder."""
        return cls(CLIPTextConfig.from_json(path), with_projection)

    def _mask(self, input_ids, attention_mask):
        n = input_ids.shape[1]
        if n > self.cfg.max_position_embeddings:
            raise ValueError(f"CLIPTextModel: {n} tokens exceed max_position_embeddings "
                             f"{self.cfg.max_position_embeddings}")
        mask = self.text_model.causal[:n, :n]  # (L, L)
        if attention_mask is not None:  # (B, L) 1 = keep
            keep = attention_mask.astype(ms.bool_).reshape(input_ids.shape[0], 1, 1, n)
            mask = ops.logical_and(mask.reshape(1, 1, n, n), keep)  # (B, 1, L, L)
        return mask

    def hidden_states(self, input_ids, attention_mask=None):
        """transformers' ``output_hidden_states``: [embeddings, layer 1, ..., layer N] (before final LN)."""
        tm = self.text_model
        mask = self._mask(input_ids, attention_mask)
        h = tm.embeddings(input_ids)
        states = [h]
        for i in range(tm.encoder.num_layers):
            h = tm.encoder.layers[i](h, mask)
            states.append(h)
        return states

    def construct(self, input_ids, attention_mask=None, clip_skip: int = 0):
        tm = self.text_model
        if clip_skip < 0 or clip_skip >= tm.encoder.num_layers:
            raise ValueError(f"clip_skip must be in [0, {tm.encoder.num_layers - 1}], got {clip_skip}")
        mask = self._mask(input_ids, attention_mask)
        h = tm.embeddings(input_ids)  # (B, L, w)
        for i in range(tm.encoder.num_layers - clip_skip):
            h = tm.encoder.layers[i](h, mask)
        return tm.final_layer_norm(h)

    def pooled_output(self, last_hidden_state, input_ids):
        """``pooler_output``: the hidden state at the highest id (``<|endoftext|>``) per row -> (B, hidden)."""
        eos = ops.argmax(input_ids, dim=-1)
        onehot = ops.one_hot(eos, input_ids.shape[1], ms.Tensor(1.0, last_hidden_state.dtype),
                             ms.Tensor(0.0, last_hidden_state.dtype))  # (B, L)
        return ops.bmm(onehot.expand_dims(1), last_hidden_state).squeeze(1)

    def text_embeds(self, input_ids, attention_mask=None):
        """``CLIPTextModelWithProjection.text_embeds``: ``text_projection(pooled_output)`` -> (B, projection_dim)."""
        if not self.with_projection:
            raise ValueError("CLIPTextModel was built without with_projection: no text_projection")
        last = self.construct(input_ids, attention_mask)
        return self.text_projection(self.pooled_output(last, input_ids))
