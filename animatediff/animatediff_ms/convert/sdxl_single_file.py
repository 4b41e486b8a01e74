"""SDXL single-file checkpoints (sgm layout: ``sd_xl_base_1.0.safetensors`` and the SDXL community models the
original sdxl branch takes as ``ckpt_path``) -> this port's names, every key accounted for.

    model.diffusion_model.*              UNet, LDM block names (:func:`~animatediff_ms.convert.ldm.ldm_unet_renames`
                                         with the SDXL config: ``label_emb.0.{0,2}`` -> ``add_embedding.linear_{1,2}``)
    first_stage_model.*                  VAE, LDM names = :class:`common.vae.AutoencoderKL`'s
    conditioner.embedders.0.transformer.*   CLIP ViT-L = Hugging Face ``CLIPTextModel`` keys
    conditioner.embedders.1.model.*      OpenCLIP bigG in open_clip names -> ``CLIPTextModelWithProjection``
                                         (:data:`OPEN_CLIP_TO_HF`; ``attn.in_proj_*`` split into q/k/v,
                                         ``text_projection`` transposed, ``logit_scale`` unused)
"""
from __future__ import annotations

import re

import numpy as np

from ..config import ConfigError
from .ldm import LDM_EXTRAS, split_single_file, text_model_key, vae_key

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_PREFIX = "conditioner.embedders.0.transformer."
TEXT2_PREFIX = "conditioner.embedders.1.model."
#: keys of the second embedder that no text encoder uses.
TEXT2_UNUSED = ("logit_scale",)
#: sgm's discrete-denoiser noise-level buffer (newer sgm exports carry it; the sampler recomputes it).
SGM_EXTRAS = ("denoiser.sigmas",)

#: open_clip text-transformer names -> transformers ``CLIPTextModelWithProjection`` names (regex, replacement).
OPEN_CLIP_TO_HF = (
    (r"^token_embedding\.weight$", "text_model.embeddings.token_embedding.weight"),
    (r"^positional_embedding$", "text_model.embeddings.position_embedding.weight"),
    (r"^transformer\.resblocks\.(\d+)\.ln_1\.", r"text_model.encoder.layers.\1.layer_norm1."),
    (r"^transformer\.resblocks\.(\d+)\.ln_2\.", r"text_model.encoder.layers.\1.layer_norm2."),
    (r"^transformer\.resblocks\.(\d+)\.attn\.out_proj\.", r"text_model.encoder.layers.\1.self_attn.out_proj."),
    (r"^transformer\.resblocks\.(\d+)\.mlp\.c_fc\.", r"text_model.encoder.layers.\1.mlp.fc1."),
    (r"^transformer\.resblocks\.(\d+)\.mlp\.c_proj\.", r"text_model.encoder.layers.\1.mlp.fc2."),
    (r"^ln_final\.", "text_model.final_layer_norm."),
)
_IN_PROJ = re.compile(r"^transformer\.resblocks\.(\d+)\.attn\.in_proj_(weight|bias)$")


def _text2_key(name: str, value):
    return ("ignored", TEXT2_PREFIX + name, value) if name in TEXT2_UNUSED else ("text_encoder_2", name, value)


def split_sgm_checkpoint(sd: dict, source: str = "SDXL checkpoint") -> dict[str, dict]:
    """``unet`` / ``vae`` / ``text_encoder`` / ``text_encoder_2`` (prefixes removed) and ``ignored`` (DDPM
    buffers, EMA bookkeeping, ``logit_scale``); any other key is an error naming it."""
    rows = (("unet", UNET_PREFIX, None),
            ("vae", VAE_PREFIX, lambda name, v: ("vae", *vae_key(VAE_PREFIX + name, v))),
            ("text_encoder", TEXT_PREFIX, lambda name, v: ("text_encoder", text_model_key(name), v)),
            ("text_encoder_2", TEXT2_PREFIX, _text2_key))
    return split_single_file(sd, rows, lambda k: bool(LDM_EXTRAS.match(k)) or k in SGM_EXTRAS, source,
                             "SDXL UNet, VAE, text encoders nor schedule buffers", "an SDXL")


def open_clip_text_to_hf(sd: dict, source: str = "conditioner.embedders.1.model") -> dict:
    """open_clip text tower -> ``CLIPTextModelWithProjection`` keys: names by :data:`OPEN_CLIP_TO_HF`, the packed
    ``in_proj`` [3w, w] split into ``q_proj/k_proj/v_proj``, ``text_projection`` (x @ P) as the Linear weight P^T."""
    out, unknown = {}, []
    for k, v in sd.items():
        m = _IN_PROJ.match(k)
        if m:
            layer, kind = m.groups()
            for name, part in zip(("q_proj", "k_proj", "v_proj"), np.split(np.asarray(v), 3, axis=0)):
                out[f"text_model.encoder.layers.{layer}.self_attn.{name}.{kind}"] = part
            continue
        if k == "text_projection":
            out["text_projection.weight"] = np.ascontiguousarray(np.asarray(v).T)
            continue
        new = k
        for pattern, repl in OPEN_CLIP_TO_HF:
            new = re.sub(pattern, repl, new)
        if new == k:
            unknown.append(k)
        out[new] = v
    if unknown:
        raise ConfigError(f"{source}: {len(unknown)} keys are not open_clip text-transformer keys, e.g. '{unknown[0]}'")
    return out
