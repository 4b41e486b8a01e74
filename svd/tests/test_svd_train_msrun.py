"""Data-parallel fine-tuning with msrun on CPU: 2 ranks on different clips = 1 process on both clips."""
import os
import sys
from pathlib import Path

import pytest
from safetensors.numpy import load_file, save_file

from common.train.testing import assert_data_parallel_matches, free_port, run_single_and_distributed

from .conftest import SVD_DIR, TINY_CONFIG, make_videos

pytestmark = pytest.mark.distributed


def test_two_ranks_equal_one_process_on_the_concatenated_batch(tiny_model, tmp_path):
    csv = make_videos(tmp_path / "videos", n=4)
    ckpt = tmp_path / "tiny.safetensors"
    save_file({p.name: p.asnumpy() for p in tiny_model.get_parameters()}, str(ckpt))

    def args(out, batch):
        return ["train.py", "--config=configs/svd_train.yaml", f"--svd_config={TINY_CONFIG}",
                f"--train.pretrained={ckpt}", f"--train.output_dir={out}", "--train.max_steps=1",
                "--train.export=False", "--train.dataset.init_args.frames=2", "--train.dataset.init_args.step=2",
                "--train.dataset.init_args.size=[64,64]", f"--train.dataset.init_args.metadata={csv}",
                "--train.settings.gradient_accumulation_steps=1", "--train.scheduler.lr=1.0",
                "--train.scheduler.warmup_steps=0", f"--train.dataloader.batch_size={batch}",
                # Adam's first step is lr * g / (|g| + eps). With eps = 1 it is ~lr * g, linear in the
                # gradient, so the comparison below measures how well the all-reduced gradient matches the
                # one-process gradient. (With a small eps, g / |g| turns the float32 rounding noise of
                # near-zero gradients -- conv biases before GroupNorm, mix factors -- into full-size steps.)
                # 64x64 frames: at 32x32 the deepest UNet level is 1x1 and its GroupNorms (2 values per
                # group) make the gradients ill-conditioned
                "--train.optimizer.eps=1.0", "--train.optimizer.weight_decay=0.0",
                f"--train.dump_rank_params={out}/rank{{rank}}.safetensors"]

    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")  # msrun starts `python`
    logs = tmp_path / "msrun_logs"
    cmd = ["msrun", "--worker_num=2", "--local_worker_num=2", f"--master_port={free_port()}", "--join=True",
           f"--log_dir={logs}", "python", *args(tmp_path / "dp", 1)]
    run_single_and_distributed([sys.executable, *args(tmp_path / "one", 2)], cmd, SVD_DIR, env, logs)
    r0, r1 = (load_file(str(tmp_path / "dp" / f"rank{r}.safetensors")) for r in (0, 1))
    one = load_file(str(tmp_path / "one" / "rank0.safetensors"))
    before = {p.name: p.asnumpy() for p in tiny_model.get_parameters()}
    assert sorted(r0) == sorted(one) and len(r0) == 338
    moved = len(r0) - len(assert_data_parallel_matches(r0, r1, one, before))
    assert moved > 300  # the step changed the parameters
    assert (tmp_path / "dp" / "ckpt-00000001.safetensors").exists()
