// kab's statistics against SciPy: tests/data/stats/reference.json holds literal
// data sets and what scipy.stats / numpy computed for them; it is produced by
// tests/data/stats/make_reference.sh (Debian's python3-scipy 1.10).
#include <catch2/catch.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/sequential.h"
#include "core/stats.h"

using namespace kab::core;
using nlohmann::json;

namespace {

const json& reference() {
  static const json j = [] {
    std::ifstream in(std::string(KAB_TEST_DATA) + "/stats/reference.json");
    REQUIRE(in);
    return json::parse(in);
  }();
  return j;
}

std::vector<double> doubles(const json& a) { return a.get<std::vector<double>>(); }

bool close(double a, double b, double tol) { return std::fabs(a - b) <= tol * std::max(1.0, std::fabs(b)); }

}  // namespace

TEST_CASE("descriptive statistics match numpy", "[stats]") {
  for (const auto& d : reference()["datasets"]) {
    for (const char* side : {"x", "y"}) {
      auto v = doubles(d[side]);
      const auto& ref = d[std::string(side) + "_stats"];
      INFO(d["name"].get<std::string>() << " " << side);
      Summary s = summarize(v);
      CHECK(s.n == ref["n"].get<int>());
      CHECK(close(s.median, ref["median"], 1e-12));
      CHECK(close(s.mean, ref["mean"], 1e-12));
      CHECK(s.min == ref["min"].get<double>());
      CHECK(s.max == ref["max"].get<double>());
      if (ref["sd"].is_null()) {
        CHECK(std::isnan(s.sd));
        CHECK(std::isnan(s.cv));
      } else {
        CHECK(close(s.sd, ref["sd"], 1e-12));
        CHECK(close(s.cv, ref["sd"].get<double>() / ref["mean"].get<double>(), 1e-12));
      }
    }
  }
  SECTION("empty input is NaN, not 0") {
    Summary s = summarize({});
    CHECK(s.n == 0);
    CHECK(std::isnan(s.median));
    CHECK(std::isnan(s.mean));
  }
  SECTION("quantile interpolates like numpy") {
    std::vector<double> v{1, 2, 3, 4};
    CHECK(quantile_sorted(v, 0.25) == Approx(1.75));
    CHECK(quantile_sorted(v, 0) == 1);
    CHECK(quantile_sorted(v, 1) == 4);
  }
}

TEST_CASE("Mann-Whitney U matches scipy.stats.mannwhitneyu", "[stats]") {
  int exact_sets = 0, asymptotic_sets = 0;
  for (const auto& d : reference()["datasets"]) {
    auto x = doubles(d["x"]), y = doubles(d["y"]);
    INFO(d["name"].get<std::string>());
    UTest t = mann_whitney_u(x, y);
    CHECK(t.u == Approx(d["u_x"].get<double>()).margin(1e-9));
    CHECK(t.ties == d["ties"].get<bool>());
    CHECK(close(mann_whitney_asymptotic_p(x, y), d["p_asymptotic"], 1e-6));
    if (!d["p_exact"].is_null()) CHECK(close(mann_whitney_exact_p(x, y), d["p_exact"], 1e-9));
    // The automatic choice: exact without ties up to k_exact_max_n per arm.
    bool want_exact = !d["ties"].get<bool>() && x.size() <= k_exact_max_n && y.size() <= k_exact_max_n;
    CHECK((t.method == UTestMethod::exact) == want_exact);
    if (want_exact) {
      ++exact_sets;
      CHECK(close(t.p, d["p_exact"], 1e-9));
    } else {
      ++asymptotic_sets;
      CHECK(close(t.p, d["p_asymptotic"], 1e-6));
    }
  }
  // The fixture exercises both branches.
  CHECK(exact_sets >= 5);
  CHECK(asymptotic_sets >= 3);

  SECTION("symmetric in its arguments") {
    std::vector<double> a{1, 5, 7, 9}, b{2, 3, 4, 6, 8};
    CHECK(mann_whitney_u(a, b).p == mann_whitney_u(b, a).p);
  }
  SECTION("an empty arm is no evidence") {
    std::vector<double> a{1, 2, 3};
    CHECK(mann_whitney_u(a, {}).p == 1);
  }
}

TEST_CASE("min_two_sided_p is what the exact test can reach at best", "[stats]") {
  CHECK(min_two_sided_p(2, 2) == Approx(1.0 / 3));
  CHECK(min_two_sided_p(3, 3) == Approx(0.1));
  CHECK(min_two_sided_p(5, 5) == Approx(2.0 / 252));
  CHECK(min_two_sided_p(0, 5) == 1);
  CHECK(min_two_sided_p(1, 1) == 1);
  // Complete separation reaches it.
  std::vector<double> a{1, 2, 3, 4, 5}, b{6, 7, 8, 9, 10};
  CHECK(mann_whitney_u(a, b).p == Approx(min_two_sided_p(5, 5)).epsilon(1e-12));
}

TEST_CASE("Holm step-down matches the textbook definition", "[stats]") {
  for (const auto& h : reference()["holm"]) {
    auto p = doubles(h["p"]);
    auto want = doubles(h["adjusted"]);
    auto got = holm_adjust(p);
    REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < got.size(); ++i) CHECK(close(got[i], want[i], 1e-12));
  }
  CHECK(holm_adjust({}).empty());
}

TEST_CASE("Hodges-Lehmann ratio matches the reference", "[stats]") {
  for (const auto& d : reference()["datasets"]) {
    INFO(d["name"].get<std::string>());
    auto x = doubles(d["x"]), y = doubles(d["y"]);
    CHECK(close(hodges_lehmann_ratio(x, y), d["hodges_lehmann_ratio"], 1e-9));
  }
  std::vector<double> with_zero{0, 1};
  CHECK(std::isnan(hodges_lehmann_ratio(with_zero, with_zero)));
}

TEST_CASE("Hodges-Lehmann interval matches the reference", "[stats]") {
  for (const auto& d : reference()["datasets"]) {
    INFO(d["name"].get<std::string>());
    auto x = doubles(d["x"]), y = doubles(d["y"]);
    Interval ci = hodges_lehmann_ratio_ci(x, y, 0.95);
    CHECK(close(ci.lo, d["hodges_lehmann_ci95"][0], 1e-9));
    CHECK(close(ci.hi, d["hodges_lehmann_ci95"][1], 1e-9));
    double hl = hodges_lehmann_ratio(x, y);
    CHECK(ci.lo <= hl);
    CHECK(hl <= ci.hi);
  }
  SECTION("5 + 5: the 3rd smallest and 3rd largest of the 25 ratios (achieved coverage 96.8%)") {
    std::vector<double> a{1, 2, 3, 4, 5}, b{6, 7, 8, 9, 10};
    std::vector<double> r;
    for (double x : a)
      for (double y : b) r.push_back(y / x);
    std::sort(r.begin(), r.end());
    Interval ci = hodges_lehmann_ratio_ci(a, b);
    CHECK(ci.lo == Approx(r[2]));
    CHECK(ci.hi == Approx(r[22]));
  }
}

TEST_CASE("splitmix64 is the published sequence", "[stats]") {
  // First outputs for seed 1234567 (the reference implementation's test vector).
  SplitMix64 r(1234567);
  CHECK(r.next() == 6457827717110365317ULL);
  CHECK(r.next() == 3203168211198807973ULL);
  CHECK(r.next() == 9817491932198370423ULL);
  SplitMix64 b(7);
  for (int i = 0; i < 1000; ++i) CHECK(b.below(5) < 5);
}

TEST_CASE("bootstrap CI of the ratio of medians", "[stats]") {
  std::vector<double> base{655.0, 648.5, 661.2, 640.3, 670.8, 652.1, 659.9};
  std::vector<double> cand{754.0, 760.3, 741.9, 749.5, 771.2, 738.8, 757.0};
  SECTION("deterministic for a seed, different for another") {
    Interval a = bootstrap_median_ratio_ci(base, cand, {10000, 0.95, 42});
    Interval b = bootstrap_median_ratio_ci(base, cand, {10000, 0.95, 42});
    Interval c = bootstrap_median_ratio_ci(base, cand, {10000, 0.95, 43});
    CHECK(a.lo == b.lo);
    CHECK(a.hi == b.hi);
    CHECK((a.lo != c.lo || a.hi != c.hi));
  }
  SECTION("contains the point estimate, within the range of possible ratios") {
    Interval ci = bootstrap_median_ratio_ci(base, cand);
    double r = median(cand) / median(base);
    CHECK(ci.lo <= r);
    CHECK(r <= ci.hi);
    CHECK(ci.lo >= 738.8 / 670.8);
    CHECK(ci.hi <= 771.2 / 640.3);
    CHECK(ci.lo > 1.0);  // a clear 14% shift is not straddling 1
  }
  SECTION("a wider confidence gives a wider interval") {
    Interval n90 = bootstrap_median_ratio_ci(base, cand, {10000, 0.90, 1});
    Interval n99 = bootstrap_median_ratio_ci(base, cand, {10000, 0.99, 1});
    CHECK(n99.lo <= n90.lo);
    CHECK(n99.hi >= n90.hi);
  }
  SECTION("coverage: on repeated A/A draws the interval holds 1 most of the time") {
    // Both arms from the same distribution (drawn with splitmix64 by inversion of
    // a uniform into a symmetric triangular shape); n = 15 per arm. Percentile
    // bootstrap intervals of medians run a little narrow for small n, so this
    // checks sanity (≥ 85% for a nominal 95%), not exact calibration.
    SplitMix64 g(99);
    auto draw = [&] {
      double u1 = static_cast<double>(g.next() >> 11) / 9007199254740992.0;
      double u2 = static_cast<double>(g.next() >> 11) / 9007199254740992.0;
      return 600 + 60 * (u1 + u2);
    };
    int covered = 0, trials = 200;
    for (int t = 0; t < trials; ++t) {
      std::vector<double> a(15), b(15);
      for (auto& v : a) v = draw();
      for (auto& v : b) v = draw();
      Interval ci = bootstrap_median_ratio_ci(a, b, {2000, 0.95, static_cast<std::uint64_t>(t)});
      if (ci.lo <= 1 && 1 <= ci.hi) ++covered;
    }
    CHECK(covered >= trials * 85 / 100);
  }
  SECTION("empty or zero base gives NaN") {
    std::vector<double> zeros{0, 0, 0};
    CHECK(std::isnan(bootstrap_median_ratio_ci({}, cand).lo));
    CHECK(std::isnan(bootstrap_median_ratio_ci(zeros, cand).hi));
  }
  SECTION("10,000 resamples of 7 + 7 values take milliseconds") {
    auto t0 = std::chrono::steady_clock::now();
    bootstrap_median_ratio_ci(base, cand, {10000, 0.95, 5});
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    WARN("bootstrap 10k resamples, 7+7 values: " << ms << " ms");
    CHECK(ms < 2000);
  }
}

TEST_CASE("group-sequential boundaries match SciPy's multivariate normal", "[stats][sequential]") {
  // reference.json solves each boundary with scipy.stats.multivariate_normal.cdf
  // (quasi-Monte Carlo, ~1e-6 in probability): agreement to 1e-3 in z is
  // agreement of the spent alpha far below what a run can tell.
  const auto& seq = reference()["sequential"];
  REQUIRE(seq.size() == 4);
  for (const auto& d : seq) {
    const std::vector<double> t = d["fractions"].get<std::vector<double>>();
    const double alpha = d["alpha"].get<double>();
    const auto want = d["boundaries"].get<std::vector<double>>();
    const auto got = sequential_boundaries(t, alpha);
    REQUIRE(got.size() == want.size());
    for (std::size_t k = 0; k < got.size(); ++k) {
      INFO("alpha " << alpha << ", look " << k + 1 << " of " << t.size());
      CHECK(got[k] == Approx(want[k]).margin(1e-3));
    }
  }
}

TEST_CASE("group-sequential design: the published table, and its properties", "[stats][sequential]") {
  // Five equally spaced looks at two-sided alpha 0.05, O'Brien-Fleming-type
  // spending: Lan & DeMets (1983), as R's ldbounds prints it.
  const std::vector<double> t{0.2, 0.4, 0.6, 0.8, 1.0};
  const auto c = sequential_boundaries(t, 0.05);
  const double table[] = {4.8769, 3.3569, 2.6803, 2.2898, 2.0310};
  for (int k = 0; k < 5; ++k) CHECK(c[k] == Approx(table[k]).margin(2e-4));
  // One look is the fixed-n test.
  CHECK(sequential_boundaries(std::vector<double>{1.0}, 0.05)[0] == Approx(1.959964).margin(1e-5));
  // A look added later leaves the earlier boundaries as they were.
  const auto first3 = sequential_boundaries(std::vector<double>{0.2, 0.4, 0.6}, 0.05);
  for (int k = 0; k < 3; ++k) CHECK(first3[k] == Approx(c[k]).epsilon(1e-12));
  // Boundaries fall look by look; the last is above the fixed-n 1.96 (alpha
  // spent earlier is not spent at the end), by little.
  for (int k = 1; k < 5; ++k) CHECK(c[k] < c[k - 1]);
  CHECK(c[4] > 1.96);
  CHECK(c[4] < 2.05);
  // All of alpha is spent by the end, none at the start.
  CHECK(obrien_fleming_spent(0.05, 1.0) == 0.05);
  CHECK(obrien_fleming_spent(0.05, 0.0) == 0.0);
  CHECK(obrien_fleming_spent(0.05, 0.5) == Approx(0.00305).margin(1e-5));
  CHECK_THROWS_AS(sequential_boundaries(std::vector<double>{0.5, 0.4}, 0.05), std::invalid_argument);
  CHECK_THROWS_AS(sequential_boundaries(std::vector<double>{0.5, 1.2}, 0.05), std::invalid_argument);
}

TEST_CASE("sequential_look: Holm steps and the equivalence interval", "[stats][sequential]") {
  // Look 5 of 5 at alpha 0.05 with one hypothesis: the table's 2.0310.
  auto one = sequential_look(5, 5, 0.05, 1);
  REQUIRE(one.test_levels.size() == 1);
  CHECK(one.test_levels[0] == Approx(2 * (1 - normal_cdf(2.0310))).epsilon(1e-3));
  // Equivalence: two one-sided tests at alpha, i.e. the design at 2·alpha.
  std::vector<double> t{0.2, 0.4, 0.6, 0.8, 1.0};
  CHECK(one.equivalence_level == Approx(sequential_levels(t, 0.10)[4]).epsilon(1e-12));
  // Three cells: step j is the design at alpha / (3 - j), strictest first.
  auto three = sequential_look(2, 5, 0.05, 3);
  REQUIRE(three.test_levels.size() == 3);
  std::vector<double> t2{0.2, 0.4};
  CHECK(three.test_levels[0] == Approx(sequential_levels(t2, 0.05 / 3)[1]).epsilon(1e-12));
  CHECK(three.test_levels[2] == Approx(sequential_levels(t2, 0.05)[1]).epsilon(1e-12));
  CHECK(three.test_levels[0] < three.test_levels[1]);
  CHECK(three.test_levels[1] < three.test_levels[2]);
  CHECK(three.equivalence_level == Approx(sequential_levels(t2, 0.10 / 3)[1]).epsilon(1e-12));
  CHECK_THROWS(sequential_look(6, 5, 0.05, 1));
  // At the information reached: the design over those fractions.
  std::vector<double> uneven{0.2, 0.35};  // a sample of look 2 failed
  auto at = sequential_look(uneven, 2, 5, 0.05, 3);
  CHECK(at.look == 2);
  CHECK(at.information == 0.35);
  CHECK(at.test_levels[0] == Approx(sequential_levels(uneven, 0.05 / 3)[1]).epsilon(1e-12));
  CHECK(at.test_levels[2] == Approx(sequential_levels(uneven, 0.05)[1]).epsilon(1e-12));
  CHECK(at.equivalence_level == Approx(sequential_levels(uneven, 0.10 / 3)[1]).epsilon(1e-12));
  // Less information than planned by this look spends less: stricter than
  // look 2 of 5 (whose first look is the same).
  CHECK(at.test_levels[2] < three.test_levels[2]);
  CHECK_THROWS(sequential_look(std::vector<double>{}, 1, 5, 0.05, 1));
}

TEST_CASE("van Elteren's stratified test and the stratified Hodges-Lehmann ratio match the reference",
          "[stats][stratified]") {
  const auto& sets = reference()["stratified"];
  REQUIRE(sets.size() == 4);
  for (const auto& d : sets) {
    INFO(d["name"].get<std::string>());
    std::vector<std::vector<double>> base, cand;
    for (const auto& st : d["strata"]) {
      base.push_back(doubles(st["base"]));
      cand.push_back(doubles(st["candidate"]));
    }
    std::vector<Stratum> strata;
    for (std::size_t i = 0; i < base.size(); ++i) strata.push_back({base[i], cand[i]});
    UTest t = van_elteren(strata);
    CHECK(t.method == UTestMethod::stratified);
    CHECK(t.u == Approx(d["w"].get<double>()).margin(1e-12));
    CHECK(close(t.p, d["p"].get<double>(), 1e-9));
    CHECK(close(stratified_hodges_lehmann_ratio(strata), d["hodges_lehmann_ratio"].get<double>(), 1e-12));
    // The bootstrap interval holds the estimate and is the same for the same seed.
    Interval ci = stratified_hodges_lehmann_ci(strata, {2000, 0.95, 7});
    const double hl = stratified_hodges_lehmann_ratio(strata);
    CHECK(ci.lo <= hl);
    CHECK(ci.hi >= hl);
    Interval again = stratified_hodges_lehmann_ci(strata, {2000, 0.95, 7});
    CHECK(ci.lo == again.lo);
    CHECK(ci.hi == again.hi);
  }
}

TEST_CASE("stratified statistics compare within a run only", "[stats][stratified]") {
  // Run 2 is 40% faster throughout; within each run the candidate is 2% ahead.
  std::vector<double> b1{500, 505, 498, 503}, c1{510, 515, 508, 513};
  std::vector<double> b2{700, 707, 697, 704}, c2{714, 721, 711, 718};
  std::vector<Stratum> strata{{b1, c1}, {b2, c2}};
  CHECK(stratified_hodges_lehmann_ratio(strata) == Approx(1.02).epsilon(0.003));
  CHECK(van_elteren(strata).p < 0.01);
  CHECK(van_elteren(strata).u > 0);
  // Pooled as one, the runs' difference swamps it.
  std::vector<double> base = b1, cand = c1;
  base.insert(base.end(), b2.begin(), b2.end());
  cand.insert(cand.end(), c2.begin(), c2.end());
  CHECK(mann_whitney_u(base, cand).p > 0.05);
  // A stratum without one arm carries nothing; none with both: no evidence.
  std::vector<double> empty;
  std::vector<Stratum> lone{{b1, empty}, {empty, c2}};
  CHECK(van_elteren(lone).p == 1);
  CHECK(std::isnan(stratified_hodges_lehmann_ratio(lone)));
  CHECK(std::isnan(stratified_hodges_lehmann_ci(lone).lo));
}
