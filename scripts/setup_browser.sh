#!/usr/bin/env bash
# Headless Chromium and its driver for the app's browser test (common/tests/test_app_browser.py) and
# scripts/app_screenshot.py: Debian's chromium + chromium-driver, installed with apt-get when missing (as root, or
# with passwordless sudo). Idempotent: when both are there it only says so.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  echo "setup_browser: $(chromium --version 2>/dev/null | head -1) and chromedriver ready"
  exit 0
fi
if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"
else
  echo "setup_browser: chromium / chromedriver missing and no root: run  apt-get install chromium chromium-driver" >&2
  exit 1
fi
command -v apt-get >/dev/null 2>&1 || { echo "setup_browser: no apt-get: install chromium and its chromedriver" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
echo "setup_browser: installed $(chromium --version 2>/dev/null | head -1)"
