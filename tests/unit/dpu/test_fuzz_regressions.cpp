// Inputs found by the libFuzzer targets (tests/fuzz), replayed through the same entry points.
// Each file in tests/data/dpu/fuzz/<target>/ is one input that once crashed or misbehaved.
#include "../../fuzz/fuzz_entry.h"

#include <catch2/catch.hpp>

#include <linux/fuse.h>

#include <filesystem>
#include <fstream>
#include <iterator>

namespace fs = std::filesystem;

static void replay(const std::string& target, int (*entry)(const uint8_t*, size_t)) {
  fs::path dir = fs::path(KAB_DPU_TEST_DATA) / "fuzz" / target;
  if (!fs::exists(dir))
    return;
  for (const auto& f : fs::directory_iterator(dir)) {
    std::ifstream in(f.path(), std::ios::binary);
    std::vector<uint8_t> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    INFO("input " << f.path());
    CHECK(entry(data.data(), data.size()) == 0);
  }
}

TEST_CASE("fuzz regressions: descriptor walker", "[dpu][fuzz]") {
  replay("walker", kab::dpu::fuzz::walker_one_input);
}

TEST_CASE("fuzz regressions: FUSE decoder", "[dpu][fuzz]") {
  replay("fuse", kab::dpu::fuzz::fuse_one_input);
}

TEST_CASE("fuzz regressions: vhost-user control plane", "[dpu][fuzz]") {
  replay("vhost", [](const uint8_t* d, size_t n) { return kab::dpu::fuzz::vhost_one_input(d, n, false); });
  replay("vhost_race", [](const uint8_t* d, size_t n) { return kab::dpu::fuzz::vhost_one_input(d, n, true); });
}

TEST_CASE("the vhost-user fuzz target reaches running rings", "[dpu][fuzz]") {
  // The seed that sets both rings up: in race mode the guest thread's requests are served.
  fs::path seed = fs::path(KAB_DPU_TEST_DATA) / "fuzz" / "vhost_race" / "seed-setup";
  std::ifstream in(seed, std::ios::binary);
  std::vector<uint8_t> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  REQUIRE(data.size() > 40);
  uint64_t before = kab::dpu::fuzz::vhost_requests_served(FUSE_STATFS);
  uint64_t inits = kab::dpu::fuzz::vhost_requests_served(FUSE_INIT);
  // The target gives the guest thread only a few ms per input: on a loaded machine one replay
  // may end before a request is served, so the seed is replayed until its INIT and a STATFS
  // both were (at most 20 times).
  for (int i = 0; i < 20 && (kab::dpu::fuzz::vhost_requests_served(FUSE_STATFS) == before ||
                             kab::dpu::fuzz::vhost_requests_served(FUSE_INIT) == inits);
       ++i)
    kab::dpu::fuzz::vhost_one_input(data.data(), data.size(), true);
  CHECK(kab::dpu::fuzz::vhost_requests_served(FUSE_INIT) > inits);
  CHECK(kab::dpu::fuzz::vhost_requests_served(FUSE_STATFS) > before);
}
