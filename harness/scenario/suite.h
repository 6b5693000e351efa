// A nightly suite (kab nightly SUITE): the git tree and ref to follow, the
// scenarios each night runs on the ref's head, what a night is compared with
// (the last nights, or a pinned reference run beside the head every night)
// and when a change is an alert. Parsed with positioned diagnostics like a
// scenario; git itself (does the tree exist, do the refs resolve) is checked
// by the command, before anything is built.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "scenario/scenario.h"

namespace kab::scenario {

struct Suite {
  std::string path;
  std::string name;             // `name:`, else the file's stem; names its nights in the store
  std::string tree;             // the git repository (absolute)
  std::string ref;              // the branch (or any ref) followed
  std::string base;             // a ref the head descends from: the head is built as base + the
                                // commits base..head in base's lane (a night recompiles what changed);
                                // "" = the head's tree exported whole
  std::string kernel = "stock-6.1";   // the definition whose config (fragments) the head is built with
  std::vector<std::string> scenarios; // scenario files (absolute)
  int repetitions = 0;          // samples per arm and cell each night; 0 = the scenario's
  // The baseline: the samples of the last `nights` nights whose head did not
  // regress, or (`reference` set) a pinned ref run interleaved with the head
  // in every night's own run.
  int nights = 5;
  std::string reference;
  // The alert: a regression of the primary metric (|change| >= min_effect at
  // alpha, Holm over the cells) in `persist` nights in a row. min_effect and
  // alpha < 0: the scenario's.
  double min_effect = -1;
  double alpha = -1;
  int persist = 1;
};

// Scenario paths are resolved against the suite's directory, then SCENARIOS_DIR.
Parsed<Suite> parse_suite(const std::string& path, const std::string& text, const std::string& scenarios_dir);
Parsed<Suite> load_suite(const std::string& path, const std::string& scenarios_dir);

}  // namespace kab::scenario
