"""Shared setup of the VideoComposer tests: synchronous op launch on CPU."""
from __future__ import annotations

import mindspore as ms

if ms.get_context("device_target") == "CPU":
    ms.runtime.launch_blocking()  # several times faster PyNative on few cores; same numbers
