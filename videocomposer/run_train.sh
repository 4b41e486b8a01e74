#!/usr/bin/env bash
# Fine-tune on one device:  bash run_train.sh [task_name] [train.py options...]
#   bash run_train.sh                                        # train_exp02_motion_transfer on demo_video/train
#   bash run_train.sh train_exp05_text_depths_wo_style --batch_size=2
# The log goes to outputs/<task_name>/train.log (and the terminal); re-running resumes the run.
set -euo pipefail
cd "$(dirname "$0")"
export GLOG_v=${GLOG_v:-2}          # MindSpore log level: 0 INFO, 1 WARNING, 2 ERROR, 3 FATAL
export DEVICE_ID=${DEVICE_ID:-0}    # the device to train on (GPU / Ascend)
task_name=${1:-train_exp02_motion_transfer}
[ $# -gt 0 ] && shift
yaml_file=configs/${task_name}.yaml
[ -f "$yaml_file" ] || { echo "error: no config $yaml_file (task names: configs/train_*.yaml)" >&2; exit 2; }
output_path=outputs/${task_name}
mkdir -p "$output_path"
if grep -q "^root_dir: demo_video/train$" "$yaml_file" && [ ! -f demo_video/train/video_caption.csv ]; then
  python tools/make_demo_videos.py --out demo_video/train     # the demo set the configs point at
fi
python -u train.py -c "$yaml_file" --output_dir "$output_path" "$@" 2>&1 | tee -a "$output_path/train.log"
