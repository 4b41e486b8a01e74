#!/usr/bin/env bash
# One command from a fresh machine to a video: set up, then run DynamiCrafter image-to-video.
# With no checkpoint argument it runs a tiny randomly initialised model (it says so) and writes an mp4;
# pass the released model.ckpt to get real videos:  bash scripts/demo.sh /path/to/dynamicrafter_256/model.ckpt
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
cd dynamicrafter
bash scripts/run/run_infer.sh 256 "$@"
