// Scenario and kernel-definition files (YAML) → core model, with every
// problem in the file reported at once as a positioned diagnostic.
#pragma once

#include <functional>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/model.h"
#include "core/text.h"

namespace kab::scenario {

struct Context {
  // Names of the kernel definitions that exist (kernels/*.yaml without .yaml).
  std::vector<std::string> kernels;
  // All option names the installed fio lists (for suggestions).
  std::vector<std::string> fio_options;
  // Whether fio knows an option (also aliases and engine options). When
  // empty, fio options are not checked.
  std::function<bool(const std::string&)> fio_knows;
  // Runs the installed fio on a job text without running it (fio --parse-only);
  // returns "" when fio accepts it, else fio's message. When empty, values are not checked.
  std::function<std::string(const std::string& job_text)> fio_parse;
  // The platforms kab registers (vm::platforms()) and whether each boots a
  // root disk (guest.image: disk). When empty, guest.platform is not checked.
  struct Platform {
    std::string name;
    bool boots_disk = false;
  };
  std::vector<Platform> platforms;
  // Reads a job file the scenario names; when empty, from disk. (`kab report`
  // gives the text stored with the run.) nullopt: the file cannot be read.
  std::function<std::optional<std::string>(const std::string& path)> read_job_file;
  // Bytes free where a backend's share lives (store: "tmpfs" or a host
  // directory); nullopt when unknown. When empty, sizes are not checked.
  std::function<std::optional<std::uint64_t>(const std::string& store)> store_free_bytes;
  // The backend types kab can launch (backend::launchers()). When empty, not checked.
  std::vector<std::string> backend_types;
  // Why a backend's `binary` cannot be run ("" when it can). When empty, not checked.
  std::function<std::string(const std::string& path)> check_binary;
  // The fewest arms a scenario may have: 2 for a comparison; kab gate's
  // one-kernel scenarios (scenario/gate.h) allow 1.
  int min_arms = 2;
};

template <typename T>
struct Parsed {
  std::optional<T> value;                 // set only when there are no errors
  std::vector<core::Diagnostic> errors;
};

// Parses scenario text. `path` is used in messages and to resolve job_file.
Parsed<core::Scenario> parse_scenario(const std::string& path, const std::string& text, const Context& ctx);
// Reads and parses a file; an unreadable file is one diagnostic.
Parsed<core::Scenario> load_scenario(const std::string& path, const Context& ctx);

// Parses kernels/NAME.yaml; patch and fragment paths resolve against
// `kernels_dir` (patches under kernels_dir/patches, fragments under
// kernels_dir/configs) and must exist.
Parsed<core::KernelSpec> parse_kernel(const std::string& path, const std::string& text,
                                      const std::string& kernels_dir);
Parsed<core::KernelSpec> load_kernel(const std::string& path, const std::string& kernels_dir);

// Names of kernels/*.yaml definitions, sorted.
std::vector<std::string> list_kernel_names(const std::string& kernels_dir);

std::string format_errors(const std::vector<core::Diagnostic>& errors);

}  // namespace kab::scenario
