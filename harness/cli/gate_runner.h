// The correctness gate as kab gate and kab compare --gate run it: every
// family of scenarios/gate/gate.yaml against every chosen backend on a
// kernel's debug variant, each family a one-arm scenario through execute_run.
// prepare_gate checks everything (families, backends, the variant, each
// family's scenario and fio job) before run_gate builds or boots anything.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/analyzer.h"
#include "core/model.h"
#include "core/sample.h"
#include "scenario/gate.h"
#include "store/store.h"

namespace kab::cli {

struct GateOptions {
  std::string kernel;
  std::string variant = "debug";     // "" = the kernel as defined
  std::string platform;              // the guests' ("qemu", "uml"); "" = the definition's
  double total_s = 600;              // fio time shared by every (family, backend)
  std::string definition;            // "" = scenarios/gate/gate.yaml
  std::vector<std::string> families, backends;   // as typed ("a,b" or repeated); empty = all
  std::string db;
  bool keep = false;
  std::string command_line;          // stored with each family's run
  // The kernel's definition when a command made it (kab compare --tree);
  // absent: kernels/KERNEL.yaml.
  std::map<std::string, core::KernelSpec> kernels;
};

struct PreparedGate {
  GateOptions options;
  scenario::GateRun run;   // runtime and timeout per sample
  int cells = 0;           // (family, backend) pairs
  std::vector<std::string> families, backends;   // chosen, in definition order
  std::vector<std::pair<std::string, core::Scenario>> scenarios;   // family → its scenario
};

// Throws Fatal (exit 2) naming the first problem.
PreparedGate prepare_gate(const GateOptions& options);

struct GateSampleResult {
  std::string family, backend;
  std::int64_t run = 0;
  core::Sample sample;   // with its artifacts
};

struct GateOutcome {
  std::vector<GateSampleResult> results;
  bool interrupted = false;
  std::string build_key;
  int failed = 0;   // samples the kernel failed: a finding, a failed verify, a crash or a hang
  int infra = 0;    // samples the platform failed: the backend or the hypervisor
  std::vector<std::int64_t> runs;
  bool passed() const { return !interrupted && failed == 0 && infra == 0 && !results.empty(); }
};

GateOutcome run_gate(const PreparedGate& gate);

// The command that reruns one check alone: "kab gate K --family F --backend B --time 5s"
// (and --platform P when it is not QEMU's).
std::string gate_rerun_command(const std::string& kernel, const std::string& variant, const std::string& family,
                               const std::string& backend, int runtime_s, const std::string& platform = "");

// A sample the platform failed (a backend that did not start or died, the
// hypervisor) says nothing of the kernel.
bool failed_by_platform(const core::Sample& s);

// The stored gate runs RUNS of ARM's kernel, as a report shows them. Family
// names come from the runs' scenarios (gate-FAMILY).
core::GateResult gate_result(store::ResultStore& db, const std::vector<std::int64_t>& runs, const std::string& arm);

}  // namespace kab::cli
