"""The sketch extractor: PiDiNet (Su et al. 2021, "Pixel Difference Networks for Efficient Edge Detection")
in its converted (vanilla-conv) form, then the sketch-simplification GAN (Simo-Serra et al. 2018), as the
original's ``tools/annotator/sketch``.

The released ``table5_pidinet.pth`` holds the pixel-difference kernels; :func:`convert_pidinet` turns them
into plain 3x3 (``cd``, ``ad``) and 5x5 (``rd``) kernels as the original's ``convert_pidinet``. Keys:
``init_block``, ``block{1_1..4_4}.{conv1, conv2, shortcut}``, ``dilations.N.{conv1, conv2_1..4}``,
``attentions.N.{conv1, conv2}``, ``conv_reduces.N.conv``, ``classifier``; the simplifier's
``layers.<i>`` are the original Sequential indices.
"""
from __future__ import annotations

from dataclasses import dataclass

import mindspore as ms
import numpy as np
from mindspore import nn, ops

from common.config import ConfigError, from_mapping
from common.nn import conv2d

from .resize import resize_bilinear

#: pixel-difference type of the 16 convs (init_block, block1_1 .. block4_4) of the ``carv4`` config.
CARV4 = ("cd", "ad", "rd", "cv") * 4
PDC_CONFIGS = {"carv4": CARV4}
_BLOCKS = ("init_block", "block1_1", "block1_2", "block1_3", "block2_1", "block2_2", "block2_3", "block2_4",
           "block3_1", "block3_2", "block3_3", "block3_4", "block4_1", "block4_2", "block4_3", "block4_4")
#: the simplifier's normalisation (``sketch_simplification_gan``).
SIMPLIFY_MEAN, SIMPLIFY_STD = 0.9664114577640158, 0.0858381272736797


@dataclass
class PidinetConfig:
    """``pidinet_cfg``: ``config`` (pixel-difference layout, ``carv4``), ``inplane`` (C), ``dil`` (CDCM width),
    ``sa`` (CSAM attention), ``vanilla_cnn`` (the converted form; the only one built here)."""

    config: str = "carv4"
    inplane: int = 60
    dil: int = 24
    sa: bool = True
    vanilla_cnn: bool = True

    def __post_init__(self):
        if self.config not in PDC_CONFIGS:
            raise ConfigError(f"config: {self.config!r} (supported: {', '.join(PDC_CONFIGS)})")
        if not (self.vanilla_cnn and self.sa):
            raise ConfigError("vanilla_cnn and sa: only the released form (both true) is built")


def _convert_pdc(op: str, w: np.ndarray) -> np.ndarray:
    """One pixel-difference kernel (o, i, 3, 3) -> its vanilla equivalent."""
    o, i = w.shape[:2]
    flat = w.reshape(o, i, 9).astype(np.float32)
    if op == "cv":
        return w
    if op == "cd":  # centre tap minus the kernel sum
        out = flat.copy()
        out[:, :, 4] = flat[:, :, 4] - flat.sum(axis=2)
        return out.reshape(o, i, 3, 3)
    if op == "ad":  # clockwise angular difference
        return (flat - flat[:, :, [3, 0, 1, 6, 4, 2, 7, 8, 5]]).reshape(o, i, 3, 3)
    if op == "rd":  # radial difference on a 5x5 ring
        buf = np.zeros((o, i, 25), np.float32)
        buf[:, :, [0, 2, 4, 10, 14, 20, 22, 24]] = flat[:, :, 1:]
        buf[:, :, [6, 7, 8, 11, 13, 16, 17, 18]] = -flat[:, :, 1:]
        return buf.reshape(o, i, 5, 5)
    raise ValueError(f"unknown pixel-difference op {op!r}")


def is_converted(sd: dict, config: str = "carv4") -> bool:
    """True when ``sd`` already holds vanilla kernels (an ``rd`` layer's weight is 5x5, e.g. a file written by
    ``tools/convert_weight.py``)."""
    for block, op in zip(_BLOCKS, PDC_CONFIGS[config]):
        if op != "rd":
            continue
        target = f"{block}.weight" if block == "init_block" else f"{block}.conv1.weight"
        for k, v in sd.items():
            if k == target or k.endswith("." + target):
                return tuple(np.shape(v)[-2:]) == (5, 5)
    return False


def convert_pidinet(sd: dict, config: str = "carv4") -> dict:
    """The released pixel-difference state dict -> vanilla kernels (``module.`` kept; keys unchanged); a dict
    that is already converted (:func:`is_converted`) is returned as it is."""
    if is_converted(sd, config):
        return dict(sd)
    pdcs = PDC_CONFIGS[config]
    out = {}
    for k, v in sd.items():
        for block, op in zip(_BLOCKS, pdcs):
            target = f"{block}.weight" if block == "init_block" else f"{block}.conv1.weight"
            if k == target or k.endswith("." + target):
                v = _convert_pdc(op, np.asarray(v))
                break
        out[k] = v
    return out


def _conv(cin, cout, k, padding=0, dilation=1, group=1, bias=True, stride=1):
    return nn.Conv2d(cin, cout, k, stride=stride, pad_mode="pad", padding=padding, dilation=dilation, group=group,
                     has_bias=bias)


class PDCBlock(nn.Cell):
    """[maxpool 2x2 + 1x1 ``shortcut`` when stride 2] depthwise ``conv1`` (3x3, or 5x5 for ``rd``), ReLU,
    1x1 ``conv2``, residual."""

    def __init__(self, op: str, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.stride = stride
        if stride > 1:
            self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
            self.shortcut = _conv(cin, cout, 1)
        k = 5 if op == "rd" else 3
        self.conv1 = _conv(cin, cin, k, padding=k // 2, group=cin, bias=False)
        self.conv2 = _conv(cin, cout, 1, bias=False)

    def construct(self, x):
        if self.stride > 1:
            x = self.pool(x)
        y = self.conv2(ops.relu(self.conv1(x)))
        if self.stride > 1:
            x = self.shortcut(x)
        return y + x


class CSAM(nn.Cell):
    """``x * sigmoid(conv2(conv1(relu(x))))`` (conv1 1x1 to 4, conv2 3x3 to 1, no bias)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = _conv(channels, 4, 1)
        self.conv2 = _conv(4, 1, 3, padding=1, bias=False)

    def construct(self, x):
        return x * ops.sigmoid(self.conv2(self.conv1(ops.relu(x))))


class CDCM(nn.Cell):
    """relu, 1x1 ``conv1``, then the sum of four 3x3 convs dilated 5, 7, 9, 11."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = _conv(cin, cout, 1)
        self.conv2_1 = _conv(cout, cout, 3, padding=5, dilation=5, bias=False)
        self.conv2_2 = _conv(cout, cout, 3, padding=7, dilation=7, bias=False)
        self.conv2_3 = _conv(cout, cout, 3, padding=9, dilation=9, bias=False)
        self.conv2_4 = _conv(cout, cout, 3, padding=11, dilation=11, bias=False)

    def construct(self, x):
        x = self.conv1(ops.relu(x))
        return self.conv2_1(x) + self.conv2_2(x) + self.conv2_3(x) + self.conv2_4(x)


class MapReduce(nn.Cell):
    """1x1 conv to one edge map (key ``conv``)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = _conv(channels, 1, 1)

    def construct(self, x):
        return self.conv(x)


class PiDiNet(nn.Cell):
    """Edges (N, 1, H, W) in (0, 1) of a normalised image (N, 3, H, W): ``sigmoid(classifier(cat of the four
    side maps, each bilinearly resized to H x W)))``."""

    def __init__(self, cfg: PidinetConfig):
        super().__init__()
        pdcs = PDC_CONFIGS[cfg.config]
        c = cfg.inplane
        k0 = 5 if pdcs[0] == "rd" else 3
        self.init_block = _conv(3, c, k0, padding=k0 // 2, bias=False)
        widths = [c, 2 * c, 4 * c, 4 * c]
        cin = c
        idx = 1
        for stage, (n, w) in enumerate(zip((3, 4, 4, 4), widths), start=1):
            for j in range(1, n + 1):
                stride = 2 if (j == 1 and stage > 1) else 1
                setattr(self, f"block{stage}_{j}", PDCBlock(pdcs[idx], cin, w, stride))
                cin = w
                idx += 1
        self.dilations = nn.CellList([CDCM(w, cfg.dil) for w in widths])
        self.attentions = nn.CellList([CSAM(cfg.dil) for _ in widths])
        self.conv_reduces = nn.CellList([MapReduce(cfg.dil) for _ in widths])
        self.classifier = _conv(4, 1, 1)
        self.stages = ((1, 3), (2, 4), (3, 4), (4, 4))

    def construct(self, x):
        h, w = x.shape[2], x.shape[3]
        y = self.init_block(x)
        sides = []
        for i, (stage, n) in enumerate(self.stages):
            for j in range(1, n + 1):
                y = getattr(self, f"block{stage}_{j}")(y)
            e = self.conv_reduces[i](self.attentions[i](self.dilations[i](y)))
            sides.append(resize_bilinear(e, (h, w), align_corners=False))
        return ops.sigmoid(self.classifier(ops.concat(sides, axis=1)))


class SketchSimplification(nn.Cell):
    """The sketch-cleaning network: (N, 1, H, W) in [0, 1] (dark strokes) -> (N, 1, H, W) in (0, 1).
    H and W divisible by 8. ``channels``: the 23 conv / conv-transpose out-widths (config
    ``sketch_simplification_channels``)."""

    #: (kernel, stride, padding, transpose) of each of the 23 layers; a ReLU follows each but the last (Sigmoid).
    LAYOUT = ([(5, 2, 2, False), (3, 1, 1, False), (3, 1, 1, False), (3, 2, 1, False), (3, 1, 1, False),
               (3, 1, 1, False), (3, 2, 1, False)] + [(3, 1, 1, False)] * 7
              + [(4, 2, 1, True), (3, 1, 1, False), (3, 1, 1, False), (4, 2, 1, True), (3, 1, 1, False),
                 (3, 1, 1, False), (4, 2, 1, True), (3, 1, 1, False), (3, 1, 1, False)])

    def __init__(self, channels, mean: float = SIMPLIFY_MEAN, std: float = SIMPLIFY_STD):
        super().__init__()
        if len(channels) != 23 or channels[-1] != 1:
            raise ConfigError(f"sketch_simplification_channels: 23 widths ending in 1, got {list(channels)}")
        self.mean, self.std = float(mean), float(std)
        layers, cin = [], 1
        for i, ((k, s, p, tr), cout) in enumerate(zip(self.LAYOUT, channels)):
            if tr:
                layers.append(nn.Conv2dTranspose(cin, cout, k, stride=s, pad_mode="pad", padding=p, has_bias=True))
            else:
                layers.append(conv2d(cin, cout, k, stride=s, padding=p))
            layers.append(nn.Sigmoid() if i == 22 else nn.ReLU())
            cin = cout
        self.layers = nn.SequentialCell(layers)

    def construct(self, x):
        h, w = x.shape[2], x.shape[3]
        if h % 8 or w % 8:
            raise ValueError(f"sketch simplification: input {h}x{w} must be divisible by 8")
        return self.layers((x - self.mean) / self.std)


class SketchExtractor(nn.Cell):
    """Image (N, 3, H, W) in [0, 1] -> (edges, sketch): ``edges = PiDiNet((image - mean) / std)``,
    ``sketch = 1 - cleaner(1 - edges)`` (the original's sketch condition, in [0, 1])."""

    def __init__(self, pidinet: PiDiNet, cleaner: SketchSimplification, mean, std):
        super().__init__()
        self.pidinet = pidinet
        self.cleaner = cleaner
        self.mean = ms.Tensor(np.asarray(mean, np.float32).reshape(1, 3, 1, 1))
        self.std = ms.Tensor(np.asarray(std, np.float32).reshape(1, 3, 1, 1))

    def construct(self, image):
        edges = self.pidinet((image - self.mean) / self.std)
        return edges, 1.0 - self.cleaner(1.0 - edges)


def pidinet_config(d: dict, where: str = "pidinet_cfg") -> PidinetConfig:
    """:class:`PidinetConfig` from the config's ``pidinet_cfg`` mapping."""
    return from_mapping(PidinetConfig, d, where)
