"""CLIP family: OpenCLIP towers, CLIP image preprocessing, open_clip and HF tokenizers, HF CLIPTextModel.

API summary (all cells are float32 MindSpore ``nn.Cell``; parameter names = original state-dict names)

Configs (:mod:`common.clip.archs`)
    ``load_open_clip_config(arch, archs_file=None, search_dirs=())`` -> ``OpenCLIPConfig``: a built-in arch
    (``"ViT-H-14"``, ``"ViT-L-14"``, ``"ViT-bigG-14"``), a JSON file path (one config, arch = file stem,
    e.g. SVD's ``ViT-tiny-svd.json``), or a name inside ``archs_file`` / ``<dir>/open_clip_archs.json`` /
    ``<dir>/<arch>.json`` (DynamiCrafter's cases). ``OpenCLIPConfig.from_dict(d)`` parses open_clip's
    ``model_configs`` schema (``embed_dim``, ``vision_cfg``, ``text_cfg``, ``quick_gelu``).

OpenCLIP towers (:mod:`common.clip.open_clip`)
    ``OpenCLIPTextTower(cfg, layer="last"|"penultimate"|int, with_transformer=True)``
        keys: ``token_embedding.weight, positional_embedding, transformer.resblocks.N.*, ln_final.*,
        text_projection, logit_scale``.
        ``encode_with_transformer(tokens (N,77) int, layer=None)`` -> (N, 77, width): blocks but the last
        ``layer`` ones, ``ln_final``, no projection (``construct`` = this with the constructor's layer);
        ``encode_text(tokens)`` -> (N, embed_dim) pooled at the EOT token ``@ text_projection``;
        ``encode(prompts)`` = ``tokenize`` + ``encode_with_transformer`` (PyNative).
    ``OpenCLIPVisionTower(cfg)``  keys: ``conv1.weight, class_embedding, positional_embedding, ln_pre.*,
        transformer.resblocks.N.*, ln_post.*, proj``.
        ``forward_tokens(pixels (B,3,224,224))`` -> (B, 1+grid^2, width): last block, no ln_post/proj
        (DynamiCrafter ``FrozenOpenCLIPImageEmbedderV2``); ``encode_image(pixels)`` = ``construct`` ->
        (B, embed_dim) = ``ln_post(cls) @ proj`` (SVD ``FrozenOpenCLIPImageEmbedder``; SVD then adds a
        frame axis: (B, 1, D)); ``embed(images in [-1,1], output="tokens"|"pooled")`` = ``clip_preprocess``
        + one of the two (PyNative; the whole FrozenOpenCLIPImageEmbedder(V2) call).
    ``OpenCLIP(cfg, text_transformer=True, layer="last")``: whole open_clip ``CLIP`` = the text keys at top
        level + ``visual.*``; ``text_transformer=False`` = CLIP after ``del model.transformer``;
        text methods inherited, ``encode_image`` / ``embed`` delegate to ``visual``, ``construct(pixels)``
        = pooled image embedding.

    Checkpoint prefixes -> cell (strip the prefix, e.g. ``read_state_dict(path, key_prefix=...)`` then a
    strict ``load_state_dict_into(cell, sd)``; every remaining key matches):
        DynamiCrafter ``cond_stage_model.model.*``  -> ``OpenCLIPTextTower(cfg, layer="penultimate")``
        DynamiCrafter ``embedder.model.*``          -> ``OpenCLIP(cfg, text_transformer=False)``
            (or ``embedder.model.visual.*`` -> ``OpenCLIPVisionTower`` and ignore
            ``embedder.model.(token_embedding|positional_embedding|ln_final|text_projection|logit_scale)``)
        SVD ``conditioner.embedders.0.open_clip.model.*`` -> ``OpenCLIP(cfg, text_transformer=False)``
            (same alternative with ``...model.visual.*``).
        open_clip's ``attn_mask`` is a non-persistent buffer: never in a checkpoint, built here.

Image preprocessing (:mod:`common.clip.preprocess`)
    ``clip_preprocess(x (B,3,H,W) in [-1,1], size=(224,224), antialias=True)`` -> normalised pixels:
    kornia ``resize(bicubic, align_corners=True, antialias=True)`` + ``(x+1)/2`` + CLIP mean/std, as
    two matmuls with precomputed matrices (PyNative, cached per input size);
    ``CLIPImagePreprocess(input_hw, size=(224,224), antialias=True)``: the same as a fixed-size cell
    (graph mode); ``resize_matrices``, ``bicubic_matrix``, ``gaussian_blur_matrix`` for reuse.

Tokenizers
    :mod:`common.clip.tokenizer`: ``tokenize(texts, context_length=77)`` -> int64 NumPy (N, 77), open_clip
    semantics (sot 49406, eot 49407, pad 0, EOT kept when cut); ``SimpleTokenizer(bpe_path)`` with the
    vocabulary shipped in ``assets/``.
    :mod:`common.clip.hf_tokenizer`: ``CLIPTokenizer.from_pretrained("<sd>/tokenizer")(texts,
    max_length=77, padding="max_length", truncation=True)`` -> int64 NumPy (N, 77) (transformers
    semantics: bos + ids[:75] + eos, padded with the configured pad token).

HF CLIP text model (:mod:`common.clip.hf_clip`)
    ``CLIPTextModel(CLIPTextConfig.from_json("<sd>/text_encoder"), with_projection=False)``; keys
    ``text_model.embeddings.{token,position}_embedding.weight, text_model.encoder.layers.N.{self_attn.
    {q,k,v,out}_proj, layer_norm1, mlp.fc1, mlp.fc2, layer_norm2}.*, text_model.final_layer_norm.*``
    (+ ``text_projection.weight``); skip ``HF_CLIP_IGNORED_KEYS`` (``text_model.embeddings.position_ids``).
    ``construct(input_ids, attention_mask=None, clip_skip=0)`` -> last_hidden_state (B, L, hidden);
    ``hidden_states(input_ids)`` -> [embeddings, layer 1..N]; ``pooled_output``; ``text_embeds``.
    LDM single files keep the same keys under ``cond_stage_model.transformer.`` (strip that prefix).
"""
from .archs import OPEN_CLIP_ARCHS, CLIPTextCfg, CLIPVisionCfg, OpenCLIPConfig, load_open_clip_config
from .hf_clip import HF_CLIP_IGNORED_KEYS, CLIPTextConfig, CLIPTextModel
from .hf_tokenizer import CLIPTokenizer
from .open_clip import OpenCLIP, OpenCLIPTextTower, OpenCLIPVisionTower
from .preprocess import CLIP_MEAN, CLIP_STD, CLIPImagePreprocess, clip_preprocess, resize_matrices
from .tokenizer import SimpleTokenizer, tokenize

__all__ = [
    "OPEN_CLIP_ARCHS", "CLIPTextCfg", "CLIPVisionCfg", "OpenCLIPConfig", "load_open_clip_config",
    "OpenCLIPTextTower", "OpenCLIPVisionTower", "OpenCLIP",
    "CLIP_MEAN", "CLIP_STD", "CLIPImagePreprocess", "clip_preprocess", "resize_matrices",
    "SimpleTokenizer", "tokenize", "CLIPTokenizer",
    "CLIPTextConfig", "CLIPTextModel", "HF_CLIP_IGNORED_KEYS",
]
