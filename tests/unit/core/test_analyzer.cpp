#include <catch2/catch.hpp>
#include <cmath>
#include <map>

#include "core/analyzer.h"
#include "core/sequential.h"
#include "core/scenario_run.h"

using namespace kab::core;

namespace {

constexpr double k_gib = 1024.0 * 1024 * 1024;

Scenario scenario() {
  Scenario s;
  s.name = "rfc-writeback";
  s.fio.job = {{"bs", "1M"}, {"rw", "randwrite"}};
  s.alpha = 0.05;
  s.min_effect = 0.02;
  return s;
}

// A sample of `arm` with bandwidth `mib` MiB/s and derived figures: 1 MiB
// blocks, 30 s, guest sys time 2 s, backend CPU 3 s per run.
Sample sample(const std::string& arm, double mib, int index, const std::string& backend = "virtiofsd",
              Cell cell = {{"bs", "1M"}}) {
  Sample s;
  s.run_id = 1;
  s.plan_index = index;
  s.arm = arm;
  s.kernel = arm + "-6.1";
  s.backend = backend;
  s.backend_cmdline = "/usr/lib/qemu/virtiofsd -o cache=auto -o writeback";
  s.cell = std::move(cell);
  s.fio.bw_bytes = mib * 1024 * 1024;
  s.fio.iops = mib;
  s.fio.bytes = mib * 1024 * 1024 * 30;
  s.fio.clat_p99_ns = 1e9 / mib;
  s.fio.runtime_ms = 30000;
  s.guest.guest_sys_s = 2;
  s.guest.writeback_tmp_peak_kb = arm == "stock" ? 4096 : 0;
  s.backend_usage.user_s = 1;
  s.backend_usage.sys_s = 2;
  s.backend_usage.minor_faults = 390;
  s.host_load_before = 0.5;
  s.host_load_after = 0.7;
  return s;
}

std::vector<Sample> arms(const std::vector<double>& base, const std::vector<double>& cand,
                         const std::string& backend = "virtiofsd", Cell cell = {{"bs", "1M"}}, int first_index = 0) {
  std::vector<Sample> out;
  int i = first_index;
  // Interleaved like the planner's ABBA order.
  for (std::size_t k = 0; k < std::max(base.size(), cand.size()); ++k) {
    if (k < base.size()) out.push_back(sample("stock", base[k], i++, backend, cell));
    if (k < cand.size()) out.push_back(sample("rfc", cand[k], i++, backend, cell));
  }
  return out;
}

AnalysisOptions options() {
  AnalysisOptions o;
  o.base_arm = "stock";
  o.candidate_arm = "rfc";
  o.seed = 20231228;
  return o;
}

const MetricResult& metric(const CellResult& c, Metric m) {
  for (const auto& r : c.metrics)
    if (r.metric == m) return r;
  FAIL("metric " << metric_info(m).key << " missing");
  throw;
}

// Standard normal deviates: Box-Muller on SplitMix64 uniforms, so the
// simulations are the same everywhere.
struct Normal {
  SplitMix64 g;
  explicit Normal(std::uint64_t seed) : g(seed) {}
  double operator()() {
    double u1 = (static_cast<double>(g.next() >> 11) + 1) / 9007199254740993.0;
    double u2 = static_cast<double>(g.next() >> 11) / 9007199254740992.0;
    return std::sqrt(-2 * std::log(u1)) * std::cos(2 * 3.141592653589793 * u2);
  }
};

bool has_warning(const Comparison& c, const std::string& kind) {
  for (const auto& w : c.warnings)
    if (w.kind == kind) return true;
  return false;
}

}  // namespace

TEST_CASE("metric values and directions", "[analyzer]") {
  Sample s = sample("stock", 512, 0);
  CHECK(*metric_value(s, Metric::bandwidth) == 512.0 * 1024 * 1024);
  CHECK(*metric_value(s, Metric::iops) == 512);
  // 15 GiB written, 2 s of guest sys time, 3 s of backend CPU.
  CHECK(*metric_value(s, Metric::guest_sys_cpu_per_gib) == Approx(2.0 / 15));
  CHECK(*metric_value(s, Metric::backend_cpu_per_gib) == Approx(3.0 / 15));
  CHECK(*metric_value(s, Metric::backend_faults_per_gib) == Approx(390.0 / 15));
  CHECK(metric_info(Metric::backend_faults_per_gib).better == Better::lower);
  s.fio.clat_p99_ns = 0;
  CHECK_FALSE(metric_value(s, Metric::clat_p99));
  s.fio.bytes = 0;
  CHECK_FALSE(metric_value(s, Metric::guest_sys_cpu_per_gib));
  CHECK(metric_info(Metric::bandwidth).better == Better::higher);
  CHECK(metric_info(Metric::iops).better == Better::higher);
  CHECK(metric_info(Metric::clat_p99).better == Better::lower);
  CHECK(metric_info(Metric::guest_sys_cpu_per_gib).better == Better::lower);
  CHECK(metric_info(Metric::backend_cpu_per_gib).better == Better::lower);
  CHECK(metric_from("clat_p99") == Metric::clat_p99);
  CHECK_FALSE(metric_from("latency"));
  CHECK(to_string(Verdict::equivalent) == "equivalent");
  CHECK(verdict_key(Verdict::equivalent) == "equivalent");
}

TEST_CASE("a sample that reads and writes is measured in each direction as well", "[analyzer]") {
  auto mixed = [](std::vector<Sample> v, double read_share) {
    for (auto& s : v) {
      s.fio.read_bw_bytes = s.fio.bw_bytes * read_share;
      s.fio.write_bw_bytes = s.fio.bw_bytes - s.fio.read_bw_bytes;
      s.fio.read_iops = s.fio.iops * read_share;
      s.fio.write_iops = s.fio.iops - s.fio.read_iops;
    }
    return v;
  };
  SECTION("one-direction samples have no per-direction metrics, and do not call them unmeasured") {
    auto c = analyze(scenario(), arms({655, 648, 661, 650, 659}, {654, 650, 660, 652, 657}), options());
    REQUIRE(c.cells.size() == 1);
    for (const auto& r : c.cells[0].metrics) CHECK_FALSE(metric_info(r.metric).mixed_only);
    CHECK(c.cells[0].unmeasured.empty());
  }
  SECTION("reads and writes apart: a write regression hidden in the total is found") {
    // Totals alike; the candidate moves its bytes to reads: writes 30% slower.
    // 6 + 6: eight secondary tests (four directions, p99, two CPU, faults) in one Holm family.
    auto base = mixed(arms({655, 648, 661, 650, 659, 652}, {}), 0.5);
    auto cand = mixed(arms({}, {654, 650, 660, 652, 657, 651}, "virtiofsd", {{"bs", "1M"}}, 10), 0.65);
    base.insert(base.end(), cand.begin(), cand.end());
    auto c = analyze(scenario(), base, options());
    REQUIRE(c.cells.size() == 1);
    CHECK(metric(c.cells[0], Metric::bandwidth).verdict != Verdict::regression);
    const auto& w = metric(c.cells[0], Metric::write_bandwidth);
    CHECK(w.change == Approx(0.35 / 0.5 * (655.0 / 654.0) - 1).epsilon(0.02));
    CHECK(w.verdict == Verdict::regression);
    CHECK(metric(c.cells[0], Metric::read_bandwidth).verdict == Verdict::improvement);
    CHECK(metric(c.cells[0], Metric::write_iops).verdict == Verdict::regression);
    // The verdict is the primary metric's (bandwidth, both directions): the
    // write regression is reported beside it, not instead of it.
    CHECK(c.verdict == metric(c.cells[0], Metric::bandwidth).verdict);
    CHECK_FALSE(metric(c.cells[0], Metric::write_bandwidth).primary);
  }
}

TEST_CASE("analyze: verdicts", "[analyzer]") {
  SECTION("a clear slowdown is a regression in every direction-aware metric") {
    auto c = analyze(scenario(), arms({655, 648, 661, 650, 659}, {560, 571, 566, 553, 575}), options());
    REQUIRE(c.cells.size() == 1);
    const auto& cell = c.cells[0];
    CHECK(cell.label == "bs=1M");
    CHECK(cell.direction == "WRITE");
    const auto& bw = metric(cell, Metric::bandwidth);
    CHECK(bw.base.summary.n == 5);
    CHECK(bw.base.summary.median == Approx(655.0 * 1024 * 1024));
    CHECK(bw.ratio == Approx(566.0 / 655));
    CHECK(bw.test.method == UTestMethod::exact);
    CHECK(bw.test.p == Approx(2.0 / 252));
    CHECK(bw.p_adjusted == bw.test.p);  // one cell: Holm changes nothing
    CHECK(bw.ratio_ci.lo <= bw.ratio);
    CHECK(bw.ratio <= bw.ratio_ci.hi);
    CHECK(bw.ratio_ci.hi < 1);
    CHECK(bw.hodges_lehmann_ci.lo <= bw.hodges_lehmann);
    CHECK(bw.hodges_lehmann_ci.hi < 1);
    CHECK(bw.verdict == Verdict::regression);
    CHECK(bw.reason == "adjusted p 0.00794 < 0.05 and |change| 13.6% >= 2.0%");
    CHECK(bw.primary);
    // IOPS is bandwidth over bs=1M: reported, not a second test.
    CHECK_FALSE(metric(cell, Metric::iops).tested);
    CHECK(metric(cell, Metric::iops).verdict == Verdict::regression);
    // Lower bandwidth means higher latency and more CPU per GiB: all regressions
    // (the secondary family: p99, guest CPU, backend CPU and faults; 4 × 2/252 < 0.05).
    CHECK(metric(cell, Metric::clat_p99).verdict == Verdict::regression);
    CHECK(metric(cell, Metric::guest_sys_cpu_per_gib).verdict == Verdict::regression);
    CHECK(cell.verdict == Verdict::regression);
    CHECK(c.verdict == Verdict::regression);
    CHECK(c.base_kernel == "stock-6.1");
    CHECK(c.candidate_kernel == "rfc-6.1");
  }
  SECTION("a clear speed-up is an improvement, latency too") {
    auto c = analyze(scenario(), arms({655, 648, 661, 650, 659}, {754, 760, 741, 749, 771}), options());
    const auto& cell = c.cells[0];
    CHECK(metric(cell, Metric::bandwidth).verdict == Verdict::improvement);
    CHECK(metric(cell, Metric::clat_p99).verdict == Verdict::improvement);
    CHECK(metric(cell, Metric::clat_p99).change < 0);
    CHECK(c.verdict == Verdict::improvement);
    // The median sample carries the fio figures of the evidence lines.
    REQUIRE(cell.base.median_fio);
    CHECK(cell.base.median_fio->bw_bytes == 655.0 * 1024 * 1024);
    CHECK(cell.candidate.median_fio->bw_bytes == 754.0 * 1024 * 1024);
    CHECK(cell.base.writeback_tmp_peak_kb.max == 4096);
    CHECK(cell.candidate.writeback_tmp_peak_kb.max == 0);
  }
  SECTION("A/A with a CV under 1%: the interval lies inside ±2%, equivalent") {
    auto c = analyze(scenario(), arms({655, 648, 661, 650, 659, 652}, {651, 660, 647, 657, 654, 649}), options());
    const auto& bw = metric(c.cells[0], Metric::bandwidth);
    CHECK(bw.p_adjusted >= 0.05);
    CHECK(bw.equivalence_ci.lo > 0.98);
    CHECK(bw.equivalence_ci.hi < 1.02);
    // The 90% interval (two one-sided tests at 0.05) is inside the 95% one.
    CHECK(bw.equivalence_ci.lo >= bw.hodges_lehmann_ci.lo);
    CHECK(bw.equivalence_ci.hi <= bw.hodges_lehmann_ci.hi);
    CHECK(bw.verdict == Verdict::equivalent);
    CHECK_THAT(bw.reason, Catch::StartsWith("90% interval of the change [-"));
    CHECK_THAT(bw.reason, Catch::EndsWith("] inside ±2.0%"));
    CHECK(c.verdict == Verdict::equivalent);
  }
  SECTION("A/A with a CV of 12% (the user's n = 5 case): inconclusive, with the samples needed") {
    auto c = analyze(scenario(), arms({655, 520, 700, 610, 760}, {600, 720, 540, 690, 650}), options());
    const auto& bw = metric(c.cells[0], Metric::bandwidth);
    CHECK(bw.verdict == Verdict::inconclusive);
    CHECK_THAT(bw.reason, Catch::Contains("does not exclude a change of 2.0%"));
    // ~2 (z_0.95 + z_0.9)^2 (CV / 2%)^2 pi/3 per arm: hundreds, not five.
    CHECK(bw.samples_needed > 100);
    CHECK_THAT(bw.reason, Catch::EndsWith("about " + std::to_string(bw.samples_needed) +
                                          " samples per arm would decide"));
    CHECK(c.verdict == Verdict::inconclusive);
  }
  SECTION("significant but smaller than min_effect, and inside it: equivalent") {
    auto c = analyze(scenario(), arms({1000, 1001, 1002, 1003, 1004}, {1010, 1011, 1012, 1013, 1014}), options());
    const auto& bw = metric(c.cells[0], Metric::bandwidth);
    CHECK(bw.p_adjusted < 0.05);
    CHECK(bw.verdict == Verdict::equivalent);
    CHECK_THAT(bw.reason, Catch::EndsWith("inside ±2.0% (a significant change, smaller than min effect)"));
  }
  SECTION("the primary metric is its own family: a 76% drop at n = 4 + 4 is decided") {
    // Every candidate sample below every base sample: exact p 2/70 = 0.029.
    auto c = analyze(scenario(), arms({650, 640, 660, 655}, {150, 160, 155, 158}), options());
    const auto& bw = metric(c.cells[0], Metric::bandwidth);
    CHECK(bw.test.p == Approx(2.0 / 70));
    CHECK(bw.p_adjusted == bw.test.p);
    CHECK(bw.verdict == Verdict::regression);
    CHECK(c.verdict == Verdict::regression);
    // The secondary family (p99, guest CPU, backend CPU and faults) cannot reach 0.05 at 4 + 4.
    CHECK(metric(c.cells[0], Metric::clat_p99).best_p == Approx(4 * 2.0 / 70));
  }
  SECTION("n = 2 per arm is inconclusive even for a huge difference, never no change") {
    auto c = analyze(scenario(), arms({100, 101}, {200, 201}), options());
    const auto& bw = metric(c.cells[0], Metric::bandwidth);
    CHECK(bw.test.p == Approx(1.0 / 3));
    CHECK(bw.verdict == Verdict::inconclusive);
    CHECK_THAT(bw.reason, Catch::StartsWith("n = 2 + 2 cannot reach p < 0.05 (best possible p 0.333); "));
    // The interval would be the range of the ratios seen (+98% … +101%): it is not shown as
    // if it bounded the change; what would decide is a test that detects the change seen.
    CHECK_THAT(bw.reason, Catch::Contains("% interval is bounded at n = 2 + 2; about "));
    CHECK_THAT(bw.reason, !Catch::Contains("lies beyond"));
    CHECK(bw.samples_needed == 3);
    CHECK(c.verdict == Verdict::inconclusive);
  }
  SECTION("n = 2 per arm without any difference is inconclusive too, never equivalent") {
    // Every pairwise ratio is within ±1%, but 2 + 2 samples cannot reach
    // alpha on either side: the interval proves nothing.
    auto c = analyze(scenario(), arms({100, 101}, {100.5, 100.7}), options());
    CHECK(metric(c.cells[0], Metric::bandwidth).verdict == Verdict::inconclusive);
    CHECK(c.verdict == Verdict::inconclusive);
  }
}

TEST_CASE("analyze: Holm across cells", "[analyzer]") {
  // Two cells of 5 + 5: the stronger one is multiplied by 2, the weaker by 1.
  auto samples = arms({655, 648, 661, 650, 659}, {560, 571, 566, 553, 575}, "virtiofsd", {{"bs", "1M"}});
  auto more = arms({655, 648, 661, 650, 659}, {650, 640, 660, 645, 651}, "virtiofsd", {{"bs", "4k"}}, 100);
  samples.insert(samples.end(), more.begin(), more.end());
  auto c = analyze(scenario(), samples, options());
  REQUIRE(c.cells.size() == 2);
  const auto& a = metric(c.cells[0], Metric::bandwidth);
  const auto& b = metric(c.cells[1], Metric::bandwidth);
  std::vector<double> raw{a.test.p, b.test.p};
  auto adj = holm_adjust(raw);
  CHECK(a.p_adjusted == adj[0]);
  CHECK(b.p_adjusted == adj[1]);
  CHECK(a.p_adjusted == Approx(2 * 2.0 / 252));
  CHECK(a.best_p == Approx(2 * 2.0 / 252));
  CHECK(a.verdict == Verdict::regression);
  CHECK(b.verdict != Verdict::regression);
  CHECK(b.verdict != Verdict::improvement);
  CHECK(c.cells[1].verdict == b.verdict);
  CHECK(c.verdict == Verdict::regression);

  SECTION("a family too large for n = 5 makes every cell inconclusive") {
    std::vector<Sample> many;
    for (int k = 0; k < 7; ++k) {
      auto s = arms({655, 648, 661, 650, 659}, {560, 571, 566, 553, 575}, "virtiofsd",
                    {{"iodepth", std::to_string(k + 1)}}, k * 100);
      many.insert(many.end(), s.begin(), s.end());
    }
    auto c7 = analyze(scenario(), many, options());
    // 7 × 2/252 = 0.056 ≥ 0.05: Holm can never bring any of them below alpha.
    const auto& r = metric(c7.cells[0], Metric::bandwidth);
    CHECK(r.best_p == Approx(7 * 2.0 / 252));
    CHECK(r.verdict == Verdict::inconclusive);
    CHECK_THAT(r.reason, Catch::StartsWith("n = 5 + 5 cannot reach p < 0.05 (best possible Holm-adjusted p 0.0556); "));
  }
  SECTION("two families: the primary metric over the cells, the rest over the cells") {
    CHECK(a.best_p == Approx(2 * 2.0 / 252));
    // p99, guest CPU, backend CPU and faults in 2 cells (IOPS is bandwidth here, not tested).
    CHECK(metric(c.cells[0], Metric::backend_cpu_per_gib).best_p == Approx(8 * 2.0 / 252));
    auto o = options();
    o.primary = Metric::clat_p99;
    auto by_latency = analyze(scenario(), samples, o);
    CHECK(metric(by_latency.cells[0], Metric::clat_p99).primary);
    CHECK(by_latency.cells[0].verdict == metric(by_latency.cells[0], Metric::clat_p99).verdict);
    // Bandwidth is a secondary now, and IOPS a test of its own again.
    CHECK(metric(by_latency.cells[0], Metric::iops).tested);
    // Secondary: bandwidth, IOPS, guest and backend CPU, backend faults over 2 cells.
    CHECK(metric(by_latency.cells[0], Metric::bandwidth).best_p == Approx(10 * 2.0 / 252));
  }
}

TEST_CASE("analyze: exclusions, warnings, determinism", "[analyzer]") {
  auto samples = arms({655, 648, 661, 650, 659, 300}, {754, 760, 741, 749, 771});
  samples[9].health.status = SampleStatus::timeout;          // the last rfc sample
  samples[10].health.status = SampleStatus::unhealthy;       // the stock 300
  samples[10].health.reason = "WARN in console";
  auto o = options();
  SECTION("samples that are not ok are excluded and counted") {
    auto c = analyze(scenario(), samples, o);
    CHECK(c.base_included == 5);
    CHECK(c.base_excluded == 1);
    CHECK(c.candidate_included == 4);
    CHECK(c.candidate_excluded == 1);
    CHECK(c.cells[0].base.excluded_by_status == std::vector<std::pair<std::string, int>>{{"unhealthy", 1}});
    CHECK(metric(c.cells[0], Metric::bandwidth).base.summary.min == Approx(648.0 * 1024 * 1024));
    REQUIRE(has_warning(c, "excluded_samples"));
    CHECK(c.warnings[0].message == "1 sample of stock excluded (1 unhealthy): kept in the store, not in the statistics");
  }
  SECTION("noise warnings: TCG, host load, CV") {
    o.tcg = true;
    o.host_cores = 2;
    samples[3].host_load_after = 3.5;
    samples[4].health.status = SampleStatus::ok;
    auto noisy = arms({600, 700, 650, 800, 550}, {700, 760, 640, 900, 710});
    noisy[0].host_load_before = 2.5;
    auto c = analyze(scenario(), noisy, o);
    CHECK(has_warning(c, "tcg"));
    REQUIRE(has_warning(c, "host_load"));
    CHECK(has_warning(c, "high_cv"));
    for (const auto& w : c.warnings)
      if (w.kind == "host_load") CHECK(w.message == "host load was above the 2 cores during 1 of 10 samples (max 2.50)");
    auto quiet = analyze(scenario(), arms({655, 656, 657}, {655, 656, 657}), options());
    CHECK(quiet.warnings.empty());
  }
  SECTION("the same input gives the same comparison") {
    auto a = analyze(scenario(), samples, o);
    auto b = analyze(scenario(), samples, o);
    const auto& ra = metric(a.cells[0], Metric::bandwidth);
    const auto& rb = metric(b.cells[0], Metric::bandwidth);
    CHECK(ra.ratio_ci.lo == rb.ratio_ci.lo);
    CHECK(ra.ratio_ci.hi == rb.ratio_ci.hi);
    CHECK(ra.p_adjusted == rb.p_adjusted);
  }
}

TEST_CASE("analyze: shape of the comparison", "[analyzer]") {
  SECTION("backends group the cells; unmeasured metrics are left out") {
    auto s1 = arms({655, 648, 661}, {754, 760, 741}, "virtiofsd");
    auto s2 = arms({355, 348, 361}, {454, 460, 441}, "dpu", {{"bs", "1M"}}, 50);
    std::vector<Sample> all;
    // Interleave backends to check the grouping.
    for (std::size_t i = 0; i < s1.size(); ++i) {
      all.push_back(s1[i]);
      all.push_back(s2[i]);
    }
    for (auto& s : all) {
      s.fio.clat_p99_ns = 0;
      s.arm = s.arm;
    }
    auto c = analyze(scenario(), all, options());
    CHECK(c.backends == std::vector<std::string>{"virtiofsd", "dpu"});
    REQUIRE(c.cells.size() == 2);
    CHECK(c.cells[0].backend == "virtiofsd");
    CHECK(c.cells[1].backend == "dpu");
    CHECK(c.cells[0].unmeasured == std::vector<std::string>{"clat_p99"});
    CHECK(c.cells[0].metrics.size() == 5);
    CHECK(c.backend_cmdlines.size() == 2);
    CHECK(c.run_ids == std::vector<std::int64_t>{1});
    // n = 3 + 3: best p 0.1 — inconclusive, whatever the data say.
    CHECK(c.verdict == Verdict::inconclusive);
  }
  SECTION("errors name the arms") {
    auto samples = arms({655, 648}, {754, 760});
    auto o = options();
    o.candidate_arm = "rcf";
    CHECK_THROWS_WITH(analyze(scenario(), samples, o),
                      "no samples of arm 'rcf' (arms in the samples: stock, rfc)");
    o.candidate_arm = "stock";
    CHECK_THROWS_WITH(analyze(scenario(), samples, o), "base and candidate are the same arm 'stock'");
  }
  SECTION("an arm whose every sample failed is inconclusive, not no change") {
    auto samples = arms({655, 648, 661, 650, 659}, {754, 760, 741, 749, 771});
    for (auto& s : samples)
      if (s.arm == "rfc") s.health.status = SampleStatus::crashed;
    auto c = analyze(scenario(), samples, options());
    const auto& bw = metric(c.cells[0], Metric::bandwidth);
    CHECK(bw.verdict == Verdict::inconclusive);
    CHECK(bw.reason == "no included sample in the candidate arm");
    CHECK(c.verdict == Verdict::inconclusive);
    CHECK(c.candidate_excluded == 5);
  }
}

TEST_CASE("analyze: error rates on simulated TCG-like noise", "[analyzer][simulation]") {
  // Samples with a CV of ~15% in bandwidth (as measured under TCG here),
  // IOPS = bandwidth / 1 MiB, p99 inversely related with its own noise, CPU
  // per GiB with independent noise. 5 + 5 samples, one cell, 5 metrics.
  Normal normal(4242);
  auto run = [&](double candidate_factor, int trials, int reps) {
    std::map<Verdict, int> overall, bandwidth;
    for (int t = 0; t < trials; ++t) {
      std::vector<Sample> s;
      for (int k = 0; k < 2 * reps; ++k) {
        bool cand = k % 2 == 1;
        double mib = 650 * (1 + 0.15 * normal()) * (cand ? candidate_factor : 1);
        Sample x = sample(cand ? "rfc" : "stock", std::max(mib, 50.0), k);
        x.fio.clat_p99_ns = 1e9 / x.fio.iops * (1 + 0.1 * normal());
        x.guest.guest_sys_s = 2 * (1 + 0.1 * normal()) / (cand ? candidate_factor : 1);
        x.backend_usage.sys_s = 2 * (1 + 0.1 * normal());
        s.push_back(x);
      }
      auto o = options();
      o.bootstrap_resamples = 200;  // the verdict does not use the interval
      o.seed = static_cast<std::uint64_t>(t);
      auto c = analyze(scenario(), s, o);
      ++overall[c.verdict];
      ++bandwidth[metric(c.cells[0], Metric::bandwidth).verdict];
    }
    return std::pair(overall, bandwidth);
  };
  SECTION("A/A: a false regression is rare") {
    auto [overall, bw] = run(1.0, 400, 5);
    WARN("A/A, n=5+5, CV 15%, 400 trials: overall regression " << overall[Verdict::regression]
         << ", improvement " << overall[Verdict::improvement] << "; bandwidth alone regression "
         << bw[Verdict::regression] << ", improvement " << bw[Verdict::improvement]);
    // The verdict is bandwidth's: a two-sided level-0.05 test.
    CHECK(bw[Verdict::regression] + bw[Verdict::improvement] <= 400 * 8 / 100);
    CHECK(overall[Verdict::regression] + overall[Verdict::improvement] <= 400 * 8 / 100);
    // At CV 15% and 5 + 5 nothing can be shown equivalent within 2%.
    CHECK(overall[Verdict::equivalent] == 0);
  }
  SECTION("a 25% slowdown is caught often with 5 + 5, nearly always with 10 + 10") {
    auto [overall, bw] = run(0.75, 200, 5);
    WARN("25% slowdown, n=5+5, CV 15%, 200 trials: bandwidth regression " << bw[Verdict::regression]
         << "; overall regression " << overall[Verdict::regression]);
    CHECK(bw[Verdict::regression] >= 200 * 45 / 100);
    CHECK(bw[Verdict::improvement] == 0);
    auto [more, bw_more] = run(0.75, 200, 10);
    WARN("same with n=10+10: bandwidth regression " << bw_more[Verdict::regression] << "; overall "
         << more[Verdict::regression]);
    CHECK(bw_more[Verdict::regression] >= 200 * 80 / 100);
  }
}

TEST_CASE("analyze: equivalence on simulated low noise", "[analyzer][simulation]") {
  // A quiet platform: CV 2% in bandwidth, min_effect 5%, 10 + 10 samples. (UML's
  // 5-second quick samples here are noisier: stock bandwidth CV 6-24% over 4 runs.)
  Normal normal(777);
  auto run = [&](double factor, int trials) {
    std::map<Verdict, int> v;
    Scenario sc = scenario();
    sc.min_effect = 0.05;
    for (int t = 0; t < trials; ++t) {
      std::vector<Sample> s;
      for (int k = 0; k < 20; ++k) {
        const bool cand = k % 2 == 1;
        s.push_back(sample(cand ? "rfc" : "stock", 900 * (1 + 0.02 * normal()) * (cand ? factor : 1), k));
      }
      auto o = options();
      o.bootstrap_resamples = 200;
      o.seed = static_cast<std::uint64_t>(t);
      ++v[analyze(sc, s, o).verdict];
    }
    return v;
  };
  auto aa = run(1.0, 1000);
  auto slower = run(0.9, 1000);
  WARN("low noise, CV 2%, 10 + 10, min effect 5%, 1000 trials each: A/A equivalent " << aa[Verdict::equivalent]
       << ", regression " << aa[Verdict::regression] << ", improvement " << aa[Verdict::improvement]
       << "; 10% slower: regression " << slower[Verdict::regression] << ", equivalent " << slower[Verdict::equivalent]);
  // A true 10% change is never called equivalent; one of exactly min_effect
  // (the hardest case for the equivalence test) at most alpha of the time.
  CHECK(slower[Verdict::equivalent] <= 1000 * 5 / 100);
  auto at_margin = run(0.95, 1000);
  WARN("5% slower (at min effect): equivalent " << at_margin[Verdict::equivalent] << ", regression "
       << at_margin[Verdict::regression] << ", inconclusive " << at_margin[Verdict::inconclusive]);
  // alpha, plus two standard errors of a 1000-trial estimate (0.7%).
  CHECK(at_margin[Verdict::equivalent] <= 64);
  CHECK(slower[Verdict::regression] >= 1000 * 95 / 100);
  // No change: false alarms at most alpha; equivalence shown nearly always.
  CHECK(aa[Verdict::regression] + aa[Verdict::improvement] <= 1000 * 5 / 100);
  CHECK(aa[Verdict::equivalent] >= 1000 * 90 / 100);
}

// Sampling until decided (stop.until_decided): the run looks after every ABBA
// block and stops at the first decision, up to 20 looks (40 samples per arm).
// Each look is judged as kab judges it (core::look_at: the O'Brien–Fleming
// design's boundary for the test, its repeated confidence interval for
// equivalence). Optional stopping must keep the error rates: on no change at
// most alpha of the runs end improvement or regression, and with a true 10%
// slowdown (twice min_effect) at most alpha end equivalent — and at a change
// of exactly min_effect, the hardest case, too.
namespace {

struct SequentialTally {
  std::map<Verdict, int> verdicts;
  double mean_per_arm = 0;   // samples per arm when the run stopped
  int seeds = 0;
  int wrong(Verdict a, Verdict b = Verdict::equivalent) const {
    auto n = [&](Verdict v) { return verdicts.count(v) ? verdicts.at(v) : 0; };
    return a == b ? n(a) : n(a) + n(b);
  }
};

// noise(normal, seed) gives one sample's multiplicative factor.
// fail_one_in > 0: one sample in that many fails (no values), at random.
template <typename Noise>
SequentialTally sequential_runs(double factor, int seeds, std::uint64_t seed0, Noise noise, int fail_one_in = 0) {
  Scenario sc = scenario();
  sc.min_effect = 0.05;
  sc.stop.until_decided = true;
  sc.stop.max_samples = 40;
  sc.arms = {Arm{"stock", "stock-6.1", ""}, Arm{"rfc", "rfc-6.1", ""}};
  const int looks = sc.stop.max_samples / 2;
  SequentialTally t;
  t.seeds = seeds;
  double total = 0;
  for (int seed = 0; seed < seeds; ++seed) {
    Normal normal(seed0 + static_cast<std::uint64_t>(seed));
    auto draw = noise(normal);   // this run's noise (a platform whose CV varies from run to run draws it here)
    std::vector<Sample> s;
    Verdict v = Verdict::inconclusive;
    int look = 1;
    for (; look <= looks; ++look) {
      for (const char* arm : {"stock", "rfc", "rfc", "stock"}) {
        const bool cand = arm[0] == 'r';
        s.push_back(sample(arm, 650 * draw() * (cand ? factor : 1), static_cast<int>(s.size())));
        if (fail_one_in > 0 && normal.g.below(static_cast<std::uint64_t>(fail_one_in)) == 0)
          s.back().health.status = SampleStatus::failed;
      }
      v = look_at(sc, s, look, looks, 4).verdict;
      if (v != Verdict::inconclusive) break;
    }
    ++t.verdicts[v];
    total += 2 * std::min(look, looks);
  }
  t.mean_per_arm = total / seeds;
  return t;
}

// The three truths a noise model is simulated under: no change, 10% slower
// (twice min_effect), 5% slower (exactly min_effect), each from its own seeds.
struct Truths {
  SequentialTally aa, slower, margin;
};

template <typename Noise>
Truths three_truths(int seeds, std::uint64_t seed0, Noise noise, int fail_one_in = 0) {
  return {sequential_runs(1.0, seeds, seed0, noise, fail_one_in),
          sequential_runs(0.9, seeds, seed0 + 4000, noise, fail_one_in),
          sequential_runs(0.95, seeds, seed0 + 8000, noise, fail_one_in)};
}

std::string describe(const SequentialTally& t);

std::string describe(const Truths& t) {
  return "\n  A/A: " + describe(t.aa) + "\n  10% slower: " + describe(t.slower) +
         "\n  5% slower (at min effect): " + describe(t.margin);
}

std::string describe(const SequentialTally& t) {
  auto n = [&](Verdict v) { return std::to_string(t.verdicts.count(v) ? t.verdicts.at(v) : 0); };
  char mean[32];
  std::snprintf(mean, sizeof mean, "%.1f", t.mean_per_arm);
  return "improvement " + n(Verdict::improvement) + ", regression " + n(Verdict::regression) + ", equivalent " +
         n(Verdict::equivalent) + ", inconclusive " + n(Verdict::inconclusive) + " of " + std::to_string(t.seeds) +
         "; mean samples per arm " + mean;
}

}  // namespace

TEST_CASE("sequential: error rates under optional stopping, 1000 seeds each", "[analyzer][simulation][sequential]") {
  const int seeds = 1000;
  // alpha, plus two standard errors of a 1000-seed estimate (0.7%): the design
  // holds the rate at alpha, not below it. (With min_effect 0, 10,000 A/A
  // seeds of TCG-like noise gave 491 false alarms: 4.9%.)
  const int alpha_count = 64;
  // TCG-like: bandwidth CV 12% (make demo under TCG here), normal.
  auto tcg = [](Normal& normal) { return [&normal] { return std::max(0.2, 1 + 0.12 * normal()); }; };
  // UML-like: each run its own CV, 6% to 24% (measured over 4 runs here), on
  // the log scale, and one sample in 20 a stall at 60% speed.
  auto uml = [](Normal& normal) {
    const double cv = 0.06 + 0.18 * (static_cast<double>(normal.g.next() >> 11) / 9007199254740992.0);
    return [&normal, cv] {
      const bool stall = normal.g.below(20) == 0;
      return std::exp(cv * normal()) * (stall ? 0.6 : 1.0);
    };
  };
  // A quiet platform (CV 2%): where sampling until decided stops early.
  auto quiet = [](Normal& normal) { return [&normal] { return 1 + 0.02 * normal(); }; };

  SECTION("TCG-like noise") {
    auto [aa, slower, margin] = three_truths(seeds, 1000, tcg);
    WARN("TCG-like, CV 12%, min effect 5%, max 40 per arm." << describe(Truths{aa, slower, margin}));
    CHECK(aa.wrong(Verdict::improvement, Verdict::regression) <= alpha_count);
    CHECK(slower.wrong(Verdict::equivalent) <= alpha_count);
    CHECK(margin.wrong(Verdict::equivalent) <= alpha_count);
    CHECK(slower.wrong(Verdict::improvement) == 0);
    // It decides a 10% slowdown in most runs, before the cap on average.
    CHECK(slower.wrong(Verdict::regression) >= seeds * 80 / 100);
    CHECK(slower.mean_per_arm < 40);
  }
  SECTION("UML-like noise") {
    auto [aa, slower, margin] = three_truths(seeds, 21000, uml);
    WARN("UML-like, CV 6-24% by run, 1 in 20 a stall, min effect 5%, max 40 per arm." << describe(Truths{aa, slower, margin}));
    CHECK(aa.wrong(Verdict::improvement, Verdict::regression) <= alpha_count);
    CHECK(slower.wrong(Verdict::equivalent) <= alpha_count);
    CHECK(margin.wrong(Verdict::equivalent) <= alpha_count);
    CHECK(slower.wrong(Verdict::improvement) == 0);
    CHECK(slower.wrong(Verdict::regression) >= seeds * 50 / 100);
  }
  SECTION("TCG-like noise, one sample in 8 failed: looks at the information that arrived") {
    // A failed sample is information that did not arrive: each look is judged
    // at the fraction its ok samples carry (stricter than k / looks).
    auto [aa, slower, margin] = three_truths(seeds, 61000, tcg, 8);
    WARN("TCG-like, CV 12%, 1 in 8 samples failed, min effect 5%, max 40 per arm." << describe(Truths{aa, slower, margin}));
    CHECK(aa.wrong(Verdict::improvement, Verdict::regression) <= alpha_count);
    CHECK(slower.wrong(Verdict::equivalent) <= alpha_count);
    CHECK(margin.wrong(Verdict::equivalent) <= alpha_count);
    CHECK(slower.wrong(Verdict::improvement) == 0);
    CHECK(slower.wrong(Verdict::regression) >= seeds * 70 / 100);
  }
  SECTION("quiet noise: it stops early") {
    auto [aa, slower, margin] = three_truths(seeds, 41000, quiet);
    WARN("quiet, CV 2%, min effect 5%, max 40 per arm." << describe(Truths{aa, slower, margin}));
    CHECK(aa.wrong(Verdict::improvement, Verdict::regression) <= alpha_count);
    CHECK(margin.wrong(Verdict::equivalent) <= alpha_count);
    CHECK(slower.wrong(Verdict::equivalent) == 0);
    // Both truths are decided, well before the cap.
    CHECK(aa.wrong(Verdict::equivalent) >= seeds * 95 / 100);
    CHECK(slower.wrong(Verdict::regression) == seeds);
    CHECK(aa.mean_per_arm < 20);
    CHECK(slower.mean_per_arm < 12);
  }
}

TEST_CASE("sequential: a look with failed samples is judged at the information that arrived", "[analyzer][sequential]") {
  Scenario sc = scenario();
  sc.arms = {Arm{"stock", "stock-6.1", ""}, Arm{"rfc", "rfc-6.1", ""}};
  sc.stop.until_decided = true;
  sc.stop.max_samples = 20;   // 10 looks of one ABBA block (4 samples)
  std::vector<Sample> s;
  const double base[] = {650, 610, 700, 640, 660, 620};
  const double cand[] = {600, 640, 580, 630, 590, 610};
  for (int block = 0; block < 3; ++block)
    for (const char* arm : {"stock", "rfc", "rfc", "stock"}) {
      const bool c = arm[0] == 'r';
      const int i = static_cast<int>(s.size());
      s.push_back(sample(arm, c ? cand[i / 2] : base[i / 2], i));
    }
  auto level = [](const Comparison& c) { return metric(c.cells[0], Metric::bandwidth).level; };
  const double planned = sequential_look(3, 10, 0.05, 1).test_levels[0];

  // Every sample ok: look 3 of 10 is t = 0.3, the planned design.
  auto all = look_at(sc, s, 3, 10, 4);
  CHECK(all.information == Approx(0.3));
  CHECK(level(all) == Approx(planned).epsilon(1e-12));

  // One candidate sample of look 3 failed: 6 + 5 samples, information
  // 6·5/11 of the planned 10, a stricter boundary.
  auto one = s;
  one[9].health.status = SampleStatus::failed;
  REQUIRE(one[9].arm == "rfc");
  auto c1 = look_at(sc, one, 3, 10, 4);
  const std::vector<double> t1{0.1, 0.2, 30.0 / 11 / 10};
  CHECK(c1.information == Approx(t1[2]));
  CHECK(level(c1) == Approx(sequential_levels(t1, 0.05)[2]).epsilon(1e-12));
  CHECK(level(c1) < planned);
  CHECK(metric(c1.cells[0], Metric::bandwidth).candidate.summary.n == 5);

  // The whole of look 3 failed: no new information, judged as look 2 was.
  auto none = s;
  for (int i = 8; i < 12; ++i) none[static_cast<std::size_t>(i)].health.status = SampleStatus::failed;
  auto c0 = look_at(sc, none, 3, 10, 4);
  CHECK(c0.look == 3);
  CHECK(c0.information == Approx(0.2));
  CHECK(level(c0) == Approx(sequential_look(2, 10, 0.05, 1).test_levels[0]).epsilon(1e-12));

  // The last planned look spends what is left, whatever failed.
  Scenario three = sc;
  three.stop.max_samples = 6;   // 3 looks
  auto last = look_at(three, one, 3, 3, 4);
  CHECK(last.information == 1);
  const std::vector<double> t3{1.0 / 3, 2.0 / 3, 1};
  CHECK(level(last) == Approx(sequential_levels(t3, 0.05)[2]).epsilon(1e-12));

  // By look count (look_size 0), as a caller without the plan asks.
  CHECK(level(look_at(sc, one, 3, 10, 0)) == Approx(planned).epsilon(1e-12));
}

TEST_CASE("pooling runs with the run as a block: a faster run does not make a change", "[analyzer][simulation][stratified]") {
  // Two runs of an A/A comparison on machines 30% apart, the arms spread
  // unevenly over them (run 1: 6 base, 2 candidate; run 2: 2 base, 6
  // candidate), CV 5% within a run. Pooled as one, the candidate's median
  // sits in the faster run; with the run as a block it is compared within
  // each run only.
  Normal normal(31337);
  std::map<Verdict, int> pooled, blocked;
  const int trials = 400;
  double pooled_change = 0, blocked_change = 0;
  for (int t = 0; t < trials; ++t) {
    std::vector<Sample> s;
    int index = 0;
    for (int run = 1; run <= 2; ++run)
      for (int k = 0; k < 8; ++k) {
        const bool cand = run == 1 ? k >= 6 : k >= 2;
        Sample x = sample(cand ? "rfc" : "stock", 600 * (run == 2 ? 1.3 : 1.0) * (1 + 0.05 * normal()), index++);
        x.run_id = run;
        s.push_back(x);
      }
    auto o = options();
    o.bootstrap_resamples = 200;
    o.metrics = {Metric::bandwidth};
    o.seed = static_cast<std::uint64_t>(t);
    auto as_one = analyze(scenario(), s, o);
    ++pooled[as_one.verdict];
    o.block_by_run = true;
    auto by_run = analyze(scenario(), s, o);
    ++blocked[by_run.verdict];
    const auto& bw = metric(by_run.cells[0], Metric::bandwidth);
    CHECK(bw.blocks == 2);
    CHECK(bw.test.method == UTestMethod::stratified);
    pooled_change += metric(as_one.cells[0], Metric::bandwidth).hodges_lehmann - 1;
    blocked_change += bw.hodges_lehmann - 1;
  }
  WARN("A/A over two runs 30% apart, arms 6+2 and 2+6, " << trials << " trials: pooled as one improvement "
       << pooled[Verdict::improvement] << ", regression " << pooled[Verdict::regression]
       << "; the run as a block improvement " << blocked[Verdict::improvement] << ", regression "
       << blocked[Verdict::regression] << "; mean Hodges-Lehmann change pooled " << pooled_change / trials * 100
       << "%, blocked " << blocked_change / trials * 100 << "%");
  // Pooled as one, the faster run is read as an improvement in over a fifth of the trials.
  CHECK(pooled[Verdict::improvement] >= trials / 5);
  CHECK(pooled_change / trials > 0.1);
  // With the run as a block: at most alpha plus two standard errors (2.2%).
  CHECK(blocked[Verdict::improvement] + blocked[Verdict::regression] <= trials * 72 / 1000);
  CHECK(std::fabs(blocked_change / trials) < 0.01);
}

// The interval a report prints beside a verdict must be the one the verdict
// was judged by: a "regression" next to an interval that holds no change, or
// an "inconclusive" next to one that leaves it out, is a report that argues
// with itself. At fixed n (one cell, so Holm changes nothing) the bracket is
// the Hodges–Lehmann interval at 95%, the Mann–Whitney test inverted; at a
// sequential look it is the repeated interval at 1 - the look's boundary.
TEST_CASE("the interval shown beside a verdict is the one it was judged by", "[analyzer][interval]") {
  auto excludes_one = [](const Interval& i) { return i.hi < 1 || i.lo > 1; };
  int fixed_significant = 0, look_significant = 0, look_not = 0, disagree = 0;
  for (int seed = 0; seed < 200; ++seed) {
    Normal normal(7000 + static_cast<std::uint64_t>(seed));
    std::vector<double> base, cand;
    for (int k = 0; k < 8; ++k) {
      base.push_back(650 * (1 + 0.1 * normal()));
      cand.push_back(650 * 0.9 * (1 + 0.1 * normal()));
    }
    // Fixed n, 8 + 8.
    AnalysisOptions o = options();
    o.metrics = {Metric::bandwidth};
    auto c = analyze(scenario(), arms(base, cand), o);
    const auto& r = metric(c.cells[0], Metric::bandwidth);
    CHECK_FALSE(r.at_look);
    CHECK(r.ci_coverage == 0.95);
    CHECK(r.ci.lo == r.hodges_lehmann_ci.lo);
    CHECK(r.ci.hi == r.hodges_lehmann_ci.hi);
    disagree += excludes_one(r.ci) != (r.p_adjusted < 0.05);
    fixed_significant += r.significant;

    // The same samples seen at look 4 of 10 (two per arm a look).
    Scenario sc = scenario();
    sc.arms = {Arm{"stock", "stock-6.1", ""}, Arm{"rfc", "rfc-6.1", ""}};
    sc.stop.until_decided = true;
    sc.stop.max_samples = 20;
    auto l = look_at(sc, arms(base, cand), 4, 10, 0);   // arms() does not interleave: by look count
    const auto& q = metric(l.cells[0], Metric::bandwidth);
    CHECK(q.at_look);
    CHECK(q.ci_coverage == Approx(1 - q.level));
    CHECK(q.level < 0.05);
    disagree += excludes_one(q.ci) != q.significant;
    (q.significant ? look_significant : look_not)++;
    if (q.verdict == Verdict::regression || q.verdict == Verdict::improvement) CHECK(excludes_one(q.ci));
  }
  INFO("fixed n significant " << fixed_significant << ", at the look " << look_significant << " of 200");
  CHECK(disagree == 0);
  // Both sides were exercised: a 10% change at CV 10% is often but not always
  // significant at 8 + 8, less often at the look's stricter boundary.
  CHECK(fixed_significant > 20);
  CHECK(fixed_significant < 200);
  CHECK(look_significant >= 5);
  CHECK(look_not > 100);
}
