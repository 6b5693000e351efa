// The history of a nightly suite: which earlier nights make a night's
// baseline and when a regression is an alert. Pure functions over the nights
// as stored (kab nightly records each night's verdict with its run).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kab::core {

// One night of one scenario of a suite, as its run recorded it.
struct Night {
  std::int64_t run = 0;
  std::string label;          // "2026-12-03" (kab nightly --night)
  std::string commit;         // the head's full commit id
  std::string scenario_hash;  // the scenario as the night ran it (file text and repetitions)
  bool complete = false;      // the run finished (not interrupted, not failed)
  // "first" (no baseline yet), "improvement", "regression", "equivalent",
  // "inconclusive", "failed" (no sample of the head ok), "" (not judged: the
  // night was interrupted before its analysis).
  std::string verdict;
  bool alert = false;
  std::vector<std::int64_t> baseline;   // the runs it was judged against (its own run: a pinned reference)
};

// The runs of the baseline of a night: of EARLIER (oldest first, the nights
// before it), the last K that ran the same scenario (SCENARIO_HASH), finished,
// and were judged without a regression. A regressed night does not enter the
// baseline, so a regression stays one until it is fixed or the suite pinned
// anew; nights of another scenario version are never mixed in.
std::vector<std::int64_t> baseline_window(const std::vector<Night>& earlier, const std::string& scenario_hash, int k);

// How many of the last judged nights of EARLIER with the same scenario were
// regressions, back to the first that was not. Tonight's regression is an
// alert under "PERSIST nights in a row" when this + 1 >= PERSIST; failed,
// unjudged and other-scenario nights neither break nor extend the streak.
int regressions_in_a_row(const std::vector<Night>& earlier, const std::string& scenario_hash);

// The runs `kab db prune --keep-nights KEEP` deletes of one scenario's NIGHTS
// (oldest first): all but the last KEEP, except a night that regressed or
// alerted, a night in the baseline of one kept for that reason, a night in
// the newest night's baseline, and the nights tomorrow's baseline is made of
// (baseline_window of the newest night's scenario over WINDOW nights; 0 for
// a suite with a pinned reference).
std::vector<std::int64_t> nights_to_prune(const std::vector<Night>& nights, int keep, int window);

}  // namespace kab::core
