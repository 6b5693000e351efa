// Integration tests of inputs as users write them: fio job files from
// tests/data/fio run in real guests and are measured whole; a kernel that
// does not build ends `kab run` with exit 3 and records nothing.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "helpers.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace kab;
using namespace kab::integration;

namespace {

// The stored fio JSON and bandwidth of each sample of a run, read from the
// database with the sqlite3 tool (not through kab).
json stored_fio(const std::string& db, long long run) {
  auto [ok, out] = proc::capture({"sqlite3", "-json", db,
                                  "SELECT s.plan_index AS idx, s.bw_bytes AS bw, s.read_bw_bytes AS read_bw, "
                                  "s.write_bw_bytes AS write_bw, a.content AS fio FROM samples s JOIN "
                                  "artifacts a ON a.sample_id = s.id AND a.kind = 'fio_json' WHERE s.run_id = " +
                                      std::to_string(run) + " ORDER BY s.plan_index"});
  INFO(out);
  REQUIRE(ok);
  return json::parse(out);
}

// fio's own figures for the sample, read from its report: per direction, one
// reporting group's figure as fio computed it, several groups (stonewall: one
// after another) their bytes over their summed runtime. Together: the one
// direction that moved bytes; one group that read and wrote, fio's two figures
// added; phases of both directions, all bytes over the time the phases took.
struct FioFigures {
  double total = 0, read = 0, write = 0;
};

FioFigures fio_figures(const std::string& fio_json) {
  json j = json::parse(fio_json.substr(fio_json.find('{')));
  const auto& jobs = j["jobs"];
  auto direction = [&](const char* side) {
    double bytes = 0, ms = 0;
    for (const auto& job : jobs) {
      bytes += job[side]["io_bytes"].get<double>();
      ms += job[side]["runtime"].get<double>();
    }
    if (bytes == 0) return 0.0;
    return jobs.size() == 1 ? jobs[0][side]["bw_bytes"].get<double>() : bytes / (ms / 1000.0);
  };
  FioFigures f{0, direction("read"), direction("write")};
  if (f.read == 0 || f.write == 0 || jobs.size() == 1) {
    f.total = f.read + f.write;
  } else {
    double bytes = 0, ms = 0;
    for (const auto& job : jobs) {
      double longest = 0;
      for (const char* side : {"read", "write"}) {
        bytes += job[side]["io_bytes"].get<double>();
        if (job[side]["io_bytes"].get<double>() > 0) longest = std::max(longest, job[side]["runtime"].get<double>());
      }
      ms += longest;
    }
    f.total = bytes / (ms / 1000.0);
  }
  return f;
}

}  // namespace

TEST_CASE("inputs: fio job files people write run whole, stored bandwidth is fio's own total",
          "[integration][inputs]") {
  TestDir dir("job-files");
  struct Case {
    const char* file;
    const char* override;
    std::size_t groups;   // reporting groups in fio's JSON
    bool reads_and_writes;
  };
  const Case cases[] = {
      {"numjobs4-no-group.fio", "{runtime: 3}", 1, false},
      {"stonewall-sections.fio", "{}", 2, true},
      {"randrw-mix.fio", "{runtime: 3}", 1, true},
      {"libaio-direct.fio", "{}", 1, false},
      {"verify-job.fio", "{}", 1, true},   // writes, then reads back to verify
      {"falloc.fio", "{}", 1, false},
      {"big-numjobs.fio", "{runtime: 3, size: 32M}", 1, false},
  };
  for (const auto& c : cases) {
    const fs::path scenario = dir.path / (std::string(c.file) + ".yaml");
    std::ofstream(scenario) << "name: " << c.file << "\narms: {stock: stock-6.1, rfc: rfc-6.1}\n"
                            << "guest: {vcpus: 2, memory: 1G, timeout: 120s}\nfio:\n  job_file: " << k_root
                            << "/tests/data/fio/" << c.file << "\n  override: " << c.override
                            << "\nrepetitions: 1\nseed: 3\n";
    auto [res, samples] = run_ok(dir, scenario.string());
    INFO(c.file);
    CHECK(res["not_ok"] == 0);
    REQUIRE(samples.size() == 2);
    for (const auto& s : samples) CHECK(s["status"] == "ok");
    json stored = stored_fio(dir.db(), res["run"].get<long long>());
    REQUIRE(stored.size() == 2);
    for (const auto& row : stored) {
      const std::string fio = row["fio"];
      json j = json::parse(fio.substr(fio.find('{')));
      CHECK(j["jobs"].size() == c.groups);
      // The job the guest ran is the file with kab's [global] and the override.
      CHECK(j["global options"]["directory"] == "/mnt/kab");
      if (std::string(c.override).find("runtime: 3") != std::string::npos)
        for (const auto& job : j["jobs"]) CHECK(job["job options"]["runtime"] == "3");
      CHECK(row["bw"].get<double>() > 0);
      const FioFigures f = fio_figures(fio);
      CHECK(row["bw"].get<double>() == Approx(f.total).epsilon(1e-9));
      CHECK(row["read_bw"].get<double>() == Approx(f.read).epsilon(1e-9));
      CHECK(row["write_bw"].get<double>() == Approx(f.write).epsilon(1e-9));
      // Both directions apart exactly when the job read and wrote.
      CHECK((f.read > 0 && f.write > 0) == c.reads_and_writes);
    }
  }
}

TEST_CASE("inputs: a kernel that does not build ends kab run with exit 3 and records no run",
          "[integration][inputs][exit]") {
  TestDir dir("exit-build");
  const fs::path kernels = dir.path / "kernels";
  fs::copy(k_root + "/kernels", kernels, fs::copy_options::recursive);
  std::string patch = read(k_root + "/kernels/patches/0001-fuse-use-page-cache-pages-for-writeback-io-when-virtio_fs.patch");
  auto at = patch.find(" \tfi->writectr--;");
  REQUIRE(at != std::string::npos);
  patch.replace(at, 16, " \tfi->writectr -= 2;");
  std::ofstream(kernels / "patches/broken.patch") << patch;
  std::ofstream(kernels / "broken.yaml") << "source: linux-source-6.1\npatches: [broken.patch]\n"
                                            "config: {base: tinyconfig, fragments: [virtio-guest.config]}\n";
  std::ofstream(dir.path / "s.yaml") << "arms: {broken: broken, stock: stock-6.1}\nfio:\n  job: {rw: write, size: 16M}\n"
                                        "repetitions: 1\n";
  const Env env = {{"KAB_KERNELS", kernels.string()}};
  auto r = run_kab({"run", (dir.path / "s.yaml").string(), "--db", dir.db()}, 900, "", env);
  INFO(r.output);
  CHECK(r.exit_code == 3);
  CHECK(r.output.find("kab: error: kernel broken (x86_64) did not build: patch broken.patch does not apply") !=
        std::string::npos);
  auto runs = run_kab({"runs", "--db", dir.db(), "--json"});
  REQUIRE(runs.ok());
  CHECK(last_json(runs.output).empty());
}

TEST_CASE("inputs: a mistyped option is named as typed, with a suggestion", "[integration][inputs][cli]") {
  auto r = run_kab({"compare", "--fromat", "md"}, 60);
  CHECK(r.exit_code == 2);
  CHECK(r.output == "kab compare: error: unknown option '--fromat', did you mean '--format'?\n"
                    "(kab compare --help shows the options)\n");
  auto extra = run_kab({"run", "a.yaml", "b.yaml"}, 60);
  CHECK(extra.exit_code == 2);
  CHECK(extra.output.find("kab run: error: unexpected argument: b.yaml\n") == 0);
  auto nested = run_kab({"kernel", "build", "stock-6.1", "--explian"}, 60);
  CHECK(nested.exit_code == 2);
  CHECK(nested.output.find("unknown option '--explian', did you mean '--explain'?") != std::string::npos);
}

TEST_CASE("inputs: kab validate refuses a job fio rejects or the share cannot hold, booting nothing",
          "[integration][inputs][cli]") {
  TestDir dir("validate-inputs");
  const fs::path bad = dir.path / "bad.yaml", big = dir.path / "big.yaml";
  std::ofstream(bad) << "arms: {a: stock-6.1, b: rfc-6.1}\nfio:\n  job_file: " << k_root << "/tests/data/fio/bad-value.fio\n";
  std::ofstream(big) << "arms: {a: stock-6.1, b: rfc-6.1}\nfio:\n  job: {rw: write, size: 100T, numjobs: 2}\n";
  auto b = run_kab({"validate", bad.string()}, 60);
  CHECK(b.exit_code == 2);
  CHECK(b.output.find("bad-value.fio:6:4: fio rejects bs=banana (fio --parse-only: failed parsing bs=banana)") !=
        std::string::npos);
  // The host's real free space in /dev/shm, not a fake.
  auto g = run_kab({"validate", big.string()}, 60);
  CHECK(g.exit_code == 2);
  CHECK(g.output.find("the job lays out up to 200.0 TiB (size × numjobs over its sections) but the share's store "
                      "(tmpfs, /dev/shm) has ") != std::string::npos);
}
