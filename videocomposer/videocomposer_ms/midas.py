"""MiDaS v3.0 DPT-Large (Ranftl et al. 2021, "Vision Transformers for Dense Prediction") as
``artist/models/midas.py`` of the original: the depth extractor of VideoComposer's ``depthmap`` condition.

Keys (``midas_v3_dpt_large.pth``): ``patch_embedding``, ``cls_embedding``, ``pos_embedding``,
``blocks.N.{norm1, attn.to_qkv, attn.proj, norm2, mlp.0, mlp.2}``, ``fc1..4.0``, ``conv1..4.*``,
``fusion1..4.{layer1, layer2}.residual.{1,3}``, ``fusion1..4.conv_out``, ``head.{0,2,4}``.
Sizes from ``midas_cfg`` (the released: image 384, patch 16, dim 1024, 24 layers, 16 heads).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import mindspore as ms
from mindspore import Parameter, nn, ops
from mindspore.common.initializer import Normal, initializer

from common.config import ConfigError, from_mapping
from common.nn import GELU, AttentionOptions, LayerNorm, conv2d, linear, multi_head_attention

from .resize import resize_bilinear


@dataclass
class MidasConfig:
    """``MiDaS(**midas_cfg)`` kwargs. ``image_size``: the size the pos-embedding grid was trained at."""

    image_size: int = 384
    patch_size: int = 16
    dim: int = 1024
    neck_dims: list[int] = field(default_factory=lambda: [256, 512, 1024, 1024])
    fusion_dim: int = 256
    num_heads: int = 16
    num_layers: int = 24

    def __post_init__(self):
        if self.image_size % self.patch_size or self.num_layers % 4 or len(self.neck_dims) != 4:
            raise ConfigError("midas_cfg: image_size must be a multiple of patch_size, num_layers of 4, "
                              "neck_dims 4 widths")


class SelfAttention(AttentionOptions, nn.Cell):
    """``to_qkv`` (with bias) -> q, k, v packed [q heads | k heads | v heads], ``proj``."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.heads = num_heads
        self.to_qkv = linear(dim, dim * 3)
        self.proj = linear(dim, dim)

    def construct(self, x):
        q, k, v = ops.chunk(self.to_qkv(x), 3, axis=-1)
        return self.proj(multi_head_attention(q, k, v, self.heads, chunk_size=self.chunk_size,
                                              backend=self.attn_backend, heads_layout=self.heads_layout))


class Block(nn.Cell):
    """Pre-LN ViT block (LayerNorm eps 1e-5, exact GELU MLP)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.norm1 = LayerNorm(dim)
        self.attn = SelfAttention(dim, num_heads)
        self.norm2 = LayerNorm(dim)
        self.mlp = nn.SequentialCell([linear(dim, dim * 4), GELU(), linear(dim * 4, dim)])

    def construct(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ResidualUnit(nn.Cell):
    """``x + conv(relu(conv(relu(x))))`` (keys ``residual.1``, ``residual.3``)."""

    def __init__(self, dim: int):
        super().__init__()
        self.residual = nn.SequentialCell([nn.ReLU(), conv2d(dim, dim, 3, padding=1), nn.ReLU(),
                                           conv2d(dim, dim, 3, padding=1)])

    def construct(self, x):
        return x + self.residual(x)


class FusionBlock(nn.Cell):
    """``layer2(x [+ layer1(skip)])``, bilinear x2 (align_corners=True), 1x1 ``conv_out``."""

    def __init__(self, dim: int):
        super().__init__()
        self.layer1 = ResidualUnit(dim)
        self.layer2 = ResidualUnit(dim)
        self.conv_out = conv2d(dim, dim, 1)

    def construct(self, x, skip=None):
        x = self.layer2(x if skip is None else x + self.layer1(skip))
        x = resize_bilinear(x, (x.shape[2] * 2, x.shape[3] * 2), align_corners=True)
        return self.conv_out(x)


def conv_transpose(cin: int, cout: int, k: int, stride: int) -> nn.Conv2dTranspose:
    """``torch.nn.ConvTranspose2d(cin, cout, k, stride)`` (weight (cin, cout, k, k), bias)."""
    return nn.Conv2dTranspose(cin, cout, k, stride=stride, pad_mode="valid", has_bias=True)


class Upsample2x(nn.Cell):
    """``nn.Upsample(scale_factor=2, mode='bilinear', align_corners=True)``."""

    def construct(self, x):
        return resize_bilinear(x, (x.shape[2] * 2, x.shape[3] * 2), align_corners=True)


class MiDaS(nn.Cell):
    """Depth from an image (N, 3, H, W) in [-1, 1] -> (N, 1, H, W) inverse relative depth (ReLU output).

    H and W must be multiples of ``patch_size`` with H/patch and W/patch even.
    """

    def __init__(self, cfg: MidasConfig):
        super().__init__()
        d, nd, fd = cfg.dim, cfg.neck_dims, cfg.fusion_dim
        self.cfg = cfg
        self.grid = cfg.image_size // cfg.patch_size
        self.patch_embedding = nn.Conv2d(3, d, cfg.patch_size, stride=cfg.patch_size, pad_mode="valid",
                                         has_bias=True)
        self.cls_embedding = Parameter(initializer("zeros", (1, 1, d), ms.float32), name="cls_embedding")
        self.pos_embedding = Parameter(initializer(Normal(0.02), (1, self.grid ** 2 + 1, d), ms.float32),
                                       name="pos_embedding")
        self.blocks = nn.CellList([Block(d, cfg.num_heads) for _ in range(cfg.num_layers)])
        self.stride = cfg.num_layers // 4
        for i in range(1, 5):
            setattr(self, f"fc{i}", nn.SequentialCell([linear(d * 2, d), GELU()]))
        self.conv1 = nn.SequentialCell([conv2d(d, nd[0], 1), conv_transpose(nd[0], nd[0], 4, 4),
                                        conv2d(nd[0], fd, 3, padding=1, bias=False)])
        self.conv2 = nn.SequentialCell([conv2d(d, nd[1], 1), conv_transpose(nd[1], nd[1], 2, 2),
                                        conv2d(nd[1], fd, 3, padding=1, bias=False)])
        self.conv3 = nn.SequentialCell([conv2d(d, nd[2], 1), conv2d(nd[2], fd, 3, padding=1, bias=False)])
        self.conv4 = nn.SequentialCell([conv2d(d, nd[3], 1), conv2d(nd[3], nd[3], 3, stride=2, padding=1),
                                        conv2d(nd[3], fd, 3, padding=1, bias=False)])
        for i in range(1, 5):
            setattr(self, f"fusion{i}", FusionBlock(fd))
        self.head = nn.SequentialCell([conv2d(fd, fd // 2, 3, padding=1), Upsample2x(),
                                       conv2d(fd // 2, 32, 3, padding=1), nn.ReLU(), conv_transpose(32, 1, 1, 1),
                                       nn.ReLU()])

    def _pos_embedding(self, hp: int, wp: int):
        d = self.cfg.dim
        grid = self.pos_embedding[:, 1:].reshape(1, self.grid, self.grid, d).transpose(0, 3, 1, 2)
        grid = resize_bilinear(grid, (hp, wp), align_corners=False)  # (1, d, hp, wp)
        return ops.concat([self.pos_embedding[:, :1], grid.transpose(0, 2, 3, 1).reshape(1, hp * wp, d)], axis=1)

    def _readout(self, i: int, x, hp: int, wp: int):
        tokens = x[:, 1:]
        cls = ops.broadcast_to(x[:, :1], tokens.shape)
        y = getattr(self, f"fc{i}")(ops.concat([tokens, cls], axis=-1))  # (n, hp*wp, d)
        y = y.transpose(0, 2, 1).reshape(y.shape[0], y.shape[2], hp, wp)
        return getattr(self, f"conv{i}")(y)

    def construct(self, x):
        n, _, h, w = x.shape
        p = self.cfg.patch_size
        if h % p or w % p or (h // p) % 2 or (w // p) % 2:
            raise ValueError(f"MiDaS: input {h}x{w} must be multiples of {p} with an even number of patches")
        hp, wp = h // p, w // p
        t = self.patch_embedding(x)  # (n, d, hp, wp)
        t = t.reshape(n, t.shape[1], hp * wp).transpose(0, 2, 1)
        t = ops.concat([ops.broadcast_to(self.cls_embedding, (n, 1, t.shape[2])), t], axis=1)
        t = t + self._pos_embedding(hp, wp)
        feats = []
        for i in range(4):
            for j in range(i * self.stride, (i + 1) * self.stride):
                t = self.blocks[j](t)
            feats.append(self._readout(i + 1, t, hp, wp))
        x4 = self.fusion4(feats[3])
        x3 = self.fusion3(x4, feats[2])
        x2 = self.fusion2(x3, feats[1])
        x1 = self.fusion1(x2, feats[0])
        return self.head(x1)


def midas_config(d: dict, where: str = "midas_cfg") -> MidasConfig:
    """:class:`MidasConfig` from the config's ``midas_cfg`` mapping."""
    return from_mapping(MidasConfig, d, where)


__all__ = ["MiDaS", "MidasConfig", "midas_config"]
