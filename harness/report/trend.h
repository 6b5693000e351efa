// The nightly trend page: per scenario and cell, the nightly medians of the
// primary metric over the nights (gnuplot SVG: nights on x, the baseline
// band, regressions and alerts marked, the change point as a dashed line),
// each night in a table below with a link to its comparison reports.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "report/html.h"

namespace kab::report {

struct TrendPoint {
  std::string night;
  std::int64_t run = 0;
  std::string commit;     // 12 hex digits
  double value = 0;       // the night's median, in the series' unit
  int n = 0;              // samples behind it
  std::string verdict;    // as stored: first, regression, equivalent, …
  bool alert = false;
  bool baseline = false;  // in the baseline of the last night
  std::string link;       // the night's comparison page ("" when it has none)
};

struct TrendSeries {
  std::string title;      // "quick: virtiofsd (default)"
  std::string metric;     // "bandwidth (MiB/s)"
  std::vector<TrendPoint> points;
  int change_index = -1;  // the first night of a new level (core/changepoint.h), -1 none
  std::string change_text;
};

// The gnuplot script of one series ("" when it has no point).
std::string trend_chart_script(const TrendSeries& s);

// The page: a title, facts (name, value), a chart and a table per series.
std::string render_trend_html(const std::string& title, const std::vector<std::pair<std::string, std::string>>& facts,
                              const std::vector<TrendSeries>& series, const ChartRenderer& charts = {});

}  // namespace kab::report
