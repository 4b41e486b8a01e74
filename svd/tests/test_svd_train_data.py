"""The training dataset on real mp4 files: samples, keys, fps_id, and every kind of bad row."""
import numpy as np
import pytest

from svd_ms.data import BadVideoError, MetadataError, VideoDataLoader, VideoDataset

from .conftest import make_videos

ARGS = dict(frames=3, step=2, size=(64, 64))


def test_samples_are_clips_in_minus_one_one(tmp_path):
    csv = make_videos(tmp_path)
    ds = VideoDataset(None, csv, **ARGS)
    frames, fps_id, bucket, cond_aug, key = ds.get(1, epoch=2)
    assert len(ds) == 3 and frames.shape == (3, 3, 64, 64) and frames.dtype == np.float32
    assert -1.0 <= frames.min() < frames.max() <= 1.0
    assert fps_id == pytest.approx(10.0 / 2 - 1.0) and bucket == 101.0 and 0 < cond_aug < 1
    assert key.tolist() == [2, 1]
    again = ds.get(1, epoch=2)
    np.testing.assert_array_equal(again[0], frames)  # keyed by (seed, epoch, index)
    assert again[3] == cond_aug
    # the clip moves: consecutive frames are 2 source frames (6 pixels) apart
    assert np.abs(frames[1] - frames[0]).mean() > 0.05


def test_loader_batches_and_epochs(tmp_path):
    ds = VideoDataset(None, make_videos(tmp_path), **ARGS)
    dl = VideoDataLoader(ds, batch_size=2, seed=0)
    frames, fps_id, bucket, cond_aug, key = next(dl)
    assert frames.shape == (2, 3, 3, 64, 64) and key.shape == (2, 2) and np.all(key[:, 0] == 0)
    _ = next(dl)  # 3 videos / batch 2 -> one batch per epoch
    assert np.all(next(dl)[4][:, 0] == 2)


def test_wrong_header_is_one_clear_error(tmp_path):
    csv = make_videos(tmp_path)
    csv.write_text(csv.read_text().replace("path,length,motion_bucket_id", "video,frames,motion"))
    with pytest.raises(MetadataError, match="header is 'video,frames,motion'; it must start with 'path,length,motion_bucket_id'"):
        VideoDataset(None, csv, **ARGS)


@pytest.mark.parametrize("row,reason", [
    ("missing.mp4,10,5", "does not exist"),
    ("v0.mp4,4,5", "fewer than frames x step = 6"),
    ("v0.mp4,ten,5", "cannot parse row"),
])
def test_bad_rows_are_skipped_or_stop(tmp_path, capsys, row, reason):
    csv = make_videos(tmp_path, n=2, extra_rows=[row])
    ds = VideoDataset(None, csv, **ARGS)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(ds) == 2 and len(err) == 1 and reason in err[0] and "metadata.csv:4" in err[0]
    with pytest.raises(BadVideoError, match=reason):
        VideoDataset(None, csv, on_bad_video="stop", **ARGS)


@pytest.mark.parametrize("kind", ["corrupt", "shorter_than_listed"])
def test_unreadable_video_is_replaced_or_stops(tmp_path, capsys, kind):
    csv = make_videos(tmp_path, n=3)
    if kind == "corrupt":
        (tmp_path / "v1.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 10)
    else:
        make_videos(tmp_path / "short", n=2, length=3)
        (tmp_path / "short" / "v1.mp4").replace(tmp_path / "v1.mp4")  # CSV still says 10 frames
    ds = VideoDataset(None, csv, **ARGS)
    capsys.readouterr()
    sample = ds.get(1)
    err = capsys.readouterr().err.strip().splitlines()
    assert sample[4][1] == 2  # the next good video stands in
    assert len(err) == 1 and "v1.mp4" in err[0] and "CSV line 3" in err[0]
    ds.get(1)
    assert capsys.readouterr().err == ""  # reported once
    stop = VideoDataset(None, csv, on_bad_video="stop", **ARGS)
    with pytest.raises(BadVideoError, match="v1.mp4"):
        stop.get(1)
