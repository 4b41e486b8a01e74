"""A small WebVid-style demo set of real mp4 files: coloured shapes moving over a gradient (ffmpeg via imageio-ffmpeg).

The shared writer :func:`common.train.webvid.make_demo_webvid` in the layout the original's ``WebVid`` reads:
``<root>/videos/<page_dir>/<videoid>.mp4`` and ``<root>/results.csv`` with the columns ``videoid,name,page_dir``
(``name`` is the caption).
"""
from __future__ import annotations

from common.train.webvid import COLOURS, SHAPES, make_demo_webvid, moving_shape

__all__ = ["COLOURS", "SHAPES", "make_demo_webvid", "moving_shape"]
