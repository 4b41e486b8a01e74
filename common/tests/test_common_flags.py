"""Every model's inference CLI accepts the common flags (DESIGN: one vocabulary) besides its original ones."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COMMON = ["--output_dir", "out", "--mode", "graph", "--num_inference_steps", "3", "--attention_chunk_size", "64",
          "--seed", "5", "--num_frames", "7"]


def _script(path: Path):
    spec = importlib.util.spec_from_file_location(f"cli_{path.parent.name}_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _dynamicrafter(argv):
    from dynamicrafter_ms.inference import get_parser

    a = get_parser().parse_args(["--config", "c.yaml", "--prompt_dir", "p"] + argv)
    return a.savedir, a.mode, a.ddim_steps, a.attention_chunk, a.seed, a.video_length


def _svd(argv):
    a = _script(REPO / "svd" / "image_to_video.py").build_parser().parse_args(argv)
    return a.output_dir, {0: "graph", 1: "pynative"}[a.mode], a.num_steps, a.attn_chunk_size, a.seed, a.num_frames


def _animatediff(argv):
    a = _script(REPO / "animatediff" / "text_to_video.py").parse_args(["--config", "c.yaml"] + argv)
    return a.output_dir, a.mode, a.steps, a.attention_chunk_size, a.seed, a.L


def _videocomposer(argv):
    from videocomposer_ms.inference import build_parser

    a = build_parser().parse_args(argv)
    return a.output_dir, a.mode, a.num_inference_steps, a.attention_chunk_size, a.seed, a.num_frames


def _dropletvideo(argv):
    from dropletvideo_ms.inference import get_parser

    a = get_parser().parse_args(argv)
    return a.output_dir, a.mode, a.num_inference_steps, a.attention_chunk_size, a.seed, a.video_length


@pytest.mark.parametrize("parse", [_dynamicrafter, _svd, _animatediff, _videocomposer, _dropletvideo],
                         ids=lambda f: f.__name__.strip("_"))
def test_common_flags(parse):
    assert parse(COMMON) == ("out", "graph", 3, 64, 5, 7)
