"""Fine-tuning pieces in process: the shipped training YAMLs, --help, the WebVid sampling, the loss cell against
``training_loss``, and gradient checkpointing with dropout."""
from __future__ import annotations

import importlib.util
import random

import mindspore as ms
import numpy as np
import pytest


def _train_script(dc):
    spec = importlib.util.spec_from_file_location("dc_train_script", dc.DC_DIR / "train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("name,lr,res,interp,fs", [
    ("training_256_v1.0/config.yaml", 1e-5, [256, 256], False, "fs"),
    ("training_512_v1.0/config.yaml", 1e-5, [320, 512], False, "fps"),
    ("training_512_v1.0/config_interp.yaml", 1e-5, [320, 512], True, "fps"),
    ("training_1024_v1.0/config.yaml", 1e-5, [576, 1024], False, "fps"),
])
def test_shipped_training_configs_read_with_the_original_values(dc, name, lr, res, interp, fs):
    train = _train_script(dc)
    args, rest = train.get_parser().parse_known_args(["-c", str(dc.DC_DIR / "configs" / name)])
    assert rest == []
    tf, cfg = train.read_configs(args, ["--model.pretrained_checkpoint=null"])  # the released file is not here
    d, t = cfg.diffusion, tf.lightning.trainer
    assert (tf.model.base_learning_rate, tf.model.scale_lr, tf.data.params.train.params.resolution) == (lr, False, res)
    assert (t.accumulate_grad_batches, t.gradient_clip_val, tf.lightning.fp16) == (2, 0.5, True)
    assert (d.interp_mode, d.rand_cond_frame, d.uncond_prob, d.fps_condition_type) == (interp, not interp, 0.05, fs)
    assert cfg.unet.use_checkpoint and cfg.unet.dropout == 0.1 and d.image_proj_model_trainable
    assert tf.data.params.train.params.random_fs and tf.data.params.train.params.frame_stride == 6
    folder, stem = name.split("/")[0], name.split("/")[1][:-len(".yaml")]
    assert train.default_output_dir(args.config).name == (folder if stem == "config" else f"{folder}_{stem}")


def test_tiny_demo_training_config_reads(dc):
    train = _train_script(dc)
    args, _ = train.get_parser().parse_known_args(["-c", str(dc.DC_DIR / "configs" / "training_tiny_demo.yaml")])
    tf, cfg = train.read_configs(args, [])
    assert tf.model.pretrained_checkpoint is None and tf.data.params.train.params.resolution == [128, 128]
    assert cfg.unet.model_channels == 32 and cfg.unet.use_checkpoint


def test_help_lists_every_training_key(dc, capsys):
    train = _train_script(dc)
    with pytest.raises(SystemExit) as e:
        train.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for key in ("--data.params.train.params.frame_stride (1): take every frame_stride-th frame",
                "--lightning.trainer.accumulate_grad_batches (1): micro-batches per optimizer step",
                "--lightning.precision (32): 16 = float16", "--model.base_learning_rate (0.0001)",
                "--model.params.uncond_prob (0.0): conditioning dropout p",
                "--model.params.unet_config.params.use_checkpoint (False): train.py: gradient checkpointing",
                "--output_dir", "--mode {pynative,graph}"):
        assert key in out, key


class _Params:
    video_length, frame_stride, frame_stride_min, random_fs, fixed_fps, fps_max = 4, 3, 1, False, None, None


def test_webvid_frame_sampling_as_the_original():
    from dynamicrafter_ms.webvid import WebVidDataset

    ds = WebVidDataset.__new__(WebVidDataset)
    ds.p = _Params()
    rng = np.random.default_rng(0)
    for _ in range(20):
        idx, stride = ds.frame_indices(20, 24.0, rng)
        assert stride == 3 and np.diff(idx).tolist() == [3, 3, 3] and 0 <= idx[0] <= 20 - 10
    idx, stride = ds.frame_indices(9, 24.0, rng)  # 9 < 3 * 3 + 1: the stride shrinks to 9 // 4
    assert stride == 2 and idx == [0, 2, 4, 6]
    ds.p.random_fs, ds.p.frame_stride_min, ds.p.frame_stride = True, 2, 5
    seen = {ds.frame_indices(100, 24.0, rng)[1] for _ in range(200)}
    assert seen == {2, 3, 4, 5}
    ds.p.random_fs, ds.p.fixed_fps, ds.p.frame_stride = False, 8, 2
    assert ds.frame_indices(100, 24.0, rng)[1] == 6  # int(2 * 24 / 8)


@pytest.fixture(scope="module")
def tiny512(dc, tiny_dir):
    from dynamicrafter_ms.config import DynamiCrafterConfig
    from dynamicrafter_ms.model import DynamiCrafter

    from common.train import use_reseedable_dropout

    cfg = dc.tiny_train_config("x", "x.csv")
    cfg["model"]["params"]["uncond_prob"] = 0.3
    model = DynamiCrafter(DynamiCrafterConfig.from_dict(cfg, str(dc.write_config(tiny_dir / "ft", cfg))))
    dc.randomize(model, seed=4, std=0.1)
    use_reseedable_dropout(model)
    model.set_train(False)
    return model


def _inputs(model):
    from dynamicrafter_ms.finetune import make_batch_fn

    video = np.random.default_rng(0).uniform(-1, 1, (2, 3, 2, 64, 64)).astype(np.float32)
    keys = np.array([[0, 1], [2, 0]], np.int64)
    batch = (video, ["a cat", "a dog"], np.array([8.0, 12.0], np.float32), np.array([3, 2]), keys)
    return video, keys, make_batch_fn(model, seed=5)(batch, np.random.default_rng(1))


def test_loss_cell_equals_training_loss(tiny512):
    """The split step (frozen half on the host, DiffusionLoss under the gradient) = ``training_loss`` (the
    golden-checked function) with the same draws."""
    from dynamicrafter_ms.finetune import DiffusionLoss, clip_draws
    from dynamicrafter_ms.training import training_loss

    video, keys, inputs = _inputs(tiny512)
    loss = DiffusionLoss(tiny512)(*inputs).asnumpy()
    d = [clip_draws(tiny512, k, 2, (8, 8), 5) for k in keys]
    ref = training_loss(tiny512, video, ["a cat", "a dog"], [8.0, 12.0], random_num=[x["random_num"] for x in d],
                        cond_frame_index=0, t=[x["t"] for x in d], noise=np.stack([x["noise"] for x in d]),
                        encode_noise=np.stack([x["encode_noise"] for x in d]))["loss"].asnumpy()
    np.testing.assert_array_equal(loss, ref)


def test_gradient_checkpointing_with_dropout_gives_the_same_gradients(tiny512):
    """UNet dropout on: recomputed blocks reuse the forward pass's masks (common.train.ReseedableDropout).
    float32 rounding only (the recomputed forward runs the same ops; ~1e-7 of the gradient scale)."""
    from dynamicrafter_ms.finetune import DiffusionLoss, set_train_mode, trainable_parameters

    _, _, inputs = _inputs(tiny512)
    set_train_mode(tiny512)
    try:
        grad = ms.value_and_grad(DiffusionLoss(tiny512), None, trainable_parameters(tiny512))
        runs = []
        for recompute in (False, True):
            tiny512.unet.set_recompute(recompute)
            random.seed(7)
            loss, grads = grad(*inputs)
            runs.append((float(loss.asnumpy()), [g.asnumpy() for g in grads]))
        random.seed(8)
        other = float(grad(*inputs)[0].asnumpy())
    finally:
        tiny512.unet.set_recompute(False)
        tiny512.set_train(False)
    assert runs[0][0] == runs[1][0] and other != runs[0][0]  # same masks for the same seed; dropout is on
    scale = max(float(np.abs(g).max()) for g in runs[0][1])
    err = max(float(np.abs(a - b).max()) for a, b in zip(runs[0][1], runs[1][1]))
    assert err <= 1e-5 * scale, (err, scale)


def _launch(dc, *args, env=None):
    import os
    import subprocess

    script = dc.DC_DIR / "scripts" / "run" / "run_train_distributed.sh"
    return subprocess.run(["bash", str(script), "--dry_run", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_distributed_launcher_dry_run(dc, tmp_path):
    """run_train_distributed.sh: msrun and rank-table command lines, and its refusals (exit 2, one error line)."""
    import json

    cfg = "configs/training_512_v1.0/config.yaml"
    r = _launch(dc, "msrun", "4", cfg, "runs/a b", "--seed", "3", env={"MASTER_PORT": "9000"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == (f"msrun --worker_num=4 --local_worker_num=4 --master_port=9000 --join=True "
                                f"--log_dir=runs/a\\ b/msrun_log python train.py -c {cfg} --output_dir runs/a\\ b --seed 3")
    table = tmp_path / "rank_table.json"
    table.write_text(json.dumps({"server_list": [
        {"server_id": "10.0.0.1", "device": [{"device_id": "4", "rank_id": "0"}, {"device_id": "5", "rank_id": "1"}]},
        {"server_id": "10.0.0.2", "device": [{"device_id": "0", "rank_id": "2"}, {"device_id": "1", "rank_id": "3"}]}]}))
    r = _launch(dc, "rank_table", str(table), cfg, "out", env={"SERVER_ID": "10.0.0.2"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        f"RANK_TABLE_FILE={table} RANK_SIZE=4 RANK_ID={rank} DEVICE_ID={dev} python train.py -c {cfg} --output_dir out"
        f" > out/rank_{rank}.log" for rank, dev in ((2, 0), (3, 1))]
    (tmp_path / "bad.json").write_text("{}")
    for args, env, message in [
        (("msrun", "two", cfg, "o"), {}, "N_PROC must be a positive integer, got 'two'"),
        (("mpirun", "2", cfg, "o"), {}, "unknown launcher 'mpirun'"),
        (("msrun", "2", "nope.yaml", "o"), {}, "config not found: nope.yaml"),
        (("msrun", "2", cfg), {}, "missing arguments"),
        (("rank_table", str(tmp_path / "none.json"), cfg, "o"), {}, "rank table not found"),
        (("rank_table", str(tmp_path / "bad.json"), cfg, "o"), {}, "KeyError: 'server_list'"),
        (("rank_table", str(table), cfg, "o"), {"SERVER_ID": "9.9.9.9"}, "SERVER_ID 9.9.9.9 is not a server_id"),
    ]:
        r = _launch(dc, *args, env=env)
        errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
        assert r.returncode == 2 and r.stdout == "" and len(errors) == 1 and message in errors[0], (args, r.stderr)

