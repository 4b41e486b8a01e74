"""The execution mode and memory knobs of ``image_to_video.py``: graph mode unless the memory plan says it does not
fit, split CFG, attention and feed-forward chunks (:func:`common.memory_plan.plan_memory`), the flags winning."""
from __future__ import annotations

from dataclasses import dataclass

from common.memory_plan import MemoryModel, MemoryPlan, attention_chunk_for, plan_memory

#: The graph-mode denoiser's peak memory while sampling, from the one full-size graph figure of
#: ``benchmark_results.json`` (2-core Intel Xeon, docs/performance.md): the UNet of ``configs/svd.yaml``
#: (1.52 B parameters, 6.1 GiB resident after the build) compiled as one graph of batch 1 video, called twice per
#: step (``--split 2``) at 320x512 x 14 frames (40 x 64 latents), peaked at 23.1 GiB: 17.0 GiB above the weights.
#: With no second graph figure, all of it is taken to grow with the latent pixels (an over-estimate at larger
#: sizes); the CLIP image encoder and the VAE add 2.8 GiB of weights (the rest of the 8.9 GiB ``svd.safetensors``,
#: float32). 576x1024 x 14 (3.6x the pixels: 70 GiB split) is extrapolated: it falls back to PyNative, where
#: attention chunks of 256 and feed-forward chunks of 4096 ran the whole CFG batch in 18.9 GiB (and ``--split_cfg``
#: with attention chunks of 256 in 16.6 GiB).
GRAPH_MEMORY = MemoryModel(fixed_gib=8.9, per_branch_gib=17.0, ref_pixels=14 * 40 * 64,
                           source="SVD 320x512 x 14 UNet graph, batch 1 twice a step, 23.1 GiB peak (6.1 GiB "
                                  "weights) + 2.8 GiB image encoder and VAE")


@dataclass(frozen=True)
class Knobs:
    """What ``image_to_video.py`` runs with.

    Attributes:
        mode: ``"graph"`` or ``"pynative"``.
        split_cfg / attention_chunk / ff_chunk: the memory knobs (None chunk = all at once).
        plan: the graph plan behind them (None when PyNative was asked for).
        fallback: the reason graph mode was not taken (the default mode only), else None.
    """

    mode: str
    split_cfg: bool
    attention_chunk: int | None
    ff_chunk: int | None
    plan: MemoryPlan | None
    fallback: str | None = None

    def describe(self) -> str:
        """One line: the mode, the knobs and, with a plan, its estimate and budget."""
        text = (f"{self.mode} mode: split_cfg={self.split_cfg}, attention chunk {self.attention_chunk}, "
                f"feed-forward chunk {self.ff_chunk}")
        if self.plan is not None:
            text += (f" (graph estimate {self.plan.estimate_gib:.1f} GiB, budget {self.plan.budget_gib:.1f} GiB"
                     + ("" if self.plan.fits else "; not measured to fit") + ")")
        return text


def choose_knobs(mode: str | None, latent_hw: tuple[int, int], frames: int, *, split_cfg: bool | None = None,
                 attention_chunk: int | None = None, ff_chunk: int | None = None,
                 available_gib: float | None = None) -> Knobs:
    """The mode and the knobs for ``frames`` x ``latent_hw`` latents (both guidance branches, one video).

    Args:
        mode: None (the default): graph with the plan of :func:`common.memory_plan.plan_memory` for
            :data:`GRAPH_MEMORY`, unless even its last resort (split branches, feed-forward and attention chunks)
            is estimated above the budget (``plan.fits`` False: the chunks' saving in a graph is not measured):
            then PyNative with those knobs, and ``fallback`` says why. ``"graph"``: graph with the plan's knobs
            whatever it estimates. ``"pynative"``: stacked branches, the attention size rule
            (:func:`common.memory_plan.attention_chunk_for`), no feed-forward chunks.
        split_cfg / attention_chunk / ff_chunk: the flags (None: from the plan).
        available_gib: free memory (None: ``MemAvailable`` now).
    """
    plan, fallback = None, None
    split, chunk, ff = False, attention_chunk_for(int(latent_hw[0]) * int(latent_hw[1])), None
    if mode != "pynative":
        plan = plan_memory(GRAPH_MEMORY, latent_hw, frames, 2, available_gib=available_gib)
        split, chunk, ff = plan.split_cfg, plan.attention_chunk, plan.ff_chunk
        if mode is None and not plan.fits:
            fallback = (f"graph mode is estimated at {plan.estimate_gib:.1f} GiB even with --split_cfg, above the "
                        f"budget of {plan.budget_gib:.1f} GiB (0.85 x {plan.budget_gib / 0.85:.1f} GiB free): "
                        f"running PyNative with the chunks instead (--mode graph forces graph mode)")
        mode = "pynative" if fallback else "graph"
    if split_cfg is not None:
        split = bool(split_cfg)
    return Knobs(mode, split, attention_chunk or chunk, ff_chunk or ff, plan, fallback)
