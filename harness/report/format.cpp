#include "report/format.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace kab::report {

namespace {

std::string printf_text(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string fio_number(double value, double base, const char* const* units, std::string_view suffix) {
  if (!std::isfinite(value)) return "-";
  int u = 0;
  // fio moves up a unit once the figure needs more than four digits.
  while (std::fabs(value) >= 10000 && units[u + 1] != nullptr) {
    value /= base;
    ++u;
  }
  // fio divides integers: figures are truncated, not rounded ("686.8MB" is "686MB").
  int digits = std::fabs(value) < 10 ? 1 : std::fabs(value) < 100 ? 2 : 3;
  int decimals = u == 0 ? 0 : std::max(0, 3 - digits);
  double scale = std::pow(10.0, decimals);
  value = std::trunc(value * scale + 1e-9) / scale;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  std::string out = buf;
  // fio drops trailing zeros of the decimals ("1.50" is "1.5").
  if (out.find('.') != std::string::npos) {
    while (out.back() == '0') out.pop_back();
    if (out.back() == '.') out.pop_back();
  }
  return out + units[u] + std::string(suffix);
}

}  // namespace

std::string fio_binary(double value, std::string_view suffix) {
  static const char* const k_units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", nullptr};
  return fio_number(value, 1024, k_units, suffix);
}

std::string fio_decimal(double value, std::string_view suffix) {
  static const char* const k_units[] = {"B", "kB", "MB", "GB", "TB", "PB", nullptr};
  return fio_number(value, 1000, k_units, suffix);
}

std::string fio_line(const std::string& direction, const core::FioMetrics& f) {
  auto run = std::to_string(static_cast<long long>(std::llround(f.runtime_ms)));
  const bool both = f.read_bw_bytes > 0 && f.write_bw_bytes > 0;
  std::string line = (both ? std::string("READ+WRITE") : direction) + ": bw=" + fio_binary(f.bw_bytes, "/s") + " (" +
                     fio_decimal(f.bw_bytes, "/s") + "), io=" + fio_binary(f.bytes, "") + " (" +
                     fio_decimal(f.bytes, "") + "), run=" + run + "-" + run + "msec";
  if (both)
    line += "; read bw=" + fio_binary(f.read_bw_bytes, "/s") + ", write bw=" + fio_binary(f.write_bw_bytes, "/s");
  return line;
}

std::string metric_value_text(core::Metric m, double v) {
  if (!std::isfinite(v)) return "-";
  switch (m) {
    case core::Metric::bandwidth:
    case core::Metric::read_bandwidth:
    case core::Metric::write_bandwidth: return printf_text("%.1f MiB/s", v / (1024.0 * 1024.0));
    case core::Metric::iops:
    case core::Metric::read_iops:
    case core::Metric::write_iops: return printf_text(v < 100 ? "%.1f IO/s" : "%.0f IO/s", v);
    case core::Metric::clat_p99:
      if (v >= 1e9) return printf_text("%.2f s", v / 1e9);
      if (v >= 1e6) return printf_text("%.2f ms", v / 1e6);
      if (v >= 1e3) return printf_text("%.1f us", v / 1e3);
      return printf_text("%.0f ns", v);
    case core::Metric::guest_sys_cpu_per_gib:
    case core::Metric::backend_cpu_per_gib: return printf_text("%.3f s/GiB", v);
    case core::Metric::backend_faults_per_gib: return printf_text("%.0f faults/GiB", v);
  }
  return printf_text("%g", v);
}

std::string change_text(double change) {
  if (!std::isfinite(change)) return "-";
  return printf_text("%+.1f%%", change * 100);
}

std::string ci_text(const core::Interval& ci) {
  if (!std::isfinite(ci.lo) || !std::isfinite(ci.hi)) return "-";
  return "[" + change_text(ci.lo - 1) + ", " + change_text(ci.hi - 1) + "]";
}

std::string interval_text(const core::MetricResult& r, double confidence) {
  std::string t = ci_text(r.ci);
  if (t != "-" && (r.at_look || std::fabs(r.ci_coverage - confidence) > 1e-9))
    t += (r.at_look ? " repeated " : " ") + setting_percent(r.ci_coverage);
  return t;
}

double judged_p(const core::MetricResult& r) { return r.at_look ? r.test.p : r.p_adjusted; }

std::string interval_header(const core::Comparison& c) { return setting_percent(c.confidence) + " CI"; }

std::string kernel_text(const core::KernelFacts& k) {
  std::string line = k.kernel;
  if (!k.version.empty()) line += " " + k.version;
  if (!k.source.empty()) line += " from " + k.source;
  if (!k.config_hash.empty()) line += ", config " + k.config_hash;
  if (k.patch_hash.empty()) return line + ", no patches";
  if (k.patches.empty()) return line + ", patches " + k.patch_hash;
  std::string names;
  for (const auto& p : k.patches) names += (names.empty() ? "" : "; ") + p;
  return line + ", patches " + names + " (" + k.patch_hash + ")";
}

std::string p_text(double p) {
  if (!std::isfinite(p)) return "-";
  if (p < 0.0001) return "<0.0001";
  if (p >= 0.1) return printf_text("%.2f", p);
  return printf_text("%.2g", p);
}

std::string percent_text(double fraction) {
  if (!std::isfinite(fraction)) return "-";
  return printf_text("%.1f%%", fraction * 100);
}

std::string setting_percent(double fraction) { return printf_text("%g%%", fraction * 100); }

std::string arm_label(const std::string& arm, const std::string& kernel) {
  return kernel.empty() || kernel == arm ? arm : arm + " (" + kernel + ")";
}

std::string verdict_text(const core::MetricResult& r) {
  std::string v = core::to_string(r.verdict);
  if (!r.tested) return "as bandwidth: " + v;
  return r.primary ? v + " (primary)" : v;
}

std::string statistics_text(const core::Comparison& c) {
  const std::string alpha = p_text(c.alpha), effect = setting_percent(c.min_effect);
  return "change = candidate/base - 1 of the medians; the bracket is the " + setting_percent(c.confidence) +
         " Hodges-Lehmann interval of that ratio (the Mann-Whitney test inverted: it leaves out no change when the "
         "unadjusted p < " + p_text(1 - c.confidence) + "; the percentile bootstrap of the medians' ratio, " +
         std::to_string(c.bootstrap_resamples) + " resamples, seed " + std::to_string(c.seed) +
         ", is in the JSON as ratio_ci); p from a two-sided Mann-Whitney U test, Holm-adjusted in two families: the "
         "primary metric (" + core::metric_info(c.primary).label + ", which gives the verdict) over the cells, and "
         "the other metrics over the cells. improvement/regression: p < " + alpha + " and |change| >= " + effect +
         "; equivalent: the 1 - 2 alpha Hodges-Lehmann interval of the change (two one-sided tests) lies inside +/-" +
         effect + "; inconclusive: neither, with the samples per arm estimated to decide." +
         (c.block_by_run
              ? " Runs pooled with the run as a block: the test is van Elteren's stratified Mann-Whitney (normal "
                "approximation), the Hodges-Lehmann estimate and its intervals use pairs within a run only "
                "(percentile bootstrap within runs), so a run that was faster throughout moves neither arm."
              : "") +
         (c.look > 0 ? " Sampled until decided: this is look " + std::to_string(c.look) + " of " +
                           std::to_string(c.looks) + " (one ABBA block per look); the primary metric is judged "
                           "against the look's boundary of a group-sequential design (Lan-DeMets "
                           "O'Brien-Fleming-type alpha spending by the information the ok samples carry, "
                           "Holm step-down over the cells) "
                           "and its repeated confidence interval, so stopping at the first decision keeps the "
                           "error rates at alpha. Its p is the unadjusted one, compared with that boundary, and its "
                           "bracket the repeated interval at 1 - the boundary: it leaves out no change exactly "
                           "when the look rejects."
                     : "");
}

const core::MetricResult* primary(const core::CellResult& cell) {
  for (const auto& r : cell.metrics)
    if (r.primary) return &r;
  return cell.metrics.empty() ? nullptr : &cell.metrics.front();
}

std::size_t display_width(std::string_view s) {
  std::size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) ++n;
  return n;
}

std::string kb_text(double kb) {
  if (!std::isfinite(kb)) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f kB", kb);
  return buf;
}

const core::GateResult* gate_of(const core::ReportContext& ctx, const std::string& arm) {
  for (const auto& g : ctx.gates)
    if (g.arm == arm) return &g;
  return nullptr;
}

bool correctness_failure(const core::Comparison& c, const core::ReportContext& ctx) {
  const core::GateResult* base = gate_of(ctx, c.base_arm);
  const core::GateResult* cand = gate_of(ctx, c.candidate_arm);
  return base && cand && base->clean() && !cand->clean();
}

std::string headline_verdict(const core::Comparison& c, const core::ReportContext& ctx) {
  return correctness_failure(c, ctx) ? "correctness failure" : core::to_string(c.verdict);
}

std::string headline_verdict_key(const core::Comparison& c, const core::ReportContext& ctx) {
  return correctness_failure(c, ctx) ? "correctness_failure" : core::verdict_key(c.verdict);
}

namespace {

std::string minutes_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f min", s / 60);
  return buf;
}

// "a, b and c".
std::string listing(const std::vector<std::string>& items) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i)
    out += (i == 0 ? "" : i + 1 == items.size() ? " and " : ", ") + items[i];
  return out;
}

}  // namespace

std::string correctness_text(const core::Comparison& c, const core::ReportContext& ctx) {
  if (ctx.gates.empty())
    return "Correctness: no gate ran with this comparison (kab compare --gate runs one on each kernel's debug "
           "variant before the measurement).";
  std::vector<std::string> families, backends;
  for (const auto& g : ctx.gates)
    for (const auto& k : g.checks) {
      if (std::find(families.begin(), families.end(), k.family) == families.end()) families.push_back(k.family);
      if (std::find(backends.begin(), backends.end(), k.backend) == backends.end()) backends.push_back(k.backend);
    }
  std::string out = "Correctness: the gate ran famil" + std::string(families.size() == 1 ? "y " : "ies ") +
                    listing(families) + " against backend" + (backends.size() == 1 ? " " : "s ") + listing(backends) +
                    " before the measurement.";
  for (const auto& g : ctx.gates) {
    out += " " + arm_label(g.arm, g.kernel) + (g.variant.empty() ? "" : " (" + g.variant + ")") + ": ";
    const std::string checks = std::to_string(g.checks.size()) + " check" + (g.checks.size() == 1 ? "" : "s");
    out += g.clean() ? "clean, " + checks
                     : "FAILED " + std::to_string(g.not_clean()) + " of " + checks;
    out += ", " + minutes_text(g.fio_s()) + " of fio.";
  }
  const core::GateResult* base = gate_of(ctx, c.base_arm);
  const core::GateResult* cand = gate_of(ctx, c.candidate_arm);
  if (correctness_failure(c, ctx))
    out += " The candidate fails the gate and the base passes it: the verdict is correctness failure, whatever "
           "the performance says.";
  else if (base && cand && !base->clean() && !cand->clean())
    out += " Both kernels fail it: the base's findings are not the patch's, and the verdict is the performance one.";
  else if (base && cand && !base->clean())
    out += " The base fails it and the candidate passes.";
  else if (base && cand)
    out += " Neither kernel reported anything.";
  return out;
}

std::vector<std::vector<std::string>> correctness_rows(const core::ReportContext& ctx) {
  std::vector<std::vector<std::string>> rows;
  if (ctx.gates.empty()) return rows;
  rows.push_back({"kernel", "family", "backend", "fio s", "result"});
  for (const auto& g : ctx.gates)
    for (const auto& k : g.checks) {
      char fio[32];
      std::snprintf(fio, sizeof fio, "%.0f", k.fio_s);
      rows.push_back({g.arm, k.family, k.backend, fio, k.status == "ok" ? "clean" : k.status});
    }
  return rows;
}

std::vector<std::string> correctness_findings(const core::ReportContext& ctx) {
  std::vector<std::string> out;
  for (const auto& g : ctx.gates)
    for (const auto& k : g.checks) {
      if (k.status == "ok") continue;
      std::string what = core::trim(k.finding.empty() ? k.reason : k.finding);
      out.push_back(arm_label(g.arm, g.kernel) + ", " + k.family + " on " + k.backend + " (run " +
                    std::to_string(k.run) + "): " + what + (k.rerun.empty() ? "" : " — rerun: " + k.rerun));
    }
  return out;
}

}  // namespace kab::report
