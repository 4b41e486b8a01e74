#!/usr/bin/env bash
# Data-parallel fine-tuning of VideoComposer: one train.py process per device.
#
#   bash run_train_distribute.sh                                   # msrun, 8 workers on this machine
#   bash run_train_distribute.sh --worker_num 16 --local_worker_num 8 --master_addr 10.0.0.1 \
#        --master_port 8118 --node_rank 1                          # the second of two 8-device machines
#   bash run_train_distribute.sh --rank_table_file hccl_8p_01234567_x.json   # Ascend rank-table launch
#   bash run_train_distribute.sh --dry_run ...                     # print the commands, run nothing
#
# Options (defaults in brackets):
#   --config FILE            training YAML [configs/train_${task_name}.yaml]
#   --task_name NAME         picks the config and the output folder [train_exp02_motion_transfer]
#   --output_dir DIR         [outputs/<task_name>]
#   --worker_num N           processes in the whole job (msrun) [8]
#   --local_worker_num N     processes on this machine (msrun) [= worker_num]
#   --master_addr ADDR       address of the scheduler (node_rank 0's machine) (msrun) [127.0.0.1]
#   --master_port PORT       its port (msrun) [8118]
#   --node_rank R            this machine's index (msrun) [0]
#   --log_dir DIR            msrun's per-worker logs [<output_dir>/msrun_log]
#   --rank_table_file FILE   launch with an HCCL rank table instead of msrun (Ascend): one process per device
#                            with RANK_ID / DEVICE_ID, logs in <output_dir>/rank_<i>/train.log
#   --devices "0 1 ..."      device ids of the rank-table launch [0 .. RANK_SIZE-1]
#   --rank_size N            processes of the rank-table launch on this machine [number of --devices, else 8]
#   --server_id S            this server's index in the rank table (RANK_ID starts at S * rank_size) [0]
#   --dry_run                print the commands instead of running them
#   --                       everything after it goes to train.py (e.g. --batch_size=2 --random_weights)
#
# The rank-table file can also be set by editing the line below (the earlier MindSpore port's way).
set -u

rank_table_file=${rank_table_file:-}
task_name=train_exp02_motion_transfer
config=""
output_dir=""
worker_num=8
local_worker_num=""
master_addr=127.0.0.1
master_port=8118
node_rank=0
log_dir=""
devices=""
rank_size=""
server_id=0
dry_run=0
extra=()

die() { echo "error: $*" >&2; exit 2; }
is_int() { [[ "$1" =~ ^[0-9]+$ ]]; }

while [ $# -gt 0 ]; do
  case "$1" in
    --dry_run) dry_run=1; shift; continue ;;
    --) shift; extra=("$@"); break ;;
    --*=*) key="${1%%=*}"; val="${1#*=}"; shift ;;
    --*) key="$1"; [ $# -ge 2 ] || die "option $1 needs a value"; val="$2"; shift 2 ;;
    *) die "unexpected argument '$1' (train.py options go after --)" ;;
  esac
  case "$key" in
    --config) config="$val" ;;
    --task_name) task_name="$val" ;;
    --output_dir) output_dir="$val" ;;
    --worker_num) worker_num="$val" ;;
    --local_worker_num) local_worker_num="$val" ;;
    --master_addr) master_addr="$val" ;;
    --master_port) master_port="$val" ;;
    --node_rank) node_rank="$val" ;;
    --log_dir) log_dir="$val" ;;
    --rank_table_file) rank_table_file="$val" ;;
    --devices) devices="$val" ;;
    --rank_size) rank_size="$val" ;;
    --server_id) server_id="$val" ;;
    *) die "unknown option $key (see the head of $0)" ;;
  esac
done

cd "$(dirname "$0")" || exit 2
config=${config:-configs/${task_name}.yaml}
output_dir=${output_dir:-outputs/${task_name}}
[ -f "$config" ] || die "config not found: $config (--config / --task_name)"

run() {  # print (dry run) or execute one command line given as words
  if [ "$dry_run" = 1 ]; then printf '%q ' "$@"; echo; else "$@"; fi
}

if [ -z "$rank_table_file" ]; then
  # ---------------------------------------------------------------- msrun (CPU, GPU, Ascend)
  local_worker_num=${local_worker_num:-$worker_num}
  is_int "$worker_num" && [ "$worker_num" -ge 1 ] || die "--worker_num must be a positive integer, got '$worker_num'"
  is_int "$local_worker_num" && [ "$local_worker_num" -ge 1 ] && [ "$local_worker_num" -le "$worker_num" ] \
    || die "--local_worker_num must be 1..worker_num ($worker_num), got '$local_worker_num'"
  is_int "$master_port" && [ "$master_port" -ge 1 ] && [ "$master_port" -le 65535 ] \
    || die "--master_port must be 1..65535, got '$master_port'"
  is_int "$node_rank" || die "--node_rank must be a non-negative integer, got '$node_rank'"
  [ -n "$master_addr" ] || die "--master_addr is empty"
  log_dir=${log_dir:-$output_dir/msrun_log}
  if [ "$dry_run" = 0 ]; then
    command -v msrun >/dev/null || die "msrun not found (it comes with MindSpore >= 2.3; activate its environment)"
    mkdir -p "$output_dir" "$log_dir"
  fi
  run msrun --worker_num="$worker_num" --local_worker_num="$local_worker_num" --master_addr="$master_addr" \
      --master_port="$master_port" --node_rank="$node_rank" --log_dir="$log_dir" --join=True \
      python train.py -c "$config" --output_dir "$output_dir" "${extra[@]}"
  exit $?
fi

# -------------------------------------------------------------------- rank table (Ascend, HCCL)
[ -f "$rank_table_file" ] || die "rank table not found: $rank_table_file (--rank_table_file)"
if [ -n "$devices" ]; then
  read -r -a dev <<< "$devices"
  for d in "${dev[@]}"; do is_int "$d" || die "--devices: '$d' is not a device id"; done
  rank_size=${rank_size:-${#dev[@]}}
else
  rank_size=${rank_size:-8}
  is_int "$rank_size" || die "--rank_size must be a positive integer, got '$rank_size'"
  dev=($(seq 0 $((rank_size - 1))))
fi
is_int "$rank_size" && [ "$rank_size" -ge 1 ] || die "--rank_size must be a positive integer, got '$rank_size'"
[ "${#dev[@]}" -eq "$rank_size" ] || die "--devices lists ${#dev[@]} ids but --rank_size is $rank_size"
is_int "$server_id" || die "--server_id must be a non-negative integer, got '$server_id'"
rank_start=$((rank_size * server_id))
abs_table=$(cd "$(dirname "$rank_table_file")" && pwd)/$(basename "$rank_table_file")
export RANK_TABLE_FILE="$abs_table" RANK_SIZE="$rank_size" DEVICE_NUM="$rank_size" HCCL_CONNECT_TIMEOUT=6000
[ "$dry_run" = 1 ] && echo "RANK_TABLE_FILE=$abs_table RANK_SIZE=$rank_size DEVICE_NUM=$rank_size"
pids=()
for ((i = 0; i < rank_size; i++)); do
  rank_id=$((rank_start + i))
  log="$output_dir/rank_$i/train.log"
  if [ "$dry_run" = 1 ]; then
    echo "RANK_ID=$rank_id DEVICE_ID=${dev[i]} python train.py -c $config --output_dir $output_dir ${extra[*]} > $log 2>&1 &"
    continue
  fi
  mkdir -p "$output_dir/rank_$i"
  RANK_ID=$rank_id DEVICE_ID=${dev[i]} nohup python -u train.py -c "$config" --output_dir "$output_dir" \
      "${extra[@]}" > "$log" 2>&1 &
  pids+=($!)
  echo "rank $rank_id on device ${dev[i]}: pid $!, log $log"
done
[ "$dry_run" = 1 ] && exit 0
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
[ "$status" = 0 ] || echo "error: a rank failed; see $output_dir/rank_*/train.log" >&2
exit $status
