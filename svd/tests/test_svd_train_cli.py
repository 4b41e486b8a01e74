"""train.py end to end on the tiny model and real mp4 files: SIGKILL + resume is exact, bad videos, bad CSVs."""
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import save_file

from common.train import list_checkpoints, load_state
from common.train.testing import sigkill_after_first_checkpoint

from .conftest import SVD_DIR, TINY_CONFIG, make_videos

pytestmark = pytest.mark.slow
STEPS = 3


@pytest.fixture(scope="module")
def setup(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    csv = make_videos(root / "videos", n=3)
    ckpt = root / "tiny.safetensors"
    save_file({p.name: p.asnumpy() for p in tiny_model.get_parameters()}, str(ckpt))
    return root, csv, ckpt


def _args(csv, ckpt, out, *extra):
    return [sys.executable, "train.py", "--config=configs/svd_train.yaml", f"--svd_config={TINY_CONFIG}",
            f"--train.pretrained={ckpt}", f"--train.output_dir={out}", "--train.temporal_only=True",
            f"--train.max_steps={STEPS}", "--train.ckpt_every=1", "--train.export=False",
            "--train.dataset.init_args.frames=2", "--train.dataset.init_args.step=2",
            "--train.dataset.init_args.size=[32,32]", f"--train.dataset.init_args.metadata={csv}",
            "--train.settings.gradient_accumulation_steps=2", "--train.scheduler.lr=1e-3",
            "--train.scheduler.warmup_steps=1", "--train.ema_decay=0.9", *extra]


def _start(cmd, log):
    return subprocess.Popen(cmd, cwd=SVD_DIR, stdout=open(log, "w"), stderr=subprocess.STDOUT)


def _wait(proc, log, timeout=600):
    rc = proc.wait(timeout=timeout)
    assert rc == 0, f"exit {rc}:\n{log.read_text()[-3000:]}"


def test_sigkill_mid_run_then_resume_is_exact(setup):
    root, csv, ckpt = setup
    ref = _start(_args(csv, ckpt, root / "ref"), root / "ref.log")
    victim_dir = root / "victim"
    victim = _start(_args(csv, ckpt, victim_dir), root / "victim.log")
    saved = sigkill_after_first_checkpoint(victim, victim_dir, root / "victim.log", STEPS, pause=0.5)  # inside step 2
    resumed = _start(_args(csv, ckpt, victim_dir), root / "resumed.log")
    _wait(resumed, root / "resumed.log")
    _wait(ref, root / "ref.log")
    a, _ = load_state(root / "ref" / f"ckpt-{STEPS:08d}.safetensors")
    b, meta = load_state(victim_dir / f"ckpt-{STEPS:08d}.safetensors")
    assert meta["step"] == STEPS and sorted(a) == sorted(b)
    assert any(k.startswith("ema/") for k in a) and any(k.startswith("optim/") for k in a)
    bad = [k for k in a if not np.array_equal(a[k], b[k])]
    assert not bad, f"resumed run differs in {bad[:5]} (killed after step {saved[-1][0]})"
    log = (root / "ref.log").read_text()
    assert "training 338 tensors" in log and "loss=" in log  # parameter count and the progress bar


def test_bad_video_with_stop_ends_training_and_keeps_checkpoints(setup):
    root, _, ckpt = setup
    csv = make_videos(root / "bad", n=3)
    (root / "bad" / "v2.mp4").write_bytes(b"not a video at all" * 50)
    out = root / "bad_run"
    r = subprocess.run(_args(csv, ckpt, out, "--train.on_bad_video=stop", "--train.dataloader.shuffle=False",
                             "--train.settings.gradient_accumulation_steps=1"),
                       cwd=SVD_DIR, capture_output=True, text=True, timeout=600)
    assert r.returncode == 2, r.stderr[-3000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "v2.mp4" in lines[0] and "checkpoints" in lines[0]
    saved = list_checkpoints(out)
    assert [s for s, _ in saved] == [1, 2]  # v0, v1 trained and saved; v2 stopped step 3
    arrays, meta = load_state(saved[-1][1])
    assert meta["step"] == 2 and arrays


@pytest.mark.parametrize("edit,message", [
    ("header", "header is 'file,length,motion_bucket_id'"),
    ("missing", "does not exist"),
])
def test_bad_csv_stops_at_once_with_one_line(setup, edit, message):
    root, _, ckpt = setup
    csv = make_videos(root / f"csv_{edit}", n=2)
    if edit == "header":
        csv.write_text(csv.read_text().replace("path,", "file,", 1))
    else:
        csv.write_text(csv.read_text() + "gone.mp4,10,3\n")
    r = subprocess.run(_args(csv, ckpt, root / f"out_{edit}", "--train.on_bad_video=stop"), cwd=SVD_DIR,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    errs = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errs) == 1 and message in errs[0]


def test_unknown_option_is_one_line():
    r = subprocess.run([sys.executable, "train.py", "--train.no_such_key=3"], cwd=SVD_DIR, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().startswith("error: unknown option --train.no_such_key: train.no_such_key is not a key of "
                                       f"{SVD_DIR / 'configs' / 'svd_train.yaml'}")


def _train_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("svd_train_script", SVD_DIR / "train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("args,message", [
    (["--train.dataset.init_args.frams=4"], "init_args.frams is not a key of {cfg} (did you mean 'frames'?)"),
    (["--train.epochs=0"], "{cfg}: train.epochs: 0 must be >= 1"),
    (["--train.dataset.init_args.frames=-2"], "{cfg}: train.dataset.init_args.frames: -2 must be >= 1"),
    (["--train.amp_level=O3"], "{cfg}: train.amp_level: 'O3' is not one of ['O0', 'O2']"),
    (["--train.ucg_rate=2"], "train.ucg_rate: 2.0 is not a probability"),
    (["--environment.mode=graph"], "{cfg}: environment.mode: 'graph' is not one of [0, 1]"),
    (["--train.pretrained={tmp}"], "--train.pretrained {tmp} is not a file"),
    (["--train.output_dir={file}/sub"], "--train.output_dir {file}/sub lies below a file"),
    (["--config={tmp}"], "--config {tmp} is not a file"),
    (["--train.dataset.init_args.metadata=null"], "--train.dataset.init_args.metadata is required"),
])
def test_bad_options_are_refused_before_any_work(tmp_path, capsys, args, message):
    train = _train_module()
    cfg = SVD_DIR / "configs" / "svd_train.yaml"
    (tmp_path / "f.txt").write_text("x")
    fill = {"tmp": tmp_path, "file": tmp_path / "f.txt", "cfg": cfg}
    base = [f"--svd_config={TINY_CONFIG}", "--train.dataset.init_args.metadata=x.csv"]
    assert train.main(base + [a.format(**fill) for a in args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: ") and message.format(**fill) in err, err


def test_help_lists_every_training_key(capsys):
    train = _train_module()
    with pytest.raises(SystemExit) as e:
        train.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "-c CONFIG, --config CONFIG" in out  # `python train.py -c configs/x.yaml`, as in every model
    for key in ("--train.dataset.init_args.frames (4): frames per clip", "--train.scheduler.warmup_steps (50)",
                "--LossScale.loss_scale ('auto')", "--environment.mode (1): 0 = graph"):
        assert key in out, key
