#!/bin/bash
# ctest wrapper (label integration): runs e2e_smoke.sh against the newest kernel in kab's cache,
# or exits 77 (skipped) when there is none. KAB_DPU_E2E_KERNEL overrides the kernel.
kab_dpu=${1:?usage: e2e_ctest.sh KAB_DPU}
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
kernel=${KAB_DPU_E2E_KERNEL:-$(newest_x86)}
if [ -z "$kernel" ] || [ ! -f "$kernel" ]; then
  echo "no kernel in ~/.cache/kab/kernels: skipped"
  exit 77
fi
command -v qemu-system-x86_64 >/dev/null || { echo "no qemu-system-x86_64: skipped"; exit 77; }
exec "$(dirname "$0")/e2e_smoke.sh" "$kernel" "$kab_dpu" --writeback
