"""``videogen`` (common.videogen) and the run record (common.sidecar): list, one-line errors before any model is
built, every model's tiny run through its spec, ``run --from`` repeating a run exactly."""
from __future__ import annotations

import json

import numpy as np
import pytest

from common.sidecar import read_sidecar, sidecar_path, weight_files, write_sidecar
from common.video_io import read_png_frames, read_video_frames
from common.videogen.cli import main
from common.videogen.run import MODEL_NAMES, execute, get_spec, plan


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in MODEL_NAMES:
        assert f"{name}: " in out and f"$VIDEOGEN_{name.upper()}_WEIGHTS" in out
    assert "videogen convert svd" in out and "not needed" in out  # dropletvideo reads its release as is


@pytest.mark.parametrize("argv, where", [
    (["run", "svd", "--prompt", "x"], "svd takes no --prompt"),
    (["run", "animatediff", "--height", "60"], "--height 60"),
    (["run", "dynamicrafter", "--image", "/no/such.png"], "(--image)"),
    (["run", "dynamicrafter", "--num_frames", "8"], "--num_frames 8"),
    (["run", "dynamicrafter", "--application", "interp"], "(--end_image)"),
    (["run", "dropletvideo", "--fps", "40"], "--fps"),
    (["run", "svd", "--mode", "fast"], "--mode"),
    (["run", "svd", "--seed", "-3"], "--seed -3"),
    (["run", "svd", "--formats", "avi"], "--formats"),
    (["run", "animatediff", "--weights", "/no/such/folder"], "(--weights"),
    (["run", "animatediff", "--motion_module", "mm.ckpt"], "--motion_module needs a weights folder"),
    (["run", "videocomposer", "--style_image", "/no/such.png"], "(--style_image)"),
    (["run", "svd", "--sampler", "heun"], "--sampler"),
    (["run", "dynamicrafter", "--sampler", "dpmpp_2m", "--num_inference_steps", "1000"], "dpmpp_2m takes at most 999"),
    (["run", "nosuchmodel"], "unknown model"),
    (["run", "--from", "/no/such.json"], "(--from)"),
    (["convert", "dropletvideo"], "needs no conversion"),
    (["frobnicate"], "unknown command"),
])
def test_bad_input_one_line(argv, where, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's usage errors (OneLineParser: one line, status 2)
        rc = e.code
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and where in err, err
    assert not list(tmp_path.rglob("*.mp4"))  # nothing generated


def test_sidecar(tmp_path):
    w = tmp_path / "w"
    w.mkdir()
    (w / "a.bin").write_bytes(b"abc")
    files = weight_files([w])
    assert files == [{"name": "a.bin", "path": str((w / "a.bin").absolute()), "bytes": 3,
                      "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}]
    assert weight_files([w], sha256_max_bytes=2)[0]["sha256"] is None  # big files: no hash
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    rec = write_sidecar(video, model="svd", settings={"seed": np.int64(3), "image": tmp_path / "p.png"}, weights=[w],
                        seed=3, seconds=1.23456)
    assert rec == sidecar_path(video) == tmp_path / "clip.json"
    data = read_sidecar(rec)
    assert data["settings"] == {"seed": 3, "image": str(tmp_path / "p.png")} and data["outputs"] == ["clip.mp4"]
    assert data["seconds"] == 1.235 and data["versions"]["mindspore"] and data["weights"][0]["bytes"] == 3
    (tmp_path / "bad.json").write_text(json.dumps({"model": "svd"}))
    with pytest.raises(ValueError, match="not a videogen run record"):
        read_sidecar(tmp_path / "bad.json")


@pytest.mark.slow
def test_every_model_tiny(tmp_path):
    """Each spec maps the common settings onto its pipeline: the requested frames, size and formats come out."""
    sizes = {"dynamicrafter": (16, 64, 64), "svd": (3, 64, 64), "animatediff": (4, 64, 64),
             "videocomposer": (2, 256, 256), "dropletvideo": (9, 64, 96)}
    for name in MODEL_NAMES:
        t, h, w = sizes[name]
        s = {"num_inference_steps": 2, "num_frames": t}
        if name == "videocomposer":
            s["num_inference_steps"] = 1
        res = execute(plan(name, s, output_dir=tmp_path, formats=("mp4",), name=name, use_env=False), log=None)
        assert res.frames.shape == (t, h, w, 3), name
        assert read_video_frames(tmp_path / f"{name}.mp4").shape == (t, h, w, 3)
        rec = read_sidecar(tmp_path / f"{name}.json")
        assert rec["model"] == name and rec["random_weights"] and rec["frames"]["count"] == t
        assert set(rec["settings"]) == set(get_spec(name).params())


@pytest.mark.slow
def test_dpmpp_2m_through_the_specs(tmp_path):
    """``--sampler dpmpp_2m`` reaches DynamiCrafter's and SVD's pipelines and the run record."""
    for name, t in (("dynamicrafter", 16), ("svd", 3)):
        s = {"num_inference_steps": 1, "num_frames": t, "sampler": "dpmpp_2m"}
        res = execute(plan(name, s, output_dir=tmp_path, formats=("mp4",), name=name, use_env=False), log=None)
        assert res.frames.shape[0] == t and np.isfinite(res.frames).all(), name
        assert read_sidecar(tmp_path / f"{name}.json")["settings"]["sampler"] == "dpmpp_2m"


@pytest.mark.slow
def test_run_from_repeats(tmp_path, capsys):
    argv = ["run", "animatediff", "--output_dir", str(tmp_path), "--name", "a", "--num_frames", "4", "--seed", "5",
            "--formats", "mp4,gif,webp", "--png_frames", "--no_progress"]
    assert main(argv) == 0
    assert "TINY RANDOMLY INITIALISED" in capsys.readouterr().out
    for suffix in (".mp4", ".gif", ".webp"):
        assert read_video_frames(tmp_path / f"a{suffix}").shape == (4, 64, 64, 3)
    assert main(["run", "--from", str(tmp_path / "a.json"), "--name", "b", "--no_progress"]) == 0
    np.testing.assert_array_equal(read_png_frames(tmp_path / "a_frames"), read_png_frames(tmp_path / "b_frames"))
    a, b = read_sidecar(tmp_path / "a.json"), read_sidecar(tmp_path / "b.json")
    assert a["settings"] == b["settings"] and b["outputs"] == ["b.mp4", "b.gif", "b.webp", "b_frames"]
    assert main(["run", "--from", str(tmp_path / "a.json"), "--name", "c", "--seed", "6", "--no_progress"]) == 0
    assert read_sidecar(tmp_path / "c.json")["seed"] == 6
    assert not np.array_equal(read_png_frames(tmp_path / "a_frames"), read_png_frames(tmp_path / "c_frames"))


def test_convert_delegates(tmp_path, capfd):
    """``videogen convert MODEL ...`` is the model's tools/convert_weight.py with the same flags and exit status."""
    rc = main(["convert", "dynamicrafter", "--kind", "256", "--src", str(tmp_path / "none.ckpt"),
               "--target", str(tmp_path / "x.ckpt")])
    err = capfd.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: ") and "none.ckpt" in err and "\n" not in err
    assert not (tmp_path / "x.ckpt").exists()


@pytest.mark.slow
def test_tiny_model_is_the_same_on_every_build(tmp_path):
    """A tiny random model is drawn from a fixed seed, so a run repeats in another process (``--from``): a rebuild
    after other random draws gives the same video."""
    import mindspore as ms

    from common.videogen import run

    s = {"num_inference_steps": 2, "num_frames": 3}
    a = execute(plan("svd", s, output_dir=tmp_path, use_env=False), log=None).frames
    run._CACHE.clear()
    ms.set_seed(12345)
    np.random.seed(12345)
    b = execute(plan("svd", s, output_dir=tmp_path, use_env=False), log=None).frames
    # float32 rounding (thread scheduling of reductions) moves a frame by ~1e-6; other weights move it by ~1
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)
    assert read_sidecar(sorted(tmp_path.glob("svd_*.json"))[-1])["tiny_weights_seed"] == run.TINY_WEIGHTS_SEED


@pytest.mark.slow
def test_dropletvideo_with_a_weights_folder(tmp_path):
    """A weights folder in the released layout (the tiny one) goes through the released loading path; the record
    lists its files."""
    from dropletvideo_ms.tiny import write_tiny_weights

    folder = write_tiny_weights(tmp_path / "DropletVideo-V1.0-weights", seed=3)
    argv = ["run", "dropletvideo", "--weights", str(folder), "--image", str(get_spec("dropletvideo").tiny["image"]),
            "--prompt", "a panda", "--height", "64", "--width", "96", "--num_frames", "5", "--num_inference_steps",
            "2", "--max_sequence_length", "32", "--output_dir", str(tmp_path / "out"), "--name", "d", "--no_progress"]
    assert main(argv) == 0
    rec = read_sidecar(tmp_path / "out" / "d.json")
    assert not rec["random_weights"] and rec["frames"]["count"] == 8  # 2 latent frames decode to 8 (the original's)
    assert {"model_index.json", "transformer/config.json"} <= {w["name"] for w in rec["weights"]}
    assert read_video_frames(tmp_path / "out" / "d.mp4").shape == (8, 64, 96, 3)
