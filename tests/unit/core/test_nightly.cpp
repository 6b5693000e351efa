#include <catch2/catch.hpp>
#include <vector>

#include "core/nightly.h"

using namespace kab::core;

namespace {

Night night(std::int64_t run, const std::string& verdict, const std::string& hash = "h", bool complete = true) {
  Night n;
  n.run = run;
  n.label = "n" + std::to_string(run);
  n.scenario_hash = hash;
  n.complete = complete;
  n.verdict = verdict;
  return n;
}

// The alert rule as kab nightly applies it: tonight's regression and the streak before it.
bool regression_persists(const std::vector<Night>& earlier, const std::string& hash, int persist) {
  return regressions_in_a_row(earlier, hash) + 1 >= persist;
}

}  // namespace

TEST_CASE("nightly: the baseline is the last K judged nights of the same scenario that did not regress",
          "[core][nightly]") {
  CHECK(baseline_window({}, "h", 5).empty());
  const std::vector<Night> nights = {night(1, "first"),       night(2, "equivalent"), night(3, "regression"),
                                     night(4, "inconclusive", "other"), night(5, "failed"),
                                     night(6, "", "h", false),  night(7, "improvement"), night(8, "inconclusive")};
  CHECK(baseline_window(nights, "h", 5) == std::vector<std::int64_t>{1, 2, 7, 8});
  CHECK(baseline_window(nights, "h", 2) == std::vector<std::int64_t>{7, 8});
  CHECK(baseline_window(nights, "other", 5) == std::vector<std::int64_t>{4});
  // A night judged but not complete (interrupted after its analysis) is not a baseline.
  CHECK(baseline_window({night(1, "equivalent", "h", false)}, "h", 5).empty());
}

TEST_CASE("nightly: a regression is an alert once it persisted the suite's nights in a row", "[core][nightly]") {
  CHECK(regression_persists({}, "h", 1));
  CHECK_FALSE(regression_persists({}, "h", 2));
  CHECK(regression_persists({night(1, "equivalent"), night(2, "regression")}, "h", 2));
  CHECK_FALSE(regression_persists({night(1, "regression"), night(2, "equivalent")}, "h", 2));
  CHECK_FALSE(regression_persists({night(1, "equivalent"), night(2, "regression")}, "h", 3));
  CHECK(regression_persists({night(1, "regression"), night(2, "regression")}, "h", 3));
  // Failed, unjudged and other-scenario nights neither break nor extend a streak.
  CHECK(regression_persists({night(1, "regression"), night(2, "failed"), night(3, "", "h", false),
                             night(4, "equivalent", "other")},
                            "h", 2));
}

TEST_CASE("nightly: prune keeps the last nights, regressions, their baselines and the newest night's baseline",
          "[core][nightly]") {
  std::vector<Night> nights;
  for (int i = 1; i <= 12; ++i) nights.push_back(night(i, i == 1 ? "first" : "inconclusive"));
  nights[4].verdict = "regression";          // night 5, judged against nights 2-4
  nights[4].baseline = {2, 3, 4};
  nights[11].baseline = {7, 8, 9, 10, 11};   // the newest night's baseline
  CHECK(nights_to_prune(nights, 3, 0) == std::vector<std::int64_t>{1, 6});
  // An alert without a regression verdict (never stored so, but kept all the same).
  nights[0].alert = true;
  CHECK(nights_to_prune(nights, 3, 0) == std::vector<std::int64_t>{6});
  CHECK(nights_to_prune(nights, 12, 0).empty());
  CHECK(nights_to_prune({}, 3, 5).empty());
  // The newest night failed (no baseline of its own): tomorrow's baseline,
  // the last 5 judged nights that did not regress, is kept all the same.
  std::vector<Night> failed;
  for (int i = 1; i <= 10; ++i) failed.push_back(night(i, "inconclusive"));
  failed.back().verdict = "failed";
  CHECK(nights_to_prune(failed, 1, 5) == std::vector<std::int64_t>{1, 2, 3, 4});   // 5-9 and 10 kept
  CHECK(nights_to_prune(failed, 1, 0) == std::vector<std::int64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9});
}
