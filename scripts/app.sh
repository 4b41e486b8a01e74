#!/usr/bin/env bash
# Set up (.venv with the app extra) and start the web app: one tab per model, at http://127.0.0.1:7860.
#   bash scripts/app.sh                                        # no weights: the tiny random-weight models
#   bash scripts/app.sh --weights svd=/ckpts/svd --port 8000   # flags go to python -m common.app (see --help)
#   VIDEOGEN_DYNAMICRAFTER_WEIGHTS=/ckpts/dc256 bash scripts/app.sh
# It listens on 127.0.0.1 only; pass --host 0.0.0.0 to serve other machines.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --app
. .venv/bin/activate
exec python -m common.app "$@"
