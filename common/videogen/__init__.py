"""The front door: every model behind one command line (``videogen``) and one app (:mod:`common.app`).

``videogen list`` / ``videogen run MODEL ...`` / ``videogen convert MODEL ...``; see :mod:`common.videogen.cli`.
Each model is a :class:`~common.videogen.spec.ModelSpec` (``common/videogen/<model>.py``) mapping the common
settings onto its pipeline; :mod:`common.videogen.run` checks, builds, generates and writes the video with its
run record (:mod:`common.sidecar`). The model packages are imported only when a model is used.
"""
from __future__ import annotations


def main(argv=None) -> int:
    """The ``videogen`` console entry."""
    from .cli import main as _main

    return _main(argv)


__all__ = ["main"]
