// Integration tests of the User-Mode Linux platform: the real kab binary runs
// ARCH=um kernels as host processes against the real virtiofsd and fio.
// Each test works in its own directory under /tmp, kept for inspection.
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <thread>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <yaml-cpp/yaml.h>

#include "helpers.h"
#include "proc/runner.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
namespace proc = kab::proc;
using namespace kab::integration;

namespace {

// Runs kab as a child to know its pid: its work directories and shares carry it.
struct KabRun {
  proc::Result result;
  pid_t pid = -1;
};
KabRun run_kab_tracked(const std::vector<std::string>& args, double timeout_s, const std::string& log) {
  proc::Child c(kab_options(args, log));
  KabRun r;
  r.pid = c.pid();
  if (!c.wait(timeout_s)) c.stop();
  r.result = c.result();
  return r;
}

// Waits until LOG holds TEXT (kab still running, at most 20 minutes), lets
// the next sample start, and interrupts kab with SIGINT; its end awaited.
void interrupt_after(proc::Child& child, const std::string& log, const std::string& text) {
  auto t0 = std::chrono::steady_clock::now();
  while (read(log).find(text) == std::string::npos) {
    REQUIRE(child.running());
    REQUIRE(std::chrono::steady_clock::now() - t0 < std::chrono::minutes(20));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  std::this_thread::sleep_for(std::chrono::seconds(3));
  ::kill(child.pid(), SIGINT);
  REQUIRE(child.wait(120));   // the sample's guest and backend are torn down, not waited out
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
  fs::path dir = TestDir("uml-quick").path;
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
  check_ok_with_mechanism_over_run(samples, 10e6);
  check_no_uml_leftovers(pid);
}

TEST_CASE("uml: a guest that panics is recorded as crashed within its timeout", "[integration][uml]") {
  fs::path dir = TestDir("uml-panic").path;
  const std::string db = (dir / "kab.db").string();
  std::string t = scenario_with("scenarios/quick-uml.yaml", "  platform: uml\n",
                                "  platform: uml\n  cmdline: rdinit=/nonexistent init=/nonexistent\n");
  std::ofstream(dir / "panic.yaml") << t;
  auto [r, pid] = run_kab_tracked({"run", (dir / "panic.yaml").string(), "--db", db, "--json", "--repetitions", "1"}, 600,
                                  (dir / "kab.log").string());
  std::string out = read(dir / "kab.log");
  INFO(out);
  CHECK(r.exit_code == 3);   // no arm has an ok sample
  // The dead guest's console is on the screen, not only in kab show.
  CHECK(out.find("kab:   the agent wrote nothing to its report port\nkab:   its console, from the first finding:\n"
                 "kab:   | [") != std::string::npos);
  // Without /init in the initramfs the kernel mounts a root device, then runs
  // init=. Which of the two panics depends on the host: CI's machines have
  // panicked on the missing init=, a host with kernel 6.18 on the root mount
  // (no block device 98:0). Either is the guest dying at boot.
  CHECK((out.find("] Kernel panic - not syncing: Requested init /nonexistent failed (error -2).") != std::string::npos ||
         out.find("] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(98,0)") !=
             std::string::npos));
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
  fs::path dir = TestDir("uml-hang").path;
  const std::string db = (dir / "kab.db").string();
  std::string t = scenario_with("scenarios/quick-uml.yaml", "  platform: uml\n", "  platform: uml\n  cmdline: kab.hang\n");
  t.replace(t.find("timeout: 60s"), 12, "timeout: 15s");
  std::ofstream(dir / "hang.yaml") << t;
  auto [r, pid] = run_kab_tracked({"run", (dir / "hang.yaml").string(), "--db", db, "--json", "--repetitions", "1"}, 600,
                                  (dir / "kab.log").string());
  std::string out = read(dir / "kab.log");
  INFO(out);
  CHECK(r.exit_code == 3);
  CHECK(out.find("every sample of arms stock, rfc failed") != std::string::npos);
  CHECK(out.find("kab:   the agent's record ends (line 4): KAB-HANG\n") != std::string::npos);
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

TEST_CASE("uml: kab run interrupted with SIGINT exits 130, keeps what it stored, leaves nothing", "[integration][uml][exit]") {
  fs::path dir = TestDir("uml-interrupt").path;
  const std::string db = (dir / "kab.db").string();
  const std::string log = (dir / "kab.log").string();
  proc::Child child(kab_options({"run", "scenarios/quick-uml.yaml", "--db", db, "--json"}, log));
  // Wait for the first stored sample, then interrupt inside the second.
  interrupt_after(child, log, "kab: sample 1/6");
  const std::string out = read(log);
  INFO(out);
  CHECK(child.result().exit_code == 130);
  json res = last_json(out);
  CHECK(res["interrupted"] == true);
  CHECK(res["stored"].get<int>() >= 1);
  CHECK(res["stored"].get<int>() < 6);
  auto runs = run_kab({"runs", "--db", db, "--json"}, 60);
  json rl = last_json(runs.output);
  REQUIRE(rl.size() == 1);
  CHECK(rl[0]["status"] == "interrupted");
  CHECK(rl[0]["samples"] == res["stored"]);
  for (const auto& s : show(db, res["run"].get<long long>())) CHECK(s["status"] == "ok");
  check_no_uml_leftovers(child.pid());
}

TEST_CASE("uml: an interrupted compare sampled until decided resumes with kab run --resume and goes on looking",
          "[integration][uml][resume][sequential]") {
  fs::path dir = TestDir("uml-resume-sequential").path;
  const std::string db = (dir / "kab.db").string();
  const std::string log = (dir / "first.log").string();
  // A/A through --candidate (arms A and B, both stock-6.1) sampled until
  // decided, at most 8 per arm: 4 looks of one ABBA block. Neither the arms
  // nor the stop are in the scenario's text; the resume must plan them again.
  proc::Child child(kab_options({"compare", "--scenario", "scenarios/quick-uml.yaml", "--candidate", "stock-6.1",
                                 "--until-decided", "--max-samples", "8", "--db", db},
                                log));
  // Interrupt inside look 2 (after look 1's four samples, inside the sixth).
  interrupt_after(child, log, "kab: sample 5/16");
  const std::string first = read(log);
  INFO(first);
  CHECK(child.result().exit_code == 130);
  // Look 1 was taken before the fifth sample; the interrupt said how to go on.
  CHECK(first.find("look 1 of 4: ") != std::string::npos);
  CHECK(first.find("kab: run 1 interrupted; kab run scenarios/quick-uml.yaml --db " + db + " --resume 1 continues it") !=
        std::string::npos);
  json before = last_json(run_kab({"runs", "--db", db, "--json"}, 60).output);
  REQUIRE(before.size() == 1);
  CHECK(before[0]["status"] == "interrupted");
  CHECK(before[0]["planned"] == 16);
  const int stored_before = before[0]["samples"];
  CHECK(stored_before >= 5);
  CHECK(stored_before < 8);

  auto [r, pid] = run_kab_tracked({"run", "scenarios/quick-uml.yaml", "--db", db, "--resume", "1", "--json"}, 1800,
                                  (dir / "second.log").string());
  const std::string second = read(dir / "second.log");
  INFO(second);
  CHECK(second.find("made from another scenario") == std::string::npos);
  REQUIRE((r.exit_code == 0 || r.exit_code == 1));
  json res = last_json(second);
  CHECK(res["run"] == 1);
  CHECK(res["skipped"] == stored_before);
  REQUIRE(res.contains("sequential"));
  const int look = res["sequential"]["look"];
  CHECK(res["sequential"]["looks"] == 4);
  // The looks go on where the first process stopped: look 2 is this process's
  // first, and it stops at a look (decided) or at the cap.
  CHECK(look >= 2);
  CHECK(second.find("look 1 of 4") == std::string::npos);
  CHECK(second.find("look 2 of 4: ") != std::string::npos);
  CHECK(second.find("look " + std::to_string(look) + " of 4: " + res["sequential"]["verdict"].get<std::string>()) !=
        std::string::npos);
  CHECK(res["sequential"]["decided"] == (look < 4));
  // Every sample of the looks taken, once, from the effective arms.
  json samples = show(db, 1);
  REQUIRE(samples.size() == static_cast<std::size_t>(4 * look));
  std::set<int> idx;
  for (const auto& s : samples) {
    idx.insert(s["index"].get<int>());
    CHECK((s["arm"] == "A" || s["arm"] == "B"));
    CHECK(s["kernel"] == "stock-6.1");
  }
  CHECK(idx.size() == samples.size());
  CHECK(*idx.rbegin() == 4 * look - 1);
  json after = last_json(run_kab({"runs", "--db", db, "--json"}, 60).output);
  CHECK(after[0]["status"] == "complete");
  // kab report judges the run at the look it reached.
  json rep = last_json(run_kab({"report", "1", "--db", db, "--format", "json"}, 120).output);
  CHECK(rep["comparison"]["sequential"]["look"] == look);
  CHECK(rep["comparison"]["verdict"] == res["sequential"]["verdict"]);
  // Pooled with a fixed-n run of the same arms, it is analysed as fixed n,
  // and every report says that this reads the stopping as planned.
  auto fixed = run_kab({"compare", "--scenario", "scenarios/quick-uml.yaml", "--candidate", "stock-6.1",
                        "--repetitions", "1", "--db", db},
                       1200, (dir / "fixed.log").string());
  INFO(read(dir / "fixed.log"));
  REQUIRE((fixed.exit_code == 0 || fixed.exit_code == 1));
  json pooled = last_json(run_kab({"report", "1", "2", "--db", db, "--format", "json"}, 120).output);
  CHECK(pooled["comparison"]["run_ids"] == json::array({1, 2}));
  CHECK_FALSE(pooled["comparison"].contains("sequential"));
  int sequential_pooled = 0;
  for (const auto& w : pooled["comparison"]["warnings"])
    if (w["kind"] == "sequential_pooled") {
      ++sequential_pooled;
      CHECK(w["message"].get<std::string>().find("analysed as one fixed-n comparison") != std::string::npos);
    }
  CHECK(sequential_pooled == 1);
  auto text = run_kab({"report", "1", "2", "--db", db}, 120);
  CHECK(text.output.find("sampled until decided: the pooled samples are analysed as one fixed-n comparison") !=
        std::string::npos);
  check_no_uml_leftovers(pid);
}

TEST_CASE("uml: backends[].binary runs the scenario's own virtiofsd, named in every sample", "[integration][uml][inputs]") {
  fs::path dir = TestDir("uml-binary").path;
  const std::string db = (dir / "kab.db").string();
  // A daemon of the user's own: it notes how it was called and runs QEMU's.
  const fs::path daemon = dir / "bin" / "my-virtiofsd";
  fs::create_directories(daemon.parent_path());
  std::ofstream(daemon) << "#!/bin/sh\necho \"$@\" >> " << (dir / "calls").string()
                        << "\nexec /usr/lib/qemu/virtiofsd \"$@\"\n";
  fs::permissions(daemon, fs::perms::owner_all);
  std::string t = scenario_with("scenarios/quick-uml.yaml", "    type: virtiofsd\n",
                                "    type: virtiofsd\n    binary: bin/my-virtiofsd\n");
  t += "primary_metric: backend_cpu_per_gib\n";   // the verdict's metric, taken by kab report below
  std::ofstream(dir / "own.yaml") << t;

  // Not there: refused at its line before anything is built or booted.
  std::string missing = t;
  missing.replace(missing.find("bin/my-virtiofsd"), 16, "bin/nothing-here");
  std::ofstream(dir / "missing.yaml") << missing;
  auto v = run_kab({"validate", (dir / "missing.yaml").string()}, 60);
  CHECK(v.exit_code == 2);
  CHECK(v.output.find((dir / "missing.yaml").string() + ":") != std::string::npos);
  CHECK(v.output.find("backend binary 'bin/nothing-here' does not exist") != std::string::npos);

  // -v: each sample's line says which daemon served it.
  auto [r, pid] = run_kab_tracked({"-v", "run", (dir / "own.yaml").string(), "--db", db, "--json", "--repetitions", "1"},
                                  1800, (dir / "kab.log").string());
  std::string out = read(dir / "kab.log");
  INFO(out);
  REQUIRE(r.ok());
  CHECK(out.find("kab:   backend: taskset -c 1 " + daemon.string() + " --socket-path=") != std::string::npos);
  CHECK(out.find(", fio ") != std::string::npos);
  // -q (after the command, too): nothing but the result.
  auto [q, qpid] = run_kab_tracked({"run", (dir / "own.yaml").string(), "-q", "--db", db, "--json", "--repetitions", "1"},
                                   1800, (dir / "quiet.log").string());
  const std::string quiet = read(dir / "quiet.log");
  INFO(quiet);
  CHECK(q.ok());
  CHECK(quiet.find("kab: sample") == std::string::npos);
  CHECK(quiet.find("kab: run ") == std::string::npos);
  CHECK(last_json(quiet)["stored"] == 2);
  json res = last_json(out);
  for (const auto& s : show(db, res["run"].get<long long>())) CHECK(s["status"] == "ok");
  // Each sample's provenance names the daemon that served it, called in QEMU's spelling.
  auto [ok, cmdlines] = proc::capture({"sqlite3", db, "SELECT backend_cmdline FROM samples"});
  REQUIRE(ok);
  std::istringstream lines(cmdlines);
  std::string line;
  int n = 0;
  for (; std::getline(lines, line); ++n) {
    INFO(line);   // "taskset -c 1 DAEMON --socket-path=…" (UML pins the backend)
    CHECK(line.find(" " + daemon.string() + " --socket-path=") != std::string::npos);
  }
  CHECK(n == 4);   // both runs
  const std::string calls = read(dir / "calls");
  CHECK(calls.find("-o source=") != std::string::npos);

  // Each run keeps the host facts that change results.
  auto [env_ok, env] = proc::capture({"sqlite3", db, "SELECT json_extract(extra_json, '$.\"env.thp.enabled\"'), "
                                                     "json_extract(extra_json, '$.\"env.guest.memory_backing\"') "
                                                     "FROM runs ORDER BY id"});
  INFO(env);
  REQUIRE(env_ok);
  CHECK(std::count(env.begin(), env.end(), '\n') == 2);
  CHECK(env.find("|uml: a file on /dev/shm") != std::string::npos);
  // Pooled with a run recorded under another THP setting, the report says so.
  REQUIRE(proc::capture({"sqlite3", db, "UPDATE runs SET extra_json = json_set(extra_json, "
                                        "'$.\"env.thp.enabled\"', 'other-setting') WHERE id = 2"}).first);
  auto rep = run_kab({"report", "1", "2", "--db", db, "--format", "json"}, 120);
  INFO(rep.output);
  CHECK(rep.ok());
  json rj = last_json(rep.output);
  bool warned = false;
  for (const auto& w : rj["comparison"]["warnings"])
    if (w["kind"] == "environment")
      warned = w["message"].get<std::string>().find(", run 2 other-setting") != std::string::npos;
  CHECK(warned);
  // The scenario's primary_metric gives the verdict.
  CHECK(rj["comparison"]["primary_metric"] == "backend_cpu_per_gib");
  int primaries = 0;
  for (const auto& m : rj["comparison"]["cells"][0]["metrics"])
    if (m["primary"] == true) {
      ++primaries;
      CHECK(m["metric"] == "backend_cpu_per_gib");
      CHECK(rj["comparison"]["verdict"] == m["verdict"]);
      // Two runs of one sample per arm each: compared within each run.
      CHECK(m["test"] == "van Elteren, the run as a block");
      CHECK(m["blocks"] == 2);
    }
  CHECK(primaries == 1);
  CHECK(rj["comparison"]["block_by_run"] == true);
  check_no_uml_leftovers(pid);
  check_no_uml_leftovers(qpid);
}

TEST_CASE("uml: kab compare --replicate 2 runs twice with fresh plan seeds and says whether they agree",
          "[integration][uml][compare]") {
  fs::path dir = TestDir("uml-replicate").path;
  const std::string db = (dir / "kab.db").string();
  auto [r, pid] = run_kab_tracked({"compare", "--scenario", "scenarios/quick-uml.yaml", "--replicate", "2",
                                   "--repetitions", "2", "--db", db, "--format", "json", "--out",
                                   (dir / "out").string()},
                                  1800, (dir / "kab.log").string());
  const std::string out = read(dir / "kab.log");
  INFO(out);
  CHECK((r.exit_code == 0 || r.exit_code == 1));
  // Two runs, the scenario's seed and the next one.
  auto [ok, seeds] = proc::capture({"sqlite3", db, "SELECT id || ':' || plan_seed FROM runs ORDER BY id"});
  REQUIRE(ok);
  CHECK(seeds == "1:7\n2:8\n");
  // One line names each replicate's verdict and says whether they agree.
  std::smatch m;
  REQUIRE(std::regex_search(out, m, std::regex("kab: replicates: run 1 (\\w+) \\(bandwidth [-+][0-9.]+%\\), "
                                               "run 2 (\\w+) \\(bandwidth [-+][0-9.]+%\\): they (agree|disagree)")));
  CHECK((m[3] == "agree") == (m[1] == m[2]));
  // The report pools both runs: 2 + 2 samples of each arm, twice.
  json rep = json::parse(read(dir / "out" / "comparison.json"));
  CHECK(rep["comparison"]["run_ids"] == json::array({1, 2}));
  CHECK(rep["comparison"]["base"]["included"] == 4);
  // Every format is written, the one-paragraph summary with them.
  const std::string summary = read(dir / "out" / "comparison.summary.txt");
  CHECK(summary.rfind("rfc (rfc-6.1) against stock (stock-6.1) on quick-uml: 4 + 4 samples (uml). bandwidth ", 0) == 0);
  CHECK(summary.find(" Verdict: " + rep["comparison"]["verdict"].get<std::string>() + ". Reports: " +
                     (dir / "out").string() + "/comparison.{") != std::string::npos);
  // And the mail for a reply on the list: plain text within 80 columns, the
  // verdict in its subject, the recipe that made it.
  const std::string mail = read(dir / "out" / "comparison.mail.txt");
  INFO(mail);
  CHECK(mail.rfind("Subject: [kab] rfc-6.1 vs stock-6.1 on quick-uml: " + rep["comparison"]["verdict"].get<std::string>(),
                   0) == 0);
  CHECK(mail.find("\nReproduce:\n  kab compare ") != std::string::npos);
  check_mail_columns(mail);
  check_no_uml_leftovers(pid);
}

TEST_CASE("bundle: a comparison's bundle reruns into another database with the plan byte for byte",
          "[integration][uml][bundle]") {
  fs::path dir = TestDir("uml-bundle").path;
  const std::string db = (dir / "a.db").string(), db2 = (dir / "b.db").string();
  // A/A with --candidate: the scenario's own arms (stock-6.1, rfc-6.1) are not
  // what ran, so the bundle must carry the arms as run (A and B, both stock-6.1).
  auto [r, pid] = run_kab_tracked({"compare", "--scenario", "scenarios/quick-uml.yaml", "--repetitions", "2",
                                   "--candidate", "stock-6.1", "--db", db, "--format", "json", "--out",
                                   (dir / "a").string()},
                                  1800, (dir / "a.log").string());
  INFO(read(dir / "a.log"));
  CHECK((r.exit_code == 0 || r.exit_code == 1));
  // Written beside the reports, named in their recipe instead of this machine's paths.
  const fs::path bundle = dir / "a" / "kab-bundle-run1.tar.gz";
  REQUIRE(fs::exists(bundle));
  const std::string mail = read(dir / "a" / "comparison.mail.txt");
  CHECK(mail.find("Reproduce:\n  kab compare --bundle kab-bundle-run1.tar.gz\n") != std::string::npos);
  json a = json::parse(read(dir / "a" / "comparison.json"));
  CHECK(a["context"]["command"] == "kab compare --bundle kab-bundle-run1.tar.gz");
  auto [listed, files] = proc::capture({"tar", "-tzf", bundle.string()});
  INFO(files);
  REQUIRE(listed);
  for (const std::string f : {"kab-bundle/manifest.json", "kab-bundle/scenario.yaml", "kab-bundle/kernels/stock-6.1.yaml",
                              "kab-bundle/kernels/configs/uml-guest.config", "kab-bundle/kernels/configs/virtio-guest.config",
                              "kab-bundle/kernels/configs/debug.config", "kab-bundle/built/A.config", "kab-bundle/built/B.config"})
    CHECK(files.find(f + "\n") != std::string::npos);
  CHECK(files.find("rfc-6.1") == std::string::npos);   // a kernel that did not run is not in it
  auto [shown, scenario_text] = proc::capture({"tar", "-xzOf", bundle.string(), "kab-bundle/scenario.yaml"});
  INFO(scenario_text);
  CHECK(scenario_text.find("rfc") == std::string::npos);
  CHECK(scenario_text.find("A:") != std::string::npos);

  // Rerun into another database: the same plan, the same kernels (from the cache), no fact differs.
  auto [r2, pid2] = run_kab_tracked({"compare", "--bundle", bundle.string(), "--db", db2, "--format", "json", "--out",
                                     (dir / "b").string()},
                                    1800, (dir / "b.log").string());
  const std::string log2 = read(dir / "b.log");
  INFO(log2);
  CHECK((r2.exit_code == 0 || r2.exit_code == 1));
  CHECK(log2.find("kab: bundle of run 1 (quick-uml, ") != std::string::npos);
  CHECK(log2.find("): the same plan, 4 samples\n") != std::string::npos);
  CHECK(log2.find("kab: bundle: the environment facts are the same here\n") != std::string::npos);
  auto plan = [](const std::string& d) {
    auto [ok, out] = proc::capture({"sqlite3", d, "SELECT plan_json FROM runs WHERE id = 1"});
    REQUIRE(ok);
    return out;
  };
  CHECK(plan(db2) == plan(db));
  CHECK(plan(db).find("\"arm\":\"B\"") != std::string::npos);
  auto keys = [](const std::string& d) {
    auto [ok, out] = proc::capture({"sqlite3", d, "SELECT DISTINCT arm || ' ' || kernel_build_key FROM samples ORDER BY 1"});
    REQUIRE(ok);
    return out;
  };
  CHECK(keys(db2) == keys(db));
  json b = json::parse(read(dir / "b" / "comparison.json"));
  CHECK(b["comparison"]["base"]["included"] == 2);
  CHECK(b["comparison"]["candidate"]["arm"] == "B");
  CHECK(b["comparison"]["candidate"]["kernel"] == "stock-6.1");
  const json& extra = b["context"]["extra"];
  INFO(extra.dump(2));
  REQUIRE(extra.contains("rerun of"));
  CHECK(extra["rerun of"].get<std::string>().rfind("run 1 (", 0) == 0);
  CHECK(extra["rerun of"].get<std::string>().find(") from kab-bundle-run1.tar.gz, the same plan") != std::string::npos);
  CHECK(extra["made with"].get<std::string>().rfind("kab compare --bundle " + bundle.string(), 0) == 0);
  // Same host, same builds: neither the environment nor a .config is said to differ.
  for (const auto& w : b["comparison"]["warnings"]) {
    CHECK(w["kind"] != "bundle_config");
    CHECK(w["kind"] != "bundle_environment");
  }

  // kab bundle RUN -o FILE writes the same bundle from the store and the
  // definitions alone, and it reruns with the gate before the measurement.
  const std::string again = (dir / "again.tar.gz").string();
  auto made = run_kab({"bundle", "1", "-o", again, "--db", db}, 120);
  INFO(made.output);
  REQUIRE(made.ok());
  auto member = [](const std::string& file, const std::string& name) {
    auto [ok, text] = proc::capture({"tar", "-xzOf", file, "kab-bundle/" + name});
    CHECK(ok);
    return text;
  };
  for (const char* name : {"manifest.json", "scenario.yaml", "kernels/stock-6.1.yaml", "built/A.config", "built/B.config"}) {
    INFO(name);
    CHECK(member(again, name) == member(bundle.string(), name));
  }
  CHECK(json::parse(member(again, "manifest.json"))["plan_json"].get<std::string>() + "\n" == plan(db));   // sqlite3 ends it with a newline
  const std::string db4 = (dir / "d.db").string();
  auto [r4, pid4] = run_kab_tracked({"compare", "--bundle", again, "--gate", "--gate-family", "writeback",
                                     "--gate-backend", "writeback", "--gate-time", "5s", "--db", db4, "--format", "json",
                                     "--out", (dir / "d").string()},
                                    1800, (dir / "d.log").string());
  const std::string log4 = read(dir / "d.log");
  INFO(log4);
  CHECK((r4.exit_code == 0 || r4.exit_code == 1));
  // Both arms run stock-6.1: one gate, named by both arms' runs.
  CHECK(log4.find("kab: gate of A (stock-6.1): clean, 1 check in run 1\n") != std::string::npos);
  CHECK(log4.find("kab: gate of B") == std::string::npos);
  CHECK(log4.find("kab: bundle of run 1 (quick-uml, ") != std::string::npos);
  // Run 1 of this database is the gate; the measurement is run 2, the bundle's plan.
  {
    auto [ok, measured] = proc::capture({"sqlite3", db4, "SELECT plan_json FROM runs WHERE id = 2"});
    REQUIRE(ok);
    CHECK(measured == plan(db));
  }
  json d = json::parse(read(dir / "d" / "comparison.json"));
  {
    const json& k = d["comparison"]["correctness"]["kernels"];
    INFO(k.dump(2));
    REQUIRE(k.size() == 2);
    for (const auto& arm : k) {
      CHECK(arm["kernel"] == "stock-6.1");
      CHECK(arm["variant"] == "debug");
      CHECK(arm["clean"] == true);
      REQUIRE(arm["checks"].size() == 1);
      CHECK(arm["checks"][0]["family"] == "writeback");
      CHECK(arm["checks"][0]["backend"] == "writeback");
      CHECK(arm["checks"][0]["run"] == 1);
      // A UML comparison gates the ARCH=um debug build, under UML.
      CHECK(arm["checks"][0]["rerun"] == "kab gate stock-6.1 --platform uml --family writeback --backend writeback --time 5s");
    }
  }
  CHECK(d["comparison"]["verdict"] != "correctness_failure");
  // Its own bundle holds the gate that ran (today's, asked for with --gate):
  // the recipe needs no gate options.
  CHECK(d["context"]["command"] == "kab compare --bundle kab-bundle-run2.tar.gz");
  REQUIRE(fs::exists(dir / "d" / "kab-bundle-run2.tar.gz"));
  {
    const std::string gated = (dir / "d" / "kab-bundle-run2.tar.gz").string();
    const json g = json::parse(member(gated, "manifest.json"))["gate"];
    INFO(g.dump(2));
    REQUIRE(g.size() == 2);   // each arm's, both the one gate run of stock-6.1
    for (const auto& arm : g) {
      CHECK(arm["kernel"] == "stock-6.1");
      CHECK(arm["variant"] == "debug");
      CHECK(arm["runtime_s"] == 5);
      REQUIRE(arm["families"].size() == 1);
      CHECK(arm["families"][0]["run"] == 1);
      CHECK(arm["families"][0]["scenario"] == "gate/stock-6.1/writeback.yaml");
    }
    CHECK(member(gated, "gate/stock-6.1/writeback.fio") == read(fs::path(k_root) / "scenarios/gate/writeback.fio"));
  }
  check_no_uml_leftovers(pid4);

  // A bundle whose plan no longer matches its scenario is refused before anything runs.
  const fs::path x = dir / "x";
  fs::create_directories(x);
  REQUIRE(proc::capture({"tar", "-C", x.string(), "-xzf", bundle.string()}).first);
  {
    json m = json::parse(read(x / "kab-bundle" / "manifest.json"));
    std::string p = m["plan_json"];
    p.replace(p.find("\"repetition\":0"), 14, "\"repetition\":1");
    m["plan_json"] = p;
    std::ofstream(x / "kab-bundle" / "manifest.json") << m.dump(2);
  }
  const std::string edited = (dir / "edited.tar.gz").string();
  REQUIRE(proc::capture({"tar", "-C", x.string(), "-czf", edited, "kab-bundle"}).first);
  const std::string db3 = (dir / "c.db").string();
  auto bad = run_kab({"compare", "--bundle", edited, "--db", db3}, 120);
  INFO(bad.output);
  CHECK(bad.exit_code == 2);
  CHECK(bad.output.find("edited.tar.gz: the scenario it holds plans other samples here than run 1 ran") != std::string::npos);
  auto mixed = run_kab({"compare", "--bundle", bundle.string(), "--base", "stock-6.1", "--db", db3}, 120);
  CHECK(mixed.exit_code == 2);
  CHECK(mixed.output.find("--bundle reruns the comparison it holds") != std::string::npos);
  auto missing = run_kab({"compare", "--bundle", (dir / "none.tar.gz").string(), "--db", db3}, 120);
  CHECK(missing.exit_code == 2);
  CHECK(missing.output.find("none.tar.gz does not exist") != std::string::npos);
  CHECK_FALSE(fs::exists(db3));   // nothing was recorded
  check_no_uml_leftovers(pid);
  check_no_uml_leftovers(pid2);
}

TEST_CASE("uml: a scenario's stop key samples until decided, and kab report judges the look it reached",
          "[integration][uml][sequential]") {
  fs::path dir = TestDir("uml-stop").path;
  const std::string db = (dir / "kab.db").string();
  // Two looks of one ABBA block: 2 + 2 cannot decide at look 1 (best p 0.33),
  // so the run goes to the cap, 4 + 4, and is judged at look 2 of 2.
  std::ofstream(dir / "stop.yaml") << scenario_with("scenarios/quick-uml.yaml", "repetitions: 3\n",
                                                    "stop: {until_decided: true, max_samples: 4}\n");
  auto v = run_kab({"validate", (dir / "stop.yaml").string()}, 60);
  CHECK(v.output.find("until decided, at most 8 samples") != std::string::npos);
  auto [r, pid] = run_kab_tracked({"run", (dir / "stop.yaml").string(), "--db", db, "--json"}, 1800,
                                  (dir / "kab.log").string());
  const std::string out = read(dir / "kab.log");
  INFO(out);
  REQUIRE(r.exit_code == 0);
  CHECK(out.find("look 1 of 2: inconclusive;") != std::string::npos);
  CHECK(out.find("look 2 of 2: ") != std::string::npos);
  auto [ok, row] = proc::capture({"sqlite3", db, "SELECT plan_size || ' ' || json_extract(extra_json, '$.\"stop.looks\"') "
                                                 "|| ' ' || (SELECT count(*) FROM samples WHERE run_id = 1) FROM runs"});
  REQUIRE(ok);
  CHECK(row == "8 2 8\n");
  auto rep = run_kab({"report", "1", "--db", db, "--format", "json"}, 120);
  json rj = last_json(rep.output);
  CHECK(rj["comparison"]["sequential"]["look"] == 2);
  CHECK(rj["comparison"]["sequential"]["looks"] == 2);
  CHECK(out.find("look 2 of 2: " + rj["comparison"]["verdict"].get<std::string>()) != std::string::npos);
  check_no_uml_leftovers(pid);
}

TEST_CASE("uml: Debian's linux-source-6.12 builds from its package and is compared with 6.1, temp pages in both",
          "[integration][uml][kernels]") {
  fs::path dir = TestDir("uml-612").path;
  const std::string db = (dir / "kab.db").string();
  auto [r, pid] = run_kab_tracked({"compare", "--base", "stock-6.1", "--candidate", "stock-6.12", "--scenario",
                                   "scenarios/quick-uml.yaml", "--repetitions", "1", "--db", db, "--format", "json",
                                   "--out", (dir / "report").string()},
                                  3600, (dir / "kab.log").string());
  std::string out = read(dir / "kab.log");
  INFO(out);
  REQUIRE((r.exit_code == 0 || r.exit_code == 1));   // a verdict, whichever
  // Each arm ran its own kernel: 6.12 from linux-source-6.12's tarball.
  auto [ok, kernels] = proc::capture({"sqlite3", "-json", db, "SELECT name, release, source_identity FROM kernels ORDER BY id"});
  INFO(kernels);
  REQUIRE(ok);
  json k = json::parse(kernels);
  REQUIRE(k.size() == 2);
  CHECK(k[0]["release"].get<std::string>().rfind("6.1.", 0) == 0);
  CHECK(k[1]["name"] == "stock-6.12");
  CHECK(k[1]["release"].get<std::string>().rfind("6.12.", 0) == 0);
  CHECK(k[1]["source_identity"].get<std::string>().rfind("linux-source-6.12=6.12.", 0) == 0);
  // Both still write back through temporary pages (kernels/README.md says so).
  json samples = show(db, 1);
  REQUIRE(samples.size() == 2);
  for (const auto& s : samples) {
    INFO(s.dump());
    CHECK(s["status"] == "ok");
    CHECK(s["bw_bytes"].get<double>() > 10e6);
    CHECK((s["writeback_tmp_peak_kb"].get<double>() > 0 || s["nr_writeback_temp_peak"].get<double>() > 0));
  }
  check_no_uml_leftovers(pid);
}

TEST_CASE("shards: the GitLab pipeline's commands, run here with two shards, give the verdicts of one unsharded run",
          "[integration][uml][shards]") {
  fs::path dir = TestDir("uml-shards").path;
  const std::string scenario = k_root + "/tests/data/integration/delay-uml.yaml";
  // The pipeline as shipped (docs/ci/gitlab-ci.yml): a parallel matrix of
  // shard jobs and a merge-and-report job.
  const YAML::Node ci = YAML::LoadFile(k_root + "/docs/ci/gitlab-ci.yml");
  CHECK(ci["variables"]["KAB"].as<std::string>() == "build/harness/kab");
  const YAML::Node measure = ci["measure"], report = ci["report"];
  REQUIRE(measure["parallel"].as<int>() == 2);
  CHECK(measure["before_script"][0].as<std::string>() == "make kab");
  CHECK(report["needs"][0].as<std::string>() == "measure");
  CHECK(report["artifacts"]["reports"]["junit"].as<std::string>() == "report/comparison.junit.xml");
  // `make kab` builds what measures, not the tests.
  auto [made, recipe] = proc::capture({"make", "-n", "-C", k_root, "kab"});
  REQUIRE(made);
  CHECK(recipe.find("--target kab kab-dpu kab-append") != std::string::npos);
  // A job's script as the runner runs it (its lines in one shell, stopping at
  // the first that fails), here: the binary under test for $KAB, the test's
  // scenario for $KAB_SCENARIO, the CI variables of the job.
  auto run_job = [&](const YAML::Node& job, Env env, const std::string& log) {
    env.emplace_back("KAB", k_kab);
    env.emplace_back("KAB_SCENARIO", scenario);
    env.emplace_back("KAB_ROOT", k_root);
    std::string script;
    for (const auto& line : job["script"]) script += line.as<std::string>() + "\n";
    proc::Options o;
    o.argv = {"bash", "-e", "-o", "pipefail", "-c", script};
    o.cwd = dir.string();
    o.output_path = log;
    o.env = env;
    o.timeout_s = 1800;
    const auto r = proc::run(o);
    return r.signal ? 128 + r.signal : r.exit_code;
  };
  for (int i = 1; i <= 2; ++i) {
    const std::string log = (dir / ("measure-" + std::to_string(i) + ".log")).string();
    const int rc = run_job(measure, {{"CI_NODE_INDEX", std::to_string(i)}, {"CI_NODE_TOTAL", "2"}}, log);
    INFO(read(log));
    REQUIRE(rc == 0);
    CHECK(read(log).find("kab: run 1: 8 samples (uml, shard " + std::to_string(i) + " of 2)") != std::string::npos);
  }
  // Each shard: two whole ABBA blocks of the 4, both arms alike; together the plan, no index twice.
  std::set<int> indices;
  for (int i = 1; i <= 2; ++i) {
    const std::string db = (dir / "shards" / ("shard-" + std::to_string(i) + ".db")).string();
    json samples = show(db, 1);
    REQUIRE(samples.size() == 8);
    int delay = 0;
    for (const auto& s : samples) {
      CHECK(s["status"] == "ok");
      delay += s["arm"] == "delay";
      CHECK(indices.insert(s["index"].get<int>()).second);
    }
    CHECK(delay == 4);
  }
  CHECK(indices.size() == 16);
  CHECK(*indices.rbegin() == 15);
  // A shard's run resumes as the shard it is: the job's command line with
  // --resume added continues it (here: nothing missing, nothing booted),
  // another shard is refused before anything runs.
  {
    const std::string db1 = (dir / "shards/shard-1.db").string();
    auto other = run_kab({"run", scenario, "--db", db1, "--shard", "2/2", "--resume", "1"}, 60);
    CHECK(other.exit_code == 2);
    CHECK(other.output.find("run 1 is shard 1/2; --resume continues it as planned") != std::string::npos);
    auto same = run_kab({"run", scenario, "--db", db1, "--shard", "1/2", "--resume", "1", "--json"}, 600);
    INFO(same.output);
    REQUIRE(same.ok());
    const json r = last_json(same.output);
    CHECK(r["stored"] == 0);
    CHECK(r["skipped"] == 8);
    CHECK(show(db1, 1).size() == 8);
  }
  // The report job: merged, compared with each shard's run a block; a regression fails it (exit 1).
  const std::string report_log = (dir / "report.log").string();
  const int report_rc = run_job(report, {}, report_log);
  const std::string rlog = read(report_log);
  INFO(rlog);
  CHECK(report_rc == 1);
  CHECK(rlog.find("kab: db merge: runs 1 2 hold shards 1/2, 2/2 of delay-uml (seed 5): the whole plan") !=
        std::string::npos);
  const json sharded = json::parse(read(dir / "report" / "comparison.json"));
  CHECK(sharded["comparison"]["run_ids"] == json::array({1, 2}));
  CHECK(sharded["comparison"]["base"]["included"] == 8);
  CHECK(read(dir / "report" / "comparison.junit.xml").find("<failure") != std::string::npos);

  // The same plan unsharded, on this machine: the same verdicts.
  const std::string whole_db = (dir / "whole.db").string();
  auto whole = run_kab({"run", scenario, "--db", whole_db}, 1800, (dir / "whole.log").string());
  INFO(read(dir / "whole.log"));
  REQUIRE(whole.exit_code == 0);
  const json unsharded = last_json(run_kab({"report", "1", "--db", whole_db, "--format", "json"}, 120).output);
  CHECK(unsharded["comparison"]["verdict"] == "regression");
  CHECK(sharded["comparison"]["verdict"] == unsharded["comparison"]["verdict"]);
  auto verdict_of = [](const json& c, const std::string& metric) {
    for (const auto& m : c["comparison"]["cells"][0]["metrics"])
      if (m["metric"] == metric) return m["verdict"].get<std::string>();
    return std::string("absent");
  };
  CHECK(verdict_of(sharded, "bandwidth") == "regression");
  CHECK(verdict_of(sharded, "bandwidth") == verdict_of(unsharded, "bandwidth"));

  // Merging again adds nothing and names the same runs.
  const std::string merged = (dir / "merged.db").string();
  auto count = [&](const std::string& db) {
    auto [ok, n] = proc::capture({"sqlite3", db, "SELECT count(*) FROM samples"});
    REQUIRE(ok);
    return n;
  };
  REQUIRE(count(merged) == "16\n");
  // (stdout alone: the ids, for $(…) in a job's script.)
  auto [again, ids] = proc::capture({"bash", "-c", "KAB_ROOT=" + k_root + " " + k_kab + " db merge " + merged + " " +
                                                      (dir / "shards/shard-1.db").string() + " " +
                                                      (dir / "shards/shard-2.db").string() + " 2> " +
                                                      (dir / "again.err").string()});
  CHECK(again);
  CHECK(ids == "1 2\n");
  CHECK(read(dir / "again.err").find("kab: db merge: 0 runs, 0 samples, 0 kernel builds added to " + merged +
                                     " (16 samples there already)") != std::string::npos);
  CHECK(count(merged) == "16\n");
  // A sample of the same run that differs is a conflict, named; nothing is written.
  fs::copy_file(dir / "shards/shard-1.db", dir / "bad.db");
  REQUIRE(proc::capture({"sqlite3", (dir / "bad.db").string(),
                         "UPDATE samples SET bw_bytes = bw_bytes * 2 WHERE plan_index = (SELECT min(plan_index) FROM samples)"})
              .first);
  auto bad = run_kab({"db", "merge", merged, (dir / "bad.db").string()}, 120);
  CHECK(bad.exit_code == 2);
  CHECK(bad.output.find("nothing merged into " + merged + ": 1 conflict") != std::string::npos);
  CHECK(bad.output.find(" differs: " + (dir / "bad.db").string() + " run 1 holds ") != std::string::npos);
  CHECK(count(merged) == "16\n");
  // So is a second run of one shard of the plan (another run, the same shard).
  fs::copy_file(dir / "shards/shard-1.db", dir / "twin.db");
  REQUIRE(proc::capture({"sqlite3", (dir / "twin.db").string(),
                         "UPDATE runs SET extra_json = json_set(extra_json, '$.\"run.uid\"', 'twin')"})
              .first);
  auto twin = run_kab({"db", "merge", merged, (dir / "twin.db").string()}, 120);
  CHECK(twin.exit_code == 2);
  CHECK(twin.output.find("shard 1/2 of delay-uml (seed 5) is in " + (dir / "twin.db").string() + " run 1 and in " +
                         merged + " run 1, two runs of it") != std::string::npos);
  CHECK(count(merged) == "16\n");
}

TEST_CASE("uml: fio.host_check reads the share on the host after the guest, and fails a sample whose data is wrong there",
          "[integration][uml][gate]") {
  fs::path dir = TestDir("uml-host-check").path;
  const std::string data = k_root + "/tests/data/integration/";
  // Written and checked in the guest, then checked on the host: every sample ok,
  // and the host's fio read the whole file (its JSON kept with --keep).
  {
    const std::string db = (dir / "clean.db").string();
    auto [r, pid] = run_kab_tracked({"run", data + "host-check-uml.yaml", "--db", db, "--json", "--keep"}, 600,
                                    (dir / "clean.log").string());
    const std::string out = read(dir / "clean.log");
    INFO(out);
    REQUIRE(r.ok());
    const json res = last_json(out);
    const json samples = show(db, res["run"].get<long long>());
    REQUIRE(samples.size() == 2);
    for (const auto& s : samples) {
      INFO(s.dump());
      CHECK(s["status"] == "ok");
      const fs::path work = "/dev/shm/kab-run-" + std::to_string(res["run"].get<long long>()) + "-" +
                            std::to_string(pid) + "/sample-" + std::to_string(s["index"].get<int>());
      const json host = json::parse(read(work / "host-check.json"));
      REQUIRE(host["jobs"].size() == 1);
      CHECK(host["jobs"][0]["jobname"] == "host-check");
      CHECK(host["jobs"][0]["error"] == 0);
      CHECK(host["jobs"][0]["read"]["io_bytes"] == 8 << 20);   // every block of the file, verified
      std::error_code ec;
      fs::remove_all(work, ec);
    }
    check_no_uml_leftovers(pid);
  }
  // One block overwritten after the guest's own check passed: the guest's fio
  // succeeds, the host's finds the block, and the sample fails for it.
  {
    const std::string db = (dir / "corrupt.db").string();
    std::string t = read(data + "host-check-uml.yaml");
    t.replace(t.find("job_file: host-check-write.fio"), 30, "job_file: " + data + "host-check-corrupt.fio");
    t.replace(t.find("host_check: ../../../"), 21, "host_check: " + k_root + "/");
    std::ofstream(dir / "corrupt.yaml") << t;
    auto [r, pid] = run_kab_tracked({"run", (dir / "corrupt.yaml").string(), "--db", db, "--json"}, 600,
                                    (dir / "corrupt.log").string());
    const std::string out = read(dir / "corrupt.log");
    INFO(out);
    CHECK(r.exit_code == 3);   // no arm has an ok sample
    const json samples = show(db, 1);
    REQUIRE(samples.size() == 2);
    for (const auto& s : samples) {
      INFO(s.dump());
      CHECK(s["status"] == "failed");
      CHECK(s["failed_by"] == "guest");
      CHECK(s["reason"].get<std::string>().rfind(
                "host check (host-check.fio, on the host side of the share): fio exited with 1, failed: host-check "
                "(error 84)",
                0) == 0);
      // fio's own words, in the stored findings: the block at 320 KiB.
      bool found = false;
      for (const auto& f : s["findings"])
        found |= f.get<std::string>().rfind("host check:\n", 0) == 0 &&
                 f.get<std::string>().find("offset 327680") != std::string::npos;
      CHECK(found);
    }
    check_no_uml_leftovers(pid);
  }
  // A host check may not run commands on the host: refused at its line.
  std::ofstream(dir / "exec.fio") << "[host-check]\nfilename=gate-check.dat\nexec_prerun=true\n";
  std::string t = read(data + "host-check-uml.yaml");
  t.replace(t.find("job_file: host-check-write.fio"), 30, "job_file: " + data + "host-check-write.fio");
  t.replace(t.find("host_check: ../../../scenarios/gate/host-check.fio"), 50, "host_check: exec.fio");
  std::ofstream(dir / "exec.yaml") << t;
  auto v = run_kab({"validate", (dir / "exec.yaml").string()}, 60);
  CHECK(v.exit_code == 2);
  CHECK(v.output.find((dir / "exec.fio").string() + ":3:1: 'exec_prerun' runs a command, and a host check runs "
                      "on the host: not allowed there") != std::string::npos);
}

// The correctness gate under User-Mode Linux: the ARCH=um build of the debug
// variant (KASAN, lockdep), a boot in about a second instead of QEMU's 25 s
// under TCG.
TEST_CASE("uml: kab gate --platform uml runs every family on every backend clean on stock-6.1's um debug build, and "
          "the planted use-after-free fails it",
          "[integration][uml][gate]") {
  fs::path dir = TestDir("uml-gate").path;
  const std::string db = (dir / "kab.db").string();
  auto [r, pid] = run_kab_tracked({"gate", "stock-6.1", "--platform", "uml", "--time", "60s", "--db", db, "--json"}, 3600,
                                  (dir / "gate.log").string());
  const std::string log = read(dir / "gate.log");
  INFO(log);
  CHECK(r.exit_code == 0);
  json g = last_json(log);
  CHECK(g["platform"] == "uml");
  CHECK(g["passed"] == true);
  // Every family against every backend it runs against (mmap not on cache=none).
  std::set<std::string> cells;
  for (const auto& res : g["results"]) {
    INFO(res.dump());
    cells.insert(res["family"].get<std::string>() + "/" + res["backend"].get<std::string>());
    CHECK(res["status"] == "ok");
    CHECK(res["findings"].empty());
    CHECK(res["fio_s"].get<double>() >= 2);
  }
  CHECK(cells.size() == 23);
  CHECK(cells.count("mmap/none") == 0);
  CHECK(cells.count("pressure/dpu") == 1);
  // The pressure family's memory cgroup works under UML too.
  for (const auto& res : g["results"])
    if (res["family"] == "pressure" && res["backend"] != "none") {
      INFO(res.dump());
      CHECK(res["memory_cgroup"]["limit_bytes"] == 48 << 20);
      CHECK(res["memory_cgroup"]["oom_kill"] == 0);
    }
  // The samples ran the ARCH=um debug build, which carries the 6.1 plumbing
  // patch: lockdep on, and its boot no longer warns of RCU in the fork path.
  auto [ok, rows] = proc::capture({"sqlite3", "-json", db,
                                   "SELECT DISTINCT k.arch AS arch, k.variant AS variant, k.paths_json AS paths, "
                                   "a.content AS console FROM samples s JOIN kernels k ON k.build_key = "
                                   "s.kernel_build_key JOIN artifacts a ON a.sample_id = s.id AND a.kind = 'console' "
                                   "WHERE s.run_id = 1 LIMIT 1"});
  REQUIRE(ok);
  json row = json::parse(rows).at(0);
  CHECK(row["arch"] == "um");
  CHECK(row["variant"] == "debug");
  CHECK(row["paths"].get<std::string>().find("0003-um-walk-a-new-child-s-VMAs-under-the-mmap-lock.patch") !=
        std::string::npos);
  const std::string console = row["console"];
  CHECK(console.find("Lock dependency validator: Copyright (c) 2006 Red Hat, Inc., Ingo Molnar") != std::string::npos);
  CHECK(console.find("suspicious RCU usage") == std::string::npos);
  check_no_uml_leftovers(pid);

  // KASAN under UML: the planted use-after-free in the FUSE write path is
  // reported, and the rerun command names the platform.
  auto [u, upid] = run_kab_tracked({"gate", "testing-uaf-6.1", "--platform", "uml", "--family", "writeback", "--backend",
                                    "writeback", "--time", "5s", "--db", db, "--json"},
                                   3600, (dir / "uaf.log").string());
  const std::string ulog = read(dir / "uaf.log");
  INFO(ulog);
  CHECK(u.exit_code == 1);
  json uj = last_json(ulog);
  REQUIRE(uj["results"].size() == 1);
  CHECK(uj["results"][0]["status"] == "unhealthy");
  REQUIRE(!uj["results"][0]["findings"].empty());
  CHECK(uj["results"][0]["findings"][0].get<std::string>().find("BUG: KASAN: use-after-free in fuse_writepages") !=
        std::string::npos);
  CHECK(uj["results"][0]["rerun"] ==
        "kab gate testing-uaf-6.1 --platform uml --family writeback --backend writeback --time 5s");
  check_no_uml_leftovers(upid);

  auto bad = run_kab({"gate", "stock-6.1", "--platform", "vmware", "--db", (dir / "bad.db").string()}, 60);
  CHECK(bad.exit_code == 2);
  CHECK(bad.output.find("unknown platform 'vmware' (qemu, uml)") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "bad.db"));
}
