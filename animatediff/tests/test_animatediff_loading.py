"""Weight loading in the original order, with every key accounted for (tiny files in the released formats)."""
import numpy as np
import pytest
from animatediff_ms import loading as L
from animatediff_ms.config import InferenceConfig, UNet3DConfig
from animatediff_ms.convert.ldm import ldm_unet_renames, ldm_unet_table, ours_unet_to_ldm
from animatediff_ms.convert.lora import LoRAError, merge_kohya_lora
from animatediff_ms.demo import TINY_UNET
from animatediff_ms.loading import build_text_encoder, build_unet, build_vae
from animatediff_ms.models import UNet3DConditionModel

from common.checkpoint import CheckpointMismatchError, match_state_dict


def params(net):
    return {k: p.asnumpy().copy() for k, p in net.parameters_and_names()}


def inference(tw, v):
    return InferenceConfig.load(tw["root"] / "configs" / "inference" / f"inference-v{v}.yaml")


@pytest.mark.parametrize("layers", [1, 2])
def test_ldm_unet_table_covers_every_2d_key_both_ways(layers):
    cfg = UNet3DConfig.from_files(dict(TINY_UNET, layers_per_block=layers), {"use_motion_module": False})
    shapes = {k: tuple(p.shape) for k, p in UNet3DConditionModel(cfg).parameters_and_names()}
    ldm = ours_unet_to_ldm(shapes, cfg)
    matched, report = match_state_dict(shapes, ldm, rename=ldm_unet_renames(cfg))
    assert report.ok and set(matched) == set(shapes) and set(report.renamed) == set(ldm)
    assert "input_blocks.0.0.weight" in ldm and "out.2.weight" in ldm and "middle_block.1.norm.weight" in ldm
    assert f"output_blocks.{layers}.1.conv.weight" in ldm  # level-0 upsampler: no attention in that level
    assert len({r[0] for r in ldm_unet_table(cfg)}) == len(ldm_unet_table(cfg))
    _, report = match_state_dict(shapes, {"input_blocks.99.0.in_layers.0.weight": (1,)}, rename=ldm_unet_renames(cfg))
    assert report.unexpected == ["input_blocks.99.0.in_layers.0.weight"]


def test_motion_module_ckpt_with_wrapper_and_position_tables(tiny_weights):
    tw = tiny_weights
    unet = build_unet(tw["sd"], inference(tw, 2).unet_additional_kwargs)
    before = params(unet)
    L.load_motion_module(unet, tw["root"] / "models" / "Motion_Module" / "mm_tiny_v2.ckpt")
    after, ref = params(unet), params(tw["pipes"][2].unet)
    motion = [k for k in after if L.is_motion_param(k)]
    assert motion and all(np.array_equal(after[k], ref[k]) for k in motion)
    assert all(np.array_equal(after[k], before[k]) for k in after if not L.is_motion_param(k))


@pytest.mark.parametrize("file,version,match", [("mm_tiny_v2.ckpt", 1, "mid-block"), ("mm_tiny_v2.ckpt", 3, "mid-block"),
                                                ("mm_tiny_v1.ckpt", 2, "no mid-block"),
                                                ("mm_tiny_v1.ckpt", 3, "v1 motion module")])
def test_motion_module_of_the_wrong_version_is_refused(tiny_weights, file, version, match):
    unet = build_unet(tiny_weights["sd"], inference(tiny_weights, version).unet_additional_kwargs)
    with pytest.raises(L.WeightsError, match=match):
        L.load_motion_module(unet, tiny_weights["root"] / "models" / "Motion_Module" / file)


def test_fp16_dreambooth_file_replaces_unet_vae_and_text_encoder(tiny_weights):
    tw = tiny_weights
    unet = build_unet(tw["sd"], inference(tw, 2).unet_additional_kwargs)
    vae, te = build_vae(tw["sd"]), build_text_encoder(tw["sd"])
    counts = L.load_dreambooth(unet, vae, te, tw["root"] / "models" / "DreamBooth_LoRA" / "tinyToon.safetensors")
    assert counts["ignored"] == 2  # betas, model_ema.decay
    db = tw["dreambooth"]
    for ours, ref in ((unet, db.unet), (vae, db.vae), (te, db.text_encoder)):
        got, want = params(ours), params(ref)
        keys = [k for k in want if not L.is_motion_param(k)]
        assert keys and all(got[k].dtype == np.float32 for k in keys)
        assert all(np.array_equal(got[k], want[k].astype(np.float16).astype(np.float32)) for k in keys)


def test_kohya_lora_merge_ignores_the_stored_alpha(tiny_weights):
    tw = tiny_weights
    unet = build_unet(tw["sd"], inference(tw, 2).unet_additional_kwargs)
    te = build_text_encoder(tw["sd"])
    w0u, w0t = params(unet), params(te)
    n = L.load_lora(unet, te, tw["root"] / "models" / "DreamBooth_LoRA" / "tinyStyle_lora.safetensors", 0.6)
    assert n == 6
    lora = tw["lora"]

    def delta(stem):
        up = lora[stem + ".lora_up.weight"].astype(np.float32)
        down = lora[stem + ".lora_down.weight"].astype(np.float32)
        return np.float32(0.6) * (up.reshape(up.shape[0], -1) @ down.reshape(down.shape[0], -1))

    k = "down_blocks.0.attentions.0.proj_in.weight"  # a 1x1 conv
    np.testing.assert_allclose(params(unet)[k], w0u[k] + delta("lora_unet_down_blocks_0_attentions_0_proj_in")[:, :, None, None],
                               rtol=1e-6, atol=1e-6)
    k = "up_blocks.1.attentions.1.transformer_blocks.0.ff.net.0.proj.weight"
    np.testing.assert_allclose(params(unet)[k], w0u[k] + delta(
        "lora_unet_up_blocks_1_attentions_1_transformer_blocks_0_ff_net_0_proj"), rtol=1e-6, atol=1e-6)
    k = "text_model.encoder.layers.1.self_attn.q_proj.weight"
    np.testing.assert_allclose(params(te)[k], w0t[k] + delta("lora_te_text_model_encoder_layers_1_self_attn_q_proj"),
                               rtol=1e-6, atol=1e-6)
    untouched = "up_blocks.1.attentions.0.proj_out.weight"
    assert np.array_equal(params(unet)[untouched], w0u[untouched])


def test_lora_that_does_not_fit_the_base_changes_nothing(tiny_weights):
    tw = tiny_weights
    unet = build_unet(tw["sd"], inference(tw, 2).unet_additional_kwargs)
    before = params(unet)
    with pytest.raises(LoRAError, match="wrongBase_lora.safetensors.*proj_in.*does not fit"):
        L.load_lora(unet, None, tw["root"] / "models" / "DreamBooth_LoRA" / "wrongBase_lora.safetensors", 0.8)
    with pytest.raises(LoRAError, match="names no layer"):
        merge_kohya_lora({"unet": unet}, {"lora_unet_down_blocks_0_nowhere.lora_down.weight": np.zeros((2, 4)),
                                          "lora_unet_down_blocks_0_nowhere.lora_up.weight": np.zeros((4, 2))}, 1.0)
    assert all(np.array_equal(v, before[k]) for k, v in params(unet).items())


def test_domain_adapter_and_motion_lora(tiny_weights):
    tw = tiny_weights
    unet = build_unet(tw["sd"], inference(tw, 2).unet_additional_kwargs)
    L.load_motion_module(unet, tw["root"] / "models" / "Motion_Module" / "mm_tiny_v2.ckpt")
    w0 = params(unet)
    L.load_domain_adapter(unet, tw["root"] / "models" / "Motion_Module" / "v3_tiny_adapter.ckpt", 0.8)
    L.load_motion_lora(unet, tw["root"] / "models" / "MotionLoRA" / "v2_lora_TinyZoom.ckpt", 0.5)
    w1 = params(unet)
    ad, ml = tw["adapter"], tw["mlora"]
    base = "down_blocks.0.attentions.0.transformer_blocks.0.attn2."
    np.testing.assert_allclose(w1[base + "to_out.0.weight"], w0[base + "to_out.0.weight"] + np.float32(0.8) * (
        ad[base + "processor.to_out_lora.up.weight"] @ ad[base + "processor.to_out_lora.down.weight"]), atol=1e-6)
    base = "mid_block.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.1."
    np.testing.assert_allclose(w1[base + "to_v.weight"], w0[base + "to_v.weight"] + np.float32(0.5) * (
        ml[base + "processor.to_v_lora.up.weight"] @ ml[base + "processor.to_v_lora.down.weight"]), atol=1e-6)
    changed = {k for k in w1 if not np.array_equal(w1[k], w0[k])}
    assert len(changed) == (len(ad) + len(ml)) // 2
    with pytest.raises(LoRAError, match="outside the motion_modules"):
        L.load_motion_lora(unet, tw["root"] / "models" / "Motion_Module" / "v3_tiny_adapter.ckpt", 1.0)


def test_missing_and_mismatched_files_name_the_fault(tiny_weights, tmp_path):
    tw = tiny_weights
    unet = build_unet(tw["sd"], inference(tw, 2).unet_additional_kwargs)
    with pytest.raises(L.WeightsError, match="motion_module: file not found: .*nope.ckpt"):
        L.load_weights(unet, motion_module_path=str(tmp_path / "nope.ckpt"))
    with pytest.raises(L.WeightsError, match="no 'motion_modules.' keys"):
        L.load_motion_module(unet, tw["root"] / "models" / "DreamBooth_LoRA" / "tinyToon.safetensors")
    sd = L.read_weights(tw["sd"] / "unet", "unet")
    sd["conv_in.weight"] = np.zeros((8, 4, 3, 3), np.float32)
    with pytest.raises(CheckpointMismatchError, match=r"'conv_in.weight': file \[8, 4, 3, 3\] vs model"):
        L.load_unet_2d(unet, sd, "unet")
    del sd["conv_in.weight"]
    with pytest.raises(CheckpointMismatchError, match="missing from the file, e.g. 'conv_in.weight'"):
        L.load_unet_2d(unet, sd, "unet")
