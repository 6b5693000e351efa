// One self-contained HTML page (no scripts, no external files): the tables,
// warnings, environment and reproduce command, with charts drawn by gnuplot
// as inline SVG — per cell the samples of both arms as points with medians and
// the CI, and a summary of every change with its CI whiskers. When gnuplot is
// missing the page says so in place of the charts.
#pragma once

#include <functional>
#include <string>

#include "core/analyzer.h"

namespace kab::report {

struct Chart {
  bool ok = false;
  std::string svg;     // an <svg> element, without XML prolog or doctype
  std::string error;   // why there is no chart
  bool missing_tool = false;  // the chart program is not installed
};

// Turns a gnuplot script (data blocks and plot commands; no terminal or
// output settings) into an SVG of width × height pixels.
using ChartRenderer = std::function<Chart(const std::string& script, int width, int height)>;

// Runs `program` (looked up in PATH) on a script file in a fresh temporary
// directory with `set terminal svg` and `set output` prepended, reads the SVG
// and removes the directory. Never throws: failures come back in Chart.error
// (with missing_tool set when the program is not found).
ChartRenderer gnuplot_renderer(std::string program = "gnuplot");

// A gnuplot double-quoted string: "a \"b\"".
std::string gnuplot_quote(const std::string& s);
// A number as a script writes it (%.10g; "?" for NaN and infinities, which gnuplot skips).
std::string gnuplot_number(double v);

// The scripts behind the charts (exposed for tests). The cell chart plots the
// cell's primary metric (bandwidth, in MiB/s); "" when it has no values.
std::string cell_chart_script(const core::Comparison& c, const core::CellResult& cell);
std::string summary_chart_script(const core::Comparison& c);

struct HtmlOptions {
  ChartRenderer charts;   // empty = gnuplot_renderer()
};

std::string render_html(const core::Comparison& c, const core::ReportContext& ctx, const HtmlOptions& options = {});

}  // namespace kab::report
