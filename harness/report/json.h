// The whole comparison as JSON, for machines: schema-versioned, with the
// context block first (google/benchmark style) and every figure the Analyzer
// computed, including the per-sample values. NaN figures are null.
#pragma once

#include <string>

#include "core/analyzer.h"

namespace kab::report {

// Bumped whenever a field changes meaning or disappears (adding fields does not).
inline constexpr int k_json_schema_version = 3;   // 2: equivalent replaces no_change; primary metric, families, equivalence interval
                                                 // 3: comparison.correctness; verdict may be correctness_failure (performance_verdict beside it)

// Pretty-printed (indent 2), ends with a newline.
std::string render_json(const core::Comparison& c, const core::ReportContext& ctx);

}  // namespace kab::report
