"""Fixtures: tiny random AnimateDiff weights written in the released file formats (no downloads).

``tiny_weights`` (session): a project-like folder with
``models/StableDiffusion/tiny-sd`` (diffusers folder: unet/vae/text_encoder/tokenizer), a v1-layout and a
v2-layout motion module (``torch.save``; the v2 one wrapped as ``{"state_dict": ...}`` with an
``animatediff_config`` entry), an fp16 LDM single file, an fp16 kohya LoRA, a MotionLoRA and a domain
adapter, plus the three inference configs. torch is used only to write the ``.ckpt`` files.
"""
import json
import shutil
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
import torch
from animatediff_ms.config import InferenceConfig
from animatediff_ms.convert.ldm import ldm_vae_to_diffusers, ours_unet_to_ldm
from animatediff_ms.demo import TINY_TEXT, TINY_UNET, TINY_VAE, tiny_random_pipeline
from animatediff_ms.loading import is_motion_param
from safetensors.numpy import save_file

PROJECT = Path(__file__).resolve().parents[1]

if ms.get_context("device_target") == "CPU":
    ms.runtime.launch_blocking()  # synchronous launch: the tiny models' PyNative calls are faster; same numbers


def state(net) -> dict:
    return {k: p.asnumpy().copy() for k, p in net.parameters_and_names()}


def torch_save(obj, path):
    def conv(o):
        if isinstance(o, dict):
            return {k: conv(v) for k, v in o.items()}
        return torch.from_numpy(np.ascontiguousarray(o)) if isinstance(o, np.ndarray) else o
    torch.save(conv(obj), path)


def write_tokenizer(tok, folder: Path):
    folder.mkdir(parents=True)
    (folder / "vocab.json").write_text(json.dumps(tok.vocab))
    ranks = sorted(tok.bpe.ranks.items(), key=lambda kv: kv[1])
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(f"{a} {b}" for (a, b), _ in ranks) + "\n")
    (folder / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
         "unk_token": "<|endoftext|>"}))


def write_diffusers_folder(pipe, folder: Path):
    """A diffusers SD folder (diffusers-0.11 / transformers-4.25 names) holding the pipeline's 2-D weights."""
    (folder / "unet").mkdir(parents=True)
    (folder / "unet" / "config.json").write_text(json.dumps(TINY_UNET))
    save_file({k: v for k, v in state(pipe.unet).items() if not is_motion_param(k)},
              str(folder / "unet" / "diffusion_pytorch_model.safetensors"))
    (folder / "vae").mkdir()
    ch = [TINY_VAE["ch"] * m for m in TINY_VAE["ch_mult"]]
    (folder / "vae" / "config.json").write_text(json.dumps(
        {"_class_name": "AutoencoderKL", "block_out_channels": ch, "down_block_types": ["DownEncoderBlock2D"] * 4,
         "up_block_types": ["UpDecoderBlock2D"] * 4, "in_channels": 3, "out_channels": 3, "latent_channels": 4,
         "layers_per_block": 1, "norm_num_groups": 32, "act_fn": "silu", "sample_size": 64}))
    save_file(ldm_vae_to_diffusers(state(pipe.vae), 4), str(folder / "vae" / "diffusion_pytorch_model.safetensors"))
    (folder / "text_encoder").mkdir()
    (folder / "text_encoder" / "config.json").write_text(json.dumps(
        dict(TINY_TEXT, vocab_size=len(pipe.tokenizer.vocab), architectures=["CLIPTextModel"])))
    te = state(pipe.text_encoder)
    te["text_model.embeddings.position_ids"] = np.arange(77, dtype=np.int64)[None]
    save_file(te, str(folder / "text_encoder" / "model.safetensors"))
    write_tokenizer(pipe.tokenizer, folder / "tokenizer")
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))


def write_ldm_file(pipe, path: Path, dtype=np.float16):
    """An SD single-file checkpoint (LDM names, ``dtype``) of the pipeline's 2-D weights + schedule buffers."""
    sd = {"model.diffusion_model." + k: v for k, v in
          ours_unet_to_ldm({k: v for k, v in state(pipe.unet).items() if not is_motion_param(k)}, pipe.unet.cfg).items()}
    sd.update({"first_stage_model." + k: v for k, v in state(pipe.vae).items()})
    sd.update({"cond_stage_model.transformer." + k: v for k, v in state(pipe.text_encoder).items()})
    sd = {k: v.astype(dtype) for k, v in sd.items()}
    sd["cond_stage_model.transformer.text_model.embeddings.position_ids"] = np.arange(77, dtype=np.int64)[None]
    sd["betas"] = np.linspace(1e-4, 2e-2, 1000).astype(dtype)
    sd["model_ema.decay"] = np.array(0.9999, dtype)
    save_file(sd, str(path))


def motion_state(pipe, pe_len: int) -> dict:
    sd = {k: v for k, v in state(pipe.unet).items() if is_motion_param(k)}
    for k in list(sd):
        if k.endswith("attention_blocks.0.to_q.weight") or k.endswith("attention_blocks.1.to_q.weight"):
            base = k[: -len("to_q.weight")]
            sd[base + "pos_encoder.pe"] = np.zeros((1, pe_len, sd[k].shape[0]), np.float32)
    return sd


def lora_pair(rng, out_f, in_f, rank=2, conv=False):
    up = (rng.standard_normal((out_f, rank)) * 0.1).astype(np.float32)
    down = (rng.standard_normal((rank, in_f)) * 0.1).astype(np.float32)
    if conv:
        up, down = up[:, :, None, None], down[:, :, None, None]
    return up, down


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    root = tmp_path_factory.mktemp("animatediff_tiny")
    shutil.copytree(PROJECT / "configs" / "inference", root / "configs" / "inference")
    inf = {v: InferenceConfig.load(root / "configs" / "inference" / f"inference-v{v}.yaml") for v in (1, 2, 3)}
    pipes = {v: tiny_random_pipeline(inf[v], seed=v) for v in (1, 2)}
    models = root / "models"
    write_diffusers_folder(pipes[2], models / "StableDiffusion" / "tiny-sd")
    (models / "Motion_Module").mkdir(parents=True)
    torch_save(motion_state(pipes[1], 24), models / "Motion_Module" / "mm_tiny_v1.ckpt")
    torch_save({"state_dict": motion_state(pipes[2], 32), "animatediff_config": {"version": "v2"}},
               models / "Motion_Module" / "mm_tiny_v2.ckpt")
    (models / "DreamBooth_LoRA").mkdir()
    db = tiny_random_pipeline(inf[2], seed=11)
    write_ldm_file(db, models / "DreamBooth_LoRA" / "tinyToon.safetensors")
    rng = np.random.default_rng(5)
    lora = {}
    for name, (o, i, conv) in {"lora_unet_down_blocks_0_attentions_0_proj_in": (32, 32, True),
                               "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_k": (32, 32, False),
                               "lora_unet_up_blocks_3_attentions_1_transformer_blocks_0_attn1_to_out_0": (32, 32, False),
                               "lora_unet_up_blocks_1_attentions_1_transformer_blocks_0_ff_net_0_proj": (256, 32, False),
                               "lora_te_text_model_encoder_layers_1_self_attn_q_proj": (32, 32, False),
                               "lora_te_text_model_encoder_layers_0_mlp_fc1": (64, 32, False)}.items():
        up, down = lora_pair(rng, o, i, conv=conv)
        lora[f"{name}.lora_up.weight"], lora[f"{name}.lora_down.weight"] = up.astype(np.float16), down.astype(np.float16)
        lora[f"{name}.alpha"] = np.array(1.0, np.float16)
    save_file(lora, str(models / "DreamBooth_LoRA" / "tinyStyle_lora.safetensors"))
    bad = dict(lora)
    bad["lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight"] = np.zeros((48, 2, 1, 1), np.float16)
    save_file(bad, str(models / "DreamBooth_LoRA" / "wrongBase_lora.safetensors"))
    (models / "MotionLoRA").mkdir()
    mlora = {}
    for blk in ("down_blocks.1.motion_modules.0", "mid_block.motion_modules.0", "up_blocks.2.motion_modules.1"):
        for a in (0, 1):
            for proj in ("to_q", "to_v", "to_out"):
                up, down = lora_pair(rng, 32, 32)
                base = f"{blk}.temporal_transformer.transformer_blocks.0.attention_blocks.{a}.processor.{proj}_lora"
                mlora[base + ".up.weight"], mlora[base + ".down.weight"] = up, down
    torch_save({"state_dict": mlora}, models / "MotionLoRA" / "v2_lora_TinyZoom.ckpt")
    adapter = {}
    for blk in ("down_blocks.0.attentions.0", "up_blocks.3.attentions.1"):
        for attn, kv_in in (("attn1", 32), ("attn2", 32)):
            for proj in ("to_q", "to_k", "to_out"):
                i = kv_in if proj == "to_k" else 32
                up, down = lora_pair(rng, 32, i)
                base = f"{blk}.transformer_blocks.0.{attn}.processor.{proj}_lora"
                adapter[base + ".up.weight"], adapter[base + ".down.weight"] = up, down
    torch_save(adapter, models / "Motion_Module" / "v3_tiny_adapter.ckpt")
    return {"root": root, "sd": models / "StableDiffusion" / "tiny-sd", "pipes": pipes, "dreambooth": db,
            "lora": lora, "mlora": mlora, "adapter": adapter}
