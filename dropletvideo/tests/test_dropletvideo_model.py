"""The release's key layout at full size (nothing allocated), RoPE grid, inpaint inputs, pipeline behaviour."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from dropletvideo_ms.pipeline import DropletVideoPipeline, image_to_video_inputs, resize_linear
from dropletvideo_ms.transformer import DropletVideoTransformer3DModel, TransformerConfig, prepare_rotary
from dropletvideo_ms.weights import TRANSFORMER_RENAME, VAE_RENAME
from mindspore.nn.utils import no_init_parameters

from common.checkpoint import match_state_dict
from common.config import from_mapping
from common.text import T5Config, T5EncoderModel
from common.vae3d import AutoencoderKLCausal3D, CausalVAEConfig

# the released transformer/config.json sizes (CogVideoX-5B-I2V inpaint layout + the FPS branch)
RELEASE_TRANSFORMER = dict(num_attention_heads=48, attention_head_dim=64, in_channels=33, out_channels=16,
                           time_embed_dim=512, text_embed_dim=4096, num_layers=42, patch_size=2,
                           use_rotary_positional_embeddings=True, add_noise_in_inpaint_model=True)
RELEASE_T5 = dict(d_model=4096, d_kv=64, num_heads=64, d_ff=10240, num_layers=24, vocab_size=32128,
                  feed_forward_proj="gated-gelu")


def _released_transformer_keys(c: dict) -> dict:
    """{key: shape} of the released transformer file, written out from its documented names."""
    d, t, p = c["num_attention_heads"] * c["attention_head_dim"], c["time_embed_dim"], c["patch_size"]
    hd = c["attention_head_dim"]
    k = {"patch_embed.proj.weight": (d, c["in_channels"], p, p), "patch_embed.proj.bias": (d,),
         "patch_embed.text_proj.weight": (d, c["text_embed_dim"]), "patch_embed.text_proj.bias": (d,),
         "norm_final.weight": (d,), "norm_final.bias": (d,), "norm_out.linear.weight": (2 * d, t),
         "norm_out.linear.bias": (2 * d,), "norm_out.norm.weight": (d,), "norm_out.norm.bias": (d,),
         "proj_out.weight": (p * p * c["out_channels"], d), "proj_out.bias": (p * p * c["out_channels"],)}
    for e in ("time_embedding", "fps_embedding"):
        k.update({f"{e}.linear_1.weight": (t, d), f"{e}.linear_1.bias": (t,), f"{e}.linear_2.weight": (t, t),
                  f"{e}.linear_2.bias": (t,)})
    for i in range(c["num_layers"]):
        b = f"transformer_blocks.{i}."
        for n in ("norm1", "norm2"):
            k.update({b + n + ".linear.weight": (6 * d, t), b + n + ".linear.bias": (6 * d,),
                      b + n + ".norm.weight": (d,), b + n + ".norm.bias": (d,)})
        for n in ("to_q", "to_k", "to_v", "to_out.0"):
            k.update({b + f"attn1.{n}.weight": (d, d), b + f"attn1.{n}.bias": (d,)})
        for n in ("norm_q", "norm_k"):
            k.update({b + f"attn1.{n}.weight": (hd,), b + f"attn1.{n}.bias": (hd,)})
        k.update({b + "ff.net.0.proj.weight": (4 * d, d), b + "ff.net.0.proj.bias": (4 * d,),
                  b + "ff.net.2.weight": (d, 4 * d), b + "ff.net.2.bias": (d,)})
    return k


def _released_vae_keys(boc=(128, 256, 256, 512), layers=3, z=16) -> dict:
    """{key: shape} of diffusers' CogVideoX VAE file (= DropletVideo's), written out from its structure."""
    k = {}

    def conv(name, o, i, kk=3, causal=True):
        w = name + (".conv" if causal else "")
        k[w + ".weight"], k[w + ".bias"] = (o, i, kk, kk, kk), (o,)

    def norm(name, ch, spatial):
        if spatial:
            k[name + ".norm_layer.weight"] = k[name + ".norm_layer.bias"] = (ch,)
            conv(name + ".conv_y", ch, z, 1)
            conv(name + ".conv_b", ch, z, 1)
        else:
            k[name + ".weight"] = k[name + ".bias"] = (ch,)

    def resnet(name, i, o, spatial):
        norm(name + ".norm1", i, spatial)
        conv(name + ".conv1", o, i)
        norm(name + ".norm2", o, spatial)
        conv(name + ".conv2", o, o)
        if i != o:
            conv(name + ".conv_shortcut", o, i, 1, causal=False)

    conv("encoder.conv_in", boc[0], 3)
    prev = boc[0]
    for lvl, ch in enumerate(boc):
        for j in range(layers):
            resnet(f"encoder.down_blocks.{lvl}.resnets.{j}", prev if j == 0 else ch, ch, False)
        prev = ch
        if lvl < len(boc) - 1:
            k[f"encoder.down_blocks.{lvl}.downsamplers.0.conv.weight"] = (ch, ch, 3, 3)
            k[f"encoder.down_blocks.{lvl}.downsamplers.0.conv.bias"] = (ch,)
    for j in range(2):
        resnet(f"encoder.mid_block.resnets.{j}", boc[-1], boc[-1], False)
    norm("encoder.norm_out", boc[-1], False)
    conv("encoder.conv_out", 2 * z, boc[-1])
    rev = list(reversed(boc))
    conv("decoder.conv_in", rev[0], z)
    for j in range(2):
        resnet(f"decoder.mid_block.resnets.{j}", rev[0], rev[0], True)
    prev = rev[0]
    for lvl, ch in enumerate(rev):
        for j in range(layers + 1):
            resnet(f"decoder.up_blocks.{lvl}.resnets.{j}", prev if j == 0 else ch, ch, True)
        prev = ch
        if lvl < len(rev) - 1:
            k[f"decoder.up_blocks.{lvl}.upsamplers.0.conv.weight"] = (ch, ch, 3, 3)
            k[f"decoder.up_blocks.{lvl}.upsamplers.0.conv.bias"] = (ch,)
    norm("decoder.norm_out", rev[-1], True)
    conv("decoder.conv_out", 3, rev[-1])
    return k


def _released_t5_keys(c: dict) -> dict:
    d, inner, ff = c["d_model"], c["num_heads"] * c["d_kv"], c["d_ff"]
    k = {"shared.weight": (c["vocab_size"], d), "encoder.final_layer_norm.weight": (d,),
         "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight": (32, c["num_heads"])}
    for i in range(c["num_layers"]):
        b = f"encoder.block.{i}.layer."
        for n in "qkv":
            k[b + f"0.SelfAttention.{n}.weight"] = (inner, d)
        k[b + "0.SelfAttention.o.weight"] = (d, inner)
        k[b + "0.layer_norm.weight"] = k[b + "1.layer_norm.weight"] = (d,)
        k[b + "1.DenseReluDense.wi_0.weight"] = k[b + "1.DenseReluDense.wi_1.weight"] = (ff, d)
        k[b + "1.DenseReluDense.wo.weight"] = (d, ff)
    return k


def test_full_size_key_layout_without_allocating_weights():
    with no_init_parameters():
        tr = DropletVideoTransformer3DModel(from_mapping(TransformerConfig, RELEASE_TRANSFORMER, "release"))
        vae = AutoencoderKLCausal3D(CausalVAEConfig(block_out_channels=(128, 256, 256, 512), layers_per_block=3))
        t5 = T5EncoderModel(from_mapping(T5Config, RELEASE_T5, "release"))
    for model, keys, rename in ((tr, _released_transformer_keys(RELEASE_TRANSFORMER), TRANSFORMER_RENAME),
                                (vae, _released_vae_keys(), VAE_RENAME), (t5, _released_t5_keys(RELEASE_T5), None)):
        _, report = match_state_dict(model, keys, rename=rename)
        assert report.ok, report.summary()
    n = sum(int(np.prod(s)) for s in _released_transformer_keys(RELEASE_TRANSFORMER).values())
    assert 5.5e9 < n < 5.6e9  # "5B": CogVideoX-5B plus the FPS embedding


def test_rotary_grid_of_the_release_default():
    cos, sin, info = prepare_rotary(384, 672, 22, 8, 2, 64)
    # 24 x 42 tokens fitted into the 30 x 45 base grid: 45 wide, round(25.7) = 26 high, centred
    assert info == {"grid_size": (24, 42), "crops_coords": ((2, 0), (28, 45))}
    assert cos.shape == sin.shape == (22 * 24 * 42, 64)
    np.testing.assert_allclose(cos ** 2 + sin ** 2, 1, atol=1e-6)


def test_resize_linear_matches_torch_trilinear():
    x = np.random.default_rng(0).random((1, 1, 8, 40, 56)).astype(np.float32)
    ref = torch.nn.functional.interpolate(torch.from_numpy(x), size=(3, 5, 7), mode="trilinear",
                                          align_corners=False).numpy()
    np.testing.assert_allclose(resize_linear(x, (3, 5, 7)), ref, atol=1e-6)


def test_image_to_video_inputs():
    img = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    video, mask = image_to_video_inputs(img, 5)
    assert video.shape == (1, 3, 5, 4, 6) and mask.shape == (1, 1, 5, 4, 6)
    np.testing.assert_array_equal(video[0, :, 3], img.transpose(2, 0, 1) / np.float32(255))
    assert (mask[:, :, 0] == 0).all() and (mask[:, :, 1:] == 255).all()


@pytest.fixture(scope="module")
def pipe(tiny_folder):
    return DropletVideoPipeline.from_pretrained(tiny_folder)


@pytest.mark.parametrize("kw,msg", [({"height": 40}, "multiples of 16"), ({"num_frames": 8}, r"4k\+1"),
                                    ({"num_frames": 0}, r"4k\+1")])
def test_pipeline_refuses_bad_sizes(pipe, kw, msg):
    args = dict(height=64, width=64, num_frames=5)
    args.update(kw)
    with pytest.raises(ValueError, match=msg):
        pipe("x", np.zeros((args["height"], args["width"], 3), np.uint8), **args)


def test_seeded_runs_repeat_and_cfg_off_is_one_branch(pipe):
    img = np.random.default_rng(0).integers(0, 255, (32, 48, 3), dtype=np.uint8)
    kw = dict(height=32, width=48, num_frames=5, num_inference_steps=2, max_sequence_length=8, progress=False)
    a = pipe("a cat", img, seed=3, **kw)
    b = pipe("a cat", img, seed=3, **kw)
    np.testing.assert_array_equal(a.latents, b.latents)
    assert a.frames.shape == (1, 8, 32, 48, 3)  # 5 frames -> 2 latents (even) -> 8 decoded, as the original
    assert 0 <= a.frames.min() and a.frames.max() <= 1
    calls = []
    tr = pipe._transformer
    pipe._transformer = lambda *args: calls.append(args[0].shape[0]) or tr(*args)
    try:
        pipe("a cat", img, seed=3, guidance_scale=1.0, **kw)
    finally:
        pipe._transformer = tr
    assert calls == [1, 1]  # no negative branch without guidance
    c = pipe("a cat", img, seed=3, split_cfg=True, **kw)  # two calls of batch 1 per step
    np.testing.assert_allclose(c.latents, a.latents, atol=1e-5 * max(1.0, np.abs(a.latents).max()))


def test_float16_transformer_stays_close(pipe, tiny_folder):
    import mindspore as ms
    from dropletvideo_ms.weights import load_transformer

    half = load_transformer(tiny_folder, ms.float16)  # cast before the weights are read
    rng = np.random.default_rng(0)
    t = lambda *s: ms.Tensor(rng.standard_normal(s).astype(np.float32))  # noqa: E731
    x, ctx, cond = t(1, 2, 16, 4, 4), t(1, 8, 32), t(1, 2, 17, 4, 4)
    cos, sin = (ms.Tensor(a) for a in prepare_rotary(32, 32, 2, 8, 2, 16)[:2])
    ts, fps = ms.Tensor(np.array([500], np.int64)), ms.Tensor(np.array([8], np.int64))
    ref = pipe.transformer(x, ctx, ts, fps, cond, cos, sin).asnumpy()
    out = half(x, ctx, ts, fps, cond, cos, sin)
    assert out.dtype == ms.float32
    # fp16 keeps ~3 decimal digits per op; two blocks of O(1) activations stay within 1e-2 of float32
    np.testing.assert_allclose(out.asnumpy(), ref, atol=1e-2 * max(1.0, np.abs(ref).max()))


def test_prompt_embeds_path_equals_prompt_path(pipe):
    img = np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    kw = dict(height=32, width=32, num_frames=1, num_inference_steps=1, max_sequence_length=8, progress=False, seed=0)
    a = pipe("a dog", img, negative_prompt="blur", **kw)
    pos, neg = pipe.encode_prompt("a dog", "blur", 8)
    b = pipe(None, img, prompt_embeds=pos, negative_prompt_embeds=neg.asnumpy(), **kw)
    np.testing.assert_array_equal(a.latents, b.latents)
    with pytest.raises(ValueError, match="both"):
        pipe(None, img, prompt_embeds=pos, **kw)


def test_graph_mode_transformer_equals_pynative(pipe):
    import mindspore as ms

    rng = np.random.default_rng(2)
    t = lambda *s: ms.Tensor(rng.standard_normal(s).astype(np.float32))  # noqa: E731
    cos, sin = (ms.Tensor(a) for a in prepare_rotary(32, 48, 2, 8, 2, 16)[:2])
    args = (t(2, 2, 16, 4, 6), t(2, 8, 32), ms.Tensor(np.array([999, 999], np.int64)),
            ms.Tensor(np.array([4], np.int64)), t(2, 2, 17, 4, 6), cos, sin)
    eager = pipe.transformer(*args).asnumpy()
    graph = ms.jit(pipe.transformer.construct)(*args).asnumpy()
    # the same float32 ops; a compiled graph may only order/fuse them differently (a few ulp per op)
    np.testing.assert_allclose(graph, eager, atol=1e-5 * max(1.0, np.abs(eager).max()))
