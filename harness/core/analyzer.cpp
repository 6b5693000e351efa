#include "core/analyzer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <stdexcept>

#include "core/hash.h"
#include "core/sequential.h"

namespace kab::core {

namespace {

constexpr double k_nan = std::numeric_limits<double>::quiet_NaN();
constexpr double k_gib = 1024.0 * 1024.0 * 1024.0;

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string pct(double fraction) { return fmt("%.1f%%", fraction * 100); }

std::string direction_of(const Scenario& sc, const Cell& cell) {
  std::string rw;
  for (const auto& [k, v] : sc.fio.job)
    if (k == "rw" || k == "readwrite") rw = v;
  for (const auto& [k, v] : cell)
    if (k == "rw" || k == "readwrite") rw = v;
  bool write = rw.find("write") != std::string::npos || rw.find("trim") != std::string::npos ||
               rw == "rw" || rw == "randrw";
  return write ? "WRITE" : "READ";
}

void add_status(std::vector<std::pair<std::string, int>>& counts, const std::string& status) {
  for (auto& [s, n] : counts)
    if (s == status) {
      ++n;
      return;
    }
  counts.emplace_back(status, 1);
}

std::string describe_counts(const std::vector<std::pair<std::string, int>>& counts) {
  std::string out;
  for (const auto& [s, n] : counts) {
    if (!out.empty()) out += ", ";
    out += std::to_string(n) + " " + s;
  }
  return out;
}

struct Group {
  std::vector<const Sample*> base_ok, candidate_ok;
};

// Samples per arm estimated to decide at the observed CV, whatever the truth:
// enough to show equivalence within min_effect when there is no change (power
// 0.8 over two one-sided tests at alpha/family), which also detects a change
// of min_effect. Normal approximation, over the rank test's efficiency 3/pi.
// The observed change is not used: planning from it would promise a decision
// on an A/A comparison whose medians happened to differ.
int samples_needed(const MetricResult& r, double alpha, double min_effect, std::size_t family) {
  const double cv1 = r.base.summary.cv, cv2 = r.candidate.summary.cv;
  if (!std::isfinite(cv1) || !std::isfinite(cv2) || min_effect <= 0) return 0;
  const double cv = std::sqrt((cv1 * cv1 + cv2 * cv2) / 2);
  const double a = alpha / static_cast<double>(std::max<std::size_t>(family, 1));
  const double z = inverse_normal_cdf(1 - a) + inverse_normal_cdf(0.9);
  const double n = 2 * std::pow(z * cv / min_effect, 2) * 3.141592653589793 / 3;
  const int current = std::max(r.base.summary.n, r.candidate.summary.n);
  return std::max(current + 1, static_cast<int>(std::ceil(n)));
}

// How a test is judged: its p-value against `level` (the Holm-adjusted p
// against alpha at fixed n; the raw p against the look's step-down boundary
// in a sequential run), equivalence by the interval at `coverage`.
struct Judge {
  double alpha = 0.05;        // the design's
  double coverage = 0.9;      // of the equivalence interval
  std::size_t family = 1;
  const SequentialLook* look = nullptr;   // null: fixed n
};

// A metric's values by run, ascending, as strata (runs with both arms).
struct RunStrata {
  explicit RunStrata(const MetricResult& r) {
    for (std::size_t i = 0; i < r.base.values.size(); ++i) by_run[r.base.run_ids[i]].first.push_back(r.base.values[i]);
    for (std::size_t i = 0; i < r.candidate.values.size(); ++i)
      by_run[r.candidate.run_ids[i]].second.push_back(r.candidate.values[i]);
    runs = by_run.size();
    for (const auto& [run, arms] : by_run)
      if (!arms.first.empty() && !arms.second.empty()) strata.push_back({arms.first, arms.second});
  }
  std::map<std::int64_t, std::pair<std::vector<double>, std::vector<double>>> by_run;
  std::size_t runs = 0;
  std::vector<Stratum> strata;
};

void decide(MetricResult& r, double min_effect, const Judge& j) {
  const MetricInfo& mi = metric_info(r.metric);
  const int n1 = r.base.summary.n, n2 = r.candidate.summary.n;
  r.verdict = Verdict::inconclusive;
  if (n1 == 0 || n2 == 0) {
    r.reason = "no included sample in " + std::string(n1 == 0 ? "the base" : "the candidate") + " arm";
    return;
  }
  if (!std::isfinite(r.ratio)) {
    r.reason = "the base median is 0: no ratio";
    return;
  }
  const bool large = std::fabs(r.change) >= min_effect;
  const std::string level_text =
      j.look ? fmt("%.3g", r.level) + " (look " + std::to_string(j.look->look) + " of " +
                   std::to_string(j.look->looks) + "'s boundary)"
             : fmt("%g", r.level);
  const std::string p_text = j.look ? "p " + fmt("%.3g", r.test.p) : "adjusted p " + fmt("%.3g", r.p_adjusted);
  const std::string change_text = "|change| " + pct(std::fabs(r.change));
  if (r.significant && large) {
    bool better = (r.change > 0) == (mi.better == Better::higher);
    r.verdict = better ? Verdict::improvement : Verdict::regression;
    r.reason = p_text + " < " + level_text + " and " + change_text + " >= " + pct(min_effect);
    return;
  }
  // Equivalence: both one-sided tests at alpha/family reject a change of
  // min_effect or more, i.e. the interval at `coverage` lies inside ±min_effect
  // (in a sequential run the repeated confidence interval of this look).
  const Interval& e = r.equivalence_ci;
  const std::string interval = (j.look ? "repeated 1 - " + fmt("%.3g", 1 - j.coverage) : fmt("%.4g%%", j.coverage * 100)) +
                               " interval of the change [" + fmt("%+.1f%%", (e.lo - 1) * 100) + ", " +
                               fmt("%+.1f%%", (e.hi - 1) * 100) + "]";
  // With too few samples the exact test cannot reach the level on either side:
  // the interval is then the whole range of ratios, and proves nothing.
  const bool reachable = min_two_sided_p(n1, n2) <= (1 - j.coverage) * (1 + 1e-12);
  if (reachable && std::isfinite(e.lo) && std::isfinite(e.hi) && e.lo > 1 - min_effect && e.hi < 1 + min_effect) {
    r.verdict = Verdict::equivalent;
    r.reason = interval + " inside ±" + pct(min_effect) +
               (r.significant ? " (a significant change, smaller than min effect)" : "");
    return;
  }
  r.samples_needed = samples_needed(r, j.alpha, min_effect, j.family);
  // The interval wholly beyond min_effect: the change is large, only not yet
  // significant (a sequential look's strict boundary, or few samples). What
  // would decide is a test that detects the change seen, not equivalence.
  const bool beyond =
      reachable && std::isfinite(e.lo) && std::isfinite(e.hi) && (e.hi < 1 - min_effect || e.lo > 1 + min_effect);
  // So is a change beyond min_effect seen at an n no interval bounds.
  const bool large_seen = beyond || (!reachable && std::fabs(r.change) >= min_effect);
  if (large_seen && std::isfinite(r.base.summary.cv) && std::isfinite(r.candidate.summary.cv) && r.ratio > 0) {
    const double cv = std::sqrt((r.base.summary.cv * r.base.summary.cv + r.candidate.summary.cv * r.candidate.summary.cv) / 2);
    const double z = inverse_normal_cdf(1 - j.alpha / 2 / static_cast<double>(j.family)) + inverse_normal_cdf(0.8);
    const double n = 2 * std::pow(z * cv / std::fabs(std::log(r.ratio)), 2) * 3.141592653589793 / 3;
    r.samples_needed = std::max(std::max(n1, n2) + 1, static_cast<int>(std::ceil(n)));
  }
  std::string why;
  if (r.best_p >= r.level)
    why = "n = " + std::to_string(n1) + " + " + std::to_string(n2) + " cannot reach p < " + level_text +
          " (best possible " + (r.best_p > min_two_sided_p(n1, n2) ? "Holm-adjusted " : "") + "p " +
          fmt("%.3g", r.best_p) + ")";
  else if (r.significant)
    why = p_text + " < " + level_text + " but " + change_text + " < min effect " + pct(min_effect);
  else
    why = p_text + " >= " + (j.look ? "" : "alpha ") + level_text;
  if (!reachable)
    // The interval would be the range of the ratios seen: it bounds nothing.
    why += "; no " + (j.look ? "repeated 1 - " + fmt("%.3g", 1 - j.coverage) : fmt("%.4g%%", j.coverage * 100)) +
           " interval is bounded at n = " + std::to_string(n1) + " + " + std::to_string(n2);
  else if (beyond)
    why += "; the " + interval + " lies beyond " + pct(min_effect) + ": a change larger than min effect, not yet significant";
  else if (std::isfinite(e.lo) && std::isfinite(e.hi))
    why += "; the " + interval + " does not exclude a change of " + pct(min_effect);
  r.reason = why + "; about " + std::to_string(r.samples_needed) + " samples per arm would decide";
}

int severity(Verdict v) {
  switch (v) {
    case Verdict::regression: return 3;
    case Verdict::improvement: return 2;
    case Verdict::inconclusive: return 1;
    case Verdict::equivalent: return 0;
  }
  return 1;
}

// IOPS is bandwidth over the block size: when every I/O of the cell has one
// size (a single bs, no ranges or splits, one direction), it is not a second test.
bool fixed_block_size(const Scenario& sc, const Cell& cell) {
  if (!sc.fio.job_file.empty()) return false;
  std::string bs, rw;
  auto look = [&](const std::string& k, const std::string& v) {
    if (k == "bs" || k == "blocksize") bs = v;
    if (k == "rw" || k == "readwrite") rw = v;
    if (k == "bsrange" || k == "blocksize_range" || k == "bssplit")
      bs = "varies";
  };
  for (const auto& [k, v] : sc.fio.job) look(k, v);
  for (const auto& [k, v] : cell) look(k, v);
  if (bs.empty() || bs == "varies") return false;
  if (bs.find_first_of(",:-") != std::string::npos) return false;
  return rw.find("rw") == std::string::npos && rw != "readwrite";
}

// The information fractions of a sequential run's looks 1..look, from the ok
// samples of the primary family: a two-sample comparison of n and m samples
// carries information n·m / (n + m), the planned n = m = 2·looks carries
// looks. The family's least informed member sets a look's fraction (less
// information spends less alpha: stricter, never laxer). The last planned
// look spends what is left (t = 1). Looks that added nothing are left out:
// their data is the earlier look's, judged again at its level. With every
// planned sample ok the fractions are k / looks exactly (n = m = 2k). Empty
// without a look size (judged at k / looks).
std::vector<double> information_fractions(const std::vector<MetricResult*>& family,
                                          const AnalysisOptions::Sequential& sq) {
  if (sq.look_size <= 0 || sq.looks <= 0) return {};
  auto before = [](const std::vector<int>& indices, int limit) {
    return static_cast<double>(std::count_if(indices.begin(), indices.end(), [&](int i) { return i < limit; }));
  };
  std::vector<double> t;
  for (int k = 1; k <= sq.look; ++k) {
    double least = 1;
    for (const MetricResult* r : family) {
      const double n = before(r->base.plan_indices, k * sq.look_size);
      const double m = before(r->candidate.plan_indices, k * sq.look_size);
      const double info = n + m > 0 ? n * m / (n + m) / sq.looks : 0;
      least = std::min(least, info);
    }
    if (k == sq.looks) least = 1;
    if (least > (t.empty() ? 0.0 : t.back())) t.push_back(std::min(1.0, least));
  }
  return t;
}

}  // namespace

const std::vector<MetricInfo>& all_metrics() {
  static const std::vector<MetricInfo> k_metrics = {
      {Metric::bandwidth, "bandwidth", "bandwidth", "B/s", Better::higher},
      {Metric::iops, "iops", "IOPS", "IO/s", Better::higher},
      {Metric::read_bandwidth, "read_bandwidth", "read bandwidth", "B/s", Better::higher, true},
      {Metric::write_bandwidth, "write_bandwidth", "write bandwidth", "B/s", Better::higher, true},
      {Metric::read_iops, "read_iops", "read IOPS", "IO/s", Better::higher, true},
      {Metric::write_iops, "write_iops", "write IOPS", "IO/s", Better::higher, true},
      {Metric::clat_p99, "clat_p99", "clat p99", "ns", Better::lower},
      {Metric::guest_sys_cpu_per_gib, "guest_sys_cpu_per_gib", "guest sys CPU/GiB", "s/GiB", Better::lower},
      {Metric::backend_cpu_per_gib, "backend_cpu_per_gib", "backend CPU/GiB", "s/GiB", Better::lower},
      {Metric::backend_faults_per_gib, "backend_faults_per_gib", "backend faults/GiB", "faults/GiB", Better::lower},
  };
  return k_metrics;
}

const MetricInfo& metric_info(Metric m) {
  for (const auto& mi : all_metrics())
    if (mi.metric == m) return mi;
  return all_metrics().front();
}

std::optional<Metric> metric_from(const std::string& key) {
  for (const auto& mi : all_metrics())
    if (key == mi.key) return mi.metric;
  return std::nullopt;
}

std::optional<double> metric_value(const Sample& s, Metric m) {
  const double gib = s.fio.bytes / k_gib;
  switch (m) {
    case Metric::bandwidth: return s.fio.bw_bytes;
    case Metric::iops: return s.fio.iops;
    case Metric::read_bandwidth:
    case Metric::write_bandwidth:
    case Metric::read_iops:
    case Metric::write_iops: {
      // Each direction apart only when the sample moved both: otherwise it is
      // the bandwidth and IOPS above.
      if (s.fio.read_bw_bytes <= 0 || s.fio.write_bw_bytes <= 0) return std::nullopt;
      return m == Metric::read_bandwidth ? s.fio.read_bw_bytes
             : m == Metric::write_bandwidth ? s.fio.write_bw_bytes
             : m == Metric::read_iops       ? s.fio.read_iops
                                            : s.fio.write_iops;
    }
    case Metric::clat_p99:
      if (s.fio.clat_p99_ns <= 0) return std::nullopt;
      return s.fio.clat_p99_ns;
    case Metric::guest_sys_cpu_per_gib:
      if (gib <= 0 || s.guest.guest_sys_s <= 0) return std::nullopt;
      return s.guest.guest_sys_s / gib;
    case Metric::backend_cpu_per_gib: {
      double cpu = s.backend_usage.user_s + s.backend_usage.sys_s;
      if (gib <= 0 || cpu <= 0) return std::nullopt;
      return cpu / gib;
    }
    case Metric::backend_faults_per_gib: {
      const double faults = static_cast<double>(s.backend_usage.minor_faults + s.backend_usage.major_faults);
      if (gib <= 0 || faults <= 0) return std::nullopt;
      return faults / gib;
    }
  }
  return std::nullopt;
}

std::string to_string(Verdict v) {
  switch (v) {
    case Verdict::improvement: return "improvement";
    case Verdict::regression: return "regression";
    case Verdict::equivalent: return "equivalent";
    case Verdict::inconclusive: return "inconclusive";
  }
  return "inconclusive";
}

std::string verdict_key(Verdict v) {
  return to_string(v);
}

int GateResult::not_clean() const {
  int n = 0;
  for (const auto& c : checks) n += c.status != "ok";
  return n;
}

double GateResult::fio_s() const {
  double s = 0;
  for (const auto& c : checks) s += c.fio_s;
  return s;
}

Comparison analyze(const Scenario& scenario, const std::vector<Sample>& samples, const AnalysisOptions& o) {
  if (o.base_arm.empty() || o.candidate_arm.empty())
    throw std::invalid_argument("analysis needs a base arm and a candidate arm");
  if (o.base_arm == o.candidate_arm)
    throw std::invalid_argument("base and candidate are the same arm '" + o.base_arm + "'");

  std::vector<const Sample*> ordered;
  std::vector<std::string> arms_seen;
  for (const auto& s : samples) {
    if (std::find(arms_seen.begin(), arms_seen.end(), s.arm) == arms_seen.end()) arms_seen.push_back(s.arm);
    if (s.arm == o.base_arm || s.arm == o.candidate_arm) ordered.push_back(&s);
  }
  for (const auto* arm : {&o.base_arm, &o.candidate_arm}) {
    bool any = std::any_of(ordered.begin(), ordered.end(), [&](const Sample* s) { return s->arm == *arm; });
    if (!any) {
      std::string seen;
      for (const auto& a : arms_seen) seen += (seen.empty() ? "" : ", ") + a;
      throw std::invalid_argument("no samples of arm '" + *arm + "' (arms in the samples: " +
                                  (seen.empty() ? "none" : seen) + ")");
    }
  }
  std::stable_sort(ordered.begin(), ordered.end(), [](const Sample* a, const Sample* b) {
    return std::pair(a->run_id, a->plan_index) < std::pair(b->run_id, b->plan_index);
  });

  Comparison c;
  c.scenario = scenario.name;
  c.base_arm = o.base_arm;
  c.candidate_arm = o.candidate_arm;
  c.alpha = scenario.alpha;
  c.min_effect = scenario.min_effect;
  c.confidence = o.confidence;
  c.bootstrap_resamples = o.bootstrap_resamples;
  c.seed = o.seed;
  c.primary = o.primary;
  c.block_by_run = o.block_by_run;

  std::vector<Group> groups;
  std::map<std::pair<std::string, std::string>, std::size_t> index;
  std::vector<std::pair<std::string, int>> base_excl, cand_excl;
  int loaded = 0, load_checked = 0;
  double max_load = 0;

  for (const Sample* s : ordered) {
    if (std::find(c.run_ids.begin(), c.run_ids.end(), s->run_id) == c.run_ids.end()) c.run_ids.push_back(s->run_id);
    if (std::find(c.backends.begin(), c.backends.end(), s->backend) == c.backends.end()) {
      c.backends.push_back(s->backend);
      c.backend_cmdlines.emplace_back(s->backend, s->backend_cmdline);
    }
    auto key = std::pair(s->backend, cell_label(s->cell));
    auto [it, fresh] = index.emplace(key, c.cells.size());
    if (fresh) {
      CellResult cr;
      cr.backend = s->backend;
      cr.cell = s->cell;
      cr.label = key.second.empty() ? "(default)" : key.second;
      cr.direction = direction_of(scenario, s->cell);
      c.cells.push_back(std::move(cr));
      groups.emplace_back();
    }
    CellResult& cr = c.cells[it->second];
    Group& g = groups[it->second];
    const bool is_base = s->arm == o.base_arm;
    ArmCell& ac = is_base ? cr.base : cr.candidate;
    if (ac.kernel.empty()) ac.kernel = s->kernel;
    std::string& arm_kernel = is_base ? c.base_kernel : c.candidate_kernel;
    if (arm_kernel.empty()) arm_kernel = s->kernel;

    if (o.host_cores > 0) {
      ++load_checked;
      double load = std::max(s->host_load_before, s->host_load_after);
      if (load > o.host_cores) ++loaded;
      max_load = std::max(max_load, load);
    }
    if (s->health.status != SampleStatus::ok) {
      ++ac.excluded;
      add_status(ac.excluded_by_status, to_string(s->health.status));
      add_status(is_base ? base_excl : cand_excl, to_string(s->health.status));
      ++(is_base ? c.base_excluded : c.candidate_excluded);
      continue;
    }
    ++ac.included;
    ++(is_base ? c.base_included : c.candidate_included);
    (is_base ? g.base_ok : g.candidate_ok).push_back(s);
  }
  // Backends first, in order of appearance; cells keep their order within one.
  std::vector<std::size_t> order(c.cells.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    auto pos = [&](const std::string& be) { return std::find(c.backends.begin(), c.backends.end(), be) - c.backends.begin(); };
    return pos(c.cells[a].backend) < pos(c.cells[b].backend);
  });
  {
    std::vector<CellResult> cells;
    std::vector<Group> gs;
    for (auto i : order) {
      cells.push_back(std::move(c.cells[i]));
      gs.push_back(std::move(groups[i]));
    }
    c.cells = std::move(cells);
    groups = std::move(gs);
  }

  const std::vector<Metric> metrics = [&] {
    if (!o.metrics.empty()) return o.metrics;
    std::vector<Metric> all;
    for (const auto& mi : all_metrics()) all.push_back(mi.metric);
    return all;
  }();

  for (std::size_t ci = 0; ci < c.cells.size(); ++ci) {
    CellResult& cr = c.cells[ci];
    const Group& g = groups[ci];
    for (auto [ok, ac] : {std::pair(&g.base_ok, &cr.base), std::pair(&g.candidate_ok, &cr.candidate)}) {
      std::vector<double> wbt, nrwt;
      std::vector<std::pair<double, const Sample*>> by_bw;
      for (const Sample* s : *ok) {
        wbt.push_back(s->guest.writeback_tmp_peak_kb);
        nrwt.push_back(s->guest.nr_writeback_temp_peak);
        by_bw.emplace_back(s->fio.bw_bytes, s);
      }
      ac->writeback_tmp_peak_kb = summarize(wbt);
      ac->nr_writeback_temp_peak = summarize(nrwt);
      if (!by_bw.empty()) {
        std::stable_sort(by_bw.begin(), by_bw.end(), [](auto& a, auto& b) { return a.first < b.first; });
        const Sample* m = by_bw[(by_bw.size() - 1) / 2].second;
        ac->median_fio = m->fio;
        ac->median_plan_index = m->plan_index;
      }
    }
    for (Metric m : metrics) {
      MetricResult r;
      r.metric = m;
      for (auto [ok, am] : {std::pair(&g.base_ok, &r.base), std::pair(&g.candidate_ok, &r.candidate)})
        for (const Sample* s : *ok)
          if (auto v = metric_value(*s, m)) {
            am->values.push_back(*v);
            am->plan_indices.push_back(s->plan_index);
            am->run_ids.push_back(s->run_id);
          }
      if (r.base.values.empty() && r.candidate.values.empty()) {
        if (!metric_info(m).mixed_only) cr.unmeasured.push_back(metric_info(m).key);
        continue;
      }
      r.base.summary = summarize(r.base.values);
      r.candidate.summary = summarize(r.candidate.values);
      r.ratio = r.base.summary.median != 0 ? r.candidate.summary.median / r.base.summary.median : k_nan;
      r.change = r.ratio - 1;
      // Every test its own bootstrap stream (the run's seed chained through
      // FNV-1a of its names): a cell's interval must not depend on which other
      // cells or metrics were analysed with it.
      std::uint64_t seed = fnv1a64(cr.backend + '\n' + cr.label + '\n' + metric_info(m).key, o.seed);
      r.ratio_ci = bootstrap_median_ratio_ci(r.base.values, r.candidate.values,
                                             {o.bootstrap_resamples, o.confidence, seed});
      r.hodges_lehmann = hodges_lehmann_ratio(r.base.values, r.candidate.values);
      r.hodges_lehmann_ci = hodges_lehmann_ratio_ci(r.base.values, r.candidate.values, o.confidence);
      r.test = mann_whitney_u(r.base.values, r.candidate.values);
      if (o.block_by_run) {
        RunStrata rs(r);
        if (rs.runs > 1) {
          r.blocks = static_cast<int>(rs.strata.size());
          r.test = van_elteren(rs.strata);
          r.hodges_lehmann = stratified_hodges_lehmann_ratio(rs.strata);
          r.hodges_lehmann_ci = stratified_hodges_lehmann_ci(rs.strata, {o.bootstrap_resamples, o.confidence, seed});
        }
      }
      r.primary = m == o.primary;
      r.tested = r.primary || m != Metric::iops || o.primary != Metric::bandwidth ||
                 !fixed_block_size(scenario, cr.cell);
      cr.metrics.push_back(std::move(r));
    }
  }

  // Two Holm families: the primary metric over the cells (the verdict), and
  // every other tested metric over the cells (reported beside it). A test with
  // an empty arm has nothing to say and stays out of them.
  std::map<bool, std::vector<MetricResult*>> families;
  for (auto& cr : c.cells)
    for (auto& r : cr.metrics)
      if (r.tested && r.base.summary.n > 0 && r.candidate.summary.n > 0) families[r.primary].push_back(&r);
  // A sequential run's primary family is judged at this look: Holm's step-down
  // with each step's boundary from the design at alpha / (hypotheses left).
  std::optional<SequentialLook> look;
  if (o.sequential.look > 0 && !families[true].empty()) {
    const int family = static_cast<int>(families[true].size());
    auto t = information_fractions(families[true], o.sequential);
    look = t.empty() ? sequential_look(o.sequential.look, o.sequential.looks, c.alpha, family)
                     : sequential_look(t, o.sequential.look, o.sequential.looks, c.alpha, family);
  }
  for (auto& [primary, members] : families) {
    std::vector<double> p;
    for (auto* r : members) p.push_back(r->test.p);
    auto adj = holm_adjust(p);
    const bool seq = primary && look;
    for (std::size_t i = 0; i < members.size(); ++i) {
      members[i]->p_adjusted = adj[i];
      double best = min_two_sided_p(members[i]->base.summary.n, members[i]->candidate.summary.n);
      members[i]->best_p = seq ? best : std::min(1.0, best * static_cast<double>(members.size()));
      members[i]->level = c.alpha;
      members[i]->significant = adj[i] < c.alpha;
    }
    if (!seq) continue;
    std::vector<std::size_t> order(members.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return p[a] < p[b]; });
    bool rejecting = true;
    for (std::size_t rank = 0; rank < order.size(); ++rank) {
      MetricResult* r = members[order[rank]];
      r->level = look->test_levels[rank];
      rejecting = rejecting && r->test.p < r->level;
      r->significant = rejecting;
    }
  }
  if (look) {
    c.look = look->look;
    c.looks = look->looks;
    c.information = look->information;
  }

  int worst = -1;
  bool all_equivalent = true;
  for (auto& cr : c.cells) {
    const MetricResult* bandwidth = nullptr;
    for (auto& r : cr.metrics)
      if (r.metric == Metric::bandwidth) bandwidth = &r;
    for (auto& r : cr.metrics) {
      if (!r.tested) continue;
      Judge j;
      j.alpha = c.alpha;
      j.family = std::max<std::size_t>(1, families[r.primary].size());
      j.coverage = 1 - 2 * c.alpha / static_cast<double>(j.family);
      if (r.primary && look) {
        j.look = &*look;
        j.coverage = 1 - look->equivalence_level;
      }
      // The Hodges–Lehmann interval at a coverage: within runs when blocked.
      std::optional<RunStrata> rs;
      if (r.blocks > 0) rs.emplace(r);
      auto interval = [&](double coverage, const char* what) {
        if (!rs) return hodges_lehmann_ratio_ci(r.base.values, r.candidate.values, coverage);
        return stratified_hodges_lehmann_ci(
            rs->strata, {o.bootstrap_resamples, coverage,
                         fnv1a64(cr.backend + '\n' + cr.label + '\n' + metric_info(r.metric).key + '\n' + what, o.seed)});
      };
      r.equivalence_ci = interval(j.coverage, "equivalence");
      r.ci = r.hodges_lehmann_ci;
      r.ci_coverage = o.confidence;
      if (j.look) {
        r.at_look = true;
        r.ci_coverage = 1 - r.level;
        r.ci = interval(r.ci_coverage, "repeated");
      }
      decide(r, c.min_effect, j);
    }
    for (auto& r : cr.metrics)
      if (!r.tested && bandwidth) {
        r.verdict = bandwidth->verdict;
        r.p_adjusted = bandwidth->p_adjusted;
        r.level = bandwidth->level;
        r.significant = bandwidth->significant;
        r.best_p = bandwidth->best_p;
        r.ci = bandwidth->ci;
        r.ci_coverage = bandwidth->ci_coverage;
        r.at_look = bandwidth->at_look;
        r.reason = "IOPS is bandwidth over a fixed block size here: bandwidth's test, not a second one";
      }
    cr.verdict = Verdict::inconclusive;
    for (auto& r : cr.metrics)
      if (r.primary) cr.verdict = r.verdict;
    worst = std::max(worst, severity(cr.verdict));
    all_equivalent &= cr.verdict == Verdict::equivalent;
  }
  c.verdict = worst == 3 ? Verdict::regression
              : worst == 2 ? Verdict::improvement
              : (worst == 0 && all_equivalent) ? Verdict::equivalent
                                               : Verdict::inconclusive;

  // Noise warnings.
  if (o.tcg)
    c.warnings.push_back({"tcg", "guests ran under TCG (software emulation, no KVM): absolute figures are not "
                                 "hardware figures; ratios within this run are the result"});
  if (loaded > 0)
    c.warnings.push_back({"host_load", "host load was above the " + std::to_string(o.host_cores) +
                                           " cores during " + std::to_string(loaded) + " of " +
                                           std::to_string(load_checked) + " samples (max " +
                                           fmt("%.2f", max_load) + ")"});
  for (auto [arm, counts, n] : {std::tuple(&c.base_arm, &base_excl, c.base_excluded),
                                std::tuple(&c.candidate_arm, &cand_excl, c.candidate_excluded)})
    if (n > 0)
      c.warnings.push_back({"excluded_samples", std::to_string(n) + " sample" + (n == 1 ? "" : "s") + " of " + *arm +
                                                    " excluded (" + describe_counts(*counts) +
                                                    "): kept in the store, not in the statistics"});
  for (const auto& cr : c.cells)
    for (bool base : {true, false}) {
      std::string list;
      for (const auto& r : cr.metrics) {
        const Summary& s = base ? r.base.summary : r.candidate.summary;
        if (std::isfinite(s.cv) && s.cv > o.cv_warn)
          list += (list.empty() ? "" : ", ") + std::string(metric_info(r.metric).label) + " " + pct(s.cv);
      }
      if (!list.empty())
        c.warnings.push_back({"high_cv", (base ? c.base_arm : c.candidate_arm) + " on " + cr.backend + " " +
                                             cr.label + ": CV above " + pct(o.cv_warn) + " (" + list + ")"});
    }
  return c;
}

}  // namespace kab::core
