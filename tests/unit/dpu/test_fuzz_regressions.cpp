// Inputs found by the libFuzzer targets (tests/fuzz), replayed through the same entry points.
// Each file in tests/data/dpu/fuzz/<target>/ is one input that once crashed or misbehaved.
#include "../../fuzz/fuzz_entry.h"

#include <catch2/catch.hpp>

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
