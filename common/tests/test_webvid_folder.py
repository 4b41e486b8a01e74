"""The folder dataset of common.train.webvid: mp4s with a same-named .txt and/or captions.csv; errors name the file."""
from __future__ import annotations

import pytest

from common.train.webvid import BadVideoError, MetadataError, make_demo_webvid, read_video_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Three real 6-frame mp4s with a .txt caption beside each."""
    return make_demo_webvid(tmp_path_factory.mktemp("folder") / "clips", n=3, frames=6, size=(16, 24), layout="folder")


def test_txt_captions_sorted_by_path(folder):
    rows = read_video_folder(folder)
    assert [p.name for _, p, _ in rows] == ["1000.mp4", "1001.mp4", "1002.mp4"]
    assert rows[0][2] == (folder / "1000.txt").read_text().strip() and rows[0][2].startswith("a red circle moving")
    assert all(where == f"data_dir {folder}" for where, _, _ in rows)
    assert len(read_video_folder(folder, subsample=2)) == 2


def test_captions_csv_and_subfolders(folder, tmp_path):
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    for name in ("a", "sub/b"):
        (d / f"{name}.mp4").write_bytes((folder / "1000.mp4").read_bytes())
    (d / "captions.csv").write_text('video,caption\na.mp4,"one, with a comma"\nsub/b.mp4,two\n')
    (d / "sub" / "b.txt").write_text("  the txt\n wins \n")  # lines joined, spaces collapsed
    assert [(p.relative_to(d).as_posix(), c) for _, p, c in read_video_folder(d)] == [
        ("a.mp4", "one, with a comma"), ("sub/b.mp4", "the txt wins")]


def test_bad_folders_name_the_file(folder, tmp_path):
    with pytest.raises(MetadataError, match="data_dir .*nope does not exist"):
        read_video_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MetadataError, match=r"empty: no \.mp4 videos in it"):
        read_video_folder(tmp_path / "empty", what="meta_path")
    d = tmp_path / "nocap"
    d.mkdir()
    (d / "x.mp4").write_bytes((folder / "1000.mp4").read_bytes())
    with pytest.raises(BadVideoError, match=r"video .*x\.mp4 has no caption \(write it to .*x\.txt or a row of"):
        read_video_folder(d)
    (d / "captions.csv").write_text("video,caption\nghost.mp4,boo\n")
    with pytest.raises(BadVideoError, match=r"captions\.csv:2: video .*ghost\.mp4 does not exist"):
        read_video_folder(d)
    (d / "captions.csv").write_text("file,text\n")
    with pytest.raises(MetadataError, match="lacks video,caption"):
        read_video_folder(d)
