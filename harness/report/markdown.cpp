#include "report/markdown.h"

#include <cmath>
#include <cstdio>

#include "report/format.h"

namespace kab::report {

namespace {

std::string fence(const std::string& body, const std::string& lang = "") {
  std::string b = body;
  if (!b.empty() && b.back() != '\n') b += '\n';
  return "```" + lang + "\n" + b + "```\n";
}

// "| a | b |" with pipes in cells escaped.
std::string row(const std::vector<std::string>& cells) {
  std::string out = "|";
  for (const auto& c : cells) {
    std::string e;
    for (char ch : c) e += ch == '|' ? std::string("\\|") : std::string(1, ch);
    out += " " + e + " |";
  }
  return out + "\n";
}

void fact(std::string& out, const std::string& name, const std::string& value) {
  if (!value.empty()) out += "- " + name + ": " + value + "\n";
}

}  // namespace

std::string render_markdown(const core::Comparison& c, const core::ReportContext& ctx) {
  std::string out;
  const std::string base = arm_label(c.base_arm, c.base_kernel);
  const std::string cand = arm_label(c.candidate_arm, c.candidate_kernel);
  out += "### " + (ctx.title.empty() ? c.scenario + ": " + c.base_arm + " vs " + c.candidate_arm : ctx.title) + "\n\n";
  out += "Verdict: **" + headline_verdict(c, ctx) + "**";
  if (!ctx.date.empty()) out += " (" + ctx.date + ")";
  out += "\n\n";

  if (!ctx.job_file.empty()) out += "fio job file:\n\n" + fence(ctx.job_file, "ini") + "\n";

  for (const auto& cell : c.cells) {
    out += "#### " + cell.backend + ", " + cell.label + "\n\n";
    std::string lines;
    for (auto [label, ac, arm] : {std::tuple(&base, &cell.base, true), std::tuple(&cand, &cell.candidate, false)}) {
      const core::MetricResult* bw = primary(cell);
      const core::Summary* s = bw ? (arm ? &bw->base.summary : &bw->candidate.summary) : nullptr;
      const int n = s ? s->n : 0;
      lines += *label + ", n=" + std::to_string(n) + ", CV " + percent_text(s ? s->cv : NAN);
      if (ac->excluded) lines += ", " + std::to_string(ac->excluded) + " excluded";
      if (ac->median_fio) lines += n % 2 ? ", median sample:" : ", lower median sample:";
      lines += "\n";
      if (ac->median_fio) lines += "  " + fio_line(cell.direction, *ac->median_fio) + "\n";
    }
    out += fence(lines) + "\n";
    if (const core::MetricResult* bw = primary(cell)) {
      out += "Change of the median " + std::string(core::metric_info(bw->metric).label) + ": **" +
             change_text(bw->change) + "** (" +
             (bw->at_look ? "repeated " + setting_percent(bw->ci_coverage) + " interval " + ci_text(bw->ci)
                          : setting_percent(bw->ci_coverage) + " CI " + ci_text(bw->ci)) +
             "), p = " + p_text(judged_p(*bw)) + " (two-sided Mann-Whitney U" +
             (bw->at_look ? ", against look " + std::to_string(c.look) + "'s boundary " + p_text(bw->level)
              : bw->p_adjusted != bw->test.p ? ", Holm-adjusted; unadjusted " + p_text(bw->test.p)
                                             : std::string()) +
             "): " + core::to_string(bw->verdict) + ".\n\n";
    }
    out += row({"metric", c.base_arm, c.candidate_arm, "change", interval_header(c), "p", "verdict"});
    out += "|---|---:|---:|---:|---:|---:|---|\n";
    for (const auto& r : cell.metrics)
      out += row({core::metric_info(r.metric).label, metric_value_text(r.metric, r.base.summary.median),
                  metric_value_text(r.metric, r.candidate.summary.median), change_text(r.change),
                  interval_text(r, c.confidence), p_text(judged_p(r)), verdict_text(r)});
    out += "\n";
    out += "WritebackTmp (peak during fio, highest of the samples): " + c.base_arm + " " +
           kb_text(cell.base.writeback_tmp_peak_kb.max) + ", " + c.candidate_arm + " " +
           kb_text(cell.candidate.writeback_tmp_peak_kb.max) + " (medians of per-sample peaks " +
           kb_text(cell.base.writeback_tmp_peak_kb.median) + " and " +
           kb_text(cell.candidate.writeback_tmp_peak_kb.median) + ").\n\n";
    for (const auto& r : cell.metrics)
      if (r.primary && r.verdict != core::Verdict::improvement && r.verdict != core::Verdict::regression)
        out += "Why " + core::to_string(r.verdict) + ": " + r.reason + ".\n\n";
  }

  out += "Statistics: medians of repeated, interleaved samples. " + statistics_text(c) + "\n\n";

  if (!c.warnings.empty()) {
    out += "Warnings:\n\n";
    for (const auto& w : c.warnings) out += "- " + w.message + "\n";
    out += "\n";
  }

  out += correctness_text(c, ctx) + "\n\n";
  if (auto rows = correctness_rows(ctx); !rows.empty()) {
    out += row(rows.front());
    out += row(std::vector<std::string>(rows.front().size(), "---"));
    for (std::size_t i = 1; i < rows.size(); ++i) out += row(rows[i]);
    out += "\n";
  }
  if (auto findings = correctness_findings(ctx); !findings.empty()) {
    for (const auto& f : findings) out += "- " + f + "\n";
    out += "\n";
  }

  out += "Environment:\n\n";
  fact(out, "host CPU", ctx.host_cpu);
  fact(out, "host kernel", ctx.host_kernel);
  fact(out, "accelerator", ctx.accelerator);
  fact(out, "QEMU", ctx.qemu_version);
  fact(out, "virtiofsd", ctx.virtiofsd_version);
  fact(out, "libvirt", ctx.libvirt_version);
  fact(out, "fio", ctx.fio_version);
  const auto& backend_options = ctx.backend_options.empty() ? c.backend_cmdlines : ctx.backend_options;
  for (const auto& [backend, options] : backend_options)
    if (!options.empty()) out += "- backend " + backend + ": `" + options + "`\n";
  for (const auto& k : ctx.kernels) {
    out += "- kernel " + k.arm + ": " + kernel_text(k) + "\n";
  }
  for (const auto& [k, v] : ctx.extra) fact(out, k, v);
  fact(out, "kab", ctx.kab_version);
  if (!c.run_ids.empty()) {
    std::string runs;
    for (auto id : c.run_ids) runs += (runs.empty() ? "" : ", ") + std::to_string(id);
    fact(out, c.run_ids.size() == 1 ? "run" : "runs", runs);
  }
  out += "\n";

  if (!ctx.command.empty()) out += "Reproduce:\n\n" + fence("$ " + ctx.command, "sh");
  return out;
}

}  // namespace kab::report
