"""Split CFG (``split_cfg``: the guidance branches as two UNet calls of the branch's batch) gives the numbers of the
stacked call, eagerly, for the SD-1.5 pipeline (a prompt-travel prompt: per-frame text per branch) and the SDXL one
(pooled text per branch). The same kernels on half the batch: equal to float32 rounding of one UNet call (~1e-6
of its scale here), amplified at most 1 + 2 x 7.5 = 16 times by the guidance, one such difference a DDIM step."""
from pathlib import Path

import numpy as np
import pytest
from animatediff_ms.config import InferenceConfig
from animatediff_ms.demo import tiny_random_pipeline, tiny_random_sdxl_pipeline

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "inference"
STEPS = 2


@pytest.mark.parametrize("kind", ["sd15_prompt_travel", "sdxl"])
def test_split_cfg_gives_the_stacked_numbers(kind):
    if kind == "sdxl":
        pipe = tiny_random_sdxl_pipeline(InferenceConfig.load(CONFIGS / "inference-sdxl.yaml"), seed=1)
        prompt = "a red boat"
    else:
        pipe = tiny_random_pipeline(InferenceConfig.load(CONFIGS / "inference-v2.yaml"), seed=1)
        prompt = {0: "a red boat", 2: "a blue boat"}
    kw = dict(num_frames=3, height=64, width=64, num_inference_steps=STEPS, guidance_scale=7.5, seed=5,
              negative_prompt="blurry", progress=False, output_type="latent")
    stacked = pipe(prompt, **kw).latents
    split = pipe(prompt, split_cfg=True, **kw).latents
    np.testing.assert_allclose(split, stacked, rtol=0, atol=STEPS * 16 * 1e-6 * np.abs(stacked).max())
