"""Shared fixtures of the SVD tests: the tiny random model of configs/svd_tiny.yaml."""
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest

SVD_DIR = Path(__file__).resolve().parents[1]
TINY_CONFIG = SVD_DIR / "configs" / "svd_tiny.yaml"


def randomize(cell, seed: int = 0, std: float = 0.05):
    """Give every parameter N(0, std^2) noise on top of its init (mix factors N(0, 1)), deterministic."""
    rng = np.random.default_rng(seed)
    for p in cell.get_parameters():
        base = p.asnumpy()
        scale = 1.0 if p.name.endswith("mix_factor") else std
        p.set_data(ms.Tensor((base + rng.standard_normal(base.shape) * scale).astype(np.float32)))


@pytest.fixture(scope="session")
def tiny_model():
    from svd_ms.model import SVDModel

    ms.set_seed(0)
    model = SVDModel.from_config_file(TINY_CONFIG)
    randomize(model)
    model.set_train(False)
    return model


def make_videos(folder: Path, n: int = 3, length: int = 10, hw=(72, 96), fps: float = 10.0, seed: int = 0,
                extra_rows=()) -> Path:
    """Write ``n`` real mp4 files (a random texture sliding sideways) and their metadata CSV; returns the CSV."""
    from common.video_io import write_video

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = ["path,length,motion_bucket_id"]
    for i in range(n):
        base = rng.integers(0, 255, (hw[0], hw[1], 3)).astype(np.uint8)
        frames = np.stack([np.roll(base, 3 * t, axis=1) for t in range(length)])
        write_video(frames, folder / f"v{i}.mp4", fps=fps)
        rows.append(f"v{i}.mp4,{length},{100 + i}")
    rows.extend(extra_rows)
    csv = folder / "metadata.csv"
    csv.write_text("\n".join(rows) + "\n")
    return csv
