// The orchestrator against fakes of every port (ninja's FakeCommandRunner
// style): scripted failures by name, real console text from tests/data.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "core/fio_job.h"
#include "core/orchestrator.h"
#include "core/planner.h"
#include "fakes.h"

using namespace kab::core;
using namespace kab::core::fakes;

namespace {

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
      bool dies = backend_dies_at.find("backend-dies@" + std::to_string(counter)) != std::string::npos;
      bool refuses = backend_dies_at.find("backend-refuses@" + std::to_string(counter++)) != std::string::npos;
      return std::unique_ptr<Backend>(new FakeBackend(dies, &live_backends, refuses));
    };
    p.sample_image = [](const PlannedSample&, const std::string& job, const std::string& work) {
      return work + "/initrd.cpio";
    };
    p.sink = &sink;
    p.host = &host;
    p.parse_record = fake_parse_record;
    p.read_file = fake_reader(fs);
    p.remove_tree = fake_remover(fs);
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
    CHECK(s.health.failed_by == FailedBy::none);
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
    CHECK(s.health.failed_by == FailedBy::guest);
    REQUIRE_FALSE(s.health.findings.empty());
    CHECK(s.health.findings.back().find("console tail:") == 0);
    CHECK(rig.live_backends == 0);
  }
  SECTION("a guest that hung after fio started: its boot time from its record, QEMU's start-up added") {
    Rig rig("boot-timeout@3");
    rig.fs.files["/work/sample-3/report.log"] = "KAB-BEGIN sample=3 uptime=0.4\nKAB-FIO-START uptime=9.25\n";
    rig.run();
    const Sample& s = rig.sink.samples[3];
    CHECK(s.health.status == SampleStatus::timeout);
    CHECK(s.boot_s == Approx(9.25 + 0.5));
    CHECK(s.fio_s == 0);   // fio did not end: no measurement
  }
  SECTION("panic-after-2") {
    Rig rig("panic-after-2");
    auto sum = rig.run();
    CHECK(sum.by_status[SampleStatus::ok] == 2);
    CHECK(sum.by_status[SampleStatus::crashed] == 4);
    const Sample& s = rig.sink.samples[2];
    CHECK(s.health.reason == "kernel panic");
    CHECK(s.health.failed_by == FailedBy::guest);
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
    CHECK(s.health.failed_by == FailedBy::platform);   // nothing said of the kernel
    CHECK(rig.sink.samples[0].health.status == SampleStatus::ok);
    CHECK(rig.sink.samples[2].health.status == SampleStatus::ok);
    CHECK(rig.live_backends == 0);
  }
  SECTION("a backend that does not start fails its sample on the platform, the run goes on") {
    Rig rig("backend-refuses@4");
    auto sum = rig.run();
    CHECK(sum.stored == 6);
    const Sample& s = rig.sink.samples[4];
    CHECK(s.health.status == SampleStatus::failed);
    CHECK(s.health.reason == "backend did not start: socket /work/sample-4/sock: address in use");
    CHECK(s.health.failed_by == FailedBy::platform);
    CHECK(rig.sink.samples[5].health.status == SampleStatus::ok);
    CHECK(rig.live_backends == 0);
  }
  SECTION("a domain the hypervisor could not start fails on the platform") {
    Rig rig("refused@2");
    rig.run();
    const Sample& s = rig.sink.samples[2];
    CHECK(s.health.status == SampleStatus::failed);
    CHECK(s.health.reason.rfind("libvirt could not start domain ", 0) == 0);
    CHECK(s.health.failed_by == FailedBy::platform);
    CHECK(rig.sink.samples[3].health.failed_by == FailedBy::none);
  }
  SECTION("a kernel WARNING marks a finished sample unhealthy, kept") {
    Rig rig("warn@0");
    rig.run();
    const Sample& s = rig.sink.samples[0];
    CHECK(s.health.status == SampleStatus::unhealthy);
    CHECK(s.health.reason.find("kernel log: ") == 0);
    CHECK(s.health.failed_by == FailedBy::guest);
    CHECK(s.health.reason.find("WARNING: ") != std::string::npos);
    CHECK(s.fio.bw_bytes == 100 << 20);
  }
}

TEST_CASE("orchestrator: fio.host_check runs in the share after a finished guest, before the backend stops",
          "[orchestrator]") {
  Rig rig("panic-after-2");
  rig.s.fio.host_check = "/scenarios/check.fio";
  rig.s.fio.host_check_text = "[host-check]\nverify_only=1\n";
  std::vector<std::string> calls;
  auto ports = rig.ports();
  ports.host_check = [&](const std::string& job, const std::string& shared, const std::string& work) {
    CHECK(job == rig.s.fio.host_check_text);
    CHECK(rig.live_backends == 1);   // the share is still there
    calls.push_back(shared);
    if (work == "/work/sample-1") return HostCheckResult{"fio exited with 1, failed: host-check (error 84)\nbad magic header", true};
    if (work == "/work/sample-0") return HostCheckResult{"fio timed out after 600 s\n", false};
    return HostCheckResult{};
  };
  Orchestrator o(rig.s, ports);
  o.run(make_plan(rig.s), rig.st, [] { return false; });
  // Only the two guests that finished: a crashed guest's files are not a finished write.
  CHECK(calls == std::vector<std::string>{"/work/sample-0/share", "/work/sample-1/share"});
  REQUIRE(rig.sink.samples.size() == 6);
  // A check that could not be made says nothing of the kernel: the platform failed.
  const Sample& t = rig.sink.samples[0];
  CHECK(t.health.status == SampleStatus::failed);
  CHECK(t.health.failed_by == FailedBy::platform);
  CHECK(t.health.reason == "host check (check.fio, on the host side of the share) could not run: fio timed out after 600 s");
  const Sample& s = rig.sink.samples[1];
  CHECK(s.health.status == SampleStatus::failed);
  CHECK(s.health.failed_by == FailedBy::guest);
  CHECK(s.health.reason ==
        "host check (check.fio, on the host side of the share): fio exited with 1, failed: host-check (error 84)");
  REQUIRE_FALSE(s.health.findings.empty());
  CHECK(s.health.findings.front() == "host check:\nfio exited with 1, failed: host-check (error 84)\nbad magic header");
  CHECK(rig.sink.samples[2].health.status == SampleStatus::crashed);
  CHECK(rig.live_backends == 0);
}

TEST_CASE("orchestrator: guest.expect_console fails a finished sample whose console lacks the line", "[orchestrator]") {
  Rig rig("", 1);
  rig.s.guest.expect_console = "kab-append: checked ";
  rig.run();
  REQUIRE(rig.sink.samples.size() == 2);
  for (const auto& s : rig.sink.samples) {
    CHECK(s.health.status == SampleStatus::failed);
    CHECK(s.health.failed_by == FailedBy::guest);
    CHECK(s.health.reason == "the console never says \"kab-append: checked \" (guest.expect_console): the guest's own "
                             "check did not report that it passed");
  }
  Rig said("", 1);
  said.s.guest.expect_console = "Run /init as init process";   // in the fake's console (tests/data/console/ok.txt)
  said.run();
  for (const auto& s : said.sink.samples) CHECK(s.health.status == SampleStatus::ok);
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
        "; generated by kab\n[global]\ndirectory=/mnt/kab\ngroup_reporting\nioengine=psync\nbs=4k\ntime_based\nnumjobs=2\n\n["
        "kab]\n");
  f.job.emplace_back("filename", "/mnt/kab/testfile2");
  CHECK(fio_job_text(f, {}, "/mnt/kab").find("directory=") == std::string::npos);
}
