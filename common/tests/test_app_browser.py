"""The app in a real browser: headless Chromium opens it, fills the AnimateDiff tab (tiny random weights), sees the
one-line message of a bad input, generates (the progress follows the denoising steps), and the file the page serves is a playable video with the requested
frame count. The screenshot is kept as a test artefact (``<tmp>/app.png``)."""
from __future__ import annotations

import json
import re

import pytest

from common import app_check
from common.video_io import read_video_frames

FRAMES = 6
STEPS = 12  # enough steps that the page shows the denoising progress while they run


@pytest.mark.slow
def test_app_in_chromium(tmp_path):
    try:
        app_check.chromium_paths()
    except RuntimeError as e:
        pytest.fail(str(e))
    out = tmp_path / "outputs"
    out.mkdir()
    with app_check.running_app(out) as url:
        driver = app_check.browser(1400, 1600)
        try:
            # bad input: a clear one-line message, no traceback, nothing written
            app_check.open_tab(driver, url, "animatediff", "AnimateDiff", {"height": 60})
            msg = app_check.error_message(driver)
            assert "--height 60" in msg and "multiple of 8" in msg and "Traceback" not in msg
            assert not list(out.glob("*.mp4"))
            seen = []
            src = app_check.generate_in_tab(driver, url, "animatediff", "AnimateDiff",
                                            {"prompt": "a red fox in the snow", "num_frames": FRAMES, "seed": 7,
                                             "num_inference_steps": STEPS}, progress=seen)
            driver.execute_script("window.scrollTo(0, 0)")
            driver.save_screenshot(str(tmp_path / "app.png"))
        finally:
            driver.quit()
        served = app_check.download(src, tmp_path / "served.mp4")
    moved = [t for t in seen if "denoising" in t or re.search(rf"\b[1-9]\d*/{STEPS} steps", t)]
    assert moved, seen  # the bar follows the denoising steps (not only "building the model" at 0/STEPS)
    video = read_video_frames(served)
    assert video.shape == (FRAMES, 64, 64, 3)
    assert video.std() > 0  # frames, not a blank clip
    records = list(out.glob("animatediff_*.json"))
    assert len(records) == 1
    rec = json.loads(records[0].read_text())
    assert rec["settings"]["prompt"] == "a red fox in the snow" and rec["seed"] == 7 and rec["random_weights"]
    assert sorted(rec["outputs"]) == sorted(p.name for p in out.glob("animatediff_*") if p.suffix != ".json")
    assert {p.suffix for p in out.glob("animatediff_*")} == {".mp4", ".gif", ".webp", ".json"}
    assert (tmp_path / "app.png").stat().st_size > 10_000


@pytest.mark.slow
def test_app_generate_function(tmp_path):
    """The tab's handler without a browser: PNG frames as a zip among the downloads, settings shown, and bad input
    a one-line ``gr.Error`` (no model built)."""
    import zipfile

    import gradio as gr

    from common.app import _generate_fn
    from common.videogen.run import get_spec

    spec = get_spec("animatediff")
    params = list(spec.params().values())
    fn = _generate_fn(gr, spec, params, None, tmp_path)
    values = dict(spec.resolve({}, None, None)[0], num_frames=3, num_inference_steps=2)
    steps = []
    mp4, files, shown = fn("v2", True, *[values[p.name] for p in params],
                           progress=lambda frac, desc=None, unit=None: steps.append(frac))
    assert read_video_frames(mp4).shape == (3, 64, 64, 3)
    assert sorted(f.rsplit(".", 1)[1] for f in files) == ["gif", "json", "mp4", "webp", "zip"]
    (zipped,) = [f for f in files if f.endswith(".zip")]
    assert len(zipfile.ZipFile(zipped).namelist()) == 3
    assert shown["num_frames"] == 3 and shown["random_weights"] and steps[-1] == (2, 2)
    with pytest.raises(gr.Error, match=r"--lora_alpha -1"):
        fn("v2", False, *[dict(values, lora_alpha=-1.0)[p.name] for p in params], progress=lambda *a, **k: None)
