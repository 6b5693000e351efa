// Group-sequential designs: how to look at the data after every block of
// samples and stop when it decides, without the repeated looks inflating the
// error rates (Jennison & Turnbull, "Group Sequential Methods with
// Applications to Clinical Trials", 2000, chapters 2, 7, 9 and 19).
//
// kab spends alpha over the looks with the Lan–DeMets O'Brien–Fleming-type
// function, each side its α/2 as α₁(t) = 2 − 2Φ(z_{1−α₁/2} / √t) with α₁ = α/2
// (the form of Lan & DeMets 1983, R's ldbounds and gsDesign's sfLDOF), t the
// information fraction (samples so far / the cap). Early looks get almost nothing, so stopping early needs
// overwhelming data and the last look's level is close to the fixed-n one.
// The boundaries are computed by numerical integration over the canonical
// joint distribution of the statistics (Brownian motion observed at the
// looks): the probability of crossing at look k for the first time is the
// α spent between looks k − 1 and k. Pure functions; no I/O, no randomness.
//
// Checked against SciPy by tests/unit/core/test_stats.cpp (the boundaries of
// tests/data/stats/reference.json, solved there with
// scipy.stats.multivariate_normal) and against the published table for five
// equally spaced looks.
#pragma once

#include <span>
#include <vector>

namespace kab::core {

// The O'Brien–Fleming-type spending function: the two-sided alpha spent by
// information fraction t, both sides together (0 at t = 0, alpha at t >= 1).
double obrien_fleming_spent(double alpha, double t);

// Two-sided boundaries for looks at information fractions t_1 < … < t_K
// (each in (0, 1]): |Z_k| >= c_k rejects at look k, and under no effect
// P(|Z_k| >= c_k for some k <= j) = α(t_j) for every j. `fractions` must be
// increasing; the boundaries of the first j looks do not depend on the later
// ones (a look added at the end leaves the earlier ones as they were).
// Boundaries for looks that spend less than 1e-15 are capped at 12.
std::vector<double> sequential_boundaries(std::span<const double> fractions, double alpha);

// The same boundaries as two-sided nominal levels 2(1 − Φ(c_k)): a look's
// test rejects when its fixed-n two-sided p-value is below its level, and
// the 1 − level confidence intervals of all looks together cover the truth
// with probability 1 − alpha (repeated confidence intervals).
std::vector<double> sequential_levels(std::span<const double> fractions, double alpha);

// What a look at a sequential run tests with.
struct SequentialLook {
  int look = 1;            // 1-based
  int looks = 1;           // planned, the last at the cap
  double alpha = 0.05;     // the design's two-sided alpha
  // The tests' nominal two-sided level at this look, per Holm step j (0-based):
  // level of a family of m hypotheses at step j is test_levels[j] with alpha / (m − j).
  // Filled by sequential_look().
  std::vector<double> test_levels;
  // The repeated confidence interval's nominal two-sided level at this look for
  // the equivalence test (two one-sided tests at alpha each, Bonferroni over
  // the family): 1 − equivalence_level is the interval's coverage.
  double equivalence_level = 0.1;
  // The information fraction this look was judged at (k / looks when every
  // planned sample of the looks so far was ok).
  double information = 1;
};

// The look `look` of `looks` equally spaced ones (t_k = k / looks) for a
// primary family of `family` hypotheses at two-sided `alpha`: the step-down
// (Holm) test levels, each a boundary of the design at alpha / (family − j),
// and the equivalence interval's level from the design at 2·alpha / family.
SequentialLook sequential_look(int look, int looks, double alpha, int family);

// The same at the information actually reached: `fractions` are the
// information fractions of the looks so far (increasing, in (0, 1]), the last
// one this look's. Samples that failed leave a look with less information than
// planned; the spending function spends alpha by information, not by look
// count, so the stated error rates still hold (Lan and DeMets 1983). `look`
// and `looks` are only reported.
SequentialLook sequential_look(std::span<const double> fractions, int look, int looks, double alpha, int family);

}  // namespace kab::core
