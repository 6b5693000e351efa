// The comparison as a maintainer reads it in a mail client: plain text, no
// line over 80 columns — a subject line, the verdict in one paragraph, a
// fixed-width table of each metric's change, interval, p and verdict, the
// medians, the mechanism counters, the correctness gate, the environment and
// the recipe. In the shape of the 0-day robot's reports, not Markdown.
#pragma once

#include <string>

#include "core/analyzer.h"

namespace kab::report {

inline constexpr std::size_t k_mail_columns = 80;

std::string render_mail(const core::Comparison& c, const core::ReportContext& ctx);

// Words of TEXT filled into lines of at most WIDTH columns (UTF-8 code points),
// each starting with INDENT; a word longer than the line is broken.
std::string fill(const std::string& text, std::size_t width, const std::string& indent = "");

}  // namespace kab::report
