#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/system.h"
#include "proc/runner.h"

using namespace kab;
namespace fs = std::filesystem;

namespace {
std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  return {std::istreambuf_iterator<char>(in), {}};
}
// Polls until some other process holds `path` (the child opened it).
bool held_within(const fs::path& path, double s) {
  const double start = core::now_s();
  while (core::now_s() - start < s) {
    if (!proc::holders_of({path.string()}).empty()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}
}  // namespace

// The libvirt guest's serial files are written by a relay (virtlogd) that may
// still be copying after the guest stopped: kab reads them once the relay has
// let go. Here the relay is a shell that holds the file, waits, writes its
// last line and exits.
TEST_CASE("serial logs are read only after the process writing them let go", "[proc][release]") {
  const fs::path dir = fs::temp_directory_path() / "kab-test-release";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path log = dir / "report.log", other = dir / "console.log";
  std::ofstream(log) << "KAB-BEGIN\n";
  std::ofstream(other) << "";

  // Nobody holds them: no wait at all.
  const double t0 = core::now_s();
  CHECK(proc::holders_of({log.string(), other.string()}).empty());
  CHECK(proc::wait_until_released({log.string(), other.string()}, 5));
  CHECK(core::now_s() - t0 < 1);

  proc::Options o;
  // The relay writes its last line only when told (the file "go" appears), so
  // what a reader sees before that does not depend on timing.
  const fs::path go = dir / "go";
  o.argv = {"sh", "-c", "exec 3>>\"$0\"; while [ ! -e \"$1\" ]; do sleep 0.05; done; echo KAB-END >&3", log.string(),
            go.string()};
  o.output_path = (dir / "sh.out").string();
  proc::Child relay(o);
  REQUIRE(held_within(log, 5));
  const auto holders = proc::holders_of({other.string(), log.string()});
  CHECK(std::find(holders.begin(), holders.end(), relay.pid()) != holders.end());
  CHECK(slurp(log) == "KAB-BEGIN\n");   // what a reader saw before this fix
  std::ofstream(go) << "";
  CHECK(proc::wait_until_released({other.string(), log.string()}, 10));
  CHECK(slurp(log) == "KAB-BEGIN\nKAB-END\n");
  relay.wait(5);

  // A holder that never lets go: the wait ends at its bound, and says so.
  o.argv = {"sh", "-c", "exec 3>>\"$0\"; sleep 30", log.string()};
  proc::Child stuck(o);
  REQUIRE(held_within(log, 5));
  const double t1 = core::now_s();
  CHECK_FALSE(proc::wait_until_released({log.string()}, 0.3));
  CHECK(core::now_s() - t1 >= 0.3);
  CHECK(core::now_s() - t1 < 3);
  stuck.stop(0.1);
  CHECK(proc::wait_until_released({log.string()}, 5));
  fs::remove_all(dir);
}
