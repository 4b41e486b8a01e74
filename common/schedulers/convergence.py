"""Sampler convergence against a many-step reference: "fewer steps to the same result", measured.

A model side gives ``run(sampler, steps) -> final latent`` (numpy) with everything else fixed (start noise,
conditioning, guidance); :func:`convergence_errors` runs it at each step count and returns the relative
error ``||x_steps - x_ref|| / ||x_ref||`` against ``run(*reference)`` (e.g. DDIM with eta 0 at 500 steps).
:func:`format_table` prints the result as a Markdown table. Used by the models' convergence tests and by
``scripts/sampler_convergence.py``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

__all__ = ["relative_error", "convergence_errors", "format_table"]


def relative_error(x, ref) -> float:
    """``||x - ref|| / ||ref||`` (Frobenius, float64)."""
    x = np.asarray(x, np.float64)
    ref = np.asarray(ref, np.float64)
    return float(np.linalg.norm(x - ref) / np.linalg.norm(ref))


def convergence_errors(run: Callable[[str, int], np.ndarray], steps: Mapping[str, Sequence[int]],
                       reference: tuple[str, int] | np.ndarray) -> dict[str, dict[int, float]]:
    """``{sampler: {steps: relative error}}``.

    Args:
        run: ``run(sampler, steps)`` -> the final latent (numpy), deterministic.
        steps: the step counts to run per sampler, e.g. ``{"ddim": (5, 10, 25, 50), "dpmpp_2m": (5, 10, 25)}``.
        reference: ``(sampler, steps)`` to run once, or the reference latent itself.
    """
    ref = run(*reference) if isinstance(reference, tuple) else np.asarray(reference)
    return {name: {int(n): relative_error(run(name, int(n)), ref) for n in counts} for name, counts in steps.items()}


def format_table(errors: Mapping[str, Mapping[int, float]], title: str = "") -> str:
    """A Markdown table: one row per step count, one column per sampler ("-" where not run)."""
    names = list(errors)
    counts = sorted({n for e in errors.values() for n in e})
    lines = [f"**{title}**", ""] if title else []
    lines.append("| steps | " + " | ".join(names) + " |")
    lines.append("|---:|" + "---:|" * len(names))
    for n in counts:
        cells = [f"{errors[k][n]:.2e}" if n in errors[k] else "-" for k in names]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
