#!/bin/sh
# Builds kab-dpu's libFuzzer targets with clang and runs each for a bounded time.
#   tests/fuzz/run.sh [seconds-per-target] [target...]   (default 30, every target;
#                                                       env FUZZ_BUILD_DIR, CXX_FUZZ)
# Targets: walker (descriptor chains), fuse (FUSE decoder and operations), vhost (vhost-user
# messages with real fds, rings serving FUSE), vhost_race (the same while a guest thread posts
# requests), vhost_race_tsan (that one under ThreadSanitizer). ASan+UBSan for all but the last.
# Exit status 0 when every target ran clean. A crashing input is copied to
# tests/data/dpu/fuzz/<target>/ where the unit tests (test_fuzz_regressions.cpp) replay it.
# Each target's last line (executions, coverage) is printed.
set -eu
secs=${1:-30}
[ $# -gt 0 ] && shift
targets=${*:-walker fuse vhost vhost_race vhost_race_tsan}
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${FUZZ_BUILD_DIR:-/tmp/kab-dpu-fuzz}
cxx=${CXX_FUZZ:-clang++}
mkdir -p "$out"
scratch=$(mktemp -d "$out/tmp.XXXXXX")
export TMPDIR="$scratch"  # the scratch exports of the FUSE and vhost targets (one per run)
base="-std=c++20 -g -O1 -I$root/dpu -I$root/tests/fuzz"
asan="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
tsan="-fsanitize=fuzzer,thread"
srcs="guest_memory virtqueue fuse_io fuse_server request_deadline log dpu_model stats vhost_user vhost_user_server virtio_fs_device"

# Objects once per sanitizer flavour; a target links its entry file against them.
objects() {  # flavour flags
  dir="$out/obj-$1"
  mkdir -p "$dir"
  objs=""
  for s in $srcs; do
    src="$root/dpu/$s.cpp"
    o="$dir/$s.o"
    if [ ! -f "$o" ] || [ "$src" -nt "$o" ] || [ -n "$(find "$root/dpu" -name '*.h' -newer "$o")" ]; then
      $cxx $base $2 -c "$src" -o "$o"
    fi
    objs="$objs $o"
  done
  for s in fuzz_entry fuzz_vhost_entry; do
    o="$dir/$s.o"
    if [ ! -f "$o" ] || [ "$root/tests/fuzz/$s.cpp" -nt "$o" ] || [ -n "$(find "$root/dpu" "$root/tests/fuzz" -name '*.h' -newer "$o")" ]; then
      $cxx $base $2 -c "$root/tests/fuzz/$s.cpp" -o "$o"
    fi
    objs="$objs $o"
  done
  echo "$objs"
}

status=0
for target in $targets; do
  case $target in
    *_tsan) flavour=tsan; flags=$tsan; entry=${target%_tsan} ;;
    *) flavour=asan; flags=$asan; entry=$target ;;
  esac
  echo "fuzz: building $target"
  objs=$(objects $flavour "$flags")
  $cxx $base $flags $objs "$root/tests/fuzz/fuzz_$entry.cpp" -o "$out/fuzz_$target" -lpthread
  corpus="$out/corpus_$target"
  mkdir -p "$corpus" "$out/artifacts_$target"
  # The TSan run starts from what the ASan run of the same entry found.
  [ "$flavour" = tsan ] && [ -d "$out/corpus_$entry" ] && cp -n "$out/corpus_$entry"/* "$corpus"/ 2>/dev/null || true
  seeds="$root/tests/data/dpu/fuzz/$entry"
  [ -d "$seeds" ] && cp -n "$seeds"/* "$corpus"/ 2>/dev/null || true
  echo "fuzz: running $target for ${secs}s"
  export TSAN_OPTIONS="suppressions=$root/tests/fuzz/tsan.supp halt_on_error=1"
  if ! "$out/fuzz_$target" -max_total_time="$secs" -max_len=8192 -rss_limit_mb=4096 \
        -artifact_prefix="$out/artifacts_$target/" "$corpus" >"$out/$target.log" 2>&1; then
    status=1
    echo "fuzz: $target FOUND A CRASH; log $out/$target.log"
    mkdir -p "$seeds"
    cp "$out/artifacts_$target"/* "$seeds"/ 2>/dev/null || true
    tail -60 "$out/$target.log"
  else
    grep -E '^#[0-9]+' "$out/$target.log" | tail -1
    tail -1 "$out/$target.log"
  fi
done
rm -rf "$scratch"
exit $status
