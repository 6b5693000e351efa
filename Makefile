# kab — the commands a new user types. `make demo` and `make test` each do all
# their own set-up (packages, build) on a fresh Debian 12 machine.

BUILD ?= build
JOBS  ?= $(shell nproc)
KAB    = $(BUILD)/harness/kab

# Every Debian package kab, its tests and its guests need.
DEB_PACKAGES = build-essential cmake pkg-config ccache git \
  libvirt-dev libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils \
  libguestfs-dev libyaml-cpp-dev libsqlite3-dev sqlite3 libboost1.81-dev catch2 \
  libcli11-dev nlohmann-json3-dev libfmt-dev fio busybox-static linux-source-6.1 linux-source-6.12 \
  gnuplot-nox flex bison bc libelf-dev libssl-dev cpio xz-utils e2fsprogs clang procps \
  linux-image-amd64

.PHONY: all deps build kab test unit demo clean distclean

all: build

# Idempotent: installs only what is missing. (python3-scipy is not listed: it
# conflicts with libboost1.81-dev; tests/data/stats/make_reference.sh fetches it
# privately when the reference values are regenerated.)
deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "make deps: installing $$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	else echo "make deps: all packages present"; fi

$(BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: $(BUILD)/Makefile
	cmake --build $(BUILD) -j$(JOBS)

# kab, kab-dpu and the guest's kab-append only, not the tests: what a machine that measures needs
# (make demo, a CI runner's shard job).
kab: deps $(BUILD)/Makefile
	cmake --build $(BUILD) -j$(JOBS) --target kab kab-dpu kab-append

# The whole suite: unit tests, then integration tests with real kernels,
# libvirt, QEMU, virtiofsd and fio.
test: deps
	$(MAKE) build
	cd $(BUILD) && ctest --output-on-failure --timeout 3600

# The fast loop: unit tests only.
unit: build
	cd $(BUILD) && ctest -L unit --output-on-failure

# The main job: build kab and kab-dpu (not the tests), compare the stock and
# RFC kernels on the RFC's job, end with the comparison in one paragraph. It
# exits 0 when the comparison completed, whatever its verdict (kab compare's
# own exit codes are for CI: 1 a regression); 2, 3 or 130 when it did not.
demo: kab
	@rc=0; $(KAB) compare --base stock-6.1 --candidate rfc-6.1 --scenario scenarios/rfc-writeback.yaml || rc=$$?; \
	if [ $$rc -gt 1 ]; then exit $$rc; fi; \
	run=$$(sqlite3 results/kab.db 'SELECT max(id) FROM runs'); \
	echo; echo "== summary (run $$run) =="; cat results/compare-$$run/comparison.summary.txt

clean:
	rm -rf $(BUILD)

distclean: clean
	rm -f results/kab.db results/kab.db-wal results/kab.db-shm
