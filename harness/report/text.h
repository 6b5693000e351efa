// The terminal report: one table per backend (cell, metric, base median,
// candidate median, change, 95% CI, p, verdict), the warnings and the overall
// verdict. Formatting only.
#pragma once

#include <string>

#include "core/analyzer.h"

namespace kab::report {

struct TextOptions {
  bool color = false;   // ANSI colours for verdicts and warnings (set when stdout is a TTY)
};

std::string render_text(const core::Comparison& c, const core::ReportContext& ctx, const TextOptions& options = {});

}  // namespace kab::report
