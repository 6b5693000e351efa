// The correctness gate's definition (scenarios/gate/gate.yaml): named stress
// families, each a fio job file, and the share's backend configurations. A
// (kernel, family) becomes an ordinary one-arm scenario, so the gate runs
// through the same path as every measurement and stores the same samples.
#pragma once

#include <string>
#include <vector>

#include "scenario/scenario.h"

namespace kab::scenario {

struct GateFamily {
  std::string name;
  std::string job_file;   // absolute
  std::string host_check; // absolute: fio.host_check of its scenario ("" = none)
  std::string summary;
  std::string memory;     // the guest's memory for this family ("" = the definition's)
  std::string expect_console;   // guest.expect_console of its scenario ("" = none)
  std::string memory_cgroup;    // guest.memory_cgroup of its scenario ("" = none)
  std::vector<std::string> backends;   // the backends it can run against ("" = all); a shared
                                       // mapping cannot be made on a FOPEN_DIRECT_IO file (cache=none)
};

struct GateDefinition {
  std::string path;
  std::vector<GateFamily> families;
  std::vector<std::string> backends;        // names, in file order
  std::vector<std::string> backend_yaml;    // each backend's map as written
  std::string guest_yaml;                   // the guest map as written ("" = none)
};

// A family's name: letters, digits, '-' and '_' (it names files of a bundle,
// and words of the command that reruns a check).
bool gate_family_name_ok(const std::string& name);

// Reads a gate definition; job files resolve against its directory and must exist.
Parsed<GateDefinition> parse_gate(const std::string& path, const std::string& text);
Parsed<GateDefinition> load_gate(const std::string& path);

// What one family of a gate runs: the kernel's variant, the chosen backends,
// fio's runtime in every job section, the guest's timeout.
struct GateRun {
  std::string kernel, variant;
  std::string platform;                // guest.platform ("" = the definition's)
  std::vector<std::string> backends;   // names from the definition
  int runtime_s = 10;
  int timeout_s = 600;
};

// The family as a scenario (YAML text, to be parsed with Context::min_arms 1):
// name gate-FAMILY, one arm "gate", one repetition.
std::string gate_scenario_text(const GateDefinition& def, const GateFamily& family, const GateRun& run);

}  // namespace kab::scenario
