// The comparison in one paragraph: what was compared on how many samples,
// the primary metric's change and verdict (and what would decide it), the
// secondary metrics' verdicts, the RFC's mechanism counters, the verdict,
// and where the full reports are. What `make demo` ends with.
#pragma once

#include <string>

#include "core/analyzer.h"

namespace kab::report {

std::string render_summary(const core::Comparison& c, const core::ReportContext& ctx);

}  // namespace kab::report
