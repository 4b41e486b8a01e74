#!/usr/bin/env bash
# Temporal-only fine-tuning.  bash scripts/run/run_train.sh CHECKPOINT DATA_DIR METADATA_CSV OUTPUT_DIR [N_PROC] [extra flags]
# N_PROC > 1 launches data-parallel workers with msrun (one per device; CPU works too).
set -euo pipefail
cd "$(dirname "$0")/../.."
ckpt="$1"; data="$2"; csv="$3"; out="$4"; nproc="${5:-1}"
shift $(( $# < 5 ? $# : 5 ))
args=(train.py --config=configs/svd_train.yaml --svd_config=configs/svd.yaml --train.pretrained="$ckpt"
      --train.output_dir="$out" --train.temporal_only=True --train.epochs=10
      --train.dataset.init_args.frames=4 --train.dataset.init_args.step=5
      --train.dataset.init_args.data_dir="$data" --train.dataset.init_args.metadata="$csv" "$@")
if [ "$nproc" -gt 1 ]; then
  exec msrun --worker_num="$nproc" --local_worker_num="$nproc" --master_port=8118 --join=True \
    --log_dir="$out/msrun_log" python "${args[@]}"
fi
exec python "${args[@]}"
