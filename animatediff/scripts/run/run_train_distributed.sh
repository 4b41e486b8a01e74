#!/usr/bin/env bash
# Data-parallel AnimateDiff motion-module (or MotionLoRA) training: one train.py process per device.
#
#   bash scripts/run/run_train_distributed.sh [--dry_run] msrun N_PROC CONFIG OUTPUT_DIR [train.py flags]
#   bash scripts/run/run_train_distributed.sh [--dry_run] rank_table RANK_TABLE_FILE CONFIG OUTPUT_DIR [train.py flags]
#
# msrun: N_PROC workers on this machine (GPU, Ascend or CPU; MASTER_PORT, default 8118); rank_table: Ascend with an
# HCCL rank table (SERVER_ID picks this server). The launcher is the repository's scripts/train_distributed.sh
# (shared by every model): see there for the details.
# Example: bash scripts/run/run_train_distributed.sh msrun 8 configs/training/v1/training.yaml runs/mm \
#            --pretrained_model_path=models/StableDiffusion/stable-diffusion-v1-5 --train_data.csv_path=webvid/results.csv \
#            --train_data.video_folder=webvid/videos     (OUTPUT_DIR is passed as --output_dir, the YAML key)
set -euo pipefail
cd "$(dirname "$0")/../.."
exec bash ../scripts/train_distributed.sh "$@"
