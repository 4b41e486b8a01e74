"""common.memory_plan: the documented rule (stacked if it fits, else split, else split + chunks)."""
from __future__ import annotations

import math

from common.memory_plan import FF_CHUNK, MemoryModel, attention_chunk_for, plan_memory

DC = MemoryModel(fixed_gib=12.6, per_branch_gib=3.6, ref_pixels=16 * 32 * 32)


def test_estimate_scales_with_branches_and_pixels():
    assert math.isclose(DC.estimate(2, 16 * 32 * 32), 19.8)
    assert math.isclose(DC.estimate(1, 16 * 40 * 64), 12.6 + 3.6 * 2.5)


def test_attention_size_rule():
    assert [attention_chunk_for(n) for n in (1024, 1025, 2560, 2561)] == [None, 512, 512, 128]


def test_plan_follows_the_free_memory():
    # 256 (32x32 x 16 frames, CFG): 19.8 GiB stacked, 16.2 split
    big = plan_memory(DC, (32, 32), 16, 2, available_gib=64)
    assert (big.split_cfg, big.attention_chunk, big.ff_chunk, big.fits) == (False, None, None, True)
    mid = plan_memory(DC, (32, 32), 16, 2, available_gib=22)  # budget 18.7: split fits
    assert (mid.split_cfg, mid.attention_chunk, mid.ff_chunk, mid.fits) == (True, None, None, True)
    assert math.isclose(mid.budget_gib, 0.85 * 22) and math.isclose(mid.estimate_gib, 16.2)
    # 512 (40x64): split 21.6 GiB does not fit 18.7: every knob, attention chunks at most 256
    tight = plan_memory(DC, (40, 64), 16, 2, available_gib=22)
    assert (tight.split_cfg, tight.attention_chunk, tight.ff_chunk, tight.fits) == (True, 256, FF_CHUNK, False)
    assert plan_memory(DC, (72, 128), 16, 2, available_gib=22).attention_chunk == 128  # the size rule's smaller one


def test_one_branch_or_unknown_memory_never_splits():
    assert not plan_memory(DC, (32, 32), 16, 1, available_gib=8).split_cfg
    unknown = plan_memory(DC, (40, 64), 16, 2, available_gib=float("inf"))
    assert (unknown.split_cfg, unknown.attention_chunk, unknown.ff_chunk) == (False, 512, None)
