// The orchestrator against fakes of every port (ninja's FakeCommandRunner
// style): scripted failures by name, real console text from tests/data.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "core/orchestrator.h"
#include "core/planner.h"

using namespace kab::core;

namespace {

std::string data_file(const std::string& name) {
  std::ifstream in(std::string(KAB_TEST_DATA) + "/console/" + name);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Files the fakes "write": path → text.
struct FakeFs {
  std::map<std::string, std::string> files;
  std::vector<std::string> removed;
};

// Fails samples by script: "boot-timeout@3" (sample 3 times out),
// "panic-after-2" (every sample after the second panics), "backend-dies@1",
// "warn@0" (kernel WARNING in the console of sample 0), "no-record@4".
class FakeHypervisor : public Hypervisor {
 public:
  FakeHypervisor(FakeFs& fs, std::string script) : m_fs(fs), m_script(std::move(script)) {}
  std::string accelerator() override { return "fake"; }
  GuestOutcome run(const GuestRequest& r) override {
    int n = m_boots++;
    int index = std::stoi(r.name.substr(r.name.rfind('-') + 1));
    GuestOutcome o;
    o.console_path = r.work_dir + "/console.log";
    o.report_path = r.work_dir + "/report.log";
    o.boot_s = 0.5;
    auto has = [&](const std::string& what) { return m_script.find(what + "@" + std::to_string(index)) != std::string::npos; };
    m_fs.files[o.console_path] = data_file("ok.txt");
    if (r.backend_alive && !r.backend_alive()) {   // as the real hypervisors poll it
      o.end = GuestOutcome::End::failed;
      o.reason = "the backend died while the guest ran";
      return o;
    }
    if (has("boot-timeout")) {
      o.end = GuestOutcome::End::timeout;
      o.reason = "guest did not finish in " + std::to_string(static_cast<int>(r.guest.timeout_s)) + " s";
      return o;
    }
    if (m_script.find("panic-after-2") != std::string::npos && n >= 2) {
      m_fs.files[o.console_path] = data_file("panic.txt");
      o.end = GuestOutcome::End::crashed;
      o.reason = "kernel panic";
      return o;
    }
    if (has("warn")) m_fs.files[o.console_path] = data_file("warning.txt");
    if (has("no-record")) {
      o.end = GuestOutcome::End::crashed;
      o.reason = "guest stopped without the agent's record";
      return o;
    }
    m_fs.files[o.report_path] = "KAB-BEGIN sample=" + std::to_string(index) + "\nKAB-END status=ok\n";
    o.end = GuestOutcome::End::completed;
    last_request = r;
    return o;
  }
  GuestRequest last_request;

 private:
  FakeFs& m_fs;
  std::string m_script;
  int m_boots = 0;
};

class FakeBackend : public Backend {
 public:
  FakeBackend(bool dies, int* live) : m_dies(dies), m_live(live) {}
  ~FakeBackend() override { stop(); }
  BackendHandle start(const BackendSpec& spec, const std::string& work) override {
    ++*m_live;
    m_running = true;
    return {work + "/sock", work + "/share", "fake-backend --name " + spec.name, work + "/backend.log"};
  }
  bool alive() override { return m_running && !m_dies; }
  HostUsage stop() override {
    if (m_running) --*m_live;
    m_running = false;
    return {1.5, 0.5, 100, 0};
  }

 private:
  bool m_dies;
  int* m_live;
  bool m_running = false;
};

class VectorSink : public SampleSink {
 public:
  void add_sample(const Sample& s) override { samples.push_back(s); }
  std::set<int> completed_indices(std::int64_t) override {
    std::set<int> out;
    for (const auto& s : samples) out.insert(s.plan_index);
    return out;
  }
  std::vector<Sample> samples;
};

class FakeHost : public HostProbe {
 public:
  double load1() override { return 0.5; }
  double steal_pct_since_last() override { return 0; }
  void drop_caches() override { ++drops; }
  std::string now_iso() override { return "2026-11-28T00:00:00Z"; }
  double now_s() override { return t += 1; }
  void sleep_s(double) override {}
  int drops = 0;
  double t = 0;
};

struct Rig {
  Scenario s;
  FakeFs fs;
  FakeHost host;
  VectorSink sink;
  int live_backends = 0;
  std::unique_ptr<FakeHypervisor> hv;
  std::string backend_dies_at;   // "@N" list
  RunSettings st;

  explicit Rig(const std::string& script, int reps = 3) {
    s.arms = {{"stock", "stock-6.1", ""}, {"rfc", "rfc-6.1", ""}};
    BackendSpec b;
    b.name = "virtiofsd";
    s.backends = {b};
    s.fio.job = {{"rw", "randwrite"}, {"bs", "1M"}};
    s.repetitions = reps;
    s.guest.timeout_s = 120;
    hv = std::make_unique<FakeHypervisor>(fs, script);
    st.run_id = 7;
    st.work_root = "/work";
    st.kernels["stock-6.1"].key = "k-stock";
    st.kernels["rfc-6.1"].key = "k-rfc";
    st.base_image = "/img.cpio";
    backend_dies_at = script;
  }

  OrchestratorPorts ports() {
    OrchestratorPorts p;
    p.hypervisor = hv.get();
    int counter = 0;
    p.make_backend = [this, counter](const BackendSpec&) mutable {
      bool dies = backend_dies_at.find("backend-dies@" + std::to_string(counter++)) != std::string::npos;
      return std::unique_ptr<Backend>(new FakeBackend(dies, &live_backends));
    };
    p.sample_image = [](const PlannedSample&, const std::string& job, const std::string& work) {
      return work + "/initrd.cpio";
    };
    p.sink = &sink;
    p.host = &host;
    p.parse_record = [](const std::string& rec, Sample& s) -> std::string {
      if (rec.find("KAB-END status=ok") == std::string::npos) return "no end";
      s.fio.bw_bytes = 100 << 20;
      return "";
    };
    p.read_file = [this](const std::string& path) { return fs.files.count(path) ? fs.files[path] : std::string(); };
    p.remove_tree = [this](const std::string& path) { fs.removed.push_back(path); };
    return p;
  }

  RunSummary run(std::function<bool()> interrupted = [] { return false; }) {
    Orchestrator o(s, ports());
    return o.run(make_plan(s), st, interrupted);
  }
};

}  // namespace

TEST_CASE("orchestrator stores every sample with its provenance", "[orchestrator]") {
  Rig rig("");
  auto sum = rig.run();
  CHECK(sum.stored == 6);
  REQUIRE(rig.sink.samples.size() == 6);
  for (const auto& s : rig.sink.samples) {
    CHECK(s.health.status == SampleStatus::ok);
    CHECK(s.run_id == 7);
    CHECK(s.backend_cmdline == "fake-backend --name virtiofsd");
    CHECK(s.kernel_build_key == (s.arm == "stock" ? "k-stock" : "k-rfc"));
    CHECK(s.backend_usage.user_s == 1.5);
    CHECK(s.fio.bw_bytes == 100 << 20);
  }
  CHECK(rig.host.drops == 6);
  CHECK(rig.live_backends == 0);
  CHECK(rig.fs.removed.size() == 6);   // work dirs of ok samples are cleaned
}

TEST_CASE("orchestrator records failures as outcomes, not exceptions", "[orchestrator]") {
  SECTION("boot-timeout") {
    Rig rig("boot-timeout@3");
    rig.run();
    REQUIRE(rig.sink.samples.size() == 6);
    const Sample& s = rig.sink.samples[3];
    CHECK(s.health.status == SampleStatus::timeout);
    CHECK(s.health.reason == "guest did not finish in 120 s");
    REQUIRE_FALSE(s.health.findings.empty());
    CHECK(s.health.findings.back().find("console tail:") == 0);
    CHECK(rig.live_backends == 0);
  }
  SECTION("panic-after-2") {
    Rig rig("panic-after-2");
    auto sum = rig.run();
    CHECK(sum.by_status[SampleStatus::ok] == 2);
    CHECK(sum.by_status[SampleStatus::crashed] == 4);
    const Sample& s = rig.sink.samples[2];
    CHECK(s.health.reason == "kernel panic");
    bool named = false;
    for (const auto& f : s.health.findings) named = named || f.find("Kernel panic - not syncing") != std::string::npos;
    CHECK(named);
    // Failed samples keep their work directory for inspection.
    CHECK(rig.fs.removed.size() == 2);
  }
  SECTION("backend-dies") {
    Rig rig("backend-dies@1");
    rig.fs.files["/work/sample-1/backend.log"] = "virtio_loop: Entry\nvirtio_loop: Unexpected poll revents 11\n";
    rig.run();
    const Sample& s = rig.sink.samples[1];
    CHECK(s.health.status == SampleStatus::failed);
    CHECK(s.health.reason ==
          "the backend died while the guest ran; its log ends: virtio_loop: Entry\nvirtio_loop: Unexpected poll revents 11\n");
    CHECK(rig.sink.samples[0].health.status == SampleStatus::ok);
    CHECK(rig.sink.samples[2].health.status == SampleStatus::ok);
    CHECK(rig.live_backends == 0);
  }
  SECTION("a kernel WARNING marks a finished sample unhealthy, kept") {
    Rig rig("warn@0");
    rig.run();
    const Sample& s = rig.sink.samples[0];
    CHECK(s.health.status == SampleStatus::unhealthy);
    CHECK(s.health.reason.find("kernel log: ") == 0);
    CHECK(s.health.reason.find("WARNING: ") != std::string::npos);
    CHECK(s.fio.bw_bytes == 100 << 20);
  }
}

TEST_CASE("orchestrator resumes without duplicates after a kill at any sample", "[orchestrator]") {
  for (int killed_after = 0; killed_after <= 6; ++killed_after) {
    Rig rig("");
    int calls = 0;
    auto sum1 = rig.run([&] { return calls++ >= killed_after; });
    CHECK(sum1.stored == killed_after);
    auto sum2 = rig.run();
    CHECK(sum2.skipped == killed_after);
    CHECK(sum2.stored == 6 - killed_after);
    std::set<int> indices;
    for (const auto& s : rig.sink.samples) indices.insert(s.plan_index);
    CHECK(indices.size() == 6);
    CHECK(rig.sink.samples.size() == 6);
  }
}

TEST_CASE("fio job text: scenario job, cell overrides, share directory", "[orchestrator]") {
  FioSpec f;
  f.job = {{"ioengine", "psync"}, {"bs", "1M"}, {"time_based", ""}};
  CHECK(fio_job_text(f, {{"bs", "4k"}, {"numjobs", "2"}}, "/mnt/kab") ==
        "; generated by kab\n[global]\ndirectory=/mnt/kab\nioengine=psync\nbs=4k\ntime_based\nnumjobs=2\n\n[kab]\n");
  f.job.emplace_back("filename", "/mnt/kab/testfile2");
  CHECK(fio_job_text(f, {}, "/mnt/kab").find("directory=") == std::string::npos);
}
