// Wiring shared by kab run and kab compare: builds what a scenario needs,
// opens the store, runs the plan through the orchestrator.
#pragma once

#include <cstdint>
#include <string>

#include "core/model.h"
#include "core/ports.h"
#include "kernel/builder.h"
#include "store/store.h"

namespace kab::cli {

struct RunRequest {
  std::string scenario_path;
  core::Scenario scenario;
  std::string db_path;
  std::int64_t resume = 0;      // run id to continue, 0 = new run
  bool keep_work = false;
  bool quiet = false;           // no progress line
  std::string command_line;     // how kab was invoked, stored with the run
};

struct RunResult {
  std::int64_t run_id = 0;
  int stored = 0, skipped = 0, not_ok = 0;
  bool interrupted = false;
  std::string accelerator;
};

// Builds kernels and image, runs every missing sample, stores each at once.
RunResult execute_run(const RunRequest& request);

// The first line a command prints (a tool's --version), or k_unavailable when it cannot run.
inline constexpr const char* k_unavailable = "unavailable";
std::string first_line(const std::vector<std::string>& argv);

// The host's 1-minute load average.
double host_load1();

// Host facts and tool versions for a run record.
store::RunInfo host_run_info();

// The guest image from the cache, or built: the initramfs, or (disk) the ext4
// root disk, with a line per step on stderr unless quiet. Throws Fatal naming the cause.
core::GuestImage build_guest_image(bool disk, bool quiet = false);

// kab's kernel builder options: its cache, the harness plumbing patches, a progress printer.
kernel::Options kernel_options();

core::KernelArtifact build_kernel(const std::string& name, const std::string& arch, const std::string& variant,
                                  bool force = false);

}  // namespace kab::cli
