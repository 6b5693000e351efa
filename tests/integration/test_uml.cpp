// Integration tests of the User-Mode Linux platform: the real kab binary runs
// ARCH=um kernels as host processes against the real virtiofsd and fio.
// Each test works in its own directory under /tmp, kept for inspection.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "proc/runner.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
namespace proc = kab::proc;

namespace {

const std::string k_kab = KAB_BINARY;
const std::string k_root = KAB_SOURCE_DIR;

fs::path test_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("kab-it-" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

std::string read(const fs::path& p) {
  std::ifstream in(p);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

proc::Result run_kab(const std::vector<std::string>& args, double timeout_s, const std::string& log = "") {
  proc::Options o;
  o.argv = {k_kab};
  o.argv.insert(o.argv.end(), args.begin(), args.end());
  o.cwd = k_root;
  o.timeout_s = timeout_s;
  o.output_path = log;
  o.env = {{"KAB_ROOT", k_root}};
  return proc::run(o);
}

// The first top-level JSON document that parses to the end of the output.
json last_json(const std::string& output) {
  for (std::size_t s = 0; s < output.size(); ++s)
    if ((output[s] == '{' || output[s] == '[') && (s == 0 || output[s - 1] == '\n')) {
      auto j = json::parse(output.substr(s), nullptr, false);
      if (!j.is_discarded()) return j;
    }
  FAIL("no JSON in kab's output:\n" << output);
  return {};
}

json show(const std::string& db, long long run) {
  auto r = run_kab({"show", std::to_string(run), "--db", db, "--json"}, 60);
  REQUIRE(r.ok());
  return last_json(r.output);
}

// Runs kab as a child to know its pid: its work directories and shares carry it.
struct KabRun {
  proc::Result result;
  pid_t pid = -1;
};
KabRun run_kab_tracked(const std::vector<std::string>& args, double timeout_s, const std::string& log) {
  proc::Options o;
  o.argv = {k_kab};
  o.argv.insert(o.argv.end(), args.begin(), args.end());
  o.cwd = k_root;
  o.output_path = log;
  o.env = {{"KAB_ROOT", k_root}};
  proc::Child c(o);
  KabRun r;
  r.pid = c.pid();
  if (!c.wait(timeout_s)) c.stop();
  r.result = c.result();
  return r;
}

// Nothing of that kab's samples outlives it: no UML guest or backend process,
// no share, no socket, UML directory or memory file. (The work directory of a
// sample that was not ok is kept, with its console and record, and removed here.)
void check_no_uml_leftovers(pid_t kab_pid) {
  const std::string tag = "-" + std::to_string(kab_pid);
  auto [ok, ps] = proc::capture({"ps", "-eo", "args="});
  CHECK(ok);
  std::istringstream lines(ps);
  std::string line;
  while (std::getline(lines, line)) {
    INFO(line);
    CHECK_FALSE((line.find("/dev/shm/kab-run-") != std::string::npos && line.find(tag + "/") != std::string::npos));
    CHECK(line.find("kab-share-" + std::to_string(kab_pid) + "-") == std::string::npos);
  }
  for (const auto& e : fs::directory_iterator("/dev/shm")) {
    const std::string n = e.path().filename().string();
    INFO(n);
    CHECK(n.rfind("kab-share-" + std::to_string(kab_pid) + "-", 0) != 0);
    if (n.rfind("kab-run-", 0) != 0 || n.size() <= tag.size() || n.compare(n.size() - tag.size(), tag.size(), tag) != 0)
      continue;
    for (const auto& f : fs::recursive_directory_iterator(e.path())) {
      INFO(f.path());
      CHECK(f.path().extension() != ".sock");
      CHECK(f.path().filename() != "uml");
      CHECK(f.path().filename() != "uml-mem");
    }
    fs::remove_all(e.path());
  }
}

std::string scenario_with(const std::string& from, const std::string& find, const std::string& replace) {
  std::string t = read(k_root + "/" + from);
  auto at = t.find(find);
  REQUIRE(at != std::string::npos);
  t.replace(at, find.size(), replace);
  return t;
}

}  // namespace

TEST_CASE("uml: quick scenario on both kernels against virtiofsd", "[integration][uml]") {
  fs::path dir = test_dir("uml-quick");
  const std::string db = (dir / "kab.db").string();
  auto [r, pid] = run_kab_tracked({"run", "scenarios/quick-uml.yaml", "--db", db, "--json"}, 3600, (dir / "kab.log").string());
  std::string out = read(dir / "kab.log");
  INFO(out);
  REQUIRE(r.ok());
  json res = last_json(out);
  CHECK(res["stored"] == 6);
  CHECK(res["not_ok"] == 0);
  CHECK(res["accelerator"] == "uml");
  json samples = show(db, res["run"].get<long long>());
  REQUIRE(samples.size() == 6);
  for (const auto& s : samples) {
    INFO(s.dump());
    CHECK(s["status"] == "ok");
    CHECK(s["bw_bytes"].get<double>() > 10e6);
    if (s["arm"] == "stock") CHECK(s["writeback_tmp_peak_kb"].get<double>() > 0);
    else CHECK(s["writeback_tmp_peak_kb"].get<double>() == 0);
  }
  check_no_uml_leftovers(pid);
}

TEST_CASE("uml: a guest that panics is recorded as crashed within its timeout", "[integration][uml]") {
  fs::path dir = test_dir("uml-panic");
  const std::string db = (dir / "kab.db").string();
  std::string t = scenario_with("scenarios/quick-uml.yaml", "  platform: uml\n",
                                "  platform: uml\n  cmdline: rdinit=/nonexistent init=/nonexistent\n");
  std::ofstream(dir / "panic.yaml") << t;
  auto [r, pid] = run_kab_tracked({"run", (dir / "panic.yaml").string(), "--db", db, "--json", "--repetitions", "1"}, 600,
                                  (dir / "kab.log").string());
  std::string out = read(dir / "kab.log");
  INFO(out);
  CHECK(r.exit_code == 1);   // samples were not ok
  json res = last_json(out);
  json samples = show(db, res["run"].get<long long>());
  REQUIRE(samples.size() == 2);
  for (const auto& s : samples) {
    INFO(s.dump());
    CHECK(s["status"] == "crashed");
    // virtiofsd quits when the exited guest's socket closes: the orchestrator may add that it died.
    CHECK(s["reason"].get<std::string>().rfind("kernel panic", 0) == 0);
    CHECK(s["total_s"].get<double>() < 60);   // the scenario's timeout
  }
  check_no_uml_leftovers(pid);
}

TEST_CASE("uml: a guest that hangs is ended at its timeout and recorded as such", "[integration][uml]") {
  fs::path dir = test_dir("uml-hang");
  const std::string db = (dir / "kab.db").string();
  std::string t = scenario_with("scenarios/quick-uml.yaml", "  platform: uml\n", "  platform: uml\n  cmdline: kab.hang\n");
  t.replace(t.find("timeout: 60s"), 12, "timeout: 15s");
  std::ofstream(dir / "hang.yaml") << t;
  auto [r, pid] = run_kab_tracked({"run", (dir / "hang.yaml").string(), "--db", db, "--json", "--repetitions", "1"}, 600,
                                  (dir / "kab.log").string());
  std::string out = read(dir / "kab.log");
  INFO(out);
  CHECK(r.exit_code == 1);
  json res = last_json(out);
  json samples = show(db, res["run"].get<long long>());
  REQUIRE(samples.size() == 2);
  for (const auto& s : samples) {
    INFO(s.dump());
    CHECK(s["status"] == "timeout");
    CHECK(s["reason"] == "guest did not finish in 15 s");
    CHECK(s["total_s"].get<double>() < 30);
  }
  check_no_uml_leftovers(pid);
}
