// kab db merge: the runs of several databases (shards of one plan run on
// several machines, or whole runs of several hosts) in one.
//
// A run is known by its uid (the "run.uid" fact every run gets when it
// begins; for runs older than that, a hash of when, where and what it ran),
// so merging is idempotent: a run already in the output adds only the
// samples it lacks (a shard resumed since the last merge), a sample already
// there is skipped when it is the same sample (plan index, arm, kernel build,
// start, status, bandwidth) and a conflict when it is not. Two runs holding
// the same shard of one plan are a conflict too. Every conflict is found
// before anything is written, and named; then nothing is written.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace kab::cli {

// A shard as `kab run --shard` takes it and its run stores it: "I/N" with
// 1 <= I <= N; nullopt for anything else ("" included).
std::optional<std::pair<int, int>> parse_shard(const std::string& text);

struct MergeOutcome {
  // The output's run id of every run of the inputs, in input order (merged
  // now or found there already).
  std::vector<std::int64_t> runs;
  int runs_added = 0, samples_added = 0, samples_present = 0, kernels_added = 0;
  // What was done, one line each, and each set of shards: which of its N are
  // there, the report command when all are.
  std::vector<std::string> lines;
};

// Merges `inputs` into `output` (created when missing). Throws Fatal (exit 2)
// naming every conflict, with nothing written; an input that is the output,
// or is not a kab database, is an error too.
MergeOutcome merge_databases(const std::string& output, const std::vector<std::string>& inputs);

}  // namespace kab::cli
