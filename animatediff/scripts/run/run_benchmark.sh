#!/usr/bin/env bash
# One full-size denoiser call (SD-1.5 + v2 motion modules, random weights, 16 frames), ours vs diffusers.
#   bash scripts/run/run_benchmark.sh            # 256x256
#   bash scripts/run/run_benchmark.sh 256 512    # also 512x512 (needs ~20 GB RAM and a long time on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
python benchmark.py --sizes "${@:-256}"
