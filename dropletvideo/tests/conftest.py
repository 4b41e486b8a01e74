"""Shared fixtures of the DropletVideo tests: a tiny random weights folder in the released layout."""
from __future__ import annotations

from pathlib import Path

import mindspore as ms
import pytest

DV_DIR = Path(__file__).resolve().parents[1]

if ms.get_context("device_target") == "CPU":
    ms.runtime.launch_blocking()  # the tiny models' PyNative calls are faster on a few cores; same numbers


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory) -> Path:
    from dropletvideo_ms.tiny import write_tiny_weights

    return write_tiny_weights(tmp_path_factory.mktemp("weights") / "DropletVideo-V1.0-weights", seed=0)
