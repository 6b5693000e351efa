#!/bin/bash
# The RFC job's shape on kab-dpu (writeback on) under two kernels, alternating (ABAB...).
#   dpu/scripts/e2e_kernel_ab.sh KERNEL_A KERNEL_B [REPS]   env: FIO_SIZE (256M), DPU_ARGS
set -uo pipefail
a=${1:?usage: e2e_kernel_ab.sh KERNEL_A KERNEL_B [REPS]}
b=${2:?usage: e2e_kernel_ab.sh KERNEL_A KERNEL_B [REPS]}
reps=${3:-3}
here=$(cd "$(dirname "$0")" && pwd)
dpu=${KAB_DPU:-/tmp/kab-dpu-build/dpu/kab-dpu}
out=$(mktemp)
for ((i = 0; i < reps; i++)); do
  if (( i % 2 == 0 )); then order="A B"; else order="B A"; fi
  for k in $order; do
    kernel=$a; [ "$k" = B ] && kernel=$b
    log=$(E2E_DIR=/tmp/kab-dpu-ab-$k FIO_SIZE=${FIO_SIZE:-256M} WRITEBACK=1 \
          "$here/e2e_smoke.sh" "$kernel" "$dpu" ${DPU_ARGS:-} 2>&1)
    bw=$(grep -o "WRITE: bw=[0-9.]*[KMG]iB/s" <<<"$log" | head -1 | sed 's/WRITE: bw=//')
    verdict=$(grep -o "E2E VERDICT: [A-Z]*" <<<"$log")
    echo "$k $bw $verdict" | tee -a "$out"
  done
done
python3 - "$out" <<'PY'
import sys, statistics, re
rows = [l.split() for l in open(sys.argv[1]) if len(l.split()) >= 2]
def mib(v):
    n, u = re.match(r"([0-9.]+)([KMG])iB/s", v).groups()
    return float(n) * {"K": 1/1024, "M": 1, "G": 1024}[u]
med = {}
for k in ("A", "B"):
    xs = [mib(r[1]) for r in rows if r[0] == k]
    med[k] = statistics.median(xs)
    print(f"{k} median {med[k]:7.1f} MiB/s  runs {[round(x,1) for x in xs]}")
print(f"B/A = {med['B']/med['A']:.2f}")
PY
rm -f "$out"
