#!/bin/sh
# Regenerates tests/data/stats/reference.json: the SciPy values kab's statistics
# are tested against (tests/unit/core/test_stats.cpp).
#
# Debian's python3-scipy cannot be installed next to libboost1.81-dev (its
# python3-pythran dependency pulls libboost1.74-dev), so this downloads the
# Debian packages, unpacks them into a private root and runs Debian's own
# /usr/bin/python3 with PYTHONPATH and LD_LIBRARY_PATH pointing there. Nothing is
# installed. Needs: apt-get (with package lists), dpkg, network access to Debian.
#
# Usage: tests/data/stats/make_reference.sh [OUTPUT]   (default: reference.json beside this script)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/reference.json}
work=$(mktemp -d /tmp/kab-scipy.XXXXXX)
trap 'rm -rf "$work"' EXIT

cd "$work"
apt-get download python3-scipy python3-numpy python3-decorator \
  liblbfgsb0 libblas3 liblapack3 libgfortran5 libquadmath0 >/dev/null
mkdir root
for deb in ./*.deb; do dpkg -x "$deb" root; done

libdirs="$work/root/usr/lib/x86_64-linux-gnu:$work/root/usr/lib/x86_64-linux-gnu/blas:$work/root/usr/lib/x86_64-linux-gnu/lapack"
env -u PYTHONHOME PYTHONPATH="$work/root/usr/lib/python3/dist-packages" \
LD_LIBRARY_PATH="$libdirs" \
PYTHONNOUSERSITE=1 \
  /usr/bin/python3 -s "$here/make_reference.py" "$out.tmp" 2>&1 || { rm -f "$out.tmp"; exit 1; }
mv "$out.tmp" "$out"
echo "wrote $out"
