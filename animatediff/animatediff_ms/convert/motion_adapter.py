"""diffusers ``MotionAdapter`` state dicts <-> the released AnimateDiff motion-module layout.

The released files (``mm_sd_v15*.ckpt``, ``mm_sdxl_v10_beta.ckpt``) name a motion module
``<block>.motion_modules.<j>.temporal_transformer.{norm, proj_in, transformer_blocks.<k>.{attention_blocks.<a>,
norms.<a>, ff, ff_norm}, proj_out}`` with one ``attention_blocks.<a>.pos_encoder.pe`` table per attention block;
diffusers' ``MotionAdapter`` (e.g. ``guoyww/animatediff-motion-adapter-sdxl-beta``) drops ``temporal_transformer``
and calls them ``attn1/attn2``, ``norm1/norm2``, ``norm3`` with ONE ``pos_embed.pe`` per transformer block (the
same sinusoids). This port's parameter names are the released ones, so a diffusers adapter is renamed by
:data:`ADAPTER_TO_RELEASED` (the inverse of diffusers' ``convert_animatediff_checkpoint_to_diffusers``).
"""
from __future__ import annotations

import re

from common.checkpoint import apply_rename

#: (pattern, replacement, why) rows applied in order to every diffusers adapter key.
ADAPTER_TO_RELEASED = (
    (r"^((?:down|up)_blocks\.\d+|mid_block)\.motion_modules\.(\d+)\.", r"\1.motion_modules.\2.temporal_transformer.",
     "diffusers drops the temporal_transformer level"),
    (r"\.attn1\.", ".attention_blocks.0.", "first temporal self-attention"),
    (r"\.attn2\.", ".attention_blocks.1.", "second temporal self-attention (diffusers' double_self_attention)"),
    (r"\.norm1\.", ".norms.0.", "LayerNorm before the first attention"),
    (r"\.norm2\.", ".norms.1.", "LayerNorm before the second attention"),
    (r"\.norm3\.", ".ff_norm.", "LayerNorm before the feed-forward"),
)

_PE = re.compile(r"^(.*\.transformer_blocks\.\d+\.)pos_embed\.pe$")


def diffusers_adapter_to_released(sd: dict, attention_blocks: int = 2) -> dict:
    """Rename a diffusers ``MotionAdapter`` state dict to the released layout; each ``pos_embed.pe`` becomes the
    ``pos_encoder.pe`` of every attention block of its transformer block (as the released files carry them)."""
    out = {}
    for k, v in sd.items():
        if "motion_modules." not in k:
            raise ValueError(f"'{k}' is not a motion-module key of a diffusers MotionAdapter")
        new = apply_rename(k, ADAPTER_TO_RELEASED)
        m = _PE.match(new)
        if m:
            for a in range(attention_blocks):
                out[f"{m.group(1)}attention_blocks.{a}.pos_encoder.pe"] = v
        else:
            out[new] = v
    return out
