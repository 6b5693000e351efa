// Debug kernels (variant: debug — KASAN, lockdep, the hung-task and lockup
// detectors) boot and run fio like any other: the base of kab's correctness gate.
#include <catch2/catch.hpp>

#include <fstream>

#include "helpers.h"

using namespace kab::integration;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

// arm → (kernel build key, console) of a run's samples, from the store.
std::map<std::string, std::pair<std::string, std::string>> consoles(const std::string& db, long long run) {
  auto [ok, out] = kab::proc::capture({"sqlite3", "-json", db,
                                       "SELECT s.arm AS arm, s.kernel_build_key AS build, a.content AS console "
                                       "FROM samples s JOIN artifacts a ON a.sample_id = s.id AND a.kind = 'console' "
                                       "WHERE s.run_id = " + std::to_string(run)});
  INFO(out);
  REQUIRE(ok);
  std::map<std::string, std::pair<std::string, std::string>> by_arm;
  for (const auto& row : json::parse(out)) by_arm[row["arm"]] = {row["build"], row["console"]};
  return by_arm;
}

}  // namespace

TEST_CASE("debug: a debug kernel boots under QEMU with KASAN and lockdep on and runs fio on the share",
          "[integration][debug]") {
  TestDir dir("debug-boot");
  const fs::path scenario = dir.path / "debug.yaml";
  std::ofstream(scenario) << "name: debug-boot\n"
                             "arms: {plain: stock-6.1, debug: {kernel: stock-6.1, variant: debug}}\n"
                             "guest: {vcpus: 2, memory: 1G, timeout: 300s}\n"
                             "fio:\n  job: {rw: write, bs: 1M, size: 16M}\n"
                             "repetitions: 1\nseed: 5\n";
  auto [res, samples] = run_ok(dir, scenario.string());
  CHECK(res["not_ok"] == 0);
  REQUIRE(samples.size() == 2);
  for (const auto& s : samples) {
    INFO(s.dump());
    // ok, not "unhealthy": the debug kernel found nothing to report in fio's writes.
    CHECK(s["status"] == "ok");
    CHECK(s["bw_bytes"].get<double>() > 1e6);
  }
  auto by_arm = consoles(dir.db(), res["run"].get<long long>());
  REQUIRE(by_arm.size() == 2);
  const auto& [debug_key, debug] = by_arm["debug"];
  const auto& [plain_key, plain] = by_arm["plain"];
  CHECK(debug_key != plain_key);
  INFO(debug);
  // What the kernel prints when each checker is on (arch/x86/mm/kasan_init_64.c and
  // kernel/locking/lockdep.c in 6.1), absent from the same kernel without them.
  CHECK(debug.find("KernelAddressSanitizer initialized") != std::string::npos);
  CHECK(debug.find("Lock dependency validator: Copyright (c) 2006 Red Hat, Inc., Ingo Molnar") != std::string::npos);
  CHECK(plain.find("KernelAddressSanitizer") == std::string::npos);
  CHECK(plain.find("Lock dependency validator") == std::string::npos);
  // Both consoles reach the agent's power-off: the debug kernel is not cut short.
  CHECK(debug.find("reboot: Power down") != std::string::npos);

  // The built debug kernel is the one the run booted, with KASAN in its config.
  auto k = run_kab({"kernel", "build", "stock-6.1", "--variant", "debug", "--json"}, 1800);
  INFO(k.output);
  REQUIRE(k.ok());
  json art = last_json(k.output);
  CHECK(art["key"] == debug_key);
  const std::string config = read(art["config"].get<std::string>());
  CHECK(config.find("\nCONFIG_KASAN=y\n") != std::string::npos);
  CHECK(config.find("\nCONFIG_PROVE_LOCKING=y\n") != std::string::npos);
  check_no_leftovers();
}
