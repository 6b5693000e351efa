// The orchestrator: runs a plan sample by sample through the ports, turns
// each guest outcome into a Sample, and hands it to the sink the moment it
// is complete. Knows no library: every outside effect goes through a port.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "core/model.h"
#include "core/ports.h"
#include "core/sample.h"

namespace kab::core {

// Where samples go (the ResultStore in kab, a vector in tests).
class SampleSink {
 public:
  virtual ~SampleSink() = default;
  virtual void add_sample(const Sample& sample) = 0;
  virtual std::set<int> completed_indices(std::int64_t run_id) = 0;
};

// Host facts sampled around each sample.
class HostProbe {
 public:
  virtual ~HostProbe() = default;
  virtual double load1() = 0;
  virtual double steal_pct_since_last() = 0;
  virtual void drop_caches() = 0;
  virtual std::string now_iso() = 0;
  virtual double now_s() = 0;
  virtual void sleep_s(double s) = 0;
  virtual int cpus() = 0;                 // online host CPUs
  // Raises kab's scheduling priority (nice -10, inherited by what it starts);
  // false when not permitted.
  virtual bool raise_priority() = 0;
};

// The agent's record (report port text) → fields of a Sample. Implemented by
// the fio adapter (it parses fio's JSON); returns "" or a failure reason.
using RecordParser = std::function<std::string(const std::string& record, Sample& sample)>;

// What fio.host_check found: "" failure when it passed; data_wrong when a
// job of it reported an error (a failed verify), else it could not be made.
struct HostCheckResult {
  std::string failure;
  bool data_wrong = false;
};

struct OrchestratorPorts {
  Hypervisor* hypervisor = nullptr;
  std::function<std::unique_ptr<Backend>(const BackendSpec&)> make_backend;
  // Builds the per-sample image into work_dir and returns its path: the initramfs
  // (base + sample inputs), or for guest.image: disk the sample disk.
  std::function<std::string(const PlannedSample&, const std::string& job_text, const std::string& work_dir)> sample_image;
  SampleSink* sink = nullptr;
  HostProbe* host = nullptr;
  RecordParser parse_record;
  std::function<std::string(const std::string& path)> read_file;
  std::function<void(const std::string& path)> remove_tree;
  // Runs fio.host_check's job text in the share's directory (the host side
  // of the share), its files in work_dir.
  std::function<HostCheckResult(const std::string& job_text, const std::string& shared_dir, const std::string& work_dir)>
      host_check;
};

struct RunSettings {
  std::int64_t run_id = 0;
  std::string work_root;                                  // per-sample directories under it
  std::string instance = "0";                             // distinguishes concurrent kab processes (domain names)
  std::map<std::string, KernelArtifact> kernels;          // by "kernel" or "kernel+variant"
  std::string base_image;                                 // initramfs, or root disk (guest.image: disk)
  std::vector<int> vcpu_cpus, emulator_cpus;              // pinning (empty = none)
  bool keep_work = false;                                 // keep per-sample dirs of ok samples
  std::string noise;                                      // noise controls applied, stored with each sample
  // Called after each stored sample: its position in the plan given (its plan
  // index, unless the plan is a shard), the plan's size, the sample.
  std::function<void(int, int, const Sample&)> on_sample;
  // Asked before each sample still to run, with its plan index: true ends the
  // run there, complete (a sequential run that has decided).
  std::function<bool(int)> stop_before;
};

struct RunSummary {
  int stored = 0, skipped = 0;
  std::map<SampleStatus, int> by_status;
  bool interrupted = false;
  bool stopped = false;   // stop_before ended it before the plan's end
};

class Orchestrator {
 public:
  Orchestrator(const Scenario& scenario, OrchestratorPorts ports) : m_s(scenario), m_p(std::move(ports)) {}
  // Runs every plan sample not yet stored for settings.run_id; each sample is
  // handed to the sink as soon as it ends, whatever its status.
  RunSummary run(const Plan& plan, const RunSettings& settings, const std::function<bool()>& interrupted);
  // One sample: backend up, guest run, backend down, record parsed, health judged.
  Sample run_one(const PlannedSample& ps, const RunSettings& settings);

 private:
  const Scenario& m_s;
  OrchestratorPorts m_p;
};

std::string kernel_ref(const std::string& kernel, const std::string& variant);

}  // namespace kab::core
