"""The inflated UNet's own behaviour (golden parity is in common/tests/test_golden.py)."""
import mindspore as ms
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from animatediff_ms.config import ConfigError, InferenceConfig, MotionModuleConfig, UNet3DConfig
from animatediff_ms.demo import TINY_UNET, tiny_random_pipeline
from animatediff_ms.models import UNet3DConditionModel, Upsample3D, VanillaTemporalModule, VideoGroupNorm
from animatediff_ms.random import torch_randn

RNG = np.random.default_rng(0)
PROJECT = __import__("pathlib").Path(__file__).resolve().parents[1]


def kwargs(v):
    return yaml.safe_load((PROJECT / "configs" / "inference" / f"inference-v{v}.yaml").read_text())["unet_additional_kwargs"]


@pytest.mark.parametrize("inflated", [True, False])
def test_video_group_norm_per_frame_or_across_frames(inflated):
    b, c, f, h, w = 2, 64, 3, 4, 5
    x = RNG.standard_normal((b, c, f, h, w)).astype(np.float32) * 2 + 0.5
    gn = VideoGroupNorm(32, c, 1e-5, inflated)
    wt, bs = RNG.standard_normal(c).astype(np.float32), RNG.standard_normal(c).astype(np.float32)
    gn.weight.set_data(ms.Tensor(wt))
    gn.bias.set_data(ms.Tensor(bs))
    folded = x.transpose(0, 2, 1, 3, 4).reshape(b * f, c, h, w)  # our (b*f, c, h, w) layout
    ours = gn(ms.Tensor(folded), f).asnumpy().reshape(b, f, c, h, w).transpose(0, 2, 1, 3, 4)
    tx = torch.tensor(x)
    if inflated:  # InflatedGroupNorm: (b f) c h w
        ref = F.group_norm(tx.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w), 32, torch.tensor(wt), torch.tensor(bs),
                           1e-5).reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)
    else:  # nn.GroupNorm on the 5-D tensor: statistics over (c/G, f, h, w)
        ref = F.group_norm(tx, 32, torch.tensor(wt), torch.tensor(bs), 1e-5)
    np.testing.assert_allclose(ours, ref.numpy(), atol=2e-5)


@pytest.mark.parametrize("size", [(5, 9), (3, 3), (8, 12)])
def test_upsample_to_the_skip_size_is_torch_nearest(size):
    x = RNG.standard_normal((2, 32, 3, 5)).astype(np.float32)
    up = Upsample3D(32)
    ref = F.conv2d(F.interpolate(torch.tensor(x), size=size, mode="nearest"), torch.tensor(up.conv.weight.asnumpy()),
                   torch.tensor(up.conv.bias.asnumpy()), padding=1)
    np.testing.assert_allclose(up(ms.Tensor(x), size).asnumpy(), ref.numpy(), atol=1e-5)


def motion_module(pe: bool):
    ms.set_seed(1)
    mm = VanillaTemporalModule(32, MotionModuleConfig(num_attention_heads=4, num_transformer_block=1,
                                                      temporal_position_encoding=pe, zero_initialize=False))
    return mm


@pytest.mark.parametrize("pe", [True, False])
def test_motion_module_mixes_frames_only_per_pixel(pe):
    b, f, c, h, w = 1, 4, 32, 3, 3
    x = RNG.standard_normal((b * f, c, h, w)).astype(np.float32)
    mm = motion_module(pe)
    y = mm(ms.Tensor(x), f).asnumpy()
    # permuting pixels commutes with the module (attention runs along frames, per pixel) ...
    perm = RNG.permutation(h * w)
    xp = x.reshape(b * f, c, h * w)[:, :, perm].reshape(x.shape)
    yp = mm(ms.Tensor(xp), f).asnumpy()
    np.testing.assert_allclose(yp, y.reshape(b * f, c, h * w)[:, :, perm].reshape(y.shape), atol=2e-5)
    # ... permuting frames does too, unless the sinusoidal frame positions are added
    fp = [2, 0, 3, 1]
    yf = mm(ms.Tensor(x.reshape(f, c, h, w)[fp]), f).asnumpy()
    assert np.allclose(yf, y.reshape(f, c, h, w)[fp], atol=2e-5) == (not pe)


def test_unet_runs_on_latents_not_divisible_by_8_and_has_the_original_layout():
    cfg = UNet3DConfig.from_files(dict(TINY_UNET, cross_attention_dim=16), kwargs(2))
    net = UNet3DConditionModel(cfg)
    names = [k for k, _ in net.parameters_and_names()]
    assert "mid_block.motion_modules.0.temporal_transformer.proj_in.weight" in names
    assert "up_blocks.3.motion_modules.1.temporal_transformer.transformer_blocks.0.ff_norm.weight" in names
    assert not any(k.startswith("down_blocks.3.attentions") or k.startswith("up_blocks.0.attentions") for k in names)
    x = ms.Tensor(RNG.standard_normal((1, 4, 2, 12, 20)).astype(np.float32))  # 12 -> 6 -> 3 -> 2 -> 3 -> 6 -> 12
    out = net(x, ms.Tensor(np.array([500])), ms.Tensor(RNG.standard_normal((1, 5, 16)).astype(np.float32)))
    assert out.shape == (1, 4, 2, 12, 20) and np.isfinite(out.asnumpy()).all()


def test_motion_modules_placed_by_resolution():
    cfg = UNet3DConfig.from_files(TINY_UNET, dict(kwargs(1), motion_module_resolutions=[1, 4]))
    names = {k.split(".motion_modules")[0] for k, _ in UNet3DConditionModel(cfg).parameters_and_names()
             if "motion_modules" in k}
    assert names == {"down_blocks.0", "down_blocks.2", "up_blocks.1", "up_blocks.3"}


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="unet_additional_kwargs: use_fancy_norm: unknown key"):
        UNet3DConfig.from_files(TINY_UNET, dict(kwargs(2), use_fancy_norm=True))
    with pytest.raises(ConfigError, match="motion_module_type"):
        UNet3DConfig.from_files(TINY_UNET, dict(kwargs(2), motion_module_type="Conv"))
    with pytest.raises(ConfigError, match="attention_block_types"):
        UNet3DConfig.from_files(TINY_UNET, dict(kwargs(2), motion_module_kwargs=dict(
            kwargs(2)["motion_module_kwargs"], attention_block_types=["Temporal_Cross"])))
    with pytest.raises(ConfigError, match="block_out_channels: must have 4 entries"):
        UNet3DConfig.from_files(dict(TINY_UNET, block_out_channels=[32, 32, 32]), kwargs(2))


def _box_muller_atol(z: np.ndarray) -> np.ndarray:
    """Per element bound on |torch_randn - torch.randn| (float32), from the Box-Muller pair radius r.

    Each side: z = r cos(theta) (or sin), r = sqrt(-2 ln u1), theta = float32(2 pi) * u2. Its log and
    cos/sin within k ulps (torch's AVX2 path: Sleef u10, k = 1; NumPy's SIMD float32: k <= 4), the
    sqrt, theta (2 roundings, abs <= 4 pi u) and the product rounded: |dz| <= r u (3 k + 2 + 4 pi).
    Both sides: r u (3 + 12 + 4 + 8 pi) = 44.2 r u (<= 1.5e-5 at r = sqrt(-2 ln 2**-24) = 5.8)."""
    flat = z.reshape(-1).astype(np.float64)
    n = flat.size
    r = np.empty(n)
    body = n - n % 16  # blocks of 16: element j and j + 8 share one pair; a ragged end redraws the last 16
    pairs = flat[:body].reshape(-1, 2, 8)
    r[:body] = np.tile(np.hypot(pairs[:, 0], pairs[:, 1]), 2).reshape(-1)
    if n % 16:
        last = flat[n - 16:].reshape(2, 8)
        r[n - 16:] = np.tile(np.hypot(last[0], last[1]), 2)
    return (44.2 * 2.0 ** -24 * r).reshape(z.shape)


def test_pipeline_checks_and_seed_noise_like_animate_py():
    pipe = tiny_random_pipeline(InferenceConfig.load(PROJECT / "configs" / "inference" / "inference-v3.yaml"))
    with pytest.raises(ValueError, match="multiples of 8"):
        pipe.check_inputs("x", 60, 64, 8, 4)
    with pytest.raises(ValueError, match="exceed"):
        pipe.check_inputs("x", 64, 64, 25, 4)
    lat, seed = pipe.prepare_latents(pipe.latent_shape(8, 64, 64), 12192490710448890259)
    torch.manual_seed(12192490710448890259)
    ref = torch.randn(1, 4, 8, 8, 8).numpy()
    assert np.all(np.abs(lat - ref) <= _box_muller_atol(ref))  # float32 log, cos/sin by two libraries
    _, s2 = pipe.prepare_latents((1, 4, 2, 8, 8), -1)
    assert s2 >= 0


@pytest.mark.parametrize("shape", [(1, 4, 16, 8, 8), (3, 5, 7), (16,)])
def test_torch_randn_reproduced(shape):
    for seed in (0, 8893, 2 ** 63 + 5):
        torch.manual_seed(seed)
        ref = torch.randn(shape).numpy()
        assert np.all(np.abs(torch_randn(seed, shape) - ref) <= _box_muller_atol(ref))  # two libms
