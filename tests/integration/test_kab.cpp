// Integration tests: the real kab binary against real kernels, libvirt, QEMU,
// virtiofsd and fio, asserting on its --json output (ccache's test/run style).
// Each test works in its own directory under /tmp, kept when it fails.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "helpers.h"
#include "proc/runner.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
namespace proc = kab::proc;
using namespace kab::integration;

TEST_CASE("kernels: stock and RFC build, the RFC incrementally, repeats are cached", "[integration][kernel]") {
  // --force on both: the lane's tree must really hold stock before the RFC is
  // built (a cached stock leaves the lane as the last build left it, and an
  // RFC build on an RFC tree compiles nothing).
  auto stock = run_kab({"kernel", "build", "stock-6.1", "--json", "--force"});
  INFO(stock.output);
  REQUIRE(stock.ok());
  json s = last_json(stock.output);
  CHECK(fs::exists(s["vmlinux"].get<std::string>()));
  CHECK(fs::exists(s["bzimage"].get<std::string>()));

  // Now the RFC kernel on the stock tree: the incremental rebuild itself is what is checked.
  auto rfc = run_kab({"kernel", "build", "rfc-6.1", "--json", "--force"});
  INFO(rfc.output);
  REQUIRE(rfc.ok());
  json r = last_json(rfc.output);
  CHECK(r["key"] != s["key"]);
  CHECK(r["config_hash"] == s["config_hash"]);
  REQUIRE(r["patch_hashes"].size() == 1);
  CHECK(r["fresh"].get<bool>());
  // Only what the patch touches (and the link) recompiles.
  CHECK(r["objects_compiled"].get<int>() > 0);
  CHECK(r["objects_compiled"].get<int>() <= 40);
  {
    WARN("rfc-6.1 incremental build: " << r["wall_s"].get<double>() << " s wall, " << r["objects_compiled"]
                                       << " objects");
  }
  // The RFC's change is in the kernel the RFC artifact came from.
  std::string lane_file;
  for (const auto& e : fs::directory_iterator(fs::path(getenv("HOME")) / ".cache/kab/lanes"))
    if (read(e.path() / "state.json").find(r["patch_hashes"][0].get<std::string>()) != std::string::npos)
      lane_file = (e.path() / "src/fs/fuse/file.c").string();
  REQUIRE_FALSE(lane_file.empty());
  CHECK(read(lane_file).find("has_temporary_page") != std::string::npos);

  auto again = run_kab({"kernel", "build", "rfc-6.1", "--json", "--explain"});
  REQUIRE(again.ok());
  json a = last_json(again.output);
  CHECK_FALSE(a["fresh"].get<bool>());
  CHECK(a["key"] == r["key"]);
  CHECK(a["explain"].get<std::string>().rfind("cached: ", 0) == 0);
}

TEST_CASE("kernels: a broken patch and a dropped option give precise errors", "[integration][kernel]") {
  TestDir dir("kernel-errors");
  fs::create_directories(dir.path / "patches");
  fs::create_directories(dir.path / "configs");
  fs::copy(k_root + "/kernels/configs/virtio-guest.config", dir.path / "configs/virtio-guest.config");
  // The RFC patch with one context line changed: that hunk cannot apply.
  std::string patch = read(k_root + "/kernels/patches/0001-fuse-use-page-cache-pages-for-writeback-io-when-virtio_fs.patch");
  auto at = patch.find(" \tfi->writectr--;");
  REQUIRE(at != std::string::npos);
  patch.replace(at, 16, " \tfi->writectr -= 2;");
  std::ofstream(dir.path / "patches/broken.patch") << patch;
  std::ofstream(dir.path / "broken.yaml") << "source: linux-source-6.1\npatches: [broken.patch]\n"
                                             "config: {base: tinyconfig, fragments: [virtio-guest.config]}\n";
  auto b = run_kab({"kernel", "build", "broken"}, 600, "", {{"KAB_KERNELS", dir.path.string()}});
  CHECK(b.exit_code == 3);   // the build could not be completed
  CHECK(b.output.find("kab: error: kernel broken: patch broken.patch does not apply to the source:") != std::string::npos);
  CHECK(b.output.find("  fs/fuse/file.c: hunk #") != std::string::npos);
  CHECK(b.output.find("fi->writectr -= 2;") != std::string::npos);

  // VIRTIO_FS without FUSE_FS: Kconfig drops it; kab names it and the dependency.
  std::ofstream(dir.path / "configs/nofuse.config") << "CONFIG_FUSE_FS=n\nCONFIG_VIRTIO_FS=y\n";
  std::ofstream(dir.path / "nofuse.yaml") << "source: linux-source-6.1\n"
                                             "config: {base: tinyconfig, fragments: [nofuse.config]}\n";
  auto d = run_kab({"kernel", "build", "nofuse"}, 1200, "", {{"KAB_KERNELS", dir.path.string()}});
  INFO(d.output);
  CHECK(d.exit_code == 3);
  CHECK(d.output.find("lost options its fragments asked for:\n  CONFIG_VIRTIO_FS=y (from nofuse.config) is not set; "
                      "Kconfig: depends on FUSE_FS") != std::string::npos);
}

TEST_CASE("run: quick scenario on both kernels, the RFC's mechanism visible", "[integration][run]") {
  TestDir dir("run-quick");
  // As on a CI machine whose earlier session's daemons were killed: libvirtd
  // and virtlogd dead, their socket files left behind. kab must start them.
  proc::capture({"pkill", "-KILL", "-x", "libvirtd"});
  proc::capture({"pkill", "-KILL", "-x", "virtlogd"});
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const bool stale = fs::exists("/run/libvirt/libvirt-sock");
  auto r = run_kab({"run", "scenarios/quick.yaml", "--db", dir.db(), "--json"}, 1800, (dir.path / "kab.log").string());
  std::string out = read(dir.path / "kab.log");
  INFO(out);
  REQUIRE(r.ok());
  CHECK(out.find(stale ? "kab: starting libvirtd (its socket /run/libvirt/libvirt-sock refuses connections: stale, removed)"
                       : "kab: starting libvirtd (its socket is absent)") != std::string::npos);
  json res = last_json(out);
  CHECK(res["stored"] == 6);
  CHECK(res["not_ok"] == 0);
  json samples = show(dir.db(), res["run"].get<long long>());
  REQUIRE(samples.size() == 6);
  for (const auto& s : samples) {
    check_ok_with_mechanism(s);
    CHECK(s["boot_s"].get<double>() > 0);
  }
  check_no_leftovers();
}

TEST_CASE("run: guest.image: disk boots both kernels from the ext4 root disk", "[integration][disk]") {
  TestDir dir("disk");
  auto img = run_kab({"image", "build", "--disk", "--json"}, 900, (dir.path / "image.log").string());
  INFO(read(dir.path / "image.log"));
  REQUIRE(img.ok());
  json ij = last_json(read(dir.path / "image.log"));
  const std::string disk = ij["path"];
  CHECK(ij["kind"] == "disk");
  // A real ext4 filesystem holding the agent as /init and fio (read without mounting).
  auto [fsck_ok, fsck] = proc::capture({"e2fsck", "-fn", disk});
  INFO(fsck);
  CHECK(fsck_ok);
  auto [ls_ok, ls] = proc::capture({"debugfs", "-R", "ls -l /usr/bin", disk});
  CHECK(ls_ok);
  CHECK(ls.find("fio") != std::string::npos);

  auto [res, samples] = run_ok(dir, "tests/data/integration/disk.yaml", {"--keep"});
  REQUIRE(samples.size() == 2);
  for (const auto& s : samples) check_ok_with_mechanism(s);
  // The guests' root was the disk, mounted read-only, and they had no initramfs.
  const std::string work_prefix = "kab-run-" + std::to_string(res["run"].get<long long>()) + "-";
  std::vector<fs::path> kept;
  for (const auto& e : fs::directory_iterator("/dev/shm"))
    if (e.path().filename().string().rfind(work_prefix, 0) == 0) kept.push_back(e.path());
  REQUIRE(kept.size() == 1);
  int consoles = 0;
  for (const auto& e : fs::directory_iterator(kept[0])) {
    if (!fs::exists(e.path() / "domain.xml")) continue;
    std::string xml = read(e.path() / "domain.xml");
    CHECK(xml.find("<source file='" + disk + "'/>") != std::string::npos);
    CHECK(xml.find("<initrd>") == std::string::npos);
    CHECK(read(e.path() / "console.log").find("Mounted root (ext4 filesystem) readonly") != std::string::npos);
    ++consoles;
  }
  CHECK(consoles == 2);
  fs::remove_all(kept[0]);
  check_no_leftovers();
}

TEST_CASE("doctor: names the accelerator and the tools a run needs", "[integration][doctor]") {
  auto r = run_kab({"doctor", "--json"}, 120);
  INFO(r.output);
  REQUIRE(r.ok());   // make deps installed everything a run needs
  json checks = last_json(r.output);
  std::map<std::string, json> by;
  for (const auto& c : checks) by[c["check"]] = c;
  for (const char* tool : {"qemu-system-x86_64", "virtiofsd", "libvirtd", "fio", "busybox", "kernel sources"})
    CHECK(by[tool]["level"] == "ok");
  CHECK(by["fio"]["detail"].get<std::string>().rfind("fio-", 0) == 0);
  // Without usable KVM the doctor says TCG and points to the UML platform.
  const std::string cpuinfo = read("/proc/cpuinfo");
  const char* forced = std::getenv("KAB_ACCEL");
  const bool kvm = forced ? std::string(forced) == "kvm"
                          : fs::exists("/dev/kvm") && (cpuinfo.find(" vmx") != std::string::npos ||
                                                       cpuinfo.find(" svm") != std::string::npos);
  if (!kvm) {
    CHECK(by["accelerator"]["level"] == "warn");
    CHECK(by["accelerator"]["detail"].get<std::string>().find("guest.platform: uml") != std::string::npos);
  } else {
    CHECK(by["accelerator"]["level"] == "ok");
  }
}

TEST_CASE("run: a kernel WARNING is kept and marked unhealthy, panics and hangs are recorded", "[integration][health]") {
  TestDir dir("health");
  auto r = run_kab({"run", "tests/data/integration/warn.yaml", "--db", dir.db(), "--json"}, 1800, (dir.path / "kab.log").string());
  std::string out = read(dir.path / "kab.log");
  INFO(out);
  // The warn arm has no ok sample: nothing to measure it by, exit 3 naming it.
  CHECK(r.exit_code == 3);
  CHECK(out.find("kab: error: run 1: every sample of arm warn failed, nothing to measure it by (kab show 1 lists "
                 "the reasons)") != std::string::npos);
  json res = last_json(out);
  json samples = show(dir.db(), res["run"].get<long long>());
  REQUIRE(samples.size() == 2);
  for (const auto& s : samples) {
    if (s["arm"] == "warn") {
      CHECK(s["status"] == "unhealthy");
      CHECK(s["reason"].get<std::string>().find("WARNING: ") != std::string::npos);
      CHECK(s["bw_bytes"].get<double>() > 0);   // kept, not dropped
    } else {
      CHECK(s["status"] == "ok");
    }
  }

  // A kernel that panics at boot, and a guest that cannot finish in its timeout.
  std::string base = read(k_root + "/tests/data/integration/warn.yaml");
  auto write_variant = [&](const std::string& name, const std::string& guest) {
    std::string t = base;
    t.replace(t.find("  warn: testing-warn-6.1"), 24, "  same: stock-6.1");
    t.replace(t.find("guest:\n"), 7, "guest:\n" + guest);
    std::ofstream(dir.path / name) << t;
  };
  // init= that fails panics; rdinit= alone would fall back to /bin/sh.
  write_variant("panic.yaml", "  cmdline: rdinit=/nonexistent init=/nonexistent\n");
  write_variant("hang.yaml", "  cmdline: kab.hang\n");
  {
    std::string h = read(dir.path / "hang.yaml");
    h.replace(h.find("timeout: 120s"), 13, "timeout: 30s");
    std::ofstream(dir.path / "hang.yaml") << h;
  }
  auto p = run_kab({"run", (dir.path / "panic.yaml").string(), "--db", dir.db(), "--json", "--repetitions", "1"}, 600,
               (dir.path / "panic.log").string());
  CHECK(p.exit_code == 3);
  json pr = last_json(read(dir.path / "panic.log"));
  for (const auto& s : show(dir.db(), pr["run"].get<long long>())) {
    CHECK(s["status"] == "crashed");
    CHECK(s["reason"] == "kernel panic");
  }
  auto h = run_kab({"run", (dir.path / "hang.yaml").string(), "--db", dir.db(), "--json", "--repetitions", "1"}, 600,
               (dir.path / "hang.log").string());
  CHECK(h.exit_code == 3);
  json hr = last_json(read(dir.path / "hang.log"));
  for (const auto& s : show(dir.db(), hr["run"].get<long long>())) {
    CHECK(s["status"] == "timeout");
    CHECK(s["reason"] == "guest did not finish in 30 s");
    CHECK(s["total_s"].get<double>() < 60);
  }
  check_no_leftovers();
}

TEST_CASE("run: killed with SIGKILL mid-run, resumed without duplicates", "[integration][resume]") {
  TestDir dir("resume");
  proc::Child child(kab_options({"run", "scenarios/quick.yaml", "--db", dir.db(), "--repetitions", "2"},
                                 (dir.path / "first.log").string()));
  // Wait for the first stored sample, then kill kab (not its guest) hard.
  auto t0 = std::chrono::steady_clock::now();
  while (read(dir.path / "first.log").find("kab: sample 1/4") == std::string::npos) {
    REQUIRE(child.running());
    REQUIRE(std::chrono::steady_clock::now() - t0 < std::chrono::minutes(20));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  std::this_thread::sleep_for(std::chrono::seconds(3));   // inside the second sample
  ::kill(child.pid(), SIGKILL);
  child.wait(-1);
  auto runs = run_kab({"runs", "--db", dir.db(), "--json"}, 60);
  json rl = last_json(runs.output);
  REQUIRE(rl.size() == 1);
  long long run = rl[0]["run"];
  int stored_before = rl[0]["samples"];
  CHECK(stored_before >= 1);
  CHECK(stored_before < 4);

  // Another number of repetitions would be another plan: refused, nothing run.
  auto other = run_kab({"run", "scenarios/quick.yaml", "--db", dir.db(), "--repetitions", "3", "--resume",
                        std::to_string(run)},
                       60);
  CHECK(other.exit_code == 2);
  CHECK(other.output.find("was planned with 2 repetitions") != std::string::npos);
  CHECK(last_json(run_kab({"runs", "--db", dir.db(), "--json"}, 60).output)[0]["samples"] == stored_before);
  // The command line that started it, with --resume added, continues it.
  auto r = run_kab({"run", "scenarios/quick.yaml", "--db", dir.db(), "--repetitions", "2", "--resume", std::to_string(run),
                "--json"},
               1800, (dir.path / "second.log").string());
  std::string out = read(dir.path / "second.log");
  INFO(out);
  REQUIRE(r.ok());
  json res = last_json(out);
  CHECK(res["run"] == run);
  CHECK(res["skipped"] == stored_before);
  CHECK(res["stored"] == 4 - stored_before);
  json samples = show(dir.db(), run);
  REQUIRE(samples.size() == 4);
  std::set<int> idx;
  for (const auto& s : samples) {
    idx.insert(s["index"].get<int>());
    CHECK(s["status"] == "ok");
  }
  CHECK(idx == std::set<int>{0, 1, 2, 3});
  check_no_leftovers();
}

TEST_CASE("compare: A/A is never a change, an injected delay is a regression", "[integration][compare]") {
  TestDir dir("compare");
  // A kernel against itself is never a change; at n = 5 under TCG's noise it
  // is inconclusive unless the interval already lies inside ±5% (equivalent).
  // A false alarm has probability alpha (5%) by design (the unit tests'
  // simulation holds it there), so one is answered by a second A/A run: a
  // harness without bias gives two in a row with probability 0.25%; a bias
  // (an order effect, a first boot that is always slower) gives them every time.
  auto run_aa = [&](const std::string& name) {
    auto r = run_kab({"compare", "--scenario", "scenarios/aa.yaml", "--db", dir.db(), "--format", "json", "--out",
                      (dir.path / name).string()},
                     3600, (dir.path / (name + ".log")).string());
    INFO(read(dir.path / (name + ".log")));
    REQUIRE(fs::exists(dir.path / name / "comparison.json"));
    // The report is {"schema_version", "context", "comparison"}: the verdict is the comparison's.
    json a = json::parse(read(dir.path / name / "comparison.json"));
    REQUIRE(a.contains("comparison"));
    CHECK(r.exit_code == (a["comparison"]["verdict"] == "regression" ? 1 : 0));
    return a;
  };
  json a = run_aa("aa");
  std::string aa_verdict = a["comparison"]["verdict"];
  if (aa_verdict == "improvement" || aa_verdict == "regression") {
    WARN("A/A run 1 was a false " << aa_verdict << " (probability alpha); a second A/A run decides");
    a = run_aa("aa2");
    aa_verdict = a["comparison"]["verdict"];
  }
  INFO(a.dump(2));
  CHECK((aa_verdict == "equivalent" || aa_verdict == "inconclusive"));
  for (const auto& m : a["comparison"]["cells"][0]["metrics"])
    if (m["primary"] == true && aa_verdict == "inconclusive") CHECK(m["samples_needed"].get<int>() > 5);
  CHECK(fs::exists(dir.path / "aa/comparison.html"));
  CHECK(fs::exists(dir.path / "aa/comparison.junit.xml"));
  const long long delay_run = fs::exists(dir.path / "aa2") ? 3 : 2;

  // The delay sampled until decided, at most 12 per arm (6 looks of one ABBA
  // block): every delay sample is below every stock one (35 against ~190
  // MiB/s), so the exact p is 2 / C(2n, n): 0.0286 at 4 + 4, above look 2's
  // boundary (2.1e-4), and 0.0022 at 6 + 6, below look 3's (0.0030). It stops
  // there, at half the cap. A failed sample (recorded, excluded) leaves 6 + 5,
  // p 0.0043, and the run goes on to look 4: then the arithmetic is the next look's.
  auto d = run_kab({"compare", "--scenario", "tests/data/integration/delay.yaml", "--until-decided", "--max-samples",
                    "12", "--db", dir.db(), "--format", "json", "--out", (dir.path / "delay").string()},
                   3600, (dir.path / "delay.log").string());
  std::string d_out = read(dir.path / "delay.log");
  INFO(d_out);
  CHECK(d.exit_code == 1);
  json j = json::parse(read(dir.path / "delay/comparison.json"));
  const json& cmp = j["comparison"];
  CHECK(cmp["verdict"] == "regression");
  REQUIRE(cmp["sequential"]["looks"] == 6);
  const int look = cmp["sequential"]["look"];
  const int excluded = cmp["base"]["excluded"].get<int>() + cmp["candidate"]["excluded"].get<int>();
  // Looks 1 and 2 cannot decide whatever the data (best p above the boundary).
  REQUIRE(look >= 3);
  CHECK(look <= 6);
  if (excluded == 0) CHECK(look == 3);
  for (int k = 1; k < look; ++k)
    CHECK(d_out.find("look " + std::to_string(k) + " of 6: inconclusive;") != std::string::npos);
  CHECK(d_out.find("look " + std::to_string(look) + " of 6: regression;") != std::string::npos);
  CHECK(d_out.find("look " + std::to_string(look + 1) + " of 6") == std::string::npos);
  CHECK(d_out.find("kab: run " + std::to_string(delay_run) + " sampled until decided: regression at look " +
                   std::to_string(look) + " of 6 (decided before the cap)") != std::string::npos);
  CHECK(cmp["base"]["included"].get<int>() + cmp["base"]["excluded"].get<int>() == 2 * look);
  CHECK(cmp["candidate"]["included"].get<int>() + cmp["candidate"]["excluded"].get<int>() == 2 * look);
  // Caught where the delay is: bandwidth down by more than half (20 ms per WRITE),
  // judged against the look's boundary, not alpha.
  bool bandwidth = false;
  for (const auto& m : cmp["cells"][0]["metrics"])
    if (m["metric"] == "bandwidth") {
      bandwidth = true;
      CHECK(m["verdict"] == "regression");
      CHECK(m["change"].get<double>() < -0.5);
      if (look == 3) CHECK(m["level"].get<double>() == Approx(0.00298).epsilon(0.01));
      CHECK(m["level"].get<double>() < 0.05);
      CHECK(m["p"].get<double>() < m["level"].get<double>());
    }
  CHECK(bandwidth);
  // The run planned the cap and stored its looks; kab report judges it at that look again.
  const std::string id = std::to_string(delay_run);
  auto [ok, runs] = proc::capture({"sqlite3", dir.db(), "SELECT plan_size || ' ' || status || ' ' || "
                                                        "(SELECT count(*) FROM samples WHERE run_id = " + id +
                                                        ") FROM runs WHERE id = " + id});
  REQUIRE(ok);
  CHECK(runs == "24 complete " + std::to_string(4 * look) + "\n");
  auto rep = run_kab({"report", id, "--db", dir.db(), "--format", "json"}, 120);
  json r = last_json(rep.output);
  CHECK(r["comparison"]["verdict"] == "regression");
  CHECK(r["comparison"]["sequential"]["look"] == look);
  check_no_leftovers();
}

TEST_CASE("run: both kernels against virtiofsd and kab-dpu as one backend axis", "[integration][dpu]") {
  TestDir dir("dpu");
  auto [res, samples] = run_ok(dir, "scenarios/dpu-writeback.yaml", {"--repetitions", "1"});
  REQUIRE(samples.size() == 4);
  std::set<std::string> seen;
  for (const auto& s : samples) {
    check_ok_with_mechanism(s);
    CHECK(s["backend_cpu_s"].get<double>() > 0);
    seen.insert(s["arm"].get<std::string>() + "/" + s["backend"].get<std::string>());
  }
  CHECK(seen == std::set<std::string>{"rfc/dpu", "rfc/virtiofsd", "stock/dpu", "stock/virtiofsd"});
  check_no_leftovers();
}

TEST_CASE("run: kab-dpu dying mid-run is a failed sample with its cause, nothing left", "[integration][dpu]") {
  TestDir dir("dpu-dies");
  std::string t = read(k_root + "/scenarios/dpu-writeback.yaml");
  // Only the dpu backend, one kernel pair, one repetition.
  auto a = t.find("  - name: virtiofsd");
  auto b = t.find("  - name: dpu");
  t.erase(a, b - a);
  std::ofstream(dir.path / "dies.yaml") << t;
  proc::Child child(kab_options({"run", (dir.path / "dies.yaml").string(), "--db", dir.db(), "--json", "--repetitions", "1"},
                                 (dir.path / "kab.log").string()));
  // Once the first sample's fio has started, kill kab-dpu hard.
  auto t0 = std::chrono::steady_clock::now();
  bool killed = false;
  while (child.running() && std::chrono::steady_clock::now() - t0 < std::chrono::minutes(10)) {
    // The first sample's record (kab's work dir carries its pid) says when fio started.
    std::string record;
    for (const auto& e : fs::directory_iterator("/dev/shm"))
      if (e.path().filename().string().rfind("kab-run-", 0) == 0 &&
          e.path().filename().string().size() > std::to_string(child.pid()).size() &&
          e.path().string().substr(e.path().string().size() - std::to_string(child.pid()).size()) ==
              std::to_string(child.pid()))
        record = read(e.path() / "sample-0/report.log");
    if (record.find("KAB-FIO-START") != std::string::npos) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      proc::capture({"pkill", "-KILL", "-x", "kab-dpu"});
      killed = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  REQUIRE(killed);
  child.wait(-1);
  std::string out = read(dir.path / "kab.log");
  INFO(out);
  json res = last_json(out);
  json samples = show(dir.db(), res["run"].get<long long>());
  REQUIRE(samples.size() == 2);
  const auto& first = samples[0];
  CHECK(first["status"] == "failed");
  CHECK(first["reason"].get<std::string>().rfind("the backend died while the guest ran", 0) == 0);
  CHECK(first["total_s"].get<double>() < 110);   // well before the 120 s timeout
  CHECK(samples[1]["status"] == "ok");           // the run goes on
  check_no_leftovers();
}
