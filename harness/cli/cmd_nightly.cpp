// kab nightly, kab history: a moving tree measured every night against its
// own history. A night resolves the suite's ref, builds the head (from the
// cache when unchanged; as the commits on the suite's base in its lane when
// it descends from it), runs each scenario through the one run path, stores
// the run tagged with the night, the commit and the host, and compares the
// head with the baseline: the samples of the last nights that did not
// regress, or a pinned reference run interleaved with the head in the same
// run. A regression that persisted the suite's number of nights is an alert.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "cli/app.h"
#include "cli/parse.h"
#include "cli/reporting.h"
#include "cli/merge.h"
#include "cli/runner.h"
#include "core/changepoint.h"
#include "core/hash.h"
#include "core/nightly.h"
#include "core/stats.h"
#include "core/system.h"
#include "core/text.h"
#include "kernel/builder.h"
#include "kernel/git_source.h"
#include "proc/runner.h"
#include "report/format.h"
#include "report/formats.h"
#include "report/trend.h"
#include "scenario/suite.h"
#include "store/store.h"
#include "vm/platforms.h"

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

namespace kab::cli {

namespace {

constexpr const char* k_head = "head";
constexpr const char* k_baseline = "baseline";
constexpr const char* k_reference = "reference";

// The nights of SUITE's SCENARIO stored in DB, oldest first; only those before run BEFORE when it is not 0.
std::vector<core::Night> nights_of(store::ResultStore& db, const std::string& suite, const std::string& scenario,
                                   std::int64_t before = 0) {
  std::vector<core::Night> out;
  for (const auto& r : db.runs()) {
    if (store::run_fact(r, "nightly.suite") != suite || store::run_fact(r, "nightly.scenario") != scenario) continue;
    if (before != 0 && r.id >= before) continue;
    core::Night n;
    n.run = r.id;
    n.label = store::run_fact(r, "nightly.night");
    n.commit = store::run_fact(r, "nightly.commit");
    n.scenario_hash = store::run_fact(r, "nightly.scenario_hash");
    n.complete = r.status == store::RunStatus::complete;
    n.verdict = store::run_fact(r, "nightly.verdict");
    n.alert = store::run_fact(r, "nightly.alert") == "yes";
    for (const auto& id : core::split(store::run_fact(r, "nightly.baseline"), ','))
      if (!core::trim(id).empty()) n.baseline.push_back(std::stoll(core::trim(id)));
    out.push_back(n);
  }
  return out;
}

// Loads a suite; prints every diagnostic and throws Fatal (exit 2) when there is any.
scenario::Suite load_suite_or_exit(const std::string& path) {
  auto parsed = scenario::load_suite(path, paths().scenarios_dir);
  if (!parsed.errors.empty()) {
    std::fputs(scenario::format_errors(parsed.errors).c_str(), stderr);
    throw Fatal(path + ": " + std::to_string(parsed.errors.size()) + " error(s)", k_exit_usage);
  }
  return *parsed.value;
}

std::string short_commit(const std::string& c) { return c.substr(0, 12); }

std::string subject_of(const std::string& tree, const std::string& commit) {
  auto [ok, out] = proc::capture({"git", "-C", tree, "log", "-1", "--format=%s", commit});
  return ok ? core::trim(out) : "";
}

// One row of a suite's history: a night, its head, the primary metric's
// median over the head's ok samples of each (backend, cell), the verdict.
struct HistoryRow {
  core::Night night;
  std::string subject;
  std::map<std::string, double> medians;   // "backend cell" → median
  std::map<std::string, int> counts;
};

struct History {
  std::string suite, scenario;
  core::Metric metric = core::Metric::bandwidth;
  std::vector<std::string> columns;   // "backend cell", in order of first appearance
  std::vector<HistoryRow> rows;
};

History history_of(store::ResultStore& db, const std::string& suite, const std::string& scenario, core::Metric metric) {
  History h;
  h.suite = suite;
  h.scenario = scenario;
  h.metric = metric;
  for (const auto& n : nights_of(db, suite, scenario)) {
    HistoryRow row;
    row.night = n;
    if (auto r = db.run(n.run)) row.subject = store::run_fact(*r, "nightly.subject");
    std::map<std::string, std::vector<double>> values;
    for (const auto& s : db.samples(n.run, store::WithArtifacts::no)) {
      if (s.arm != k_head || s.health.status != core::SampleStatus::ok) continue;
      const std::string label = core::cell_label(s.cell);
      const std::string column = s.backend + " " + (label.empty() ? "(default)" : label);
      if (std::find(h.columns.begin(), h.columns.end(), column) == h.columns.end()) h.columns.push_back(column);
      if (auto v = core::metric_value(s, metric)) values[column].push_back(*v);
    }
    for (auto& [column, v] : values) {
      row.medians[column] = core::median(v);
      row.counts[column] = static_cast<int>(v.size());
    }
    h.rows.push_back(row);
  }
  return h;
}

// A step (or a drift) in each column's series of nightly medians
// (core/changepoint.h: Pettitt's statistic by permutation, alpha 1% per
// column). Only what is significant is listed; fewer than 4 nights are not tested.
struct ColumnChange {
  std::string column;
  core::ChangePoint point;
  std::string night, commit;   // the first night of the new level
};

std::vector<ColumnChange> change_points(const History& h) {
  std::vector<ColumnChange> out;
  for (const auto& column : h.columns) {
    std::vector<double> series;
    std::vector<const HistoryRow*> rows;
    for (const auto& r : h.rows)
      if (auto it = r.medians.find(column); it != r.medians.end()) {
        series.push_back(it->second);
        rows.push_back(&r);
      }
    const core::ChangePoint p = core::detect_change_point(series);
    if (p.index < 0) continue;
    out.push_back({column, p, rows[static_cast<std::size_t>(p.index)]->night.label,
                   rows[static_cast<std::size_t>(p.index)]->night.commit});
  }
  return out;
}

std::string change_text(const History& h, const ColumnChange& c) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%+.1f%%, p %.3g", c.point.change * 100, c.point.p);
  const std::string what = c.point.kind == "step"         ? "a step"
                           : c.point.kind == "drift"      ? "a drift (the level moves within both sides)"
                           : c.point.kind == "too_recent" ? "a change too recent to be a level yet"
                           : c.point.kind == "too_early"  ? "a change after too few nights to be a level"
                                                          : c.point.kind;
  return c.column + ": " + what + " from night " + c.night + " (" + short_commit(c.commit) + "), " +
         core::metric_info(h.metric).label + " " + buf;
}

// A metric's value as people read it: MiB/s for bandwidth, else the unit's own.
double display_value(core::Metric m, double v) {
  return std::string(core::metric_info(m).unit) == "B/s" ? v / (1024.0 * 1024.0) : v;
}

std::string shown(core::Metric m, double v) {
  char buf[48];
  std::snprintf(buf, sizeof buf, std::string(core::metric_info(m).unit) == "B/s" ? "%.1f" : "%.4g",
                display_value(m, v));
  return buf;
}

std::string shown_unit(core::Metric m) {
  const auto& info = core::metric_info(m);
  return std::string(info.unit) == "B/s" ? "MiB/s" : info.unit;
}

std::string verdict_text(const core::Night& n) {
  if (n.verdict.empty()) return n.complete ? "not judged" : "interrupted";
  if (n.verdict == "first") return "first night (no baseline yet)";
  if (n.verdict == "failed") return "failed (no sample of the head ok)";
  return n.verdict + (n.alert ? " (ALERT)" : "");
}

std::string history_text(const History& h) {
  std::string out = "kab history: suite " + h.suite + ", scenario " + h.scenario + ": " +
                    core::metric_info(h.metric).label + " (" + shown_unit(h.metric) +
                    "), median of each night's head samples (n)\n";
  std::vector<std::vector<std::string>> table;
  std::vector<std::string> head = {"night", "run", "commit"};
  head.insert(head.end(), h.columns.begin(), h.columns.end());
  head.push_back("verdict");
  table.push_back(head);
  for (const auto& r : h.rows) {
    std::vector<std::string> line = {r.night.label, std::to_string(r.night.run), short_commit(r.night.commit)};
    for (const auto& c : h.columns) {
      auto it = r.medians.find(c);
      line.push_back(it == r.medians.end() ? "-" : shown(h.metric, it->second) + " (" + std::to_string(r.counts.at(c)) + ")");
    }
    line.push_back(verdict_text(r.night));
    table.push_back(line);
  }
  std::vector<std::size_t> width(head.size(), 0);
  for (const auto& line : table)
    for (std::size_t i = 0; i < line.size(); ++i) width[i] = std::max(width[i], line[i].size());
  for (const auto& line : table) {
    std::string text;
    for (std::size_t i = 0; i < line.size(); ++i) {
      text += line[i];
      if (i + 1 < line.size()) text += std::string(width[i] - line[i].size() + 2, ' ');
    }
    out += core::trim(text) + "\n";
  }
  if (h.rows.empty()) out += "(no nights stored)\n";
  for (const auto& c : change_points(h)) out += "change point: " + change_text(h, c) + "\n";
  return out;
}

json history_json(const History& h) {
  json j = {{"suite", h.suite}, {"scenario", h.scenario}, {"metric", core::metric_info(h.metric).key},
            {"unit", core::metric_info(h.metric).unit}, {"columns", h.columns}, {"nights", json::array()}};
  for (const auto& r : h.rows) {
    json cells = json::object();
    for (const auto& c : h.columns)
      if (r.medians.count(c)) cells[c] = {{"median", r.medians.at(c)}, {"n", r.counts.at(c)}};
    j["nights"].push_back({{"night", r.night.label},
                           {"run", r.night.run},
                           {"commit", r.night.commit},
                           {"subject", r.subject},
                           {"complete", r.night.complete},
                           {"verdict", r.night.verdict},
                           {"alert", r.night.alert},
                           {"cells", cells}});
  }
  j["change_points"] = json::array();
  for (const auto& c : change_points(h))
    j["change_points"].push_back({{"column", c.column},
                                  {"kind", c.point.kind},
                                  {"night", c.night},
                                  {"commit", c.commit},
                                  {"change", c.point.change},
                                  {"p", c.point.p},
                                  {"text", change_text(h, c)}});
  return j;
}

// The trend page's series of a history: one per column, the nights of
// BASELINE marked, each night linked to its comparison page relative to DIR.
std::vector<report::TrendSeries> trend_series(store::ResultStore& db, const History& h,
                                              const std::vector<std::int64_t>& baseline, const std::string& dir) {
  std::vector<report::TrendSeries> out;
  const auto changes = change_points(h);
  for (const auto& column : h.columns) {
    report::TrendSeries t;
    t.title = h.scenario + ": " + column;
    t.metric = std::string(core::metric_info(h.metric).label) + " (" + shown_unit(h.metric) + ")";
    for (const auto& r : h.rows) {
      auto it = r.medians.find(column);
      if (it == r.medians.end()) continue;
      report::TrendPoint p;
      p.night = r.night.label;
      p.run = r.night.run;
      p.commit = short_commit(r.night.commit);
      p.value = display_value(h.metric, it->second);
      p.n = r.counts.at(column);
      p.verdict = r.night.verdict;
      p.alert = r.night.alert;
      p.baseline = std::find(baseline.begin(), baseline.end(), r.night.run) != baseline.end();
      if (auto run = db.run(r.night.run)) {
        const std::string reports = store::run_fact(*run, "nightly.reports");
        if (!reports.empty() && fs::exists(fs::path(reports) / "comparison.html"))
          p.link = fs::relative(fs::path(reports) / "comparison.html", dir).string();
      }
      t.points.push_back(p);
    }
    for (const auto& c : changes)
      if (c.column == column) {
        for (std::size_t i = 0; i < t.points.size(); ++i)
          if (t.points[i].night == c.night) t.change_index = static_cast<int>(i);
        t.change_text = change_text(h, c);
      }
    out.push_back(t);
  }
  return out;
}

std::string today_utc() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

// What one scenario of a night found.
struct NightResult {
  std::string scenario;
  std::int64_t run = 0;
  std::string verdict;         // as stored in nightly.verdict
  bool alert = false;
  std::vector<std::int64_t> baseline;
  std::string change;          // the primary metric's largest change, "bandwidth -81.6%"
  std::string reports;         // the directory of its comparison reports ("" when none)
  std::string message;         // one line for people
  core::Metric metric = core::Metric::bandwidth;   // the scenario's primary metric
  json bisect;                 // kab nightly --bisect on an alert (null when none ran)
};

// ----- bisect ---------------------------------------------------------------

// One measured commit: the tested commit against the good one, interleaved in
// one run, in the cell that regressed.
struct BisectStep {
  int step = 0;                // 0: the regression confirmed (bad against good)
  std::string commit, subject;
  std::int64_t run = 0;
  double change = 0;           // tested / good − 1, the primary metric's median
  core::Interval ci;           // its interval (ratio), at coverage
  double coverage = 0.95;
  std::string decision;        // "regression" / "no regression" (step 0), "bad", "good", "undecided",
                               // "skipped" (the commit did not build: no run)
  std::string why;             // a skipped commit's build error, its first line
};

struct BisectResult {
  std::string good, bad;       // commits
  int commits = 0;             // in good..bad
  std::string column;          // the cell bisected: "backend cell"
  core::Metric metric = core::Metric::bandwidth;
  double regression = 0;       // step 0's change
  std::vector<BisectStep> steps;
  std::string first_bad;       // "" when not found
  std::string first_bad_subject;
  std::string message;
};

struct BisectRequest {
  scenario::Suite suite;
  core::KernelSpec config;
  std::string base_commit;     // the suite's base ("" none)
  std::string scenario_path;
  core::Scenario scenario;     // as the night runs it (repetitions applied)
  std::string good, bad;       // commits, good an ancestor of bad
  std::string column;          // "" = the cell that regressed most at step 0
  std::string db, command_line;
};

std::string percent(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%+.1f%%", v * 100);
  return buf;
}

std::string step_text(const BisectResult& b, const BisectStep& st) {
  if (st.decision == "skipped")
    return "step " + std::to_string(st.step) + ": " + short_commit(st.commit) + " (\"" + st.subject +
           "\") did not build, skipped: " + st.why;
  char ci[64];
  std::snprintf(ci, sizeof ci, "[%s, %s]", percent(st.ci.lo - 1).c_str(), percent(st.ci.hi - 1).c_str());
  return (st.step == 0 ? std::string("confirm") : "step " + std::to_string(st.step)) + ": " + short_commit(st.commit) +
         " (\"" + st.subject + "\") against the good " + short_commit(b.good) + ": " +
         core::metric_info(b.metric).label + " " + percent(st.change) + " " + ci + " (run " + std::to_string(st.run) +
         "): " + st.decision;
}

// The first commit of good..bad whose primary metric in the regressed cell
// is on the bad side of half the regression. Each step runs the commit
// against the good one interleaved (the scenario's repetitions per arm) and
// decides only when the change's interval (95%) lies wholly on one side of
// half the regression confirmed at step 0: a decision is wrong with at most
// 2.5%, so the commit found is the first bad one with 1 − 2.5% × steps or
// more. An interval across the threshold stops the bisection there
// (undecided: more repetitions, or two commits each with part of it).
BisectResult bisect(const BisectRequest& rq) {
  BisectResult b;
  b.good = rq.good;
  b.bad = rq.bad;
  if (auto m = core::metric_from(rq.scenario.primary_metric)) b.metric = *m;
  const std::string& tree = rq.suite.tree;
  auto [listed, out] = proc::capture({"git", "-C", tree, "rev-list", "--reverse", "--ancestry-path", rq.good + ".." + rq.bad});
  std::vector<std::string> commits;
  for (const auto& c : core::split(core::trim(out), '\n'))
    if (!core::trim(c).empty()) commits.push_back(core::trim(c));
  b.commits = static_cast<int>(commits.size());
  const bool higher = core::metric_info(b.metric).better == core::Better::higher;
  // The good end is the same kernel at every step: resolved once.
  const TreeKernel good = tree_kernel(rq.suite.tree, rq.config, ref_name(rq.suite.ref) + "-" + short_commit(rq.good),
                                      rq.good, rq.base_commit, rq.suite.base);
  auto tested_kernel = [&](const std::string& commit) {
    return tree_kernel(rq.suite.tree, rq.config, ref_name(rq.suite.ref) + "-" + short_commit(commit), commit,
                       rq.base_commit, rq.suite.base);
  };
  // A midpoint that does not build is skipped, as git bisect skip does: the
  // build error's first line, or "" when it built (now or before).
  const vm::Platform* platform = vm::find_platform(rq.scenario.guest.platform);
  const std::string arch = platform ? platform->make()->kernel_arch() : "x86_64";
  auto build_error = [&](const TreeKernel& tested) -> std::string {
    try {
      kernel::Builder(kernel_options()).build(tested.spec, arch, "");
      return "";
    } catch (const kernel::BuildError& e) {
      const std::string what = e.what();
      return what.substr(0, what.find('\n'));
    }
  };
  auto measure_kernel = [&](const TreeKernel& tested, const std::string& commit, int step) {
    RunRequest run;
    run.scenario_path = rq.scenario_path;
    run.scenario = rq.scenario;
    run.scenario.arms = {core::Arm{"good", good.spec.name, ""}, core::Arm{"tested", tested.spec.name, ""}};
    run.db_path = rq.db;
    run.command_line = rq.command_line;
    run.kernels[good.spec.name] = good.spec;
    run.kernels[tested.spec.name] = tested.spec;
    run.run_extra = {{"bisect.suite", rq.suite.name}, {"bisect.good", rq.good}, {"bisect.bad", rq.bad},
                     {"bisect.step", std::to_string(step)}, {"bisect.commit", commit}};
    const core::RunOutcome o = execute_run(run);
    if (o.interrupted) throw Fatal("interrupted", k_exit_interrupted);
    if (auto failed = arms_without_ok_sample(rq.db, o.run_id, run.scenario); !failed.empty())
      throw Fatal(no_ok_sample_message(o.run_id, failed), k_exit_run_failed);
    store::ResultStore db = store::ResultStore::open(rq.db);
    BisectStep st;
    st.step = step;
    st.commit = commit;
    st.subject = subject_of(tree, commit);
    st.run = o.run_id;
    return std::make_pair(st, analyse(db, {o.run_id}, run.scenario, "good", "tested"));
  };
  auto measure = [&](const std::string& commit, int step) { return measure_kernel(tested_kernel(commit), commit, step); };
  auto primary_in = [&](const core::Comparison& c, const std::string& column) -> const core::MetricResult* {
    for (const auto& cell : c.cells)
      if (cell.backend + " " + cell.label == column)
        for (const auto& m : cell.metrics)
          if (m.primary) return &m;
    return nullptr;
  };
  // Step 0: the regression, bad against good, interleaved.
  auto [confirm, c0] = measure(rq.bad, 0);
  const core::MetricResult* worst = nullptr;
  for (const auto& cell : c0.cells)
    for (const auto& m : cell.metrics) {
      if (!m.primary || m.verdict != core::Verdict::regression) continue;
      if (!rq.column.empty() && cell.backend + " " + cell.label != rq.column) continue;
      if (!worst || std::abs(m.change) > std::abs(worst->change)) {
        worst = &m;
        b.column = cell.backend + " " + cell.label;
      }
    }
  if (!worst) {
    confirm.decision = "no regression";
    for (const auto& cell : c0.cells)
      for (const auto& m : cell.metrics)
        if (m.primary && (rq.column.empty() || cell.backend + " " + cell.label == rq.column)) {
          confirm.change = m.change;
          confirm.ci = m.ci;
          confirm.coverage = m.ci_coverage;
        }
    b.steps.push_back(confirm);
    b.message = "no regression of " + std::string(core::metric_info(b.metric).label) + " between " +
                short_commit(rq.good) + " and " + short_commit(rq.bad) +
                (rq.column.empty() ? "" : " in " + rq.column) + " in an interleaved run (run " +
                std::to_string(confirm.run) + "): nothing to bisect";
    return b;
  }
  confirm.change = worst->change;
  confirm.ci = worst->ci;
  confirm.coverage = worst->ci_coverage;
  confirm.decision = "regression";
  b.regression = worst->change;
  b.steps.push_back(confirm);
  const double threshold = 1 + b.regression / 2;   // as a ratio, tested / good
  if (verbosity() != Verbosity::quiet) std::fprintf(stderr, "kab: bisect %s\n", step_text(b, confirm).c_str());
  // Binary search over good..bad: lo is good (−1: the good commit), hi bad.
  int lo = -1, hi = static_cast<int>(commits.size()) - 1;
  int step = 1;
  std::set<int> skipped;
  while (hi - lo > 1) {
    // The commit nearest the middle that was not skipped.
    int mid = -1;
    const int middle = lo + (hi - lo) / 2;
    for (int d = 0; mid < 0 && d < hi - lo; ++d)
      for (int candidate : {middle - d, middle + d})
        if (mid < 0 && candidate > lo && candidate < hi && !skipped.count(candidate)) mid = candidate;
    if (mid < 0) {
      std::string list;
      for (int i = lo + 1; i <= hi; ++i) list += (list.empty() ? "" : ", ") + short_commit(commits[static_cast<std::size_t>(i)]);
      b.message = "the first bad commit is one of " + list + ": the commits before " +
                  short_commit(commits[static_cast<std::size_t>(hi)]) + " in that range did not build";
      return b;
    }
    const std::string& commit = commits[static_cast<std::size_t>(mid)];
    const TreeKernel tested = tested_kernel(commit);
    if (const std::string why = build_error(tested); !why.empty()) {
      BisectStep st;
      st.step = step++;
      st.commit = commit;
      st.subject = subject_of(tree, commit);
      st.decision = "skipped";
      st.why = why;
      b.steps.push_back(st);
      if (verbosity() != Verbosity::quiet) std::fprintf(stderr, "kab: bisect %s\n", step_text(b, st).c_str());
      skipped.insert(mid);
      continue;
    }
    auto [st, c] = measure_kernel(tested, commit, step);
    const core::MetricResult* m = primary_in(c, b.column);
    if (m) {
      st.change = m->change;
      st.ci = m->ci;
      st.coverage = m->ci_coverage;
    }
    const bool bad_side = m && std::isfinite(m->ci.lo) && (higher ? m->ci.hi < threshold : m->ci.lo > threshold);
    const bool good_side = m && std::isfinite(m->ci.lo) && (higher ? m->ci.lo > threshold : m->ci.hi < threshold);
    st.decision = bad_side ? "bad" : good_side ? "good" : "undecided";
    b.steps.push_back(st);
    if (verbosity() != Verbosity::quiet) std::fprintf(stderr, "kab: bisect %s\n", step_text(b, st).c_str());
    if (bad_side) hi = mid;
    else if (good_side) lo = mid;
    else {
      b.message = "undecided at " + short_commit(st.commit) + ": its interval holds the threshold (" +
                  percent(threshold - 1) + ", half the regression); the first bad commit is in " +
                  short_commit(lo < 0 ? rq.good : commits[static_cast<std::size_t>(lo)]) + ".." +
                  short_commit(commits[static_cast<std::size_t>(hi)]);
      return b;
    }
    ++step;
  }
  b.first_bad = commits[static_cast<std::size_t>(hi)];
  b.first_bad_subject = subject_of(tree, b.first_bad);
  b.message = "first bad commit: " + short_commit(b.first_bad) + " (\"" + b.first_bad_subject + "\"), ";
  const auto measured = static_cast<std::size_t>(
      std::count_if(b.steps.begin() + 1, b.steps.end(), [](const BisectStep& st) { return st.decision != "skipped"; }));
  if (measured == 0 && skipped.empty()) {
    b.message += "the range's only commit; the regression confirmed in run " + std::to_string(b.steps[0].run);
  } else {
    char conf[32];
    std::snprintf(conf, sizeof conf, "%.1f%%", 100 * (1 - 0.025 * static_cast<double>(measured)));
    b.message += std::to_string(measured) + " step(s) over " + std::to_string(commits.size()) +
                 " commit(s); each decision wrong with at most 2.5%, so with " + conf + " or more";
    if (!skipped.empty()) b.message += "; " + std::to_string(skipped.size()) + " commit(s) skipped: they did not build";
  }
  return b;
}

json bisect_json(const BisectResult& b) {
  json j = {{"good", b.good},           {"bad", b.bad},
            {"commits", b.commits},     {"cell", b.column},
            {"metric", core::metric_info(b.metric).key}, {"regression", b.regression},
            {"first_bad", b.first_bad}, {"first_bad_subject", b.first_bad_subject},
            {"message", b.message},     {"steps", json::array()}};
  for (const auto& st : b.steps)
    j["steps"].push_back({{"step", st.step},
                          {"commit", st.commit},
                          {"subject", st.subject},
                          {"run", st.run},
                          {"change", st.change},
                          {"ci", {st.ci.lo - 1, st.ci.hi - 1}},
                          {"coverage", st.coverage},
                          {"decision", st.decision},
                          {"why", st.why}});
  return j;
}

std::string bisect_text(const BisectResult& b) {
  std::string out = "kab bisect " + short_commit(b.good) + ".." + short_commit(b.bad) + " (" + std::to_string(b.commits) +
                    " commit(s))" + (b.column.empty() ? "" : ", cell " + b.column) + "\n";
  for (const auto& st : b.steps) out += "  " + step_text(b, st) + "\n";
  return out + b.message + "\n";
}

void write_bisect(const BisectResult& b, const std::string& dir) {
  fs::create_directories(dir);
  std::ofstream(fs::path(dir) / "bisect.json") << bisect_json(b).dump(2) << "\n";
  std::ofstream(fs::path(dir) / "bisect.txt") << bisect_text(b);
}

}  // namespace

int cmd_nightly(const std::vector<std::string>& args) {
  CLI::App app{"One night of a suite: build the head of its ref, run its scenarios, compare each with the baseline "
               "(the last nights that did not regress, or a pinned reference run beside the head) and alert on a "
               "regression that persisted. Exit 0 no alert, 1 a regression alert, 2 bad input, 3 the night could "
               "not run.",
               "nightly"};
  std::string suite_path, db_path = paths().default_db, out_dir, night;
  Output out;
  app.add_option("suite", suite_path, "the suite file (YAML: tree, scenarios, baseline, alert)")->required();
  app.add_option("--db", db_path, "SQLite database (default results/kab.db)");
  app.add_option("--out", out_dir, "the night's artefacts (default results/nightly/SUITE/NIGHT)");
  app.add_option("--night", night, "the night's name (default today's UTC date, YYYY-MM-DD)");
  app.add_option("--format", out.format, report::format_list())->check(CLI::IsMember(report::format_names()));
  bool bisect_on_alert = false;
  app.add_flag("--bisect", bisect_on_alert,
               "on an alert, find the commit that regressed between the last good night and the head (kab bisect)");
  bool keep_sources = false;
  app.add_flag("--keep-sources", keep_sources,
               "keep the commits exported for the night's builds (by default removed at the end when no lane holds "
               "them, as kab kernel clean --sources does: a tree a night)");
  if (auto code = parse_args(app, args)) return *code;

  // Everything is checked before anything is built: the suite, its refs, its scenarios.
  const scenario::Suite su = load_suite_or_exit(suite_path);
  if (night.empty()) night = today_utc();
  for (char c : night)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'))
      throw Fatal("--night " + night + ": letters, digits, '-', '_' and '.' only", k_exit_usage);
  auto commit_of = [&](const std::string& key, const std::string& ref) {
    try {
      return kernel::git_commit(su.tree, ref);
    } catch (const kernel::BuildError& e) {
      throw Fatal(suite_path + ": " + key + " " + ref + ": " + e.what(), k_exit_usage);
    }
  };
  const std::string head_commit = commit_of("tree.ref", su.ref);
  const std::string subject = subject_of(su.tree, head_commit);
  core::KernelSpec config = load_kernel_or_exit(su.kernel);
  const std::string base_commit = su.base.empty() ? "" : commit_of("tree.base", su.base);
  const TreeKernel head_kernel =
      tree_kernel(su.tree, config, ref_name(su.ref) + "-" + short_commit(head_commit), head_commit, base_commit, su.base);
  const core::KernelSpec& head = head_kernel.spec;
  const std::string& built_as = head_kernel.built_as;
  auto spec_at = [&](const std::string& name, const std::string& commit) {
    return tree_kernel(su.tree, config, name, commit, "", "").spec;
  };
  std::optional<core::KernelSpec> reference;
  std::string reference_commit;
  if (!su.reference.empty()) {
    reference_commit = commit_of("baseline.reference", su.reference);
    reference = spec_at(k_reference + std::string("-") + ref_name(su.reference), reference_commit);
  }
  struct Planned {
    std::string path;
    core::Scenario scenario;
    std::string hash;
  };
  std::vector<Planned> planned;
  std::set<std::string> names;
  for (const auto& path : su.scenarios) {
    Planned p{path, load_scenario_or_exit(path), ""};
    core::Scenario& s = p.scenario;
    if (!names.insert(s.name).second)
      throw Fatal(suite_path + ": two scenarios are named " + s.name + ": a night stores each by its name", k_exit_usage);
    if (su.repetitions > 0) {
      s.repetitions = su.repetitions;
      s.stop.until_decided = false;
    }
    if (su.min_effect > 0) s.min_effect = su.min_effect;
    if (su.alpha > 0) s.alpha = su.alpha;
    s.arms = {core::Arm{k_head, head.name, ""}};
    if (reference) s.arms.insert(s.arms.begin(), core::Arm{k_reference, reference->name, ""});
    // What a night's samples depend on besides the kernel: nights of another
    // version of the scenario never share a baseline.
    p.hash = core::fnv1a64_hex(core::read_text(path) + "\nrepetitions " +
                               std::to_string(s.repetitions) + "\nkernel config " + su.kernel + "\nreference " +
                               reference_commit);
    planned.push_back(std::move(p));
  }
  if (out_dir.empty()) out_dir = paths().root + "/results/nightly/" + su.name + "/" + night;
  // A scenario the night already judged is not run again, one interrupted is
  // resumed (at the commit it began with); a night whose every scenario was
  // judged is refused.
  std::map<std::string, std::int64_t> resume;
  std::map<std::string, core::Night> judged;
  if (fs::exists(db_path)) {
    store::ResultStore db = store::ResultStore::open(db_path);
    for (const auto& p : planned)
      for (const auto& n : nights_of(db, su.name, p.scenario.name)) {
        if (n.label != night) continue;
        if (!n.verdict.empty()) {
          judged[p.scenario.name] = n;
          continue;
        }
        if (n.commit != head_commit)
          throw Fatal("night " + night + " of suite " + su.name + " was interrupted in " + p.scenario.name + " (run " +
                          std::to_string(n.run) + ") at " + short_commit(n.commit) + "; " + su.ref + " is now at " +
                          short_commit(head_commit) + ": name another night with --night",
                      k_exit_usage);
        resume[p.scenario.name] = n.run;
      }
    if (judged.size() == planned.size()) {
      std::string list;
      for (const auto& [name, n] : judged)
        list += (list.empty() ? "" : ", ") + name + " (run " + std::to_string(n.run) + ", " + n.verdict + ")";
      throw Fatal("night " + night + " of suite " + su.name + " already ran " + list + ": name another with --night",
                  k_exit_usage);
    }
  }
  fs::create_directories(out_dir);
  if (verbosity() != Verbosity::quiet)
    std::fprintf(stderr, "kab: nightly %s, night %s: %s at %s (\"%s\"), built as %s; %zu scenario%s; baseline %s\n",
                 su.name.c_str(), night.c_str(), su.ref.c_str(), short_commit(head_commit).c_str(), subject.c_str(),
                 built_as.c_str(), planned.size(), planned.size() == 1 ? "" : "s",
                 reference ? ("the reference " + su.reference + " (" + short_commit(reference_commit) +
                              ") in each night's run").c_str()
                           : ("the last " + std::to_string(su.nights) + " night(s) that did not regress").c_str());

  std::vector<NightResult> results;
  bool any_failed = false, any_alert = false;
  for (auto& p : planned) {
    core::Scenario& s = p.scenario;
    RunRequest rq;
    rq.scenario_path = p.path;
    rq.scenario = s;
    rq.db_path = db_path;
    rq.command_line = join_args("nightly", args);
    rq.kernels[head.name] = head;
    if (reference) rq.kernels[reference->name] = *reference;
    if (auto it = resume.find(s.name); it != resume.end()) rq.resume = it->second;
    rq.run_extra = {{"nightly.suite", su.name},          {"nightly.scenario", s.name},
                    {"nightly.night", night},            {"nightly.ref", su.ref},
                    {"nightly.commit", head_commit},     {"nightly.subject", subject},
                    {"nightly.scenario_hash", p.hash},   {"nightly.host", host_name()},
                    {"nightly.built_as", built_as},
                    {"nightly.baseline_policy", reference ? "reference " + su.reference : "nights " + std::to_string(su.nights)}};
    NightResult nr;
    nr.scenario = s.name;
    if (auto m = core::metric_from(s.primary_metric)) nr.metric = *m;
    if (auto it = judged.find(s.name); it != judged.end()) {
      // Judged before this night was interrupted: its result as stored.
      nr.run = it->second.run;
      nr.verdict = it->second.verdict;
      nr.alert = it->second.alert;
      nr.baseline = it->second.baseline;
      store::ResultStore db = store::ResultStore::open(db_path);
      if (auto r = db.run(nr.run)) nr.reports = store::run_fact(*r, "nightly.reports");
      nr.message = nr.verdict + (nr.alert ? " (an alert)" : "") + ", judged in run " + std::to_string(nr.run) +
                   " before the night was interrupted";
      any_alert |= nr.alert;
      any_failed |= nr.verdict == "failed";
      results.push_back(nr);
      continue;
    }
    core::RunOutcome o;
    try {
      o = execute_run(rq);
    } catch (const Fatal& e) {
      // A build or the platform failed before the first sample: no run is
      // recorded; the night's artefacts say so and the night exits 3.
      if (e.exit_code != k_exit_run_failed) throw;
      nr.verdict = "failed";
      nr.message = std::string("could not run: ") + e.what();
      any_failed = true;
      results.push_back(nr);
      continue;
    }
    if (o.interrupted) return k_exit_interrupted;
    nr.run = o.run_id;
    store::ResultStore db = store::ResultStore::open(db_path);
    const auto earlier = nights_of(db, su.name, s.name, o.run_id);
    if (!arms_without_ok_sample(db_path, o.run_id, s).empty()) {
      nr.verdict = "failed";
      nr.message = no_ok_sample_message(o.run_id, arms_without_ok_sample(db_path, o.run_id, s));
      db.set_run_fact(o.run_id, "nightly.verdict", nr.verdict);
      any_failed = true;
      results.push_back(nr);
      continue;
    }
    // The comparison: the reference beside the head in this run, or the
    // head against the pooled samples of the baseline nights.
    std::vector<std::int64_t> runs;
    std::vector<core::Sample> samples;
    std::string base_arm;
    ReportExtras extras;
    extras.facts.push_back({"night", night + " of suite " + su.name});
    extras.facts.push_back({"head", su.ref + " at " + short_commit(head_commit) + " (\"" + subject + "\"), built as " +
                                        built_as});
    if (reference) {
      base_arm = k_reference;
      runs = {o.run_id};
      samples = run_samples(db, runs);
      extras.facts.push_back({"baseline", "the reference " + su.reference + " at " + short_commit(reference_commit) +
                                              ", interleaved with the head in run " + std::to_string(o.run_id)});
    } else {
      nr.baseline = core::baseline_window(earlier, p.hash, su.nights);
      if (nr.baseline.empty()) {
        nr.verdict = "first";
        int other = 0;
        for (const auto& n : earlier) other += n.scenario_hash != p.hash;
        nr.message = "no earlier night to compare with" +
                     (other ? " (" + std::to_string(other) + " ran another version of the scenario)" : std::string()) +
                     ": this night is the baseline's first";
        db.set_run_fact(o.run_id, "nightly.verdict", nr.verdict);
        db.set_run_fact(o.run_id, "nightly.alert", "no");
        results.push_back(nr);
        continue;
      }
      base_arm = k_baseline;
      runs = {o.run_id};   // first: the report's host, date and versions are tonight's
      runs.insert(runs.end(), nr.baseline.begin(), nr.baseline.end());
      std::string list;
      int pooled = 0;
      for (auto id : nr.baseline) {
        for (auto smp : db.samples(id, store::WithArtifacts::no)) {
          if (smp.arm != k_head) continue;
          smp.arm = k_baseline;
          pooled += smp.health.status == core::SampleStatus::ok;
          samples.push_back(std::move(smp));
        }
        for (const auto& n : earlier)
          if (n.run == id) list += (list.empty() ? "" : ", ") + n.label + " (run " + std::to_string(id) + ", " +
                                   short_commit(n.commit) + ")";
      }
      for (auto smp : db.samples(o.run_id, store::WithArtifacts::no)) samples.push_back(std::move(smp));
      extras.facts.push_back({"baseline", std::to_string(nr.baseline.size()) + " night(s): " + list});
      extras.warnings.push_back(
          {"baseline_pooled", "the baseline pools " + std::to_string(pooled) + " samples of " +
                                  std::to_string(nr.baseline.size()) + " night(s): variation between nights is "
                                  "not in the interval; an alert needs " + std::to_string(su.persist) +
                                  " night(s) in a row"});
    }
    core::Comparison c = analyse_samples(db, runs, samples, s, base_arm, k_head, false);
    nr.verdict = core::verdict_key(c.verdict);
    nr.alert = c.verdict == core::Verdict::regression &&
               core::regressions_in_a_row(earlier, p.hash) + 1 >= su.persist;
    // The primary metric's largest change over the cells.
    double largest = -1;
    for (const auto& cell : c.cells)
      for (const auto& m : cell.metrics)
        if (m.primary && std::isfinite(m.change) && std::abs(m.change) > largest) {
          largest = std::abs(m.change);
          char buf[64];
          std::snprintf(buf, sizeof buf, "%s %+.1f%%", core::metric_info(m.metric).label, m.change * 100);
          nr.change = buf;
        }
    std::string alert_text;
    if (c.verdict == core::Verdict::regression) {
      const int run_of = core::regressions_in_a_row(earlier, p.hash) + 1;
      alert_text = nr.alert ? "ALERT: a regression " + std::to_string(run_of) + " night(s) in a row (the suite's "
                                  "alert needs " + std::to_string(su.persist) + ")"
                            : "a regression, " + std::to_string(run_of) + " of the " + std::to_string(su.persist) +
                                  " night(s) in a row an alert needs";
      extras.facts.push_back({"alert", alert_text});
    }
    db.set_run_fact(o.run_id, "nightly.verdict", nr.verdict);
    db.set_run_fact(o.run_id, "nightly.alert", nr.alert ? "yes" : "no");
    std::string base_list;
    for (auto id : nr.baseline) base_list += (base_list.empty() ? "" : ",") + std::to_string(id);
    db.set_run_fact(o.run_id, "nightly.baseline", reference ? std::to_string(o.run_id) : base_list);
    Output o2 = out;
    o2.out_dir = (fs::path(out_dir) / s.name).string();
    nr.reports = o2.out_dir;
    report_comparison(db, runs, samples, s, c, o2, rq.command_line, extras);
    db.set_run_fact(o.run_id, "nightly.reports", fs::absolute(o2.out_dir).lexically_normal().string());
    nr.message = nr.verdict + (nr.change.empty() ? "" : ", " + nr.change) +
                 (reference ? " against the reference " + su.reference
                            : " against " + std::to_string(nr.baseline.size()) + " night(s)") +
                 (alert_text.empty() ? "" : ": " + alert_text);
    if (bisect_on_alert && nr.alert) {
      // From the last good night's commit (or the pinned reference) to the head.
      std::string good;
      for (auto it = earlier.rbegin(); it != earlier.rend() && good.empty(); ++it)
        if (it->scenario_hash == p.hash && it->complete && !it->verdict.empty() && it->verdict != "failed" &&
            it->verdict != "regression")
          good = it->commit;
      if (good.empty() && reference) good = reference_commit;
      auto [ancestor, o1] = proc::capture({"git", "-C", su.tree, "merge-base", "--is-ancestor", good, head_commit});
      auto [listed, merges] = proc::capture({"git", "-C", su.tree, "rev-list", "--merges", good + ".." + head_commit});
      std::string why_not;
      if (good.empty())
        why_not = "no earlier good night to bisect from";
      else if (good == head_commit)
        why_not = "the last good night measured this same commit: the change is not in the tree (the reports list "
                  "the environment facts that differ)";
      else if (!ancestor)
        why_not = short_commit(good) + ", the last good commit, is not an ancestor of the head (a rebased branch)";
      else if (!listed || !core::trim(merges).empty())
        why_not = short_commit(good) + ".." + short_commit(head_commit) + " holds merge commits: kab bisects a linear range";
      if (!why_not.empty()) {
        nr.message += "; not bisected: " + why_not;
        nr.bisect = {{"message", "not bisected: " + why_not}};
      } else {
        std::fprintf(stderr, "kab: nightly: bisecting %s..%s\n", short_commit(good).c_str(),
                     short_commit(head_commit).c_str());
        BisectRequest br{su, config, base_commit, p.path, s, good, head_commit, "", db_path, rq.command_line};
        br.scenario.stop.until_decided = false;   // each step at fixed n: its interval's coverage is stated
        try {
          const BisectResult b = bisect(br);
          write_bisect(b, nr.reports);
          nr.bisect = bisect_json(b);
          nr.message += "; " + b.message;
        } catch (const Fatal& e) {
          // The night's verdict stands; the bisection's failure is said with it.
          if (e.exit_code == k_exit_interrupted) throw;
          nr.bisect = {{"message", std::string("bisect stopped: ") + e.what()}};
          nr.message += std::string("; bisect stopped: ") + e.what();
        }
      }
    }
    any_alert |= nr.alert;
    results.push_back(nr);
  }

  // The night's summary beside the reports: JSON, JUnit (a test per
  // scenario; an alert is a failure), Markdown and text with each history.
  store::ResultStore db = store::ResultStore::open(db_path);
  json summary = {{"suite", su.name},       {"night", night},      {"ref", su.ref},
                  {"commit", head_commit},  {"subject", subject},  {"built_as", built_as},
                  {"host", host_name()},    {"scenarios", json::array()}};
  std::string text = "kab nightly " + su.name + ", night " + night + ": " + su.ref + " at " + short_commit(head_commit) +
                     " (\"" + subject + "\")\n\n";
  std::string junit_cases;
  int failures = 0;
  for (const auto& r : results) {
    const History h = history_of(db, su.name, r.scenario, r.metric);
    const std::string run_text = r.run ? "run " + std::to_string(r.run) : "no run";
    summary["scenarios"].push_back({{"scenario", r.scenario},
                                    {"run", r.run},
                                    {"verdict", r.verdict},
                                    {"alert", r.alert},
                                    {"change", r.change},
                                    {"baseline_runs", r.baseline},
                                    {"reports", r.reports},
                                    {"message", r.message},
                                    {"bisect", r.bisect},
                                    {"history", history_json(h)}});
    text += r.scenario + " (" + run_text + "): " + r.message + "\n" + history_text(h) + "\n";
    std::fprintf(stderr, "kab: nightly %s, night %s, %s (%s): %s\n", su.name.c_str(), night.c_str(), r.scenario.c_str(),
                 run_text.c_str(), r.message.c_str());
    junit_cases += "  <testcase classname=\"kab.nightly." + core::xml_escape(su.name) + "\" name=\"" + core::xml_escape(r.scenario) +
                   "\">\n";
    if (r.alert || r.verdict == "failed") {
      ++failures;
      junit_cases += "    <failure message=\"" + core::xml_escape(r.message) + "\"/>\n";
    }
    junit_cases += "  </testcase>\n";
  }
  std::vector<report::TrendSeries> trends;
  for (const auto& r : results) {
    const History h = history_of(db, su.name, r.scenario, r.metric);
    auto more = trend_series(db, h, r.baseline, out_dir);
    trends.insert(trends.end(), more.begin(), more.end());
  }
  std::ofstream(fs::path(out_dir) / "nightly.html")
      << report::render_trend_html("kab nightly " + su.name + ", night " + night,
                                   {{"ref", su.ref + " at " + short_commit(head_commit) + " (\"" + subject + "\")"},
                                    {"built as", built_as},
                                    {"host", host_name()},
                                    {"baseline", reference ? "the reference " + su.reference
                                                           : "the last " + std::to_string(su.nights) +
                                                                 " night(s) that did not regress"}},
                                   trends);
  const int code = any_alert ? k_exit_failure : any_failed ? k_exit_run_failed : k_exit_ok;
  summary["exit_code"] = code;
  std::ofstream(fs::path(out_dir) / "nightly.json") << summary.dump(2) << "\n";
  std::ofstream(fs::path(out_dir) / "nightly.txt") << text;
  std::ofstream(fs::path(out_dir) / "nightly.md") << "# " << text.substr(0, text.find('\n')) << "\n\n```\n"
                                                  << text.substr(text.find('\n') + 2) << "```\n";
  std::ofstream(fs::path(out_dir) / "nightly.junit.xml")
      << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"kab nightly " << core::xml_escape(su.name) << " "
      << core::xml_escape(night) << "\" tests=\"" << results.size() << "\" failures=\"" << failures << "\">\n"
      << junit_cases << "</testsuite>\n";
  std::fprintf(stderr, "kab: nightly artefacts in %s (nightly.{json,txt,md,junit.xml,html}%s)\n", out_dir.c_str(),
               std::any_of(results.begin(), results.end(), [](const NightResult& r) { return !r.reports.empty(); })
                   ? ", SCENARIO/comparison.*"
                   : "");
  // Each night exports its head (and a bisection its midpoints) under the
  // cache's src/: ~1.2 GiB a tree. What no lane holds now is made again when
  // a build needs it.
  if (!keep_sources) {
    const kernel::SourcesCleaned c = kernel::Builder(kernel_options()).clean_sources();
    std::fprintf(stderr, "kab: nightly: removed %d source tree(s) no lane holds, %.1f MiB (--keep-sources keeps them)\n",
                 c.sources, static_cast<double>(c.bytes) / (1 << 20));
  }
  return code;
}

int cmd_bisect(const std::vector<std::string>& args) {
  CLI::App app{"Find the commit of a suite's tree that regressed a scenario's primary metric: the regression "
               "confirmed (bad against good, interleaved), then each midpoint of good..bad measured against good "
               "and decided only when its interval lies on one side of half the regression. Exit 0 the first bad "
               "commit found, 1 not found (no regression, or a step undecided), 2 bad input, 3 could not run.",
               "bisect"};
  std::string suite_path, good_ref, bad_ref, scenario_name, column, db_path = paths().default_db, out_dir;
  int repetitions = 0;
  app.add_option("suite", suite_path, "the suite file (its tree, base, kernel config and scenarios)")->required();
  app.add_option("--good", good_ref, "a ref measured good (an ancestor of --bad)")->required();
  app.add_option("--bad", bad_ref, "a ref that regressed (default: the suite's ref)");
  app.add_option("--scenario", scenario_name, "the suite's scenario to measure (default: its first)");
  app.add_option("--cell", column, "the cell, as kab history names it (\"BACKEND CELL\"; default: the one that "
                                   "regressed most)");
  app.add_option("--repetitions", repetitions, "samples per arm at each step (default: the suite's)")
      ->check(CLI::Range(4, 100));
  app.add_option("--db", db_path, "SQLite database (default results/kab.db)");
  app.add_option("--out", out_dir, "bisect.json and bisect.txt go here (default results/bisect/SUITE)");
  if (auto code = parse_args(app, args)) return *code;
  const scenario::Suite su = load_suite_or_exit(suite_path);
  if (bad_ref.empty()) bad_ref = su.ref;
  auto commit_of = [&](const std::string& option, const std::string& ref) {
    try {
      return kernel::git_commit(su.tree, ref);
    } catch (const kernel::BuildError& e) {
      throw Fatal(option + " " + ref + ": " + e.what(), k_exit_usage);
    }
  };
  BisectRequest rq;
  rq.suite = su;
  rq.good = commit_of("--good", good_ref);
  rq.bad = commit_of("--bad", bad_ref);
  if (rq.good == rq.bad) throw Fatal("--good and --bad are the same commit " + short_commit(rq.good), k_exit_usage);
  if (!proc::capture({"git", "-C", su.tree, "merge-base", "--is-ancestor", rq.good, rq.bad}).first)
    throw Fatal("--good " + good_ref + " is not an ancestor of --bad " + bad_ref, k_exit_usage);
  if (auto [ok, merges] = proc::capture({"git", "-C", su.tree, "rev-list", "--merges", rq.good + ".." + rq.bad});
      !ok || !core::trim(merges).empty())
    throw Fatal(good_ref + ".." + bad_ref + " holds merge commits: kab bisects a linear range", k_exit_usage);
  rq.config = load_kernel_or_exit(su.kernel);
  rq.base_commit = su.base.empty() ? "" : commit_of("the suite's tree.base", su.base);
  for (const auto& path : su.scenarios) {
    core::Scenario s = load_scenario_or_exit(path);
    if (!scenario_name.empty() && s.name != scenario_name) continue;
    rq.scenario_path = path;
    rq.scenario = s;
    break;
  }
  if (rq.scenario_path.empty()) throw Fatal("suite " + su.name + " has no scenario " + scenario_name, k_exit_usage);
  core::Scenario& s = rq.scenario;
  s.stop.until_decided = false;
  if (repetitions > 0) s.repetitions = repetitions;
  else if (su.repetitions > 0) s.repetitions = su.repetitions;
  if (su.min_effect > 0) s.min_effect = su.min_effect;
  if (su.alpha > 0) s.alpha = su.alpha;
  rq.column = column;
  rq.db = db_path;
  rq.command_line = join_args("bisect", args);
  if (out_dir.empty()) out_dir = paths().root + "/results/bisect/" + su.name;
  const BisectResult b = bisect(rq);
  write_bisect(b, out_dir);
  std::cout << bisect_text(b);
  std::fprintf(stderr, "kab: bisect: %s (%s/bisect.{json,txt})\n", b.message.c_str(), out_dir.c_str());
  return b.first_bad.empty() ? k_exit_failure : k_exit_ok;
}

int cmd_db(const std::vector<std::string>& args) {
  CLI::App app{"Maintain the result database.", "db"};
  app.require_subcommand(1);
  auto* prune = app.add_subcommand("prune", "delete old nights of nightly suites: all but the last N of each "
                                            "scenario, never a night that regressed or alerted, a night in such a "
                                            "night's baseline, or one in the newest night's baseline");
  int keep = 0;
  std::string suite, db_path = paths().default_db;
  bool dry_run = false;
  prune->add_option("--keep-nights", keep, "nights kept per suite and scenario")->required()->check(CLI::Range(1, 100000));
  prune->add_option("--suite", suite, "only this suite (default: every suite)");
  prune->add_option("--db", db_path, "SQLite database (default results/kab.db)");
  prune->add_flag("--dry-run", dry_run, "say what would be deleted, delete nothing");
  auto* merge = app.add_subcommand("merge", "merge the runs of several databases (shards of one plan, other hosts) "
                                            "into OUT: idempotent, no sample twice, every conflict named and nothing "
                                            "written then; prints the merged runs' ids in OUT on stdout");
  std::string merge_out;
  std::vector<std::string> merge_in;
  merge->add_option("out", merge_out, "the database to merge into (created when missing)")->required();
  merge->add_option("inputs", merge_in, "the databases to merge")->required();
  if (auto code = parse_args(app, args)) return *code;
  if (merge->parsed()) {
    const MergeOutcome o = merge_databases(merge_out, merge_in);
    for (const auto& line : o.lines) std::fprintf(stderr, "kab: db merge: %s\n", line.c_str());
    std::fprintf(stderr, "kab: db merge: %d run%s, %d sample%s, %d kernel build%s added to %s (%d sample%s there already)\n",
                 o.runs_added, o.runs_added == 1 ? "" : "s", o.samples_added, o.samples_added == 1 ? "" : "s",
                 o.kernels_added, o.kernels_added == 1 ? "" : "s", merge_out.c_str(), o.samples_present,
                 o.samples_present == 1 ? "" : "s");
    std::string ids;
    for (auto id : o.runs) ids += (ids.empty() ? "" : " ") + std::to_string(id);
    std::printf("%s\n", ids.c_str());
    return k_exit_ok;
  }
  if (!fs::exists(db_path)) throw Fatal("no database " + db_path, k_exit_usage);
  store::ResultStore db = store::ResultStore::open(db_path);
  std::vector<std::pair<std::string, std::string>> pairs;   // (suite, scenario), in order of first night
  for (const auto& r : db.runs()) {
    const std::pair<std::string, std::string> p{store::run_fact(r, "nightly.suite"), store::run_fact(r, "nightly.scenario")};
    if (p.first.empty() || (!suite.empty() && p.first != suite)) continue;
    if (std::find(pairs.begin(), pairs.end(), p) == pairs.end()) pairs.push_back(p);
  }
  if (!suite.empty() && pairs.empty()) throw Fatal("no night of suite " + suite + " in " + db_path, k_exit_usage);
  int runs = 0, samples = 0;
  for (const auto& [name, scenario] : pairs) {
    const auto nights = nights_of(db, name, scenario);
    // Tomorrow's baseline: the window of the newest night's policy ("nights K"; a pinned reference needs none).
    int window = 0;
    if (!nights.empty())
      if (auto r = db.run(nights.back().run)) {
        const std::string policy = store::run_fact(*r, "nightly.baseline_policy");
        if (core::starts_with(policy, "nights ")) window = std::atoi(policy.c_str() + 7);
      }
    const auto doomed = core::nights_to_prune(nights, keep, window);
    std::string list;
    for (const auto& n : nights)
      if (std::find(doomed.begin(), doomed.end(), n.run) != doomed.end())
        list += (list.empty() ? "" : ", ") + n.label + " (run " + std::to_string(n.run) + ")";
    for (auto id : doomed) {
      if (!dry_run) samples += db.delete_run(id);
      ++runs;
    }
    std::printf("kab: db prune: suite %s, scenario %s: %s %zu of %zu nights%s%s\n", name.c_str(), scenario.c_str(),
                dry_run ? "would delete" : "deleted", doomed.size(), nights.size(), list.empty() ? "" : ": ",
                list.c_str());
  }
  if (!dry_run) std::printf("kab: db prune: %d runs, %d samples deleted from %s\n", runs, samples, db_path.c_str());
  return k_exit_ok;
}

int cmd_history(const std::vector<std::string>& args) {
  CLI::App app{"The nights of a nightly suite: each night's head, the median of a metric per cell, the verdict.",
               "history"};
  std::string suite, scenario_name, metric = "bandwidth", db_path = paths().default_db;
  bool as_json = false;
  app.add_option("suite", suite, "the suite file, or the suite's name")->required();
  app.add_option("--scenario", scenario_name, "one scenario of the suite (default: each)");
  app.add_option("--metric", metric, "the metric (default bandwidth)");
  app.add_option("--db", db_path, "SQLite database (default results/kab.db)");
  app.add_flag("--json", as_json, "print JSON");
  std::string html;
  app.add_option("--html", html, "also write the trend page (a chart per scenario and cell) to this file");
  if (auto code = parse_args(app, args)) return *code;
  auto m = core::metric_from(metric);
  if (!m) {
    std::vector<std::string> keys;
    for (const auto& i : core::all_metrics()) keys.push_back(i.key);
    std::string msg = "--metric " + metric + ": no such metric";
    if (auto s = core::suggest(metric, keys)) msg += ", did you mean '" + *s + "'?";
    throw Fatal(msg, k_exit_usage);
  }
  std::string name = suite;
  if (fs::is_regular_file(suite)) {
    name = load_suite_or_exit(suite).name;
  }
  if (!fs::exists(db_path)) throw Fatal("no database " + db_path, k_exit_usage);
  store::ResultStore db = store::ResultStore::open(db_path);
  std::vector<std::string> scenarios;
  std::set<std::string> suites;
  for (const auto& r : db.runs()) {
    if (!store::run_fact(r, "nightly.suite").empty()) suites.insert(store::run_fact(r, "nightly.suite"));
    if (store::run_fact(r, "nightly.suite") != name) continue;
    const std::string s = store::run_fact(r, "nightly.scenario");
    if (std::find(scenarios.begin(), scenarios.end(), s) == scenarios.end()) scenarios.push_back(s);
  }
  if (scenarios.empty()) {
    std::string msg = "no night of suite " + name + " in " + db_path;
    if (auto s = core::suggest(name, std::vector<std::string>(suites.begin(), suites.end())))
      msg += ", did you mean '" + *s + "'?";
    throw Fatal(msg, k_exit_usage);
  }
  if (!scenario_name.empty()) {
    if (std::find(scenarios.begin(), scenarios.end(), scenario_name) == scenarios.end())
      throw Fatal("suite " + name + " ran no scenario " + scenario_name, k_exit_usage);
    scenarios = {scenario_name};
  }
  json all = json::array();
  std::vector<report::TrendSeries> trends;
  for (const auto& s : scenarios) {
    const History h = history_of(db, name, s, *m);
    if (as_json)
      all.push_back(history_json(h));
    else
      std::cout << history_text(h);
    if (!html.empty()) {
      // The baseline the last night was judged against.
      std::vector<std::int64_t> baseline;
      if (!h.rows.empty())
        if (auto run = db.run(h.rows.back().night.run))
          for (const auto& id : core::split(store::run_fact(*run, "nightly.baseline"), ','))
            if (!core::trim(id).empty()) baseline.push_back(std::stoll(id));
      const std::string dir = fs::absolute(html).parent_path().string();
      auto more = trend_series(db, h, baseline, dir);
      trends.insert(trends.end(), more.begin(), more.end());
    }
  }
  if (as_json) std::cout << all.dump(2) << "\n";
  if (!html.empty()) {
    std::error_code ec;
    fs::create_directories(fs::absolute(html).parent_path(), ec);
    std::ofstream file(html);
    file << report::render_trend_html("kab history: suite " + name, {{"database", db_path}}, trends);
    if (!file) throw Fatal("cannot write " + html);
    std::fprintf(stderr, "kab: history: trend page %s\n", html.c_str());
  }
  return k_exit_ok;
}

}  // namespace kab::cli
