// The statistics kab stands behind (DESIGN.md): descriptive summaries, the
// two-sided Mann–Whitney U test, a seeded bootstrap confidence interval for the
// ratio of medians, the Hodges–Lehmann ratio and Holm's step-down correction.
// Pure functions over plain numbers; no I/O, no randomness that is not seeded.
// Checked against SciPy by tests/unit/core/test_stats.cpp with the values in
// tests/data/stats/reference.json (made by tests/data/stats/make_reference.sh).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace kab::core {

// n, median, mean, sample standard deviation (n - 1 in the denominator), the
// coefficient of variation sd / mean, min and max. Empty input gives n = 0 and
// NaN everywhere; n = 1 gives sd = cv = NaN; cv is NaN when the mean is 0.
struct Summary {
  int n = 0;
  double median = 0, mean = 0, sd = 0, cv = 0, min = 0, max = 0;
};
Summary summarize(std::span<const double> values);

// Median as numpy defines it (the mean of the two middle values for even n);
// NaN for empty input.
double median(std::span<const double> values);
double mean(std::span<const double> values);         // NaN for empty input
double sample_sd(std::span<const double> values);    // NaN for n < 2

// Linear-interpolation quantile of already sorted values (numpy's default,
// "type 7"), q in [0, 1]. NaN for empty input.
double quantile_sorted(std::span<const double> sorted, double q);

enum class UTestMethod { exact, asymptotic, stratified };

// Above this many values in either sample the exact distribution is not used.
// Up to it the exact counts are summed in doubles without cancellation, which
// stays exact to rounding (SciPy agrees to 1e-12 at 40 × 35).
inline constexpr int k_exact_max_n = 50;

struct UTest {
  double u = 0;           // U of x: the number of pairs (x_i, y_j) with x_i > y_j, ties counting 1/2
  double p = 1;           // two-sided p-value
  UTestMethod method = UTestMethod::exact;
  bool ties = false;      // some value occurs more than once in x ∪ y
};

// Two-sided Mann–Whitney U test of x against y. Exact null distribution when
// there are no ties and both samples have at most k_exact_max_n values;
// otherwise the normal approximation with tie correction and continuity
// correction, equal to scipy.stats.mannwhitneyu(method='asymptotic',
// use_continuity=True). An empty sample gives p = 1 (no evidence). When all
// values are equal the approximation's variance is 0 and p = 1.
UTest mann_whitney_u(std::span<const double> x, std::span<const double> y);

// The two methods on their own, for tests and for callers who want one.
// mann_whitney_exact_p ignores ties (as SciPy does): only meaningful without them.
double mann_whitney_exact_p(std::span<const double> x, std::span<const double> y);
double mann_whitney_asymptotic_p(std::span<const double> x, std::span<const double> y);

// The smallest two-sided p-value the exact test can produce for sample sizes
// n1 and n2: 2 / C(n1 + n2, n1), capped at 1; 1 when either is 0. For n1 = n2 = 2
// it is 1/3, so such a comparison can never be significant at alpha = 0.05.
double min_two_sided_p(int n1, int n2);

// Holm's step-down adjustment of a family of p-values (the same order out as
// in): the i-th smallest (0-based) is multiplied by m - i, made monotone and
// capped at 1.
std::vector<double> holm_adjust(std::span<const double> p);

// splitmix64 (Steele, Lea, Flood 2014): small, fast and the same on every
// platform, unlike the std:: distributions whose output is implementation-defined.
class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t seed) : m_state(seed) {}
  std::uint64_t next();
  // Uniform in [0, n) by multiply-and-shift (bias below n / 2^64). n > 0.
  std::uint64_t below(std::uint64_t n);

 private:
  std::uint64_t m_state;
};

struct Interval {
  double lo = 0, hi = 0;
};

struct BootstrapOptions {
  int resamples = 10000;
  double confidence = 0.95;
  std::uint64_t seed = 1;
};

// Percentile bootstrap interval for median(candidate) / median(base): each
// resample draws both arms independently with replacement (base first, then
// candidate, from one SplitMix64 stream seeded with options.seed), so the same
// inputs and seed always give the same interval. Resamples whose base median is
// 0 are dropped. NaN bounds when an arm is empty or more than half the
// resamples had to be dropped.
Interval bootstrap_median_ratio_ci(std::span<const double> base, std::span<const double> candidate,
                                   const BootstrapOptions& options = {});

// The standard normal distribution function Φ(z).
double normal_cdf(double z);

// The standard normal quantile: P(Z <= inverse_normal_cdf(p)) = p, 0 < p < 1.
double inverse_normal_cdf(double p);

// Hodges–Lehmann estimate of the ratio candidate / base: exp of the median of
// all pairwise log(candidate_j) - log(base_i). NaN when an arm is empty or a
// value is not positive.
double hodges_lehmann_ratio(std::span<const double> base, std::span<const double> candidate);

// The distribution-free confidence interval that goes with it (the one R's
// wilcox.test(conf.int = TRUE) gives, on the log scale): with the m·n pairwise
// differences d sorted and q the smallest integer with P(U <= q) >= (1 - confidence) / 2,
// the interval is exp([d_q, d_{mn+1-q}]) (1-based; q raised to 1 when 0). The
// critical value comes from the exact null distribution of U when both
// samples have at most k_exact_max_n values (ties are not corrected for),
// otherwise from the normal approximation. Its coverage is at least
// `confidence` under a shift model on the log scale; with tiny samples it can
// be the whole range of pairwise ratios. NaN bounds as for hodges_lehmann_ratio.
Interval hodges_lehmann_ratio_ci(std::span<const double> base, std::span<const double> candidate,
                                 double confidence = 0.95);

// Runs pooled with the run as a block: each stratum is one run's base and
// candidate values. Only comparisons within a run count, so a run that was
// faster throughout (another host, another day) shifts neither arm against
// the other, however unevenly the arms are spread over the runs.
struct Stratum {
  std::span<const double> base, candidate;
};

// van Elteren's stratified Wilcoxon–Mann–Whitney test (van Elteren 1960;
// Lehmann, "Nonparametrics", 1975, §3.3): W = Σ_s (R_s − n_s(N_s + 1)/2) / (N_s + 1),
// R_s the rank sum of the candidate within stratum s (midranks), with
// Var W = Σ_s n_s m_s (N_s + 1 − T_s / (N_s (N_s − 1))) / (12 (N_s + 1)²), T_s
// the stratum's Σ(t³ − t) over ties; two-sided p from the normal distribution,
// no continuity correction. Strata with an empty arm carry no information
// and are skipped. u is W (positive: the candidate ranks higher); method
// stratified. p = 1 when no stratum has both arms or the variance is 0.
UTest van_elteren(std::span<const Stratum> strata);

// Hodges–Lehmann ratio within strata: exp of the median of the pairwise
// log(candidate_j) − log(base_i) of pairs from the same stratum. NaN when no
// stratum has both arms or a value is not positive.
double stratified_hodges_lehmann_ratio(std::span<const Stratum> strata);

// Its percentile bootstrap interval: each resample draws every stratum's base
// and candidate with replacement within the stratum (one SplitMix64 stream
// seeded with options.seed, strata in order, base first). NaN bounds as for
// the estimate.
Interval stratified_hodges_lehmann_ci(std::span<const Stratum> strata, const BootstrapOptions& options = {});

}  // namespace kab::core
