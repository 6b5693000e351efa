// A step in a series of nights: Pettitt's rank statistic, K = max over the
// split t of |U_t|, U_t = 2·(rank sum of the first t values) − t(n+1), with
// its p-value by permutation (seeded: the same series always gives the same
// answer). Under no change every order of the values is equally likely, so a
// series without a step raises an alarm with probability alpha — the stated
// false-alarm rate, per series and scan, whatever the noise's distribution.
// Ranks make one wild night move U_t by at most 2(n−1): an outlier is not a step.
//
// A significant split is then told apart from what is not a step:
//   step        both sides hold min_segment nights or more and each is level
//   drift       within both sides the values still move the way the series
//               moved (Mann–Kendall's S of the two sides pooled, two-sided 1%):
//               a slope, not two levels
//   too_recent  the new level has fewer than min_segment nights: not yet a
//               level (reachable only when min_segment is large: a short tail
//               moves K by at most its length × n, rarely significant)
//   too_early   the old level has fewer than min_segment nights
//   none        not significant at alpha (or too few nights to test: too_short)
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace kab::core {

struct ChangePointOptions {
  double alpha = 0.01;
  int min_segment = 2;
  int permutations = 1999;
  std::uint64_t seed = 1;
};

struct ChangePoint {
  std::string kind = "none";   // step | drift | too_recent | too_early | none | too_short
  int index = -1;              // the first value of the new level (0-based); -1 when none
  double p = 1;                // permutation p-value of K
  double statistic = 0;        // Pettitt's K
  double change = 0;           // median after / median before − 1
};

ChangePoint detect_change_point(std::span<const double> series, const ChangePointOptions& options = {});

}  // namespace kab::core
