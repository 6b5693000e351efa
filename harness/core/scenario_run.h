// The run use case: what `kab run`, `kab compare` (and every later command
// that measures) do with a scenario — build each kernel the plan needs once,
// build the guest image, record kernels and run, resume, run the samples
// through the orchestrator, finish the run — through ports only. The CLI
// parses options, picks the adapters and prints; the policy lives here.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/analyzer.h"
#include "core/model.h"
#include "core/orchestrator.h"
#include "core/ports.h"

namespace kab::core {

// Why a run could not be done. `input`: the request contradicts what is stored
// (a resume of another scenario, an unknown run): kab exits 2. `infrastructure`:
// a kernel or image build, or the store, failed: kab exits 3. Nothing of the run
// is recorded when either is thrown before the first sample.
struct RunError : std::runtime_error {
  enum class Kind { input, infrastructure };
  RunError(Kind k, const std::string& message) : std::runtime_error(message), kind(k) {}
  Kind kind;
};

// What a run record holds beyond the host's facts (which the store adapter adds).
struct RunRecord {
  const Scenario* scenario = nullptr;
  const Plan* plan = nullptr;
  std::string accelerator;
  std::string platform_versions;   // Hypervisor::versions()
  std::string command;             // how kab was invoked
  GuestImage image;
};

// What is stored of a run, as far as resuming it needs.
struct StoredRun {
  std::uint64_t seed = 0;
  int plan_size = 0;
  std::string scenario_text;
  std::string job_file_text;   // the fio job file as read when the run began ("" = none)
  std::string host_check_text; // fio.host_check's file as read then ("" = none)
};

// The result store as a run sees it (the SQLite ResultStore in kab).
class RunStore : public SampleSink {
 public:
  virtual void record_kernel(const KernelArtifact& kernel) = 0;
  virtual std::optional<StoredRun> stored_run(std::int64_t id) = 0;
  // Creates the run record; returns its id.
  virtual std::int64_t begin_run(const RunRecord& record) = 0;
  virtual void resume_run(std::int64_t id) = 0;
  virtual void finish_run(std::int64_t id, bool interrupted) = 0;
  // The run's samples stored so far, in plan order (a sequential run's looks).
  virtual std::vector<Sample> run_samples(std::int64_t id) = 0;
};

// Where the per-sample directories live.
class Workspace {
 public:
  virtual ~Workspace() = default;
  // Distinguishes concurrent kab processes (domain and directory names).
  virtual std::string instance() = 0;
  // The directory for a run's samples; leftovers of dead kab processes are removed first.
  virtual std::string prepare(std::int64_t run_id) = 0;
  // Removes the run's directory when no sample kept its own in it.
  virtual void finish(const std::string& root) = 0;
};

// What the run says while it runs (stderr in kab, a log in tests).
class RunProgress {
 public:
  virtual ~RunProgress() = default;
  virtual void note(const std::string& line) = 0;
  // A caveat that qualifies the results (TCG, CPUs not pinned apart): said
  // even where notes are not.
  virtual void warning(const std::string& line) { note(line); }
  // After each stored sample: its index, the plan's size, the estimated time left.
  virtual void sample(int index, int total, const Sample& sample, double eta_s) = 0;
};

struct RunPorts {
  KernelBuilder* kernels = nullptr;
  ImageBuilder* image = nullptr;
  Hypervisor* hypervisor = nullptr;
  std::function<std::unique_ptr<Backend>(const BackendSpec&)> make_backend;
  RunStore* store = nullptr;
  HostProbe* host = nullptr;
  Workspace* workspace = nullptr;
  RunProgress* progress = nullptr;
  RecordParser parse_record;
  std::function<std::string(const std::string& path)> read_file;
  std::function<void(const std::string& path)> remove_tree;
  std::function<bool()> interrupted;
  // OrchestratorPorts::host_check (needed when the scenario has fio.host_check).
  std::function<HostCheckResult(const std::string& job_text, const std::string& shared_dir, const std::string& work_dir)>
      host_check;
};

struct RunRequest {
  Scenario scenario;
  std::map<std::string, KernelSpec> kernels;   // every arm's definition, by name
  std::int64_t resume = 0;                     // run id to continue, 0 = a new run
  // Shard `shard` of `shards` of the plan (planner.h shard_of); 0 = the whole plan.
  int shard = 0, shards = 0;
  bool keep_work = false;                      // keep ok samples' directories too
  std::string command;                         // stored with the run
  std::string where;                           // the database, for messages
};

struct RunOutcome {
  std::int64_t run_id = 0;
  int stored = 0, skipped = 0, not_ok = 0;
  bool interrupted = false;
  std::string accelerator;
  std::vector<KernelArtifact> kernels;   // each built or cached kernel, once
  // A sequential run (stop.until_decided): the last look taken, of how many,
  // and what it decided (inconclusive at the cap, or when interrupted).
  int look = 0, looks = 0;
  Verdict verdict = Verdict::inconclusive;
  bool decided = false;                  // stopped before the cap on a decision
};

// What a look at a sequential run decides: the primary metric's Comparison
// over the samples so far at look `look` of `looks` (core/sequential.h), at
// the information of its ok samples when `look_size` (Plan::look_size) is
// given, at look / looks when it is 0.
Comparison look_at(const Scenario& scenario, const std::vector<Sample>& samples, int look, int looks, int look_size);

// The (kernel, variant) pairs a plan boots, each once, in arm order, as
// kernel_ref keys ("stock-6.1", "stock-6.1+debug").
std::vector<std::pair<std::string, std::string>> kernels_needed(const Scenario& scenario);

// The noise text of every sample: the platform's caveat, the controls kab
// applies, the pinning (and whether the priority was raised).
std::string noise_text(const PinningPlan& plan, const Scenario& scenario, std::optional<bool> priority_raised);

class ScenarioRun {
 public:
  explicit ScenarioRun(RunPorts ports) : m_p(std::move(ports)) {}
  // Runs the request. Throws RunError before anything is recorded when a
  // build fails or a resume does not match; sample failures are samples.
  RunOutcome execute(const RunRequest& request);

 private:
  RunPorts m_p;
};

}  // namespace kab::core
