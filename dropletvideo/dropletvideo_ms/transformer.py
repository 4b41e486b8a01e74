"""DropletVideo's 3D transformer: CogVideoX-5B's joint text-video DiT with an FPS-conditioning branch.

Parameter names are the released ``transformer/diffusion_pytorch_model.safetensors`` ones (README of the
golden cases lists them), so the rename table is empty. Flow of one call::

    emb = time_embedding(sin(t)) + fps_embedding(sin(fps))                 # (B, time_embed_dim)
    x = cat([latents, inpaint_latents], channels)                          # (B, F, 2C+1, h, w)
    tokens = [text_proj(text) ; per-frame patch conv(x)]                   # (B, Lt + F*h/p*w/p, D)
    N x block: AdaLN-zero (two streams) -> joint attention (q/k LayerNorm, RoPE on video) -> gated FF
    norm_final over [text, video] -> keep video -> AdaLN (shift, scale) -> proj_out -> unpatchify (B, F, C, h, w)
"""
from __future__ import annotations

from dataclasses import dataclass

import mindspore as ms
from mindspore import nn, ops

from common.config import ConfigError, unused
from common.nn.adaln import AdaLayerNorm, LayerNormZero
from common.nn.attention import AttentionOptions, merge_heads, scaled_dot_product_attention, split_heads
from common.nn.embeddings import TimestepEmbedding, timestep_embedding
from common.nn.layers import FeedForward, conv2d, linear
from common.nn.norm import LayerNorm
from common.nn.rope import apply_rotary, resize_crop_region_for_grid, rotary_3d

__all__ = ["TransformerConfig", "DropletVideoTransformer3DModel", "prepare_rotary"]


@dataclass
class TransformerConfig:
    """``transformer/config.json`` (every key the release writes; defaults are the class defaults).

    Attributes:
        num_attention_heads / attention_head_dim: heads and their width (inner width = their product).
        in_channels: channels entering the patch embedding (latent C + mask 1 + masked-video latent C).
        out_channels: latent channels predicted.
        flip_sin_to_cos / freq_shift: sinusoidal projection of timestep and FPS (cos first; shift 0).
        time_embed_dim: width of the conditioning embedding.
        text_embed_dim: width of the T5 states.
        num_layers: transformer blocks.
        attention_bias: bias on q/k/v.
        patch_size: spatial patch of the per-frame patch embedding.
        norm_elementwise_affine / norm_eps: the AdaLN / final LayerNorms.
        use_rotary_positional_embeddings: must be true (the sinusoidal-table variant is not ported).
        add_noise_in_inpaint_model: the pipeline adds ``noise_aug_strength`` noise to the reference video.
        activation_fn / timestep_activation_fn: ``gelu-approximate`` / ``silu`` (the only values supported).
    """

    num_attention_heads: int = 30
    attention_head_dim: int = 64
    in_channels: int = 16
    out_channels: int | None = 16
    flip_sin_to_cos: bool = True
    freq_shift: int = 0
    time_embed_dim: int = 512
    text_embed_dim: int = 4096
    num_layers: int = 30
    attention_bias: bool = True
    patch_size: int = 2
    activation_fn: str = "gelu-approximate"
    timestep_activation_fn: str = "silu"
    norm_elementwise_affine: bool = True
    norm_eps: float = 1e-5
    use_rotary_positional_embeddings: bool = False
    add_noise_in_inpaint_model: bool = False
    dropout: float = unused("inference only", 0.0)
    sample_width: int = unused("size of the sinusoidal position table, not used with RoPE", 90)
    sample_height: int = unused("size of the sinusoidal position table, not used with RoPE", 60)
    sample_frames: int = unused("size of the sinusoidal position table, not used with RoPE", 49)
    temporal_compression_ratio: int = unused("size of the sinusoidal position table, not used with RoPE", 4)
    max_text_seq_length: int = unused("size of the sinusoidal position table, not used with RoPE", 226)
    spatial_interpolation_scale: float = unused("sinusoidal position table, not used with RoPE", 1.875)
    temporal_interpolation_scale: float = unused("sinusoidal position table, not used with RoPE", 1.0)
    # keys newer diffusers CogVideoX configs carry; accepted only with their neutral (CogVideoX-1.0) values
    use_learned_positional_embeddings: bool = unused("CogVideoX-1.0 layout: must be false", False)
    patch_size_t: int | None = unused("CogVideoX-1.0 layout: no temporal patching, must be null", None)
    ofs_embed_dim: int | None = unused("CogVideoX-1.0 layout: no ofs embedding, must be null", None)
    _class_name: str = unused("diffusers class name", "DropletVideoTransformer3DModel")
    _diffusers_version: str = unused("writer version", "")
    _name_or_path: str = unused("origin", "")

    def __post_init__(self):
        if not self.use_rotary_positional_embeddings:
            raise ConfigError("use_rotary_positional_embeddings: false (the sinusoidal-table variant) is not "
                              "supported; DropletVideo uses RoPE")
        if self.activation_fn != "gelu-approximate":
            raise ConfigError(f"activation_fn: {self.activation_fn!r} is not supported (gelu-approximate)")
        if self.timestep_activation_fn != "silu":
            raise ConfigError(f"timestep_activation_fn: {self.timestep_activation_fn!r} is not supported (silu)")
        for key in ("use_learned_positional_embeddings", "patch_size_t", "ofs_embed_dim"):
            if getattr(self, key):
                raise ConfigError(f"{key}: {getattr(self, key)!r} is a CogVideoX-1.5 feature DropletVideo does not "
                                  "have (not supported)")
        if self.attention_head_dim % 8:
            raise ConfigError(f"attention_head_dim: {self.attention_head_dim} is not a multiple of 8 (3D RoPE split)")
        if self.out_channels is None:
            self.out_channels = self.in_channels

    @property
    def inner_dim(self) -> int:
        return self.num_attention_heads * self.attention_head_dim


def prepare_rotary(height: int, width: int, num_latent_frames: int, vae_scale: int, patch_size: int,
                   head_dim: int, base_height: int = 480, base_width: int = 720):
    """The pipeline's RoPE tables for a (height, width) video: the token grid placed in the 720x480 base grid.

    Returns:
        ``(cos, sin, info)``: (F*gh*gw, head_dim) float32 arrays and ``{"grid_size", "crops_coords"}``.
    """
    unit = vae_scale * patch_size
    gh, gw = height // unit, width // unit
    crops = resize_crop_region_for_grid((gh, gw), base_width // unit, base_height // unit)
    cos, sin = rotary_3d(head_dim, crops, (gh, gw), num_latent_frames)
    return cos, sin, {"grid_size": (gh, gw), "crops_coords": crops}


class PatchEmbed(nn.Cell):
    """``proj``: per-frame Conv2d(kernel=stride=patch); ``text_proj``: Linear(text_embed_dim, D)."""

    def __init__(self, patch: int, in_channels: int, dim: int, text_dim: int):
        super().__init__()
        self.proj = conv2d(in_channels, dim, patch, stride=patch)
        self.text_proj = linear(text_dim, dim)

    def construct(self, text, video):
        # text (B, Lt, text_dim), video (B, F, C, H, W) -> (B, Lt + F*h*w, D)
        b, f, c, h, w = video.shape
        v = self.proj(video.reshape(b * f, c, h, w))  # (B*F, D, h', w')
        d = v.shape[1]
        v = v.reshape(b, f, d, -1).transpose(0, 1, 3, 2).reshape(b, -1, d)  # (B, F*h'*w', D)
        return ops.concat([self.text_proj(text), v], axis=1)


class JointAttention(AttentionOptions, nn.Cell):
    """Self-attention over [text, video] (CogVideoX's processor): per-head LayerNorm on q and k, then RoPE on
    the video tokens only. Keys ``to_q/to_k/to_v``, ``norm_q/norm_k``, ``to_out.0``."""

    def __init__(self, dim: int, heads: int, head_dim: int, bias: bool = True, eps: float = 1e-6):
        super().__init__()
        self.heads = heads
        inner = heads * head_dim
        self.to_q = linear(dim, inner, bias=bias)
        self.to_k = linear(dim, inner, bias=bias)
        self.to_v = linear(dim, inner, bias=bias)
        self.norm_q = LayerNorm(head_dim, eps=eps)
        self.norm_k = LayerNorm(head_dim, eps=eps)
        self.to_out = nn.SequentialCell([linear(inner, dim), nn.Dropout(p=0.0)])

    def _rope(self, t, lt, cos, sin):
        return ops.concat([t[:, :, :lt], apply_rotary(t[:, :, lt:], cos, sin)], axis=2)

    def construct(self, x, ctx, cos, sin):
        # x (B, Lv, D) video, ctx (B, Lt, D) text
        lt = ctx.shape[1]
        h = ops.concat([ctx, x], axis=1)  # (B, Lt+Lv, D)
        q = self.norm_q(split_heads(self.to_q(h), self.heads))  # (B, H, L, d)
        k = self.norm_k(split_heads(self.to_k(h), self.heads))
        v = split_heads(self.to_v(h), self.heads)
        q, k = self._rope(q, lt, cos, sin), self._rope(k, lt, cos, sin)
        out = scaled_dot_product_attention(q, k, v, chunk_size=self.chunk_size, backend=self.attn_backend)
        out = self.to_out(merge_heads(out))  # (B, L, D)
        return out[:, lt:], out[:, :lt]


class DropletVideoBlock(nn.Cell):
    """AdaLN-zero (two streams) -> joint attention -> gated residuals -> AdaLN-zero -> FF over [text, video]."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        d = cfg.inner_dim
        self.norm1 = LayerNormZero(cfg.time_embed_dim, d, cfg.norm_elementwise_affine, cfg.norm_eps)
        self.attn1 = JointAttention(d, cfg.num_attention_heads, cfg.attention_head_dim, cfg.attention_bias)
        self.norm2 = LayerNormZero(cfg.time_embed_dim, d, cfg.norm_elementwise_affine, cfg.norm_eps)
        self.ff = FeedForward(d, approximate="tanh")

    def construct(self, x, ctx, emb, cos, sin):
        lt = ctx.shape[1]
        nx, nc, gate, c_gate = self.norm1(x, ctx, emb)
        ax, ac = self.attn1(nx, nc, cos, sin)
        x = x + gate * ax
        ctx = ctx + c_gate * ac
        nx, nc, gate, c_gate = self.norm2(x, ctx, emb)
        ff = self.ff(ops.concat([nc, nx], axis=1))  # (B, Lt+Lv, D)
        return x + gate * ff[:, lt:], ctx + c_gate * ff[:, :lt]


class DropletVideoTransformer3DModel(nn.Cell):
    """The denoiser. ``construct(hidden_states, encoder_hidden_states, timestep, fps, inpaint_latents, cos, sin)``:

    Args:
        hidden_states: (B, F, C, h, w) noisy latents.
        encoder_hidden_states: (B, Lt, text_embed_dim) T5 states.
        timestep: (B,) int64 DDIM timesteps.
        fps: (1,) or (B,) int64 frame-rate condition (broadcast over the batch).
        inpaint_latents: (B, F, 1+C, h, w) mask and masked-video latents (None: not concatenated).
        cos, sin: (F*h/p*w/p, head_dim) RoPE tables (:func:`prepare_rotary`).
    Returns:
        (B, F, out_channels, h, w) v-prediction, float32 (whatever :meth:`set_compute_dtype` chose).
    """

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.config = cfg
        d = cfg.inner_dim
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.in_channels, d, cfg.text_embed_dim)
        self.time_embedding = TimestepEmbedding(d, cfg.time_embed_dim)
        self.fps_embedding = TimestepEmbedding(d, cfg.time_embed_dim)
        self.transformer_blocks = nn.CellList([DropletVideoBlock(cfg) for _ in range(cfg.num_layers)])
        self.norm_final = LayerNorm(d, cfg.norm_eps, cfg.norm_elementwise_affine)
        self.norm_out = AdaLayerNorm(cfg.time_embed_dim, d, cfg.norm_elementwise_affine, cfg.norm_eps)
        self.proj_out = linear(d, cfg.patch_size * cfg.patch_size * cfg.out_channels)
        self.compute_dtype = ms.float32

    def set_compute_dtype(self, dtype) -> None:
        """Run in ``dtype`` (float32 / float16 / bfloat16): parameters are cast once (LayerNorms keep float32 and
        compute in float32), inputs are cast on the way in, the output is float32. Softmax is float32 always."""
        for _, cell in self.cells_and_names():
            if isinstance(cell, LayerNorm):
                continue
            for p in cell.get_parameters(expand=False):
                p.set_dtype(dtype)
        self.compute_dtype = dtype

    def _sin(self, t):
        c = self.config
        return timestep_embedding(t, c.inner_dim, flip_sin_to_cos=c.flip_sin_to_cos,
                                  downscale_freq_shift=c.freq_shift)

    def construct(self, hidden_states, encoder_hidden_states, timestep, fps, inpaint_latents=None, cos=None,
                  sin=None):
        b, f, _, h, w = hidden_states.shape
        dtype = self.compute_dtype
        hidden_states, encoder_hidden_states = hidden_states.astype(dtype), encoder_hidden_states.astype(dtype)
        if inpaint_latents is not None:
            inpaint_latents = inpaint_latents.astype(dtype)
        if cos is not None:
            cos, sin = cos.astype(dtype), sin.astype(dtype)
        emb = self.time_embedding(self._sin(timestep).astype(dtype)) + self.fps_embedding(self._sin(fps).astype(dtype))
        x = hidden_states if inpaint_latents is None else ops.concat([hidden_states, inpaint_latents], axis=2)
        tokens = self.patch_embed(encoder_hidden_states, x)  # (B, Lt+Lv, D)
        lt = encoder_hidden_states.shape[1]
        ctx, x = tokens[:, :lt], tokens[:, lt:]
        for blk in self.transformer_blocks:
            x, ctx = blk(x, ctx, emb, cos, sin)
        x = self.norm_final(ops.concat([ctx, x], axis=1))[:, lt:]
        x = self.proj_out(self.norm_out(x, emb))  # (B, F*h'*w', p*p*C)
        p, c = self.config.patch_size, self.config.out_channels
        x = x.reshape(b, f, h // p, w // p, c, p, p).transpose(0, 1, 4, 2, 5, 3, 6)
        return x.reshape(b, f, c, h, w).astype(ms.float32)
