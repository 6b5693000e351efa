// From stored samples to reports, shared by kab compare, kab report and kab
// nightly: the analysis with the scenario's settings, the report's context
// (environment, kernels, gates), every format written into --out and one on stdout.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/analyzer.h"
#include "core/model.h"
#include "store/store.h"

namespace kab::cli {

// A ref as a kernel name: "v6.1", "HEAD~2" → "HEAD_2".
std::string ref_name(const std::string& ref);

struct Output {
  std::string format = "text";   // printed on stdout
  std::string out_dir;           // every format written here ("" = none)
};

// What a command adds to a report: warnings, facts of the environment.
struct ReportExtras {
  std::vector<core::Warning> warnings;
  std::vector<std::pair<std::string, std::string>> facts;
};

// The samples of RUNS, in run order.
std::vector<core::Sample> run_samples(store::ResultStore& db, const std::vector<std::int64_t>& runs);

// The context of a comparison: environment of the runs, kernels (from SAMPLES' build keys), job, command.
core::ReportContext context_for(store::ResultStore& db, const std::vector<std::int64_t>& runs, const core::Scenario& s,
                                const core::Comparison& c, const std::string& command,
                                const std::vector<core::Sample>& samples);

// The samples of RUNS, base against candidate, with the scenario's settings
// (several runs: the run as a block).
core::Comparison analyse(store::ResultStore& db, const std::vector<std::int64_t>& runs, const core::Scenario& s,
                         const std::string& base, const std::string& candidate);
// The same of given SAMPLES (which come from RUNS).
core::Comparison analyse_samples(store::ResultStore& db, const std::vector<std::int64_t>& runs,
                                 const std::vector<core::Sample>& samples, const core::Scenario& s,
                                 const std::string& base, const std::string& candidate, bool block_by_run);

// Adds EXTRAS and the environment facts in which RUNS differ to C, writes
// every format into out.out_dir, prints out.format on stdout. Returns the
// exit code: 1 for a regression or a correctness failure, else 0.
int report_comparison(store::ResultStore& db, const std::vector<std::int64_t>& runs,
                      const std::vector<core::Sample>& samples, const core::Scenario& s, core::Comparison c,
                      const Output& out, const std::string& command, const ReportExtras& extras = {});
int analyse_and_report(store::ResultStore& db, const std::vector<std::int64_t>& runs, const core::Scenario& s,
                       const std::string& base, const std::string& candidate, const Output& out,
                       const std::string& command, const ReportExtras& extras = {});

}  // namespace kab::cli
