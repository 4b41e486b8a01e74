"""Data-parallel fine-tuning through run_train_distribute.sh / msrun on CPU: 2 ranks on one video each =
1 process on both; the rank-table launch's argument handling and the commands it would run."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file

from common.train.testing import assert_data_parallel_matches, free_port, run_single_and_distributed

from .train_helpers import TINY_TRAIN, VC_DIR, make_clips, subprocess_env

SCRIPT = VC_DIR / "run_train_distribute.sh"


def _train_args(clips, out, batch):
    # Adam's first step is lr * g / (|g| + eps): with eps = 1 it is ~lr * g, linear in the gradient, so the
    # comparison measures how well the all-reduced gradient matches the one-process one (with a small eps,
    # g / |g| turns the float32 noise of near-zero gradients into full-size steps). The UNet's dropout is
    # off (its masks are drawn over the whole batch tensor), and so is the condition dropout (drawn per video,
    # see test_train.py), so that every parameter of the conditions used gets a gradient.
    return ["--random_weights", "--misc_dropout=0", "--p_all_zero=0", f"--root_dir={clips}", "--max_steps=1", "--shuffle=false", f"--batch_size={batch}",
            "--learning_rate=1.0", "--optim_eps=1.0", "--clip_grad=false", "--train_dropout=false",
            "--no_progress", f"--dump_rank_params={out}/rank{{rank}}.safetensors"]


@pytest.mark.distributed
def test_two_ranks_equal_one_process_on_the_concatenated_batch(tmp_path):
    clips = make_clips(tmp_path / "clips")
    env = subprocess_env()
    single = [sys.executable, "train.py", "-c", str(TINY_TRAIN), f"--output_dir={tmp_path / 'one'}",
              *_train_args(clips, tmp_path / "one", 2)]
    logs = tmp_path / "msrun_logs"
    cmd = ["bash", str(SCRIPT), "--config", str(TINY_TRAIN), "--output_dir", str(tmp_path / "dp"), "--worker_num", "2",
           "--master_port", str(free_port()), "--log_dir", str(logs), "--", *_train_args(clips, tmp_path / "dp", 1)]
    run_single_and_distributed(single, cmd, VC_DIR, env, logs)
    r0, r1 = (load_file(str(tmp_path / "dp" / f"rank{r}.safetensors")) for r in (0, 1))
    one = load_file(str(tmp_path / "one" / "rank0.safetensors"))
    before = load_file(str(tmp_path / "one" / "rank0_init.safetensors"))
    before_dp = load_file(str(tmp_path / "dp" / "rank0_init.safetensors"))
    assert sorted(r0) == sorted(one) == sorted(before) and len(r0) == 558
    for k in r0:
        assert np.array_equal(before[k], before_dp[k]), f"the runs started from different {k}"
    unmoved = assert_data_parallel_matches(r0, r1, one, before)
    # the step moved every parameter but those of the condition encoders the run does not feed and biases
    # that feed a GroupNorm with one channel per group (the tiny widths are 32 = the group count): the norm
    # removes any per-channel constant, so their gradient is zero up to rounding
    unused = ("depth_embedding", "sketch_embedding", "single_sketch_embedding", "masked_embedding",
              "mask_embedding_after")
    other = [k for k in unmoved if not k.startswith(unused)]
    assert len(unmoved) - len(other) == sum(k.startswith(unused) for k in r0) == 60 and all(k.endswith(".bias") for k in other) and len(other) < 30, other
    assert (tmp_path / "dp" / "ckpt-00000001.safetensors").exists()


def _dry(*args, cwd=VC_DIR):
    return subprocess.run(["bash", str(SCRIPT), "--dry_run", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60)


def test_msrun_command_takes_workers_address_and_port():
    r = _dry("--worker_num", "16", "--local_worker_num=8", "--master_addr", "10.0.0.1", "--master_port", "9123",
             "--node_rank", "1", "--", "--batch_size=2")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [
        "msrun", "--worker_num=16", "--local_worker_num=8", "--master_addr=10.0.0.1", "--master_port=9123",
        "--node_rank=1", "--log_dir=outputs/train_exp02_motion_transfer/msrun_log", "--join=True", "python",
        "train.py", "-c", "configs/train_exp02_motion_transfer.yaml", "--output_dir",
        "outputs/train_exp02_motion_transfer", "--batch_size=2"]


def test_rank_table_launch_runs_one_process_per_device(tmp_path):
    table = tmp_path / "hccl_2p_45_x.json"
    table.write_text("{}")
    r = _dry(f"--rank_table_file={table}", "--devices", "4 5", "--server_id", "1",
             "--task_name", "train_exp05_text_depths_wo_style")
    assert r.returncode == 0, r.stderr
    out = "outputs/train_exp05_text_depths_wo_style"
    cfg = "configs/train_exp05_text_depths_wo_style.yaml"
    assert r.stdout.splitlines() == [
        f"RANK_TABLE_FILE={table} RANK_SIZE=2 DEVICE_NUM=2",
        f"RANK_ID=2 DEVICE_ID=4 python train.py -c {cfg} --output_dir {out}  > {out}/rank_0/train.log 2>&1 &",
        f"RANK_ID=3 DEVICE_ID=5 python train.py -c {cfg} --output_dir {out}  > {out}/rank_1/train.log 2>&1 &"]
    r = subprocess.run(["bash", "-c", f"rank_table_file={table} bash {SCRIPT} --dry_run --rank_size 2"],
                       cwd=VC_DIR, capture_output=True, text=True, timeout=60)  # set as the seed README does
    assert r.returncode == 0 and "RANK_ID=1 DEVICE_ID=1 python train.py" in r.stdout, r.stderr


@pytest.mark.parametrize("args,message", [
    (["--worker_num", "0"], "--worker_num must be a positive integer, got '0'"),
    (["--worker_num", "2", "--local_worker_num", "3"], "--local_worker_num must be 1..worker_num (2), got '3'"),
    (["--master_port", "70000"], "--master_port must be 1..65535, got '70000'"),
    (["--rank_table_file", "/nonexistent/hccl.json"], "rank table not found: /nonexistent/hccl.json"),
    (["--rank_table_file", "{table}", "--devices", "0 1", "--rank_size", "8"],
     "--devices lists 2 ids but --rank_size is 8"),
    (["--rank_table_file", "{table}", "--devices", "0 x"], "--devices: 'x' is not a device id"),
    (["--task_name", "train_exp99"], "config not found: configs/train_exp99.yaml"),
    (["--bogus", "1"], "unknown option --bogus"),
    (["stray"], "unexpected argument 'stray'"),
    (["--worker_num"], "option --worker_num needs a value"),
])
def test_bad_launch_arguments_are_one_line(tmp_path, args, message):
    table = tmp_path / "t.json"
    table.write_text("{}")
    r = _dry(*[a.format(table=table) for a in args])
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().count("\n") == 0 and r.stderr.startswith("error: ") and message in r.stderr, r.stderr
