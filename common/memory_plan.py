"""The memory knobs of a graph-mode denoiser, chosen from the latent size and the free memory.

Three knobs trade nothing but memory (equal numbers, tested per model): the guidance branches as separate UNet
calls of one compiled graph (``split_cfg``), attention query chunks (:func:`common.nn.set_attention`) and
feed-forward token chunks (:func:`common.nn.set_feed_forward_chunk_size`). :func:`plan_memory` picks them for one
model from a :class:`MemoryModel` (that model's measured figures) and ``common.bench.mem_available_gib()``; a
command line passes the user's flags over the plan.
"""
from __future__ import annotations

import ctypes
import dataclasses
import gc
import math

__all__ = ["MemoryModel", "MemoryPlan", "plan_memory", "attention_chunk_for", "release_compiled_graphs"]

#: feed-forward token chunk used when even the split batch's estimate does not fit: with attention chunks of
#: 256 it took the full SVD UNet at 576x1024 x 14 frames from > 23 GiB to 18.9 GiB (docs/performance.md).
FF_CHUNK = 4096
#: the attention query chunk used then (the SVD figure above).
TIGHT_ATTENTION_CHUNK = 256


@dataclasses.dataclass(frozen=True)
class MemoryModel:
    """One model's measured peak memory while it samples with the compiled UNet (GiB, float32).

    ``estimate(k) = fixed_gib + per_branch_gib * k * pixels / ref_pixels`` for a UNet call of ``k`` guidance
    branches (batch ``k``) on latents of ``pixels = h * w * frames`` per video.

    Attributes:
        fixed_gib: what does not grow with the batch: every weight of the command (UNet, encoders, VAE) and the
            graph's batch-independent buffers.
        per_branch_gib: what one branch of batch 1 adds at ``ref_pixels``.
        ref_pixels: latent ``h * w * frames`` where ``per_branch_gib`` was measured.
        source: where the figures come from (a sentence, for the docstring / README).
    """

    fixed_gib: float
    per_branch_gib: float
    ref_pixels: int
    source: str = ""

    def estimate(self, branches: int, pixels: int) -> float:
        """Estimated peak GiB of one UNet call of ``branches`` videos of ``pixels`` latent pixels each."""
        return self.fixed_gib + self.per_branch_gib * branches * pixels / self.ref_pixels


@dataclasses.dataclass(frozen=True)
class MemoryPlan:
    """The chosen knobs and the figures behind them.

    Attributes:
        split_cfg: one UNet call per guidance branch.
        attention_chunk: attention queries per chunk (None = all at once).
        ff_chunk: feed-forward tokens per chunk (None = all at once).
        estimate_gib: the estimated peak of the chosen plan (before chunks, which lower it by an unmeasured amount).
        budget_gib: the memory the plan had to fit (``budget_fraction`` x available).
        fits: whether ``estimate_gib <= budget_gib`` (False: every knob taken, and it may still not fit).
    """

    split_cfg: bool
    attention_chunk: int | None
    ff_chunk: int | None
    estimate_gib: float
    budget_gib: float
    fits: bool


def attention_chunk_for(tokens_per_frame: int) -> int | None:
    """The size rule of the attention query chunk: none up to 1024 latent tokens per frame (32x32), 512 up to
    2560 (40x64), 128 above (DynamiCrafter's ``--attention_chunk`` auto rule: bounds the score matrices)."""
    return None if tokens_per_frame <= 1024 else 512 if tokens_per_frame <= 2560 else 128


def plan_memory(model: MemoryModel, latent_hw: tuple[int, int], frames: int, branches: int, *,
                available_gib: float | None = None, budget_fraction: float = 0.85) -> MemoryPlan:
    """Choose split_cfg and the chunks for one video of ``frames`` x ``latent_hw`` latents.

    Rule: budget = ``budget_fraction`` x available memory (``common.bench.mem_available_gib()`` when None; 0.85
    is a chosen margin, not a measured one: the estimates are linear fits of two UNet-only figures and leave out
    the allocator's slack and the buffers a graph keeps after its last call); the
    attention chunk follows :func:`attention_chunk_for`; the branches run stacked when
    ``model.estimate(branches)`` fits the budget, else split (one compiled graph of batch 1); when even
    ``model.estimate(1)`` does not fit, feed-forward chunks of :data:`FF_CHUNK` tokens and attention chunks of
    at most :data:`TIGHT_ATTENTION_CHUNK` are added too (``fits`` False: not measured to fit). Unknown memory
    (inf): stacked, no chunks beyond the size rule. One branch (no guidance): never split.
    """
    if available_gib is None:
        from .bench import mem_available_gib

        available_gib = mem_available_gib()
    h, w = (int(v) for v in latent_hw)
    pixels = h * w * int(frames)
    attention = attention_chunk_for(h * w)
    budget = budget_fraction * available_gib
    stacked = model.estimate(branches, pixels)
    if branches <= 1 or stacked <= budget or math.isinf(budget):
        return MemoryPlan(False, attention, None, stacked, budget, stacked <= budget)
    split = model.estimate(1, pixels)
    if split <= budget:
        return MemoryPlan(True, attention, None, split, budget, True)
    tight = min(attention or TIGHT_ATTENTION_CHUNK, TIGHT_ATTENTION_CHUNK)
    return MemoryPlan(True, tight, FF_CHUNK, split, budget, False)


def release_compiled_graphs() -> None:
    """Hand back what compiled graphs hold: ``ms.ms_memory_recycle()`` (every compiled graph of this process), a
    garbage collection, then glibc's ``malloc_trim`` (where there is one). Call it after dropping the last
    reference to an ``ms.jit`` function, before a memory-hungry eager stage (the VAE decode); the next call of
    a new ``ms.jit`` function compiles again. (``DynamiCrafterPipeline.release_graph`` and the AnimateDiff and SVD
    pipelines use it.)"""
    import mindspore as ms

    ms.ms_memory_recycle()
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the memory stays with the process's allocator
        pass
