// The evidence block for a patch mail, in the spirit of the RFC's: the fio job
// file; per side fio-style summary lines of the median sample with n and CV;
// the change with its confidence interval and p; the WritebackTmp observation;
// the environment; the command that reproduces it. Markdown, readable as plain
// text in a mail. Formatting only.
#pragma once

#include <string>

#include "core/analyzer.h"

namespace kab::report {

std::string render_markdown(const core::Comparison& c, const core::ReportContext& ctx);

}  // namespace kab::report
