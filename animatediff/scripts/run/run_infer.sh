#!/usr/bin/env bash
# Text-to-video with AnimateDiff. Without arguments: the demo (tiny random model, no downloads).
#   bash scripts/run/run_infer.sh                                               # demo
#   bash scripts/run/run_infer.sh configs/prompts/1_animate/1_1_animate_ToonYou.yaml [text_to_video.py flags]
# Graph mode by default: the UNet call compiled once per entry (text encoder and VAE eager, the graph released
# before the VAE decode), split CFG and attention / feed-forward chunks chosen from the size and the free memory
# (each entry prints its choice). --mode pynative, --split_cfg / --no_split_cfg, --attention_chunk_size N and
# --ff_chunk N override it.
set -euo pipefail
cd "$(dirname "$0")/../.."
config="${1:-configs/prompts/demo.yaml}"
shift || true
python text_to_video.py --config "$config" "$@"
