"""Prompt folders read as the original ``load_data_prompts`` does."""
from __future__ import annotations

import numpy as np
import pytest
from dynamicrafter_ms.data import PromptDirError, load_data_prompts, load_frame
from PIL import Image


def test_pictures_pair_with_prompt_lines(prompt_dir):
    names, videos, prompts = load_data_prompts(prompt_dir, (16, 24), 3)
    assert names == ["a_first.jpg", "b_second.png"]  # sorted by name
    assert prompts == ["a cat walking", "fireworks over the sea"]  # blank line skipped, stripped
    assert [v.shape for v in videos] == [(3, 3, 16, 24)] * 2
    v = videos[1]
    np.testing.assert_array_equal(v[:, 0], v[:, 2])  # the picture repeated over the frames
    assert -1.0 <= v.min() and v.max() <= 1.0


def test_resize_and_center_crop():
    # a 40x60 picture -> short side 16 (16x24), then the centre 16x16
    img = np.zeros((40, 60, 3), np.uint8)
    img[:, 20:40] = 255  # a white band in the middle third
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        Image.fromarray(img).save(f"{d}/x.png")
        frame = load_frame(f"{d}/x.png", (16, 16))
    assert frame.shape == (3, 16, 16)
    assert frame[:, :, 8].min() > 0.9 and frame[:, :, 0].max() < -0.5


def test_interp_pairs(prompt_dir):
    (prompt_dir / "prompts.txt").write_text("one prompt\n")
    names, videos, _ = load_data_prompts(prompt_dir, (8, 8), 4, interp=True)
    assert names == ["a_first.jpg"] and videos[0].shape == (3, 4, 8, 8)
    assert not np.array_equal(videos[0][:, 0], videos[0][:, 3])


def test_errors_name_the_fault(tmp_path, prompt_dir):
    with pytest.raises(PromptDirError, match="prompt_dir not found"):
        load_data_prompts(tmp_path / "nope")
    empty = tmp_path / "e"
    empty.mkdir()
    with pytest.raises(PromptDirError, match=r"no prompt file \(\*\.txt\)"):
        load_data_prompts(empty)
    (empty / "p.txt").write_text("\n  \n")
    with pytest.raises(PromptDirError, match="p.txt is empty"):
        load_data_prompts(empty)
    (empty / "p.txt").write_text("a\nb\n")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(empty / "x.png")
    with pytest.raises(PromptDirError, match="2 prompts but .* holds 1 pictures"):
        load_data_prompts(empty)
    (prompt_dir / "b_second.png").write_bytes(b"not a png")
    with pytest.raises(PromptDirError, match="b_second.png"):
        load_data_prompts(prompt_dir, (8, 8), 2)
