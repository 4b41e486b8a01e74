"""Shared pieces of the fine-tuning tests: the tiny config, demo clips, train.py as a module."""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

VC_DIR = Path(__file__).resolve().parents[1]
TINY_TRAIN = VC_DIR / "configs" / "train_demo_tiny.yaml"


def make_clips(folder: Path, num: int = 2) -> Path:
    """``num`` tiny real mp4 clips (10 frames at 10 fps, 72x96) and their CSV; returns the folder."""
    spec = importlib.util.spec_from_file_location("vc_make_demo_videos", VC_DIR / "tools" / "make_demo_videos.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.make_demo_set(folder, num=num, frames=10, size=(72, 96), fps=10.0)
    return folder


def train_module():
    """``videocomposer/train.py`` imported under a name of its own (svd/ has a train.py too)."""
    spec = importlib.util.spec_from_file_location("vc_train_script", VC_DIR / "train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def subprocess_env() -> dict:
    """The environment for train.py subprocesses: msrun / python of this interpreter, repo on the path."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    root = VC_DIR.parent
    env["PYTHONPATH"] = os.pathsep.join([str(root), str(VC_DIR), env.get("PYTHONPATH", "")])
    env.setdefault("GLOG_v", "3")
    return env
