#!/usr/bin/env bash
# Data-parallel training for any model folder with a train.py (one process per device), run from that folder by
# its scripts/run/run_train_distributed.sh (DynamiCrafter, AnimateDiff):
#
#   bash scripts/run/run_train_distributed.sh [--dry_run] msrun N_PROC CONFIG OUTPUT_DIR [train.py flags]
#   bash scripts/run/run_train_distributed.sh [--dry_run] rank_table RANK_TABLE_FILE CONFIG OUTPUT_DIR [train.py flags]
#
# msrun: N_PROC workers on this machine (GPU, Ascend or CPU); MASTER_PORT (default 8118) sets the port; the
#   workers' logs go to OUTPUT_DIR/msrun_log/.
# rank_table: Ascend with an HCCL rank table (JSON with server_list[].device[].{device_id, rank_id}): one process
#   per device of this server (SERVER_ID=<server_id of the table>, default its first server) with RANK_TABLE_FILE,
#   RANK_SIZE (all devices of the table), RANK_ID and DEVICE_ID set; logs in OUTPUT_DIR/rank_<RANK_ID>.log.
# --dry_run prints the commands (with their environment) instead of running them.
# The working directory must be the model folder (where train.py is).
set -euo pipefail

usage() {
    echo "usage: bash scripts/run/run_train_distributed.sh [--dry_run] msrun N_PROC CONFIG OUTPUT_DIR [train.py flags]" >&2
    echo "       bash scripts/run/run_train_distributed.sh [--dry_run] rank_table RANK_TABLE_FILE CONFIG OUTPUT_DIR [train.py flags]" >&2
}
fail() { echo "error: $1" >&2; usage; exit 2; }

dry=0
if [ "${1:-}" = "--dry_run" ]; then dry=1; shift; fi
[ $# -ge 4 ] || fail "missing arguments (launcher, N_PROC or RANK_TABLE_FILE, CONFIG, OUTPUT_DIR)"
launcher="$1"; what="$2"; config="$3"; out="$4"; shift 4
[ -f "$config" ] || fail "config not found: $config (CONFIG)"
PY="${PYTHON:-python}"

show() {  # print a command line, quoted so that it can be pasted
    local s="" a
    for a in "$@"; do s+=" $(printf '%q' "$a")"; done
    echo "${s# }"
}

case "$launcher" in
msrun)
    [[ "$what" =~ ^[1-9][0-9]*$ ]] || fail "N_PROC must be a positive integer, got '$what'"
    cmd=(msrun --worker_num="$what" --local_worker_num="$what" --master_port="${MASTER_PORT:-8118}" --join=True
         --log_dir="$out/msrun_log" "$PY" train.py -c "$config" --output_dir "$out" "$@")
    if [ $dry -eq 1 ]; then show "${cmd[@]}"; exit 0; fi
    mkdir -p "$out"
    exec "${cmd[@]}"
    ;;
rank_table)
    [ -f "$what" ] || fail "rank table not found: $what (RANK_TABLE_FILE)"
    table="$(cd "$(dirname "$what")" && pwd)/$(basename "$what")"
    # "<rank size>" then "<rank_id> <device_id>" for each device of this server
    if ! devices="$("$PY" - "$table" "${SERVER_ID:-}" 2>&1 <<'PYEOF'
import json, sys
try:
    t = json.load(open(sys.argv[1]))
    servers = t["server_list"]
    size = sum(len(s["device"]) for s in servers)
    want = sys.argv[2]
    mine = [s for s in servers if s.get("server_id") == want] if want else servers[:1]
    if not mine:
        sys.exit(f"SERVER_ID {want} is not a server_id of the rank table")
    print(size)
    for d in mine[0]["device"]:
        print(int(d["rank_id"]), int(d["device_id"]))
except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
    sys.exit(f"cannot read the rank table (server_list[].device[].rank_id/device_id): {type(e).__name__}: {e}")
PYEOF
    )"; then
        fail "rank table $what: $(echo "$devices" | tail -n 1) (RANK_TABLE_FILE)"
    fi
    size="$(echo "$devices" | head -n 1)"
    pids=()
    while read -r rank dev; do
        [ -n "$rank" ] || continue
        cmd=("$PY" train.py -c "$config" --output_dir "$out" "$@")
        if [ $dry -eq 1 ]; then
            echo "RANK_TABLE_FILE=$table RANK_SIZE=$size RANK_ID=$rank DEVICE_ID=$dev $(show "${cmd[@]}") > $out/rank_$rank.log"
            continue
        fi
        mkdir -p "$out"
        RANK_TABLE_FILE="$table" RANK_SIZE="$size" RANK_ID="$rank" DEVICE_ID="$dev" "${cmd[@]}" > "$out/rank_$rank.log" 2>&1 &
        pids+=($!)
    done <<< "$(echo "$devices" | tail -n +2)"
    [ $dry -eq 1 ] && exit 0
    status=0
    for p in "${pids[@]}"; do wait "$p" || status=$?; done
    [ $status -eq 0 ] || echo "error: a rank failed (exit $status); see $out/rank_*.log" >&2
    exit $status
    ;;
*)
    fail "unknown launcher '$launcher': msrun or rank_table"
    ;;
esac
