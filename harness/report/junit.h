// JUnit XML for CI: one <testsuite> per backend, one <testcase> per cell ×
// metric (classname "kab.<scenario>.<backend>.<cell>", name the metric key). A
// regression is a <failure>; an inconclusive result is <skipped> with its
// reason, so CI shows it without failing; improvements and no change pass.
// Formatting only.
#pragma once

#include <string>

#include "core/analyzer.h"

namespace kab::report {

std::string render_junit(const core::Comparison& c, const core::ReportContext& ctx);

}  // namespace kab::report
