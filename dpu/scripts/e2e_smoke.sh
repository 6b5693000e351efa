#!/bin/bash
# End-to-end smoke test of kab-dpu: boots a Linux guest under QEMU (TCG is fine) whose virtio-fs
# share is served by kab-dpu, mounts it, runs fio (the RFC's job shape: psync randwrite, bs=1M,
# fsync=1) plus a write/read-back integrity check, and checks the host directory afterwards.
#   dpu/scripts/e2e_smoke.sh KERNEL [KAB_DPU] [extra kab-dpu args...]
# KERNEL: bzImage or vmlinux with virtio-pci, virtio-fs, FUSE, devtmpfs, ACPI (for poweroff).
# Work directory: $E2E_DIR (default /tmp/kab-dpu-e2e); kept for inspection.
# BACKEND=virtiofsd runs the same guest on QEMU's virtiofsd instead (for comparisons);
# WRITEBACK=1 turns the writeback cache on in either back-end; FIO_SIZE (default 64M).
set -euo pipefail
kernel=${1:?usage: e2e_smoke.sh KERNEL [KAB_DPU] [kab-dpu args...]}
dpu=${2:-/tmp/kab-dpu-build/dpu/kab-dpu}
shift $(( $# >= 2 ? 2 : 1 ))
work=${E2E_DIR:-/tmp/kab-dpu-e2e}
rm -rf "$work"
mkdir -p "$work/share" "$work/root"/{bin,sbin,proc,sys,dev,mnt,tmp,etc,lib,lib64,usr/bin}
root="$work/root"

# initramfs: busybox + fio and the libraries it links
cp /bin/busybox "$root/bin/busybox"
ln -sf busybox "$root/bin/sh"
cp /usr/bin/fio "$root/usr/bin/fio"
ldd /usr/bin/fio | awk '/=>/ {print $3} /ld-linux/ {print $1}' | while read -r lib; do
  [ -f "$lib" ] || continue
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
cat > "$root/init" <<'INIT'
#!/bin/sh
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
echo "E2E: mounting virtio-fs"
if ! mount -t virtiofs kab /mnt; then echo "E2E: MOUNT FAILED"; poweroff -f; fi
echo "E2E: mounted"
dd if=/dev/urandom of=/tmp/ref bs=64k count=64 2>/dev/null
cp /tmp/ref /mnt/ref.bin
sync
echo 3 > /proc/sys/vm/drop_caches
if cmp /tmp/ref /mnt/ref.bin; then echo "E2E: INTEGRITY OK $(md5sum /mnt/ref.bin)"; else echo "E2E: INTEGRITY FAILED"; fi
mkdir -p /mnt/d1/d2 && echo hello > /mnt/d1/d2/f && mv /mnt/d1/d2/f /mnt/d1/g && ls -la /mnt/d1
rm -rf /mnt/d1/d2
mkdir /mnt/churn
i=0
while [ $i -lt 40 ]; do
  echo "file $i" > /mnt/churn/f$i
  dd if=/dev/urandom of=/mnt/churn/g$i bs=4k count=3 2>/dev/null
  mv /mnt/churn/f$i /mnt/churn/h$i
  truncate -s $((i * 100)) /mnt/churn/g$i
  [ $((i % 3)) = 0 ] && rm /mnt/churn/h$i
  i=$((i + 1))
done
sync
for f in $(ls /mnt/churn | sort); do
  echo "MANIFEST $f $(md5sum < /mnt/churn/$f | cut -d' ' -f1) $(stat -c %s /mnt/churn/$f)"
done
fio --name=rfc --directory=/mnt --rw=randwrite --bs=1M --size=@FIO_SIZE@ --ioengine=psync --fsync=1 \
    --runtime=10 --time_based=0 --end_fsync=1 --output-format=normal 2>&1 | grep -E "WRITE:|write:|err" 
echo "E2E: FIO EXIT $?"
fio --name=verify --directory=/mnt --rw=write --bs=256k --size=16M --ioengine=psync \
    --verify=crc32c --do_verify=1 2>&1 | grep -E "WRITE:|READ:|verify|err"
echo "E2E: VERIFY DONE"
fio --name=mt --directory=/mnt --rw=randwrite --bs=64k --size=8M --numjobs=4 --ioengine=libaio \
    --iodepth=8 --direct=1 --verify=crc32c --do_verify=1 --group_reporting 2>&1 | grep -E "WRITE:|READ:|verify|err"
echo "E2E: CONCURRENT VERIFY DONE"
ls -la /mnt
umount /mnt
echo "E2E: DONE"
poweroff -f
INIT
sed -i "s/@FIO_SIZE@/${FIO_SIZE:-64M}/" "$root/init"
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc 2>/dev/null | gzip -1) > "$work/initrd.gz"
[ "${E2E_INITRD_ONLY:-0}" = 1 ] && exit 0  # used by uml_smoke.sh

if [ "${BACKEND:-kab-dpu}" = virtiofsd ]; then
  wb=(); [ "${WRITEBACK:-0}" = 1 ] && wb=(-o writeback)
  /usr/lib/qemu/virtiofsd --socket-path="$work/vu.sock" -o source="$work/share" -o cache=auto \
    "${wb[@]}" >"$work/virtiofsd.log" 2>&1 &
else
  wb=(); [ "${WRITEBACK:-0}" = 1 ] && wb=(--writeback)
  "$dpu" --socket "$work/vu.sock" --shared-dir "$work/share" --stats "$work/stats.json" \
    --log "$work/dpu.log" "${wb[@]}" "$@" &
fi
dpu_pid=$!
for _ in $(seq 50); do [ -S "$work/vu.sock" ] && break; sleep 0.1; done
start=$(date +%s)
timeout 600 qemu-system-x86_64 -machine q35 -cpu max -m 1G -smp 1 -nographic -no-reboot \
  -kernel "$kernel" -initrd "$work/initrd.gz" -append "console=ttyS0 panic=-1 quiet" \
  -chardev socket,id=c,path="$work/vu.sock" -device vhost-user-fs-pci,chardev=c,tag=kab${QEMU_FS_OPTS:-} \
  -object memory-backend-memfd,id=mem,size=1G,share=on -numa node,memdev=mem \
  > "$work/console.log" 2>&1 || echo "qemu exited with $?"
echo "guest ran $(( $(date +%s) - start )) s"
wait "$dpu_pid" && echo "${BACKEND:-kab-dpu} exit 0" || echo "${BACKEND:-kab-dpu} exit $?"
grep -E "E2E|WRITE:|write:|READ:|verify" "$work/console.log" || tail -30 "$work/console.log"
ls -la "$work/share"
guest_md5=$(grep -o "INTEGRITY OK [0-9a-f]*" "$work/console.log" | awk '{print $3}')
host_md5=$(md5sum "$work/share/ref.bin" | awk '{print $1}')
if [ -n "$guest_md5" ] && [ "$guest_md5" = "$host_md5" ]; then
  echo "host copy matches the guest's data ($host_md5)"
else
  echo "HOST/GUEST MISMATCH: guest '$guest_md5' host '$host_md5'"
fi
grep "^MANIFEST" "$work/console.log" | tr -d '\r' | sort > "$work/manifest.guest" || true
for f in $(ls "$work/share/churn" | sort); do
  echo "MANIFEST $f $(md5sum < "$work/share/churn/$f" | cut -d' ' -f1) $(stat -c %s "$work/share/churn/$f")"
done | sort > "$work/manifest.host"
if [ -s "$work/manifest.guest" ] && cmp -s "$work/manifest.guest" "$work/manifest.host"; then
  echo "churn: host directory holds exactly what the guest wrote ($(wc -l < "$work/manifest.host") files)"
else
  echo "CHURN MISMATCH"; diff "$work/manifest.guest" "$work/manifest.host" | head
fi
[ -f "$work/stats.json" ] && python3 -c "import json,sys; j=json.load(open('$work/stats.json')); print('requests', j['requests']); print('bytes_written', j['bytes_written'], 'bytes_read', j['bytes_read'], 'malformed', j['malformed_requests'])"
verdict=0
grep -q "E2E: INTEGRITY OK" "$work/console.log" || verdict=1
grep -q "E2E: DONE" "$work/console.log" || verdict=1
[ "$(grep -c "err= 0" "$work/console.log")" -ge 2 ] || verdict=1
grep -q "CONCURRENT VERIFY DONE" "$work/console.log" || verdict=1
[ -n "$guest_md5" ] && [ "$guest_md5" = "$host_md5" ] || verdict=1
cmp -s "$work/manifest.guest" "$work/manifest.host" || verdict=1
echo "E2E VERDICT: $([ $verdict = 0 ] && echo PASS || echo FAIL)"
exit $verdict
