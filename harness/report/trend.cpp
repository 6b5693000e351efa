#include "report/trend.h"

#include <cmath>
#include <cstdio>

#include "core/text.h"

namespace kab::report {

namespace {

std::string num(double v) { return gnuplot_number(v); }

std::string e(const std::string& s) { return core::xml_escape(s); }

}  // namespace

std::string trend_chart_script(const TrendSeries& s) {
  if (s.points.empty()) return "";
  const int n = static_cast<int>(s.points.size());
  std::string data = "$nights << EOD\n", marked = "$regressions << EOD\n", alerts = "$alerts << EOD\n";
  std::string tics;
  double lo = INFINITY, hi = -INFINITY;
  int first_base = -1, last_base = -1;
  for (int i = 0; i < n; ++i) {
    const TrendPoint& p = s.points[static_cast<std::size_t>(i)];
    const std::string row = std::to_string(i) + " " + num(p.value) + "\n";
    data += row;
    if (p.verdict == "regression") (p.alert ? alerts : marked) += row;
    tics += (i ? ", " : "") + gnuplot_quote(p.night) + " " + std::to_string(i);
    if (p.baseline) {
      lo = std::min(lo, p.value);
      hi = std::max(hi, p.value);
      if (first_base < 0) first_base = i;
      last_base = i;
    }
  }
  // gnuplot refuses an empty data block in a plot: a point off the chart stands in.
  if (marked == "$regressions << EOD\n") marked += "-10 0\n";
  if (alerts == "$alerts << EOD\n") alerts += "-10 0\n";
  std::string out = data + "EOD\n" + marked + "EOD\n" + alerts + "EOD\n";
  out += "set title " + gnuplot_quote(s.title) + "\n";
  out += "set ylabel " + gnuplot_quote(s.metric) + "\n";
  out += "set xrange [-0.5:" + num(n - 0.5) + "]\n";
  out += "set xtics (" + tics + ") rotate by -40\n";
  out += "set grid ytics\nset key outside bottom center horizontal\nset yrange [0:*]\n";
  if (first_base >= 0) {
    // The baseline band: the range of the baseline nights' medians, over those nights.
    const double pad = hi == lo ? std::abs(hi) * 0.01 : 0;
    out += "set object 1 rect from " + num(first_base - 0.4) + "," + num(lo - pad) + " to " + num(last_base + 0.4) + "," +
           num(hi + pad) + " fc rgb '#cfe3f5' fs solid 0.6 noborder behind\n";
  }
  if (s.change_index >= 0)
    out += "set arrow 1 from " + num(s.change_index - 0.5) + ", graph 0 to " + num(s.change_index - 0.5) +
           ", graph 1 nohead dt 2 lw 2 lc rgb '#e08000'\n";
  out += "plot $nights using 1:2 with linespoints pt 7 ps 0.8 lc rgb '#1f5fa8' title 'nightly median', "
         "$regressions using 1:2 with points pt 7 ps 1.6 lc rgb '#e08000' title 'regression', "
         "$alerts using 1:2 with points pt 7 ps 2 lc rgb '#c00000' title 'alert'" +
         std::string(first_base >= 0 ? ", NaN with boxes fc rgb '#cfe3f5' fs solid 0.6 title 'baseline band'" : "") +
         (s.change_index >= 0 ? ", NaN with lines dt 2 lw 2 lc rgb '#e08000' title 'change point'" : "") + "\n";
  return out;
}

std::string render_trend_html(const std::string& title, const std::vector<std::pair<std::string, std::string>>& facts,
                              const std::vector<TrendSeries>& series, const ChartRenderer& charts) {
  const ChartRenderer draw = charts ? charts : gnuplot_renderer();
  std::string body = "<h1>" + e(title) + "</h1>\n<table class=facts>\n";
  for (const auto& [k, v] : facts) body += "<tr><th>" + e(k) + "</th><td>" + e(v) + "</td></tr>\n";
  body += "</table>\n";
  for (const auto& s : series) {
    body += "<h2>" + e(s.title) + "</h2>\n";
    const std::string script = trend_chart_script(s);
    const Chart chart = script.empty() ? Chart{} : draw(script, 900, 380);
    if (chart.ok)
      body += "<div class=chart>" + chart.svg + "</div>\n";
    else if (!script.empty())
      body += "<p class=warn>No chart: " + e(chart.error) + "</p>\n";
    if (!s.change_text.empty()) body += "<p>Change point: " + e(s.change_text) + "</p>\n";
    body += "<table>\n<tr><th>night</th><th>run</th><th>commit</th><th>" + e(s.metric) +
            "</th><th>n</th><th>verdict</th></tr>\n";
    for (const auto& p : s.points) {
      const std::string night = p.link.empty() ? e(p.night) : "<a href=\"" + e(p.link) + "\">" + e(p.night) + "</a>";
      char value[32];
      std::snprintf(value, sizeof value, "%.1f", p.value);
      body += "<tr><td>" + night + "</td><td>" + std::to_string(p.run) + "</td><td><code>" + e(p.commit) +
              "</code></td><td>" + value + "</td><td>" + std::to_string(p.n) + "</td><td" +
              (p.alert ? " class=alert" : "") + ">" + e(p.verdict) + (p.alert ? " (alert)" : "") +
              (p.baseline ? " · baseline" : "") + "</td></tr>\n";
    }
    body += "</table>\n";
  }
  return "<!DOCTYPE html>\n<html lang=en>\n<head>\n<meta charset=utf-8>\n<title>" + e(title) +
         "</title>\n<style>\nbody{font-family:sans-serif;max-width:1000px;margin:1em auto;padding:0 1em}\n"
         "table{border-collapse:collapse;margin:.5em 0}\ntd,th{border:1px solid #ccc;padding:2px 8px;text-align:left}\n"
         ".alert{color:#c00000;font-weight:bold}\n.warn{color:#a05000}\n.chart svg{max-width:100%;height:auto}\n"
         "</style>\n</head>\n<body>\n" +
         body + "</body>\n</html>\n";
}

}  // namespace kab::report
