#!/usr/bin/env bash
# Convert the released files under models/ to MindSpore checkpoints next to them (<name>_ms.ckpt).
set -euo pipefail
cd "$(dirname "$0")/../.."
convert() {  # kind file
  case "$2" in *_ms.ckpt) return 0;; esac
  [ -f "$2" ] && python tools/convert_weight.py --kind "$1" --src "$2" --target "${2%.*}_ms.ckpt" || true
}
for f in models/Motion_Module/mm_sd_v1*.ckpt models/Motion_Module/v3_sd15_mm.ckpt; do convert motion_module "$f"; done
convert adapter models/Motion_Module/v3_sd15_adapter.ckpt
for f in models/MotionLoRA/v2_lora_*.ckpt; do convert motion_lora "$f"; done
for f in models/DreamBooth_LoRA/*.safetensors models/DreamBooth_LoRA/*.ckpt; do convert dreambooth "$f"; done
for f in models/SparseCtrl/v3_sd15_sparsectrl_*.ckpt; do convert sparsectrl "$f"; done
