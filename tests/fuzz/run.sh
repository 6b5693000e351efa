#!/bin/sh
# Builds kab-dpu's libFuzzer targets with clang and runs each for a bounded time.
#   tests/fuzz/run.sh [seconds-per-target]    (default 30; env FUZZ_BUILD_DIR, FUZZ_JOBS)
# Exit status 0 when every target ran clean. A crashing input is copied to
# tests/data/dpu/fuzz/<target>/ where the unit tests (test_fuzz_regressions.cpp) replay it.
set -eu
secs=${1:-30}
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${FUZZ_BUILD_DIR:-/tmp/kab-dpu-fuzz}
cxx=${CXX_FUZZ:-clang++}
mkdir -p "$out" "$out/tmp"
export TMPDIR="$out/tmp"  # the FUSE target's scratch exports
flags="-std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I$root/dpu -I$root/tests/fuzz"
srcs="$root/dpu/guest_memory.cpp $root/dpu/virtqueue.cpp $root/dpu/fuse_io.cpp $root/dpu/fuse_server.cpp $root/dpu/log.cpp $root/dpu/dpu_model.cpp $root/tests/fuzz/fuzz_entry.cpp"
status=0
for target in walker fuse; do
  echo "fuzz: building $target"
  $cxx $flags $srcs "$root/tests/fuzz/fuzz_$target.cpp" -o "$out/fuzz_$target" -lpthread
  corpus="$out/corpus_$target"
  mkdir -p "$corpus" "$out/artifacts_$target"
  seeds="$root/tests/data/dpu/fuzz/$target"
  [ -d "$seeds" ] && cp -n "$seeds"/* "$corpus"/ 2>/dev/null || true
  echo "fuzz: running $target for ${secs}s"
  if ! "$out/fuzz_$target" -max_total_time="$secs" -max_len=8192 -rss_limit_mb=2048 \
        -artifact_prefix="$out/artifacts_$target/" "$corpus" >"$out/$target.log" 2>&1; then
    status=1
    echo "fuzz: $target FOUND A CRASH; log $out/$target.log"
    mkdir -p "$seeds"
    cp "$out/artifacts_$target"/* "$seeds"/ 2>/dev/null || true
    tail -40 "$out/$target.log"
  else
    tail -2 "$out/$target.log"
  fi
done
rm -rf "$out/tmp"
exit $status
