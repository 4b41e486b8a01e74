"""A tiny RANDOM DropletVideo weights folder in the released layout (for ``inference.py --demo`` and tests).

:func:`write_tiny_weights` writes ``model_index.json``, ``scheduler/``, ``text_encoder/`` (two shards + index,
like the release), ``tokenizer/`` (a sentencepiece model trained here on a few sentences), ``transformer/`` and
``vae/`` with randomly initialised tensors, so the demo goes through exactly the loading path of real weights.
Sizes: transformer 2 heads x 16, 2 layers; VAE 4 levels (16, 32, 32, 32); T5 d_model 32, 2 layers.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import mindspore as ms
import numpy as np

from common.checkpoint import save_safetensors_atomic
from common.config import from_mapping
from common.text import T5Config, T5EncoderModel
from common.vae3d import AutoencoderKLCausal3D, CausalVAEConfig

from .transformer import DropletVideoTransformer3DModel, TransformerConfig

__all__ = ["TINY_CONFIGS", "write_tiny_weights"]

_SCHEDULER = {
    "_class_name": "CogVideoXDDIMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "beta_start": 0.00085, "clip_sample": False, "clip_sample_range": 1.0, "num_train_timesteps": 1000,
    "prediction_type": "v_prediction", "rescale_betas_zero_snr": True, "sample_max_value": 1.0,
    "set_alpha_to_one": True, "snr_shift_scale": 1.0, "steps_offset": 0, "timestep_spacing": "trailing",
    "trained_betas": None,
}

TINY_CONFIGS = {
    "transformer": {
        "_class_name": "DropletVideoTransformer3DModel", "num_attention_heads": 2, "attention_head_dim": 16,
        "in_channels": 33, "out_channels": 16, "time_embed_dim": 24, "text_embed_dim": 32, "num_layers": 2,
        "patch_size": 2, "attention_bias": True, "use_rotary_positional_embeddings": True,
        "add_noise_in_inpaint_model": True,
    },
    "vae": {
        "_class_name": "AutoencoderKLDropletVideo", "block_out_channels": [16, 32, 32, 32], "latent_channels": 16,
        "layers_per_block": 1, "norm_num_groups": 8, "scaling_factor": 0.7, "temporal_compression_ratio": 4,
        "down_block_types": ["DropletVideoDownBlock3D"] * 4, "up_block_types": ["DropletVideoUpBlock3D"] * 4,
    },
    "text_encoder": {
        "architectures": ["T5EncoderModel"], "d_ff": 64, "d_kv": 8, "d_model": 32, "feed_forward_proj": "gated-gelu",
        "num_heads": 4, "num_layers": 2, "relative_attention_num_buckets": 32, "vocab_size": 256,
        "model_type": "t5",
    },
}

_CORPUS = """a red panda sits on a mossy log in a quiet forest while soft light filters through the trees
the video is of high quality and the view is very clear high quality masterpiece best quality highres
ultra detailed fantastic the video is low quality blurry distortion snow falls a cat sleeps
the camera pans slowly across a grand music hall with a black piano under warm chandeliers""".split("\n")


def _tokenizer(folder: Path) -> None:
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(_CORPUS * 10), model_writer=buf, vocab_size=64,
                                   model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                   hard_vocab_limit=False, minloglevel=2, num_threads=1)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spiece.model").write_bytes(buf.getvalue())
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "T5Tokenizer", "extra_ids": 100,
                                                              "legacy": True, "model_max_length": 226}, indent=2))


def _params(cell) -> dict[str, np.ndarray]:
    return {name: p.asnumpy() for name, p in cell.parameters_and_names()}


def write_tiny_weights(folder, seed: int = 0) -> Path:
    """Write a tiny random weights folder (released layout) at ``folder``; returns it."""
    root = Path(folder)
    ms.set_seed(seed)
    for name in ("scheduler", "text_encoder", "tokenizer", "transformer", "vae"):
        (root / name).mkdir(parents=True, exist_ok=True)
    (root / "model_index.json").write_text(json.dumps({
        "_class_name": "DropletVideo_Pipeline_Inpaint", "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "T5EncoderModel"], "tokenizer": ["transformers", "T5Tokenizer"],
        "transformer": ["transformer", "DropletVideoTransformer3DModel"],
        "vae": ["vae", "AutoencoderKLDropletVideo"]}, indent=2))
    (root / "scheduler" / "scheduler_config.json").write_text(json.dumps(_SCHEDULER, indent=2))
    for name, cfg in TINY_CONFIGS.items():
        (root / name / "config.json").write_text(json.dumps(cfg, indent=2))
    tr = DropletVideoTransformer3DModel(from_mapping(TransformerConfig, TINY_CONFIGS["transformer"], "tiny"))
    save_safetensors_atomic(_params(tr), root / "transformer" / "diffusion_pytorch_model.safetensors")
    vae = AutoencoderKLCausal3D(from_mapping(CausalVAEConfig, TINY_CONFIGS["vae"], "tiny"))
    save_safetensors_atomic(_params(vae), root / "vae" / "diffusion_pytorch_model.safetensors")
    t5 = _params(T5EncoderModel(from_mapping(T5Config, TINY_CONFIGS["text_encoder"], "tiny")))
    keys = sorted(t5)
    shards = {"model-00001-of-00002.safetensors": keys[: len(keys) // 2],
              "model-00002-of-00002.safetensors": keys[len(keys) // 2:]}
    for fname, ks in shards.items():
        save_safetensors_atomic({k: t5[k] for k in ks}, root / "text_encoder" / fname)
    index = {"metadata": {"total_size": int(sum(v.nbytes for v in t5.values()))},
             "weight_map": {k: f for f, ks in shards.items() for k in ks}}
    (root / "text_encoder" / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    _tokenizer(root / "tokenizer")
    return root
