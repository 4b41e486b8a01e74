"""Data-parallel fine-tuning with msrun on CPU: 2 ranks on one clip each = 1 process on both clips."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from safetensors.numpy import load_file

from common.train.testing import assert_data_parallel_matches, free_port, run_single_and_distributed

pytestmark = pytest.mark.distributed


def test_two_ranks_equal_one_process_on_the_concatenated_batch(dc, train_setup, tmp_path):
    s = train_setup

    def args(out, batch):
        return [str(dc.DC_DIR / "train.py"), "-c", str(s.config), "--output_dir", str(out), "--no_export",
                "--no_progress", "--lightning.trainer.max_steps=1", "--lightning.trainer.accumulate_grad_batches=1",
                f"--data.params.batch_size={batch}", "--model.base_learning_rate=1.0", "--weight_decay=0",
                # Adam's first step is lr * g / (|g| + eps). With eps = 1 it is ~lr * g, linear in the gradient, so
                # the comparison measures how well the all-reduced gradient matches the one-process gradient (with
                # a small eps, g / |g| turns the float32 rounding of near-zero gradients into full-size steps).
                "--adam_eps=1.0",
                # dropout masks are drawn per process (one mask over a batch of 2 vs one per rank): off here; the
                # conditioning dropout, strides, timesteps and noise are drawn per clip and stay on
                "--dropout_off", f"--dump_rank_params={out}/rank{{rank}}.safetensors"]

    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")  # msrun starts `python`
    logs = tmp_path / "msrun_logs"
    cmd = ["msrun", "--worker_num=2", "--local_worker_num=2", f"--master_port={free_port()}", "--join=True",
           f"--log_dir={logs}", "python", *args(tmp_path / "dp", 1)]
    worker_logs = run_single_and_distributed([sys.executable, *args(tmp_path / "one", 2)], cmd, tmp_path, env, logs)
    assert "2 process(es)" in worker_logs
    r0, r1 = (load_file(str(tmp_path / "dp" / f"rank{r}.safetensors")) for r in (0, 1))
    one = load_file(str(tmp_path / "one" / "rank0.safetensors"))
    before = load_file(str(s.ckpt))
    assert sorted(r0) == sorted(one) and any(k.startswith("image_proj_model.") for k in r0)
    moved = len(r0) - len(assert_data_parallel_matches(r0, r1, one, before))
    assert moved > 0.9 * len(r0)  # the step changed (nearly) every trained tensor
    assert (tmp_path / "dp" / "ckpt-00000001.safetensors").exists()
