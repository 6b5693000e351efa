#include "core/sequential.h"

#include <cmath>
#include <map>
#include <mutex>
#include <stdexcept>

#include "core/stats.h"

namespace kab::core {

namespace {

constexpr double k_cap = 12;          // a boundary no statistic reaches: nothing spent
constexpr int k_intervals = 1200;     // Simpson intervals over the continuation region

double normal_pdf(double z) { return std::exp(-0.5 * z * z) / std::sqrt(2 * 3.14159265358979323846); }

// The continuation sub-density of the score S_k = Z_k·√t_k (variance t_k) on
// an even grid over (−b, b): f(s) ds = P(no crossing before or at k, S_k ∈ ds).
struct Density {
  double b = 0;
  std::vector<double> s, f, w;   // points, densities, Simpson weights (w includes h/3)
};

Density grid(double b) {
  Density d;
  d.b = b;
  const double h = 2 * b / k_intervals;
  for (int i = 0; i <= k_intervals; ++i) {
    d.s.push_back(-b + h * i);
    d.w.push_back(h / 3 * (i == 0 || i == k_intervals ? 1 : (i % 2 == 1 ? 4 : 2)));
  }
  d.f.assign(d.s.size(), 0);
  return d;
}

// P(first crossing at the next look) with score boundary b, increment variance delta.
double crossing(const Density& prev, double b, double delta) {
  const double sd = std::sqrt(delta);
  double p = 0;
  for (std::size_t i = 0; i < prev.s.size(); ++i) {
    const double u = prev.s[i];
    p += prev.w[i] * prev.f[i] * (normal_cdf((-b - u) / sd) + normal_cdf((u - b) / sd));
  }
  return p;
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
  if (!(alpha > 0 && alpha < 1)) throw std::invalid_argument("sequential design: alpha must be in (0, 1)");
  std::vector<double> c;
  Density prev;
  double t_prev = 0, spent_prev = 0;
  for (std::size_t k = 0; k < fractions.size(); ++k) {
    const double t = fractions[k];
    if (!(t > t_prev && t <= 1))
      throw std::invalid_argument("sequential design: information fractions must increase within (0, 1]");
    const double spent = obrien_fleming_spent(alpha, t);
    const double target = spent - spent_prev;
    double ck;
    if (k == 0) {
      // Z_1 is standard normal: the boundary is the plain quantile.
      ck = target < 1e-15 ? k_cap : inverse_normal_cdf(1 - target / 2);
    } else if (target < 1e-15) {
      ck = k_cap;
    } else {
      // crossing() falls as the boundary rises: bisect on c.
      double lo = 0, hi = k_cap;
      for (int it = 0; it < 60; ++it) {
        const double mid = (lo + hi) / 2;
        if (crossing(prev, mid * std::sqrt(t), t - t_prev) > target)
          lo = mid;
        else
          hi = mid;
      }
      ck = (lo + hi) / 2;
    }
    c.push_back(ck);
    // The continuation density at this look, for the next one.
    Density next = grid(ck * std::sqrt(t));
    if (k == 0) {
      for (std::size_t j = 0; j < next.s.size(); ++j) next.f[j] = normal_pdf(next.s[j] / std::sqrt(t)) / std::sqrt(t);
    } else {
      const double sd = std::sqrt(t - t_prev);
      for (std::size_t j = 0; j < next.s.size(); ++j) {
        double v = 0;
        for (std::size_t i = 0; i < prev.s.size(); ++i)
          v += prev.w[i] * prev.f[i] * normal_pdf((next.s[j] - prev.s[i]) / sd);
        next.f[j] = v / sd;
      }
    }
    prev = std::move(next);
    t_prev = t;
    spent_prev = spent;
  }
  return c;
}

std::vector<double> sequential_levels(std::span<const double> fractions, double alpha) {
  std::vector<double> levels;
  // erfc, not 1 − Φ: the first looks' levels are far below double's epsilon.
  for (double c : sequential_boundaries(fractions, alpha)) levels.push_back(std::erfc(c / std::sqrt(2.0)));
  return levels;
}

namespace {

// The levels of `looks` equally spaced looks at `alpha`, computed once per
// design: a run looks up to `looks` times, a simulation thousands of times.
const std::vector<double>& equally_spaced_levels(int looks, double alpha) {
  static std::mutex mutex;
  static std::map<std::pair<int, double>, std::vector<double>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find({looks, alpha});
  if (it == cache.end()) {
    std::vector<double> t;
    for (int k = 1; k <= looks; ++k) t.push_back(static_cast<double>(k) / looks);
    it = cache.emplace(std::pair(looks, alpha), sequential_levels(t, alpha)).first;
  }
  return it->second;
}

}  // namespace

SequentialLook sequential_look(int look, int looks, double alpha, int family) {
  if (looks < 1 || look < 1 || look > looks || family < 1)
    throw std::invalid_argument("sequential look: need 1 <= look <= looks and a family of at least 1");
  SequentialLook l;
  l.look = look;
  l.looks = looks;
  l.alpha = alpha;
  for (int j = 0; j < family; ++j) l.test_levels.push_back(equally_spaced_levels(looks, alpha / (family - j))[look - 1]);
  l.equivalence_level = equally_spaced_levels(looks, std::min(0.5, 2 * alpha / family))[look - 1];
  return l;
}

}  // namespace kab::core
