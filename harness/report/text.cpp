#include "report/text.h"

#include <algorithm>
#include <vector>

#include "report/format.h"

namespace kab::report {

namespace {

const char* colour_of(core::Verdict v) {
  switch (v) {
    case core::Verdict::regression: return "\033[1;31m";
    case core::Verdict::improvement: return "\033[1;32m";
    case core::Verdict::inconclusive: return "\033[33m";
    case core::Verdict::equivalent: return "";
  }
  return "";
}

struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::vector<core::Verdict> verdicts;   // per row, for colour
  std::size_t left_columns = 2;          // text columns, left-aligned (and the last one); figures right

  std::string render(bool color) const {
    std::vector<std::size_t> width(header.size());
    auto measure = [&](const std::vector<std::string>& r) {
      for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], display_width(r[i]));
    };
    measure(header);
    for (const auto& r : rows) measure(r);
    std::string out;
    auto line = [&](const std::vector<std::string>& r, const char* colour) {
      std::string l;
      for (std::size_t i = 0; i < r.size(); ++i) {
        // Text columns left, figures right.
        bool left = i < left_columns || i + 1 == r.size();
        std::string pad(width[i] - display_width(r[i]), ' ');
        std::string cell = r[i];
        if (i + 1 == r.size() && colour && *colour) cell = colour + cell + "\033[0m";
        l += left ? cell + (i + 1 == r.size() ? "" : pad) : pad + cell;
        if (i + 1 < r.size()) l += "  ";
      }
      out += l + "\n";
    };
    line(header, nullptr);
    std::size_t total = 0;
    for (auto w : width) total += w + 2;
    out += std::string(total - 2, '-') + "\n";
    for (std::size_t i = 0; i < rows.size(); ++i) line(rows[i], color ? colour_of(verdicts[i]) : nullptr);
    return out;
  }
};

}  // namespace

std::string render_text(const core::Comparison& c, const core::ReportContext& ctx, const TextOptions& options) {
  std::string out;
  const std::string bold = options.color ? "\033[1m" : "", reset = options.color ? "\033[0m" : "";
  out += bold + (ctx.title.empty() ? "kab compare: " + c.scenario : ctx.title) + reset + "\n";
  out += "base " + arm_label(c.base_arm, c.base_kernel) + ": " + std::to_string(c.base_included) + " samples";
  if (c.base_excluded) out += " (+" + std::to_string(c.base_excluded) + " excluded)";
  out += "; candidate " + arm_label(c.candidate_arm, c.candidate_kernel) + ": " +
         std::to_string(c.candidate_included) + " samples";
  if (c.candidate_excluded) out += " (+" + std::to_string(c.candidate_excluded) + " excluded)";
  out += "\n";

  for (const auto& backend : c.backends) {
    Table t;
    t.header = {"cell", "metric", c.base_arm, c.candidate_arm, "change", interval_header(c), "p", "verdict"};
    for (const auto& cell : c.cells) {
      if (cell.backend != backend) continue;
      for (const auto& r : cell.metrics) {
        t.rows.push_back({cell.label, core::metric_info(r.metric).label,
                          metric_value_text(r.metric, r.base.summary.median),
                          metric_value_text(r.metric, r.candidate.summary.median), change_text(r.change),
                          interval_text(r, c.confidence), p_text(judged_p(r)), verdict_text(r)});
        t.verdicts.push_back(r.verdict);
      }
    }
    out += "\n" + bold + "backend " + backend + reset + "\n" + t.render(options.color);
  }

  out += "\n" + statistics_text(c) + "\n";

  // Reasons for verdicts that need one: an inconclusive primary metric says what is missing.
  for (const auto& cell : c.cells)
    for (const auto& r : cell.metrics)
      if (r.primary && r.verdict == core::Verdict::inconclusive)
        out += "inconclusive: " + cell.backend + " " + cell.label + " " + core::metric_info(r.metric).label + ": " +
               r.reason + "\n";

  if (!c.warnings.empty()) out += "\n";
  for (const auto& w : c.warnings)
    out += (options.color ? "\033[33mwarning:\033[0m " : "warning: ") + w.message + "\n";

  out += "\n" + correctness_text(c, ctx) + "\n";
  if (auto rows = correctness_rows(ctx); !rows.empty()) {
    Table t;
    t.left_columns = 3;
    t.header = rows.front();
    for (std::size_t i = 1; i < rows.size(); ++i) {
      t.rows.push_back(rows[i]);
      t.verdicts.push_back(rows[i].back() == "clean" ? core::Verdict::equivalent : core::Verdict::regression);
    }
    out += t.render(options.color);
  }
  for (const auto& f : correctness_findings(ctx)) out += "finding: " + f + "\n";

  const char* colour = !options.color ? "" : correctness_failure(c, ctx) ? "\033[1;31m" : colour_of(c.verdict);
  out += "\nverdict: " + std::string(colour) + headline_verdict(c, ctx) + (*colour ? reset : "") + "\n";
  return out;
}

}  // namespace kab::report
