"""Long videos on the tiny models: ``--keyframes`` (interpolation between consecutive keyframes) and ``--extend N``."""
from __future__ import annotations

import numpy as np
import pytest
from dynamicrafter_ms.inference import main
from dynamicrafter_ms.longvideo import extend_video, frame_as_picture, keyframe_video, segment_generator
from dynamicrafter_ms.pipeline import DynamiCrafterPipeline
from PIL import Image

from common.video_io import read_video_frames

OPTS = dict(num_inference_steps=2, frame_stride=5, progress=False)


@pytest.fixture(scope="module")
def interp(tmp_path_factory, dc):
    """The tiny interp-kind config and a model built from it with deterministic random weights."""
    from dynamicrafter_ms.config import DynamiCrafterConfig
    from dynamicrafter_ms.model import DynamiCrafter

    cfg = dc.tiny_config("512", frames=4)
    cfg["model"]["params"]["interp_mode"] = True
    path = dc.write_config(tmp_path_factory.mktemp("long"), cfg, "tiny_interp.yaml")
    model = DynamiCrafter(DynamiCrafterConfig.from_yaml(path))
    dc.randomize(model, seed=2, std=0.1)
    model.set_train(False)
    return path, DynamiCrafterPipeline(model)


def _pictures(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, (3, 64, 64)).astype(np.float32) for _ in range(n)]


def test_keyframes_join_segments_without_repeating_the_shared_frame(interp):
    _, pipe = interp
    keys = _pictures(3)
    video, segs = keyframe_video(pipe, keys, "a walk", 4, seed=9, **OPTS)
    assert len(segs) == 2 and video.shape == (2 * 3 + 1, 64, 64, 3)
    np.testing.assert_array_equal(video[:4], segs[0])  # segment 0 whole, ending on keyframe 1
    np.testing.assert_array_equal(video[4:], segs[1][1:])  # segment 1 without its first frame (keyframe 1 again)
    alone = pipe(["a walk"], np.stack([keys[1], keys[1], keys[2], keys[2]], 1)[None], interp=True,
                 generator=segment_generator(9, 0, 1), **OPTS).frames[0]
    np.testing.assert_array_equal(alone, segs[1])  # a segment can be made again on its own


def test_extend_continues_from_the_last_frame(tiny_model):
    pipe = DynamiCrafterPipeline(tiny_model)
    pic = _pictures(1, seed=1)[0]
    video, segs = extend_video(pipe, pic, "a boat", 2, 2, seed=4, **OPTS)
    assert len(segs) == 3 and video.shape == (2 + 2 * 1, 64, 64, 3)
    np.testing.assert_array_equal(video[:2], segs[0])
    np.testing.assert_array_equal(video[2:3], segs[1][1:])
    np.testing.assert_array_equal(video[3:], segs[2][1:])
    again = pipe(["a boat"], np.repeat(frame_as_picture(segs[1][-1])[:, None], 2, 1)[None],
                 generator=segment_generator(4, 0, 2), **OPTS).frames[0]
    np.testing.assert_array_equal(again, segs[2])  # continuation 2 = image-to-video from clip 1's last frame


def _save(folder, n):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    paths = []
    for i in range(n):
        p = folder / f"k{i}.png"
        Image.fromarray(rng.integers(0, 255, (60, 90, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    return paths


def _common(cfg, out):
    return ["--config", str(cfg), "--savedir", str(out), "--height", "64", "--width", "64", "--ddim_steps", "2",
            "--random_init", "--no_progress", "--any_size", "--mode", "pynative"]  # eager: no UNet compile per run


@pytest.mark.slow
def test_cli_keyframes_and_extend_write_one_joined_mp4(interp, tiny_dir, tmp_path):
    cfg, _ = interp
    keys = _save(tmp_path / "keys", 3)
    assert main(_common(cfg, tmp_path / "k") + ["--video_length", "4", "--keyframes", *keys, "--prompt", "x"]) == 0
    files = sorted((tmp_path / "k" / "samples_separate").iterdir())
    assert [f.name for f in files] == ["keyframes_sample0.mp4"]
    assert read_video_frames(files[0]).shape[0] == 2 * 3 + 1
    d = tmp_path / "pd"
    _save(d, 1)
    (d / "prompts.txt").write_text("a boat\n")
    argv = _common(tiny_dir / "tiny256.yaml", tmp_path / "e") + ["--video_length", "2", "--prompt_dir", str(d),
                                                                  "--extend", "2"]
    assert main(argv) == 0
    files = sorted((tmp_path / "e" / "samples_separate").iterdir())
    assert [f.name for f in files] == ["k0_sample0.mp4"] and read_video_frames(files[0]).shape[0] == 2 + 2 * 1


def test_long_video_flags_are_checked_before_any_work(capsys, interp, tiny_dir, tmp_path):
    cfg, _ = interp
    keys = _save(tmp_path / "keys", 2)
    d = tmp_path / "pd"
    _save(d, 1)
    (d / "prompts.txt").write_text("a\n")
    cases = [
        (cfg, ["--keyframes", keys[0]], "--keyframes needs at least 2 pictures, got 1"),
        (tiny_dir / "tiny256.yaml", ["--keyframes", *keys], "--keyframes needs the interpolation model"),
        (cfg, ["--keyframes", *keys, "--interp"], "--keyframes and --interp exclude each other"),
        (cfg, ["--keyframes", *keys, "--extend", "2"], "--keyframes and --extend exclude each other"),
        (cfg, ["--keyframes", *keys, "--video_length", "3"], "--keyframes needs an even --video_length, got 3"),
        (cfg, ["--keyframes", keys[0], str(tmp_path / "nope.png")], "picture not found"),
        (cfg, [], "--prompt_dir is required (or --keyframes"),
        (cfg, ["--prompt_dir", str(d), "--extend", "-1"], "--extend must be >= 0, got -1"),
        (cfg, ["--prompt_dir", str(d), "--extend", "1", "--loop"], "it does not combine with --loop"),
        (cfg, ["--prompt_dir", str(d), "--prompt", "x"], "--prompt is the text of --keyframes"),
    ]
    for config, extra, message in cases:
        assert main(_common(config, tmp_path / "never") + extra) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], (extra, err)
    assert not (tmp_path / "never").exists()
