"""SDXL motion module: parity with diffusers' ``AnimateDiffSDXLPipeline`` + ``MotionAdapter`` on a tiny random
SDXL (diffusers and transformers are the reference, in this test only).

The module fixture writes a tiny SDXL diffusers folder (``unet/ vae/ text_encoder/ text_encoder_2/ tokenizer/
tokenizer_2/``, safetensors, as ``save_pretrained`` writes them) and the diffusers motion adapter converted to
the released ``mm_sdxl_v10_beta.ckpt`` key layout (``temporal_transformer``, ``attention_blocks``, ``norms``,
``ff_norm``, ``pos_encoder.pe`` tables); our pipeline is built from those files and compared with the reference.

The tiny UNet keeps ``norm_num_groups: 32`` (SDXL's value): diffusers' ``UNetMotionModel`` gives its motion
modules the UNet's group count, the original sdxl branch always 32 (as we do), so the two agree only there.

Tolerances (float32, criterion max|ours - ref| <= tol * max(1, max|ref|)): the two implementations sum in
different orders (attention, GroupNorm, matmuls), so each op differs by a few float32 ulps (~1e-7 relative);
through the tiny networks (~40 layers) this stays near 1e-6 for one pass (measured: text embeddings 1.2e-6,
one UNet call 1.7e-6, decoded frames 2e-6), so 1e-4 (the golden single-pass tolerance) leaves a wide margin.
The 3-step DDIM loop with guidance 7.5 amplifies the eps difference by up to ~(1 + g) per step (measured
2.7e-5 absolute on latents of magnitude 12, i.e. 2.2e-6 relative): 1e-3, as the golden ``ddim_sample``.
"""
import json
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
import torch
import yaml
from animatediff_ms.config_sdxl import UNetSDXLConfig
from animatediff_ms.convert.motion_adapter import diffusers_adapter_to_released
from animatediff_ms.demo import tiny_tokenizer
from animatediff_ms.loading_sdxl import build_sdxl_pipeline, sdxl_motion_module_state_dict

from common.video_io import read_video_frames

PROJECT = Path(__file__).resolve().parents[1]
FRAMES, H, W, STEPS, GUIDANCE = 4, 32, 32, 3, 7.5
PROMPT, NEG = "a small red boat on a lake, sunset", "blurry"
SCHED = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
             steps_offset=1, clip_sample=False, set_alpha_to_one=False, timestep_spacing="leading")
ADDITIONAL = {"use_motion_module": True, "motion_module_resolutions": [1, 2, 4, 8], "motion_module_mid_block": False,
              "motion_module_type": "Vanilla",
              "motion_module_kwargs": {"num_attention_heads": 8, "num_transformer_block": 1,
                                       "attention_block_types": ["Temporal_Self", "Temporal_Self"],
                                       "temporal_position_encoding": True, "temporal_position_encoding_max_len": 32,
                                       "temporal_attention_dim_div": 1}}


def close(ours, ref, tol):
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    assert ours.shape == ref.shape
    err = np.abs(ours - ref).max()
    assert err <= tol * max(1.0, np.abs(ref).max()), f"max err {err:.3g} (max|ref| {np.abs(ref).max():.3g})"


def randomize(module, seed):
    """Give every constant parameter (zero biases, unit norms, zero-initialised projections) random values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.numel() and float(p.max() - p.min()) == 0.0:
                p.add_(0.1 * torch.randn(p.shape, generator=g))


def write_tokenizer(folder: Path, pad: str):
    tok = tiny_tokenizer()
    folder.mkdir(parents=True)
    (folder / "vocab.json").write_text(json.dumps(tok.vocab))
    ranks = sorted(tok.bpe.ranks.items(), key=lambda kv: kv[1])
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(f"{a} {b}" for (a, b), _ in ranks) + "\n")
    (folder / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": pad,
         "unk_token": "<|endoftext|>"}))
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 77, "pad_token": pad}))
    return len(tok.vocab)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from diffusers import (
        AnimateDiffSDXLPipeline,
        AutoencoderKL,
        DDIMScheduler,
        MotionAdapter,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    root = tmp_path_factory.mktemp("sdxl")
    folder = root / "tiny-sdxl"
    vocab = write_tokenizer(folder / "tokenizer", "<|endoftext|>")
    write_tokenizer(folder / "tokenizer_2", "!")
    torch.manual_seed(0)
    text = dict(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=3,
                max_position_embeddings=77, bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=vocab - 1)
    te1 = CLIPTextModel(CLIPTextConfig(**text, hidden_act="quick_gelu")).eval()
    te2 = CLIPTextModelWithProjection(CLIPTextConfig(**text, hidden_act="gelu", projection_dim=32)).eval()
    unet = UNet2DConditionModel(
        sample_size=16, block_out_channels=(32, 32, 64), layers_per_block=2, norm_num_groups=32,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 1, 2), attention_head_dim=(2, 4, 8), use_linear_projection=True,
        cross_attention_dim=64, addition_embed_type="text_time", addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=32 + 6 * 8)
    vae = AutoencoderKL(block_out_channels=(32, 64), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=8,
                        layers_per_block=1, sample_size=32, scaling_factor=0.13025)
    adapter = MotionAdapter(block_out_channels=(32, 32, 64), motion_layers_per_block=2, motion_num_attention_heads=8,
                            motion_norm_num_groups=32, motion_max_seq_length=32, use_motion_mid_block=False)
    for i, m in enumerate((te1, te2, unet, vae, adapter)):
        randomize(m, i)
    for name, m in (("text_encoder", te1), ("text_encoder_2", te2), ("unet", unet), ("vae", vae)):
        m.save_pretrained(folder / name)
    mm = root / "mm_sdxl_tiny.ckpt"
    torch.save(diffusers_adapter_to_released(adapter.state_dict()), mm)

    ref = AnimateDiffSDXLPipeline(
        vae=vae.eval(), text_encoder=te1, text_encoder_2=te2, tokenizer=CLIPTokenizer.from_pretrained(folder / "tokenizer"),
        tokenizer_2=CLIPTokenizer.from_pretrained(folder / "tokenizer_2"), unet=unet.eval(), motion_adapter=adapter,
        scheduler=DDIMScheduler(**SCHED))
    ref.set_progress_bar_config(disable=True)
    # diffusers 0.42's UNetMotionModel.from_unet2d copies every 2-D module but add_embedding (SDXL's text_time
    # MLP stays at its random initialisation); give the reference the SDXL UNet's weights as the folder has them.
    ref.unet.add_embedding.load_state_dict(unet.add_embedding.state_dict())
    ours = build_sdxl_pipeline(folder, ADDITIONAL, {k: v for k, v in SCHED.items() if k != "timestep_spacing"},
                               motion_module_path=mm)
    return ref, ours, folder, mm


def test_config_reads_the_diffusers_unet_config(world):
    _, ours, folder, _ = world
    cfg = ours.unet.cfg
    assert cfg.heads == [2, 4, 8] and cfg.depths == [1, 1, 2] and cfg.up_depths == [2, 1, 1]
    assert cfg.pooled_text_dim == 32 and cfg.norm_num_groups == 32
    assert [cfg.down_has_motion(i) for i in range(3)] == [True] * 3
    assert [cfg.up_has_motion(i) for i in range(3)] == [True] * 3
    assert UNetSDXLConfig.from_files(folder / "unet" / "config.json", ADDITIONAL) == cfg


def test_motion_module_file_accounts_for_every_key(world):
    _, ours, _, mm = world
    sd, pe_len = sdxl_motion_module_state_dict(mm)
    assert pe_len == 32
    motion = {k: tuple(p.shape) for k, p in ours.unet.parameters_and_names() if "motion_modules." in k}
    assert motion == {k: tuple(v.shape) for k, v in sd.items()}


def test_text_embeddings(world):
    ref, ours, _, _ = world
    with torch.no_grad():
        pe, npe, pooled, npooled = ref.encode_prompt(PROMPT, device="cpu", num_videos_per_prompt=1,
                                                     do_classifier_free_guidance=True, negative_prompt=NEG)
    emb, text_embeds = ours.encode_prompt_sdxl(PROMPT, NEG, True)
    close(emb.asnumpy(), torch.cat([npe, pe]).numpy(), 1e-4)
    close(text_embeds.asnumpy(), torch.cat([npooled, pooled]).numpy(), 1e-4)
    # no negative prompt: zeros (force_zeros_for_empty_prompt of the SDXL pipelines)
    emb0, te0 = ours.encode_prompt_sdxl(PROMPT, None, True)
    assert not emb0.asnumpy()[0].any() and not te0.asnumpy()[0].any()


def test_one_unet_call(world):
    ref, ours, _, _ = world
    rng = np.random.default_rng(0)
    b = 2
    x = rng.standard_normal((b, 4, FRAMES, 16, 16)).astype(np.float32)
    ehs = rng.standard_normal((b, 77, 64)).astype(np.float32)
    te = rng.standard_normal((b, 32)).astype(np.float32)
    ids = np.array([[32, 32, 0, 0, 32, 32], [64, 48, 4, 2, 32, 32]], np.float32)
    t = np.array([801, 17], np.int64)
    with torch.no_grad():
        want = ref.unet(torch.from_numpy(x), torch.from_numpy(t),
                        encoder_hidden_states=torch.from_numpy(ehs).repeat_interleave(FRAMES, 0),
                        added_cond_kwargs={"text_embeds": torch.from_numpy(te), "time_ids": torch.from_numpy(ids)}
                        ).sample.numpy()
    got = ours.unet(ms.Tensor(x), ms.Tensor(t), ms.Tensor(ehs), ms.Tensor(te), ms.Tensor(ids)).asnumpy()
    close(got, want, 1e-4)


def test_ddim_with_guidance_and_decoded_frames(world):
    ref, ours, _, _ = world
    latents = np.random.default_rng(1).standard_normal((1, 4, FRAMES, 16, 16)).astype(np.float32)
    seen = {}

    def grab(pipe, i, t, kw):
        seen["latents"] = kw["latents"].numpy().copy()
        return kw

    with torch.no_grad():
        frames = ref(PROMPT, negative_prompt=NEG, num_frames=FRAMES, height=H, width=W, num_inference_steps=STEPS,
                     guidance_scale=GUIDANCE, latents=torch.from_numpy(latents), output_type="np",
                     callback_on_step_end=grab).frames
    out = ours(PROMPT, negative_prompt=NEG, num_frames=FRAMES, height=H, width=W, num_inference_steps=STEPS,
               guidance_scale=GUIDANCE, latents=latents, progress=False)
    close(out.latents, seen["latents"], 1e-3)
    close(out.frames, np.asarray(frames, np.float32), 1e-4)


def _t2v():
    import importlib.util

    spec = importlib.util.spec_from_file_location("text_to_video", PROJECT / "text_to_video.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _prompt_config(path: Path, mm, **extra) -> Path:
    entry = dict(inference_config=str(PROJECT / "configs" / "inference" / "inference-sdxl.yaml"), motion_module=str(mm),
                 H=H, W=W, L=FRAMES, seed=[3], steps=2, guidance_scale=GUIDANCE, prompt=[PROMPT], n_prompt=[NEG])
    entry.update(extra)
    path.write_text(yaml.safe_dump([entry]))
    return path


@pytest.mark.slow
def test_text_to_video_runs_the_sdxl_folder(world, tmp_path, capsys):
    _, _, folder, mm = world
    cfg = _prompt_config(tmp_path / "sdxl.yaml", mm)
    rc = _t2v().main(["--config", str(cfg), "--pretrained_model_path", str(folder), "--output_dir",
                      str(tmp_path / "out"), "--no_progress", "--mode", "pynative"])
    assert rc == 0, capsys.readouterr().err
    (d,) = list((tmp_path / "out").iterdir())
    (gif,) = list((d / "sample").glob("*.gif"))
    frames = read_video_frames(gif)
    assert frames.shape == (FRAMES, H, W, 3) and frames.std() > 1


def test_sd15_files_refused_with_an_sdxl_folder(world, tmp_path, capsys):
    _, _, folder, mm = world
    cfg = _prompt_config(tmp_path / "bad.yaml", mm, lora_model_path=str(mm))
    rc = _t2v().main(["--config", str(cfg), "--pretrained_model_path", str(folder), "--output_dir", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "lora_model_path" in err[0] and "SDXL" in err[0]


def _converter():
    import importlib.util

    spec = importlib.util.spec_from_file_location("convert_weight", PROJECT / "tools" / "convert_weight.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_converter_takes_released_and_diffusers_motion_modules(world, tmp_path):
    from animatediff_ms.loading import read_weights
    from diffusers import MotionAdapter

    _, ours, folder, mm = world
    conv = _converter()
    out = tmp_path / "mm_ms.ckpt"
    assert conv.main(["--kind", "motion_module", "--src", str(mm), "--target", str(out),
                      "--pretrained_model_path", str(folder)]) == 0
    released = read_weights(out, "converted")
    motion = {k: p.asnumpy() for k, p in ours.unet.parameters_and_names() if "motion_modules." in k}
    assert set(released) == set(motion) and all(np.array_equal(released[k], motion[k]) for k in motion)
    # the same module as diffusers writes it (MotionAdapter.save_pretrained): renamed, then identical
    sd = {k: torch.from_numpy(v) for k, v in read_weights(mm, "mm").items() if "pos_encoder" not in k}
    adapter = MotionAdapter(block_out_channels=(32, 32, 64), motion_layers_per_block=2, motion_num_attention_heads=8,
                            motion_norm_num_groups=32, motion_max_seq_length=32, use_motion_mid_block=False)
    from diffusers.loaders.single_file_utils import convert_animatediff_checkpoint_to_diffusers

    adapter.load_state_dict(convert_animatediff_checkpoint_to_diffusers(sd), strict=False)
    adapter.save_pretrained(tmp_path / "adapter")
    out2 = tmp_path / "mm2_ms.ckpt"
    assert conv.main(["--kind", "motion_module", "--src", str(tmp_path / "adapter" / "diffusion_pytorch_model.safetensors"),
                      "--target", str(out2), "--pretrained_model_path", str(folder)]) == 0
    again = read_weights(out2, "converted")
    assert set(again) == set(motion) and all(np.array_equal(again[k], motion[k]) for k in motion)


@pytest.mark.slow
def test_sdxl_demo_config_runs_the_tiny_random_sdxl_pipeline(tmp_path, capsys):
    rc = _t2v().main(["--config", str(PROJECT / "configs" / "prompts" / "demo_sdxl.yaml"), "--output_dir",
                      str(tmp_path), "--steps", "2", "--L", "4", "--no_progress", "--mode", "pynative"])
    out = capsys.readouterr().out
    assert rc == 0 and "RANDOMLY INITIALISED" in out
    (d,) = list(tmp_path.iterdir())
    (gif,) = list((d / "sample").glob("*.gif"))
    frames = read_video_frames(gif)
    assert frames.shape == (4, 64, 64, 3) and frames.std() > 1


def test_the_originals_euler_sampler_is_our_ddim():
    """The sdxl branch samples with ``EulerDiscreteScheduler(timestep_spacing="leading", steps_offset=1)``. Without
    churn its step ``x~ += (sigma_next - sigma) eps`` on ``x~ = x / sqrt(alpha_bar)``, fed ``x~ / sqrt(sigma^2 + 1)``
    = x, is deterministic DDIM on the same timestep grid; its last step to sigma 0 is DDIM's with
    ``set_alpha_to_one`` and its initial ``noise * sqrt(sigma_max^2 + 1)`` is the unscaled noise in VP terms. So the
    shipped DDIM on ``inference-sdxl.yaml``'s betas gives the original's latents (float32 rounding apart)."""
    from diffusers import EulerDiscreteScheduler

    from common.schedulers.ddim import ddim_schedule_from_diffusers, sample_ddim
    from common.schedulers.denoiser import Denoiser

    kw = yaml.safe_load((PROJECT / "configs" / "inference" / "inference-sdxl.yaml").read_text())["noise_scheduler_kwargs"]
    noise = np.random.default_rng(2).standard_normal((1, 4, 2, 8, 8)).astype(np.float32)

    def eps(x, t):  # a smooth stand-in for the UNet, of x (VP scale) and the timestep
        return np.tanh(0.7 * x + np.sin(np.asarray(t, np.float64)[:, None, None, None, None] / 97.0)).astype(np.float32)

    # the original: EulerDiscreteScheduler(timestep_spacing='leading', steps_offset=1, **its 4 beta keys)
    ref = EulerDiscreteScheduler(timestep_spacing="leading", steps_offset=1,
                                 **{k: kw[k] for k in ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule")})
    ref.set_timesteps(10)
    x = torch.from_numpy(noise) * ref.init_noise_sigma
    for t in ref.timesteps:
        x_in = ref.scale_model_input(x, t)
        x = ref.step(torch.from_numpy(eps(x_in.numpy(), [float(t)])), t, x).prev_sample
    ours = sample_ddim(Denoiser(lambda x, t: eps(x, t), "eps"), noise, ddim_schedule_from_diffusers(kw, 10),
                       disable=True)
    close(ours, x.numpy(), 1e-5)


def _hf_to_open_clip(sd: dict) -> dict:
    """transformers CLIPTextModelWithProjection -> open_clip names (to write an sgm file in this test)."""
    out = {}
    names = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "self_attn.out_proj": "attn.out_proj", "mlp.fc1": "mlp.c_fc",
             "mlp.fc2": "mlp.c_proj"}
    for k, v in sd.items():
        k = k if k.startswith(("text_model.", "text_projection")) else "text_model." + k
        if k == "text_model.embeddings.token_embedding.weight":
            out["token_embedding.weight"] = v
        elif k == "text_model.embeddings.position_embedding.weight":
            out["positional_embedding"] = v
        elif k == "text_projection.weight":
            out["text_projection"] = np.ascontiguousarray(v.T)
        elif k.startswith("text_model.final_layer_norm."):
            out["ln_final." + k.rsplit(".", 1)[1]] = v
        elif ".self_attn.q_proj." in k:
            layer, kind = k.split(".")[3], k.rsplit(".", 1)[1]
            qkv = [sd_k for sd_k in (k, k.replace("q_proj", "k_proj"), k.replace("q_proj", "v_proj"))]
            out[f"transformer.resblocks.{layer}.attn.in_proj_{kind}"] = np.concatenate([sd[q] for q in qkv])
        elif ".self_attn.k_proj." in k or ".self_attn.v_proj." in k or k.endswith("position_ids"):
            continue
        else:
            layer, rest = k.split(".")[3], ".".join(k.split(".")[4:])
            for a, b in names.items():
                if rest.startswith(a + "."):
                    out[f"transformer.resblocks.{layer}.{b}.{rest[len(a) + 1:]}"] = v
    out["logit_scale"] = np.array(2.0, np.float32)
    return out


def test_sdxl_single_file_loads_as_diffusers_converts_it(world, tmp_path):
    """An sgm single file (written here from the tiny folder's weights x 1.5, fp16 as community files are) loads
    into the UNet, VAE and both text encoders exactly as diffusers' own single-file converters read it."""
    from animatediff_ms.convert.ldm import diffusers_vae_to_ldm, ours_unet_to_ldm
    from animatediff_ms.loading import read_weights
    from animatediff_ms.loading_sdxl import CLIP_TEXT_RENAMES, load_sdxl_single_file
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_open_clip_checkpoint
    from safetensors.numpy import save_file
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    from common.checkpoint import apply_rename

    ref, ours, folder, _ = world
    f = {s: {k: (1.5 * v).astype(np.float16) for k, v in read_weights(folder / s, s).items()}
         for s in ("unet", "vae", "text_encoder", "text_encoder_2")}
    sgm = {"model.diffusion_model." + k: v for k, v in ours_unet_to_ldm(f["unet"], ours.unet.cfg).items()}
    sgm.update({"first_stage_model." + k: v for k, v in diffusers_vae_to_ldm(f["vae"], 2).items()})
    sgm.update({"conditioner.embedders.0.transformer." + apply_rename(k, CLIP_TEXT_RENAMES): v
                for k, v in f["text_encoder"].items()})
    sgm.update({"conditioner.embedders.1.model." + k: v for k, v in _hf_to_open_clip(f["text_encoder_2"]).items()})
    sgm["alphas_cumprod"] = np.linspace(1, 0, 1000).astype(np.float32)
    path = tmp_path / "tiny_sdxl_community.safetensors"
    save_file(sgm, str(path))

    pipe = build_sdxl_pipeline(folder, ADDITIONAL, {k: v for k, v in SCHED.items() if k != "timestep_spacing"})
    n = load_sdxl_single_file(pipe, path)
    assert n["unet"] == len(f["unet"]) and n["text_encoder_2"] == len(f["text_encoder_2"])
    t = {k: torch.from_numpy(v.astype(np.float32)) for k, v in sgm.items()}
    want_unet = convert_ldm_unet_checkpoint(t, dict(ref.unet.config))
    got_unet = {k: p.asnumpy() for k, p in pipe.unet.parameters_and_names() if "motion_modules." not in k}
    assert set(got_unet) == set(want_unet)
    assert all(np.array_equal(got_unet[k], want_unet[k].numpy()) for k in got_unet)
    cfg2 = CLIPTextConfig.from_pretrained(folder / "text_encoder_2")
    want_te2 = convert_open_clip_checkpoint(CLIPTextModelWithProjection(cfg2), t, prefix="conditioner.embedders.1.model.")
    got_te2 = {k: p.asnumpy() for k, p in pipe.text_encoder_2.parameters_and_names()}
    assert set(got_te2) == set(want_te2)
    assert all(np.array_equal(got_te2[k], want_te2[k].numpy()) for k in got_te2)
    got_vae = {k: p.asnumpy() for k, p in pipe.vae.parameters_and_names()}  # LDM names = first_stage_model's
    assert set(got_vae) == {k[len("first_stage_model."):] for k in sgm if k.startswith("first_stage_model.")}
    assert all(np.array_equal(v, sgm["first_stage_model." + k].astype(np.float32).reshape(v.shape))
               for k, v in got_vae.items())
    # the converter checks the same file against the SDXL models of the folder and writes it unchanged
    assert _converter().main(["--kind", "dreambooth", "--src", str(path), "--target", str(tmp_path / "x_ms.ckpt"),
                              "--pretrained_model_path", str(folder)]) == 0
    te1 = {apply_rename(k, CLIP_TEXT_RENAMES): v for k, v in f["text_encoder"].items()}
    got_te1 = {k: p.asnumpy() for k, p in pipe.text_encoder.parameters_and_names()}
    assert all(np.array_equal(got_te1[k], te1[k].astype(np.float32)) for k in got_te1)


@pytest.mark.slow
def test_sdxl_unet_graph_mode_equals_pynative():
    """The SDXL UNet compiles as one graph (``ms.jit``, what ``--mode graph`` runs) and computes what PyNative does
    (same kernels; 1e-5 absolute allows the graph compiler's fused reductions). The demo's UNet (one layer per
    block) keeps the compilation short."""
    from animatediff_ms.config import InferenceConfig
    from animatediff_ms.demo import tiny_random_sdxl_pipeline

    unet = tiny_random_sdxl_pipeline(InferenceConfig.load(PROJECT / "configs" / "inference" / "inference-sdxl.yaml")).unet
    rng = np.random.default_rng(5)
    args = (ms.Tensor(rng.standard_normal((2, 4, 2, 16, 16)).astype(np.float32)), ms.Tensor(np.array([500], np.int64)),
            ms.Tensor(rng.standard_normal((2, 77, 64)).astype(np.float32)),
            ms.Tensor(rng.standard_normal((2, 32)).astype(np.float32)),
            ms.Tensor(np.array([[32, 32, 0, 0, 32, 32]] * 2, np.float32)))
    np.testing.assert_allclose(ms.jit(unet.construct)(*args).asnumpy(), unet(*args).asnumpy(), atol=1e-5)


@pytest.mark.slow
def test_text_to_video_reads_an_sdxl_branch_prompt_file(world, tmp_path, capsys):
    """The original sdxl branch's prompt-file schema (one mapping, ``base_model_path`` / ``motion_module_path``)."""
    _, _, folder, mm = world
    cfg = tmp_path / "1-original_sdxl.yaml"
    cfg.write_text(yaml.safe_dump({"base_model_path": str(folder), "motion_module_path": str(mm), "seed": 3,
                                   "guidance_scale": 8.5, "steps": 2, "prompt": [PROMPT], "n_prompt": [""]}))
    rc = _t2v().main(["--config", str(cfg), "--output_dir", str(tmp_path / "out"), "--H", str(H), "--W", str(W),
                      "--L", str(FRAMES), "--no_progress", "--mode", "pynative"])
    assert rc == 0, capsys.readouterr().err
    (d,) = list((tmp_path / "out").iterdir())
    (gif,) = list((d / "sample").glob("*.gif"))
    assert read_video_frames(gif).shape == (FRAMES, H, W, 3)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"motion_module_path": str(mm), "prompt": ["x"], "xformers": True}))
    assert _t2v().main(["--config", str(bad), "--output_dir", str(tmp_path / "o2")]) == 2
    assert "xformers: unknown key of an sdxl-branch prompt file" in capsys.readouterr().err
