#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/fio_job.h"
#include "fio/record.h"
#include "proc/runner.h"

using namespace kab;

namespace {
std::string data(const std::string& name) {
  std::ifstream in(std::string(KAB_TEST_DATA) + "/console/" + name);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace

TEST_CASE("the agent's record from real guests becomes a Sample", "[record]") {
  SECTION("stock kernel: temporary pages are visible") {
    core::Sample s;
    CHECK(fio::parse_record(data("record-stock.txt"), s) == "");
    CHECK(s.fio.bw_bytes > 1e6);
    CHECK(s.fio.iops > 0);
    CHECK(s.fio.clat_p99_ns > 0);
    CHECK(s.fio.bytes > 0);
    CHECK(s.guest.writeback_tmp_peak_kb > 0);
    CHECK(s.guest.nr_writeback_temp_peak > 0);
    CHECK(s.guest.guest_sys_s > 0);
    CHECK(s.boot_s > 0);
    CHECK(s.fio_s > 4);
    CHECK(s.fio_json.find("\"jobs\"") != std::string::npos);
  }
  SECTION("RFC kernel: no temporary pages") {
    core::Sample s;
    CHECK(fio::parse_record(data("record-rfc.txt"), s) == "");
    CHECK(s.fio.bw_bytes > 1e6);
    CHECK(s.guest.writeback_tmp_peak_kb == 0);
    CHECK(s.guest.nr_writeback_temp_peak == 0);
    CHECK(s.guest.writeback_peak_kb > 0);
  }
  SECTION("a record cut short is not a measurement") {
    std::string r = data("record-stock.txt");
    r = r.substr(0, r.find("KAB-FIO-JSON-BEGIN"));
    core::Sample s;
    CHECK(fio::parse_record(r, s) == "the agent's record has no end (guest stopped early)");
  }
  SECTION("a failed mount is reported with the agent's words") {
    core::Sample s;
    CHECK(fio::parse_record("KAB-BEGIN sample=1\r\nKAB-ERROR mount: mount: mounting kabfs on /mnt/kab failed: No such device\r\n"
                            "KAB-END status=mount-failed fio_rc=-1\r\n",
                            s) == "agent: mount-failed; mount: mount: mounting kabfs on /mnt/kab failed: No such device");
  }
  SECTION("a memory cgroup the kernel cannot make: the agent's words") {
    core::Sample s;
    CHECK(fio::parse_record("KAB-BEGIN sample=1\r\nKAB-ERROR memory cgroup: mount: mounting cgroup2 on /sys/fs/cgroup "
                            "failed: No such device (guest.memory_cgroup needs a kernel with CONFIG_MEMCG)\r\n"
                            "KAB-END status=memcg-failed fio_rc=-1\r\n",
                            s) == "agent: memcg-failed; memory cgroup: mount: mounting cgroup2 on /sys/fs/cgroup failed: No "
                                  "such device (guest.memory_cgroup needs a kernel with CONFIG_MEMCG)");
  }
  SECTION("the memory cgroup fio ran in: its limit and counters, as memcg_KEY") {
    std::string r = data("record-stock.txt");
    const std::string lines = "KAB-MEMCG memory.max 100663296\r\nKAB-MEMCG max 412\r\nKAB-MEMCG oom_kill 0\r\n"
                              "KAB-MEMCG pgsteal 51234\r\n";
    r.insert(r.find("KAB-END"), lines);
    core::Sample s;
    CHECK(fio::parse_record(r, s) == "");
    CHECK(s.guest.vmstat_delta.at("memcg_memory.max") == 100663296);
    CHECK(s.guest.vmstat_delta.at("memcg_max") == 412);
    CHECK(s.guest.vmstat_delta.at("memcg_oom_kill") == 0);
    CHECK(s.guest.vmstat_delta.at("memcg_pgsteal") == 51234);
  }
  SECTION("fio's JSON with an error") {
    core::FioMetrics m;
    CHECK(fio::parse_fio_json("fio: some warning\n{\"jobs\": [{\"error\": 5, \"write\": {\"io_bytes\": 0}, \"read\": {}}]}", m) ==
          "fio reported error 5");
    CHECK(fio::parse_fio_json("not json", m) == "fio wrote no JSON");
  }
}

namespace {

// Runs the host's fio on a job text in a fresh directory (in place of the
// share) and returns its JSON: real fio output, not a typed fixture.
std::string host_fio_json(std::string job) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("kab-fio-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  for (std::size_t p; (p = job.find(core::k_share_dir)) != std::string::npos;)
    job.replace(p, std::string(core::k_share_dir).size(), dir.string());
  std::ofstream(dir / "job.fio") << job;
  auto [ok, out] = proc::capture({"fio", "--output-format=json", "--output=" + (dir / "out.json").string(),
                                  (dir / "job.fio").string()},
                                 120);
  INFO(out);
  REQUIRE(ok);
  std::ifstream in(dir / "out.json");
  std::ostringstream ss;
  ss << in.rdbuf();
  fs::remove_all(dir);
  return ss.str();
}

std::string corpus(const std::string& name) {
  std::ifstream in(std::string(KAB_TEST_DATA) + "/fio/" + name);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The sum over fio's entries, read independently of the parser.
double sum_of(const std::string& json_text, const char* side, const char* field) {
  auto j = nlohmann::json::parse(json_text);
  double s = 0;
  for (const auto& job : j["jobs"]) s += job[side][field].get<double>();
  return s;
}

}  // namespace

TEST_CASE("every job of a sample is measured, as the real fio reports it", "[record][fio]") {
  const core::FioOptions shorter = {{"runtime", "1"}, {"size", "8M"}};
  auto run = [&](const std::string& file) {
    std::vector<core::Diagnostic> errors;
    auto parsed = core::parse_fio_job_file(file, corpus(file), errors);
    REQUIRE(errors.empty());
    return host_fio_json(core::fio_job_file_text(parsed, shorter));
  };
  SECTION("numjobs=4 without group_reporting: one group of four, all four jobs' bandwidth") {
    const std::string json = run("numjobs4-no-group.fio");
    auto j = nlohmann::json::parse(json);
    REQUIRE(j["jobs"].size() == 1);   // kab's [global] groups them
    core::FioMetrics m;
    CHECK(fio::parse_fio_json(json, m) == "");
    CHECK(m.bw_bytes == sum_of(json, "write", "bw_bytes"));
    CHECK(m.write_bw_bytes == m.bw_bytes);
    CHECK(m.read_bw_bytes == 0);
    CHECK(m.bytes == sum_of(json, "write", "io_bytes"));
    CHECK(m.bytes > 0);
  }
  SECTION("stonewall sections, a write phase then a read phase: each direction, and all bytes over both phases") {
    // time_based for a runtime of whole seconds: fio reports runtime in ms, and
    // a few-ms phase would make its own bandwidth and bytes/runtime differ by rounding.
    std::vector<core::Diagnostic> errors;
    auto parsed = core::parse_fio_job_file("stonewall-sections.fio", corpus("stonewall-sections.fio"), errors);
    const std::string json =
        host_fio_json(core::fio_job_file_text(parsed, {{"runtime", "1"}, {"time_based", ""}, {"size", "8M"}}));
    auto j = nlohmann::json::parse(json);
    REQUIRE(j["jobs"].size() == 2);
    core::FioMetrics m;
    CHECK(fio::parse_fio_json(json, m) == "");
    const double written = sum_of(json, "write", "io_bytes"), read = sum_of(json, "read", "io_bytes");
    CHECK(written > 0);
    CHECK(read > 0);
    CHECK(j["jobs"][1]["write"]["io_bytes"].get<double>() == 0);   // the read phase
    CHECK(j["jobs"][0]["read"]["io_bytes"].get<double>() == 0);    // the write phase
    CHECK(m.bytes == written + read);
    // Each direction is its phase's own figure (the other phase took no time in it).
    CHECK(m.write_bw_bytes == Approx(j["jobs"][0]["write"]["bw_bytes"].get<double>()).epsilon(0.01));
    CHECK(m.read_bw_bytes == Approx(j["jobs"][1]["read"]["bw_bytes"].get<double>()).epsilon(0.01));
    // Together: every byte over the time both phases took, not a sum of rates.
    const double ms = j["jobs"][0]["write"]["runtime"].get<double>() + j["jobs"][1]["read"]["runtime"].get<double>();
    CHECK(m.runtime_ms == ms);
    CHECK(m.bw_bytes == Approx((written + read) / (ms / 1000.0)));
    CHECK(m.bw_bytes < m.write_bw_bytes + m.read_bw_bytes);
  }
  SECTION("rw=randrw: read and write apart, fio's two figures added together") {
    const std::string json = run("randrw-mix.fio");
    auto j = nlohmann::json::parse(json);
    REQUIRE(j["jobs"].size() == 1);
    core::FioMetrics m;
    CHECK(fio::parse_fio_json(json, m) == "");
    const auto& job = j["jobs"][0];
    CHECK(job["read"]["io_bytes"].get<double>() > job["write"]["io_bytes"].get<double>());   // rwmixread=70
    CHECK(m.read_bw_bytes == job["read"]["bw_bytes"].get<double>());
    CHECK(m.write_bw_bytes == job["write"]["bw_bytes"].get<double>());
    CHECK(m.read_iops == job["read"]["iops"].get<double>());
    CHECK(m.write_iops == job["write"]["iops"].get<double>());
    CHECK(m.bw_bytes == m.read_bw_bytes + m.write_bw_bytes);
    CHECK(m.iops == m.read_iops + m.write_iops);
    CHECK(m.bytes == job["read"]["io_bytes"].get<double>() + job["write"]["io_bytes"].get<double>());
    // Latency of the direction that moved the most bytes: the reads.
    CHECK(m.clat_p99_ns == job["read"]["clat_ns"]["percentile"]["99.000000"].get<double>());
  }
  SECTION("two write phases one after another: their bytes over their summed time, not the sum of rates") {
    std::vector<core::Diagnostic> errors;
    auto parsed = core::parse_fio_job_file(
        "two.fio", "[global]\nioengine=psync\nsize=8M\n[small]\nrw=write\nbs=4k\n[big]\nstonewall\nrw=write\nbs=1M\n",
        errors);
    const std::string json = host_fio_json(core::fio_job_file_text(parsed, {}));
    auto j = nlohmann::json::parse(json);
    REQUIRE(j["jobs"].size() == 2);
    core::FioMetrics m;
    CHECK(fio::parse_fio_json(json, m) == "");
    const double bytes = sum_of(json, "write", "io_bytes"), ms = sum_of(json, "write", "runtime");
    CHECK(bytes == 16.0 * 1048576);
    CHECK(m.runtime_ms == ms);
    CHECK(m.bw_bytes == Approx(bytes / (ms / 1000.0)));
    CHECK(m.bw_bytes < sum_of(json, "write", "bw_bytes"));
  }
  SECTION("a read-only job is measured on its read side") {
    core::FioSpec f;
    f.job = {{"rw", "read"}, {"bs", "64k"}, {"size", "4M"}, {"numjobs", "2"}};
    const std::string json = host_fio_json(core::fio_job_text(f, {}));
    core::FioMetrics m;
    CHECK(fio::parse_fio_json(json, m) == "");
    CHECK(m.bytes == 2 * 4.0 * 1048576);
    CHECK(m.bw_bytes == sum_of(json, "read", "bw_bytes"));
    CHECK(m.clat_p99_ns > 0);
  }
}

TEST_CASE("fio JSON that is not what fio writes is a reason, never a crash", "[record][fio]") {
  for (const char* text : {"{\"jobs\": 5}", "{\"jobs\": [1]}", "{\"jobs\": [{\"error\": 5}]}", "[1, 2]",
                           "{\"jobs\": [{\"write\": null, \"read\": \"x\"}]}",
                           "{\"jobs\": [{\"write\": {\"io_bytes\": \"many\"}}]}", "{\"jobs\": []}", "no json"}) {
    core::FioMetrics m;
    INFO(text);
    CHECK_FALSE(fio::parse_fio_json(text, m).empty());
  }
  core::FioMetrics m;
  CHECK(fio::parse_fio_json("{\"jobs\": [{\"error\": 5}]}", m) == "fio reported error 5");
}

TEST_CASE("a failed verify is a reason that says where, in fio's own words", "[record][fio]") {
  // The gate's check on the host: a file written with verify headers, one
  // byte of it flipped, then read back with verify_only — the real fio's
  // failure, passed through the agent's record as the guest would.
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("kab-verify-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "job.fio") << "[global]\ndirectory=" << dir.string()
                                 << "\nioengine=psync\nbs=64k\nsize=1M\nrw=randwrite\nfilename=check.dat\nverify=crc32c\n"
                                    "verify_state_save=0\n[write]\ndo_verify=0\n[check]\nstonewall\nverify_only=1\n";
  auto [wrote, wout] = proc::capture({"fio", "--section=write", (dir / "job.fio").string()}, 60);
  INFO(wout);
  REQUIRE(wrote);
  {
    std::fstream f(dir / "check.dat", std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(3 * 65536 + 100);
    const char was = static_cast<char>(f.get());
    f.seekp(3 * 65536 + 100);
    f.put(static_cast<char>(was ^ 0x5a));   // flipped, whatever it was
  }
  auto [checked, log] = proc::capture({"fio", "--section=check", "--output-format=json", "--output=" + (dir / "out.json").string(),
                                       (dir / "job.fio").string()},
                                      60);
  INFO(log);
  CHECK_FALSE(checked);   // fio exits non-zero on a failed verify
  std::string record = "KAB-BEGIN sample=1\r\nKAB-FIO-START uptime=5.0\r\n";
  for (const auto& l : core::split(log, '\n'))
    if (!core::trim(l).empty()) record += "KAB-FIO-LOG " + l + "\r\n";
  record += "KAB-FIO-END uptime=6.0 rc=1\r\nKAB-END status=fio-failed fio_rc=1\r\n";
  core::Sample s;
  const std::string why = fio::parse_record(record, s);
  INFO(why);
  CHECK(why.rfind("agent: fio-failed; fio exited 1; fio: ", 0) == 0);
  CHECK(why.find("verify failed at file " + (dir / "check.dat").string() + " offset 196608") != std::string::npos);
  fs::remove_all(dir);
}
