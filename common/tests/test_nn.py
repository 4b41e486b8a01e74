"""Unit tests of common.nn against PyTorch references (float32, CPU)."""
import math

import mindspore as ms
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mindspore import nn

from common.nn import (
    Attention,
    FeedForward,
    GroupNorm,
    LayerNorm,
    ResBlock,
    SpatialTransformer,
    TemporalConv,
    UNetSkeleton,
    Upsample,
    attention_heads,
    batch_to_frames,
    batch_to_time_tokens,
    call_layer,
    frames_to_batch,
    image_to_tokens,
    layer_route,
    multi_head_attention,
    repeat_interleave,
    scaled_dot_product_attention,
    set_attention,
    set_feed_forward_chunk_size,
    space_to_time_tokens,
    time_to_space_tokens,
    time_tokens_to_batch,
    timestep_embedding,
    tokens_to_image,
    video_to_time_tokens,
)

rng = np.random.default_rng(0)


def randn(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def T(x):
    return ms.Tensor(x)


def set_params(cell, values: dict):
    """Fill a cell's parameters with given arrays (name -> array) or random ones; return the dict used."""
    out = {}
    for name, p in cell.parameters_and_names():
        v = values.get(name, randn(*p.shape) * 0.3)
        p.set_data(T(v))
        out[name] = v
    return out


@pytest.mark.parametrize("shape", [(2, 32, 6), (2, 32, 4, 5), (1, 64, 3, 4, 5)])
def test_group_norm_matches_torch(shape):
    x = randn(*shape) * 3 + 1
    g = GroupNorm(8, shape[1], eps=1e-6)
    p = set_params(g, {})
    ref = F.group_norm(torch.tensor(x), 8, torch.tensor(p["weight"]), torch.tensor(p["bias"]), 1e-6).numpy()
    np.testing.assert_allclose(g(T(x)).asnumpy(), ref, atol=2e-5)
    assert [n for n, _ in g.parameters_and_names()] == ["weight", "bias"]


def test_group_norm_rejects_bad_groups():
    with pytest.raises(ValueError, match="not divisible"):
        GroupNorm(32, 48)


def test_layer_norm_matches_torch():
    x = randn(3, 7, 16)
    ln = LayerNorm(16, eps=1e-5)
    p = set_params(ln, {})
    ref = F.layer_norm(torch.tensor(x), (16,), torch.tensor(p["weight"]), torch.tensor(p["bias"]), 1e-5).numpy()
    np.testing.assert_allclose(ln(T(x)).asnumpy(), ref, atol=1e-5)


@pytest.mark.parametrize("chunk", [None, 1, 4, 64])
@pytest.mark.parametrize("masking", ["none", "bool", "additive"])
def test_attention_matches_torch(chunk, masking):
    q, k, v = randn(2, 3, 9, 8), randn(2, 3, 5, 8), randn(2, 3, 5, 6)
    mask = tmask = None
    if masking == "bool":
        m = rng.random((2, 1, 9, 5)) > 0.3
        m[..., 0] = True
        mask, tmask = T(m), torch.tensor(m)
    elif masking == "additive":
        m = randn(1, 3, 9, 5)
        mask, tmask = T(m), torch.tensor(m)
    ref = F.scaled_dot_product_attention(torch.tensor(q), torch.tensor(k), torch.tensor(v), attn_mask=tmask).numpy()
    out = scaled_dot_product_attention(T(q), T(k), T(v), mask=mask, chunk_size=chunk).asnumpy()
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_attention_options_validate():
    attn = Attention(8, heads=2, dim_head=4)
    with pytest.raises(ValueError, match="unknown attention backend"):
        set_attention(attn, "cuda-magic")
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        set_attention(attn, chunk_size=0)
    with pytest.raises(ValueError, match="unknown heads_layout"):
        set_attention(attn, heads_layout="diagonal")
    assert set_attention(attn, chunk_size=np.int64(2)) == 1
    assert type(attn.chunk_size) is int and attn.chunk_size == 2  # a Python int: a graph constant
    q = randn(1, 2, 5, 4)
    a = scaled_dot_product_attention(T(q), T(q), T(q), chunk_size=2).asnumpy()
    b = scaled_dot_product_attention(T(q), T(q), T(q)).asnumpy()
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_two_models_keep_their_own_attention_options():
    """Options live on each model's cells: setting one model leaves the other alone, eager and compiled."""
    ms.set_seed(0)
    a = nn.SequentialCell([Attention(16, heads=2, dim_head=8), Attention(16, heads=2, dim_head=8)])
    b = nn.SequentialCell([Attention(16, heads=2, dim_head=8), Attention(16, heads=2, dim_head=8)])
    for cell_b, cell_a in zip(b, a):
        for name, prm in cell_b.parameters_and_names():
            prm.set_data(dict(cell_a.parameters_and_names())[name].copy())
    assert set_attention(a, chunk_size=3, heads_layout="slices") == 2
    assert set_attention(b, heads_layout="transpose") == 2
    assert [(m.chunk_size, m.heads_layout) for m in a] == [(3, "slices")] * 2
    assert [(m.chunk_size, m.heads_layout) for m in b] == [(None, "transpose")] * 2
    x = T(randn(2, 7, 16))
    out_a, out_b = a(x).asnumpy(), b(x).asnumpy()
    np.testing.assert_allclose(out_a, out_b, atol=1e-6)
    np.testing.assert_allclose(ms.jit(a.construct)(x).asnumpy(), out_a, atol=1e-6)
    np.testing.assert_allclose(ms.jit(b.construct)(x).asnumpy(), out_b, atol=1e-6)
    assert [(m.chunk_size, m.heads_layout) for m in b] == [(None, "transpose")] * 2


@pytest.mark.parametrize("masking", ["none", "per_head", "shared_head", "3d"])
def test_multi_head_attention_slices_equal_transposes(masking):
    """The two head layouts give the same numbers, eager and under ms.jit, with every mask form."""
    q, k, v = randn(2, 9, 3 * 4), randn(2, 5, 3 * 4), randn(2, 5, 3 * 6)
    mask = {"none": None, "per_head": randn(2, 3, 9, 5), "shared_head": randn(2, 1, 9, 5),
            "3d": randn(3, 9, 5)}[masking]
    mask = None if mask is None else T(mask)
    heads = torch.tensor(q).reshape(2, 9, 3, 4).transpose(1, 2), torch.tensor(k).reshape(2, 5, 3, 4).transpose(1, 2)
    tv = torch.tensor(v).reshape(2, 5, 3, 6).transpose(1, 2)
    tmask = None if mask is None else torch.tensor(mask.asnumpy())
    ref = F.scaled_dot_product_attention(*heads, tv, attn_mask=tmask).transpose(1, 2).reshape(2, 9, 18).numpy()
    outs = {}
    for layout in ("transpose", "slices"):
        kw = dict(mask=mask, chunk_size=4, heads_layout=layout)
        outs[layout] = multi_head_attention(T(q), T(k), T(v), 3, **kw).asnumpy()
        outs[layout + " jit"] = ms.jit(multi_head_attention)(T(q), T(k), T(v), 3, **kw).asnumpy()
    for name, out in outs.items():
        np.testing.assert_array_equal(out, outs["transpose"], err_msg=name)
    np.testing.assert_allclose(outs["transpose"], ref, atol=1e-5)


def test_attention_module_cross_attention_matches_manual():
    attn = Attention(16, context_dim=12, heads=2, dim_head=8)
    p = set_params(attn, {})
    x, c = randn(2, 5, 16), randn(2, 7, 12)
    tq = torch.tensor(x) @ torch.tensor(p["to_q.weight"]).T
    tk = torch.tensor(c) @ torch.tensor(p["to_k.weight"]).T
    tv = torch.tensor(c) @ torch.tensor(p["to_v.weight"]).T

    def heads(t):
        return t.reshape(2, -1, 2, 8).transpose(1, 2)

    o = F.scaled_dot_product_attention(heads(tq), heads(tk), heads(tv)).transpose(1, 2).reshape(2, 5, 16)
    ref = (o @ torch.tensor(p["to_out.0.weight"]).T + torch.tensor(p["to_out.0.bias"])).numpy()
    np.testing.assert_allclose(attn(T(x), T(c)).asnumpy(), ref, atol=1e-5)


def test_attention_graph_mode_equals_pynative():
    attn = Attention(16, heads=2, dim_head=8, chunk_size=3)
    set_params(attn, {})
    x = T(randn(2, 7, 16))
    eager = attn(x).asnumpy()
    graph = ms.jit(attn.construct)(x).asnumpy()
    np.testing.assert_allclose(graph, eager, atol=1e-6)


def test_in_graph_tells_graphs_from_eager_runs():
    """heads_layout="auto" and gelu pick their graph forms by in_graph(): False eagerly, True under jit."""
    from common.nn import in_graph

    def probe(x):
        return x + 1.0 if in_graph() else x - 1.0

    x = T(np.zeros(2, np.float32))
    assert not in_graph()
    np.testing.assert_array_equal(probe(x).asnumpy(), [-1.0, -1.0])
    np.testing.assert_array_equal(ms.jit(probe)(x).asnumpy(), [1.0, 1.0])


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_eager_and_graph_forms_match_torch(approximate):
    from common.nn import gelu
    x = randn(4, 33) * 3
    ref = F.gelu(torch.tensor(x), approximate=approximate).numpy()
    # gelu = 0.5 x (1 + erf(x / sqrt 2)) (tanh form: tanh(sqrt(2 / pi) (x + 0.044715 x^3)) for the erf).
    # torch's vectorised erf is Abramowitz-Stegun 7.1.26 (abs error <= 1.5e-7) in float32, its tanh and
    # our kernels within ~2 ulps (<= 4 u abs): times 0.5 |x|; plus in each side the rounded argument
    # (<= 5 roundings, damped by erf' or sech^2), 1 + erf and the product: <= 2.6 u |x|
    u = 2.0 ** -24
    atol = np.abs(x) * (0.5 * (1.5e-7 + 2 * 4 * u) + 2 * 2.6 * u)
    for got in (gelu(T(x), approximate).asnumpy(), ms.jit(gelu)(T(x), approximate).asnumpy()):
        assert np.all(np.abs(got - ref) <= atol), np.abs(got - ref).max()


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_gradients_match_torch_eagerly_and_in_graphs(approximate):
    """Graphs use a hand-written GELU backward (less memory in CPU training graphs)."""
    from common.nn import gelu
    x = randn(4, 33) * 3
    w = randn(4, 33)
    xt = torch.tensor(x, requires_grad=True)
    (F.gelu(xt, approximate=approximate) * torch.tensor(w)).sum().backward()

    def f(v):
        return (gelu(v, approximate) * T(w)).sum()

    np.testing.assert_allclose(ms.grad(f)(T(x)).asnumpy(), xt.grad.numpy(), atol=1e-5)
    np.testing.assert_allclose(ms.jit(ms.grad(f))(T(x)).asnumpy(), xt.grad.numpy(), atol=1e-5)


@pytest.mark.parametrize("masking", [None, "bool", "additive"])
def test_attention_gradients_match_torch_eagerly_and_in_graphs(masking):
    """Graphs use a hand-written softmax backward (less memory in CPU training graphs)."""
    q, k, v, g = randn(2, 3, 7, 8), randn(2, 3, 5, 8), randn(2, 3, 5, 4), randn(2, 3, 7, 4)
    mask = None
    if masking == "bool":
        mask = rng.random((2, 1, 7, 5)) > 0.3
        mask[..., 0] = True
    elif masking == "additive":
        mask = randn(2, 1, 7, 5).astype(np.float32)
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    (F.scaled_dot_product_attention(tq, tk, tv, attn_mask=None if mask is None else torch.tensor(mask))
     * torch.tensor(g)).sum().backward()
    ref = [t.grad.numpy() for t in (tq, tk, tv)]
    m = None if mask is None else T(mask)

    def f(a, b, c):
        return (scaled_dot_product_attention(a, b, c, m) * T(g)).sum()

    for fn in (ms.grad(f, (0, 1, 2)), ms.jit(ms.grad(f, (0, 1, 2)))):
        for got, want in zip(fn(T(q), T(k), T(v)), ref):
            np.testing.assert_allclose(got.asnumpy(), want, atol=1e-5)


def test_temporal_conv_matches_conv3d():
    x = randn(2, 8, 5, 3, 4)
    conv = TemporalConv(8, 6, 3)
    p = set_params(conv, {})
    ref = F.conv3d(torch.tensor(x), torch.tensor(p["weight"]), torch.tensor(p["bias"]), padding=(1, 0, 0)).numpy()
    np.testing.assert_allclose(conv(T(x)).asnumpy(), ref, atol=1e-5)
    with pytest.raises(ValueError, match="not of the form"):
        TemporalConv(8, 8, (3, 3, 3))


def test_geglu_feed_forward_matches_torch():
    ff = FeedForward(16, mult=4, glu=True)
    p = set_params(ff, {})
    x = torch.tensor(randn(2, 3, 16))
    h = x @ torch.tensor(p["net.0.proj.weight"]).T + torch.tensor(p["net.0.proj.bias"])
    a, g = h.chunk(2, dim=-1)
    ref = ((a * F.gelu(g)) @ torch.tensor(p["net.2.weight"]).T + torch.tensor(p["net.2.bias"])).numpy()
    np.testing.assert_allclose(ff(T(x.numpy())).asnumpy(), ref, atol=1e-5)


def _feed_forward_order_bound(params: dict, x: np.ndarray, glu: bool) -> np.ndarray:
    """Per-element bound on |ff(x) - ff(x)| between two runs that sum the GEMMs in other orders.

    The CPU GEMM kernels pick their blocking (and so the order of the K-sums) by row count and thread
    split, so a chunk of rows need not round like the whole batch (seen: 3.8e-6 on an AMD EPYC, 0 on an
    Intel Xeon). Two orders of a length-K dot product differ by at most 2*gamma_K*sum|a_i*b_i|,
    gamma_K ~ K*u (u = 2**-24; +1 for the bias add). The first layer's error passes through GELU
    (|gelu'| <= 1.13, |gelu(g)| <= |g|) and the GLU product, then through the second GEMM; the eager and
    graph GELU forms may differ by a few ulps of erf more (8u*|g| covers it).
    """
    u = 2.0 ** -24
    p = {k: v.astype(np.float64) for k, v in params.items()}
    w1, b1, w2, b2 = p["net.0.proj.weight"], p["net.0.proj.bias"], p["net.2.weight"], p["net.2.bias"]
    x = x.reshape(-1, x.shape[-1]).astype(np.float64)
    z = x @ w1.T + b1
    ez = 2 * (w1.shape[1] + 1) * u * (np.abs(x) @ np.abs(w1).T + np.abs(b1))
    if glu:
        (a, g), (ea, eg) = np.split(z, 2, axis=-1), np.split(ez, 2, axis=-1)
        h = np.abs(a) * np.abs(g)  # >= |a * gelu(g)|
        eh = np.abs(g) * ea + np.abs(a) * (1.13 * eg + 8 * u * np.abs(g)) + ea * eg
    else:
        h, eh = np.abs(z), 1.13 * ez + 8 * u * np.abs(z)
    ey = eh @ np.abs(w2).T + 2 * (w2.shape[1] + 1) * u * (h @ np.abs(w2).T + np.abs(b2))
    return ey.reshape(-1, w2.shape[0])


@pytest.mark.parametrize("glu", [True, False])
def test_feed_forward_chunks_give_the_whole_batch_numbers(glu):
    ff = FeedForward(16, dim_out=8, mult=4, glu=glu)
    params = set_params(ff, {})
    xn = randn(3, 7, 16)  # 21 tokens
    x = T(xn)
    whole = ff(x).asnumpy()
    bound = _feed_forward_order_bound(params, xn, glu).reshape(whole.shape)
    assert bound.max() < 1e-4 * np.abs(whole).max()  # ~K ulps of the sums: still tells a wrong chunk join
    for n in (1, 5, 21, 100):
        ff.chunk_size = n
        assert np.all(np.abs(ff(x).asnumpy() - whole) <= bound), n
    ff.chunk_size = 5
    graph = ms.jit(ff.construct)(x).asnumpy()
    assert np.all(np.abs(graph - whole) <= bound)


def test_set_feed_forward_chunk_size_reaches_every_feed_forward():
    st = SpatialTransformer(32, heads=2, dim_head=16, depth=2, context_dim=24)
    assert set_feed_forward_chunk_size(st, 64) == 2
    assert all(c.chunk_size == 64 for _, c in st.cells_and_names() if isinstance(c, FeedForward))
    assert set_feed_forward_chunk_size(st, np.int64(32)) == 2
    assert all(type(c.chunk_size) is int for _, c in st.cells_and_names() if isinstance(c, FeedForward))
    assert set_feed_forward_chunk_size(st, None) == 2
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="chunk_size must be a positive int"):
            set_feed_forward_chunk_size(st, bad)


def test_timestep_embedding_formula():
    t = np.array([0, 1, 500, 999])
    emb = timestep_embedding(T(t), 10).asnumpy()
    f = np.exp(-math.log(10000) * np.arange(5) / 5)
    ref = np.concatenate([np.cos(t[:, None] * f), np.sin(t[:, None] * f)], axis=1)
    np.testing.assert_allclose(emb, ref, atol=1e-4)
    odd = timestep_embedding(T(t), 7).asnumpy()
    assert odd.shape == (4, 7) and np.all(odd[:, -1] == 0)


def test_resblock_matches_torch_reference():
    rb = ResBlock(32, 24, 64, dims=2)
    p = {k: torch.tensor(v) for k, v in set_params(rb, {}).items()}
    x, e = randn(2, 32, 6, 5), randn(2, 24)
    tx = torch.tensor(x)
    h = F.conv2d(F.silu(F.group_norm(tx, 32, p["in_layers.0.weight"], p["in_layers.0.bias"], 1e-5)),
                 p["in_layers.2.weight"], p["in_layers.2.bias"], padding=1)
    h = h + (F.silu(torch.tensor(e)) @ p["emb_layers.1.weight"].T + p["emb_layers.1.bias"])[:, :, None, None]
    h = F.conv2d(F.silu(F.group_norm(h, 32, p["out_layers.0.weight"], p["out_layers.0.bias"], 1e-5)),
                 p["out_layers.3.weight"], p["out_layers.3.bias"], padding=1)
    ref = (F.conv2d(tx, p["skip_connection.weight"], p["skip_connection.bias"]) + h).numpy()
    np.testing.assert_allclose(rb(T(x), T(e)).asnumpy(), ref, atol=1e-4)


def test_temporal_resblock_matches_torch_conv3d_reference():
    """dims=3 (SVD time_stack): (3,1,1) convs, GroupNorm over (C/G, T, H, W), one embedding per frame."""
    rb = ResBlock(32, 16, 32, dims=3, kernel_size=[3, 1, 1])
    p = {k: torch.tensor(v) for k, v in set_params(rb, {}).items()}
    x, e = randn(1, 32, 4, 3, 3), randn(1, 4, 16)
    tx = torch.tensor(x)
    h = F.conv3d(F.silu(F.group_norm(tx, 32, p["in_layers.0.weight"], p["in_layers.0.bias"], 1e-5)),
                 p["in_layers.2.weight"], p["in_layers.2.bias"], padding=(1, 0, 0))
    emb = F.silu(torch.tensor(e)) @ p["emb_layers.1.weight"].T + p["emb_layers.1.bias"]  # (b, t, c)
    h = h + emb.permute(0, 2, 1)[..., None, None]
    h = F.conv3d(F.silu(F.group_norm(h, 32, p["out_layers.0.weight"], p["out_layers.0.bias"], 1e-5)),
                 p["out_layers.3.weight"], p["out_layers.3.bias"], padding=(1, 0, 0))
    np.testing.assert_allclose(rb(T(x), T(e)).asnumpy(), (tx + h).numpy(), atol=1e-4)


def test_upsample_is_torch_nearest():
    up = Upsample(32, use_conv=False)
    x = randn(1, 32, 3, 5)
    ref = F.interpolate(torch.tensor(x), scale_factor=2, mode="nearest").numpy()
    np.testing.assert_array_equal(up(T(x)).asnumpy(), ref)


@pytest.mark.parametrize("use_linear", [True, False])
def test_spatial_transformer_shapes_and_keys(use_linear):
    st = SpatialTransformer(32, heads=2, dim_head=16, depth=2, context_dim=24, use_linear=use_linear)
    names = [n for n, _ in st.parameters_and_names()]
    assert "transformer_blocks.1.attn2.to_k.weight" in names and "proj_in.weight" in names
    assert dict(st.parameters_and_names())["transformer_blocks.0.attn2.to_k.weight"].shape == (32, 24)
    set_params(st, {})
    y = st(T(randn(2, 32, 3, 4)), T(randn(2, 5, 24)))
    assert y.shape == (2, 32, 3, 4)


def test_frame_folds_are_the_original_rearranges():
    b, c, t, h, w = 2, 3, 4, 2, 5
    v = randn(b, c, t, h, w)
    frames = v.transpose(0, 2, 1, 3, 4).reshape(b * t, c, h, w)  # 'b c t h w -> (b t) c h w'
    np.testing.assert_array_equal(frames_to_batch(T(v)).asnumpy(), frames)
    np.testing.assert_array_equal(batch_to_frames(T(frames), t).asnumpy(), v)
    tokens = frames.reshape(b * t, c, h * w).transpose(0, 2, 1)  # 'n c h w -> n (h w) c'
    np.testing.assert_array_equal(image_to_tokens(T(frames)).asnumpy(), tokens)
    np.testing.assert_array_equal(tokens_to_image(T(tokens), h, w).asnumpy(), frames)
    time = v.transpose(0, 3, 4, 2, 1).reshape(b * h * w, t, c)  # 'b c t h w -> (b h w) t c'
    np.testing.assert_array_equal(batch_to_time_tokens(T(frames), t).asnumpy(), time)
    np.testing.assert_array_equal(video_to_time_tokens(T(v)).asnumpy(), time)
    np.testing.assert_array_equal(time_tokens_to_batch(T(time), t, h, w).asnumpy(), frames)
    space = frames.transpose(0, 2, 3, 1).reshape(b * t, h * w, c)  # '(b t) c h w -> (b t) (h w) c'
    np.testing.assert_array_equal(space_to_time_tokens(T(space), t).asnumpy(), time)
    np.testing.assert_array_equal(time_to_space_tokens(T(time), h * w).asnumpy(), space)
    e = randn(b, 6)
    np.testing.assert_array_equal(repeat_interleave(T(e), t).asnumpy(), np.repeat(e, t, axis=0))


class _Extra(ms.nn.Cell):
    """A layer taking ``extra``: adds it, so the test sees that the value was routed."""

    unet_args = ("extra",)

    def construct(self, x, extra):
        return x + extra


def _tiny_skeleton(**kw):
    def res(cin, cout):
        return ResBlock(cin, 128, cout)

    def attention(ch, heads, dim_head, depth):
        return SpatialTransformer(ch, heads, dim_head, depth=depth, context_dim=24, use_linear=True)

    args = dict(in_channels=4, model_channels=32, out_channels=3, channel_mult=(1, 2), num_res_blocks=1,
                attention_resolutions=(2,), res_block=res, attention=attention, num_head_channels=16)
    args.update(kw)
    net = UNetSkeleton(**args)
    set_params(net, {})
    return net


def test_unet_skeleton_layout_keys_and_heads():
    net = _tiny_skeleton(after_input_conv=("init_attn", lambda: _Extra()))
    names = {n for n, _ in net.parameters_and_names()}
    assert all(p.name == n for n, p in net.parameters_and_names())  # Parameter.name (save/export) agrees
    for key in ("time_embed.0.weight", "time_embed.2.bias", "input_blocks.0.0.weight",
                "input_blocks.1.0.in_layers.0.weight", "input_blocks.2.0.op.weight", "input_blocks.3.1.proj_in.weight",
                "middle_block.0.emb_layers.1.weight", "middle_block.1.transformer_blocks.0.attn2.to_k.weight",
                "middle_block.2.out_layers.3.weight", "output_blocks.0.0.skip_connection.weight",
                "output_blocks.1.2.conv.weight", "output_blocks.3.0.in_layers.2.weight", "out.0.weight", "out.2.bias"):
        assert key in names, key
    assert not any(n.startswith(("input_blocks.1.1", "output_blocks.2.1")) for n in names)  # no attention at ds 1
    net = _tiny_skeleton(wrap_down=False, num_head_channels=-1, num_heads=2, transformer_depth=(1, 2))
    names = {n for n, _ in net.parameters_and_names()}
    assert "input_blocks.2.op.weight" in names and "input_blocks.3.1.transformer_blocks.1.norm1.weight" in names
    assert net.input_blocks[3][1].transformer_blocks[0].attn1.heads == 2
    assert attention_heads(64, num_head_channels=16) == (4, 16) and attention_heads(64, num_heads=2) == (2, 32)


def test_unet_skeleton_routes_values_and_runs_in_graph_mode():
    net = _tiny_skeleton(temporal=lambda ch, heads, dim_head, depth: _Extra())
    net.set_train(False)
    assert net.input_blocks[3].routes == ((True, False, False), (False, True, False), (False, False, True))
    x, emb, ctx = T(randn(2, 4, 8, 8)), T(randn(2, 128)), T(randn(2, 5, 24))
    y = net.run_blocks(x, emb, ctx, 0.0)
    assert y.shape == (2, 3, 8, 8)
    assert np.abs(net.run_blocks(x, emb, ctx, 1.0).asnumpy() - y.asnumpy()).max() > 1e-4  # extra reached _Extra
    assert np.abs(net.run_blocks(x, emb * 2, ctx, 0.0).asnumpy() - y.asnumpy()).max() > 1e-4  # emb reached ResBlocks
    graph = ms.jit(net.run_blocks)
    np.testing.assert_allclose(graph(x, emb, ctx, 0.0).asnumpy(), y.asnumpy(), atol=1e-5)


def test_unet_layer_routes_are_checked():
    class Wrong(ms.nn.Cell):
        unet_args = ("context", "emb")

    with pytest.raises(ValueError, match="unet_args"):
        layer_route(Wrong())
    layer = SpatialTransformer(32, heads=2, dim_head=16, context_dim=24)
    assert layer_route(layer) == (False, True, False) and layer_route(Upsample(32)) == (False, False, False)
    x = T(randn(1, 32, 2, 2))
    np.testing.assert_array_equal(call_layer(layer, layer_route(layer), x, None, T(randn(1, 3, 24)), None).shape,
                                  (1, 32, 2, 2))
