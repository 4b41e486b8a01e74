"""T5 encoder (Raffel et al. 2020; the v1.1 gated-GELU variant used by CogVideoX / DropletVideo) and its tokenizer.

Parameter names are those of HF ``transformers.T5EncoderModel`` (``shared.weight``,
``encoder.block.N.layer.0.SelfAttention.{q,k,v,o}``, ``...relative_attention_bias`` in block 0,
``encoder.block.N.layer.1.DenseReluDense.{wi_0,wi_1,wo}`` (``wi`` for ``relu``), ``layer_norm``,
``encoder.final_layer_norm``), so a released ``text_encoder/`` folder (sharded safetensors + index) loads
with an empty rename table; the tied ``encoder.embed_tokens.weight`` is the same tensor as ``shared.weight``
and is dropped when a file stores both.

T5 specifics: RMS layer norm without mean or bias (in float32), attention WITHOUT the ``1/sqrt(d)`` scale,
one learned relative-position bias (bucketed, bidirectional) computed in block 0 and reused by every block.

The tokenizer is ``sentencepiece`` (the ``spiece.model`` of the folder): ``encode(text)`` truncated to
``max_length - 1``, EOS appended, padded with the pad id -- what HF ``T5Tokenizer(legacy=True)`` gives with
``padding="max_length", truncation=True`` for text without special tokens; ``<extra_id_N>`` and ``</s>``
written in the text are kept as single tokens as HF does.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import Parameter, nn, ops
from mindspore.common.initializer import Normal, initializer

from common.checkpoint import load_state_dict_into, read_state_dict
from common.config import TRANSFORMERS_GENERIC_KEYS, ConfigError, from_mapping, unused
from common.nn.attention import merge_heads, scaled_dot_product_attention, split_heads
from common.nn.layers import gelu, linear

__all__ = ["T5Config", "T5EncoderModel", "T5Tokenizer", "load_t5_encoder", "t5_relative_buckets"]


@dataclass
class T5Config:
    """``text_encoder/config.json`` of an HF T5 encoder (every key it carries; the used ones documented).

    Attributes:
        vocab_size: rows of the token embedding ``shared``.
        d_model: hidden width.
        d_kv: width of one attention head (``num_heads * d_kv`` may differ from ``d_model``).
        d_ff: hidden width of the feed-forward.
        num_layers: encoder blocks.
        num_heads: attention heads.
        relative_attention_num_buckets / relative_attention_max_distance: position-bias buckets.
        layer_norm_epsilon: RMS-norm epsilon.
        feed_forward_proj: ``"gated-gelu"`` (v1.1: ``gelu_new(wi_0 x) * wi_1 x``) or ``"relu"`` (v1.0).
        dense_act_fn / is_gated_act: the same choice as HF derives it (checked against feed_forward_proj).
    """

    vocab_size: int = 32128
    d_model: int = 512
    d_kv: int = 64
    d_ff: int = 2048
    num_layers: int = 6
    num_heads: int = 8
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    layer_norm_epsilon: float = 1e-6
    feed_forward_proj: str = "relu"
    dense_act_fn: str | None = None
    is_gated_act: bool | None = None
    dropout_rate: float = unused("dropout (inference only)", 0.1)
    classifier_dropout: float = unused("classification head, not part of the encoder", 0.0)
    initializer_factor: float = unused("training init", 1.0)
    num_decoder_layers: int | None = unused("the decoder is not built", None)
    decoder_start_token_id: int = unused("decoder only", 0)
    eos_token_id: int = unused("the tokenizer's eos id is used", 1)
    pad_token_id: int = unused("the tokenizer's pad id is used", 0)
    is_encoder_decoder: bool = unused("only the encoder is built", True)
    tie_word_embeddings: bool = unused("no LM head", True)
    use_cache: bool = unused("decoder cache", True)
    output_past: bool = unused("decoder cache", True)
    model_type: str = unused("always t5", "t5")
    architectures: list[str] | None = unused("HF class list", None)
    torch_dtype: str | None = unused("weights are read in their stored dtype and cast", None)
    transformers_version: str | None = unused("writer version", None)
    n_positions: int | None = unused("T5 has no absolute positions", None)
    _name_or_path: str | None = unused("origin of the file", None)

    def __post_init__(self):
        act, _, kind = self.feed_forward_proj.rpartition("-")
        gated = act == "gated"
        if kind not in ("gelu", "relu") or act not in ("", "gated"):
            raise ConfigError(f"feed_forward_proj: {self.feed_forward_proj!r} is not 'relu', 'gelu', "
                              "'gated-gelu' or 'gated-relu'")
        if self.is_gated_act is not None and self.is_gated_act != gated:
            raise ConfigError(f"is_gated_act: {self.is_gated_act} disagrees with feed_forward_proj "
                              f"{self.feed_forward_proj!r}")
        self.is_gated_act = gated
        self.dense_act_fn = self.dense_act_fn or ("gelu_new" if kind == "gelu" else "relu")
        if self.dense_act_fn not in ("gelu_new", "gelu", "relu", "gelu_pytorch_tanh"):
            raise ConfigError(f"dense_act_fn: {self.dense_act_fn!r} is not supported")

    @classmethod
    def from_json(cls, path) -> T5Config:
        """``text_encoder/config.json``; transformers' generic keys (``common.config.TRANSFORMERS_GENERIC_KEYS``)
        that this class does not declare are dropped, any other unknown key is refused."""
        data = json.loads(Path(path).read_text())
        known = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in data.items() if k in known or k not in TRANSFORMERS_GENERIC_KEYS}
        return from_mapping(cls, data, str(path))


def t5_relative_buckets(q_len: int, k_len: int, num_buckets: int = 32, max_distance: int = 128) -> np.ndarray:
    """(q_len, k_len) int32 bucket of ``key_pos - query_pos`` for the bidirectional encoder: half the buckets
    per sign; exact below ``num_buckets/4``, log-spaced up to ``max_distance`` (HF ``_relative_position_bucket``,
    the log in float32 as there)."""
    rel = np.arange(k_len)[None, :] - np.arange(q_len)[:, None]
    half = num_buckets // 2
    out = (rel > 0).astype(np.int64) * half
    n = np.abs(rel)
    max_exact = half // 2
    safe = np.maximum(n, max_exact).astype(np.float32)  # the log form is used only for n >= max_exact
    big = np.log(safe / np.float32(max_exact)) / np.float32(math.log(max_distance / max_exact))
    big = max_exact + (big * np.float32(half - max_exact)).astype(np.int64)
    big = np.minimum(big, half - 1)
    out += np.where(n < max_exact, n, big)
    return out.astype(np.int32)


class _Embedding(nn.Cell):
    """A lookup table stored as ``weight`` (torch ``nn.Embedding``'s name)."""

    def __init__(self, num: int, dim: int):
        super().__init__()
        self.weight = Parameter(initializer(Normal(1.0), (num, dim), ms.float32), name="weight")

    def construct(self, ids):
        return ops.gather(self.weight, ids, 0)


class T5LayerNorm(nn.Cell):
    """RMS norm: ``weight * x / sqrt(mean(x^2) + eps)`` in float32 (no mean subtraction, no bias)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = Parameter(initializer("ones", (dim,), ms.float32), name="weight")
        self.eps = eps

    def construct(self, x):
        x32 = x.astype(ms.float32)
        var = (x32 * x32).mean(-1, keep_dims=True)
        return self.weight * (x32 * ops.rsqrt(var + self.eps)).astype(x.dtype)


class T5Attention(nn.Cell):
    """Self-attention with unscaled scores and an additive position bias (``relative_attention_bias`` in block 0)."""

    def __init__(self, cfg: T5Config, has_bias: bool):
        super().__init__()
        inner = cfg.num_heads * cfg.d_kv
        self.heads = cfg.num_heads
        self.q = linear(cfg.d_model, inner, bias=False)
        self.k = linear(cfg.d_model, inner, bias=False)
        self.v = linear(cfg.d_model, inner, bias=False)
        self.o = linear(inner, cfg.d_model, bias=False)
        self.num_buckets = cfg.relative_attention_num_buckets
        self.max_distance = cfg.relative_attention_max_distance
        if has_bias:
            self.relative_attention_bias = _Embedding(cfg.relative_attention_num_buckets, cfg.num_heads)

    def position_bias(self, length: int):
        """(1, H, L, L) additive bias from the bucket table."""
        buckets = ms.Tensor(t5_relative_buckets(length, length, self.num_buckets, self.max_distance))
        vals = self.relative_attention_bias(buckets)  # (L, L, H)
        return vals.transpose(2, 0, 1).expand_dims(0)

    def construct(self, x, bias):
        # x (B, L, d_model), bias (1 or B, H, L, L)
        q, k, v = (split_heads(p(x), self.heads) for p in (self.q, self.k, self.v))  # (B, H, L, d_kv)
        out = scaled_dot_product_attention(q, k, v, mask=bias, scale=1.0)
        return self.o(merge_heads(out))


class _SelfAttentionLayer(nn.Cell):
    def __init__(self, cfg: T5Config, has_bias: bool):
        super().__init__()
        self.SelfAttention = T5Attention(cfg, has_bias)
        self.layer_norm = T5LayerNorm(cfg.d_model, cfg.layer_norm_epsilon)

    def construct(self, x, bias):
        return x + self.SelfAttention(self.layer_norm(x), bias)


class _DenseReluDense(nn.Cell):
    def __init__(self, cfg: T5Config):
        super().__init__()
        self.gated = cfg.is_gated_act
        if self.gated:
            self.wi_0 = linear(cfg.d_model, cfg.d_ff, bias=False)
            self.wi_1 = linear(cfg.d_model, cfg.d_ff, bias=False)
        else:
            self.wi = linear(cfg.d_model, cfg.d_ff, bias=False)
        self.wo = linear(cfg.d_ff, cfg.d_model, bias=False)
        self.act = cfg.dense_act_fn

    def _act(self, x):
        if self.act == "relu":
            return ops.relu(x)
        return gelu(x, "none" if self.act == "gelu" else "tanh")

    def construct(self, x):
        h = self._act(self.wi_0(x)) * self.wi_1(x) if self.gated else self._act(self.wi(x))
        return self.wo(h)


class _FFLayer(nn.Cell):
    def __init__(self, cfg: T5Config):
        super().__init__()
        self.DenseReluDense = _DenseReluDense(cfg)
        self.layer_norm = T5LayerNorm(cfg.d_model, cfg.layer_norm_epsilon)

    def construct(self, x):
        return x + self.DenseReluDense(self.layer_norm(x))


class _Block(nn.Cell):
    def __init__(self, cfg: T5Config, has_bias: bool):
        super().__init__()
        self.layer = nn.CellList([_SelfAttentionLayer(cfg, has_bias), _FFLayer(cfg)])

    def construct(self, x, bias):
        return self.layer[1](self.layer[0](x, bias))


class _Stack(nn.Cell):
    def __init__(self, cfg: T5Config):
        super().__init__()
        self.block = nn.CellList([_Block(cfg, i == 0) for i in range(cfg.num_layers)])
        self.final_layer_norm = T5LayerNorm(cfg.d_model, cfg.layer_norm_epsilon)


class T5EncoderModel(nn.Cell):
    """The T5 encoder stack; ``construct(input_ids)`` -> ``last_hidden_state`` (B, L, d_model).

    Args:
        cfg: :class:`T5Config`.
    Every token attends to every token (pads too): callers that want HF's behaviour without a mask
    (CogVideoX/DropletVideo) get it; ``attention_mask`` (B, L) of 0/1 masks keys when given.
    """

    def __init__(self, cfg: T5Config):
        super().__init__()
        self.config = cfg
        self.shared = _Embedding(cfg.vocab_size, cfg.d_model)
        self.encoder = _Stack(cfg)

    def construct(self, input_ids, attention_mask=None):
        x = self.shared(input_ids)  # (B, L, d_model)
        bias = self.encoder.block[0].layer[0].SelfAttention.position_bias(input_ids.shape[1])  # (1, H, L, L)
        if attention_mask is not None:
            neg = (1.0 - attention_mask.astype(ms.float32)) * np.finfo(np.float32).min
            bias = bias + neg[:, None, None, :]
        for blk in self.encoder.block:
            x = blk(x, bias)
        return self.encoder.final_layer_norm(x)


#: the tied embedding copy HF may also store; it is the same tensor as ``shared.weight``
T5_RENAME = [(r"^encoder\.embed_tokens\.weight$", None, "tied to shared.weight (the same tensor)")]


def load_t5_encoder(folder, weights=None) -> T5EncoderModel:
    """Build from ``folder/config.json`` and load the weights (sharded through ``*.index.json`` or one file),
    every key accounted for (:func:`common.checkpoint.load_state_dict_into` raises on any difference).
    The parameters get no initial values and safetensors are read lazily: memory peaks at the model plus one
    tensor.

    Args:
        folder: the ``text_encoder/`` folder (``config.json``; the weights unless ``weights`` is given).
        weights: (default None: ``folder``) another weights file or folder, e.g. a converted MindSpore ``.ckpt``.
    """
    from mindspore.nn.utils import no_init_parameters

    folder = Path(folder)
    cfg = T5Config.from_json(folder / "config.json")
    with no_init_parameters():  # no random init of what the file overwrites
        model = T5EncoderModel(cfg)
    sd = read_state_dict(folder if weights is None else weights, lazy=True)  # one tensor at a time
    load_state_dict_into(model, sd, rename=T5_RENAME, source=str(folder))
    model.set_train(False)
    return model


class T5Tokenizer:
    """sentencepiece tokenizer of a T5 ``tokenizer/`` folder (``spiece.model`` + HF json files).

    Args:
        folder: the folder holding ``spiece.model`` (``tokenizer_config.json`` optional: ``extra_ids``).
    ``__call__(texts, max_length)`` -> (N, max_length) int64: ids truncated to ``max_length - 1``, EOS, pad.
    """

    def __init__(self, folder):
        import sentencepiece as spm

        folder = Path(folder)
        model = folder / "spiece.model"
        if not model.is_file():
            raise FileNotFoundError(f"tokenizer model not found: {model}")
        self.sp = spm.SentencePieceProcessor(model_file=str(model))
        extra = 100
        cfg_path = folder / "tokenizer_config.json"
        if cfg_path.is_file():
            extra = int(json.loads(cfg_path.read_text()).get("extra_ids", 100))
        self.extra_ids = extra
        piece = self.sp.piece_to_id
        # HF's special tokens; a model trained without pad/eos ids (pad_id() == -1) still names the pieces
        self.pad_id = self.sp.pad_id() if self.sp.pad_id() >= 0 else piece("<pad>")
        self.eos_id = self.sp.eos_id() if self.sp.eos_id() >= 0 else piece("</s>")
        self.unk_id = self.sp.unk_id()
        n = self.sp.get_piece_size()
        self.special = {"</s>": self.eos_id, "<pad>": self.pad_id, "<unk>": self.unk_id}
        self.special.update({f"<extra_id_{i}>": n + extra - 1 - i for i in range(extra)})
        self._split = re.compile("(" + "|".join(re.escape(t) for t in self.special) + ")")

    def __len__(self) -> int:
        return self.sp.get_piece_size() + self.extra_ids

    def encode(self, text: str) -> list[int]:
        """Ids of one text, without EOS; special tokens written in the text stay single ids."""
        ids: list[int] = []
        for part in self._split.split(text):
            if not part:
                continue
            if part in self.special:
                ids.append(self.special[part])
            elif part.strip():
                ids.extend(self.sp.encode(part.strip() if ids else part))
        return ids

    def __call__(self, texts, max_length: int) -> np.ndarray:
        if isinstance(texts, str):
            texts = [texts]
        out = np.full((len(texts), max_length), self.pad_id, np.int64)
        for i, t in enumerate(texts):
            ids = self.encode(t)[: max_length - 1] + [self.eos_id]
            out[i, : len(ids)] = ids
        return out
