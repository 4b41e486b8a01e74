"""Image preprocessing (DynamiCrafter golden `preprocess`) and video read/write round trips."""
import numpy as np
import pytest
from PIL import Image

from common import golden
from common.video_io import (
    ImageReadError,
    VideoReadError,
    center_crop,
    load_image,
    make_grid,
    read_png_frames,
    read_video_frames,
    resize_center_crop,
    save_videos_grid,
    to_tensor_normalized,
    to_uint8,
    video_length,
    video_metadata,
    write_video,
)

_DC_CASES = golden.cases_with("dynamicrafter", "preprocess")


def moving_shapes(t=10, h=48, w=64):
    """A square moving right and a disc moving down on a gradient background, uint8 (T, H, W, 3)."""
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.empty((t, h, w, 3), np.uint8)
    for i in range(t):
        f = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), np.full_like(xx, 60)], -1)
        x0 = (i * 4) % max(w - 12, 1)
        f[8:20, x0:x0 + 12] = (255, 255, 255)
        cy = 10 + (i * 3) % max(h - 20, 1)
        f[(yy - cy) ** 2 + (xx - w // 2) ** 2 < 36] = (255, 0, 0)
        out[i] = f
    return out


def test_dynamicrafter_cases_found():
    assert len(_DC_CASES) >= 2


@pytest.mark.parametrize("case", _DC_CASES, ids=lambda c: c.name)
def test_golden_preprocess(case):
    chk = case.check("preprocess")
    img = load_image(case.path(chk.params["image_file"]))
    out = to_tensor_normalized(resize_center_crop(img, tuple(chk.params["video_size"])))
    ok, line = golden.compare("image", out, chk.expected["image"], chk.tol)
    assert ok, line
    assert out.dtype == np.float32 and out.min() >= -1 and out.max() <= 1


def test_resize_center_crop_rules():
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (80, 112, 3), dtype=np.uint8))  # W 112, H 80
    out = resize_center_crop(img, (64, 64))  # short 80 -> 64, long int(64*112/80) = 89, left round(12.5) = 12
    ref = img.resize((89, 64), Image.BILINEAR).crop((12, 0, 76, 64))
    np.testing.assert_array_equal(np.asarray(out), np.asarray(ref))
    # a square image into a wide target: torchvision pads with zeros (left gets the floor half)
    sq = Image.fromarray(rng.integers(1, 256, (30, 30, 3), dtype=np.uint8))
    out = np.asarray(resize_center_crop(sq, (20, 31)))  # -> 20x20, padded 5 left / 6 right
    assert out.shape == (20, 31, 3)
    assert (out[:, :5] == 0).all() and (out[:, -6:] == 0).all() and (out[:, 5:-6] > 0).any()
    np.testing.assert_array_equal(out[:, 5:25], np.asarray(sq.resize((20, 20), Image.BILINEAR)))
    assert np.asarray(center_crop(sq, 10)).shape == (10, 10, 3)
    with pytest.raises(ValueError, match="size must be"):
        resize_center_crop(sq, (0, 4))


def test_load_image_errors_and_modes(tmp_path):
    with pytest.raises(ImageReadError, match="image file not found"):
        load_image(tmp_path / "nope.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG not really" * 10)
    with pytest.raises(ImageReadError, match="cannot read image"):
        load_image(bad)
    with pytest.raises(ImageReadError, match="not a file"):
        load_image(tmp_path)
    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.full((4, 5, 4), 200, np.uint8)).save(rgba)
    arr = load_image(rgba, as_array=True)
    assert arr.shape == (4, 5, 3) and arr.dtype == np.uint8


def test_to_tensor_normalized():
    arr = np.array([[[0, 255, 51]]], np.uint8)
    np.testing.assert_allclose(to_tensor_normalized(arr).ravel(), [-1.0, 1.0, 51 / 255 * 2 - 1], atol=1e-7)
    out = to_tensor_normalized(arr, mean=(0.5, 0.0, 0.0), std=(0.5, 1.0, 0.2))
    np.testing.assert_allclose(out.ravel(), [-1.0, 1.0, 1.0], atol=1e-6)


def test_to_uint8():
    x = np.array([-2.0, -1.0, 0.0, 0.999, 1.0, 5.0], np.float32)
    np.testing.assert_array_equal(to_uint8(x, (-1, 1)), [0, 0, 127, 254, 255, 255])
    np.testing.assert_array_equal(to_uint8(np.array([0.5, 1.0], np.float32), (0, 1)), [127, 255])
    with pytest.raises(ValueError, match="explicit value_range"):
        to_uint8(x)
    with pytest.raises(ValueError, match="NaN"):
        to_uint8(np.array([np.nan], np.float32), (0, 1))


def test_mp4_round_trip(tmp_path):
    frames = moving_shapes(10, 48, 64)
    path = write_video(frames, tmp_path / "sub" / "a.mp4", fps=12)
    assert path.is_file()
    assert video_length(path) == 10
    meta = video_metadata(path)
    assert meta["size"] == (48, 64)
    assert abs(meta["fps"] - 12) < 0.01
    back = read_video_frames(path)
    assert back.shape == (10, 48, 64, 3) and back.dtype == np.uint8
    assert np.abs(back.astype(int) - frames).mean() < 4  # crf 10: near-lossless
    sel = read_video_frames(path, [9, 0, 3, 3])
    np.testing.assert_array_equal(sel, back[[9, 0, 3, 3]])
    rng = read_video_frames(path, start=1, num_frames=3, step=2)
    np.testing.assert_array_equal(rng, back[[1, 3, 5]])
    np.testing.assert_array_equal(read_video_frames(path, start=7), back[7:])


def test_mp4_odd_size_and_float_input(tmp_path):
    frames = moving_shapes(3, 33, 45)
    as_float = frames.astype(np.float32) / 127.5 - 1.0  # [-1, 1]
    path = write_video(as_float, tmp_path / "odd.mp4", fps=7.5, value_range=(-1, 1))
    meta = video_metadata(path)
    assert meta["size"] == (34, 46)  # padded to even by edge replication
    assert abs(meta["fps"] - 7.5) < 0.01
    back = read_video_frames(path)
    assert back.shape == (3, 34, 46, 3)
    assert np.abs(back[:, :33, :45].astype(int) - frames).mean() < 4
    assert np.abs(back[:, 33].astype(int) - back[:, 32]).mean() < 6  # the replicated last row
    with pytest.raises(ValueError, match="explicit value_range"):
        write_video(as_float, tmp_path / "x.mp4")


def test_video_read_errors(tmp_path):
    with pytest.raises(VideoReadError, match="video file not found"):
        read_video_frames(tmp_path / "missing.mp4")
    with pytest.raises(VideoReadError, match="not found"):
        video_length(tmp_path / "missing.mp4")
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(VideoReadError, match="cannot read video"):
        read_video_frames(bad)
    with pytest.raises(VideoReadError, match="cannot read video"):
        video_length(bad)
    with pytest.raises(VideoReadError, match="cannot read video"):
        video_metadata(bad)
    short = write_video(moving_shapes(4, 16, 16), tmp_path / "short.mp4", fps=8)
    with pytest.raises(VideoReadError, match="has 4 frames; 6 frames from 0 every 1"):
        read_video_frames(short, num_frames=6)
    with pytest.raises(VideoReadError, match="has 4 frames; frame 4 requested"):
        read_video_frames(short, [0, 4])
    with pytest.raises(VideoReadError, match="has 4 frames: nothing from frame 5"):
        read_video_frames(short, start=5)
    with pytest.raises(ValueError, match="frame_indices must be >= 0"):
        read_video_frames(short, [-1])


def test_gif_merges_only_repeated_frames(tmp_path):
    """Pillow folds identical consecutive frames into one longer frame (playback time is kept)."""
    still = np.repeat(moving_shapes(1, 8, 8), 3, axis=0)
    with Image.open(write_video(still, tmp_path / "still.gif", fps=10)) as im:
        assert im.n_frames == 1 and im.info["duration"] == 300


def test_gif(tmp_path):
    frames = moving_shapes(6, 24, 32)
    path = write_video(frames, tmp_path / "a.gif", fps=10)
    with Image.open(path) as im:
        assert im.n_frames == 6 and im.size == (32, 24)
        assert im.info.get("loop") == 0
        durations = []
        for i in range(im.n_frames):
            im.seek(i)
            durations.append(im.info["duration"])
            if i == 2:
                f2 = np.asarray(im.convert("RGB"))
    assert durations == [100] * 6
    assert np.abs(f2.astype(int) - frames[2]).mean() < 12  # 256-colour palette


def test_webp(tmp_path):
    frames = moving_shapes(5, 24, 32)
    path = write_video(frames, tmp_path / "a.webp", fps=4)
    with Image.open(path) as im:
        assert im.n_frames == 5 and im.size == (32, 24)
        assert im.info.get("loop") == 0
        im.seek(1)
        im.load()
        assert abs(im.info["duration"] - 250) <= 1
        assert np.abs(np.asarray(im.convert("RGB")).astype(int) - frames[1]).mean() < 10


def test_png_folder(tmp_path):
    frames = moving_shapes(4, 16, 20)
    out = write_video(frames, tmp_path / "frames", fps=8)
    assert sorted(f.name for f in out.iterdir()) == ["00000.png", "00001.png", "00002.png", "00003.png"]
    np.testing.assert_array_equal(read_png_frames(out), frames)  # lossless
    with pytest.raises(VideoReadError, match="frame folder not found"):
        read_png_frames(tmp_path / "none")


def test_write_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown video suffix '.avi'"):
        write_video(moving_shapes(2, 8, 8), tmp_path / "a.avi")
    with pytest.raises(ValueError, match="fps must be a positive"):
        write_video(moving_shapes(2, 8, 8), tmp_path / "a.gif", fps=0)
    with pytest.raises(ValueError, match=r"frames must be \(T, H, W, 3\)"):
        write_video(np.zeros((2, 8, 8, 2), np.uint8), tmp_path / "a.gif")


def test_make_grid():
    v = np.stack([np.full((2, 4, 5, 3), k + 1, np.uint8) for k in range(3)])  # N=3, T=2, 4x5
    g = make_grid(v, nrow=2, padding=2, pad_value=0)
    assert g.shape == (2, 2 * (4 + 2) + 2, 2 * (5 + 2) + 2, 3)
    assert (g[:, 2:6, 2:7] == 1).all() and (g[:, 2:6, 9:14] == 2).all() and (g[:, 8:12, 2:7] == 3).all()
    assert (g[:, 8:12, 9:14] == 0).all() and (g[:, :2] == 0).all()  # empty 4th tile, borders
    assert make_grid(v, nrow=8).shape == (2, 4 + 4, 3 * 7 + 2, 3)  # one row
    np.testing.assert_array_equal(make_grid(v[:1]), v[0])  # one video: unchanged, as torchvision


def test_save_videos_grid(tmp_path):
    v = moving_shapes(3, 24, 32).astype(np.float32) / 255.0  # (T, H, W, 3) in [0, 1]
    videos = np.stack([v, 1 - v]).transpose(0, 4, 1, 2, 3)  # (N=2, C, T, H, W)
    path = save_videos_grid(videos, tmp_path / "grid.gif", fps=5, value_range=(0, 1))
    with Image.open(path) as im:
        assert im.n_frames == 3 and im.size == (2 * 34 + 2, 28)
        im.seek(1)
        tile = np.asarray(im.convert("RGB"))[2:26, 36:68].astype(int)
    assert np.abs(tile - (255 - moving_shapes(3, 24, 32)[1])).mean() < 12  # 2nd video, frame 1
