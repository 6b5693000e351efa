// The host facts recorded with every run, read from a fake /sys and /proc,
// and the facts that differ between runs.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>

#include "host/environment.h"

namespace fs = std::filesystem;
using namespace kab;

namespace {

struct FakeRoot {
  fs::path path = fs::temp_directory_path() / ("kab-env-" + std::to_string(::getpid()));
  FakeRoot() { fs::remove_all(path); }
  ~FakeRoot() { fs::remove_all(path); }
  void write(const std::string& rel, const std::string& text) {
    fs::create_directories((path / rel).parent_path());
    std::ofstream(path / rel) << text;
  }
};

std::map<std::string, std::string> as_map(const std::vector<std::pair<std::string, std::string>>& v) {
  return {v.begin(), v.end()};
}

}  // namespace

TEST_CASE("host facts: THP, huge pages, CPU controls, cmdline, /dev/shm", "[host]") {
  FakeRoot r;
  r.write("sys/kernel/mm/transparent_hugepage/enabled", "always [madvise] never\n");
  r.write("sys/kernel/mm/transparent_hugepage/shmem_enabled", "always within_size advise [never] deny force\n");
  r.write("sys/kernel/mm/transparent_hugepage/defrag", "always defer defer+madvise [madvise] never\n");
  r.write("proc/sys/vm/nr_hugepages", "0\n");
  r.write("proc/meminfo", "MemTotal: 100 kB\nHugepagesize:       2048 kB\n");
  r.write("sys/devices/system/cpu/cpu0/cpufreq/scaling_governor", "performance\n");
  r.write("sys/devices/system/cpu/intel_pstate/no_turbo", "1\n");
  r.write("sys/devices/system/cpu/smt/control", "off\n");
  r.write("proc/cmdline", "BOOT_IMAGE=/vmlinuz root=/dev/sda1 mitigations=off\n");
  fs::create_directories(r.path / "dev/shm");
  auto f = as_map(host::host_environment(r.path.string()));
  CHECK(f["env.thp.enabled"] == "madvise");
  CHECK(f["env.thp.shmem_enabled"] == "never");
  CHECK(f["env.thp.defrag"] == "madvise");
  CHECK(f["env.hugepages"] == "0 × 2048 kB");
  CHECK(f["env.cpu.governor"] == "performance");
  CHECK(f["env.cpu.boost"] == "0 (intel_pstate no_turbo)");
  CHECK(f["env.cpu.smt"] == "off");
  CHECK(f["env.host.cmdline"] == "BOOT_IMAGE=/vmlinuz root=/dev/sda1 mitigations=off");
  CHECK(f["env.shm.size"].find(" GiB") != std::string::npos);

  SECTION("a host without the controls says so") {
    FakeRoot empty;
    auto g = as_map(host::host_environment(empty.path.string()));
    CHECK(g["env.thp.enabled"] == "none (no THP)");
    CHECK(g["env.cpu.governor"] == "none (no cpufreq)");
    CHECK(g["env.cpu.boost"] == "none (no boost control)");
    CHECK(g["env.cpu.smt"] == "none (no SMT control)");
    CHECK(g["env.shm.size"] == "?");
  }
  SECTION("this host's facts are all there") {
    auto h = host::host_environment();
    CHECK(h.size() == 9);
    for (const auto& [k, v] : h) CHECK_FALSE(v.empty());
  }
}

TEST_CASE("facts that differ between runs", "[host]") {
  std::vector<std::map<std::string, std::string>> runs = {
      {{"env.thp.enabled", "always"}, {"env.cpu.smt", "on"}, {"command", "kab run a"}},
      {{"env.thp.enabled", "madvise"}, {"env.cpu.smt", "on"}, {"command", "kab run b"}},
      {{"env.cpu.smt", "on"}, {"command", "kab run c"}},
  };
  auto d = host::differing_facts(runs);
  REQUIRE(d.size() == 1);   // not the command: only env.* facts
  CHECK(d[0].first == "env.thp.enabled");
  CHECK(d[0].second == std::vector<std::string>{"always", "madvise", "-"});
  CHECK(host::differing_facts({runs[1], runs[1]}).empty());
}
