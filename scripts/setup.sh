#!/usr/bin/env bash
# Set up a fresh machine: a Python 3.11 virtual environment in .venv with MindSpore 2.7.1 and every
# package of this repository installed (editable). Idempotent: a second run only checks.
#   bash scripts/setup.sh            # inference + training
#   bash scripts/setup.sh --test     # also torch 2.13.0 (CPU; converters and test references), pytest, gradio, selenium
#   bash scripts/setup.sh --app      # also gradio (the web app, scripts/app.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for c in python3.11 python3; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then PY=$c; break; fi
  done
fi
[ -n "$PY" ] || { echo "setup: Python 3.11 is required (MindSpore 2.7.1 wheels); set PYTHON=/path/to/python3.11" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
extras=""
[ "${1:-}" = "--test" ] && extras="[test]"
[ "${1:-}" = "--app" ] && extras="[app]"      # the web app (gradio): scripts/app.sh
stamp=".venv/.installed${extras}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  python -m pip install -q --upgrade pip
  python -m pip install -q -e ".${extras}"
  touch "$stamp"
fi
# the optional C++ GroupNorm kernel (MSVZ_GROUPNORM=aot): compile it now rather than on first use
if [ "${MSVZ_GROUPNORM:-native}" = aot ]; then
  python -c "from common.nn.group_norm_kernel import build_library; print('setup: GroupNorm kernel', build_library())"
fi
python -c "import mindspore, common; print('setup: mindspore', mindspore.__version__, 'ready in', __import__('sys').prefix)"
