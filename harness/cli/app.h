// The kab command line: a table of subcommands (like ninja's tool table),
// each parsing its own arguments with CLI11.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "scenario/scenario.h"

namespace kab::cli {

enum Exit : int {
  k_exit_ok = 0,
  k_exit_failure = 1,      // a regression found (kab run: samples not ok)
  k_exit_usage = 2,        // usage or input error
  k_exit_run_failed = 3,   // a run could not be completed
  k_exit_interrupted = 130,
};

// The one exception that stops kab: caught in main, printed as "kab: error: …".
struct Fatal : std::runtime_error {
  Fatal(const std::string& message, int code = k_exit_run_failed) : std::runtime_error(message), exit_code(code) {}
  int exit_code;
};

// How much kab says on stderr (-q, -v anywhere on the command line): quiet
// is errors, warnings and results only; verbose adds each sample's timings,
// host load and backend command line.
enum class Verbosity { quiet, normal, verbose };
Verbosity& verbosity();

struct Command {
  const char* name;
  const char* summary;
  int (*run)(const std::vector<std::string>& args);
};

const std::vector<Command>& commands();

// Where kab's own data lives: the project root holding kernels/ and scenarios/.
struct Paths {
  std::string root;
  std::string kernels_dir;
  std::string scenarios_dir;
  std::string default_db;      // results/kab.db
  std::string cache_dir;       // ~/.cache/kab (KAB_CACHE_DIR overrides)
};
const Paths& paths();

// Context for validating scenarios: known kernels and the installed fio's options.
scenario::Context validation_context();

// Loads and validates a scenario; prints every diagnostic to stderr and
// throws Fatal(exit 2) when there is any.
core::Scenario load_scenario_or_exit(const std::string& path);
core::KernelSpec load_kernel_or_exit(const std::string& name);

int cmd_validate(const std::vector<std::string>& args);
int cmd_plan(const std::vector<std::string>& args);
int cmd_kernel(const std::vector<std::string>& args);
int cmd_run(const std::vector<std::string>& args);
int cmd_runs(const std::vector<std::string>& args);
int cmd_show(const std::vector<std::string>& args);
int cmd_compare(const std::vector<std::string>& args);
int cmd_report(const std::vector<std::string>& args);
int cmd_image(const std::vector<std::string>& args);
int cmd_doctor(const std::vector<std::string>& args);
int cmd_gate(const std::vector<std::string>& args);
int cmd_bundle(const std::vector<std::string>& args);
int cmd_nightly(const std::vector<std::string>& args);
int cmd_history(const std::vector<std::string>& args);
int cmd_bisect(const std::vector<std::string>& args);
int cmd_db(const std::vector<std::string>& args);

}  // namespace kab::cli
