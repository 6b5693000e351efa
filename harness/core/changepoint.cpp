#include "core/changepoint.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/stats.h"

namespace kab::core {

namespace {

// Midranks (1-based) of the values.
std::vector<double> midranks(std::span<const double> x) {
  const std::size_t n = x.size();
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return x[a] < x[b]; });
  std::vector<double> r(n);
  for (std::size_t i = 0; i < n;) {
    std::size_t j = i;
    while (j + 1 < n && x[order[j + 1]] == x[order[i]]) ++j;
    const double rank = (static_cast<double>(i + j) + 2) / 2;
    for (std::size_t k = i; k <= j; ++k) r[order[k]] = rank;
    i = j + 1;
  }
  return r;
}

// K and the split reaching it (the first index of the second part).
std::pair<double, int> pettitt(const std::vector<double>& ranks) {
  const double n = static_cast<double>(ranks.size());
  double w = 0, best = -1;
  int at = -1;
  for (std::size_t t = 1; t < ranks.size(); ++t) {
    w += ranks[t - 1];
    const double u = std::abs(2 * w - static_cast<double>(t) * (n + 1));
    if (u > best + 1e-9) {
      best = u;
      at = static_cast<int>(t);
    }
  }
  return {best, at};
}

// Mann–Kendall's S of a segment against time: the sum over pairs i < j of sign(x_j − x_i).
double kendall_s(std::span<const double> x) {
  double s = 0;
  for (std::size_t i = 0; i < x.size(); ++i)
    for (std::size_t j = i + 1; j < x.size(); ++j) s += (x[j] > x[i]) - (x[j] < x[i]);
  return s;
}

// Its variance under no trend (no ties).
double kendall_var(std::size_t n) {
  const double m = static_cast<double>(n);
  return m * (m - 1) * (2 * m + 5) / 18;
}

}  // namespace

ChangePoint detect_change_point(std::span<const double> series, const ChangePointOptions& o) {
  ChangePoint out;
  const int n = static_cast<int>(series.size());
  if (n < 2 * std::max(1, o.min_segment) || n < 4) {
    out.kind = "too_short";
    return out;
  }
  std::vector<double> ranks = midranks(series);
  const auto [k, at] = pettitt(ranks);
  out.statistic = k;
  // The permutation distribution of K: the ranks shuffled (Fisher–Yates).
  SplitMix64 rng(o.seed);
  int as_large = 0;
  std::vector<double> shuffled = ranks;
  for (int b = 0; b < o.permutations; ++b) {
    for (std::size_t i = shuffled.size() - 1; i > 0; --i) std::swap(shuffled[i], shuffled[rng.below(i + 1)]);
    if (pettitt(shuffled).first >= k - 1e-9) ++as_large;
  }
  out.p = (1.0 + as_large) / (1.0 + o.permutations);
  if (out.p >= o.alpha) return out;
  // Where: the split that best divides the ranks into two levels (least
  // squares; for a clean step the same as K's, more precise when the levels overlap).
  int where = at;
  double best = -1;
  const double total = std::accumulate(ranks.begin(), ranks.end(), 0.0);
  double left = 0;
  for (int t = 1; t < n; ++t) {
    left += ranks[static_cast<std::size_t>(t - 1)];
    const double ml = left / t, mr = (total - left) / (n - t);
    const double between = t * ml * ml + (n - t) * mr * mr;   // maximal when the within-level SSE is minimal
    if (between > best + 1e-9) {
      best = between;
      where = t;
    }
  }
  out.index = where;
  const int at_split = where;
  const std::span<const double> before = series.first(static_cast<std::size_t>(at_split));
  const std::span<const double> after = series.subspan(static_cast<std::size_t>(at_split));
  const double mb = median(before), ma = median(after);
  out.change = mb == 0 ? 0 : ma / mb - 1;
  if (n - at_split < o.min_segment)
    out.kind = "too_recent";
  else if (at_split < o.min_segment)
    out.kind = "too_early";
  else if (const double z = (kendall_s(before) + kendall_s(after)) /
                            std::sqrt(kendall_var(before.size()) + kendall_var(after.size()));
           std::abs(z) > 2.5758 && (z > 0) == (ma > mb))
    // Both levels still move the way the series moved (Mann–Kendall within
    // the segments, two-sided 1%): not two levels, a slope.
    out.kind = "drift";
  else
    out.kind = "step";
  return out;
}

}  // namespace kab::core
