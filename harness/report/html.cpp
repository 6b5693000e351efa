#include "report/html.h"

#include <stdlib.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "proc/runner.h"
#include "report/format.h"

namespace kab::report {

namespace {

namespace fs = std::filesystem;

constexpr double k_mib = 1024.0 * 1024.0;

std::string gp_quote(const std::string& s) { return gnuplot_quote(s); }

std::string num(double v) { return gnuplot_number(v); }

// Metrics in the units a chart shows them in.
bool is_bandwidth(core::Metric m) {
  return m == core::Metric::bandwidth || m == core::Metric::read_bandwidth || m == core::Metric::write_bandwidth;
}
double chart_value(core::Metric m, double v) { return is_bandwidth(m) ? v / k_mib : v; }
const char* chart_unit(core::Metric m) {
  switch (m) {
    case core::Metric::bandwidth:
    case core::Metric::read_bandwidth:
    case core::Metric::write_bandwidth: return "MiB/s";
    case core::Metric::iops:
    case core::Metric::read_iops:
    case core::Metric::write_iops: return "IO/s";
    case core::Metric::clat_p99: return "ns";
    case core::Metric::backend_faults_per_gib: return "faults/GiB";
    default: return "s/GiB";
  }
}

const char* verdict_colour(core::Verdict v) {
  switch (v) {
    case core::Verdict::regression: return "#c0392b";
    case core::Verdict::improvement: return "#1e8449";
    case core::Verdict::inconclusive: return "#b7950b";
    case core::Verdict::equivalent: return "#566573";
  }
  return "#566573";
}

std::string strip_prolog(std::string svg) {
  auto at = svg.find("<svg");
  return at == std::string::npos ? svg : svg.substr(at);
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string e(const std::string& s) { return xml_escape(s); }

std::string table(const core::Comparison& c, const std::vector<const core::CellResult*>& cells, bool with_cell) {
  std::string out = "<table><tr>";
  if (with_cell) out += "<th>cell</th>";
  out += "<th>metric</th><th>" + e(c.base_arm) + "</th><th>" + e(c.candidate_arm) +
         "</th><th>change</th><th>" + e(interval_header(c)) + "</th><th>p</th><th>verdict</th></tr>\n";
  for (const auto* cell : cells)
    for (const auto& r : cell->metrics) {
      out += "<tr>";
      if (with_cell) out += "<td>" + e(cell->label) + "</td>";
      out += "<td>" + e(core::metric_info(r.metric).label) + "</td><td class=n>" +
             e(metric_value_text(r.metric, r.base.summary.median)) + "<br><small>n=" +
             std::to_string(r.base.summary.n) + ", CV " + e(percent_text(r.base.summary.cv)) +
             "</small></td><td class=n>" + e(metric_value_text(r.metric, r.candidate.summary.median)) +
             "<br><small>n=" + std::to_string(r.candidate.summary.n) + ", CV " +
             e(percent_text(r.candidate.summary.cv)) + "</small></td><td class=n>" + e(change_text(r.change)) +
             "</td><td class=n>" + e(interval_text(r, c.confidence)) + "</td><td class=n>" + e(p_text(judged_p(r))) +
             "</td><td title=\"" + e(r.reason) + "\"><span class=\"v " + core::verdict_key(r.verdict) + "\">" +
             e(verdict_text(r)) + "</span></td></tr>\n";
    }
  return out + "</table>\n";
}

}  // namespace

std::string gnuplot_number(double v) {
  if (!std::isfinite(v)) return "?";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

std::string gnuplot_quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

ChartRenderer gnuplot_renderer(std::string program) {
  return [program](const std::string& script, int width, int height) -> Chart {
    Chart chart;
    std::string exe = proc::which(program);
    if (exe.empty()) {
      chart.missing_tool = true;
      chart.error = program + " is not installed (Debian package gnuplot-nox)";
      return chart;
    }
    std::string tmpl = (fs::temp_directory_path() / "kab-chart-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) {
      chart.error = "cannot create a temporary directory for " + program;
      return chart;
    }
    fs::path dir = tmpl;
    fs::path gp = dir / "chart.gp", svg = dir / "chart.svg";
    {
      std::ofstream out(gp);
      out << "set terminal svg size " << width << "," << height
          << " dynamic enhanced font 'sans,11' background rgb 'white'\n"
          << "set output " << gp_quote(svg.string()) << "\n"
          << script << "\nset output\n";
    }
    try {
      proc::Options o;
      o.argv = {exe, gp.string()};
      o.timeout_s = 60;
      proc::Result r = proc::run(o);
      if (!r.ok()) {
        chart.error = program + " " + r.describe() + (r.tail.empty() ? "" : ": " + r.tail);
      } else {
        chart.svg = strip_prolog(read_all(svg));
        chart.ok = chart.svg.find("<svg") != std::string::npos;
        if (!chart.ok) chart.error = program + " wrote no SVG";
      }
    } catch (const std::exception& ex) {
      chart.error = ex.what();
    }
    std::error_code ec;
    fs::remove_all(dir, ec);
    return chart;
  };
}

std::string cell_chart_script(const core::Comparison& c, const core::CellResult& cell) {
  const core::MetricResult* r = primary(cell);
  if (!r || (r->base.values.empty() && r->candidate.values.empty())) return "";
  const core::Metric m = r->metric;
  std::string s;
  s += "set title " + gp_quote(cell.backend + " " + cell.label + ": " + core::metric_info(m).label) + " noenhanced\n";
  s += "set ylabel " + gp_quote(chart_unit(m)) + " noenhanced\n";
  s += "set xrange [0.4:2.6]\nset key off\nset grid ytics\nset datafile missing '?'\n";
  s += "set xtics (" + gp_quote(c.base_arm) + " 1, " + gp_quote(c.candidate_arm) + " 2) noenhanced\n";
  std::vector<std::string> plots;
  auto block = [&](const std::string& name, const std::vector<double>& v, double x) {
    if (v.empty()) return;
    s += "$" + name + " << EOD\n";
    // Spread the points of one arm a little so equal values stay visible.
    for (std::size_t i = 0; i < v.size(); ++i) {
      double dx = v.size() > 1 ? (static_cast<double>(i) / static_cast<double>(v.size() - 1) - 0.5) * 0.3 : 0;
      s += num(x + dx) + " " + num(chart_value(m, v[i])) + "\n";
    }
    s += "EOD\n";
    plots.push_back("$" + name + " using 1:2 with points pt 7 ps 0.9 lc rgb " +
                    gp_quote(x == 1 ? "#2e86c1" : "#cb4335"));
  };
  block("base", r->base.values, 1);
  block("candidate", r->candidate.values, 2);
  s += "$median << EOD\n";
  for (auto [x, med] : {std::pair(1.0, r->base.summary.median), std::pair(2.0, r->candidate.summary.median)})
    if (std::isfinite(med)) s += num(x - 0.25) + " " + num(chart_value(m, med)) + "\n" + num(x + 0.25) + " " +
                                 num(chart_value(m, med)) + "\n\n";
  s += "EOD\n";
  plots.push_back("$median using 1:2 with lines lw 2.5 lc rgb 'black'");
  // The ratio's interval drawn at the candidate: base median × [lo, hi].
  if (std::isfinite(r->ci.lo) && std::isfinite(r->ci.hi) && std::isfinite(r->base.summary.median)) {
    double b = chart_value(m, r->base.summary.median);
    s += "$ci << EOD\n" + num(2.32) + " " + num(chart_value(m, r->candidate.summary.median)) + " " +
         num(b * r->ci.lo) + " " + num(b * r->ci.hi) + "\nEOD\n";
    plots.push_back("$ci using 1:2:3:4 with yerrorbars pt 0 lw 2 lc rgb '#7f8c8d'");
  }
  s += "plot ";
  for (std::size_t i = 0; i < plots.size(); ++i) s += (i ? ", \\\n     " : "") + plots[i];
  return s + "\n";
}

std::string summary_chart_script(const core::Comparison& c) {
  std::string data, tics;
  int i = 0;
  for (const auto& cell : c.cells)
    for (const auto& r : cell.metrics) {
      ++i;
      std::string colour = verdict_colour(r.verdict);
      data += std::to_string(i) + " " + num(r.change * 100) + " " + num((r.ci.lo - 1) * 100) + " " +
              num((r.ci.hi - 1) * 100) + " " + std::to_string(std::stoi(colour.substr(1), nullptr, 16)) + "\n";
      tics += std::string(i > 1 ? ", " : "") +
              gp_quote(cell.backend + " " + cell.label + " " + core::metric_info(r.metric).label) + " " +
              std::to_string(i);
    }
  if (i == 0) return "";
  std::string s;
  s += "set title " + gp_quote("change " + c.candidate_arm + " vs " + c.base_arm + " with " +
                               setting_percent(c.confidence) + " CI") + " noenhanced\n";
  s += "set ylabel '%'\nset key off\nset grid ytics\nset datafile missing '?'\n";
  s += "set xrange [0.5:" + std::to_string(i) + ".5]\n";
  s += "set xtics (" + tics + ") rotate by -30 noenhanced\n";
  s += "set bmargin 10\nset rmargin 14\n";
  s += "set arrow from graph 0, first 0 to graph 1, first 0 nohead lw 1 lc rgb 'black'\n";
  s += "set arrow from graph 0, first " + num(c.min_effect * 100) + " to graph 1, first " + num(c.min_effect * 100) +
       " nohead dt 2 lc rgb '#999999'\n";
  s += "set arrow from graph 0, first " + num(-c.min_effect * 100) + " to graph 1, first " +
       num(-c.min_effect * 100) + " nohead dt 2 lc rgb '#999999'\n";
  s += "$changes << EOD\n" + data + "EOD\n";
  s += "plot $changes using 1:2:3:4:5 with yerrorbars pt 7 ps 1.2 lw 2 lc rgb variable\n";
  return s;
}

std::string render_html(const core::Comparison& c, const core::ReportContext& ctx, const HtmlOptions& options) {
  ChartRenderer charts = options.charts ? options.charts : gnuplot_renderer();
  bool tool_missing = false;
  auto chart = [&](const std::string& script, int w, int h) -> std::string {
    if (script.empty() || tool_missing) return "";
    Chart ch = charts(script, w, h);
    if (ch.ok) return "<div class=chart>" + ch.svg + "</div>\n";
    if (ch.missing_tool) {
      tool_missing = true;
      return "";
    }
    return "<p class=warn>chart failed: " + e(ch.error) + "</p>\n";
  };

  const std::string title = ctx.title.empty() ? "kab compare: " + c.scenario + " — " + c.base_arm + " vs " + c.candidate_arm
                                              : ctx.title;
  std::string body;
  body += "<h1>" + e(title) + "</h1>\n";
  body += "<p>Verdict: <span class=\"v big " + headline_verdict_key(c, ctx) + "\">" + e(headline_verdict(c, ctx)) +
          "</span></p>\n";
  body += "<p>base <b>" + e(arm_label(c.base_arm, c.base_kernel)) + "</b>: " + std::to_string(c.base_included) +
          " samples" + (c.base_excluded ? " (+" + std::to_string(c.base_excluded) + " excluded)" : "") +
          "; candidate <b>" + e(arm_label(c.candidate_arm, c.candidate_kernel)) + "</b>: " +
          std::to_string(c.candidate_included) + " samples" +
          (c.candidate_excluded ? " (+" + std::to_string(c.candidate_excluded) + " excluded)" : "") +
          (ctx.date.empty() ? "" : "; " + e(ctx.date)) + "</p>\n";
  if (!c.warnings.empty()) {
    body += "<ul class=warn>\n";
    for (const auto& w : c.warnings) body += "<li>warning: " + e(w.message) + "</li>\n";
    body += "</ul>\n";
  }

  std::string summary_chart = chart(summary_chart_script(c), 900, 420);
  body += "<h2>Summary</h2>\n" + summary_chart;
  if (!summary_chart.empty())
    body += "<p class=note>Change of each median with its CI; colour = verdict (green improvement, red regression, "
            "yellow inconclusive, grey equivalent); dashed lines = ±min effect.</p>\n";
  if (tool_missing)
    body += "<p class=warn>No charts: gnuplot (Debian package gnuplot-nox) is not installed on the machine that "
            "rendered this page.</p>\n";
  for (const auto& backend : c.backends) {
    std::vector<const core::CellResult*> cells;
    for (const auto& cell : c.cells)
      if (cell.backend == backend) cells.push_back(&cell);
    body += "<h3>backend " + e(backend) + "</h3>\n" + table(c, cells, true);
  }
  body += "<p class=note>Medians; " + e(statistics_text(c)) + " Hover a verdict for its reason.</p>\n";

  body += "<h2>Cells</h2>\n";
  for (const auto& cell : c.cells) {
    body += "<h3>" + e(cell.backend + ", " + cell.label) + "</h3>\n";
    std::string cell_chart = chart(cell_chart_script(c, cell), 560, 360);
    body += cell_chart;
    if (!cell_chart.empty())
      body += "<p class=note>Points: samples in plan order; bars: medians; grey whisker at the candidate: the base "
              "median times the CI of the ratio.</p>\n";
    body += "<pre>";
    for (auto [arm, kernel, ac] : {std::tuple(&c.base_arm, &c.base_kernel, &cell.base),
                                   std::tuple(&c.candidate_arm, &c.candidate_kernel, &cell.candidate)})
      if (ac->median_fio)
        body += e(arm_label(*arm, *kernel) + " (median sample): " + fio_line(cell.direction, *ac->median_fio)) + "\n";
    char wbt[160];
    std::snprintf(wbt, sizeof wbt, "WritebackTmp peak: %s %.0f kB, %s %.0f kB", c.base_arm.c_str(),
                  cell.base.writeback_tmp_peak_kb.max, c.candidate_arm.c_str(), cell.candidate.writeback_tmp_peak_kb.max);
    body += e(wbt) + "</pre>\n";
  }

  body += "<h2>Correctness</h2>\n<p>" + e(correctness_text(c, ctx)) + "</p>\n";
  if (auto rows = correctness_rows(ctx); !rows.empty()) {
    body += "<table>\n<tr>";
    for (const auto& h : rows.front()) body += "<th>" + e(h) + "</th>";
    body += "</tr>\n";
    for (std::size_t i = 1; i < rows.size(); ++i) {
      body += "<tr>";
      for (std::size_t j = 0; j < rows[i].size(); ++j)
        body += j + 1 == rows[i].size() && rows[i][j] != "clean" ? "<td><span class=\"v regression\">" + e(rows[i][j]) + "</span></td>"
                                                                  : "<td>" + e(rows[i][j]) + "</td>";
      body += "</tr>\n";
    }
    body += "</table>\n";
  }
  if (auto findings = correctness_findings(ctx); !findings.empty()) {
    body += "<ul>\n";
    for (const auto& f : findings) body += "<li><code>" + e(f) + "</code></li>\n";
    body += "</ul>\n";
  }

  body += "<h2>Environment</h2>\n<table>\n";
  auto fact = [&](const std::string& k, const std::string& v) {
    if (!v.empty()) body += "<tr><th>" + e(k) + "</th><td>" + e(v) + "</td></tr>\n";
  };
  fact("host", ctx.host);
  fact("host CPU", ctx.host_cpu);
  fact("host kernel", ctx.host_kernel);
  fact("accelerator", ctx.accelerator);
  fact("QEMU", ctx.qemu_version);
  fact("virtiofsd", ctx.virtiofsd_version);
  fact("libvirt", ctx.libvirt_version);
  fact("fio", ctx.fio_version);
  for (const auto& [b, o] : ctx.backend_options.empty() ? c.backend_cmdlines : ctx.backend_options)
    fact("backend " + b, o);
  for (const auto& k : ctx.kernels)
    fact("kernel " + k.arm, kernel_text(k));
  for (const auto& [k, v] : ctx.extra) fact(k, v);
  fact("kab", ctx.kab_version);
  body += "</table>\n";
  if (!ctx.command.empty()) body += "<h2>Reproduce</h2>\n<pre>$ " + e(ctx.command) + "</pre>\n";
  if (!ctx.job_file.empty()) body += "<h2>fio job file</h2>\n<pre>" + e(ctx.job_file) + "</pre>\n";

  return "<!DOCTYPE html>\n<html lang=en>\n<head>\n<meta charset=utf-8>\n<title>" + e(title) +
         "</title>\n<style>\n"
         "body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}\n"
         "table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}\n"
         "td.n{text-align:right;font-variant-numeric:tabular-nums}small{color:#666}\n"
         ".v{padding:.1em .4em;border-radius:3px;color:#fff;background:#566573}.v.big{font-size:1.3em}\n"
         ".v.regression,.v.correctness_failure{background:#c0392b}.v.improvement{background:#1e8449}.v.inconclusive{background:#b7950b}\n"
         ".warn{color:#9a6700}pre{background:#f6f8fa;padding:.6em;overflow-x:auto}.note{color:#555;font-size:.9em}\n"
         ".chart svg{max-width:100%;height:auto}\n"
         "</style>\n</head>\n<body>\n" +
         body + "</body>\n</html>\n";
}

}  // namespace kab::report
