"""The standard Stable Diffusion LDM <-> diffusers key mapping, written out as explicit tables.

UNet (``model.diffusion_model.*`` -> our diffusers-0.11 names), for ``L = layers_per_block`` and n levels:

    time_embed.0 / .2                    -> time_embedding.linear_1 / linear_2
    input_blocks.0.0                     -> conv_in
    input_blocks.{1+i(L+1)+j}.0 / .1     -> down_blocks.i.resnets.j / attentions.j
    input_blocks.{(i+1)(L+1)}.0.op       -> down_blocks.i.downsamplers.0.conv
    middle_block.0 / .1 / .2             -> mid_block.resnets.0 / attentions.0 / resnets.1
    output_blocks.{i(L+1)+j}.0 / .1      -> up_blocks.i.resnets.j / attentions.j
    output_blocks.{i(L+1)+L}.{1|2}.conv  -> up_blocks.i.upsamplers.0.conv  (1 when the level has no attention)
    out.0 / out.2                        -> conv_norm_out / conv_out
  inside a resnet:  in_layers.0 -> norm1, in_layers.2 -> conv1, emb_layers.1 -> time_emb_proj,
                    out_layers.0 -> norm2, out_layers.3 -> conv2, skip_connection -> conv_shortcut
  inside a spatial transformer the names are the same on both sides.

VAE: ``first_stage_model.*`` already has the LDM names of :class:`common.vae.AutoencoderKL`; a diffusers
``vae/`` folder maps to them by :func:`diffusers_vae_to_ldm` (the inverse table). Text encoder:
``cond_stage_model.transformer.*`` = Hugging Face ``CLIPTextModel`` keys.
"""
from __future__ import annotations

import re

import numpy as np

from common.config import from_mapping
from common.vae import DDConfig

from ..config import ConfigError, UNet3DConfig, VAEConfig

RESNET_INNER = (("in_layers.0.", "norm1."), ("in_layers.2.", "conv1."), ("emb_layers.1.", "time_emb_proj."),
                ("out_layers.0.", "norm2."), ("out_layers.3.", "conv2."), ("skip_connection.", "conv_shortcut."))

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_PREFIX = "cond_stage_model.transformer."

#: keys of LDM single files that AnimateDiff does not use: the DDPM schedule buffers and EMA bookkeeping.
LDM_EXTRAS = re.compile(
    r"^(betas|alphas_cumprod|alphas_cumprod_prev|sqrt_alphas_cumprod|sqrt_one_minus_alphas_cumprod|"
    r"log_one_minus_alphas_cumprod|sqrt_recip_alphas_cumprod|sqrt_recipm1_alphas_cumprod|posterior_variance|"
    r"posterior_log_variance_clipped|posterior_mean_coef1|posterior_mean_coef2|logvar|lvlb_weights|"
    r"model_ema\..*)$")


def ldm_unet_table(cfg: UNet3DConfig) -> list[tuple[str, str, bool]]:
    """``(ldm_prefix, our_prefix, is_resnet)`` for every block of a UNet of this config.

    SD-1.5 (:class:`~animatediff_ms.config.UNet3DConfig`): attention on every level but the last (down) / first
    (up). A config with ``down_has_attention(i)`` / ``up_has_attention(i)`` (SDXL,
    :class:`~animatediff_ms.config_sdxl.UNetSDXLConfig`) says per level; its ``text_time`` embedding is sgm's
    ``label_emb.0.0`` / ``label_emb.0.2``."""
    n, L = cfg.num_levels, cfg.layers_per_block
    down_attn = getattr(cfg, "down_has_attention", lambda i: i < n - 1)
    up_attn = getattr(cfg, "up_has_attention", lambda i: i > 0)
    t = [("time_embed.0.", "time_embedding.linear_1.", False), ("time_embed.2.", "time_embedding.linear_2.", False),
         ("input_blocks.0.0.", "conv_in.", False), ("out.0.", "conv_norm_out.", False), ("out.2.", "conv_out.", False)]
    if getattr(cfg, "addition_embed_type", None) == "text_time":
        t += [("label_emb.0.0.", "add_embedding.linear_1.", False), ("label_emb.0.2.", "add_embedding.linear_2.", False)]
    for i in range(n):
        for j in range(L):
            k = 1 + i * (L + 1) + j
            t.append((f"input_blocks.{k}.0.", f"down_blocks.{i}.resnets.{j}.", True))
            if down_attn(i):
                t.append((f"input_blocks.{k}.1.", f"down_blocks.{i}.attentions.{j}.", False))
        if i < n - 1:
            t.append((f"input_blocks.{(i + 1) * (L + 1)}.0.op.", f"down_blocks.{i}.downsamplers.0.conv.", False))
    t += [("middle_block.0.", "mid_block.resnets.0.", True), ("middle_block.1.", "mid_block.attentions.0.", False),
          ("middle_block.2.", "mid_block.resnets.1.", True)]
    for i in range(n):
        for j in range(L + 1):
            k = i * (L + 1) + j
            t.append((f"output_blocks.{k}.0.", f"up_blocks.{i}.resnets.{j}.", True))
            if up_attn(i):
                t.append((f"output_blocks.{k}.1.", f"up_blocks.{i}.attentions.{j}.", False))
        if i < n - 1:
            t.append((f"output_blocks.{i * (L + 1) + L}.{2 if up_attn(i) else 1}.conv.",
                      f"up_blocks.{i}.upsamplers.0.conv.", False))
    return t


def ldm_unet_renames(cfg: UNet3DConfig) -> list[tuple[str, str, str]]:
    """The rename table ``(regex, replacement, why)`` of a ``model.diffusion_model.*``-stripped UNet state dict
    to our names (for ``common.checkpoint.match_state_dict``), made from :func:`ldm_unet_table`: the block
    indices depend on the config. A key no row covers stays as it is and is reported as unexpected."""
    rows = [(f"^{re.escape(ldm)}", ours, "LDM block -> diffusers block") for ldm, ours, _ in ldm_unet_table(cfg)]
    resnet = r"^((?:down_blocks\.\d+\.|up_blocks\.\d+\.|mid_block\.)resnets\.\d+\.)"
    rows += [(resnet + re.escape(a), rf"\g<1>{b}", "LDM resnet layer -> diffusers name") for a, b in RESNET_INNER]
    return rows


def vae_key(key: str, value):
    """A ``first_stage_model.`` key of an LDM single file as the VAE's own key (prefix removed), with the mid
    block's attention stored by some exports as Linear ``[C, C]`` reshaped to the 1x1 conv ``[C, C, 1, 1]``."""
    name = key[len(VAE_PREFIX):]
    if ".mid.attn_1." in name and name.endswith(".weight") and not name.endswith("norm.weight") and value.ndim == 2:
        value = value.reshape(value.shape + (1, 1))
    return name, value


def text_model_key(name: str) -> str:
    """A CLIP text-tower key with the ``text_model.`` level that files saved by old transformers lack."""
    return name if name.startswith("text_model.") else "text_model." + name


def split_single_file(sd: dict, rows, ignore, source: str, what: str, kind: str) -> dict[str, dict]:
    """Split a single-file checkpoint by key prefix.

    ``rows``: ``(part, prefix, rename)``; the first row whose prefix starts a key takes it, with the prefix
    removed and then ``rename(name, value) -> (part, name, value)`` when given (``part`` may be ``"ignored"``).
    ``ignore(key)``: keys kept under ``ignored`` whole. Any other key is an error naming it (``what``: the
    parts in words); a part with no key means the file is not a ``kind`` single-file checkpoint."""
    parts = {part: {} for part, _, _ in rows} | {"ignored": {}}
    unknown = []
    for k, v in sd.items():
        if ignore(k):
            parts["ignored"][k] = v
            continue
        for part, prefix, rename in rows:
            if k.startswith(prefix):
                name = k[len(prefix):]
                if rename is not None:
                    part, name, v = rename(name, v)
                parts[part][name] = v
                break
        else:
            unknown.append(k)
    if unknown:
        raise ConfigError(f"{source}: {len(unknown)} keys are neither {what}, e.g. '{unknown[0]}'")
    for part, prefix, _ in rows:
        if not parts[part]:
            raise ConfigError(f"{source}: no '{prefix}*' keys -- not {kind} single-file checkpoint")
    return parts


def split_ldm_checkpoint(sd: dict, source: str = "LDM checkpoint") -> dict[str, dict]:
    """Split an LDM single file into ``unet`` / ``vae`` / ``text_encoder`` (prefixes removed) and
    ``ignored`` (DDPM buffers, EMA bookkeeping); any other key is an error."""
    rows = (("unet", UNET_PREFIX, None),
            ("vae", VAE_PREFIX, lambda name, v: ("vae", *vae_key(VAE_PREFIX + name, v))),
            ("text_encoder", TEXT_PREFIX, lambda name, v: ("text_encoder", text_model_key(name), v)))
    return split_single_file(sd, rows, LDM_EXTRAS.match, source,
                             "UNet, VAE, text encoder nor LDM schedule buffers", "a Stable Diffusion")


# ----------------------------------------------------------------------------------------------- VAE
_VAE_RESNET = (("conv_shortcut.", "nin_shortcut."),)
_VAE_ATTN = (("group_norm.", "norm."), ("query.", "q."), ("key.", "k."), ("value.", "v."), ("proj_attn.", "proj_out."),
             ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."), ("to_out.0.", "proj_out."))


def _vae_rename(key: str, n_levels: int) -> str | None:
    side, _, rest = key.partition(".")
    if side in ("quant_conv", "post_quant_conv"):
        return key
    if side not in ("encoder", "decoder"):
        return None
    for a, b in (("conv_in.", "conv_in."), ("conv_out.", "conv_out."), ("conv_norm_out.", "norm_out.")):
        if rest.startswith(a):
            return f"{side}.{b}{rest[len(a):]}"
    m = re.match(r"(down|up)_blocks\.(\d+)\.(resnets\.(\d+)|downsamplers\.0|upsamplers\.0)\.(.*)", rest)
    if m:
        kind, i, what, j, tail = m.groups()
        i = int(i) if kind == "down" else n_levels - 1 - int(i)
        if j is not None:
            for a, b in _VAE_RESNET:
                tail = b + tail[len(a):] if tail.startswith(a) else tail
            return f"{side}.{kind}.{i}.block.{j}.{tail}"
        return f"{side}.{kind}.{i}.{'downsample' if kind == 'down' else 'upsample'}.{tail}"
    m = re.match(r"mid_block\.(resnets\.(\d)|attentions\.0)\.(.*)", rest)
    if m:
        _, j, tail = m.groups()
        if j is not None:
            for a, b in _VAE_RESNET:
                tail = b + tail[len(a):] if tail.startswith(a) else tail
            return f"{side}.mid.block_{int(j) + 1}.{tail}"
        for a, b in _VAE_ATTN:
            if tail.startswith(a):
                return f"{side}.mid.attn_1.{b}{tail[len(a):]}"
    return None


def diffusers_vae_to_ldm(sd: dict, n_levels: int, source: str = "vae") -> dict:
    """diffusers ``AutoencoderKL`` keys (0.11 ``query/key/value/proj_attn`` or newer ``to_q/...``) -> LDM keys;
    the mid-attention Linear weights ``[C, C]`` become 1x1 convs ``[C, C, 1, 1]``."""
    out, unknown = {}, []
    for k, v in sd.items():
        new = _vae_rename(k, n_levels)
        if new is None:
            unknown.append(k)
            continue
        if ".mid.attn_1." in new and new.endswith(".weight") and not new.endswith("norm.weight") and v.ndim == 2:
            v = v.reshape(v.shape + (1, 1))
        out[new] = v
    if unknown:
        raise ConfigError(f"{source}: {len(unknown)} keys are not diffusers AutoencoderKL keys, e.g. '{unknown[0]}'")
    return out


def vae_ddconfig_from_diffusers(cfg: dict, source: str = "vae/config.json") -> tuple[DDConfig, int]:
    """``vae/config.json`` (diffusers AutoencoderKL) -> (LDM ``ddconfig``, ``embed_dim``), read by
    :class:`~animatediff_ms.config.VAEConfig` (GroupNorm groups included; unknown keys refused)."""
    vae = from_mapping(VAEConfig, cfg, source)
    return vae.ddconfig(), vae.latent_channels


def fold_position_ids(te_sd: dict, source: str = "text encoder") -> tuple[dict, bool]:
    """Drop ``text_model.embeddings.position_ids``; when it is not 0..n-1 (some community files carry
    float or shuffled ids, which transformers 4.25 uses as stored, truncated to int), reorder the
    position-embedding rows so that the standard positions give the same embeddings.
    Returns (state dict, whether rows were reordered)."""
    sd = dict(te_sd)
    pid = sd.pop("text_model.embeddings.position_ids", None)
    key = "text_model.embeddings.position_embedding.weight"
    if pid is None or key not in sd:
        return sd, False
    ids = np.asarray(pid).reshape(-1)
    ids = np.trunc(ids).astype(np.int64) if ids.dtype.kind == "f" else ids.astype(np.int64)
    n = sd[key].shape[0]
    if ids.size == n and np.array_equal(ids, np.arange(n)):
        return sd, False
    if ids.min() < 0 or ids.max() >= n:
        raise ConfigError(f"{source}: position_ids out of range [0, {n})")
    table = np.asarray(sd[key])
    rows = np.arange(n)
    rows[:ids.size] = ids
    sd[key] = table[rows]
    return sd, True


# ----------------------------------------------------------------------------------------------- inverses
def ours_unet_to_ldm(sd: dict, cfg: UNet3DConfig) -> dict:
    """Inverse of :func:`ldm_unet_renames` for the 2-D weights (motion modules have no LDM name: refused)."""
    table = sorted(ldm_unet_table(cfg), key=lambda r: -len(r[1]))
    out, unknown = {}, []
    for key, value in sd.items():
        for ldm, ours, is_resnet in table:
            if key.startswith(ours):
                rest = key[len(ours):]
                if is_resnet:
                    for a, b in RESNET_INNER:
                        if rest.startswith(b):
                            rest = a + rest[len(b):]
                            break
                out[ldm + rest] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise ConfigError(f"{len(unknown)} keys have no LDM name, e.g. '{unknown[0]}'")
    return out


def ldm_vae_to_diffusers(sd: dict, n_levels: int) -> dict:
    """Inverse of :func:`diffusers_vae_to_ldm` (diffusers-0.11 attention names ``query/key/value/proj_attn``,
    1x1-conv attention weights back to ``[C, C]``)."""
    inv_attn = {"norm.": "group_norm.", "q.": "query.", "k.": "key.", "v.": "value.", "proj_out.": "proj_attn."}
    out = {}
    for k, v in sd.items():
        side, _, rest = k.partition(".")
        if side in ("quant_conv", "post_quant_conv"):
            out[k] = v
            continue
        new = None
        for a, b in (("conv_in.", "conv_in."), ("conv_out.", "conv_out."), ("norm_out.", "conv_norm_out.")):
            if rest.startswith(a):
                new = f"{side}.{b}{rest[len(a):]}"
        m = re.match(r"(down|up)\.(\d+)\.(block\.(\d+)|downsample|upsample)\.(.*)", rest)
        if m:
            kind, i, _, j, tail = m.groups()
            i = int(i) if kind == "down" else n_levels - 1 - int(i)
            tail = "conv_shortcut." + tail[len("nin_shortcut."):] if tail.startswith("nin_shortcut.") else tail
            what = f"resnets.{j}" if j is not None else f"{kind}samplers.0"
            new = f"{side}.{kind}_blocks.{i}.{what}.{tail}"
        m = re.match(r"mid\.(block_(\d)|attn_1)\.(.*)", rest)
        if m:
            _, j, tail = m.groups()
            if j is not None:
                tail = "conv_shortcut." + tail[len("nin_shortcut."):] if tail.startswith("nin_shortcut.") else tail
                new = f"{side}.mid_block.resnets.{int(j) - 1}.{tail}"
            else:
                for a, b in inv_attn.items():
                    if tail.startswith(a):
                        new = f"{side}.mid_block.attentions.0.{b}{tail[len(a):]}"
                        if v.ndim == 4 and b != "group_norm.":
                            v = v.reshape(v.shape[:2])
                        break
        if new is None:
            raise ConfigError(f"'{k}' is not an LDM AutoencoderKL key")
        out[new] = v
    return out
