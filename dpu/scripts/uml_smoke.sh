#!/bin/bash
# The e2e smoke test on User-Mode Linux: the guest reaches kab-dpu through virtio_uml, which
# takes the virtio-fs tag from the device's config space (VHOST_USER_GET_CONFIG).
#   dpu/scripts/uml_smoke.sh UML_LINUX [KAB_DPU] [kab-dpu args...]
set -euo pipefail
linux=${1:?usage: uml_smoke.sh UML_LINUX [KAB_DPU] [kab-dpu args...]}
dpu=${2:-/tmp/kab-dpu-build/dpu/kab-dpu}
shift $(( $# >= 2 ? 2 : 1 ))
work=${E2E_DIR:-/tmp/kab-dpu-uml}
here=$(cd "$(dirname "$0")" && pwd)
E2E_DIR=$work E2E_INITRD_ONLY=1 "$here/e2e_smoke.sh" "$linux" "$dpu"
mkdir -p "$work/uml"
"$dpu" --socket "$work/vu.sock" --shared-dir "$work/share" --stats "$work/stats.json" \
  --log "$work/dpu.log" --tag kab "$@" &
dpu_pid=$!
for _ in $(seq 50); do [ -S "$work/vu.sock" ] && break; sleep 0.1; done
start=$(date +%s)
TMPDIR=/dev/shm timeout 600 "$linux" mem=${UML_MEM:-1G} initrd="$work/initrd.gz" \
  virtio_uml.device="$work/vu.sock:26" uml_dir="$work/uml" con=null con0=null,fd:1 \
  console=tty0 ${UML_QUIET-quiet} < /dev/null > "$work/console.log" 2>&1 || echo "UML exited with $?"
echo "guest ran $(( $(date +%s) - start )) s"
wait "$dpu_pid" && echo "kab-dpu exit 0" || echo "kab-dpu exit $?"
grep -E "E2E|WRITE:|READ:|err=" "$work/console.log" || tail -30 "$work/console.log"
grep -q "E2E: INTEGRITY OK" "$work/console.log" && grep -q "E2E: DONE" "$work/console.log" &&
  echo "UML VERDICT: PASS" || { echo "UML VERDICT: FAIL"; exit 1; }
