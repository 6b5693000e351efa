#include "report/summary.h"


#include "report/format.h"
#include "report/formats.h"

namespace kab::report {

std::string render_summary(const core::Comparison& c, const core::ReportContext& ctx) {
  std::string out = arm_label(c.candidate_arm, c.candidate_kernel) + " against " + arm_label(c.base_arm, c.base_kernel) +
                    " on " + c.scenario + ": " + std::to_string(c.candidate_included) + " + " +
                    std::to_string(c.base_included) + " samples" +
                    (ctx.accelerator.empty() ? "" : " (" + ctx.accelerator + ")") + ".";
  for (const auto& cell : c.cells) {
    const core::MetricResult* p = primary(cell);
    if (!p) continue;
    const std::string where = c.cells.size() > 1 || c.backends.size() > 1 ? " [" + cell.backend + " " + cell.label + "]" : "";
    out += " " + std::string(core::metric_info(p->metric).label) + where + " " + change_text(p->change) + " " +
           interval_text(*p, c.confidence) + ": " + core::to_string(p->verdict);
    if (p->verdict == core::Verdict::inconclusive && p->samples_needed > 0)
      out += " (about " + std::to_string(p->samples_needed) + " samples per arm would decide)";
    out += ";";
    std::string secondary;
    for (const auto& r : cell.metrics) {
      if (r.primary || !r.tested) continue;
      secondary += (secondary.empty() ? "" : ", ") + std::string(core::metric_info(r.metric).label) + " " +
                   change_text(r.change) + " " + core::to_string(r.verdict);
    }
    if (!secondary.empty()) out += " beside it " + secondary + ".";
    out += " WritebackTmp peak " + c.base_arm + " " + kb_text(cell.base.writeback_tmp_peak_kb.max) + ", " + c.candidate_arm +
           " " + kb_text(cell.candidate.writeback_tmp_peak_kb.max) + ".";
  }
  if (!ctx.gates.empty()) {
    out += " Correctness gate:";
    for (std::size_t i = 0; i < ctx.gates.size(); ++i) {
      const auto& g = ctx.gates[i];
      out += std::string(i ? "," : "") + " " + g.arm + " " +
             (g.clean() ? "clean" : "FAILED " + std::to_string(g.not_clean()) + " of " + std::to_string(g.checks.size()));
    }
    out += ".";
  }
  out += " Verdict: " + headline_verdict(c, ctx) + ".";
  if (!ctx.reports_dir.empty()) {
    std::string extensions;
    for (const auto& f : formats()) extensions += (extensions.empty() ? "" : ",") + std::string(f.extension);
    out += " Reports: " + ctx.reports_dir + "/comparison.{" + extensions + "}.";
  }
  return out + "\n";
}

}  // namespace kab::report
