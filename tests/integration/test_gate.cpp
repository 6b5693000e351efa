// Debug kernels (variant: debug — KASAN, lockdep, the hung-task and lockup
// detectors) boot and run fio like any other: the base of kab's correctness gate.
#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <functional>
#include <regex>
#include <set>
#include <sstream>

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

// Each stored sample of a gate's runs with its fio JSON: run, backend, status,
// reason, findings, scenario text, fio JSON.
json gate_samples(const std::string& db) {
  auto [ok, out] = kab::proc::capture(
      {"sqlite3", "-json", db,
       "SELECT r.id AS run, r.scenario_name AS scenario, r.scenario_text AS text, s.backend AS backend, "
       "s.status AS status, s.reason AS reason, s.findings_json AS findings, s.vmstat_delta_json AS vmstat, "
       "a.content AS fio "
       "FROM runs r JOIN samples s ON s.run_id = r.id LEFT JOIN artifacts a ON a.sample_id = s.id AND a.kind = 'fio_json' "
       "ORDER BY r.id, s.plan_index"});
  INFO(out);
  REQUIRE(ok);
  return out.empty() ? json::array() : json::parse(out);
}

// `kab gate KERNEL --family writeback --backend writeback --time 5s --json`
// in DIR: its exit code and its JSON (the log is the test's INFO).
std::pair<int, json> gate_writeback(const TestDir& dir, const std::string& kernel) {
  auto r = run_kab({"gate", kernel, "--family", "writeback", "--backend", "writeback", "--time", "5s", "--db", dir.db(),
                    "--json"},
                   3600, (dir.path / "gate.log").string());
  const std::string log = read(dir.path / "gate.log");
  INFO(log);
  json g = last_json(log);
  REQUIRE(g["results"].size() == 1);
  return {r.exit_code, g};
}

}  // namespace

TEST_CASE("gate: every family runs clean on stock-6.1's debug variant and reads its check file back from the backend",
          "[integration][gate]") {
  TestDir dir("gate-stock");
  auto r = run_kab({"gate", "stock-6.1", "--backend", "writeback", "--time", "20s", "--db", dir.db()}, 3600,
                   (dir.path / "gate.log").string());
  const std::string log = read(dir.path / "gate.log");
  INFO(log);
  CHECK(r.exit_code == 0);
  CHECK(log.find("gate: clean — 6 samples in 6 runs, 0 not clean") != std::string::npos);
  json rows = gate_samples(dir.db());
  REQUIRE(rows.size() == 6);
  std::set<std::string> families;
  for (const auto& row : rows) {
    INFO(row["scenario"] << ": " << row["reason"]);
    families.insert(row["scenario"]);
    CHECK(row["backend"] == "writeback");
    CHECK(row["status"] == "ok");
    CHECK(json::parse(row["findings"].get<std::string>()).empty());
    CHECK(row["text"].get<std::string>().find("variant: debug") != std::string::npos);
    // Each family ends with the gate's host check (an ok sample passed it).
    CHECK(row["text"].get<std::string>().find("host_check: " + k_root + "/scenarios/gate/host-check.fio") !=
          std::string::npos);
    // fio ran the family whole: every job without error, the time-based jobs
    // wrote, and the check read its 8 MiB back after the cache was dropped.
    json fio = json::parse(row["fio"].get<std::string>());
    double written = 0;
    bool checked = false;
    for (const auto& job : fio["jobs"]) {
      INFO(job["jobname"]);
      CHECK(job["error"] == 0);
      if (job["jobname"] == "check-read") {
        checked = true;
        CHECK(job["read"]["io_bytes"] == 8 << 20);
      } else if (job["jobname"] != "check-write") {
        written += job["write"]["io_bytes"].get<double>();
      }
    }
    CHECK(checked);
    CHECK(written > 0);
  }
  CHECK(families == std::set<std::string>{"gate-writeback", "gate-lifecycle", "gate-mmap", "gate-mixed", "gate-append",
                                          "gate-pressure"});
  // The append family's kab-append ran in the guest and checked what its
  // writers appended: its line in the kernel log, every writer's count > 0.
  for (const auto& row : rows)
    if (row["scenario"] == "gate-append") {
      const std::string console = consoles(dir.db(), row["run"].get<long long>()).at("gate").second;
      std::smatch m;
      INFO(console);
      REQUIRE(std::regex_search(console, m, std::regex("kab-append: checked append\\.dat: 4 writers appended records "
                                                       "([0-9]+),([0-9]+),([0-9]+),([0-9]+) of 3000 bytes with "
                                                       "O_APPEND, whole and in order")));
      for (int i = 1; i <= 4; ++i) CHECK(std::stoi(m[i]) == 1000);   // each writer to the end: nothing stopped it
    }
  // The pressure family's guest had the little memory the family asks for,
  // and its record says whether reclaim ran (at 4 s a family it may not have).
  for (const auto& row : rows)
    if (row["scenario"] == "gate-pressure") {
      CHECK(row["text"].get<std::string>().find("memory: 384M") != std::string::npos);
      json vm = json::parse(row["vmstat"].get<std::string>());
      INFO(vm.dump());
      for (const char* k : {"pgscan_kswapd", "pgscan_direct", "pgsteal_kswapd", "pgsteal_direct", "nr_vmscan_write"})
        CHECK(vm.contains(k));
      // fio ran in the family's memory cgroup of 48 MiB (3 s of fio may not
      // fill it: below, 10 s do), without an OOM kill.
      CHECK(row["text"].get<std::string>().find("memory_cgroup: 48M") != std::string::npos);
      CHECK(vm.value("memcg_memory.max", 0.0) == 48 << 20);
      CHECK(vm.value("memcg_peak", 0.0) > 4 << 20);
      CHECK(vm.value("memcg_oom_kill", -1.0) == 0);
    }
  CHECK(log.find("  (pressure on writeback: fio in a memory cgroup of 48 MiB, at its limit ") != std::string::npos);
  // 10 s of the pressure family: its writers fill the cgroup, whose limit
  // then starts reclaim there, many times, and nothing is OOM-killed.
  auto p = run_kab({"gate", "stock-6.1", "--family", "pressure", "--backend", "writeback", "--time", "10s", "--db",
                    dir.db(), "--json"},
                   3600, (dir.path / "pressure.log").string());
  const std::string plog = read(dir.path / "pressure.log");
  INFO(plog);
  CHECK(p.exit_code == 0);
  const json memcg = last_json(plog)["results"].at(0)["memory_cgroup"];
  CHECK(memcg["limit_bytes"] == 48 << 20);
  CHECK(memcg["max_events"].get<long long>() > 10);
  CHECK(memcg["pgsteal"].get<long long>() > 1000);
  CHECK(memcg["oom_kill"] == 0);
  CHECK(memcg["peak_bytes"].get<long long>() <= 48 << 20);
  CHECK(log.find("  (reclaimed: pages kswapd and direct reclaim freed in the guest while fio ran)\n") != std::string::npos);
  check_no_leftovers();
}

// The planted use-after-free through kab compare --gate: the gate (the family
// writeback, 5 s) on both kernels' debug variants first, then the measurement.
TEST_CASE("compare --gate: a planted use-after-free fails the candidate's gate, a correctness failure in every report",
          "[integration][gate]") {
  TestDir dir("gate-uaf");
  const std::string out = (dir.path / "reports").string();
  auto r = run_kab({"compare", "--base", "stock-6.1", "--candidate", "testing-uaf-6.1", "--scenario",
                    "scenarios/quick.yaml", "--repetitions", "2", "--gate", "--gate-family", "writeback",
                    "--gate-backend", "writeback", "--gate-time", "5s", "--db", dir.db(), "--format", "mail", "--out", out},
                   3600, (dir.path / "compare.log").string());
  const std::string log = read(dir.path / "compare.log");
  INFO(log);
  CHECK(r.exit_code == 1);   // whatever the performance says
  CHECK(log.find("kab: gate of stock (stock-6.1): clean, 1 check in run 1\n") != std::string::npos);
  CHECK(log.find("kab: gate of testing-uaf-6.1 (testing-uaf-6.1): FAILED 1 of 1 check in run 2\n") != std::string::npos);

  // Stored like any sample: each gate a run of family writeback on the debug
  // variant, the finding with the candidate's; then the measurement, run 3.
  json rows = gate_samples(dir.db());
  REQUIRE(rows.size() == 6);   // 1 + 1 gate samples, 2 + 2 measured
  CHECK(rows[0]["scenario"] == "gate-writeback");
  CHECK(rows[0]["status"] == "ok");
  CHECK(rows[1]["scenario"] == "gate-writeback");
  CHECK(rows[1]["status"] == "unhealthy");
  CHECK(rows[1]["findings"].get<std::string>().find("KASAN: use-after-free in fuse_writepages") != std::string::npos);
  for (int i : {0, 1}) CHECK(rows[i]["text"].get<std::string>().find("variant: debug") != std::string::npos);
  CHECK(rows[2]["run"] == 3);
  CHECK(rows[2]["scenario"] == "quick");

  // The mail (stdout) leads with the verdict and names the finding and its rerun.
  const std::string flat = flat_words(log);
  REQUIRE(log.find("Subject: [kab] testing-uaf-6.1 vs stock-6.1") != std::string::npos);
  const std::string subject = log.substr(log.find("Subject: "), log.find('\n', log.find("Subject: ")) - log.find("Subject: "));
  CHECK(subject.find(": correctness failure") != std::string::npos);
  CHECK(flat.find("Verdict: correctness failure.") != std::string::npos);
  CHECK(flat.find("BUG: KASAN: use-after-free in fuse_writepages") != std::string::npos);
  CHECK(flat.find("rerun: kab gate testing-uaf-6.1 --family writeback --backend writeback --time 5s") !=
        std::string::npos);
  // Its recipe: the bundle beside the reports, which holds the gate as it ran.
  CHECK(log.find("Reproduce:\n  kab compare --bundle kab-bundle-run3.tar.gz\n") != std::string::npos);
  // The bundle holds the arms as run (the scenario's rfc arm did not run) and the planted patch.
  {
    const std::string bundle = (fs::path(out) / "kab-bundle-run3.tar.gz").string();
    auto [listed, files] = kab::proc::capture({"tar", "-tzf", bundle});
    INFO(files);
    CHECK(files.find("kab-bundle/kernels/patches/testing/0001-TESTING-fuse-use-after-free-in-writepages.patch\n") !=
          std::string::npos);
    CHECK(files.find("kab-bundle/kernels/testing-uaf-6.1.yaml\n") != std::string::npos);
    CHECK(files.find("kab-bundle/built/testing-uaf-6.1.config\n") != std::string::npos);
    CHECK(files.find("rfc-6.1") == std::string::npos);
    auto [shown, text] = kab::proc::capture({"tar", "-xzOf", bundle, "kab-bundle/scenario.yaml"});
    INFO(text);
    CHECK(text.find("testing-uaf-6.1:") != std::string::npos);
    CHECK(text.find("rfc") == std::string::npos);
    // The gate of each kernel: the family's scenario as it ran, its job files beside it.
    for (const char* k : {"stock-6.1", "testing-uaf-6.1"})
      for (const char* f : {"writeback.yaml", "writeback.fio", "writeback.host-check.fio"})
        CHECK(files.find("kab-bundle/gate/" + std::string(k) + "/" + f + "\n") != std::string::npos);
    auto [gshown, gate_text] = kab::proc::capture({"tar", "-xzOf", bundle, "kab-bundle/gate/testing-uaf-6.1/writeback.yaml"});
    INFO(gate_text);
    CHECK(gate_text.rfind("# gate-writeback of testing-uaf-6.1 as run 2 ran it\n", 0) == 0);
    CHECK(gate_text.find("job_file: writeback.fio") != std::string::npos);
    CHECK(gate_text.find("runtime: 5") != std::string::npos);
    CHECK(gate_text.find("variant: debug") != std::string::npos);
  }
  check_mail_columns(read(fs::path(out) / "comparison.mail.txt"));

  // The JSON beside it, and kab report of the run rebuilt from the store alone.
  auto check_json = [](const json& j) {
    INFO(j["comparison"]["correctness"].dump(2));
    CHECK(j["comparison"]["verdict"] == "correctness_failure");
    const std::string perf = j["comparison"]["performance_verdict"];
    CHECK((perf == "improvement" || perf == "regression" || perf == "equivalent" || perf == "inconclusive"));
    const json& k = j["comparison"]["correctness"]["kernels"];
    REQUIRE(k.size() == 2);
    CHECK(k[0]["arm"] == "stock");
    CHECK(k[0]["variant"] == "debug");
    CHECK(k[0]["clean"] == true);
    CHECK(k[1]["kernel"] == "testing-uaf-6.1");
    CHECK(k[1]["clean"] == false);
    REQUIRE(k[1]["checks"].size() == 1);
    CHECK(k[1]["checks"][0]["family"] == "writeback");
    CHECK(k[1]["checks"][0]["backend"] == "writeback");
    CHECK(k[1]["checks"][0]["run"] == 2);
    CHECK(k[1]["checks"][0]["finding"].get<std::string>().find("BUG: KASAN: use-after-free in fuse_writepages") !=
          std::string::npos);
    CHECK(k[1]["checks"][0]["fio_s"].get<double>() >= 4);
  };
  check_json(json::parse(read(fs::path(out) / "comparison.json")));
  auto rep = run_kab({"report", "3", "--db", dir.db(), "--format", "json"}, 120);
  INFO(rep.output);
  CHECK(rep.exit_code == 1);
  check_json(last_json(rep.output));

  // The bundle reruns into another database, its gate first, as it ran: the
  // finding again, the same verdict. Its gate's settings are not for changing.
  const std::string bundle = (fs::path(out) / "kab-bundle-run3.tar.gz").string();
  auto changed = run_kab({"compare", "--bundle", bundle, "--gate", "--gate-time", "1m", "--db",
                          (dir.path / "changed.db").string()}, 120);
  CHECK(changed.exit_code == 2);
  CHECK(changed.output.find("the bundle holds the gate its comparison ran, which reruns as it ran") != std::string::npos);
  CHECK_FALSE(fs::exists(dir.path / "changed.db"));
  const std::string rerun_db = (dir.path / "rerun.db").string();
  auto again = run_kab({"compare", "--bundle", bundle, "--db", rerun_db, "--format", "json", "--out",
                        (dir.path / "rerun").string()},
                       3600, (dir.path / "rerun.log").string());
  const std::string rlog = read(dir.path / "rerun.log");
  INFO(rlog);
  CHECK(again.exit_code == 1);
  CHECK(rlog.find("kab: gate of stock (stock-6.1): clean, 1 check in run 1\n") != std::string::npos);
  CHECK(rlog.find("kab: gate of testing-uaf-6.1 (testing-uaf-6.1): FAILED 1 of 1 check in run 2\n") != std::string::npos);
  check_json(json::parse(read(dir.path / "rerun/comparison.json")));
  // The gate's scenario is the bundle's (its header), run on the same debug builds.
  json rerun_rows = gate_samples(rerun_db);
  REQUIRE(rerun_rows.size() == 6);
  CHECK(rerun_rows[1]["text"].get<std::string>().rfind("# gate-writeback of testing-uaf-6.1 as run 2 ran it\n", 0) == 0);
  auto keys = [](const std::string& db) {
    auto [ok, text] =
        kab::proc::capture({"sqlite3", db, "SELECT run_id, kernel_build_key FROM samples WHERE run_id < 3 ORDER BY id"});
    REQUIRE(ok);
    REQUIRE(std::count(text.begin(), text.end(), '\n') == 2);   // a gate sample each
    return text;
  };
  CHECK(keys(rerun_db) == keys(dir.db()));

  // A bundle is input from elsewhere: a gate whose family would name a file
  // outside it, or whose scenario reads a file of this machine, is refused
  // before anything is built or booted.
  const fs::path x = dir.path / "x";
  auto edited = [&](const std::string& name, const std::function<void(const fs::path&)>& edit) {
    fs::remove_all(x);
    fs::create_directories(x);
    REQUIRE(kab::proc::capture({"tar", "-C", x.string(), "-xzf", bundle}).first);
    edit(x / "kab-bundle");
    const std::string file = (dir.path / name).string();
    REQUIRE(kab::proc::capture({"tar", "-C", x.string(), "-czf", file, "kab-bundle"}).first);
    auto r = run_kab({"compare", "--bundle", file, "--db", (dir.path / (name + ".db")).string()}, 120);
    CHECK(r.exit_code == 2);
    CHECK_FALSE(fs::exists(dir.path / (name + ".db")));
    return r.output;
  };
  const std::string escaping = edited("escaping.tar.gz", [](const fs::path& top) {
    json m = json::parse(read(top / "manifest.json"));
    m["gate"][1]["families"][0]["family"] = "../../../../tmp/kab-escape";
    m["gate"][1]["families"][0]["scenario"] = "gate/testing-uaf-6.1/../../../../tmp/kab-escape.yaml";
    std::ofstream(top / "manifest.json") << m.dump(2);
  });
  CHECK(escaping.find("escaping.tar.gz: its gate names a family '../../../../tmp/kab-escape'; a family's name holds "
                      "letters, digits, '-' and '_'") != std::string::npos);
  const std::string reading = edited("reading.tar.gz", [](const fs::path& top) {
    const fs::path f = top / "gate/testing-uaf-6.1/writeback.yaml";
    std::string t = read(f);
    t.replace(t.find("job_file: writeback.fio"), 23, "job_file: " + k_root + "/scenarios/gate/writeback.fio");
    std::ofstream(f) << t;
  });
  CHECK(reading.find("reading.tar.gz: its scenario gate-writeback names " + k_root +
                     "/scenarios/gate/writeback.fio, which is not a file of the bundle") != std::string::npos);
  check_no_leftovers();
}

TEST_CASE("gate: a kernel that silently corrupts buffered writes fails the family's verify", "[integration][gate]") {
  TestDir dir("gate-corrupt");
  auto [exit_code, g] = gate_writeback(dir, "testing-corrupt-6.1");
  INFO(g.dump(2));
  CHECK(exit_code == 1);
  const json& res = g["results"][0];
  CHECK(res["status"] == "failed");
  CHECK(res["findings"].empty());   // the kernel said nothing: only the content check found it
  const std::string reason = res["reason"];
  CHECK(reason.find("fio exited") != std::string::npos);
  CHECK(reason.find("verify failed") != std::string::npos);
  // The host's fio, reading the share's directory after the guest, finds the
  // corrupt blocks too (the stored findings; the guest's failure is the reason).
  bool host_found = false;
  const json stored = show(dir.db(), res["run"].get<long long>());
  INFO(stored.dump(2));
  REQUIRE(stored.size() == 1);
  for (const auto& f : stored[0]["findings"])
    host_found |= f.get<std::string>().rfind("host check:\nfio exited with 1, failed: host-check (error 84)", 0) == 0 &&
                  f.get<std::string>().find("verify failed at file gate-check.dat") != std::string::npos;
  CHECK(host_found);
  check_no_leftovers();
}

TEST_CASE("gate: --variant \"\" runs the kernel as defined, --keep keeps each sample's work directory",
          "[integration][gate]") {
  TestDir dir("gate-plain");
  auto work_dirs = [] {
    std::set<std::string> out;
    for (const auto& e : fs::directory_iterator("/dev/shm"))
      if (e.path().filename().string().rfind("kab-run-", 0) == 0) out.insert(e.path().string());
    return out;
  };
  const auto before = work_dirs();
  const std::string log = (dir.path / "gate.log").string();
  auto r = run_kab({"gate", "stock-6.1", "--variant", "", "--family", "writeback", "--backend", "writeback", "--time",
                    "5s", "--keep", "--json", "--db", dir.db()},
                   1800, log);
  INFO(read(log));
  CHECK(r.exit_code == 0);
  json j = last_json(read(log));
  CHECK(j["variant"] == "");
  CHECK(j["passed"] == true);
  REQUIRE(j["results"].size() == 1);
  CHECK(j["results"][0]["status"] == "ok");
  // The plain build (no KASAN): the stored sample names no variant.
  json rows = gate_samples(dir.db());
  REQUIRE(rows.size() == 1);
  CHECK(rows[0]["text"].get<std::string>().find("variant: debug") == std::string::npos);
  auto [ok, variant] = kab::proc::capture({"sqlite3", dir.db(), "SELECT variant FROM samples"});
  CHECK(variant == "\n");
  // --keep: the ok sample's work directory stays, with its console.
  std::vector<std::string> kept;
  for (const auto& d : work_dirs())
    if (!before.count(d)) kept.push_back(d);
  REQUIRE(kept.size() == 1);
  CHECK(fs::exists(fs::path(kept[0]) / "sample-0" / "console.log"));
  // The host check (gate.yaml's host_check) read the family's check file from
  // the share's directory on the host: all 8 MiB, every block's crc32c right.
  const json host = json::parse(read(fs::path(kept[0]) / "sample-0" / "host-check.json"));
  REQUIRE(host["jobs"].size() == 1);
  CHECK(host["jobs"][0]["error"] == 0);
  CHECK(host["jobs"][0]["read"]["io_bytes"] == 8 << 20);
  fs::remove_all(kept[0]);
  // The plain kernel has no memory cgroups (tinyconfig): the pressure family
  // runs without its cgroup, says so, and is clean — a harness requirement
  // the kernel does not meet is not the kernel's failure.
  const std::string plog = (dir.path / "pressure.log").string();
  auto p = run_kab({"gate", "stock-6.1", "--variant", "", "--family", "pressure", "--backend", "writeback", "--time",
                    "3s", "--json", "--db", dir.db()},
                   1800, plog);
  INFO(read(plog));
  CHECK(p.exit_code == 0);
  CHECK(read(plog).find("kab: gate: kernel stock-6.1 does not turn on CONFIG_MEMCG: family pressure runs without its "
                        "memory cgroup\n") != std::string::npos);
  json pj = last_json(read(plog));
  REQUIRE(pj["results"].size() == 1);
  CHECK(pj["results"][0]["status"] == "ok");
  CHECK(pj["results"][0]["memory_cgroup"].is_null());
  check_no_leftovers();
}

TEST_CASE("gate: bad input is refused with exit 2 before anything is built or booted", "[integration][gate]") {
  TestDir dir("gate-input");
  const fs::path def = dir.path / "gate.yaml";
  const std::string line2 = "  writeback: {job_file: " + k_root + "/scenarios/gate/writeback.fio, backends: [wb]}";
  std::ofstream(def) << "families:\n" << line2 << "\nbackends:\n  - {name: writeback, type: virtiofsd}\n";
  const std::string at = ":2:" + std::to_string(line2.find("wb]") + 1) + ": ";   // the unknown name's position
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"gate", "stock-6.1", "--family", "writebak"}, "unknown family 'writebak', did you mean 'writeback'?"},
      {{"gate", "stock-6.1", "--backend", "nfs"}, "unknown backend 'nfs'"},
      {{"gate", "stock-6.1", "--variant", "kasan"}, "kernel stock-6.1 has no variant 'kasan'"},
      {{"gate", "stock-6.1", "--time", "soon"}, "--time is not a duration: 'soon'"},
      {{"gate", "stock-6.1", "--definition", def.string()},
       def.string() + at + "family 'writeback' names backend 'wb', which the gate does not define"},
  };
  for (const auto& [args, message] : cases) {
    auto args_db = args;
    args_db.insert(args_db.end(), {"--db", dir.db()});
    auto r = run_kab(args_db, 120);
    INFO(r.output);
    CHECK(r.exit_code == 2);
    CHECK(r.output.find(message) != std::string::npos);
  }
  CHECK_FALSE(fs::exists(dir.db()));   // nothing was recorded
  check_no_leftovers();
}

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

TEST_CASE("gate: kab-append, the append family's check, finds a changed byte, a torn record, a lost one and a "
          "reordered one",
          "[integration][gate]") {
  TestDir dir("kab-append");
  const std::string tool = (fs::path(k_kab).parent_path() / "../images/tools/kab-append").lexically_normal().string();
  const std::string file = (dir.path / "append.dat").string(), log = (dir.path / "kmsg.log").string();
  auto run = [&](std::vector<std::string> argv) {
    kab::proc::Options o;
    o.argv = {tool};
    o.argv.insert(o.argv.end(), argv.begin(), argv.end());
    o.env = {{"KAB_APPEND_LOG", log}};   // the host's kernel log is not the test's
    o.timeout_s = 120;
    return kab::proc::run(o);
  };
  // Four writers, 300 records each, here on the host's file system: all checked.
  auto r = run({file, "4", "3000", "300"});
  INFO(r.output);
  REQUIRE(r.ok());
  CHECK(r.output.find(file + " 300,300,300,300\n") != std::string::npos);
  CHECK(read(log).find("kab-append: checked " + file + ": 4 writers appended records 300,300,300,300 of 3000 bytes "
                       "with O_APPEND, whole and in order") != std::string::npos);
  CHECK(fs::file_size(file) == 4u * 300 * 3000);
  const std::string good = read(file);
  auto check_with = [&](const std::string& content, const std::string& counts) {
    std::ofstream(file, std::ios::binary | std::ios::trunc) << content;
    return run({"--check", file, "3000", counts});
  };
  auto failed_with = [&](const kab::proc::Result& res, const std::string& what) {
    INFO(res.output);
    CHECK(res.exit_code == 1);
    CHECK(res.output.find("kab-append: integrity check failed: " + file + ": " + what) != std::string::npos);
    CHECK(read(log).find("kab-append: integrity check failed: " + file + ": " + what) != std::string::npos);
  };
  CHECK(check_with(good, "300,300,300,300").ok());
  // A byte of record 10's payload changed.
  std::string changed = good;
  changed[10 * 3000 + 100] ^= 0x20;
  failed_with(check_with(changed, "300,300,300,300"), "record at offset 30000: writer ");
  CHECK(read(log).find("checksum mismatch") != std::string::npos);
  // A record torn: its second half where another's header should be.
  std::string torn = good;
  torn.replace(5 * 3000, 1500, good.substr(7 * 3000 + 1500, 1500));
  failed_with(check_with(torn, "300,300,300,300"), "record at offset 15000: no record header (torn or misplaced append)");
  // The last record lost: the size says so.
  failed_with(check_with(good.substr(0, good.size() - 3000), "300,300,300,300"),
              std::to_string(good.size() - 3000) + " bytes, expected " + std::to_string(good.size()));
  // As many records in all, but one writer's fewer and another's more than they appended.
  failed_with(check_with(good, "301,299,300,300"), "writer 0 appended 301 records, the file holds 300");
  // Two records of one writer in the other order.
  auto writer_of = [&](std::size_t i) { return static_cast<unsigned char>(good[i * 3000 + 8]); };
  std::size_t a = 0, b = 1;
  while (writer_of(b) != writer_of(a)) ++b;
  std::string swapped = good;
  swapped.replace(a * 3000, 3000, good.substr(b * 3000, 3000));
  swapped.replace(b * 3000, 3000, good.substr(a * 3000, 3000));
  failed_with(check_with(swapped, "300,300,300,300"),
              "record at offset 0: writer " + std::to_string(writer_of(a)) + "'s record 1, expected 0 (records lost or "
              "reordered)");
}
