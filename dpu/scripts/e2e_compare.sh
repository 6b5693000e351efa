#!/bin/bash
# The RFC job's shape (fio psync randwrite bs=1M fsync=1) in a guest on kab-dpu and on virtiofsd,
# alternating back-ends (ABAB...). Prints each run's fio bandwidth and the medians.
#   dpu/scripts/e2e_compare.sh KERNEL [REPS]     env: WRITEBACK=1, FIO_SIZE=256M
set -uo pipefail
kernel=${1:?usage: e2e_compare.sh KERNEL [REPS]}
reps=${2:-3}
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp)
for ((i = 0; i < reps; i++)); do
  if (( i % 2 == 0 )); then order="kab-dpu virtiofsd"; else order="virtiofsd kab-dpu"; fi
  for b in $order; do
    bw=$(BACKEND=$b E2E_DIR=/tmp/kab-dpu-cmp-$b FIO_SIZE=${FIO_SIZE:-256M} "$here/e2e_smoke.sh" "$kernel" \
         2>&1 | grep -o "WRITE: bw=[0-9.]*[KMG]iB/s" | head -1 | sed 's/WRITE: bw=//')
    echo "$b $bw" | tee -a "$out"
  done
done
python3 - "$out" <<'PY'
import sys, statistics, re
rows = [l.split() for l in open(sys.argv[1]) if len(l.split()) == 2]
def mib(v):
    n, u = re.match(r"([0-9.]+)([KMG])iB/s", v).groups()
    return float(n) * {"K": 1/1024, "M": 1, "G": 1024}[u]
for b in ("kab-dpu", "virtiofsd"):
    xs = [mib(v) for k, v in rows if k == b]
    if xs:
        print(f"{b:10} median {statistics.median(xs):7.1f} MiB/s  runs {[round(x,1) for x in xs]}")
PY
rm -f "$out"
