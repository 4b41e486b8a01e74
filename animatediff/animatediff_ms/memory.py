"""The memory knobs of AnimateDiff's graph-mode UNet (``text_to_video.py``): split CFG, attention and
feed-forward chunks, from :func:`common.memory_plan.plan_memory` and the figures below, the flags winning."""
from __future__ import annotations

from common.memory_plan import MemoryModel, MemoryPlan, attention_chunk_for, plan_memory

#: The graph-mode UNet's peak memory while sampling, from the one full-size graph figure of
#: ``benchmark_results.json`` (2-core Intel Xeon): the SD-1.5 UNet with the v2 motion modules (1.31 B parameters,
#: 5.4 GiB resident after the build) compiled as one graph of batch 1, called twice per step (``--split 2``) on
#: 16 x 32 x 32 latents (256x256 x 16 frames), peaked at 10.9 GiB: 5.5 GiB above the weights. With no second graph
#: figure to separate the graph's batch-independent buffers from one branch's activations, all 5.5 GiB are taken
#: to grow with the batch and the latent pixels (an over-estimate at larger sizes); the CLIP text encoder and the
#: VAE add 0.8 GiB of weights (208 M parameters, float32). 512x512 (4x the pixels: 28.2 GiB split, 50.2 stacked)
#: is extrapolated, not measured: on a 24 GiB machine the plan takes every knob there. SDXL is not measured: its
#: runs use these figures too (an under-estimate of its 2.6 B-parameter UNet; pass the flags).
GRAPH_MEMORY = MemoryModel(fixed_gib=6.2, per_branch_gib=5.5, ref_pixels=16 * 32 * 32,
                           source="AnimateDiff 256x256 x 16 UNet graph, batch 1 twice a step, 10.9 GiB peak "
                                  "(5.4 GiB weights) + 0.8 GiB text encoder and VAE")


def memory_knobs(mode: str, latent_hw: tuple[int, int], frames: int, branches: int, *, split_cfg: bool | None = None,
                 attention_chunk: int | None = None, ff_chunk: int | None = None,
                 available_gib: float | None = None) -> tuple[bool, int | None, int | None, MemoryPlan | None]:
    """``(split_cfg, attention_chunk, ff_chunk, plan)`` for one video of ``frames`` x ``latent_hw`` latents.

    Args:
        mode: ``"graph"``: the plan of :func:`common.memory_plan.plan_memory` for :data:`GRAPH_MEMORY` and
            ``available_gib`` (None: the free memory now); ``"pynative"``: stacked branches, the attention size
            rule (:func:`common.memory_plan.attention_chunk_for`), no feed-forward chunks, plan None.
        latent_hw / frames: the latents the UNet sees in one call (a context window's frames when windowed).
        branches: guidance branches (2 with CFG, else 1).
        split_cfg / attention_chunk / ff_chunk: the flags (None: from the plan).
    """
    plan = None
    split, chunk, ff = False, attention_chunk_for(int(latent_hw[0]) * int(latent_hw[1])), None
    if mode == "graph":
        plan = plan_memory(GRAPH_MEMORY, latent_hw, frames, branches, available_gib=available_gib)
        split, chunk, ff = plan.split_cfg, plan.attention_chunk, plan.ff_chunk
    if split_cfg is not None:
        split = bool(split_cfg)
    return split, attention_chunk or chunk, ff_chunk or ff, plan


def describe(mode: str, split: bool, chunk, ff, plan: MemoryPlan | None) -> str:
    """The one line the CLI prints: the mode, the chosen knobs and, in graph mode, the estimate and the budget."""
    text = f"{mode} mode: split_cfg={split}, attention chunk {chunk}, feed-forward chunk {ff}"
    if plan is not None:
        text += (f" (estimated peak {plan.estimate_gib:.1f} GiB, budget {plan.budget_gib:.1f} GiB"
                 + ("" if plan.fits else "; not measured to fit") + ")")
    return text
