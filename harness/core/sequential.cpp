#include "core/sequential.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>

#include "core/stats.h"

namespace kab::core {

namespace {

constexpr double k_cap = 12;          // a boundary no statistic reaches: nothing spent
// The grid: points per standard deviation of the Gaussian increments it is
// integrated against (Simpson's rule on a Gaussian at σ/10 is exact to ~1e-9),
// the kernel cut where it falls below 1e-17, and bounds on the point count.
constexpr double k_per_sd = 10;
constexpr double k_reach = 9;
constexpr int k_min_intervals = 60, k_max_intervals = 6000;

double normal_pdf(double z) { return std::exp(-0.5 * z * z) / std::sqrt(2 * 3.14159265358979323846); }

// The continuation sub-density of the score S_k = Z_k·√t_k (variance t_k) on
// an even grid over (−b, b): f(s) ds = P(no crossing before or at k, S_k ∈ ds).
struct Density {
  double b = 0, h = 0;
  std::vector<double> s, f, w;   // points, densities, Simpson weights (w includes h/3)
};

Density grid(double b, double h_wanted) {
  int n = static_cast<int>(std::ceil(2 * b / h_wanted));
  n = std::clamp(n, k_min_intervals, k_max_intervals);
  n += n % 2;
  Density d;
  d.b = b;
  d.h = 2 * b / n;
  for (int i = 0; i <= n; ++i) {
    d.s.push_back(-b + d.h * i);
    d.w.push_back(d.h / 3 * (i == 0 || i == n ? 1 : (i % 2 == 1 ? 4 : 2)));
  }
  d.f.assign(d.s.size(), 0);
  return d;
}

// P(first crossing at the next look) with score boundary b, increment variance
// delta; its derivative in b into `slope`.
double crossing(const Density& prev, double b, double delta, double& slope) {
  const double sd = std::sqrt(delta);
  double p = 0, dp = 0;
  for (std::size_t i = 0; i < prev.s.size(); ++i) {
    const double u = prev.s[i], m = prev.w[i] * prev.f[i];
    p += m * (normal_cdf((-b - u) / sd) + normal_cdf((u - b) / sd));
    dp -= m * (normal_pdf((-b - u) / sd) + normal_pdf((u - b) / sd)) / sd;
  }
  slope = dp;
  return p;
}

// A design up to its look k: the look's fraction, alpha spent by it and
// boundary, and what the next look needs of the earlier ones. The look's own
// continuation density is built by the next step, whose increment sets the
// grid's spacing; so a look's boundary depends on the fractions up to it only.
struct Look {
  double t = 0, spent = 0, c = 0;
  double t_before = 0;                        // look k − 1's fraction (0 at the first)
  std::shared_ptr<const Density> before;      // look k − 1's continuation density (none at the first)
};

Look first_look(double t, double alpha) {
  Look l;
  l.t = t;
  l.spent = obrien_fleming_spent(alpha, t);
  // Z_1 is standard normal: the boundary is the plain quantile.
  l.c = l.spent < 1e-15 ? k_cap : inverse_normal_cdf(1 - l.spent / 2);
  return l;
}

Look next_look(const Look& at, double t, double alpha) {
  const double delta = t - at.t;
  // The continuation density at look k, on a grid fine for the increments
  // into it and out of it.
  const double sd_in = std::sqrt(at.t - at.t_before), sd_out = std::sqrt(delta);
  auto d = std::make_shared<Density>(grid(at.c * std::sqrt(at.t), std::min(sd_in, sd_out) / k_per_sd));
  if (!at.before) {
    for (std::size_t j = 0; j < d->s.size(); ++j) d->f[j] = normal_pdf(d->s[j] / sd_in) / sd_in;
  } else {
    const Density& p = *at.before;
    const int last = static_cast<int>(p.s.size()) - 1;
    for (std::size_t j = 0; j < d->s.size(); ++j) {
      // Only the earlier points within k_reach increments contribute.
      const int lo = std::max(0, static_cast<int>(std::floor((d->s[j] - k_reach * sd_in + p.b) / p.h)));
      const int hi = std::min(last, static_cast<int>(std::ceil((d->s[j] + k_reach * sd_in + p.b) / p.h)));
      // φ(z_i) along z_i = (s_j − s_i) / sd, falling by a each step, by
      // recurrence: φ(z − a) = φ(z)·r, r = e^(a·z − a²/2), the next r is r·e^(−a²).
      const double a = p.h / sd_in, q = std::exp(-a * a);
      double z = (d->s[j] - p.s[lo]) / sd_in, e = normal_pdf(z), r = std::exp(a * z - a * a / 2), v = 0;
      for (int i = lo; i <= hi; ++i) {
        v += p.w[i] * p.f[i] * e;
        e *= r;
        r *= q;
      }
      d->f[j] = v / sd_in;
    }
  }
  Look l;
  l.t = t;
  l.t_before = at.t;
  l.before = d;
  l.spent = obrien_fleming_spent(alpha, t);
  const double target = l.spent - at.spent;
  if (target < 1e-15) {
    l.c = k_cap;
  } else {
    // crossing() falls as the boundary rises: Newton's method on c, kept
    // inside a bracket that every step narrows (bisection where Newton would
    // leave it), from the previous boundary.
    double lo = 0, hi = k_cap, c = std::min(at.c, k_cap - 1);
    for (int it = 0; it < 100 && hi - lo > 1e-12; ++it) {
      double slope = 0;
      const double excess = crossing(*d, c * std::sqrt(t), delta, slope) - target;
      if (excess > 0)
        lo = c;
      else
        hi = c;
      const double step = slope < 0 ? excess / (slope * std::sqrt(t)) : 0;
      double next = c - step;
      if (!(next > lo && next < hi)) next = (lo + hi) / 2;
      if (std::fabs(next - c) < 1e-12) {
        c = next;
        break;
      }
      c = next;
    }
    l.c = c;
  }
  return l;
}

void check_design(std::span<const double> fractions, double alpha) {
  if (!(alpha > 0 && alpha < 1)) throw std::invalid_argument("sequential design: alpha must be in (0, 1)");
  double before = 0;
  for (double t : fractions) {
    if (!(t > before && t <= 1))
      throw std::invalid_argument("sequential design: information fractions must increase within (0, 1]");
    before = t;
  }
}

// The last look of the design `fractions` (checked, non-empty) at `alpha`.
// Every prefix's look is kept: a run's look k + 1 is one step from its look
// k, whatever information its samples brought, as in a simulation's
// thousands of runs. Cleared when it grows past what a long simulation needs.
Look design_look(std::span<const double> fractions, double alpha) {
  static std::mutex mutex;
  static std::map<std::pair<std::vector<double>, double>, Look> cache;
  std::lock_guard<std::mutex> lock(mutex);
  if (cache.size() > 20000) cache.clear();
  std::vector<double> key;
  Look l;
  for (double t : fractions) {
    key.push_back(t);
    auto it = cache.find({key, alpha});
    if (it == cache.end()) {
      l = key.size() == 1 ? first_look(t, alpha) : next_look(l, t, alpha);
      it = cache.emplace(std::pair(key, alpha), l).first;
    }
    l = it->second;
  }
  return l;
}

}  // namespace

double obrien_fleming_spent(double alpha, double t) {
  if (t <= 0) return 0;
  if (t >= 1) return alpha;
  // Each side spends its alpha / 2 as Lan and DeMets (1983) wrote it for one
  // side: 2 − 2Φ(z_{1 − (α/2)/2} / √t).
  const double side = alpha / 2;
  return 2 * (2 - 2 * normal_cdf(inverse_normal_cdf(1 - side / 2) / std::sqrt(t)));
}

std::vector<double> sequential_boundaries(std::span<const double> fractions, double alpha) {
  check_design(fractions, alpha);
  std::vector<double> c;
  for (std::size_t k = 1; k <= fractions.size(); ++k) c.push_back(design_look(fractions.first(k), alpha).c);
  return c;
}

std::vector<double> sequential_levels(std::span<const double> fractions, double alpha) {
  std::vector<double> levels;
  // erfc, not 1 − Φ: the first looks' levels are far below double's epsilon.
  for (double c : sequential_boundaries(fractions, alpha)) levels.push_back(std::erfc(c / std::sqrt(2.0)));
  return levels;
}

namespace {

// The level of the last look of `fractions` at `alpha`.
double last_level(std::span<const double> fractions, double alpha) {
  return std::erfc(design_look(fractions, alpha).c / std::sqrt(2.0));
}

}  // namespace

SequentialLook sequential_look(int look, int looks, double alpha, int family) {
  if (looks < 1 || look < 1 || look > looks || family < 1)
    throw std::invalid_argument("sequential look: need 1 <= look <= looks and a family of at least 1");
  std::vector<double> t;
  for (int k = 1; k <= look; ++k) t.push_back(static_cast<double>(k) / looks);
  return sequential_look(t, look, looks, alpha, family);
}

SequentialLook sequential_look(std::span<const double> fractions, int look, int looks, double alpha, int family) {
  if (fractions.empty() || family < 1 || look < 1 || look > looks)
    throw std::invalid_argument("sequential look: need information at one look at least and a family of at least 1");
  check_design(fractions, alpha);
  SequentialLook l;
  l.look = look;
  l.looks = looks;
  l.alpha = alpha;
  l.information = fractions.back();
  for (int j = 0; j < family; ++j) l.test_levels.push_back(last_level(fractions, alpha / (family - j)));
  l.equivalence_level = last_level(fractions, std::min(0.5, 2 * alpha / family));
  return l;
}

}  // namespace kab::core
