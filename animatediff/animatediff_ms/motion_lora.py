"""MotionLoRA training: low-rank updates of the motion modules' attention projections, in the released layout.

A MotionLoRA (AnimateDiff v2 ``v2_lora_*.ckpt``) adds ``up @ down`` (rank ``r``) to ``to_q``, ``to_k``, ``to_v``
and ``to_out.0`` of every motion-module attention block. Its keys are diffusers' attention-processor LoRA keys::

    <block>.motion_modules.<j>.temporal_transformer.transformer_blocks.<k>.attention_blocks.<a>
        .processor.to_{q,k,v,out}_lora.{down,up}.weight        down [r, C], up [C, r]

Inference merges a file at its ``alpha`` (``W += alpha * up @ down``, :func:`animatediff_ms.loading.load_motion_lora`).
Training here runs the UNET UNMERGED: :func:`add_motion_lora` gives every motion-module attention a
:class:`MotionLoRAProcessor` (the Cell path is the key above, so the trained parameters carry the released
names), the forward is ``W x + alpha * up(down(x))`` with ``alpha = motion_lora_alpha``, and only the LoRA
parameters are trained. Initialisation as diffusers' ``LoRALinearLayer``: ``down ~ N(0, 1/r)``, ``up = 0`` (the
untrained LoRA changes nothing). The saved file holds ``up`` and ``down`` as trained, so inference at
``alpha = motion_lora_alpha`` reproduces the trained model exactly (up to float32 rounding of the merge).
"""
from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import nn

from common.nn.layers import linear

from .models.motion_module import VersatileAttention

__all__ = ["LoRALinear", "MotionLoRAProcessor", "add_motion_lora", "motion_lora_parameters", "motion_lora_state_dict",
           "remove_motion_lora"]

PROJECTIONS = ("to_q", "to_k", "to_v", "to_out")


class LoRALinear(nn.Cell):
    """``scale * up(down(x))``: down ``(r, in)``, up ``(out, r)``, no biases."""

    def __init__(self, in_features: int, out_features: int, rank: int, scale: float, rng: np.random.Generator):
        super().__init__()
        self.down = linear(in_features, rank, bias=False)
        self.up = linear(rank, out_features, bias=False)
        self.down.weight.set_data(ms.Tensor((rng.standard_normal((rank, in_features)) / rank).astype(np.float32)))
        self.up.weight.set_data(ms.Tensor(np.zeros((out_features, rank), np.float32)))
        self.scale = float(scale)

    def construct(self, x):
        return self.up(self.down(x)) * self.scale


class MotionLoRAProcessor(nn.Cell):
    """The four LoRAs of one attention block (Cell names ``to_{q,k,v,out}_lora``: the released key names)."""

    def __init__(self, dim: int, rank: int, scale: float, rng: np.random.Generator):
        super().__init__()
        self.to_q_lora = LoRALinear(dim, dim, rank, scale, rng)
        self.to_k_lora = LoRALinear(dim, dim, rank, scale, rng)
        self.to_v_lora = LoRALinear(dim, dim, rank, scale, rng)
        self.to_out_lora = LoRALinear(dim, dim, rank, scale, rng)

    def q(self, x):
        return self.to_q_lora(x)

    def k(self, x):
        return self.to_k_lora(x)

    def v(self, x):
        return self.to_v_lora(x)

    def out(self, x):
        return self.to_out_lora(x)


def _motion_attentions(unet):
    return [(n, c) for n, c in unet.cells_and_names() if isinstance(c, VersatileAttention) and "motion_modules." in n]


def add_motion_lora(unet, rank: int, alpha: float = 1.0, seed: int = 0) -> list:
    """Give every motion-module attention a :class:`MotionLoRAProcessor` of ``rank`` at scale ``alpha``; returns
    the LoRA parameters (the only ones to train), in model order. Parameter names are then the released keys."""
    if rank < 1:
        raise ValueError(f"motion_lora_rank must be >= 1, got {rank}")
    rng = np.random.default_rng(seed)
    found = _motion_attentions(unet)
    if not found:
        raise ValueError("the UNet has no motion modules (use_motion_module: false?); nothing for a MotionLoRA")
    for name, attn in found:
        dim = attn.to_q.weight.shape[1]
        if rank > dim:
            raise ValueError(f"motion_lora_rank {rank} exceeds the width {dim} of {name}")
        attn.processor = MotionLoRAProcessor(dim, rank, alpha, rng)
    unet.update_parameters_name()  # the new Cells' parameters get their full paths (the released keys)
    return motion_lora_parameters(unet)


def motion_lora_parameters(unet) -> list:
    """The LoRA parameters (names containing ``.processor.``), in model order."""
    return [p for n, p in unet.parameters_and_names() if ".processor." in n and "motion_modules." in n]


def motion_lora_state_dict(unet) -> dict[str, np.ndarray]:
    """``{released key: float32 array}`` of the MotionLoRA (``...processor.to_q_lora.down.weight`` ...)."""
    return {n: p.asnumpy().astype(np.float32) for n, p in unet.parameters_and_names()
            if ".processor." in n and "motion_modules." in n}


def remove_motion_lora(unet) -> None:
    """Drop the processors again (the UNet is then the base model)."""
    for _, attn in _motion_attentions(unet):
        attn.processor = None
