#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "core/health.h"

using namespace kab::core;

namespace {
std::string console(const std::string& name) {
  std::ifstream in(std::string(KAB_TEST_DATA) + "/console/" + name);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace

TEST_CASE("console health from real guest consoles", "[health]") {
  SECTION("a clean boot and fio run has no findings") {
    CHECK(console_findings(console("ok.txt")).empty());
    CHECK_FALSE(console_has_panic(console("ok.txt")));
  }
  SECTION("a panic is found and named") {
    auto f = console_findings(console("panic.txt"));
    REQUIRE_FALSE(f.empty());
    CHECK(f[0].find("Kernel panic - not syncing: No working init found") != std::string::npos);
    CHECK(console_has_panic(console("panic.txt")));
  }
  SECTION("a WARNING is found, with its banner") {
    auto f = console_findings(console("warning.txt"));
    REQUIRE(f.size() == 2);
    CHECK(f[0].find("cut here") != std::string::npos);
    CHECK(f[1].find("WARNING: CPU: 0 PID: 8 at ../src/fs/fuse/file.c:2327 fuse_writepages") != std::string::npos);
    CHECK_FALSE(console_has_panic(console("warning.txt")));
  }
  SECTION("other reports") {
    CHECK(console_findings("[ 1.0] BUG: KASAN: use-after-free in fuse_writepage_end\n").size() == 1);
    CHECK(console_findings("[ 9.0] INFO: task fio:88 blocked for more than 30 seconds.\n").size() == 1);
    CHECK(console_findings("[ 9.0] watchdog: BUG: soft lockup - CPU#0 stuck for 22s!\n").size() == 1);
    CHECK(console_findings("[ 9.0] rcu: INFO: rcu_sched detected stalls on CPUs/tasks:\n").size() == 1);
    CHECK(console_findings("[ 9.0] rcu: INFO: rcu_sched self-detected stall on CPU\n").size() == 1);
    CHECK(console_findings("[ 1.0] fuse: init (API version 7.37)\n").empty());
  }
}
