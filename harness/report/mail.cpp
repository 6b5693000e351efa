#include "report/mail.h"

#include <algorithm>
#include <sstream>
#include <vector>

#include "report/format.h"

namespace kab::report {

namespace {

// The first N code points of S.
std::string head(const std::string& s, std::size_t n) {
  std::size_t i = 0, seen = 0;
  for (; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
      if (seen == n) break;
      ++seen;
    }
  }
  return s.substr(0, i);
}

// A fixed-width table: the first LEFT columns and the last left, the others right.
std::string table(const std::vector<std::vector<std::string>>& rows, const std::string& indent, std::size_t left_columns = 1) {
  std::vector<std::size_t> width;
  for (const auto& r : rows) {
    width.resize(std::max(width.size(), r.size()));
    for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], display_width(r[i]));
  }
  std::string out;
  for (const auto& r : rows) {
    std::string line = indent;
    for (std::size_t i = 0; i < r.size(); ++i) {
      const std::string pad(width[i] - display_width(r[i]), ' ');
      const bool left = i < left_columns || i + 1 == r.size();
      line += left ? r[i] + (i + 1 == r.size() ? "" : pad) : pad + r[i];
      if (i + 1 < r.size()) line += "  ";
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  // Long names (an arm, a backend) would push it past 80 columns: a row per
  // paragraph instead, its cells separated by " | ".
  std::size_t widest = 0;
  for (const auto& l : core::split(out, '\n')) widest = std::max(widest, display_width(l));
  if (widest <= k_mail_columns) return out;
  out.clear();
  for (const auto& r : rows) {
    std::string joined;
    for (const auto& cell : r) joined += (joined.empty() ? "" : " | ") + cell;
    out += fill(joined, k_mail_columns, indent);
  }
  return out;
}

// A command as a shell reads it back: words never broken, lines joined by
// " \" continuations.
std::string command_lines(const std::string& command, std::size_t width, const std::string& indent) {
  std::istringstream in(command);
  std::string word, line, out;
  while (in >> word) {
    if (!line.empty() && display_width(indent) + display_width(line) + 1 + display_width(word) + 2 > width) {
      out += indent + line + " \\\n";
      line.clear();
    }
    line += (line.empty() ? "" : " ") + word;
  }
  if (!line.empty()) out += indent + line + "\n";
  return out;
}

}  // namespace

std::string fill(const std::string& text, std::size_t width, const std::string& indent) {
  std::istringstream in(text);
  std::string word, line, out;
  const std::size_t room = width > display_width(indent) + 8 ? width - display_width(indent) : 8;
  auto flush = [&] {
    if (!line.empty()) out += indent + line + "\n";
    line.clear();
  };
  while (in >> word) {
    while (display_width(word) > room) {   // a path or a command longer than a line
      flush();
      out += indent + head(word, room) + "\n";
      word = word.substr(head(word, room).size());
    }
    if (!line.empty() && display_width(line) + 1 + display_width(word) > room) flush();
    line += (line.empty() ? "" : " ") + word;
  }
  flush();
  return out;
}

std::string render_mail(const core::Comparison& c, const core::ReportContext& ctx) {
  const std::size_t w = 72;   // prose as mail is written; tables may use the 80
  std::string out;
  // Subject: the verdict first (a client that cuts the line keeps it), then
  // the primary metric's change when there is one cell.
  std::string detail;
  if (c.cells.size() == 1) {
    if (const core::MetricResult* p = primary(c.cells.front()))
      detail = ", " + std::string(core::metric_info(p->metric).label) + " " + change_text(p->change);
  } else {
    detail = " (" + std::to_string(c.cells.size()) + " cells)";
  }
  const std::string who = "Subject: [kab] " + c.candidate_kernel + " vs " + c.base_kernel;
  const std::string verdict_word = headline_verdict(c, ctx);
  std::string subject = who + " on " + c.scenario + ": " + verdict_word + detail;
  // Too long: the body names the scenario, then the change; the verdict stays.
  if (display_width(subject) > k_mail_columns) subject = who + ": " + verdict_word + detail;
  if (display_width(subject) > k_mail_columns) subject = who + ": " + verdict_word;
  out += head(subject, k_mail_columns) + "\n\n";

  // The verdict in one paragraph.
  std::string verdict = "kab compared " + arm_label(c.candidate_arm, c.candidate_kernel) + " with " +
                        arm_label(c.base_arm, c.base_kernel) + " on scenario " + c.scenario + ", " +
                        std::to_string(c.candidate_included) + " + " + std::to_string(c.base_included) +
                        " samples interleaved" + (ctx.accelerator.empty() ? "" : " (" + ctx.accelerator + ")") + ".";
  for (const auto& cell : c.cells) {
    const core::MetricResult* p = primary(cell);
    if (!p) continue;
    verdict += " " + std::string(core::metric_info(p->metric).label) +
               (c.cells.size() > 1 || c.backends.size() > 1 ? " [" + cell.backend + " " + cell.label + "]" : "") +
               " changed " + change_text(p->change) + " " + interval_text(*p, c.confidence) + ", p " +
               p_text(judged_p(*p)) + ": " + core::to_string(p->verdict);
    if (p->verdict == core::Verdict::inconclusive && p->samples_needed > 0)
      verdict += " (about " + std::to_string(p->samples_needed) + " samples per kernel would decide)";
    verdict += ".";
  }
  if (correctness_failure(c, ctx))
    verdict += " The candidate fails the correctness gate, which the base passes (Correctness, below).";
  verdict += " Smallest change that counts: " + setting_percent(c.min_effect) + ", alpha " + p_text(c.alpha) +
             ". Verdict: " + headline_verdict(c, ctx) + ".";
  out += fill(verdict, w) + "\n";

  // The metrics, per backend and cell.
  for (const auto& cell : c.cells) {
    out += fill("backend " + cell.backend + ", " + cell.label + ":", w);
    std::vector<std::vector<std::string>> rows = {{"metric", "change", interval_header(c), "p", "verdict"}};
    // Narrow enough for 80 columns whatever the figures: the primary metric
    // marked with *, an untested IOPS said to be bandwidth's own test.
    for (const auto& r : cell.metrics)
      rows.push_back({std::string(core::metric_info(r.metric).label) + (r.primary ? "*" : ""), change_text(r.change),
                      interval_text(r, c.confidence), p_text(judged_p(r)),
                      r.tested ? core::to_string(r.verdict) : "(as bandwidth)"});
    out += table(rows, "  ");
    out += "  * the primary metric: the verdict comes from it\n";
    std::vector<std::vector<std::string>> medians = {{"median", c.base_arm, c.candidate_arm}};
    for (const auto& r : cell.metrics)
      medians.push_back({core::metric_info(r.metric).label, metric_value_text(r.metric, r.base.summary.median),
                         metric_value_text(r.metric, r.candidate.summary.median)});
    medians.push_back({"WritebackTmp peak", kb_text(cell.base.writeback_tmp_peak_kb.max), kb_text(cell.candidate.writeback_tmp_peak_kb.max)});
    medians.push_back({"nr_writeback_temp peak", std::to_string(static_cast<long long>(cell.base.nr_writeback_temp_peak.max)),
                       std::to_string(static_cast<long long>(cell.candidate.nr_writeback_temp_peak.max))});
    out += "\n" + table(medians, "  ") + "\n";
  }
  out += fill("Mechanism: WritebackTmp and nr_writeback_temp are the guest's FUSE temporary pages in "
              "writeback (peaks over each sample); the RFC removes them.",
              w) +
         "\n";

  out += fill(correctness_text(c, ctx), w);
  if (auto rows = correctness_rows(ctx); !rows.empty()) out += "\n" + table(rows, "  ", 3);
  for (const auto& f : correctness_findings(ctx)) out += "\n" + fill(f, w, "  ");
  out += "\n";

  for (const auto& warning : c.warnings) out += fill("Warning: " + warning.message, w);
  if (!c.warnings.empty()) out += "\n";

  // The environment.
  out += "Environment:\n";
  for (const auto& k : ctx.kernels) out += fill(arm_label(k.arm, k.kernel) + ": " + kernel_text(k), w, "  ");
  std::string env;
  if (!ctx.host_cpu.empty()) env += "host " + ctx.host_cpu + "; ";
  if (!ctx.host_kernel.empty()) env += "host kernel " + ctx.host_kernel + "; ";
  if (!ctx.accelerator.empty()) env += "accelerator " + ctx.accelerator + "; ";
  if (!ctx.qemu_version.empty()) env += "QEMU " + ctx.qemu_version + "; ";
  if (!ctx.virtiofsd_version.empty()) env += "virtiofsd " + ctx.virtiofsd_version + "; ";
  if (!ctx.fio_version.empty()) env += "fio " + ctx.fio_version + "; ";
  if (!ctx.kab_version.empty()) env += "kab " + ctx.kab_version + "; ";
  if (!ctx.date.empty()) env += "run " + ctx.date + "; ";
  if (!env.empty()) out += fill(env.substr(0, env.size() - 2) + ".", w, "  ");
  for (const auto& [k, v] : ctx.extra) out += fill(k + ": " + v, w, "  ");
  out += "\n";

  out += fill(statistics_text(c), w) + "\n";
  if (!ctx.command.empty()) out += "Reproduce:\n" + command_lines(ctx.command, k_mail_columns, "  ");
  return out;
}

}  // namespace kab::report
