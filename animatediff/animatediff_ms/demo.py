"""A tiny randomly initialised AnimateDiff for the demo and the end-to-end tests (no weight files needed).

Same code path as the real model, only the sizes are small: UNet (32, 32, 32, 32) channels, one layer
per block, cross-attention width 32; a 4-level VAE of width 32 (8 pixels per latent, as SD); a 2-layer
CLIP text encoder of width 32; the tokenizer is CLIP's BPE cut to its first ``TOKENIZER_MERGES`` merges
(built from the vocabulary shipped in ``common/clip/assets``). The motion-module layout comes from the
inference config, so v1/v2/v3 layouts can all be exercised. The videos are noise-like: the weights are random.
"""
from __future__ import annotations

import gzip

import mindspore as ms
import numpy as np

from common.clip.bpe import bytes_to_unicode
from common.clip.hf_clip import CLIPTextConfig, CLIPTextModel
from common.clip.hf_tokenizer import CLIPTokenizer
from common.clip.tokenizer import DEFAULT_BPE_PATH
from common.vae import AutoencoderKL

from .config import InferenceConfig, UNet3DConfig
from .models import UNet3DConditionModel
from .pipeline import AnimationPipeline

TOKENIZER_MERGES = 1000

#: ``unet/config.json`` of the tiny UNet (SD-1.5 schema, small sizes).
TINY_UNET = {
    "_class_name": "UNet2DConditionModel", "act_fn": "silu", "attention_head_dim": 8,
    "block_out_channels": [32, 32, 32, 32], "center_input_sample": False, "cross_attention_dim": 32,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 4, "layers_per_block": 1,
    "mid_block_scale_factor": 1, "norm_eps": 1e-5, "norm_num_groups": 32, "out_channels": 4, "sample_size": 16,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}
#: LDM ``ddconfig`` of the tiny VAE (4 levels: 8 pixels per latent).
TINY_VAE = dict(double_z=True, z_channels=4, resolution=64, in_channels=3, out_ch=3, ch=32, ch_mult=[1, 1, 1, 1],
                num_res_blocks=1, attn_resolutions=[])
#: ``text_encoder/config.json`` fields of the tiny CLIP text model.
TINY_TEXT = dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2,
                 max_position_embeddings=77, hidden_act="quick_gelu")


def tiny_tokenizer(num_merges: int = TOKENIZER_MERGES) -> CLIPTokenizer:
    """CLIP BPE with only the first ``num_merges`` merges (a valid CLIP tokenizer, small vocabulary)."""
    lines = gzip.open(DEFAULT_BPE_PATH).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1:1 + num_merges]]
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + ["<|startoftext|>",
                                                                                      "<|endoftext|>"]
    return CLIPTokenizer({t: i for i, t in enumerate(vocab)}, merges, source="tiny demo tokenizer")


def tiny_random_pipeline(inference_config: InferenceConfig, seed: int = 0, jit: bool = False) -> AnimationPipeline:
    """All four models with random weights (``seed``); motion-module ``proj_out`` randomised too, so the
    motion modules act (the original zero-initialises it for training)."""
    ms.set_seed(seed)
    tok = tiny_tokenizer()
    te = CLIPTextModel(CLIPTextConfig(vocab_size=len(tok.vocab), **TINY_TEXT))
    vae = AutoencoderKL(TINY_VAE, 4)
    unet = UNet3DConditionModel(UNet3DConfig.from_files(TINY_UNET, inference_config.unet_additional_kwargs,
                                                        where="tiny demo UNet"))
    rng = np.random.default_rng(seed)
    for name, p in unet.parameters_and_names():
        if "motion_modules." in name and ".proj_out." in name:
            p.set_data(ms.Tensor((rng.standard_normal(p.shape) * 0.05).astype(np.float32)))
    return AnimationPipeline(unet, vae, te, tok, inference_config.scheduler, jit=jit)


#: merges of CLIP's BPE (its 49408-token vocabulary: 2 x 256 byte symbols, these merges, 2 special tokens)
CLIP_MERGES = 49408 - 2 * 256 - 2


def full_random_pipeline(inference_config: InferenceConfig, seed: int = 0, jit: bool = False) -> AnimationPipeline:
    """The full-size SD-1.5 pipeline (:mod:`animatediff_ms.sd15` configs, the inference config's motion modules)
    with random weights (each cell's own initialiser, seeded) and CLIP's tokenizer from the bundled BPE: what a
    release run costs in time and memory, without weight files (``text_to_video.py --random_init``). The videos
    are noise."""
    from common.config import from_mapping

    from .config import VAEConfig
    from .sd15 import SD15_TEXT_ENCODER, SD15_UNET, SD15_VAE

    ms.set_seed(seed)
    te = CLIPTextModel(CLIPTextConfig.from_dict(SD15_TEXT_ENCODER))
    vae = AutoencoderKL(from_mapping(VAEConfig, SD15_VAE, "SD15_VAE").ddconfig(), 4)
    unet = UNet3DConditionModel(UNet3DConfig.from_files(SD15_UNET, inference_config.unet_additional_kwargs,
                                                        where="SD-1.5 UNet"))
    return AnimationPipeline(unet, vae, te, tiny_tokenizer(CLIP_MERGES), inference_config.scheduler, jit=jit)


#: ``unet/config.json`` of the tiny SDXL UNet (SDXL schema: 3 levels, the first without attention, deeper
#: transformer at the bottom, text_time embedding; widths 32 / 32 / 64, text width 32 + 32).
TINY_SDXL_UNET = {
    "_class_name": "UNet2DConditionModel", "addition_embed_type": "text_time", "addition_time_embed_dim": 8,
    "attention_head_dim": [2, 4, 8], "block_out_channels": [32, 32, 64], "cross_attention_dim": 64,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"], "layers_per_block": 1,
    "norm_num_groups": 32, "projection_class_embeddings_input_dim": 32 + 6 * 8, "transformer_layers_per_block": [1, 1, 2],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"], "use_linear_projection": True,
}


def is_sdxl_inference_config(path) -> bool:
    """The demo builds the tiny SDXL model for an SDXL inference config (file name with ``sdxl``, e.g.
    ``inference-sdxl.yaml``): the yaml itself, as the original's, does not say which base model it is for."""
    from pathlib import Path

    return "sdxl" in Path(path).name.lower()


def tiny_random_sdxl_pipeline(inference_config: InferenceConfig, seed: int = 0, jit: bool = False):
    """The SDXL pipeline (:class:`~animatediff_ms.pipeline_sdxl.AnimationSDXLPipeline`) with tiny random models:
    two CLIP text encoders of width 32 (the second with a projection), :data:`TINY_SDXL_UNET` with the motion
    modules of the inference config (``proj_out`` randomised so they act), the tiny 4-level VAE."""
    from .config_sdxl import UNetSDXLConfig
    from .models.unet_sdxl import UNetSDXLMotionModel
    from .pipeline_sdxl import AnimationSDXLPipeline

    ms.set_seed(seed)
    tok = tiny_tokenizer()
    te1 = CLIPTextModel(CLIPTextConfig(vocab_size=len(tok.vocab), **TINY_TEXT))
    te2 = CLIPTextModel(CLIPTextConfig(vocab_size=len(tok.vocab), projection_dim=32,
                                       **{**TINY_TEXT, "hidden_act": "gelu"}), with_projection=True)
    vae = AutoencoderKL(TINY_VAE, 4)
    unet = UNetSDXLMotionModel(UNetSDXLConfig.from_files(TINY_SDXL_UNET, inference_config.unet_additional_kwargs,
                                                         where="tiny demo SDXL UNet"))
    rng = np.random.default_rng(seed)
    for name, p in unet.parameters_and_names():
        if "motion_modules." in name and ".proj_out." in name:
            p.set_data(ms.Tensor((rng.standard_normal(p.shape) * 0.05).astype(np.float32)))
    return AnimationSDXLPipeline(unet, vae, te1, tok, te2, tiny_tokenizer(), inference_config.scheduler, jit=jit)
