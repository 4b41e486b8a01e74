"""train.py: bad input refused before any work, SIGKILL + resume exact, the motion-module checkpoint loads in
text_to_video.py, a trained MotionLoRA loads into inference as its merged weights predict, msrun = one process."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
import yaml
from animatediff_ms import loading as L
from animatediff_ms.config import InferenceConfig
from animatediff_ms.demo import tiny_random_pipeline
from animatediff_ms.motion_lora import add_motion_lora, remove_motion_lora
from safetensors.numpy import load_file

from common.train import load_state
from common.train.testing import free_port, run_single_and_distributed, sigkill_after_first_checkpoint
from common.train.webvid import make_demo_webvid

PROJECT = Path(__file__).resolve().parents[1]
DEMO = PROJECT / "configs" / "training" / "demo_tiny.yaml"


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


train = _load("animatediff_train", PROJECT / "train.py")


@pytest.fixture(scope="module")
def setup(tiny_weights, tmp_path_factory):
    root = tmp_path_factory.mktemp("adtrain")
    csv = make_demo_webvid(root / "webvid", n=2, frames=8, size=(64, 80), layout="flat")
    base = [f"--pretrained_model_path={tiny_weights['sd']}", f"--train_data.csv_path={csv}",
            f"--train_data.video_folder={root / 'webvid' / 'videos'}", "--train_data.sample_n_frames=2",
            "--gradient_accumulation_steps=1", "--max_train_steps=2", "--checkpointing_steps=1",
            "--validation_steps=2", "--validation_steps_tuple=[]", "--no_progress"]
    return {"root": root, "csv": csv, "base": base, "tw": tiny_weights}


def _bad(setup, capsys, *extra, config=DEMO):
    out = setup["root"] / "never"
    rc = train.main(["-c", str(config), *setup["base"], f"--output_dir={out}", *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert not out.exists()  # refused before any work
    return err


def test_bad_input_is_one_line_before_any_work(setup, capsys, tmp_path):
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text(setup["csv"].read_text() + "4242,a missing clip,000001_000050,PT00H00M01S\n")
    for extra in ((), ("--no_video_check",)):  # the existence is checked either way
        err = _bad(setup, capsys, f"--train_data.csv_path={bad_csv}", *extra)
        assert "bad.csv:4" in err and "4242.mp4 does not exist" in err
    broken = tmp_path / "videos"
    broken.mkdir()
    (broken / "1000.mp4").write_bytes(b"not a video")
    err = _bad(setup, capsys, f"--train_data.video_folder={broken}")
    assert "results.csv:2" in err and "1000.mp4" in err
    mm = setup["tw"]["root"] / "models" / "Motion_Module" / "mm_tiny_v1.ckpt"
    err = _bad(setup, capsys, f"--unet_checkpoint_path={mm}")
    assert "pos_encoder.pe" in err and "original train.py refuses" in err
    assert "did you mean 'learning_rate'" in _bad(setup, capsys, "--learning_rat=1")
    typo = tmp_path / "typo.yaml"
    typo.write_text(DEMO.read_text().replace("max_train_steps:", "max_train_step:"))
    assert "max_train_step: unknown key (did you mean 'max_train_steps'" in _bad(setup, capsys, config=typo)
    for opt in ("--max_train_steps=0", "--train_batch_size=0", "--train_data.sample_n_frames=-1",
                "--gradient_accumulation_steps=0", "--validation_data.num_inference_steps=0"):
        assert "must be a positive count" in _bad(setup, capsys, opt) and opt.split("=")[0] in _bad(setup, capsys, opt)
    for opt, message in (("--learning_rate=0", "learning_rate 0.0: must be > 0"),
                         ("--cfg_random_null_text_ratio=1.5", "cfg_random_null_text_ratio 1.5: must be in [0, 1]"),
                         ("--lr_warmup_steps=5", "lr_warmup_steps 5 exceeds max_train_steps 2"),
                         ("--motion_lora_rank=-1", "motion_lora_rank -1: must be >= 0")):
        assert message in _bad(setup, capsys, opt), opt
    assert "multiples of 64" in _bad(setup, capsys, "--train_data.sample_size=[32, 64]")
    assert "temporal_position_encoding_max_len 24" in _bad(setup, capsys, "--train_data.sample_n_frames=25")
    # the real command: one line on stderr, nothing else, exit 2
    r = subprocess.run([sys.executable, str(PROJECT / "train.py"), "-c", str(DEMO), *setup["base"],
                        f"--train_data.csv_path={bad_csv}", f"--output_dir={tmp_path / 'never'}"],
                       capture_output=True, text=True, timeout=300, cwd=PROJECT)
    assert r.returncode == 2 and r.stdout == "" and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("error: train_data.csv_path") and not (tmp_path / "never").exists()


def test_help_lists_every_key(capsys):
    with pytest.raises(SystemExit):
        train.main(["--help"])
    out = capsys.readouterr().out
    for key in ("--learning_rate", "--train_data.sample_stride", "--validation_data.guidance_scale",
                "--cfg_random_null_text_ratio", "--motion_lora_rank", "--gradient_checkpointing", "--max_grad_norm",
                "--unet_additional_kwargs.motion_module_kwargs.temporal_position_encoding_max_len",
                "--unet_additional_kwargs.use_inflated_groupnorm", "--lr_warmup_steps (0): linear warm-up"):
        assert key in out, key


def test_every_key_is_settable_also_when_the_yaml_omits_it(setup):
    args, rest = train.get_parser().parse_known_args(
        ["-c", str(DEMO), "--random_weights", "--unet_additional_kwargs.use_inflated_groupnorm=true",
         "--unet_additional_kwargs.motion_module_mid_block=true", "--lr_warmup_steps=3", "--max_grad_norm=0.5"])
    cfg = train.read_config(args, rest)  # the demo yaml has none of these keys
    assert cfg.unet_additional_kwargs["use_inflated_groupnorm"] and cfg.unet_additional_kwargs["motion_module_mid_block"]
    assert cfg.lr_warmup_steps == 3 and cfg.max_grad_norm == 0.5
    assert cfg.unet_additional_kwargs["motion_module_kwargs"]["temporal_position_encoding_max_len"] == 24  # the file's
    args, rest = train.get_parser().parse_known_args(["-c", str(DEMO), "--unet_additional_kwargs.use_inflated_groupnorn=1"])
    with pytest.raises(ValueError, match="did you mean 'use_inflated_groupnorm'"):
        train.read_config(args, rest)


def _cmd(setup, out, *extra):
    return [sys.executable, str(PROJECT / "train.py"), "-c", str(DEMO), *setup["base"], f"--output_dir={out}", *extra]


def _start(cmd, log):
    return subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, cwd=PROJECT)


def _wait(proc, log, timeout=600):
    rc = proc.wait(timeout=timeout)
    assert rc == 0, f"exit {rc}:\n{Path(log).read_text()[-3000:]}"


# gradient checkpointing on; mixed precision as on GPU/Ascend (float16 compute, float32 master weights, dynamic loss
# scale), so the resume covers the loss scaler too
RESUME = ("--gradient_checkpointing=true", "--fp16_on_cpu", "--loss_scale_value=1024")


@pytest.mark.slow
def test_sigkill_resume_is_exact_and_the_checkpoint_loads_in_text_to_video(setup, tmp_path, capsys, monkeypatch):
    root = tmp_path
    ref = _start(_cmd(setup, root / "ref", *RESUME), root / "ref.log")
    victim_dir = root / "victim"
    victim = _start(_cmd(setup, victim_dir, *RESUME), root / "victim.log")
    saved = sigkill_after_first_checkpoint(victim, victim_dir, root / "victim.log", 2, pause=0.3)
    resumed = _start(_cmd(setup, victim_dir, *RESUME), root / "resumed.log")
    _wait(resumed, root / "resumed.log")
    _wait(ref, root / "ref.log")
    a, _ = load_state(root / "ref" / "ckpt-00000002.safetensors")
    b, meta = load_state(victim_dir / "ckpt-00000002.safetensors")
    assert meta["step"] == 2 and sorted(a) == sorted(b)
    # bit-exact, except that a subnormal float32 may come out as 0: MindSpore's CPU thread pool does not flush
    # subnormals the same way in every thread (seen on Adam's second moment, g^2 ~ 1e-40, of gradients ~1e-20 that
    # the zero-initialised proj_out lets through)
    tiny = np.finfo(np.float32).tiny

    def same(x, y):
        return np.array_equal(x, y) or (x.dtype == np.float32 and x.shape == y.shape and bool(
            np.all((x == y) | ((np.abs(x) < tiny) & (np.abs(y) < tiny)))))

    bad = [k for k in a if not same(a[k], b[k])]
    assert not bad, f"resumed run differs in {bad[:5]} (killed after step {saved[-1][0]})"
    assert all(np.array_equal(a[k], b[k]) for k in a if k.startswith("model/"))  # the weights: bit for bit
    assert "resumed from" in (root / "resumed.log").read_text()
    log = (root / "ref.log").read_text()
    assert "gradient checkpointing" in log and "fp16 with dynamic loss scaling" in log
    assert "loss=" not in log  # --no_progress (the bar itself: the demo run)
    steps = [json.loads(ln) for ln in (root / "ref" / "train_log.jsonl").read_text().splitlines()]
    assert [m["step"] for m in steps] == [1, 2] and all(np.isfinite(m["loss"]) for m in steps)
    assert all(m["loss_scale"] == 1024.0 and not m["skipped"] for m in steps)  # finite float16 gradients
    assert all(v.dtype == np.float32 for k, v in a.items() if k.startswith("model/"))  # float32 master weights
    assert (root / "ref" / "samples" / "sample-2" / "0.gif").is_file()  # validation at validation_steps
    assert (root / "ref" / "samples" / "sample-2.gif").is_file()  # + the grid of all prompts
    # the released motion-module layout: exactly the trained tensors, no pos_encoder.pe, no optimizer state
    mm = root / "ref" / "checkpoints" / "mm_step000002.safetensors"
    sd = load_file(str(mm))
    model = {k[len("model/unet."):]: v for k, v in a.items() if k.startswith("model/")}  # names in the loss Cell
    assert sorted(sd) == sorted(model) and all("motion_modules." in k for k in sd)
    assert all(np.array_equal(sd[k], model[k]) for k in sd)
    assert (root / "ref" / "checkpoints" / "mm_step000001.safetensors").is_file()
    epoch_end = load_file(str(root / "ref" / "checkpoints" / "mm_epoch0001.safetensors"))  # 2 clips, 1 a step
    assert all(np.array_equal(epoch_end[k], sd[k]) for k in sd)
    # ... loadable by text_to_video.py's motion_module path (inference-v1.yaml: the training yaml's layout)
    t2v = _load("text_to_video_for_train", PROJECT / "text_to_video.py")
    prompt = tmp_path / "prompt.yaml"
    prompt.write_text(yaml.safe_dump([dict(inference_config=str(PROJECT / "configs/inference/inference-v1.yaml"),
                                           motion_module=str(mm), H=32, W=32, L=2, seed=[3], steps=1,
                                           guidance_scale=7.5, prompt=["a red circle"], n_prompt=[""])]))
    capsys.readouterr()
    rc = t2v.main(["--config", str(prompt), "--pretrained_model_path", str(setup["tw"]["sd"]),
                   "--output_dir", str(tmp_path / "t2v"), "--no_progress", "--mode", "pynative"])
    assert rc == 0, capsys.readouterr().err
    assert "load motion module" in capsys.readouterr().out
    unet = L.build_unet(setup["tw"]["sd"], InferenceConfig.load(PROJECT / "configs/inference/inference-v1.yaml")
                        .unet_additional_kwargs)
    assert L.load_motion_module(unet, mm) == len(sd)
    params = dict(unet.parameters_and_names())
    assert all(np.array_equal(params[k].asnumpy(), v) for k, v in sd.items())


@pytest.mark.slow
def test_motion_lora_trains_only_the_lora_and_loads_as_merged(setup, tmp_path):
    """train.py --motion_lora_rank: 2 steps on the random demo model (proj_out not zero, so the motion modules act),
    the file in the released layout, loaded by inference at alpha = the output of the trained (unmerged) model."""
    alpha, out = 0.5, tmp_path / "lora"
    r = subprocess.run([*_cmd(setup, out), "--random_weights", "--motion_lora_rank=2", f"--motion_lora_alpha={alpha}",
                        "--unet_additional_kwargs.motion_module_kwargs.zero_initialize=false", "--learning_rate=1e-2",
                        "--checkpointing_steps=2", "--validation_data.prompts=[]"],
                       capture_output=True, text=True, timeout=600, cwd=PROJECT)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "MotionLoRA of rank 2 (alpha 0.5)" in r.stderr
    path = out / "checkpoints" / "motion_lora_step000002.safetensors"
    sd = load_file(str(path))
    state, _ = load_state(out / "ckpt-00000002.safetensors")
    trained = {k[len("model/unet."):] for k in state if k.startswith("model/")}
    assert trained == set(sd)  # only the LoRA was trained
    assert all(".processor.to_" in k and k.endswith(("_lora.down.weight", "_lora.up.weight")) for k in sd)
    assert all(np.abs(v).max() > 0 for k, v in sd.items() if k.endswith(".up.weight"))  # up left its zero init
    # the same base model as the run (the demo model of global_seed 42), the trained LoRA attached unmerged
    kw = dict(InferenceConfig.load(PROJECT / "configs" / "inference" / "inference-v1.yaml").unet_additional_kwargs)
    kw["motion_module_kwargs"] = dict(kw["motion_module_kwargs"], zero_initialize=False)
    pipe = tiny_random_pipeline(InferenceConfig(unet_additional_kwargs=kw, scheduler=None), seed=42)
    unet = pipe.unet
    before = {n: p.asnumpy().copy() for n, p in unet.parameters_and_names()}
    rng = np.random.default_rng(0)
    x = ms.Tensor(rng.standard_normal((1, 4, 2, 8, 8)).astype(np.float32))
    t, ehs = ms.Tensor(np.array([300], np.int64)), ms.Tensor(rng.standard_normal((1, 77, 32)).astype(np.float32))
    unet.set_train(False)
    y_base = unet(x, t, ehs).asnumpy()
    add_motion_lora(unet, rank=2, alpha=alpha)
    n_attn = sum(n.endswith("to_q.weight") and "motion_modules." in n for n in before)
    assert len(sd) == 8 * n_attn  # (q, k, v, out) x (down, up) per motion-module attention block
    for n, p in unet.parameters_and_names():
        if n in sd:
            p.set_data(ms.Tensor(sd[n]))
    y_train = unet(x, t, ehs).asnumpy()
    remove_motion_lora(unet)
    assert L.load_motion_lora(unet, path, alpha) == len(sd) // 2  # merged W += alpha * up @ down, every pair
    merged = dict(unet.parameters_and_names())
    k = next(k for k in sd if k.endswith("to_out_lora.up.weight"))
    w = k.replace("processor.to_out_lora.up.weight", "to_out.0.weight")
    np.testing.assert_allclose(merged[w].asnumpy(), before[w] + alpha * sd[k] @ sd[k.replace(".up.", ".down.")],
                               rtol=0, atol=1e-6)
    y_inf = unet(x, t, ehs).asnumpy()
    change = np.abs(y_train - y_base).max()
    assert change > 1e-4  # the LoRA acts
    # unmerged (W x + a U (D x)) vs merged ((W + a U D) x): float32 rounding of the two orders only (~1e-7 relative
    # per projection, a few dozen projections in a row)
    np.testing.assert_allclose(y_inf, y_train, rtol=0, atol=1e-5 * max(1.0, np.abs(y_train).max()))


@pytest.mark.slow
@pytest.mark.distributed
def test_two_ranks_equal_one_process_on_the_concatenated_batch(setup, tmp_path):
    def args(out, batch):
        return [str(PROJECT / "train.py"), "-c", str(DEMO), *setup["base"], f"--output_dir={out}",
                "--max_train_steps=1", f"--train_batch_size={batch}", "--learning_rate=1.0", "--adam_weight_decay=0",
                # eps = 1: Adam's first step ~ lr * g, linear in the gradient (see DynamiCrafter's msrun test)
                "--adam_epsilon=1.0", "--validation_data.prompts=[]", f"--dump_rank_params={out}/rank{{rank}}.safetensors"]

    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    logs = tmp_path / "msrun_logs"
    cmd = ["msrun", "--worker_num=2", "--local_worker_num=2", f"--master_port={free_port()}", "--join=True",
           f"--log_dir={logs}", "python", *args(tmp_path / "dp", 1)]
    worker_logs = run_single_and_distributed([sys.executable, *args(tmp_path / "one", 2)], cmd, PROJECT, env, logs)
    assert "2 process(es)" in worker_logs
    r0, r1 = (load_file(str(tmp_path / "dp" / f"rank{r}.safetensors")) for r in (0, 1))
    one = load_file(str(tmp_path / "one" / "rank0.safetensors"))
    assert sorted(r0) == sorted(one) and all("motion_modules." in k for k in r0)
    state, _ = load_state(tmp_path / "one" / "ckpt-00000001.safetensors")
    # the update is ~lr * g (g = exp_avg / (1 - beta1) after one step). The two gradients (a batch of 2 vs the mean of
    # two batches of 1: other kernels, other summation orders) differ by float32 rounding of sums over every token,
    # whose size follows the summed terms, not the (often cancelling) result: bounded by ~1e-3 of the largest gradient
    g_max = max(float(np.abs(state[f"optim/exp_avg/{k}"]).max()) / 0.1 for k in r0)
    errs = {}
    for k in r0:
        assert np.array_equal(r0[k], r1[k]), f"ranks disagree on {k}"
        errs[k] = float(np.abs(r0[k].astype(np.float64) - one[k]).max())
    worst = max(errs, key=errs.get)
    print(f"largest gradient {g_max:.3g}; largest difference {errs[worst]:.3g} ({worst})")
    assert errs[worst] <= 1e-3 * g_max, f"{worst}: data parallel vs one process differ by {errs[worst]} (g_max {g_max})"
    assert (tmp_path / "dp" / "checkpoints" / "mm_step000001.safetensors").is_file()


def test_distributed_launcher_dry_run(tmp_path):
    """scripts/run/run_train_distributed.sh: the msrun and rank-table command lines, a refusal in one line."""
    script = PROJECT / "scripts" / "run" / "run_train_distributed.sh"

    def launch(*args, env=None):
        return subprocess.run(["bash", str(script), "--dry_run", *args], capture_output=True, text=True, timeout=60,
                              env={**os.environ, **(env or {})})

    cfg = "configs/training/v1/training.yaml"
    r = launch("msrun", "2", cfg, "runs/mm", "--motion_lora_rank=4", env={"MASTER_PORT": "9000"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ("msrun --worker_num=2 --local_worker_num=2 --master_port=9000 --join=True "
                                f"--log_dir=runs/mm/msrun_log python train.py -c {cfg} --output_dir runs/mm "
                                "--motion_lora_rank=4")
    table = tmp_path / "rank_table.json"
    table.write_text(json.dumps({"server_list": [{"server_id": "10.0.0.1", "device": [
        {"device_id": "4", "rank_id": "0"}, {"device_id": "5", "rank_id": "1"}]}]}))
    r = launch("rank_table", str(table), cfg, "out")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"RANK_TABLE_FILE={table} RANK_SIZE=2 RANK_ID={rank} DEVICE_ID={dev} python "
                                     f"train.py -c {cfg} --output_dir out > out/rank_{rank}.log"
                                     for rank, dev in ((0, 4), (1, 5))]
    r = launch("msrun", "0", cfg, "o")
    assert r.returncode == 2 and "error: N_PROC must be a positive integer, got '0'" in r.stderr


def test_gradient_checkpointing_gives_the_same_gradients():
    from animatediff_ms.finetune import MotionLoss
    from animatediff_ms.training import trainable_parameters

    inf = InferenceConfig.load(PROJECT / "configs" / "inference" / "inference-v2.yaml")  # mid-block module too
    unet = tiny_random_pipeline(inf, seed=0).unet
    params = trainable_parameters(unet, ["motion_modules."])
    unet.set_train(True)
    rng = np.random.default_rng(0)
    x, noise = (ms.Tensor(rng.standard_normal((1, 4, 2, 8, 8)).astype(np.float32)) for _ in range(2))
    t, ehs = ms.Tensor(np.array([300])), ms.Tensor(rng.standard_normal((1, 77, 32)).astype(np.float32))
    grads = []
    for on in (False, True):
        unet.set_gradient_checkpointing(on)
        grads.append(ms.value_and_grad(MotionLoss(unet), None, params)(x, t, ehs, noise)[1])
    unet.set_gradient_checkpointing(False)
    # the same operations run again in the backward pass: equal up to the order of a few float32 sums
    for a, b in zip(*grads):
        np.testing.assert_allclose(b.asnumpy(), a.asnumpy(), rtol=0, atol=1e-7)


def test_folder_dataset_trains_and_bad_folders_are_one_line(setup, capsys, tmp_path):
    """Without a CSV (csv_path empty) video_folder is a folder of mp4s with .txt captions: one step trains; an empty
    folder, a video without a caption, an unreadable mp4 are one line naming the file."""
    from animatediff_ms.train_data import WebVid10M

    folder = make_demo_webvid(tmp_path / "clips", n=2, frames=8, size=(64, 80), layout="folder")
    cfg_data = type("D", (), {"csv_path": "", "video_folder": str(folder)})
    assert [c for _, _, c in WebVid10M.rows(cfg_data)] == [(folder / f"{i}.txt").read_text().strip()
                                                            for i in (1000, 1001)]
    out = tmp_path / "run"
    rc = train.main(["-c", str(DEMO), *setup["base"], "--train_data.csv_path=", f"--train_data.video_folder={folder}",
                     "--max_train_steps=1", f"--output_dir={out}"])
    err = capsys.readouterr().err
    assert rc == 0 and "2 videos, 1 process(es), 1 steps" in err, err[-2000:]
    (tmp_path / "empty").mkdir()
    nocap = tmp_path / "nocap"
    nocap.mkdir()
    (nocap / "a.mp4").write_bytes((folder / "1000.mp4").read_bytes())
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "junk.mp4").write_bytes(b"junk")
    (broken / "junk.txt").write_text("junk\n")
    assert "train_data.video_folder" in _bad(setup, capsys, "--train_data.csv_path=",
                                             f"--train_data.video_folder={tmp_path / 'empty'}")
    assert "a.mp4 has no caption" in _bad(setup, capsys, f"--train_data.csv_path={nocap}")
    err = _bad(setup, capsys, f"--train_data.csv_path={broken}")
    assert "cannot read video" in err and "junk.mp4" in err
