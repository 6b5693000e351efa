// Formatting shared by the renderers of core::Comparison: numbers the way fio
// and people write them (escaping for XML/HTML is core::xml_escape). Pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/analyzer.h"
#include "core/text.h"

namespace kab::report {

// fio's number style: at most four digits before the unit, decimals filling
// the rest ("655", "12.1", "1.52"). fio_binary divides by 1024 (KiB, MiB…),
// fio_decimal by 1000 (kB, MB…).
std::string fio_binary(double value, std::string_view suffix);   // (686817280, "/s") → "655MiB/s"
std::string fio_decimal(double value, std::string_view suffix);  // (686817280, "/s") → "687MB/s"

// The summary line fio prints for one job group, from one sample's figures:
// "WRITE: bw=655MiB/s (687MB/s), io=19.2GiB (20.6GB), run=30001-30001msec".
// A sample that read and wrote: "READ+WRITE: bw=<both> …; read bw=…, write bw=…".
std::string fio_line(const std::string& direction, const core::FioMetrics& f);

// A metric's value in its natural unit: "655.0 MiB/s", "655 IO/s",
// "12.3 ms", "0.133 s/GiB". NaN → "-".
std::string metric_value_text(core::Metric m, double v);

// Relative change as a signed percentage: 0.151 → "+15.1%"; NaN → "-".
std::string change_text(double change);
// A ratio interval as change percentages: {1.12, 1.18} → "[+12.0%, +18.0%]".
std::string ci_text(const core::Interval& ratio_ci);
// p-values: "0.0079", "0.33", "<0.0001"; NaN → "-".
std::string p_text(double p);

// What a metric's verdict was judged by, for the tables' bracket and p
// columns: its interval (MetricResult::ci), with its coverage when that is not
// the table's CONFIDENCE ("[-21.1%, -3.3%] repeated 99.2%"), and its p (the
// Holm-adjusted p at fixed n; the raw p compared with a sequential look's boundary).
std::string interval_text(const core::MetricResult& r, double confidence);
double judged_p(const core::MetricResult& r);
// The bracket column's header: "95% CI".
std::string interval_header(const core::Comparison& c);

// A metric's verdict for a table: "equivalent", "regression (primary)", and
// for an untested IOPS "as bandwidth: equivalent".
std::string verdict_text(const core::MetricResult& r);

// How the verdicts were reached, in one paragraph for every format: the
// interval, the test, the two Holm families, what each verdict means.
std::string statistics_text(const core::Comparison& c);
// "12.0%" for a CV of 0.12; NaN → "-".
std::string percent_text(double fraction);
// Settings as written: 0.95 → "95%", 0.02 → "2%", 0.025 → "2.5%".
std::string setting_percent(double fraction);

// Escaping for XML text and attribute values: core::xml_escape (core/text.h).
using core::xml_escape;

// A kernel as the evidence names it: "rfc-6.1 6.1.158, config cfg0123,
// patches 0001-x.patch (patch4567)"; from git "… from v6.1 (48f647b15e40), …,
// patches 1a2b3c4d5e6f ("fuse: use page cache …") (patch-id:…)".
std::string kernel_text(const core::KernelFacts& k);

// Columns a string takes on a terminal or in a mail, counted in UTF-8 code
// points (so "µ" or "–" do not skew a table; a wide CJK character counts 1).
std::size_t display_width(std::string_view s);

// A kB figure as reports print WritebackTmp: "1024 kB"; NaN → "-".
std::string kb_text(double kb);

// "stock (stock-6.1)" or just "stock" when the kernel is unknown.
std::string arm_label(const std::string& arm, const std::string& kernel);

// The correctness gate (kab compare --gate), for every format.
// The gate of ARM's kernel, or nullptr when none ran.
const core::GateResult* gate_of(const core::ReportContext& ctx, const std::string& arm);
// The candidate failed the gate and the base passed it: the comparison's
// verdict is "correctness failure" whatever the performance says.
bool correctness_failure(const core::Comparison& c, const core::ReportContext& ctx);
// The verdict a report leads with: "correctness failure", else the performance verdict.
std::string headline_verdict(const core::Comparison& c, const core::ReportContext& ctx);
// Its key for JSON and CSS: "correctness_failure", else core::verdict_key.
std::string headline_verdict_key(const core::Comparison& c, const core::ReportContext& ctx);
// The section in one paragraph: each kernel's families, backends, fio minutes
// and result, and what it does to the verdict; or that no gate ran.
std::string correctness_text(const core::Comparison& c, const core::ReportContext& ctx);
// Its table (header first): arm, family, backend, fio seconds, result
// ("clean" or the sample's status). Empty when no gate ran.
std::vector<std::vector<std::string>> correctness_rows(const core::ReportContext& ctx);
// Each check that was not clean: "candidate testing-uaf-6.1, writeback on
// writeback (run 4): BUG: KASAN: … — rerun: kab gate …".
std::vector<std::string> correctness_findings(const core::ReportContext& ctx);

// The bandwidth result of a cell (the primary metric), or nullptr if it has none.
const core::MetricResult* primary(const core::CellResult& cell);

}  // namespace kab::report
