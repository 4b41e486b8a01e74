#!/usr/bin/env bash
# Set up (with test extras) and run the whole test suite on CPU. Extra arguments go to pytest.
# Golden parity cases are read from $GOLDEN_DIR (default ../shared/golden beside the repository).
# Models without a port yet (their golden cases are marked `unported`) are deselected; see docs/parity.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
bash scripts/setup_browser.sh   # headless Chromium for the app's browser test (apt-get, when missing)
. .venv/bin/activate
export PATH="$PWD/.venv/bin:$PATH"   # msrun starts `python` from PATH
golden="${GOLDEN_DIR:-$PWD/../shared/golden}"
[ -d "$golden" ] || { echo "test: no golden cases at $golden (put ../shared beside the repo or set GOLDEN_DIR)" >&2; exit 1; }
# pytest exits 5 when it collected no tests, so an empty run cannot pass.
python -m pytest -q -m "not unported" "$@"
