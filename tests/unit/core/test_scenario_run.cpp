// The run use case against fakes of every port: which kernels it builds, what
// it records and when, resuming, failures before and during the run.
#include <catch2/catch.hpp>
#include <cmath>

#include <algorithm>

#include "core/planner.h"
#include "core/scenario_run.h"
#include "core/stats.h"
#include "fakes.h"

using namespace kab::core;
using namespace kab::core::fakes;

namespace {

class FakeKernels : public KernelBuilder {
 public:
  KernelArtifact build(const KernelSpec& spec, const std::string& arch, const std::string& variant) override {
    calls.push_back(spec.name + "/" + arch + (variant.empty() ? "" : "+" + variant));
    if (spec.name == fails) throw std::runtime_error("patch broken.patch does not apply");
    KernelArtifact a;
    a.name = spec.name;
    a.variant = variant;
    a.arch = arch;
    a.key = "key-" + spec.name + variant;
    return a;
  }
  std::vector<std::string> calls;
  std::string fails;
};

class FakeImage : public ImageBuilder {
 public:
  GuestImage build() override {
    ++builds;
    if (fails) throw std::runtime_error("busybox-static is not installed");
    return {"/cache/base.cpio", "img-key", "initramfs"};
  }
  std::string sample_image(const GuestImage& base, const SampleEnv& env, const std::string& job,
                           const std::string& work) override {
    last_env = env;
    last_job = job;
    CHECK(base.path == "/cache/base.cpio");
    return work + "/initrd.cpio";
  }
  int builds = 0;
  bool fails = false;
  SampleEnv last_env;
  std::string last_job;
};

class FakeStore : public RunStore {
 public:
  void add_sample(const Sample& s) override {
    for (const auto& x : samples) REQUIRE_FALSE((x.run_id == s.run_id && x.plan_index == s.plan_index));
    samples.push_back(s);
  }
  std::set<int> completed_indices(std::int64_t run) override {
    std::set<int> out;
    for (const auto& s : samples)
      if (s.run_id == run) out.insert(s.plan_index);
    return out;
  }
  void record_kernel(const KernelArtifact& k) override { kernels.push_back(k.key); }
  std::optional<StoredRun> stored_run(std::int64_t id) override {
    auto it = runs.find(id);
    if (it == runs.end()) return std::nullopt;
    return it->second;
  }
  std::int64_t begin_run(const RunRecord& r) override {
    const std::int64_t id = static_cast<std::int64_t>(runs.size()) + 1;
    runs[id] = {r.plan->seed, static_cast<int>(r.plan->samples.size()), r.scenario->text};
    records.push_back(r.accelerator + "|" + r.platform_versions + "|" + r.command + "|" + r.image.key);
    log.push_back("begin " + std::to_string(id));
    return id;
  }
  void resume_run(std::int64_t id) override { log.push_back("resume " + std::to_string(id)); }
  void finish_run(std::int64_t id, bool interrupted) override {
    log.push_back((interrupted ? "interrupted " : "complete ") + std::to_string(id));
  }
  std::vector<Sample> run_samples(std::int64_t id) override {
    std::vector<Sample> out;
    for (const auto& s : samples)
      if (s.run_id == id) out.push_back(s);
    return out;
  }
  std::vector<Sample> samples;
  std::vector<std::string> kernels, records, log;
  std::map<std::int64_t, StoredRun> runs;
};

class FakeWorkspace : public Workspace {
 public:
  std::string instance() override { return "42"; }
  std::string prepare(std::int64_t run) override { return "/shm/run-" + std::to_string(run); }
  void finish(const std::string& root) override { finished.push_back(root); }
  std::vector<std::string> finished;
};

class FakeProgress : public RunProgress {
 public:
  void note(const std::string& line) override { notes.push_back(line); }
  void sample(int index, int total, const Sample&, double eta_s) override {
    samples.push_back(index);
    totals.insert(total);
    CHECK(eta_s >= 0);
  }
  std::vector<std::string> notes;
  std::vector<int> samples;
  std::set<int> totals;
};

struct Rig {
  FakeFs fs;
  FakeHost host;
  FakeKernels kernels;
  FakeImage image;
  FakeStore store;
  FakeWorkspace workspace;
  FakeProgress progress;
  FakeHypervisor hv;
  int live_backends = 0;
  RunRequest rq;

  explicit Rig(const std::string& script = "") : hv(fs, script) {
    Scenario& s = rq.scenario;
    s.name = "t";
    s.text = "scenario text";
    s.arms = {{"stock", "stock-6.1", ""}, {"rfc", "rfc-6.1", ""}};
    BackendSpec b;
    b.name = "virtiofsd";
    s.backends = {b};
    s.fio.job = {{"rw", "write"}, {"bs", "1M"}};
    s.repetitions = 3;
    for (const char* k : {"stock-6.1", "rfc-6.1"}) rq.kernels[k].name = k;
    rq.command = "kab run t.yaml";
    rq.where = "test.db";
  }

  RunPorts ports(std::function<bool()> interrupted = [] { return false; }) {
    RunPorts p;
    p.kernels = &kernels;
    p.image = &image;
    p.hypervisor = &hv;
    p.make_backend = [this](const BackendSpec&) { return std::unique_ptr<Backend>(new FakeBackend(false, &live_backends)); };
    p.store = &store;
    p.host = &host;
    p.workspace = &workspace;
    p.progress = &progress;
    p.parse_record = fake_parse_record;
    p.read_file = fake_reader(fs);
    p.remove_tree = fake_remover(fs);
    p.interrupted = std::move(interrupted);
    return p;
  }

  RunOutcome run(std::function<bool()> interrupted = [] { return false; }) {
    return ScenarioRun(ports(std::move(interrupted))).execute(rq);
  }
};

}  // namespace

TEST_CASE("scenario run: each kernel the plan boots is built once, for the platform's arch", "[scenario_run]") {
  SECTION("two arms on one kernel, one on another, a variant") {
    Rig rig;
    rig.rq.scenario.arms = {{"stock", "stock-6.1", ""}, {"again", "stock-6.1", ""}, {"rfc", "rfc-6.1", ""},
                            {"debug", "stock-6.1", "debug"}};
    rig.rq.scenario.repetitions = 1;
    auto out = rig.run();
    CHECK(rig.kernels.calls == std::vector<std::string>{"stock-6.1/x86_64", "rfc-6.1/x86_64", "stock-6.1/x86_64+debug"});
    CHECK(rig.image.builds == 1);
    CHECK(rig.store.kernels == std::vector<std::string>{"key-stock-6.1", "key-rfc-6.1", "key-stock-6.1debug"});
    CHECK(out.kernels.size() == 3);
    CHECK(out.stored == 4);
    for (const auto& s : rig.store.samples)
      CHECK(s.kernel_build_key == "key-" + s.kernel + s.variant);
  }
  SECTION("a platform booting ARCH=um gets um kernels") {
    Rig rig;
    rig.hv.arch = "um";
    rig.run();
    CHECK(rig.kernels.calls == std::vector<std::string>{"stock-6.1/um", "rfc-6.1/um"});
  }
  SECTION("kernels_needed lists each (kernel, variant) once in arm order") {
    Scenario s;
    s.arms = {{"a", "k1", ""}, {"b", "k2", "v"}, {"c", "k1", ""}, {"d", "k2", ""}};
    CHECK(kernels_needed(s) == std::vector<std::pair<std::string, std::string>>{{"k1", ""}, {"k2", "v"}, {"k2", ""}});
  }
}

TEST_CASE("scenario run: records, pinning, noise and progress", "[scenario_run]") {
  Rig rig;
  rig.rq.scenario.backends.push_back(rig.rq.scenario.backends[0]);
  rig.rq.scenario.backends[1].name = "own-cpus";
  rig.rq.scenario.backends[1].cpus = {1};
  rig.rq.scenario.repetitions = 1;
  auto out = rig.run();
  CHECK(out.run_id == 1);
  CHECK(out.accelerator == "fake");
  CHECK(out.stored == 4);
  CHECK(out.not_ok == 0);
  CHECK(rig.store.records == std::vector<std::string>{"fake|fake 1.0|kab run t.yaml|img-key"});
  CHECK(rig.store.log == std::vector<std::string>{"begin 1", "complete 1"});
  CHECK(rig.workspace.finished == std::vector<std::string>{"/shm/run-1"});
  // The plan of the fake platform for the fake host's 2 CPUs, in every sample.
  for (const auto& s : rig.store.samples) {
    CHECK(s.noise == "drop_caches; share on tmpfs; fake plan for 2 CPUs, 1 vCPUs, nice -10");
    // The plan's backend CPUs for a backend without its own; its own kept.
    CHECK(s.backend_cmdline == (s.backend == "own-cpus" ? "fake-backend --name own-cpus --cpus 1"
                                                        : "fake-backend --name virtiofsd --cpus 0"));
  }
  for (const auto& r : rig.hv.requests) {
    CHECK(r.vcpu_cpus == std::vector<int>{1});
    CHECK(r.emulator_cpus == std::vector<int>{0});
  }
  CHECK(std::find(rig.progress.notes.begin(), rig.progress.notes.end(), "fake warning") != rig.progress.notes.end());
  // The agent writes its record where the platform says; the job is the scenario's.
  CHECK(rig.image.last_env == SampleEnv{{"KAB_SAMPLE", "3"}, {"KAB_TAG", "kabfs"}, {"KAB_REPORT", "/dev/fake0"}});
  CHECK(rig.image.last_job.find("rw=write\nbs=1M\n") != std::string::npos);
  // Guests are named for the workspace's instance, run and sample.
  REQUIRE(rig.hv.requests.size() == 4);
  CHECK(rig.hv.requests[0].name == "kab-42-1-0");
  CHECK(rig.hv.requests[0].work_dir == "/shm/run-1/sample-0");
  CHECK(rig.progress.samples == std::vector<int>{0, 1, 2, 3});
  CHECK(rig.progress.totals == std::set<int>{4});
  REQUIRE_FALSE(rig.progress.notes.empty());
  CHECK(rig.progress.notes.back() == "run 1: 4 samples (fake), results in test.db");
}

TEST_CASE("scenario run: noise text composition", "[scenario_run]") {
  Scenario s;
  BackendSpec b;
  b.store = "/srv/share";
  s.backends = {b};
  PinningPlan p;
  p.caveat = "uml: uniprocessor, syscalls via ptrace";
  p.noise = "UML and backend pinned to host CPU 1";
  CHECK(noise_text(p, s, true) ==
        "uml: uniprocessor, syscalls via ptrace; drop_caches; share on /srv/share; UML and backend pinned to host CPU 1, "
        "nice -10");
  CHECK(noise_text(p, s, false).find(", priority not raised (not permitted)") != std::string::npos);
  PinningPlan q;
  q.noise = "not pinned (host has 2 CPUs, need 3)";
  CHECK(noise_text(q, s, std::nullopt) == "drop_caches; share on /srv/share; not pinned (host has 2 CPUs, need 3)");
}

TEST_CASE("scenario run: an interrupted run resumes without duplicates", "[scenario_run]") {
  for (int killed_after = 0; killed_after <= 6; ++killed_after) {
    Rig rig;
    int calls = 0;
    auto first = rig.run([&] { return calls++ >= killed_after; });
    const bool cut = killed_after < 6;   // after the sixth sample there is nothing left to interrupt
    CHECK(first.interrupted == cut);
    CHECK(first.stored == killed_after);
    rig.rq.resume = first.run_id;
    auto second = rig.run();
    CHECK_FALSE(second.interrupted);
    CHECK(second.run_id == first.run_id);
    CHECK(second.skipped == killed_after);
    CHECK(second.stored == 6 - killed_after);
    CHECK(rig.store.samples.size() == 6);   // FakeStore fails on a duplicate (run, index)
    CHECK(rig.store.log ==
          std::vector<std::string>{"begin 1", cut ? "interrupted 1" : "complete 1", "resume 1", "complete 1"});
    CHECK(rig.progress.totals == std::set<int>{6});
  }
}

TEST_CASE("scenario run: failures before the first sample record nothing", "[scenario_run]") {
  SECTION("a kernel that does not build: infrastructure, no run, no kernel recorded") {
    Rig rig;
    rig.kernels.fails = "rfc-6.1";
    try {
      rig.run();
      FAIL("no RunError");
    } catch (const RunError& e) {
      CHECK(e.kind == RunError::Kind::infrastructure);
      CHECK(std::string(e.what()) == "kernel rfc-6.1 (x86_64) did not build: patch broken.patch does not apply");
    }
    CHECK(rig.store.runs.empty());
    CHECK(rig.store.kernels.empty());
    CHECK(rig.store.samples.empty());
    CHECK(rig.hv.requests.empty());
  }
  SECTION("a resume of another scenario: input error, nothing run") {
    Rig rig;
    auto first = rig.run();
    rig.rq.scenario.text = "another scenario";
    rig.rq.resume = first.run_id;
    try {
      rig.run();
      FAIL("no RunError");
    } catch (const RunError& e) {
      CHECK(e.kind == RunError::Kind::input);
      CHECK(std::string(e.what()).find("was made from another scenario, job file or seed") != std::string::npos);
    }
    rig.rq.scenario.text = "scenario text";
    rig.rq.scenario.fio.job_file_text = "[edited]\nrw=read\n";   // the job file changed since the run began
    CHECK_THROWS_WITH(rig.run(), Catch::Contains("another scenario, job file or seed"));
    rig.rq.scenario.fio.job_file_text = "";
    rig.rq.resume = 99;
    try {
      rig.run();
      FAIL("no RunError");
    } catch (const RunError& e) {
      CHECK(e.kind == RunError::Kind::input);
      CHECK(std::string(e.what()) == "no run 99 in test.db");
    }
    // Nothing was recorded or run by the refused resumes.
    CHECK(rig.store.samples.size() == 6);
    CHECK(rig.store.log == std::vector<std::string>{"begin 1", "complete 1"});
    CHECK(rig.store.kernels.size() == 2);
    CHECK(rig.hv.requests.size() == 6);
  }
  SECTION("a platform that cannot be reached: infrastructure, before anything is recorded (new run and resume)") {
    Rig rig("versions-throw");
    CHECK_THROWS_WITH(rig.run(), "platform qemu: cannot connect to qemu:///system");
    CHECK(rig.store.runs.empty());
    CHECK(rig.store.kernels.empty());
    rig.store.runs[1] = {make_plan(rig.rq.scenario).seed, 6, "scenario text", ""};
    rig.rq.resume = 1;
    try {
      rig.run();
      FAIL("no RunError");
    } catch (const RunError& e) {
      CHECK(e.kind == RunError::Kind::infrastructure);
    }
    CHECK(rig.store.samples.empty());
    CHECK(rig.store.log.empty());
  }
  SECTION("an image that does not build: infrastructure, nothing recorded") {
    Rig rig;
    rig.image.fails = true;
    try {
      rig.run();
      FAIL("no RunError");
    } catch (const RunError& e) {
      CHECK(e.kind == RunError::Kind::infrastructure);
      CHECK(std::string(e.what()) == "guest image (initramfs): busybox-static is not installed");
    }
    CHECK(rig.store.runs.empty());
    CHECK(rig.store.kernels.empty());
  }
}

TEST_CASE("scenario run: a hypervisor that throws fails its sample, the run goes on", "[scenario_run]") {
  Rig rig("throws@2");
  auto out = rig.run();
  CHECK(out.stored == 6);
  CHECK(out.not_ok == 1);
  const Sample& s = rig.store.samples[2];
  CHECK(s.health.status == SampleStatus::failed);
  CHECK(s.health.reason == "hypervisor: libvirt: connection reset");
  CHECK(s.health.failed_by == FailedBy::platform);
  CHECK(rig.live_backends == 0);
  CHECK(rig.store.samples[3].health.status == SampleStatus::ok);
}

TEST_CASE("scenario run: sampling until decided looks after every ABBA block", "[scenario_run][sequential]") {
  Rig rig;
  Scenario& s = rig.rq.scenario;
  s.stop.until_decided = true;
  s.stop.max_samples = 20;   // 10 looks of one ABBA block (2 samples per arm)
  s.min_effect = 0.02;
  // Bandwidth by arm: the candidate `factor` of the base, each sample a
  // little off (±`jitter`, by plan index).
  auto bandwidths = [&rig](double factor, double jitter) {
    auto p = rig.ports();
    p.parse_record = [factor, jitter](const std::string& rec, Sample& smp) {
      if (rec.find("KAB-END status=ok") == std::string::npos) return std::string("no end");
      // Uniform in [-1, 1) by plan index: no two alike (no ties), unrelated to the ABBA order.
      SplitMix64 g(static_cast<std::uint64_t>(smp.plan_index) + 1000);
      const double wobble = 1 + jitter * (static_cast<double>(g.next() >> 11) / 4503599627370496.0 - 1);
      smp.fio.bw_bytes = 100.0 * (1 << 20) * (smp.arm == "rfc" ? factor : 1) * wobble;
      smp.fio.bytes = smp.fio.bw_bytes * 10;
      return std::string();
    };
    return p;
  };
  SECTION("a 20% slowdown: regression at the first look whose boundary every-sample-below can cross") {
    auto out = ScenarioRun(bandwidths(0.8, 0.01)).execute(rig.rq);
    // 8 + 8 samples, all rfc below all stock: exact p = 2 / C(16, 8) = 1.6e-4,
    // under look 4 of 10's level 7.6e-4 (z 3.37); 6 + 6 gives 2.2e-3, above
    // look 3's 8.5e-5.
    CHECK(out.looks == 10);
    CHECK(out.look == 4);
    CHECK(out.decided);
    CHECK(out.verdict == Verdict::regression);
    CHECK(out.stored == 16);
    CHECK(rig.store.samples.size() == 16);
    CHECK(rig.store.log.back() == "complete 1");
    std::vector<std::string> looks;
    for (const auto& n : rig.progress.notes)
      if (n.rfind("look ", 0) == 0) looks.push_back(n.substr(0, n.find(';')));
    CHECK(looks == std::vector<std::string>{"look 1 of 10: inconclusive", "look 2 of 10: inconclusive",
                                            "look 3 of 10: inconclusive", "look 4 of 10: regression"});
    // Before look 4 the change is plainly beyond min_effect, only not yet significant; at 2 + 2 no
    // interval at the look's level is bounded (it would be the range of the ratios), and says so;
    // the samples it would take are those that detect the change seen, not an equivalence's.
    const std::string& first = rig.progress.notes[rig.progress.notes.size() - 4];
    INFO(first);
    CHECK(first.find(" interval is bounded at n = 2 + 2; about 3 samples per arm would decide") != std::string::npos);
    CHECK(first.find("lies beyond") == std::string::npos);
    // Each look saw whole ABBA blocks: as many base as candidate samples.
    int stock = 0;
    for (const auto& smp : rig.store.samples) stock += smp.arm == "stock";
    CHECK(stock == 8);
    // kab report judges the stored samples at the same look.
    CHECK(look_at(s, rig.store.samples, 4, 10, 4).verdict == Verdict::regression);
    CHECK(look_at(s, rig.store.samples, 3, 10, 4).verdict == Verdict::inconclusive);
  }
  SECTION("no change on a quiet machine: equivalent before the cap") {
    auto out = ScenarioRun(bandwidths(1.0, 0.002)).execute(rig.rq);
    CHECK(out.decided);
    CHECK(out.verdict == Verdict::equivalent);
    CHECK(out.look < 10);
    CHECK(out.stored == out.look * 4);
  }
  SECTION("noise that cannot decide: the whole plan, inconclusive at the cap") {
    auto out = ScenarioRun(bandwidths(1.0, 0.3)).execute(rig.rq);
    CHECK_FALSE(out.decided);
    CHECK(out.look == 10);
    CHECK(out.verdict == Verdict::inconclusive);
    CHECK(out.stored == 40);
    CHECK(rig.progress.notes.back().rfind("look 10 of 10: inconclusive", 0) == 0);
  }
  SECTION("interrupted, then resumed: the looks go on from the stored samples") {
    int calls = 0;
    auto p = bandwidths(0.8, 0.01);
    p.interrupted = [&calls] { return ++calls > 7; };
    auto first = ScenarioRun(p).execute(rig.rq);
    CHECK(first.interrupted);
    CHECK_FALSE(first.decided);
    rig.rq.resume = first.run_id;
    auto second = ScenarioRun(bandwidths(0.8, 0.01)).execute(rig.rq);
    CHECK(second.look == 4);
    CHECK(second.verdict == Verdict::regression);
    CHECK(rig.store.samples.size() == 16);
  }
}
