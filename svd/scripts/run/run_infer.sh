#!/usr/bin/env bash
# Image-to-video.  bash scripts/run/run_infer.sh [svd|svd_xt|svd_xt_1_1] [CHECKPOINT] [IMAGE] [extra flags]
# Without a checkpoint: the tiny random model on the bundled image (a smoke test; it says so).
# Extra flags go to image_to_video.py, e.g. --sampler dpmpp_2m --num_steps 15 (README: Samplers).
# No --mode: image_to_video.py runs graph mode (the denoiser compiled once), with split CFG and chunks as the
# free memory needs; where even that is estimated not to fit (576x1024 on 24 GiB) it runs PyNative with the chunks
# and prints why. --mode=graph / --mode=pynative and --split_cfg / --no_split_cfg / --attention_chunk_size /
# --ff_chunk override the choice (it prints them: "graph mode: split_cfg=...").
set -euo pipefail
cd "$(dirname "$0")/../.."
version="${1:-svd}"; ckpt="${2:-}"; image="${3:-}"
shift $(( $# < 3 ? $# : 3 ))
case "$version" in
  svd) frames=14 ;; svd_xt|svd_xt_1_1) frames=25 ;;
  *) echo "unknown version $version (svd, svd_xt, svd_xt_1_1)" >&2; exit 1 ;;
esac
if [ -z "$ckpt" ]; then
  exec python image_to_video.py "$@"
fi
exec python image_to_video.py --SVD.config="configs/$version.yaml" --SVD.checkpoint="$ckpt" \
  --SVD.num_frames="$frames" --SVD.fps=7 --SVD.motion_bucket_id=127 --SVD.noise_aug_strength=0.02 \
  --SVD.decode_chunk_size=7 ${image:+--image="$image"} "$@"
