#!/bin/bash
# Bandwidth of kab-dpu (every DPU knob off) against QEMU's virtiofsd, both driven by the same
# guest-less front-end (kab-dpu-bench), alternating back-ends (ABAB...) so machine drift cancels.
#   dpu/bench/compare.sh [BUILD_DIR] [REPS] [SHARE_PARENT]
# Prints one JSON line per run and a median summary per (job, back-end).
set -euo pipefail
build=${1:-/tmp/kab-dpu-build}
reps=${2:-3}
parent=${3:-/dev/shm}
secs=${BENCH_SECONDS:-3}
work=$(mktemp -d "$parent/kab-dpu-cmp-XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/share"
virtiofsd=${VIRTIOFSD:-/usr/lib/qemu/virtiofsd}
jobs=("write-fsync1:--bs 1048576 --depth 1 --fsync-every 1"
      "write-qd8:--bs 1048576 --depth 8 --fsync-every 0"
      "read-qd8:--bs 1048576 --depth 8 --fsync-every 0 --read"
      "write-4k-qd1:--bs 4096 --depth 1 --fsync-every 0")
results="$work/results.jsonl"
run_one() {  # backend job-name job-args
  local backend=$1 name=$2 args=$3 sock="$work/$1.sock" pid
  rm -f "$sock"
  if [ "$backend" = kab-dpu ]; then
    "$build/dpu/kab-dpu" --socket "$sock" --shared-dir "$work/share" --log "$work/dpu.log" &
  else
    "$virtiofsd" --socket-path="$sock" -o source="$work/share" -o cache=auto >"$work/vfs.log" 2>&1 &
  fi
  pid=$!
  for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
  if ! "$build/dpu/kab-dpu-bench" --socket "$sock" --seconds "$secs" --label "$backend" $args \
      >"$work/one.json"; then
    echo "run failed: $backend $name" >&2
    kill "$pid" 2>/dev/null || true
  fi
  sed "s/^{/{\"job\":\"$name\",/" "$work/one.json" | tee -a "$results"
  wait "$pid" || true
}
for ((i = 0; i < reps; i++)); do
  for j in "${jobs[@]}"; do
    name=${j%%:*} args=${j#*:}
    if (( i % 2 == 0 )); then order="kab-dpu virtiofsd"; else order="virtiofsd kab-dpu"; fi
    for b in $order; do run_one "$b" "$name" "$args"; done
  done
done
python3 - "$results" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1])]
jobs = sorted({r["job"] for r in rows})
print(f"{'job':16} {'kab-dpu MiB/s':>14} {'virtiofsd MiB/s':>16} {'ratio':>7}  (medians of {len(rows)//len(jobs)//2} runs)")
for j in jobs:
    med = {b: statistics.median([r["mib_s"] for r in rows if r["job"] == j and r["label"] == b] or [float("nan")])
           for b in ("kab-dpu", "virtiofsd")}
    print(f"{j:16} {med['kab-dpu']:14.1f} {med['virtiofsd']:16.1f} {med['kab-dpu']/med['virtiofsd']:7.2f}")
PY
