"""Reference values for kab's statistics (harness/core/stats.h), computed by SciPy.

Run through make_reference.sh, which provides Debian's python3-scipy and
python3-numpy without installing them. Writes JSON to the path given as argv[1].

Each data set carries its literal inputs and what SciPy says about them:
  - numpy: median, mean, sample standard deviation (ddof=1), min, max;
  - scipy.stats.mannwhitneyu(x, y, alternative='two-sided'): U of x, and the
    p-value by method='exact' (only for data without ties: SciPy's exact
    distribution ignores ties) and by method='asymptotic' with
    use_continuity=True (normal approximation with tie correction);
  - the Hodges-Lehmann ratio: exp(median of all log(y_j) - log(x_i)), and its
    95% interval as R's wilcox.test(conf.int=TRUE) forms it: the q-th smallest
    and q-th largest pairwise difference, q the smallest integer with
    P(U <= q) >= 0.025 under SciPy's exact null distribution of U (both n <= 50),
    else floor(mn/2 - z_0.975 * sqrt(mn(m+n+1)/12)) with z from norm.ppf.
Holm's step-down adjustment is computed by hand (as statsmodels'
multipletests(method='holm') defines it) on literal p-value vectors.

van Elteren's stratified test (runs pooled with the run as a block) is
computed from scipy.stats.rankdata (midranks) within each stratum and
scipy.stats.norm, as Lehmann's "Nonparametrics" (1975, 3.3) defines it, with
the stratified Hodges-Lehmann ratio: exp(numpy.median of the within-stratum
pairwise log differences).

Group-sequential boundaries (harness/core/sequential.h) are solved here
independently of kab's numerical integration: Z at the looks is multivariate
normal with corr(Z_i, Z_j) = sqrt(t_i / t_j); each boundary c_k is found by
scipy.optimize.brentq so that 1 - P(|Z_j| < c_j for all j <= k), computed by
scipy.stats.multivariate_normal.cdf with lower limits, equals the alpha the
O'Brien-Fleming-type function spends by t_k (both sides together, each side
2 - 2 Phi(z_{1 - alpha/4} / sqrt(t))).
"""

import json
import math
import sys

import numpy as np
import scipy
import scipy.optimize as opt
import scipy.stats as st

# Literal data sets. Names say what each exercises. Values are MiB/s-like
# figures such as kab measures, or small integers where ties are the point.
DATASETS = [
    ("rfc-like-3v3", [655.0, 648.5, 661.2], [754.0, 760.3, 741.9]),
    ("n2-vs-n2", [100.0, 101.0], [102.0, 103.0]),
    ("n2-vs-n2-overlap", [100.0, 103.0], [101.0, 102.0]),
    ("overlap-5v5", [612.0, 655.5, 640.1, 701.9, 598.3], [690.2, 645.0, 720.4, 702.6, 668.8]),
    ("identical-shift-5v5", [1.0, 2.0, 3.0, 4.0, 5.0], [6.0, 7.0, 8.0, 9.0, 10.0]),
    ("unequal-8v7", [41.2, 55.3, 61.0, 48.7, 99.1, 72.4, 66.6, 58.2],
     [60.1, 70.2, 65.3, 88.8, 77.7, 52.9, 81.4]),
    ("a-a-10v10", [502.3, 511.8, 497.4, 530.2, 488.9, 520.5, 507.7, 499.0, 515.6, 525.1],
     [509.9, 494.2, 518.3, 503.6, 527.4, 491.5, 512.2, 500.8, 522.9, 505.5]),
    ("ties-5v5", [1.0, 2.0, 2.0, 3.0, 4.0], [2.0, 3.0, 3.0, 5.0, 6.0]),
    ("ties-heavy-6v6", [7.0, 7.0, 7.0, 8.0, 8.0, 9.0], [7.0, 8.0, 8.0, 9.0, 9.0, 9.0]),
    ("all-equal-3v3", [5.0, 5.0, 5.0], [5.0, 5.0, 5.0]),
    ("one-vs-four", [10.0], [11.0, 12.0, 9.0, 13.0]),
]


def generated_sets():
    # Larger sets, from a fixed numpy seed; the values land in the JSON, so the
    # C++ side reads them literally.
    rng = np.random.RandomState(20231228)
    base = rng.normal(655.0, 60.0, 20)
    cand = rng.normal(700.0, 60.0, 20)
    yield "normal-20v20", [round(float(v), 3) for v in base], [round(float(v), 3) for v in cand]
    base = rng.normal(655.0, 60.0, 40)
    cand = rng.normal(670.0, 60.0, 35)
    yield "normal-40v35", [round(float(v), 3) for v in base], [round(float(v), 3) for v in cand]
    # Rounded to whole numbers: many ties, large n -> asymptotic.
    base = rng.normal(100.0, 4.0, 30)
    cand = rng.normal(102.0, 4.0, 25)
    yield "rounded-ties-30v25", [float(round(v)) for v in base], [float(round(v)) for v in cand]
    # Larger than kab's exact limit (50), no ties -> asymptotic.
    base = rng.normal(655.0, 60.0, 60)
    cand = rng.normal(640.0, 60.0, 55)
    yield "normal-60v55", [round(float(v), 4) for v in base], [round(float(v), 4) for v in cand]


def has_ties(values):
    return len(set(values)) != len(values)


def describe(v):
    a = np.asarray(v, dtype=float)
    d = {
        "n": int(a.size),
        "median": float(np.median(a)),
        "mean": float(np.mean(a)),
        "min": float(np.min(a)),
        "max": float(np.max(a)),
    }
    d["sd"] = float(np.std(a, ddof=1)) if a.size > 1 else None
    return d


def hodges_lehmann_ratio(x, y):
    diffs = [math.log(b) - math.log(a) for a in x for b in y]
    return float(math.exp(np.median(diffs)))


def hodges_lehmann_ci(x, y, confidence=0.95):
    from scipy.stats._mannwhitneyu import _mwu_state
    m, n = len(x), len(y)
    diffs = sorted(math.log(b) - math.log(a) for a in x for b in y)
    tail = (1 - confidence) / 2
    if m <= 50 and n <= 50:
        cdf = _mwu_state.cdf(np.arange(m * n + 1), m, n)
        q = int(np.argmax(cdf >= tail * (1 - 1e-12)))
    else:
        z = st.norm.ppf(1 - tail)
        q = int(math.floor(m * n / 2 - z * math.sqrt(m * n * (m + n + 1) / 12)))
    q = min(max(q, 1), m * n)
    return [math.exp(diffs[q - 1]), math.exp(diffs[m * n - q])]


def holm(p):
    # Step-down: sort ascending, multiply the i-th smallest (0-based) by m - i,
    # enforce monotonicity, cap at 1.
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    adj = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adj[i] = running
    return adj


def van_elteren(strata):
    w = 0.0
    var = 0.0
    for base, cand in strata:
        if not base or not cand:
            continue
        n, m = len(cand), len(base)
        big = n + m
        ranks = st.rankdata(list(cand) + list(base))
        r = float(np.sum(ranks[:n]))
        w += (r - n * (big + 1) / 2) / (big + 1)
        _, counts = np.unique(np.array(list(cand) + list(base)), return_counts=True)
        tie = float(np.sum(counts ** 3 - counts)) / (big * (big - 1)) if big > 1 else 0.0
        var += n * m * (big + 1 - tie) / (12 * (big + 1) ** 2)
    p = float(2 * st.norm.sf(abs(w) / math.sqrt(var))) if var > 0 else 1.0
    return w, min(p, 1.0)


def stratified_hl(strata):
    d = [math.log(c) - math.log(b) for base, cand in strata for c in cand for b in base]
    return float(math.exp(np.median(d)))


STRATIFIED = [
    ("two-runs-shifted-host",
     [([500.0, 510.0, 505.0, 498.0], [520.0, 530.0, 515.0, 525.0]),
      ([700.0, 690.0, 710.0, 705.0], [720.0, 735.0, 716.0, 729.0])]),
    ("unbalanced-arms",
     [([600.0, 611.0, 598.0, 605.0, 620.0, 602.0, 615.0], [608.0, 596.0, 611.5]),
      ([812.0, 790.0, 805.0], [801.0, 799.0, 820.0, 808.0, 811.0, 795.0, 803.0])]),
    ("ties-across-and-within",
     [([1.0, 2.0, 2.0, 3.0], [2.0, 3.0, 3.0, 4.0]),
      ([5.0, 5.0, 6.0], [6.0, 7.0, 7.0]),
      ([9.0, 10.0], [10.0, 11.0])]),
    ("three-runs-no-effect",
     [([100.2, 99.1, 101.5, 98.7, 100.9], [99.8, 100.6, 98.9, 101.2, 100.1]),
      ([120.4, 119.7, 121.9], [121.1, 118.8, 120.2]),
      ([80.3, 81.2, 79.9, 80.8], [80.1, 81.5, 80.0, 79.6])]),
]


def obf_spent(alpha, t):
    side = alpha / 2
    return 2 * (2 - 2 * st.norm.cdf(st.norm.ppf(1 - side / 2) / math.sqrt(t)))


def sequential_boundaries(fractions, alpha):
    np.random.seed(12345)   # the integration is quasi-Monte Carlo: the same reference every time
    bounds = []
    for k, t in enumerate(fractions):
        target = obf_spent(alpha, t)
        if k == 0:
            bounds.append(float(st.norm.ppf(1 - target / 2)))
            continue
        ts = fractions[:k + 1]
        cov = [[math.sqrt(min(a, b) / max(a, b)) for b in ts] for a in ts]
        def excess(c):
            upper = np.array(bounds + [c])
            inside = st.multivariate_normal.cdf(upper, mean=[0.0] * len(ts), cov=cov, maxpts=4000000,
                                                abseps=1e-9, releps=1e-9, lower_limit=-upper)
            return (1 - inside) - target
        bounds.append(float(opt.brentq(excess, 0.5, 8.0, xtol=1e-7)))
    return bounds


def main():
    out = {
        "generator": "tests/data/stats/make_reference.py",
        "scipy_version": scipy.__version__,
        "numpy_version": np.__version__,
        "datasets": [],
        "holm": [],
    }
    for name, x, y in list(DATASETS) + list(generated_sets()):
        ties = has_ties(x + y)
        entry = {"name": name, "x": x, "y": y, "ties": ties,
                 "x_stats": describe(x), "y_stats": describe(y)}
        asym = st.mannwhitneyu(x, y, alternative="two-sided", method="asymptotic",
                               use_continuity=True)
        entry["u_x"] = float(asym.statistic)
        entry["p_asymptotic"] = float(asym.pvalue)
        if not ties:
            ex = st.mannwhitneyu(x, y, alternative="two-sided", method="exact")
            entry["p_exact"] = float(ex.pvalue)
        else:
            entry["p_exact"] = None
        entry["hodges_lehmann_ratio"] = hodges_lehmann_ratio(x, y)
        entry["hodges_lehmann_ci95"] = hodges_lehmann_ci(x, y)
        entry["median_ratio"] = float(np.median(y) / np.median(x)) if np.median(x) != 0 else None
        out["datasets"].append(entry)

    for p in ([0.01, 0.04, 0.03, 0.005],
              [0.2, 0.01, 0.049, 0.5, 0.012],
              [0.03, 0.03, 0.03],
              [0.0079, 0.3],
              [0.6],
              [0.001, 0.4, 0.2, 0.9, 0.02, 0.02]):
        out["holm"].append({"p": p, "adjusted": holm(p)})

    out["stratified"] = []
    for name, strata in STRATIFIED:
        w, p = van_elteren(strata)
        out["stratified"].append({"name": name, "strata": [{"base": b, "candidate": c} for b, c in strata],
                                  "w": w, "p": p, "hodges_lehmann_ratio": stratified_hl(strata)})

    out["sequential"] = []
    for fractions, alpha in (([1 / 3, 2 / 3, 1.0], 0.05),
                             ([0.25, 0.5, 0.8, 1.0], 0.1),
                             ([0.2, 0.4, 0.6, 0.8, 1.0], 0.05),
                             ([0.5, 1.0], 0.025)):
        out["sequential"].append({"fractions": fractions, "alpha": alpha,
                                  "boundaries": sequential_boundaries(fractions, alpha)})

    with open(sys.argv[1], "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
