"""image_to_video.py's mode and memory knobs: graph with the plan's knobs, PyNative with the chunks where even the
split graph is estimated not to fit (one line says why), the flags winning; no model is built."""
import importlib.util
import math

import pytest
from svd_ms.memory import GRAPH_MEMORY, choose_knobs

from .conftest import SVD_DIR

S320 = ((40, 64), 14)  # 320x512 x 14 frames
S576 = ((72, 128), 14)  # 576x1024 x 14 frames


def knobs(size, free, mode=None, **flags):
    k = choose_knobs(mode, *size, available_gib=free, **flags)
    return k.mode, k.split_cfg, k.attention_chunk, k.ff_chunk


def test_the_figures_give_the_measured_320x512_peak():
    # the measured graph (batch 1, twice a step) peaked at 23.1 GiB with the UNet's 6.1 GiB; + 2.8 GiB encoders, VAE
    assert math.isclose(GRAPH_MEMORY.estimate(1, 14 * 40 * 64), 23.1 - 6.1 + 8.9)
    assert GRAPH_MEMORY.estimate(1, 14 * 72 * 128) > 60  # 576x1024: far above any 24 GiB machine


def test_graph_by_default_with_the_plan_and_pynative_where_it_does_not_fit():
    assert knobs(S320, 64) == ("graph", False, 512, None)  # stacked 42.9 GiB fits 54.4
    assert knobs(S320, 40) == ("graph", True, 512, None)  # split 25.9 fits 34.0
    assert knobs(S320, 22) == ("pynative", True, 256, 4096)  # split 25.9 > 18.7: every knob, PyNative
    assert knobs(S576, 22) == ("pynative", True, 128, 4096)
    k = choose_knobs(None, *S576, available_gib=22)
    assert k.fallback.startswith("graph mode is estimated at 70.1 GiB even with --split_cfg, above the budget of "
                                 "18.7 GiB (0.85 x 22.0 GiB free)") and k.plan.fits is False
    assert choose_knobs(None, *S320, available_gib=40).fallback is None


def test_the_flags_win():
    assert knobs(S576, 22, "graph") == ("graph", True, 128, 4096)  # --mode graph: no fallback, the plan's knobs
    assert choose_knobs("graph", *S576, available_gib=22).fallback is None
    assert knobs(S576, 22, "pynative") == ("pynative", False, 128, None)  # the attention size rule alone
    assert knobs(S576, 22, split_cfg=False, attention_chunk=64, ff_chunk=8) == ("pynative", False, 64, 8)
    assert knobs(S320, 64, split_cfg=True) == ("graph", True, 512, None)
    assert knobs(((8, 8), 3), 1, "pynative") == ("pynative", False, None, None)


def _cli():
    spec = importlib.util.spec_from_file_location("image_to_video", SVD_DIR / "image_to_video.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cli_defaults_and_the_fallback_line(tmp_path, capsys, monkeypatch):
    """Default ``--mode`` is the plan's (None); with too little free memory the tiny demo runs PyNative with the
    chunks and says why on one line, then writes its video."""
    cli = _cli()
    args = cli.build_parser().parse_args([])
    assert args.mode is None and args.split_cfg is None
    assert cli.build_parser().parse_args(["--no_split_cfg", "--ff_chunk=8"]).split_cfg is False
    import common.bench

    monkeypatch.setattr(common.bench, "mem_available_gib", lambda: 1.0)
    assert cli.main(["--SVD.num_frames=2", "--num_steps=1", f"--output_dir={tmp_path}", "--no_progress"]) == 0
    out, err = capsys.readouterr()
    (note,) = [line for line in err.splitlines() if "graph mode is estimated" in line]
    assert note.startswith("NOTE: graph mode is estimated at ") and "(0.85 x 1.0 GiB free)" in note
    assert "pynative mode: split_cfg=True, attention chunk 256, feed-forward chunk 4096" in out
    assert len(list(tmp_path.glob("*.mp4"))) == 1


@pytest.mark.parametrize("flag", ["--mode=pynative", "--mode=1"])
def test_cli_pynative_flag_is_kept(flag):
    assert _cli().build_parser().parse_args([flag]).mode == 1
