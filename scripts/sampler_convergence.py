"""Fewer steps to the same result, measured: per model, the relative error of the final latent against a many-step
deterministic reference (DDIM eta 0; Euler EDM for SVD), for the original sampler and DPM-Solver++ 2M.

    python scripts/sampler_convergence.py [--models dynamicrafter_256 dynamicrafter_512 svd animatediff]
        [--reference_steps 500] [--json results.json]

Runs on the tiny random models of each model's tests (their conftest helpers: the same models and seeds as the
convergence tests), with a fixed start noise and conditioning and each model's release guidance: DynamiCrafter
256-style (eps, CFG 7.5, uniform DDIM), DynamiCrafter 512-style (v, zero terminal SNR, dynamic rescale, CFG 7.5 +
guidance rescale 0.7, uniform_trailing DDIM), SVD (EDM x0, per-frame guidance 1..2.5, Euler EDM), AnimateDiff
(eps, CFG 7.5, diffusers DDIM). Prints a Markdown table per model (error = ||x - x_ref|| / ||x_ref||) and the
CPU model (lscpu). Each model costs ~700 guided UNet calls (1-2 minutes each on 2 shared CPU cores).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CASES = ("dynamicrafter_256", "dynamicrafter_512", "svd", "animatediff")


def cpu_model() -> str:
    """The ``Model name`` line of lscpu (else platform.processor())."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown CPU"


def _conftest(model: str):
    """A model's tests/conftest.py as a module (its tiny-model helpers)."""
    path = REPO / model / "tests" / "conftest.py"
    spec = importlib.util.spec_from_file_location(f"{model}_test_helpers", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def build(case: str, tmp: Path):
    """``(run, original sampler name, description)`` of one case, on the tests' tiny model."""
    if case.startswith("dynamicrafter"):
        from dynamicrafter_ms.config import DynamiCrafterConfig
        from dynamicrafter_ms.model import DynamiCrafter
        from dynamicrafter_ms.sampler_convergence import runner

        style = case.split("_")[1]
        h = _conftest("dynamicrafter")
        path = h.write_config(tmp / "dc", h.tiny_config(style), f"tiny{style}.yaml")
        model = DynamiCrafter(DynamiCrafterConfig.from_yaml(path))
        h.randomize(model)
        model.set_train(False)
        what = ("eps, CFG 7.5, DDIM uniform" if style == "256" else
                "v, zero-SNR, dynamic rescale, CFG 7.5 + rescale 0.7, DDIM uniform_trailing")
        return runner(model), "ddim", f"DynamiCrafter {style}-style tiny ({what}; 2 frames, 8x8 latent)"
    if case == "svd":
        import mindspore as ms
        from svd_ms.model import SVDModel
        from svd_ms.sampler_convergence import runner

        h = _conftest("svd")
        ms.set_seed(0)
        model = SVDModel.from_config_file(h.TINY_CONFIG)
        h.randomize(model)
        model.set_train(False)
        return runner(model), "euler", "SVD tiny (EDM x0, sigma_max 700, guidance 1..2.5; 3 frames, 8x8 latent)"
    if case == "animatediff":
        from animatediff_ms.config import InferenceConfig
        from animatediff_ms.demo import tiny_random_pipeline
        from animatediff_ms.sampler_convergence import runner

        inf = InferenceConfig.load(REPO / "animatediff" / "configs" / "inference" / "inference-v2.yaml")
        pipe = tiny_random_pipeline(inf, seed=2, jit=True)
        return runner(pipe), "ddim", "AnimateDiff v2 tiny (eps, CFG 7.5, diffusers DDIM leading; 3 frames, 8x8 latent)"
    raise SystemExit(f"error: unknown model case {case!r} ({', '.join(CASES)}) (--models)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(CASES), choices=CASES, help="cases to measure (default all)")
    p.add_argument("--reference_steps", type=int, default=500, help="steps of the reference run (default 500)")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    args = p.parse_args(argv)
    import tempfile

    import mindspore as ms

    from common.schedulers.convergence import convergence_errors, format_table

    if ms.get_context("device_target") == "CPU":
        ms.runtime.launch_blocking()
    cpu = cpu_model()
    print(f"CPU: {cpu}\n")
    results = {"cpu": cpu, "reference_steps": args.reference_steps, "cases": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.models:
            start = time.time()
            run, original, what = build(case, Path(tmp))
            steps = {original: (5, 10, 25, 50), "dpmpp_2m": (5, 10, 20, 25, 50)}
            errors = convergence_errors(run, steps, (original, args.reference_steps))
            title = f"{what}: relative error vs {args.reference_steps}-step {original} ({time.time() - start:.0f} s)"
            print(format_table(errors, title) + "\n", flush=True)
            results["cases"][case] = {"what": what, "reference": [original, args.reference_steps],
                                      "errors": {k: {str(n): e for n, e in v.items()} for k, v in errors.items()}}
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
