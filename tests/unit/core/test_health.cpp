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

TEST_CASE("a dead guest's console is shown from its first finding, else its end", "[health][excerpt]") {
  // A panic: its message first (the end would be 8 lines of backtrace).
  auto p = console_excerpt(console("panic.txt"), 8);
  CHECK(p.from_finding);
  REQUIRE(p.lines.size() == 8);
  CHECK(p.lines[0].find("Kernel panic - not syncing: No working init found") != std::string::npos);
  // A WARNING: the line that names it, not its "cut here" banner.
  auto w = console_excerpt(console("warning.txt"), 3);
  CHECK(w.from_finding);
  REQUIRE(w.lines.size() == 3);
  CHECK(w.lines[0].find("WARNING: CPU: 0 PID: 8 at ../src/fs/fuse/file.c:2327") != std::string::npos);
  // Nothing found: the last lines, blank ones left out.
  auto o = console_excerpt(console("ok.txt") + "\n\n", 2);
  CHECK_FALSE(o.from_finding);
  REQUIRE(o.lines.size() == 2);
  CHECK(o.lines[0] == "[   13.796469] ACPI: PM: Preparing to enter system sleep state S5");
  CHECK(o.lines[1] == "[   13.798322] reboot: Power down");
  CHECK(console_excerpt("", 8).lines.empty());
  CHECK(console_excerpt("a\r\nb\r\n", 8).lines == std::vector<std::string>{"a", "b"});
}

TEST_CASE("a hung task is found as it is reported, and the guest's end says so", "[health][hang]") {
  const std::string text = console("hung-task.txt");
  CHECK(console_hung_task(text) == "[   63.839585] INFO: task fio:58 blocked for more than 30 seconds.");
  CHECK(console_hung_task(console("ok.txt")).empty());
  CHECK(console_hung_task(console("warning.txt")).empty());
  // The line may be mid-stream with a \r from the serial line.
  CHECK(console_hung_task("[ 1.0] boot\r\n[ 40.5] INFO: task kworker/u4:1:31 blocked for more than 30 seconds.\r\n") ==
        "[ 40.5] INFO: task kworker/u4:1:31 blocked for more than 30 seconds.");
  GuestOutcome out;
  classify_guest_end(out, false, false, 345, false, text, false, "guest stopped without the agent's record");
  CHECK(out.end == GuestOutcome::End::crashed);   // what a stopped guest without its record would be
  stopped_for_hung_task(out, console_hung_task(text), 64.7, 345);
  CHECK(out.end == GuestOutcome::End::timeout);
  CHECK(out.reason ==
        "the kernel reported a hung task (INFO: task fio:58 blocked for more than 30 seconds.); stopped at 64 s, not at "
        "the 345 s timeout");
}
