#include "core/stats.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <numbers>
#include <numeric>

namespace kab::core {

namespace {

constexpr double k_nan = std::numeric_limits<double>::quiet_NaN();

// Average ranks (1-based) of x ∪ y in that order, and the tie term Σ(t³ - t).
struct Ranks {
  std::vector<double> rank;
  double tie_term = 0;
  bool ties = false;
};

Ranks rank_all(std::span<const double> x, std::span<const double> y) {
  std::vector<double> all(x.begin(), x.end());
  all.insert(all.end(), y.begin(), y.end());
  std::vector<std::size_t> order(all.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return all[a] < all[b]; });
  Ranks r;
  r.rank.resize(all.size());
  for (std::size_t i = 0; i < order.size();) {
    std::size_t j = i;
    while (j + 1 < order.size() && all[order[j + 1]] == all[order[i]]) ++j;
    double avg = (static_cast<double>(i + 1) + static_cast<double>(j + 1)) / 2;
    for (std::size_t k = i; k <= j; ++k) r.rank[order[k]] = avg;
    double t = static_cast<double>(j - i + 1);
    if (t > 1) {
      r.ties = true;
      r.tie_term += t * t * t - t;
    }
    i = j + 1;
  }
  return r;
}

double u_of_x(const Ranks& r, std::size_t n1) {
  double r1 = 0;
  for (std::size_t i = 0; i < n1; ++i) r1 += r.rank[i];
  return r1 - static_cast<double>(n1) * static_cast<double>(n1 + 1) / 2;
}

// Number of arrangements giving each U = 0..n1*n2 under the null, by the
// recursion f(m, n, k) = f(m-1, n, k-n) + f(m, n-1, k) (Mann & Whitney 1947),
// swept over n with one row per m. Only additions of non-negative terms, so
// the doubles stay exact to rounding.
std::vector<double> compute_u_counts(int n1, int n2) {
  const int kmax = n1 * n2;
  std::vector<std::vector<double>> g(n1 + 1, std::vector<double>(kmax + 1, 0.0));
  for (int m = 0; m <= n1; ++m) g[m][0] = 1;  // f(m, 0, 0) = 1
  for (int n = 1; n <= n2; ++n)
    for (int m = 1; m <= n1; ++m)  // row m-1 already holds f(m-1, n, ·)
      for (int k = n; k <= m * n; ++k) g[m][k] += g[m - 1][k - n];
  return g[n1];
}

// The same counts, kept: a sequential run's looks and the tests and intervals
// of every metric ask for the same few sample sizes again and again. At most
// 256 pairs are kept (each at most (50·50 + 1) doubles); then the cache starts over.
std::vector<double> u_counts(int n1, int n2) {   // a copy: the cache may start over
  static std::mutex mutex;
  static std::map<std::pair<int, int>, std::vector<double>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find({n1, n2});
  if (it == cache.end()) {
    if (cache.size() >= 256) cache.clear();
    it = cache.emplace(std::pair(n1, n2), compute_u_counts(n1, n2)).first;
  }
  return it->second;
}

}  // namespace

double mean(std::span<const double> v) {
  if (v.empty()) return k_nan;
  return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

double median(std::span<const double> v) {
  if (v.empty()) return k_nan;
  std::vector<double> s(v.begin(), v.end());
  std::sort(s.begin(), s.end());
  std::size_t n = s.size();
  return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

double sample_sd(std::span<const double> v) {
  if (v.size() < 2) return k_nan;
  double m = mean(v), ss = 0;
  for (double x : v) ss += (x - m) * (x - m);
  return std::sqrt(ss / static_cast<double>(v.size() - 1));
}

double quantile_sorted(std::span<const double> s, double q) {
  if (s.empty()) return k_nan;
  double h = (static_cast<double>(s.size()) - 1) * std::clamp(q, 0.0, 1.0);
  auto lo = static_cast<std::size_t>(std::floor(h));
  if (lo + 1 >= s.size()) return s.back();
  return s[lo] + (h - static_cast<double>(lo)) * (s[lo + 1] - s[lo]);
}

Summary summarize(std::span<const double> v) {
  Summary s;
  s.n = static_cast<int>(v.size());
  if (v.empty()) {
    s.median = s.mean = s.sd = s.cv = s.min = s.max = k_nan;
    return s;
  }
  s.median = median(v);
  s.mean = mean(v);
  s.sd = sample_sd(v);
  s.cv = (s.mean == 0 || std::isnan(s.sd)) ? k_nan : s.sd / std::fabs(s.mean);
  auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  s.min = *lo;
  s.max = *hi;
  return s;
}

double mann_whitney_exact_p(std::span<const double> x, std::span<const double> y) {
  if (x.empty() || y.empty()) return 1;
  const int n1 = static_cast<int>(x.size()), n2 = static_cast<int>(y.size());
  Ranks r = rank_all(x, y);
  double u1 = u_of_x(r, x.size());
  double u = std::max(u1, static_cast<double>(n1) * n2 - u1);
  // P(U >= u) = P(U <= n1*n2 - u) by symmetry; summing the lower tail keeps
  // the additions among the small terms.
  const auto& counts = u_counts(n1, n2);
  double total = std::accumulate(counts.begin(), counts.end(), 0.0);
  auto upto = static_cast<long>(static_cast<double>(n1) * n2 - std::floor(u));
  double tail = 0;
  for (long k = 0; k <= upto; ++k) tail += counts[k];
  return std::min(1.0, 2 * tail / total);
}

double mann_whitney_asymptotic_p(std::span<const double> x, std::span<const double> y) {
  if (x.empty() || y.empty()) return 1;
  const double n1 = static_cast<double>(x.size()), n2 = static_cast<double>(y.size()), n = n1 + n2;
  Ranks r = rank_all(x, y);
  double u1 = u_of_x(r, x.size());
  double u = std::max(u1, n1 * n2 - u1);
  double var = n1 * n2 / 12 * ((n + 1) - r.tie_term / (n * (n - 1)));
  if (!(var > 0)) return 1;
  double z = (u - n1 * n2 / 2 - 0.5) / std::sqrt(var);
  // 2 · P(Z > z) for a standard normal Z.
  return std::min(1.0, std::erfc(z / std::sqrt(2.0)));
}

UTest mann_whitney_u(std::span<const double> x, std::span<const double> y) {
  UTest t;
  if (x.empty() || y.empty()) return t;
  Ranks r = rank_all(x, y);
  t.u = u_of_x(r, x.size());
  t.ties = r.ties;
  bool exact = !r.ties && x.size() <= static_cast<std::size_t>(k_exact_max_n) &&
               y.size() <= static_cast<std::size_t>(k_exact_max_n);
  t.method = exact ? UTestMethod::exact : UTestMethod::asymptotic;
  t.p = exact ? mann_whitney_exact_p(x, y) : mann_whitney_asymptotic_p(x, y);
  return t;
}

double min_two_sided_p(int n1, int n2) {
  if (n1 <= 0 || n2 <= 0) return 1;
  // C(n1+n2, n1) as a running product; fine in doubles for any n kab sees.
  double c = 1;
  for (int i = 1; i <= n1; ++i) c = c * (n2 + i) / i;
  return std::min(1.0, 2 / c);
}

std::vector<double> holm_adjust(std::span<const double> p) {
  const std::size_t m = p.size();
  std::vector<std::size_t> order(m);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return p[a] < p[b]; });
  std::vector<double> adj(m);
  double running = 0;
  for (std::size_t rank = 0; rank < m; ++rank) {
    std::size_t i = order[rank];
    running = std::max(running, std::min(1.0, static_cast<double>(m - rank) * p[i]));
    adj[i] = running;
  }
  return adj;
}

std::uint64_t SplitMix64::next() {
  std::uint64_t z = (m_state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::uint64_t SplitMix64::below(std::uint64_t n) {
  return static_cast<std::uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
}

Interval bootstrap_median_ratio_ci(std::span<const double> base, std::span<const double> candidate,
                                   const BootstrapOptions& options) {
  Interval none{k_nan, k_nan};
  if (base.empty() || candidate.empty() || options.resamples <= 0) return none;
  SplitMix64 rng(options.seed);
  std::vector<double> ratios;
  ratios.reserve(static_cast<std::size_t>(options.resamples));
  std::vector<double> b(base.size()), c(candidate.size());
  auto resample_median = [&](std::span<const double> from, std::vector<double>& into) {
    for (auto& v : into) v = from[rng.below(from.size())];
    std::size_t n = into.size();
    std::nth_element(into.begin(), into.begin() + n / 2, into.end());
    double hi = into[n / 2];
    if (n % 2) return hi;
    double lo = *std::max_element(into.begin(), into.begin() + n / 2);
    return (lo + hi) / 2;
  };
  for (int i = 0; i < options.resamples; ++i) {
    double mb = resample_median(base, b);
    double mc = resample_median(candidate, c);
    if (mb != 0 && std::isfinite(mc / mb)) ratios.push_back(mc / mb);
  }
  if (ratios.size() * 2 < static_cast<std::size_t>(options.resamples)) return none;
  std::sort(ratios.begin(), ratios.end());
  double tail = (1 - options.confidence) / 2;
  return {quantile_sorted(ratios, tail), quantile_sorted(ratios, 1 - tail)};
}

namespace {

// All pairwise log(c) - log(b); empty when a value is not positive.
std::vector<double> log_differences(std::span<const double> base, std::span<const double> candidate) {
  std::vector<double> d;
  d.reserve(base.size() * candidate.size());
  for (double b : base)
    for (double c : candidate) {
      if (!(b > 0) || !(c > 0)) return {};
      d.push_back(std::log(c) - std::log(b));
    }
  return d;
}

// Inverse of the standard normal CDF (Acklam's rational approximation refined
// by one Halley step with std::erfc: accurate to ~1e-15).
double normal_quantile(double p) {
  static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                             1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                             6.680131188771972e+01,  -1.328068155288572e+01};
  static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                             -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
  static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                             3.754408661907416e+00};
  double x;
  if (p < 0.02425) {
    double q = std::sqrt(-2 * std::log(p));
    x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else if (p > 1 - 0.02425) {
    double q = std::sqrt(-2 * std::log(1 - p));
    x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else {
    double q = p - 0.5, r = q * q;
    x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
  }
  double e = 0.5 * std::erfc(-x / std::sqrt(2.0)) - p;
  double u = e * std::sqrt(2 * std::numbers::pi) * std::exp(x * x / 2);
  return x - u / (1 + x * u / 2);
}

}  // namespace

double inverse_normal_cdf(double p) { return normal_quantile(p); }

double normal_cdf(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }

double hodges_lehmann_ratio(std::span<const double> base, std::span<const double> candidate) {
  if (base.empty() || candidate.empty()) return k_nan;
  auto d = log_differences(base, candidate);
  if (d.empty()) return k_nan;
  return std::exp(median(d));
}

Interval hodges_lehmann_ratio_ci(std::span<const double> base, std::span<const double> candidate,
                                 double confidence) {
  Interval none{k_nan, k_nan};
  if (base.empty() || candidate.empty()) return none;
  auto d = log_differences(base, candidate);
  if (d.empty()) return none;
  std::sort(d.begin(), d.end());
  const int m = static_cast<int>(base.size()), n = static_cast<int>(candidate.size());
  const long mn = static_cast<long>(m) * n;
  const double tail = (1 - confidence) / 2;
  long q = 0;
  if (m <= k_exact_max_n && n <= k_exact_max_n) {
    const auto& counts = u_counts(m, n);
    double total = std::accumulate(counts.begin(), counts.end(), 0.0), cum = 0;
    // Smallest q with P(U <= q) >= tail; a relative slack keeps exact ties of
    // the two sides (e.g. 6.3/252 vs 0.025) from flipping on rounding.
    for (q = 0; q < static_cast<long>(counts.size()); ++q) {
      cum += counts[q];
      if (cum / total >= tail * (1 - 1e-12)) break;
    }
  } else {
    double z = normal_quantile(1 - tail);
    q = static_cast<long>(std::floor(static_cast<double>(mn) / 2 -
                                     z * std::sqrt(static_cast<double>(mn) * (m + n + 1) / 12)));
  }
  q = std::clamp(q, 1L, mn);
  return {std::exp(d[q - 1]), std::exp(d[mn - q])};
}

UTest van_elteren(std::span<const Stratum> strata) {
  UTest t;
  t.method = UTestMethod::stratified;
  double w = 0, var = 0;
  for (const auto& st : strata) {
    if (st.base.empty() || st.candidate.empty()) continue;
    const double n = static_cast<double>(st.candidate.size()), m = static_cast<double>(st.base.size()), big = n + m;
    Ranks r = rank_all(st.candidate, st.base);   // the candidate first: its rank sum
    t.ties = t.ties || r.ties;
    double rank_sum = 0;
    for (std::size_t i = 0; i < st.candidate.size(); ++i) rank_sum += r.rank[i];
    w += (rank_sum - n * (big + 1) / 2) / (big + 1);
    const double tie = big > 1 ? r.tie_term / (big * (big - 1)) : 0;
    var += n * m * (big + 1 - tie) / (12 * (big + 1) * (big + 1));
  }
  t.u = w;
  t.p = var > 0 ? std::min(1.0, 2 * (1 - normal_cdf(std::fabs(w) / std::sqrt(var)))) : 1;
  return t;
}

namespace {

// On logs: the median of the within-stratum pairwise differences.
double stratified_hl(const std::vector<std::vector<double>>& base, const std::vector<std::vector<double>>& cand,
                     std::vector<double>& scratch) {
  scratch.clear();
  for (std::size_t s = 0; s < base.size(); ++s)
    for (double c : cand[s])
      for (double b : base[s]) scratch.push_back(c - b);
  if (scratch.empty()) return k_nan;
  return std::exp(median(scratch));
}

// The strata with both arms, as logs; false when a value is not positive.
bool split(std::span<const Stratum> strata, std::vector<std::vector<double>>& base,
           std::vector<std::vector<double>>& cand) {
  auto logs = [](std::span<const double> v, std::vector<double>& out) {
    for (double x : v) {
      if (!(x > 0)) return false;
      out.push_back(std::log(x));
    }
    return true;
  };
  for (const auto& st : strata) {
    if (st.base.empty() || st.candidate.empty()) continue;
    base.emplace_back();
    cand.emplace_back();
    if (!logs(st.base, base.back()) || !logs(st.candidate, cand.back())) return false;
  }
  return true;
}

}  // namespace

double stratified_hodges_lehmann_ratio(std::span<const Stratum> strata) {
  std::vector<std::vector<double>> base, cand;
  if (!split(strata, base, cand)) return k_nan;
  std::vector<double> scratch;
  return stratified_hl(base, cand, scratch);
}

Interval stratified_hodges_lehmann_ci(std::span<const Stratum> strata, const BootstrapOptions& o) {
  const Interval none{k_nan, k_nan};
  std::vector<std::vector<double>> base, cand;
  std::vector<double> scratch;
  if (!split(strata, base, cand) || !std::isfinite(stratified_hl(base, cand, scratch))) return none;
  SplitMix64 rng(o.seed);
  std::vector<std::vector<double>> rb = base, rc = cand;
  std::vector<double> estimates;
  estimates.reserve(static_cast<std::size_t>(std::max(o.resamples, 0)));
  for (int k = 0; k < o.resamples; ++k) {
    for (std::size_t s = 0; s < base.size(); ++s) {
      for (auto& v : rb[s]) v = base[s][rng.below(base[s].size())];
      for (auto& v : rc[s]) v = cand[s][rng.below(cand[s].size())];
    }
    estimates.push_back(stratified_hl(rb, rc, scratch));
  }
  if (estimates.empty()) return none;
  std::sort(estimates.begin(), estimates.end());
  const double tail = (1 - o.confidence) / 2;
  return {quantile_sorted(estimates, tail), quantile_sorted(estimates, 1 - tail)};
}

}  // namespace kab::core
