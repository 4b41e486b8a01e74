"""Shared setup of the VideoComposer tests: the scripts' folder on sys.path, synchronous launch on CPU."""
from __future__ import annotations

import sys
from pathlib import Path

import mindspore as ms

VC_DIR = Path(__file__).resolve().parents[1]
if str(VC_DIR) not in sys.path:
    sys.path.insert(0, str(VC_DIR))  # run_net.py and tools/ are scripts beside the package

if ms.get_context("device_target") == "CPU":
    ms.runtime.launch_blocking()  # several times faster PyNative on few cores; same numbers
