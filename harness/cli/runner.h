// The adapters `kab run` and `kab compare` hand to core::ScenarioRun: the
// store, the host, the work directories on /dev/shm, stderr progress, and the
// builders and hypervisor the scenario names. The run's policy is in core.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <map>
#include <string>
#include <vector>

#include "core/model.h"
#include "core/ports.h"
#include "core/scenario_run.h"
#include "kernel/builder.h"
#include "store/store.h"

namespace kab::cli {

struct RunRequest {
  std::string scenario_path;
  core::Scenario scenario;
  std::string db_path;
  std::int64_t resume = 0;      // run id to continue, 0 = new run
  int shard = 0, shards = 0;    // kab run --shard i/N (0: the whole plan)
  bool keep_work = false;
  bool quiet = false;           // no progress line
  std::string command_line;     // how kab was invoked, stored with the run
  // Kernel definitions made by the command (kab compare --tree) or read from
  // a bundle, by name; an arm whose kernel is not here is read from
  // kernels/NAME.yaml.
  std::map<std::string, core::KernelSpec> kernels;
  // Whether the command made them: then they are kept with the run
  // (kernel.made.NAME), for kab bundle RUN later. A bundle's live only
  // while the command runs.
  bool kernels_made = true;
  // Facts stored with a new run (RunInfo::extra): "gate.ARM", the gate runs
  // of an arm's kernel that kab compare --gate ran before it.
  std::map<std::string, std::string> run_extra;
};

// Loads every arm's kernel definition, picks the adapters and runs the
// scenario through core::ScenarioRun. Throws Fatal: exit 2 for input errors
// (an unknown kernel, a resume that does not match), 3 when a build or the
// platform fails before the first sample.
core::RunOutcome execute_run(const RunRequest& request);

// The arms of the scenario without one ok sample in run RUN (a crashed,
// hung or failed guest every time): such a run could not be completed, and
// the commands exit 3 naming them. Empty when every arm has one.
std::vector<std::string> arms_without_ok_sample(const std::string& db_path, std::int64_t run,
                                                const core::Scenario& scenario);

// "kab: run 4: every sample of arm rfc failed (kab show 4 lists the reasons)".
std::string no_ok_sample_message(std::int64_t run, const std::vector<std::string>& arms);

// A ref of a git tree as a kernel definition with the config of CONFIG
// (kab compare --tree, kab nightly, kab bisect): on BASE_REF ("" for none) as
// the commits base..ref, in the base's lane, so only what they touch
// recompiles; the ref's tree exported whole when it is the base itself or
// does not descend from it without merges (said on stderr). BUILT_AS says
// which, for people, naming the base as BASE_LABEL. Refs must resolve.
struct TreeKernel {
  core::KernelSpec spec;
  std::string built_as;
};
TreeKernel tree_kernel(const std::string& tree, const core::KernelSpec& config, const std::string& name,
                       const std::string& ref, const std::string& base_ref, const std::string& base_label);

// The first line a command prints (a tool's --version), or k_unavailable when it cannot run.
inline constexpr const char* k_unavailable = "unavailable";
std::string first_line(const std::vector<std::string>& argv);

// Bytes free for unprivileged use in the filesystem holding `path`; nullopt when it cannot be read.
std::optional<std::uint64_t> free_bytes(const std::string& path);

// The host's 1-minute load average.
double host_load1();

// Host facts and tool versions for a run record.
store::RunInfo host_run_info();

// The guest image builder of a kind ("initramfs" or "disk"), with a line per
// step on stderr unless quiet.
std::unique_ptr<core::ImageBuilder> image_builder(const std::string& kind, bool quiet = false);

// The guest image from the cache, or built. Throws Fatal naming the cause.
core::GuestImage build_guest_image(bool disk, bool quiet = false);

// kab's kernel builder options: its cache, the harness plumbing patches, a progress printer.
kernel::Options kernel_options();

core::KernelArtifact build_kernel(const std::string& name, const std::string& arch, const std::string& variant,
                                  bool force = false);

// The plan as `kab plan --json` prints it (also stored with every run).
nlohmann::ordered_json plan_json(const core::Scenario& s, const core::Plan& plan);

// The scenario as run `effective` (a run's "scenario.effective" fact: arms,
// repetitions, seed, stop) applied to the scenario of its text: what kab
// compare's flags and a replicate's seed changed. Resuming a run and
// rerunning a bundle plan from it.
void apply_effective(core::Scenario& s, const nlohmann::json& effective);

// "kab CMD ARG…", as stored with a run.
std::string join_args(const std::string& cmd, const std::vector<std::string>& args);

// This host's name (gethostname).
std::string host_name();

// scenario::Context::read_job_file for the scenario stored with a run: the
// job file's and fio.host_check's texts as read when the run began (by file
// name: the stored scenario names them relative to where it was).
std::function<std::optional<std::string>(const std::string&)> stored_job_files(const store::RunRecord& run);

// `bytes` random bytes from /dev/urandom as lowercase hex (a run's uid).
std::string random_hex(int bytes);

}  // namespace kab::cli
