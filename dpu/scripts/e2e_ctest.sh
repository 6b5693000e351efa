#!/bin/bash
# ctest wrapper (label integration): runs e2e_smoke.sh on the stock kernel that kab builds (or has
# cached) when kab is passed, else on the newest kernel in kab's cache. KAB_DPU_E2E_KERNEL overrides it.
kab_dpu=${1:?usage: e2e_ctest.sh KAB_DPU [KAB]}
# The newest x86_64 kernel (a UML build's vmlinux cannot boot under QEMU).
newest_x86() {
  for k in $(ls -t "$HOME"/.cache/kab/kernels/*/vmlinux 2>/dev/null); do
    d=$(dirname "$k")
    if [ -f "$d/bzImage" ] && grep -q '"arch": *"x86_64"' "$d/meta.json" 2>/dev/null; then
      echo "$k"
      return
    fi
  done
}
kernel=${KAB_DPU_E2E_KERNEL:-}
if [ -z "$kernel" ] && [ -n "${2:-}" ]; then
  # The stock guest kernel, built by kab (or taken from its cache): never a skip on a fresh machine.
  kernel=$("$2" kernel build stock-6.1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["vmlinux"])')
fi
kernel=${kernel:-$(newest_x86)}
if [ -z "$kernel" ] || [ ! -f "$kernel" ]; then
  echo "no kernel (pass kab as the second argument to build one)"
  exit 1
fi
command -v qemu-system-x86_64 >/dev/null || { echo "no qemu-system-x86_64: skipped"; exit 77; }
exec "$(dirname "$0")/e2e_smoke.sh" "$kernel" "$kab_dpu" --writeback
