#!/usr/bin/env bash
# Text-to-video with AnimateDiff. Without arguments: the demo (tiny random model, no downloads).
#   bash scripts/run/run_infer.sh                                               # demo
#   bash scripts/run/run_infer.sh configs/prompts/1_animate/1_1_animate_ToonYou.yaml [text_to_video.py flags]
set -euo pipefail
cd "$(dirname "$0")/../.."
config="${1:-configs/prompts/demo.yaml}"
shift || true
python text_to_video.py --config "$config" "$@"
