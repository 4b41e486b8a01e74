"""HF CLIPTextModel vs a torch reference of transformers' CLIP text math, with transformers' key names."""
from __future__ import annotations

import json
import math

import mindspore as ms
import numpy as np
import pytest
import torch
from torch import nn

from common.checkpoint import load_state_dict_into
from common.clip import HF_CLIP_IGNORED_KEYS, CLIPTextConfig, CLIPTextModel

CFG = dict(vocab_size=50, hidden_size=16, intermediate_size=40, num_attention_heads=4, num_hidden_layers=3,
           max_position_embeddings=12, layer_norm_eps=1e-5, projection_dim=6)


class _Attn(nn.Module):
    def __init__(self, w, h):
        super().__init__()
        self.h = h
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(w, w) for _ in range(4))

    def forward(self, x, mask):  # mask additive (B or 1, 1, L, L)
        b, l, w = x.shape
        d = w // self.h
        q = self.q_proj(x) * d ** -0.5

        def sp(t):
            return t.view(b, l, self.h, d).transpose(1, 2)

        p = torch.softmax(sp(q) @ sp(self.k_proj(x)).transpose(-1, -2) + mask, -1)
        return self.out_proj((p @ sp(self.v_proj(x))).transpose(1, 2).reshape(b, l, w))


class _Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        w = c["hidden_size"]
        self.self_attn = _Attn(w, c["num_attention_heads"])
        self.layer_norm1 = nn.LayerNorm(w, eps=c["layer_norm_eps"])
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(w, c["intermediate_size"])
        self.mlp.fc2 = nn.Linear(c["intermediate_size"], w)
        self.layer_norm2 = nn.LayerNorm(w, eps=c["layer_norm_eps"])
        self.act = (lambda x: x * torch.sigmoid(1.702 * x)) if c["hidden_act"] == "quick_gelu" else nn.GELU()

    def forward(self, x, mask):
        x = x + self.self_attn(self.layer_norm1(x), mask)
        return x + self.mlp.fc2(self.act(self.mlp.fc1(self.layer_norm2(x))))


class _TextModel(nn.Module):
    """transformers' CLIPTextModel(WithProjection) layout and math (causal mask with finfo.min)."""

    def __init__(self, c):
        super().__init__()
        self.text_model = nn.Module()
        tm = self.text_model
        tm.embeddings = nn.Module()
        tm.embeddings.token_embedding = nn.Embedding(c["vocab_size"], c["hidden_size"])
        tm.embeddings.position_embedding = nn.Embedding(c["max_position_embeddings"], c["hidden_size"])
        tm.embeddings.register_buffer("position_ids", torch.arange(c["max_position_embeddings"])[None])
        tm.encoder = nn.Module()
        tm.encoder.layers = nn.ModuleList([_Layer(c) for _ in range(c["num_hidden_layers"])])
        tm.final_layer_norm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])
        self.text_projection = nn.Linear(c["hidden_size"], c["projection_dim"], bias=False)

    def forward(self, ids, attention_mask=None):
        tm = self.text_model
        l = ids.shape[1]
        h = tm.embeddings.token_embedding(ids) + tm.embeddings.position_embedding(tm.embeddings.position_ids[:, :l])
        mask = torch.full((l, l), torch.finfo(torch.float32).min).triu(1)[None, None]
        if attention_mask is not None:
            mask = mask + (1.0 - attention_mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        states = [h]
        for layer in tm.encoder.layers:
            h = layer(h, mask)
            states.append(h)
        last = tm.final_layer_norm(h)
        pooled = last[torch.arange(ids.shape[0]), ids.argmax(-1)]
        return last, states, pooled, self.text_projection(pooled)


def _pair(act, seed=0):
    c = dict(CFG, hidden_act=act)
    torch.manual_seed(seed)
    ref = _TextModel(c).eval()
    with torch.no_grad():
        for name, p in ref.named_parameters():
            p.copy_(torch.randn_like(p) * (0.5 if p.ndim < 2 else 1.0 / math.sqrt(p.shape[-1])))
            if "layer_norm" in name and name.endswith("weight"):
                p.add_(1.0)
    sd = {k: v.detach().numpy().copy() for k, v in ref.state_dict().items()}
    net = CLIPTextModel(CLIPTextConfig.from_dict(c), with_projection=True)
    report = load_state_dict_into(net, sd, ignore=[r"position_ids$"])
    assert report.ok and report.ignored == 1 and report.loaded == len(sd) - 1
    return ref, net


def _ids(seed=0, n=12):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, CFG["vocab_size"] - 2, (2, n), generator=g)
    ids[:, 0] = CFG["vocab_size"] - 2  # bos
    ids[0, 6:] = CFG["vocab_size"] - 1  # eos + eos padding (SD-1.x pads with <|endoftext|>)
    ids[1, -1] = CFG["vocab_size"] - 1
    return ids


@pytest.mark.parametrize("act", ["quick_gelu", "gelu"])
def test_hf_text_model_matches_torch_reference(act):
    ref, net = _pair(act)
    ids = _ids()
    with torch.no_grad():
        last, states, pooled, embeds = ref(ids)
    ids_ms = ms.Tensor(ids.numpy())
    got = net(ids_ms).asnumpy()
    np.testing.assert_allclose(got, last.numpy(), atol=2e-5, rtol=1e-5)
    for a, b in zip(net.hidden_states(ids_ms), states, strict=True):
        np.testing.assert_allclose(a.asnumpy(), b.numpy(), atol=2e-5, rtol=1e-5)
    skip1 = ref.text_model.final_layer_norm(states[-2]).detach().numpy()  # diffusers clip_skip=1
    np.testing.assert_allclose(net(ids_ms, None, 1).asnumpy(), skip1, atol=2e-5, rtol=1e-5)
    np.testing.assert_allclose(net.pooled_output(net(ids_ms), ids_ms).asnumpy(), pooled.numpy(), atol=2e-5, rtol=1e-5)
    np.testing.assert_allclose(net.text_embeds(ids_ms).asnumpy(), embeds.numpy(), atol=2e-5, rtol=1e-5)


def test_attention_mask_and_shorter_sequences():
    ref, net = _pair("quick_gelu")
    ids = _ids(n=9)
    mask = torch.ones(2, 9, dtype=torch.int64)
    mask[0, 7:] = 0
    with torch.no_grad():
        last = ref(ids, mask)[0].numpy()
    got = net(ms.Tensor(ids.numpy()), ms.Tensor(mask.numpy())).asnumpy()
    np.testing.assert_allclose(got[:, :7], last[:, :7], atol=2e-5, rtol=1e-5)  # masked rows are don't-care
    np.testing.assert_allclose(got[1], last[1], atol=2e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="exceed max_position_embeddings"):
        net(ms.Tensor(np.zeros((1, 13), np.int64)))
    with pytest.raises(ValueError, match="clip_skip"):
        net(ms.Tensor(ids.numpy()), None, 3)


def test_config_from_json(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"text_config": dict(CFG, hidden_act="gelu"),
                                                      "vision_config": {}}))
    cfg = CLIPTextConfig.from_json(tmp_path)
    assert cfg.hidden_act == "gelu" and cfg.num_hidden_layers == 3
    (tmp_path / "config.json").write_text(json.dumps(dict(CFG, hidden_act="relu6")))
    with pytest.raises(ValueError, match="unsupported activation 'relu6'"):
        CLIPTextConfig.from_json(tmp_path / "config.json")
    with pytest.raises(ValueError, match="cannot read the CLIP text config"):
        CLIPTextConfig.from_json(tmp_path / "missing.json")
    names = dict(CLIPTextModel(CLIPTextConfig.from_dict(dict(CFG))).parameters_and_names())
    assert "text_model.embeddings.token_embedding.weight" in names
    assert "text_model.encoder.layers.2.self_attn.out_proj.bias" in names
    assert not any(k in names for k in HF_CLIP_IGNORED_KEYS) and "text_projection.weight" not in names
