"""OpenCLIP towers vs a torch reference with open_clip's module layout (nn.MultiheadAttention, pre-LN blocks),
their key names vs the released checkpoints, the arch configs, and PyNative vs graph mode."""
from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from collections import OrderedDict

import mindspore as ms
import numpy as np
import pytest
import torch
from torch import nn

from common import golden
from common.checkpoint import load_state_dict_into
from common.clip import (
    OPEN_CLIP_ARCHS,
    OpenCLIP,
    OpenCLIPConfig,
    OpenCLIPTextTower,
    OpenCLIPVisionTower,
    load_open_clip_config,
)

TINY = {"embed_dim": 12,
        "vision_cfg": {"image_size": 28, "layers": 2, "width": 16, "head_width": 8, "patch_size": 7},
        "text_cfg": {"context_length": 10, "vocab_size": 40, "width": 16, "heads": 2, "layers": 3}}
# every optional feature at once: QuickGELU, LayerScale, non-square image, odd mlp_ratio
TINY_ODD = {"embed_dim": 8, "quick_gelu": True,
            "vision_cfg": {"image_size": [28, 42], "layers": 1, "width": 24, "head_width": 8, "patch_size": 14,
                           "mlp_ratio": 2.5, "ls_init_value": 0.5},
            "text_cfg": {"context_length": 8, "vocab_size": 30, "width": 12, "heads": 3, "layers": 2,
                         "ls_init_value": 0.5}}


# ----------------------------------------------------------------------------- torch reference (open_clip layout)
class _QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class _LayerScale(nn.Module):
    def __init__(self, w, v):
        super().__init__()
        self.gamma = nn.Parameter(v * torch.ones(w))

    def forward(self, x):
        return x * self.gamma


class _Block(nn.Module):
    def __init__(self, w, heads, mlp_ratio, quick, ls):
        super().__init__()
        self.ln_1 = nn.LayerNorm(w)
        self.attn = nn.MultiheadAttention(w, heads)
        self.ls_1 = _LayerScale(w, ls) if ls is not None else nn.Identity()
        self.ln_2 = nn.LayerNorm(w)
        hidden = int(w * mlp_ratio)
        self.mlp = nn.Sequential(OrderedDict(c_fc=nn.Linear(w, hidden), gelu=_QuickGELU() if quick else nn.GELU(),
                                             c_proj=nn.Linear(hidden, w)))
        self.ls_2 = _LayerScale(w, ls) if ls is not None else nn.Identity()

    def forward(self, x, mask=None):  # x (L, N, w) as open_clip
        h = self.ln_1(x)
        x = x + self.ls_1(self.attn(h, h, h, need_weights=False, attn_mask=mask)[0])
        return x + self.ls_2(self.mlp(self.ln_2(x)))


class _Transformer(nn.Module):
    def __init__(self, w, layers, heads, mlp_ratio, quick, ls):
        super().__init__()
        self.resblocks = nn.ModuleList([_Block(w, heads, mlp_ratio, quick, ls) for _ in range(layers)])


class _Visual(nn.Module):
    def __init__(self, c, embed_dim, quick):
        super().__init__()
        ih, iw = (c["image_size"],) * 2 if isinstance(c["image_size"], int) else c["image_size"]
        w, p = c["width"], c["patch_size"]
        self.conv1 = nn.Conv2d(3, w, p, stride=p, bias=False)
        self.class_embedding = nn.Parameter(torch.randn(w))
        self.positional_embedding = nn.Parameter(torch.randn((ih // p) * (iw // p) + 1, w))
        self.ln_pre = nn.LayerNorm(w)
        self.transformer = _Transformer(w, c["layers"], w // c["head_width"], c.get("mlp_ratio", 4.0), quick,
                                        c.get("ls_init_value"))
        self.ln_post = nn.LayerNorm(w)
        self.proj = nn.Parameter(torch.randn(w, embed_dim))

    def tokens(self, x):
        x = self.conv1(x).flatten(2).permute(0, 2, 1)
        x = torch.cat([self.class_embedding.expand(x.shape[0], 1, -1), x], 1) + self.positional_embedding
        x = self.ln_pre(x).permute(1, 0, 2)
        for blk in self.transformer.resblocks:
            x = blk(x)
        return x.permute(1, 0, 2)

    def forward(self, x):
        return self.ln_post(self.tokens(x)[:, 0]) @ self.proj


class _CLIP(nn.Module):
    def __init__(self, d):
        super().__init__()
        t, quick = d["text_cfg"], d.get("quick_gelu", False)
        self.visual = _Visual(d["vision_cfg"], d["embed_dim"], quick)
        self.token_embedding = nn.Embedding(t["vocab_size"], t["width"])
        self.positional_embedding = nn.Parameter(torch.randn(t["context_length"], t["width"]))
        self.transformer = _Transformer(t["width"], t["layers"], t["heads"], t.get("mlp_ratio", 4.0), quick,
                                        t.get("ls_init_value"))
        self.ln_final = nn.LayerNorm(t["width"])
        self.text_projection = nn.Parameter(torch.randn(t["width"], d["embed_dim"]))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        n = t["context_length"]
        self.register_buffer("attn_mask", torch.full((n, n), float("-inf")).triu(1), persistent=False)

    def text_hidden(self, tokens, skip=0):
        x = (self.token_embedding(tokens) + self.positional_embedding).permute(1, 0, 2)
        blocks = self.transformer.resblocks
        for blk in list(blocks)[:len(blocks) - skip]:
            x = blk(x, self.attn_mask)
        return self.ln_final(x.permute(1, 0, 2))

    def encode_text(self, tokens):
        x = self.text_hidden(tokens)
        return x[torch.arange(x.shape[0]), tokens.argmax(-1)] @ self.text_projection


def _reference(d, seed=0):
    torch.manual_seed(seed)
    ref = _CLIP(d).eval()
    with torch.no_grad():  # every parameter random and O(1)-active, zero-initialised biases included
        for name, p in ref.named_parameters():
            p.copy_(torch.randn_like(p) * (0.5 if p.ndim < 2 else 1.0 / math.sqrt(p.shape[-1])))
            if re.search(r"ln_\w+\.weight$", name):
                p.add_(1.0)
    sd = {k: v.detach().numpy().copy() for k, v in ref.state_dict().items()}
    return ref, sd


def _inputs(d, seed=0):
    g = torch.Generator().manual_seed(seed)
    t, v = d["text_cfg"], d["vision_cfg"]
    n = t["context_length"]
    tokens = torch.randint(1, t["vocab_size"] - 2, (3, n), generator=g)
    tokens[:, 0] = t["vocab_size"] - 2  # unique row maximum where no EOT follows
    tokens[0, 5:] = 0
    tokens[0, 4] = t["vocab_size"] - 1  # EOT (highest id) inside, zero padding after
    tokens[1, -1] = t["vocab_size"] - 1
    ih, iw = (v["image_size"],) * 2 if isinstance(v["image_size"], int) else v["image_size"]
    pixels = torch.randn(2, 3, ih, iw, generator=g)
    return tokens, pixels


@pytest.mark.parametrize("d", [TINY, TINY_ODD], ids=["tiny", "quickgelu_layerscale_nonsquare"])
def test_open_clip_matches_torch_reference(d):
    ref, sd = _reference(d)
    tokens, pixels = _inputs(d)
    net = OpenCLIP(OpenCLIPConfig.from_dict(d))
    report = load_state_dict_into(net, sd)  # strict: our names are open_clip's names
    assert report.ok and report.loaded == len(sd)
    tok_ms, pix_ms = ms.Tensor(tokens.numpy()), ms.Tensor(pixels.numpy())
    layers = d["text_cfg"]["layers"]
    with torch.no_grad():
        for layer, skip in (("last", 0), ("penultimate", 1), (layers - 1, layers - 1)):
            got = net.encode_with_transformer(tok_ms, layer=layer).asnumpy()
            np.testing.assert_allclose(got, ref.text_hidden(tokens, skip).numpy(), atol=2e-5, rtol=1e-5)
        np.testing.assert_allclose(net.encode_text(tok_ms).asnumpy(), ref.encode_text(tokens).numpy(), atol=2e-5,
                                   rtol=1e-5)
        np.testing.assert_allclose(net.visual.forward_tokens(pix_ms).asnumpy(), ref.visual.tokens(pixels).numpy(),
                                   atol=2e-5, rtol=1e-5)
        np.testing.assert_allclose(net.encode_image(pix_ms).asnumpy(), ref.visual(pixels).numpy(), atol=2e-5,
                                   rtol=1e-5)
        normed = net.encode_image(pix_ms, normalize=True).asnumpy()
        np.testing.assert_allclose(np.linalg.norm(normed, axis=-1), 1.0, atol=1e-5)


def test_separate_towers_take_the_prefix_free_keys():
    _, sd = _reference(TINY)
    cfg = OpenCLIPConfig.from_dict(TINY)
    text = OpenCLIPTextTower(cfg, layer="penultimate")
    assert load_state_dict_into(text, {k: v for k, v in sd.items() if not k.startswith("visual.")}).ok
    vision = OpenCLIPVisionTower(cfg)
    assert load_state_dict_into(vision, {k[7:]: v for k, v in sd.items() if k.startswith("visual.")}).ok
    leftovers = OpenCLIP(cfg, text_transformer=False)  # CLIP after `del model.transformer`
    assert load_state_dict_into(leftovers, {k: v for k, v in sd.items() if not k.startswith("transformer.")}).ok
    with pytest.raises(ValueError, match="with_transformer=False"):
        leftovers.encode_with_transformer(ms.Tensor(np.zeros((1, 10), np.int64)))


def _schema(names, prefix=""):
    """Key names under a prefix with block indices abstracted."""
    return {re.sub(r"resblocks\.\d+\.", "resblocks.N.", k[len(prefix):]) for k in names if k.startswith(prefix)}


def _released(model, file):
    path = golden.golden_root() / model / "released" / file
    assert path.is_file(), f"missing {path}"
    return json.loads(path.read_text())["tensors"]


def test_key_names_equal_the_released_checkpoints():
    cfg = OpenCLIPConfig.from_dict(TINY)
    text = _schema(dict(OpenCLIPTextTower(cfg).parameters_and_names()))
    image = _schema(dict(OpenCLIP(cfg, text_transformer=False).parameters_and_names()))
    dc = _released("dynamicrafter", "dynamicrafter_512.json")
    assert text == _schema(dc, "cond_stage_model.model.")
    assert image == _schema(dc, "embedder.model.")
    svd = _released("svd", "svd_xt.json")
    assert image == _schema(svd, "conditioner.embedders.0.open_clip.model.")


def test_builtin_vit_h_14_matches_the_released_shapes():
    cfg = load_open_clip_config("ViT-H-14")
    dc = _released("dynamicrafter", "dynamicrafter_256.json")
    t, v = cfg.text_cfg, cfg.vision_cfg

    def n_blocks(prefix):
        return 1 + max(int(m.group(1)) for k in dc if (m := re.match(re.escape(prefix) + r"resblocks\.(\d+)\.", k)))

    assert n_blocks("cond_stage_model.model.transformer.") == t.layers == 24
    assert n_blocks("embedder.model.visual.transformer.") == v.layers == 32
    assert dc["cond_stage_model.model.token_embedding.weight"] == [t.vocab_size, t.width]
    assert dc["cond_stage_model.model.positional_embedding"] == [t.context_length, t.width]
    assert dc["cond_stage_model.model.transformer.resblocks.0.mlp.c_fc.weight"] == [int(t.width * t.mlp_ratio), t.width]
    assert dc["embedder.model.visual.conv1.weight"] == [v.width, 3, v.patch_size, v.patch_size]
    assert dc["embedder.model.visual.positional_embedding"] == [v.num_tokens, v.width] == [257, 1280]
    assert dc["embedder.model.visual.proj"] == [v.width, cfg.embed_dim]
    assert v.heads == 16 and t.heads == 16
    assert load_open_clip_config("ViT-bigG-14").vision_cfg.heads == 16
    assert set(OPEN_CLIP_ARCHS) >= {"ViT-H-14", "ViT-L-14", "ViT-bigG-14"}


def test_config_files_and_errors(tmp_path):
    root = golden.golden_root()
    dc = load_open_clip_config("dc-tiny256-image", archs_file=root / "dynamicrafter/tiny256/open_clip_archs.json")
    assert (dc.vision_cfg.width, dc.vision_cfg.layers, dc.embed_dim) == (48, 2, 48)
    svd = load_open_clip_config(root / "svd/tiny_svd/ViT-tiny-svd.json")
    assert svd.name == "ViT-tiny-svd" and svd.vision_cfg.num_tokens == 50
    assert load_open_clip_config("ViT-tiny-svd", search_dirs=[root / "svd/tiny_svd"]).vision_cfg.patch_size == 32
    with pytest.raises(ValueError, match="unknown open_clip arch 'nope'"):
        load_open_clip_config("nope", search_dirs=[tmp_path])
    bad = dict(TINY, vision_cfg=dict(TINY["vision_cfg"], attentional_pool=True))
    with pytest.raises(ValueError, match="attentional_pool=True is not supported"):
        OpenCLIPConfig.from_dict(bad)
    with pytest.raises(ValueError, match=r"text_cfg.widht: unknown key \(did you mean 'width'"):
        OpenCLIPConfig.from_dict(dict(TINY, text_cfg=dict(TINY["text_cfg"], widht=3)))
    p = tmp_path / "x.json"
    p.write_text(json.dumps({"a": TINY}))
    with pytest.raises(ValueError, match="no open_clip config named 'b'"):
        load_open_clip_config("b", archs_file=p)
    cfg = OpenCLIPConfig.from_dict(TINY)
    with pytest.raises(ValueError, match="skips 3 of only 3"):
        OpenCLIPTextTower(cfg, layer=3)
    with pytest.raises(ValueError, match="skips 5 of only 3"):
        OpenCLIPTextTower(cfg).encode_with_transformer(ms.Tensor(np.zeros((1, 10), np.int64)), layer=5)
    with pytest.raises(ValueError, match="'middle'"):
        OpenCLIPTextTower(cfg, layer="middle")
    with pytest.raises(ValueError, match=r"pixels must be \(B, 3, 28, 28\)"):
        OpenCLIPVisionTower(cfg).forward_tokens(ms.Tensor(np.zeros((1, 3, 224, 224), np.float32)))


_GRAPH_SCRIPT = r"""
import numpy as np, mindspore as ms
from common.clip import OpenCLIP, OpenCLIPConfig, CLIPImagePreprocess, CLIPTextConfig, CLIPTextModel
ms.set_seed(0)
cfg = OpenCLIPConfig.from_dict(%r)
net = OpenCLIP(cfg, layer="penultimate")
hf = CLIPTextModel(CLIPTextConfig(vocab_size=40, hidden_size=16, intermediate_size=24, num_attention_heads=2,
                                  num_hidden_layers=2, max_position_embeddings=10, hidden_act="gelu"))
pre = CLIPImagePreprocess((40, 30), size=(28, 28))
class Tokens(ms.nn.Cell):
    def __init__(self, v):
        super().__init__()
        self.v = v
    def construct(self, x):
        return self.v.forward_tokens(x)
class Text(ms.nn.Cell):
    def __init__(self, t):
        super().__init__()
        self.t = t
    def construct(self, x):
        return self.t.encode_with_transformer(x), self.t.encode_text(x)
rng = np.random.RandomState(0)
tok = ms.Tensor(rng.randint(0, 40, (2, 10)).astype(np.int64))
img = ms.Tensor(np.tanh(rng.randn(2, 3, 40, 30)).astype(np.float32))
cells = [(Text(net), tok), (Tokens(net.visual), pre(img)), (net.visual, pre(img)), (pre, img), (hf, tok)]
eager = [c(x) for c, x in cells]
ms.set_context(mode=ms.GRAPH_MODE)
assert ms.get_context("mode") == ms.GRAPH_MODE
worst = 0.0
for (c, x), e in zip(cells, eager):
    g = c(x)
    for a, b in zip(g if isinstance(g, tuple) else (g,), e if isinstance(e, tuple) else (e,)):
        worst = max(worst, float(np.abs(a.asnumpy() - b.asnumpy()).max()))
print("WORST", worst)
"""


def test_pynative_equals_graph_mode(tmp_path):
    script = tmp_path / "graph_mode_check.py"  # graph mode parses source: it must live in a file
    script.write_text(_GRAPH_SCRIPT % (TINY,))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    worst = float(re.search(r"WORST (\S+)", out.stdout).group(1))
    assert worst <= 1e-6, worst
