#include "report/json.h"

#include "report/format.h"

#include <cmath>
#include <nlohmann/json.hpp>

namespace kab::report {

namespace {

using nlohmann::json;

json number(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

json summary(const core::Summary& s) {
  return {{"n", s.n},        {"median", number(s.median)}, {"mean", number(s.mean)}, {"sd", number(s.sd)},
          {"cv", number(s.cv)}, {"min", number(s.min)},       {"max", number(s.max)}};
}

json values(const std::vector<double>& v) {
  json a = json::array();
  for (double x : v) a.push_back(number(x));
  return a;
}

json arm_metric(const core::ArmMetric& a) {
  json j = summary(a.summary);
  j["values"] = values(a.values);
  j["plan_indices"] = a.plan_indices;
  return j;
}

json fio(const core::FioMetrics& f) {
  return {{"bw_bytes", f.bw_bytes},       {"iops", f.iops},
          {"read_bw_bytes", f.read_bw_bytes}, {"read_iops", f.read_iops},
          {"write_bw_bytes", f.write_bw_bytes}, {"write_iops", f.write_iops}, {"clat_p50_ns", f.clat_p50_ns},
          {"clat_p99_ns", f.clat_p99_ns}, {"clat_p999_ns", f.clat_p999_ns}, {"usr_cpu", f.usr_cpu},
          {"sys_cpu", f.sys_cpu},         {"bytes", f.bytes},       {"runtime_ms", f.runtime_ms},
          {"error", f.fio_error}};
}

json arm_cell(const core::ArmCell& a) {
  json excluded = json::object();
  for (const auto& [status, n] : a.excluded_by_status) excluded[status] = n;
  json j = {{"kernel", a.kernel},
            {"included", a.included},
            {"excluded", a.excluded},
            {"excluded_by_status", excluded},
            {"writeback_tmp_peak_kb", summary(a.writeback_tmp_peak_kb)},
            {"nr_writeback_temp_peak", summary(a.nr_writeback_temp_peak)}};
  if (a.median_fio) {
    j["median_sample"] = {{"plan_index", a.median_plan_index}, {"fio", fio(*a.median_fio)}};
  } else {
    j["median_sample"] = nullptr;
  }
  return j;
}

json pairs(const std::vector<std::pair<std::string, std::string>>& v) {
  json o = json::object();
  for (const auto& [k, val] : v) o[k] = val;
  return o;
}

}  // namespace

std::string render_json(const core::Comparison& c, const core::ReportContext& ctx) {
  json context = {{"title", ctx.title},
                  {"command", ctx.command},
                  {"date", ctx.date},
                  {"kab_version", ctx.kab_version},
                  {"host", ctx.host},
                  {"host_cpu", ctx.host_cpu},
                  {"host_kernel", ctx.host_kernel},
                  {"accelerator", ctx.accelerator},
                  {"qemu_version", ctx.qemu_version},
                  {"virtiofsd_version", ctx.virtiofsd_version},
                  {"libvirt_version", ctx.libvirt_version},
                  {"fio_version", ctx.fio_version},
                  {"job_file", ctx.job_file},
                  {"backend_options", pairs(ctx.backend_options)},
                  {"extra", pairs(ctx.extra)}};
  json kernels = json::array();
  for (const auto& k : ctx.kernels)
    kernels.push_back({{"arm", k.arm},
                       {"kernel", k.kernel},
                       {"version", k.version},
                       {"config_hash", k.config_hash},
                       {"patch_hash", k.patch_hash},
                       {"source", k.source},
                       {"patches", k.patches},
                       {"build_key", k.build_key}});
  context["kernels"] = kernels;

  json cells = json::array();
  for (const auto& cell : c.cells) {
    json cj;
    cj["backend"] = cell.backend;
    cj["cell"] = json::object();
    for (const auto& [k, v] : cell.cell) cj["cell"][k] = v;
    cj["label"] = cell.label;
    cj["direction"] = cell.direction;
    cj["verdict"] = core::verdict_key(cell.verdict);
    cj["base"] = arm_cell(cell.base);
    cj["candidate"] = arm_cell(cell.candidate);
    cj["unmeasured"] = cell.unmeasured;
    json metrics = json::array();
    for (const auto& r : cell.metrics) {
      const auto& mi = core::metric_info(r.metric);
      metrics.push_back({{"metric", mi.key},
                         {"unit", mi.unit},
                         {"better", mi.better == core::Better::higher ? "higher" : "lower"},
                         {"base", arm_metric(r.base)},
                         {"candidate", arm_metric(r.candidate)},
                         {"ratio", number(r.ratio)},
                         {"change", number(r.change)},
                         {"ratio_ci", {number(r.ratio_ci.lo), number(r.ratio_ci.hi)}},
                         {"hodges_lehmann_ratio", number(r.hodges_lehmann)},
                         {"hodges_lehmann_ci", {number(r.hodges_lehmann_ci.lo), number(r.hodges_lehmann_ci.hi)}},
                         {"ci", {{"lo", number(r.ci.lo)}, {"hi", number(r.ci.hi)}, {"coverage", number(r.ci_coverage)},
                                 {"kind", r.at_look ? "repeated" : "hodges-lehmann"}}},
                         {"u", number(r.test.u)},
                         {"p", number(r.test.p)},
                         {"test", r.test.method == core::UTestMethod::exact        ? "exact"
                                  : r.test.method == core::UTestMethod::asymptotic ? "asymptotic"
                                                                                   : "van Elteren, the run as a block"},
                         {"blocks", r.blocks},
                         {"ties", r.test.ties},
                         {"primary", r.primary},
                         {"tested", r.tested},
                         {"equivalence_ci", {number(r.equivalence_ci.lo), number(r.equivalence_ci.hi)}},
                         {"samples_needed", r.samples_needed},
                         {"p_adjusted", number(r.p_adjusted)},
                         {"level", number(r.level)},
                         {"significant", r.significant},
                         {"best_possible_p", number(r.best_p)},
                         {"verdict", core::verdict_key(r.verdict)},
                         {"reason", r.reason}});
    }
    cj["metrics"] = metrics;
    cells.push_back(cj);
  }

  json warnings = json::array();
  for (const auto& w : c.warnings) warnings.push_back({{"kind", w.kind}, {"message", w.message}});

  json j;
  j["schema_version"] = k_json_schema_version;
  j["context"] = context;
  j["comparison"] = {{"scenario", c.scenario},
                     {"base", {{"arm", c.base_arm}, {"kernel", c.base_kernel}, {"included", c.base_included}, {"excluded", c.base_excluded}}},
                     {"candidate", {{"arm", c.candidate_arm}, {"kernel", c.candidate_kernel}, {"included", c.candidate_included}, {"excluded", c.candidate_excluded}}},
                     {"alpha", c.alpha},
                     {"min_effect", c.min_effect},
                     {"confidence", c.confidence},
                     {"bootstrap_resamples", c.bootstrap_resamples},
                     {"seed", c.seed},
                     {"primary_metric", core::metric_info(c.primary).key},
                     {"block_by_run", c.block_by_run},
                     {"holm_families", "primary metric over the cells; the other tested metrics over the cells"},
                     {"run_ids", c.run_ids},
                     {"backends", c.backends},
                     {"backend_cmdlines", pairs(c.backend_cmdlines)},
                     {"cells", cells},
                     {"warnings", warnings},
                     {"verdict", headline_verdict_key(c, ctx)},
                     {"performance_verdict", core::verdict_key(c.verdict)}};
  // The correctness gate of each kernel (kab compare --gate); "ran": false without one.
  json gates = json::array();
  for (const auto& g : ctx.gates) {
    json checks = json::array();
    for (const auto& k : g.checks)
      checks.push_back({{"family", k.family}, {"backend", k.backend}, {"status", k.status}, {"reason", k.reason},
                        {"finding", k.finding}, {"run", k.run}, {"fio_s", k.fio_s}, {"rerun", k.rerun}});
    gates.push_back({{"arm", g.arm}, {"kernel", g.kernel}, {"variant", g.variant}, {"build_key", g.build_key},
                     {"clean", g.clean()}, {"not_clean", g.not_clean()}, {"fio_s", g.fio_s()}, {"checks", checks}});
  }
  j["comparison"]["correctness"] = {{"ran", !ctx.gates.empty()},
                                    {"failure", correctness_failure(c, ctx)},
                                    {"summary", correctness_text(c, ctx)},
                                    {"kernels", gates}};
  // A run sampled until decided: the look its verdict was judged at (absent for fixed n).
  if (c.look > 0)
    j["comparison"]["sequential"] = {{"look", c.look},
                                     {"looks", c.looks},
                                     {"information", c.information},
                                     {"spending", "Lan-DeMets O'Brien-Fleming-type"},
                                     {"samples_per_look", "one ABBA block: 2 per arm, cell and backend"}};
  return j.dump(2) + "\n";
}

}  // namespace kab::report
