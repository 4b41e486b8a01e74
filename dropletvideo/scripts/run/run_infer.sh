#!/usr/bin/env bash
# DropletVideo image-to-video from the dropletvideo/ folder.
#   bash scripts/run/run_infer.sh                                       # tiny RANDOM model (no weights needed)
#   bash scripts/run/run_infer.sh WEIGHTS_DIR IMAGE [FPS] "PROMPT" [more inference.py flags]
# WEIGHTS_DIR is the released DropletVideo-V1.0-weights folder; FPS defaults to 4 (strong motion).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ $# -eq 0 ]; then
  exec python inference.py --demo
fi
if [ $# -lt 2 ]; then
  echo "usage: bash scripts/run/run_infer.sh [WEIGHTS_DIR IMAGE [FPS] [PROMPT] [flags...]]" >&2
  exit 2
fi
ckpt=$1; image=$2; fps=${3:-4}; prompt=${4:-"The camera slowly moves forward through the scene."}
shift $(( $# < 4 ? $# : 4 ))
exec python inference.py --ckpt "$ckpt" --ref_img_dir "$image" --FPS "$fps" --prompt "$prompt" "$@"
