// The renderers format a core::Comparison; these tests build one with the real
// Analyzer from literal samples and check what each format says.
#include <algorithm>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "proc/runner.h"
#include "report/format.h"
#include "report/formats.h"
#include "report/html.h"
#include "report/json.h"
#include "report/junit.h"
#include "report/mail.h"
#include "report/markdown.h"
#include "report/summary.h"
#include "report/text.h"

using namespace kab;
using namespace kab::core;
using namespace kab::report;

namespace {

constexpr double k_mib = 1024.0 * 1024;

Sample sample(const std::string& arm, double mib, int index, const std::string& backend, Cell cell) {
  Sample s;
  s.run_id = 7;
  s.plan_index = index;
  s.arm = arm;
  s.kernel = arm + "-6.1";
  s.backend = backend;
  s.backend_cmdline = "/usr/lib/qemu/virtiofsd --socket-path=/run/kab/vfs.sock -o cache=auto -o writeback";
  s.cell = std::move(cell);
  s.fio.bw_bytes = mib * k_mib;
  s.fio.iops = mib;
  s.fio.bytes = mib * k_mib * 30;
  s.fio.runtime_ms = 30001;
  s.fio.clat_p99_ns = 2e9 / mib;
  s.guest.guest_sys_s = 3;
  s.guest.writeback_tmp_peak_kb = arm == "stock" ? 262144 : 0;
  s.backend_usage.user_s = 2;
  s.backend_usage.sys_s = 4;
  return s;
}

void add(std::vector<Sample>& out, const std::vector<double>& base, const std::vector<double>& cand,
         const std::string& backend, Cell cell) {
  for (std::size_t k = 0; k < std::max(base.size(), cand.size()); ++k) {
    if (k < base.size()) out.push_back(sample("stock", base[k], static_cast<int>(out.size()), backend, cell));
    if (k < cand.size()) out.push_back(sample("rfc", cand[k], static_cast<int>(out.size()), backend, cell));
  }
}

Scenario scenario() {
  Scenario s;
  s.name = "rfc-writeback";
  s.fio.job = {{"ioengine", "psync"}, {"rw", "randwrite"}};
  return s;
}

AnalysisOptions options(bool tcg = true) {
  AnalysisOptions o;
  o.base_arm = "stock";
  o.candidate_arm = "rfc";
  o.seed = 20231228;
  o.tcg = tcg;
  return o;
}

// bs=1M: the RFC's improvement; bs=4k: a regression; dpu bs=1M: n = 2, inconclusive.
Comparison mixed() {
  std::vector<Sample> s;
  add(s, {655, 648, 661, 650, 659}, {754, 760, 741, 749, 771}, "virtiofsd", {{"bs", "1M"}});
  add(s, {100, 101, 99, 102, 100.5}, {80, 82, 79, 81, 80.5}, "virtiofsd", {{"bs", "4k"}});
  add(s, {300, 310}, {330, 320}, "dpu", {{"bs", "1M"}});
  return analyze(scenario(), s, options());
}

ReportContext context() {
  ReportContext ctx;
  ctx.command = "kab compare --base stock --candidate rfc --scenario scenarios/rfc-writeback.yaml";
  ctx.job_file = "[global]\nioengine=psync\nfsync=1\nbs=1M\nrw=randwrite\n\n[job]\nsize=512M\n";
  ctx.date = "2026-11-28T19:00:00Z";
  ctx.kab_version = "0.1.0-test";
  ctx.host_cpu = "Intel(R) Xeon(R) <test> CPU, 2 cores";
  ctx.host_kernel = "6.1.0-26-amd64";
  ctx.accelerator = "tcg";
  ctx.qemu_version = "7.2.15";
  ctx.virtiofsd_version = "QEMU 7.2 C virtiofsd";
  ctx.kernels = {{"stock", "stock-6.1", "6.1.158", "cfg0123", "", "key1"},
                 {"rfc", "rfc-6.1", "6.1.158", "cfg0123", "patch4567", "key2"}};
  return ctx;
}

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

int count(const std::string& hay, const std::string& needle) {
  int n = 0;
  for (auto at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + needle.size())) ++n;
  return n;
}

// Every line of a mail within 80 columns (UTF-8 code points), checked one by one.
void check_mail_width(const std::string& mail) {
  std::istringstream in(mail);
  for (std::string line; std::getline(in, line);) {
    INFO(line);
    CHECK(display_width(line) <= k_mail_columns);
  }
}

// Prose as one line, whatever the wrapping: words joined by single spaces.
std::string flat_words(const std::string& text) {
  std::istringstream words(text);
  std::string flat;
  for (std::string word; words >> word;) flat += (flat.empty() ? "" : " ") + word;
  return flat;
}

// One cell, the RFC's improvement.
std::vector<Sample> one_cell_samples() {
  std::vector<Sample> s;
  add(s, {655, 648, 661, 650, 659}, {754, 760, 741, 749, 771}, "virtiofsd", {{"bs", "1M"}});
  return s;
}

}  // namespace

TEST_CASE("fio-style numbers", "[report]") {
  SECTION("the RFC's line") {
    CHECK(fio_binary(655 * k_mib, "/s") == "655MiB/s");
    CHECK(fio_decimal(655 * k_mib, "/s") == "686MB/s");  // fio truncates 686.8
    CHECK(fio_binary(754 * k_mib, "/s") == "754MiB/s");
    CHECK(fio_decimal(754 * k_mib, "/s") == "790MB/s");
  }
  SECTION("units and decimals") {
    CHECK(fio_binary(12.15 * k_mib, "/s") == "12.1MiB/s");
    CHECK(fio_binary(1157 * k_mib, "/s") == "1157MiB/s");
    CHECK(fio_binary(19.25 * 1024 * k_mib, "") == "19.2GiB");
    CHECK(fio_binary(512, "") == "512B");
    CHECK(fio_binary(1536, "/s") == "1536B/s");
    CHECK(fio_binary(15000, "/s") == "14.6KiB/s");
  }
  SECTION("a whole line") {
    FioMetrics f;
    f.bw_bytes = 655 * k_mib;
    f.bytes = 655 * k_mib * 30;
    f.runtime_ms = 30001;
    CHECK(fio_line("WRITE", f) == "WRITE: bw=655MiB/s (686MB/s), io=19.1GiB (20.6GB), run=30001-30001msec");
  }
  SECTION("figures for people") {
    CHECK(change_text(0.1512) == "+15.1%");
    CHECK(change_text(-0.2) == "-20.0%");
    CHECK(ci_text({1.12, 1.18}) == "[+12.0%, +18.0%]");
    CHECK(p_text(0.0079365) == "0.0079");
    CHECK(p_text(0.333) == "0.33");
    CHECK(p_text(1e-7) == "<0.0001");
    CHECK(metric_value_text(Metric::bandwidth, 655 * k_mib) == "655.0 MiB/s");
    CHECK(metric_value_text(Metric::clat_p99, 3.05e6) == "3.05 ms");
    CHECK(xml_escape("a<b & \"c\"") == "a&lt;b &amp; &quot;c&quot;");
  }
}

TEST_CASE("text report", "[report]") {
  auto c = mixed();
  auto out = render_text(c, context());
  INFO(out);
  SECTION("one table per backend, a row per cell and metric") {
    CHECK(count(out, "backend virtiofsd\n") == 1);
    CHECK(count(out, "backend dpu\n") == 1);
    CHECK(contains(out, "cell   metric    "));
    std::regex row(R"(bs=1M  bandwidth +655\.0 MiB/s +754\.0 MiB/s +\+15\.1% +\[\+[0-9.]+%, \+[0-9.]+%\] +0\.024  improvement)");
    CHECK(std::regex_search(out, row));
    CHECK(contains(out, "regression\n"));
    CHECK(contains(out, "inconclusive: dpu bs=1M bandwidth: n = 2 + 2 cannot reach p < 0.05"));
    CHECK(contains(out, "warning: guests ran under TCG"));
    CHECK(contains(out, "\nverdict: regression\n"));
    CHECK_FALSE(contains(out, "\033["));
  }
  SECTION("colour only when asked") {
    auto tty = render_text(c, context(), {true});
    CHECK(contains(tty, "\033[1;31mregression\033[0m"));
    CHECK(contains(tty, "\033[1;32mimprovement (primary)\033[0m"));
  }
}

TEST_CASE("markdown evidence", "[report]") {
  auto c = mixed();
  auto md = render_markdown(c, context());
  INFO(md);
  CHECK(contains(md, "```ini\n[global]\nioengine=psync\n"));
  CHECK(contains(md, "stock (stock-6.1), n=5, CV 0.9%, median sample:\n"));
  CHECK(contains(md, "stock (stock-6.1), n=2, CV 2.3%, lower median sample:\n"));
  CHECK(contains(md, "  WRITE: bw=655MiB/s (686MB/s), io=19.1GiB (20.6GB), run=30001-30001msec\n"));
  CHECK(contains(md, "  WRITE: bw=754MiB/s (790MB/s)"));
  CHECK(contains(md, "Change of the median bandwidth: **+15.1%** (95% CI [+"));
  CHECK(contains(md, "Holm-adjusted; unadjusted 0.0079): improvement."));
  CHECK(contains(md, "WritebackTmp (peak during fio, highest of the samples): stock 262144 kB, rfc 0 kB"));
  CHECK(contains(md, "- accelerator: tcg\n"));
  CHECK(contains(md, "- QEMU: 7.2.15\n"));
  CHECK(contains(md, "- backend virtiofsd: `/usr/lib/qemu/virtiofsd --socket-path"));
  CHECK(contains(md, "- kernel stock: stock-6.1 6.1.158, config cfg0123, no patches\n"));
  CHECK(contains(md, "- kernel rfc: rfc-6.1 6.1.158, config cfg0123, patches patch4567\n"));
  CHECK(contains(md, "```sh\n$ kab compare --base stock --candidate rfc --scenario scenarios/rfc-writeback.yaml\n```"));
  CHECK(contains(md, "Verdict: **regression** (2026-11-28T19:00:00Z)"));
  CHECK(contains(md, "| bandwidth | 655.0 MiB/s | 754.0 MiB/s | +15.1% |"));
}

TEST_CASE("a job that reads and writes is reported in each direction", "[report]") {
  std::vector<Sample> s;
  add(s, {655, 648, 661, 650, 659}, {654, 650, 660, 652, 657}, "virtiofsd", {{"rw", "randrw"}});
  for (auto& x : s) {
    const double read_share = x.arm == "stock" ? 0.5 : 0.65;   // the candidate's writes 30% slower
    x.fio.read_bw_bytes = x.fio.bw_bytes * read_share;
    x.fio.write_bw_bytes = x.fio.bw_bytes - x.fio.read_bw_bytes;
    x.fio.read_iops = x.fio.iops * read_share;
    x.fio.write_iops = x.fio.iops - x.fio.read_iops;
  }
  auto c = analyze(scenario(), s, options());
  auto md = render_markdown(c, context());
  INFO(md);
  CHECK(contains(md, "| read bandwidth | 327.5 MiB/s | "));
  CHECK(contains(md, "| write bandwidth | 327.5 MiB/s | "));
  CHECK(contains(md, "| write IOPS | "));
  CHECK(contains(md, "  READ+WRITE: bw=655MiB/s (686MB/s), io=19.1GiB (20.6GB), run=30001-30001msec; "
                     "read bw=327MiB/s, write bw=327MiB/s\n"));
  auto j = nlohmann::json::parse(render_json(c, context()));
  std::vector<std::string> keys;
  for (const auto& m : j["comparison"]["cells"][0]["metrics"]) keys.push_back(m["metric"]);
  CHECK(std::count(keys.begin(), keys.end(), "read_bandwidth") == 1);
  CHECK(std::count(keys.begin(), keys.end(), "write_iops") == 1);
  CHECK(j["comparison"]["cells"][0]["base"]["median_sample"]["fio"]["read_bw_bytes"].get<double>() > 0);
  auto html = render_html(c, context());
  CHECK(contains(html, "write bandwidth"));
}

TEST_CASE("json report", "[report]") {
  auto c = mixed();
  auto j = nlohmann::json::parse(render_json(c, context()));
  CHECK(j["schema_version"] == 3);
  CHECK(j["context"]["accelerator"] == "tcg");
  CHECK(j["context"]["kernels"][1]["patch_hash"] == "patch4567");
  const auto& cmp = j["comparison"];
  CHECK(cmp["verdict"] == "regression");
  CHECK(cmp["base"]["arm"] == "stock");
  REQUIRE(cmp["cells"].size() == 3);
  const auto& bw = cmp["cells"][0]["metrics"][0];
  CHECK(bw["metric"] == "bandwidth");
  CHECK(bw["better"] == "higher");
  CHECK(bw["base"]["n"] == 5);
  CHECK(bw["base"]["values"].size() == 5);
  CHECK(bw["p"].get<double>() == Approx(2.0 / 252));
  CHECK(bw["test"] == "exact");
  CHECK(bw["verdict"] == "improvement");
  CHECK(bw["ratio_ci"].size() == 2);
  CHECK(cmp["cells"][0]["base"]["median_sample"]["fio"]["bw_bytes"].get<double>() == 655 * k_mib);
  CHECK(cmp["cells"][2]["metrics"][0]["verdict"] == "inconclusive");
  CHECK(cmp["warnings"][0]["kind"] == "tcg");
  SECTION("NaN figures are null, not invalid JSON") {
    std::vector<Sample> s;
    add(s, {655, 648, 661}, {754, 760, 741}, "virtiofsd", {});
    for (auto& x : s)
      if (x.arm == "stock") x.health.status = SampleStatus::crashed;
    auto j2 = nlohmann::json::parse(render_json(analyze(scenario(), s, options()), context()));
    CHECK(j2["comparison"]["cells"][0]["metrics"][0]["base"]["median"].is_null());
    CHECK(j2["comparison"]["cells"][0]["base"]["median_sample"].is_null());
  }
}

TEST_CASE("junit report", "[report]") {
  auto c = mixed();
  auto x = render_junit(c, context());
  // 2 virtiofsd cells × 5 metrics + 1 dpu cell × 5 metrics. Failures: bs=4k's
  // bandwidth and its IOPS (bandwidth over bs, the same test). The secondary
  // family (p99, guest and backend CPU over 3 cells: 9 tests) cannot reach
  // 0.05 at 5 + 5, so those are skipped as inconclusive, as is all of dpu.
  CHECK(count(x, "<testcase ") == 15);
  CHECK(contains(x, "<testsuites name=\"kab compare rfc-writeback\" tests=\"15\" failures=\"2\" errors=\"0\" skipped=\"11\">"));
  CHECK(contains(x, "<testsuite name=\"rfc-writeback/virtiofsd\" tests=\"10\" failures=\"2\""));
  CHECK(contains(x, "<testcase classname=\"kab.rfc-writeback.virtiofsd.bs=4k\" name=\"bandwidth\" time=\"0\">\n"
                    "      <failure type=\"regression\" message=\"bandwidth: stock 100.5 MiB/s (n=5), rfc 80.5 MiB/s (n=5), change -19.9%"));
  CHECK(count(x, "<skipped message=\"inconclusive: n = 2 + 2 cannot reach p &lt; 0.05") == 4);
  CHECK(count(x, "<skipped message=\"inconclusive: IOPS is bandwidth over a fixed block size") == 1);
  CHECK(contains(x, "<property name=\"command\" value=\"kab compare --base stock"));
  CHECK_FALSE(contains(x, "<failure message=\"bandwidth: stock 655"));
}

TEST_CASE("html report", "[report]") {
  auto c = mixed();
  auto ctx = context();
  SECTION("charts are inlined as given by the renderer; text is escaped") {
    std::vector<std::string> scripts;
    HtmlOptions o;
    o.charts = [&](const std::string& script, int, int) {
      scripts.push_back(script);
      return Chart{true, "<svg id=\"c" + std::to_string(scripts.size()) + "\"></svg>", "", false};
    };
    auto html = render_html(c, ctx, o);
    CHECK(scripts.size() == 4);  // summary + 3 cells
    CHECK(contains(html, "<svg id=\"c1\"></svg>"));
    CHECK(contains(html, "<svg id=\"c4\"></svg>"));
    CHECK(contains(html, "Intel(R) Xeon(R) &lt;test&gt; CPU"));
    CHECK(contains(html, "<span class=\"v big regression\">regression</span>"));
    CHECK_FALSE(contains(html, "<script"));
    CHECK_FALSE(contains(html, "No charts"));
  }
  SECTION("without gnuplot the page says so") {
    HtmlOptions o;
    o.charts = gnuplot_renderer("kab-no-such-gnuplot");
    auto html = render_html(c, ctx, o);
    CHECK(contains(html, "No charts: gnuplot (Debian package gnuplot-nox) is not installed"));
    CHECK_FALSE(contains(html, "<svg"));
    CHECK(contains(html, "<h3>backend virtiofsd</h3>"));
  }
  SECTION("the chart scripts carry the data") {
    auto cell = cell_chart_script(c, c.cells[0]);
    CHECK(contains(cell, "set xtics (\"stock\" 1, \"rfc\" 2) noenhanced"));
    CHECK(contains(cell, "$base << EOD\n0.85 655\n"));
    CHECK(contains(cell, "with yerrorbars"));
    auto summary = summary_chart_script(c);
    CHECK(count(summary, "\n") > 15);
    CHECK(contains(summary, "\"virtiofsd bs=1M bandwidth\" 1"));
  }
  SECTION("real gnuplot draws inline SVG") {
    if (proc::which("gnuplot").empty()) {
      WARN("gnuplot not installed: real chart rendering not tested");
      return;
    }
    auto html = render_html(c, ctx);
    CHECK(count(html, "<svg") == 4);
    CHECK_FALSE(contains(html, "<?xml"));
    CHECK_FALSE(contains(html, "chart failed"));
    CHECK_FALSE(contains(html, "No charts"));
  }
}

TEST_CASE("summary: the comparison in one paragraph", "[report]") {
  auto ctx = context();
  ctx.reports_dir = "/r/compare-4";
  std::vector<Sample> samples;
  add(samples, {655, 648, 661, 650, 659}, {754, 760, 741, 749, 771}, "virtiofsd", {{"bs", "1M"}});
  auto one = render_summary(analyze(scenario(), samples, options()), ctx);
  INFO(one);
  CHECK(one.rfind("rfc (rfc-6.1) against stock (stock-6.1) on rfc-writeback: 5 + 5 samples (tcg). bandwidth +15.1% [", 0) == 0);
  CHECK(contains(one, "]: improvement; beside it clat p99 "));
  CHECK(contains(one, "WritebackTmp peak stock 262144 kB, rfc 0 kB. Verdict: improvement. "
                      "Reports: /r/compare-4/comparison.{txt,md,json,junit.xml,html,summary.txt,mail.txt}.\n"));
  CHECK(std::count(one.begin(), one.end(), '\n') == 1);
  // Several cells: each named; an inconclusive one says what would decide it.
  auto many = render_summary(mixed(), context());
  INFO(many);
  CHECK(contains(many, "bandwidth [virtiofsd bs=4k] -19.9% "));
  CHECK(contains(many, "bandwidth [dpu bs=1M] "));
  CHECK(contains(many, ": inconclusive (about "));
  CHECK(contains(many, "Verdict: regression."));
}

TEST_CASE("report formats table", "[report]") {
  std::vector<Sample> samples;
  add(samples, {655, 648, 661, 650, 659}, {754, 760, 741, 749, 771}, "virtiofsd", {{"bs", "1M"}});
  auto c = analyze(scenario(), samples, options());
  auto ctx = context();
  SECTION("names and extensions are unique; each format is found by its name") {
    REQUIRE_FALSE(formats().empty());
    std::set<std::string_view> names, extensions;
    for (const auto& f : formats()) {
      INFO(f.name);
      CHECK_FALSE(f.name.empty());
      CHECK_FALSE(f.extension.empty());
      CHECK(names.insert(f.name).second);
      CHECK(extensions.insert(f.extension).second);
      CHECK(find_format(f.name) == &f);
    }
    CHECK(find_format("pdf") == nullptr);
    CHECK(find_format("") == nullptr);
    CHECK(find_format("TEXT") == nullptr);
    REQUIRE(format_names().size() == formats().size());
    for (std::size_t i = 0; i < formats().size(); ++i) CHECK(format_names()[i] == formats()[i].name);
  }
  SECTION("the help text lists every name") {
    CHECK(format_list().rfind(std::string(formats().front().name) + ", ", 0) == 0);
    CHECK(contains(format_list(), " or " + std::string(formats().back().name)));
    for (const auto& f : formats()) CHECK(contains(format_list(), std::string(f.name)));
  }
  SECTION("every renderer renders; only text uses colour") {
    for (const auto& f : formats()) {
      INFO(f.name);
      auto plain = f.render(c, ctx, false);
      CHECK_FALSE(plain.empty());
      CHECK_FALSE(contains(plain, "\033["));
      auto colored = f.render(c, ctx, true);
      if (f.name == "text") CHECK(contains(colored, "\033[1;32mimprovement\033[0m"));
      else CHECK(colored == plain);
    }
  }
}

// Every format's bracket is the interval the verdict was judged by
// (MetricResult::ci): at fixed n the Hodges–Lehmann interval at the
// confidence, at a sequential look the repeated interval at 1 - the look's
// boundary, labelled so, with the raw p that was compared with that boundary.
TEST_CASE("reports bracket the interval the verdict was judged by", "[report][interval]") {
  SECTION("fixed n: the Hodges-Lehmann interval, not the bootstrap of the medians") {
    // Uneven samples, where the two intervals part.
    std::vector<Sample> s;
    add(s, {655, 600, 661, 700, 659, 612, 690, 631}, {754, 640, 741, 800, 771, 702, 650, 733}, "virtiofsd",
        {{"bs", "1M"}});
    auto c = analyze(scenario(), s, options());
    const auto& bw = *primary(c.cells[0]);
    REQUIRE_FALSE(bw.at_look);
    const std::string hl = ci_text(bw.hodges_lehmann_ci);
    INFO(hl << " against the bootstrap's " << ci_text(bw.ratio_ci));
    REQUIRE(hl != ci_text(bw.ratio_ci));   // else this section proves nothing
    const std::string change = change_text(bw.change), p = p_text(bw.p_adjusted);
    CHECK(contains(render_text(c, context()), change + "  " + hl + "  " + p + " "));
    CHECK(contains(render_markdown(c, context()), "(95% CI " + hl + "), p = " + p));
    CHECK(contains(render_summary(c, context()), "bandwidth " + change + " " + hl + ": "));
    CHECK(contains(render_junit(c, context()), "change " + change + " " + hl + ", p " + p));
    CHECK(contains(render_html(c, context()), "<td class=n>" + hl + "</td>"));
    auto j = nlohmann::json::parse(render_json(c, context()));
    const auto& ci = j["comparison"]["cells"][0]["metrics"][0]["ci"];
    CHECK(ci["kind"] == "hodges-lehmann");
    CHECK(ci["coverage"] == 0.95);
    CHECK(ci["lo"].get<double>() == bw.hodges_lehmann_ci.lo);
    CHECK(ci["hi"].get<double>() == bw.hodges_lehmann_ci.hi);
    CHECK(contains(statistics_text(c), "the bracket is the 95% Hodges-Lehmann interval"));
  }
  SECTION("a sequential look: the repeated interval and the raw p") {
    std::vector<Sample> s;
    add(s, {655, 648, 661, 650, 659, 652}, {560, 571, 555, 566, 549, 562}, "virtiofsd", {});
    AnalysisOptions o = options();
    o.sequential.look = 3;
    o.sequential.looks = 6;
    auto c = analyze(scenario(), s, o);
    const auto& bw = *primary(c.cells[0]);
    REQUIRE(bw.at_look);
    CHECK(bw.verdict == Verdict::regression);
    CHECK(bw.level == Approx(0.00298).epsilon(0.01));
    CHECK(bw.ci_coverage == Approx(1 - bw.level));
    CHECK(bw.ci.hi < 1);
    // Wider than the 95% interval: the look's boundary is stricter than alpha.
    CHECK(bw.ci.lo < bw.hodges_lehmann_ci.lo);
    const std::string shown = ci_text(bw.ci) + " repeated " + setting_percent(bw.ci_coverage);
    INFO(shown);
    auto text = render_text(c, context());
    INFO(text);
    CHECK(contains(text, shown + "  0.0022  regression (primary)"));
    CHECK(contains(render_markdown(c, context()),
                   "(repeated " + setting_percent(bw.ci_coverage) + " interval " + ci_text(bw.ci) +
                       "), p = 0.0022 (two-sided Mann-Whitney U, against look 3's boundary 0.003"));
    auto j = nlohmann::json::parse(render_json(c, context()));
    CHECK(j["comparison"]["cells"][0]["metrics"][0]["ci"]["kind"] == "repeated");
    CHECK(contains(statistics_text(c), "bracket the repeated interval at 1 - the boundary"));
  }
}

TEST_CASE("a kernel from git is named by its ref and its commits", "[report][git]") {
  KernelFacts k{"rfc", "rfc", "6.1.192", "cfg0123", "patch-id 1a2b3c4d5e6f", "key2", "v6.1 (48f647b15e40)",
                {"ec90b45a1b2c (\"fuse: use page cache pages for writeback io when virtio_fs is in use\")"}};
  CHECK(kernel_text(k) == "rfc 6.1.192 from v6.1 (48f647b15e40), config cfg0123, patches ec90b45a1b2c (\"fuse: use "
                          "page cache pages for writeback io when virtio_fs is in use\") (patch-id 1a2b3c4d5e6f)");
  auto ctx = context();
  ctx.kernels[1] = k;
  auto c = mixed();
  CHECK(contains(render_markdown(c, ctx), "- kernel rfc: " + kernel_text(k) + "\n"));
  CHECK(contains(render_html(c, ctx), "ec90b45a1b2c (&quot;fuse: use page cache"));
  auto j = nlohmann::json::parse(render_json(c, ctx));
  CHECK(j["context"]["kernels"][1]["source"] == "v6.1 (48f647b15e40)");
  CHECK(j["context"]["kernels"][1]["patches"][0].get<std::string>().rfind("ec90b45a1b2c (", 0) == 0);
  // A kernel of files keeps its old line.
  CHECK(kernel_text(context().kernels[1]) == "rfc-6.1 6.1.158, config cfg0123, patches patch4567");
}

TEST_CASE("mail: plain text a maintainer can paste into a reply, no line over 80 columns", "[report][mail]") {
  auto ctx = context();
  // Long facts a real run has: a git kernel with a commit subject, a long command.
  ctx.kernels[1].source = "v6.1 (48f647b15e40)";
  ctx.kernels[1].patches = {"1a2b3c4d5e6f (\"fuse: use page cache pages for writeback io when virtio_fs is in use\")"};
  ctx.command = "kab compare --tree /home/someone/src/linux-with-a-long-path/for-testing --base v6.1 --candidate "
                "fuse-writeback-rfc --scenario scenarios/rfc-writeback.yaml --until-decided --max-samples 40";
  const std::string mail = render_mail(mixed(), ctx);
  INFO(mail);
  std::istringstream in(mail);
  std::string line;
  int lines = 0;
  check_mail_width(mail);
  while (std::getline(in, line)) {
    ++lines;
    INFO(line);
    CHECK(line.find('\t') == std::string::npos);
    CHECK(line.find("\033[") == std::string::npos);
    CHECK((line.empty() || line.back() != ' '));
  }
  CHECK(lines > 20);
  // The widest figures a table can meet: changes of +1500% and more.
  std::vector<Sample> huge;
  add(huge, {1, 1.1, 0.9, 1, 1.05}, {16, 17, 15, 16, 18}, "virtiofsd-with-a-long-name", {{"bs", "1M"}, {"rw", "randwrite"}});
  const std::string wide = render_mail(analyze(scenario(), huge, options()), ctx);
  INFO(wide);
  check_mail_width(wide);
  CHECK(contains(wide, "+1500.0%"));
  // Arms named at length: the medians' table becomes a paragraph per row, still within 80.
  auto long_names = options();
  std::vector<Sample> renamed = one_cell_samples();
  for (auto& smp : renamed) smp.arm = smp.arm == "stock" ? "stock-kernel-of-the-maintainers-tree" : "candidate-with-the-fix-applied";
  long_names.base_arm = "stock-kernel-of-the-maintainers-tree";
  long_names.candidate_arm = "candidate-with-the-fix-applied";
  const std::string renamed_mail = render_mail(analyze(scenario(), renamed, long_names), ctx);
  INFO(renamed_mail);
  check_mail_width(renamed_mail);
  CHECK(contains(renamed_mail, "  median | stock-kernel-of-the-maintainers-tree | candidate-with-the-fix-applied\n"));
  CHECK(mail.rfind("Subject: [kab] rfc-6.1 vs stock-6.1 on rfc-writeback: regression (3 cells)\n\n", 0) == 0);
  // Not Markdown: no tables of pipes, no headings, no emphasis.
  CHECK_FALSE(contains(mail, "\n|"));
  CHECK_FALSE(contains(mail, "\n  |"));
  CHECK_FALSE(contains(mail, "\n#"));
  CHECK_FALSE(contains(mail, "**"));
  // The verdict paragraph names every cell's primary change, the table every metric.
  // Prose as one line, whatever the wrapping.
  const std::string flat = flat_words(mail);
  CHECK(contains(flat, "bandwidth [virtiofsd bs=4k] changed -19.9%"));
  CHECK(contains(flat, "Verdict: regression."));
  CHECK(contains(mail, "backend virtiofsd, bs=1M:\n  metric "));
  CHECK(contains(mail, "\n  bandwidth* "));
  CHECK(contains(mail, "\n  * the primary metric"));
  CHECK(count(mail, "  clat p99 ") >= 3);
  CHECK(contains(mail, "  WritebackTmp peak"));
  CHECK(contains(mail, "262144 kB"));
  CHECK(contains(mail, "Correctness: "));
  CHECK(contains(flat, "1a2b3c4d5e6f (\"fuse: use page cache pages for writeback io when virtio_fs is in use\")"));
  // One cell: the subject names its primary change (the scenario left to the
  // body when the line would be too long).
  std::vector<Sample> one;
  add(one, {655, 648, 661, 650, 659}, {754, 760, 741, 749, 771}, "virtiofsd", {{"bs", "1M"}});
  const std::string single = render_mail(analyze(scenario(), one, options()), ctx);
  INFO(single);
  CHECK(single.rfind("Subject: [kab] rfc-6.1 vs stock-6.1: improvement, bandwidth +15.1%\n\n", 0) == 0);
  // The recipe pastes into a shell: lines joined by " \" continuations, no word broken.
  std::string recipe = mail.substr(mail.find("Reproduce:\n") + 11);
  std::string joined;
  std::istringstream r(recipe);
  for (std::string l; std::getline(r, l);) {
    l = core::trim(l);
    if (l.size() >= 2 && l.compare(l.size() - 2, 2, " \\") == 0) l.erase(l.size() - 2);
    else CHECK(r.peek() == EOF);   // only the last line goes without a continuation
    joined += (joined.empty() ? "" : " ") + l;
  }
  CHECK(joined == ctx.command);
  CHECK(contains(recipe, "/home/someone/src/linux-with-a-long-path/for-testing"));   // whole
  // fill: words kept whole when they fit, broken when they cannot.
  CHECK(fill("aaa bbb ccc", 7) == "aaa bbb\nccc\n");
  CHECK(fill("x", 20, "  ") == "  x\n");
  CHECK(fill(std::string(30, 'z'), 20) == std::string(20, 'z') + "\n" + std::string(10, 'z') + "\n");
}

namespace {

// The gates kab compare --gate stores: stock clean on two backends, rfc with a
// KASAN report on one of them.
std::vector<GateResult> gates(bool base_clean, bool candidate_clean) {
  auto gate = [](const std::string& arm, bool clean, std::int64_t first_run) {
    GateResult g{arm, arm + "-6.1", "debug", "key-" + arm, {}};
    for (const std::string backend : {"writeback", "dpu"}) {
      GateCheck c{"writeback", backend, "ok", "", "", first_run++, 20.6,
                  "kab gate " + arm + "-6.1 --family writeback --backend " + backend + " --time 20s"};
      if (!clean && backend == "dpu") {
        c.status = "unhealthy";
        c.reason = "kernel reported: BUG: KASAN: use-after-free in fuse_writepages_send+0x5d1/0x610";
        c.finding = "[   41.202030] BUG: KASAN: use-after-free in fuse_writepages_send+0x5d1/0x610";
      }
      g.checks.push_back(c);
    }
    return g;
  };
  return {gate("stock", base_clean, 3), gate("rfc", candidate_clean, 5)};
}

}  // namespace

TEST_CASE("correctness: a candidate that fails the gate the base passes is a correctness failure in every format",
          "[report][gate]") {
  const Comparison c = analyze(scenario(), one_cell_samples(), options());
  REQUIRE(c.verdict == Verdict::improvement);   // what the performance says
  ReportContext ctx = context();
  ctx.gates = gates(true, false);
  CHECK(correctness_failure(c, ctx));
  CHECK(headline_verdict(c, ctx) == "correctness failure");
  const std::string finding = "rfc (rfc-6.1), writeback on dpu (run 6): [   41.202030] BUG: KASAN: use-after-free in "
                              "fuse_writepages_send+0x5d1/0x610 — rerun: kab gate rfc-6.1 --family writeback --backend dpu --time 20s";
  CHECK(correctness_findings(ctx) == std::vector<std::string>{finding});
  CHECK(correctness_text(c, ctx) ==
        "Correctness: the gate ran family writeback against backends writeback and dpu before the measurement. "
        "stock (stock-6.1) (debug): clean, 2 checks, 0.7 min of fio. rfc (rfc-6.1) (debug): FAILED 1 of 2 checks, "
        "0.7 min of fio. The candidate fails the gate and the base passes it: the verdict is correctness failure, "
        "whatever the performance says.");

  const std::string text = render_text(c, ctx, {});
  INFO(text);
  CHECK(contains(text, "\nverdict: correctness failure\n"));
  CHECK(contains(text, "kernel  family     backend    fio s  result\n"));
  CHECK(contains(text, "rfc     writeback  dpu           21  unhealthy\n"));
  CHECK(contains(text, "finding: " + finding + "\n"));
  const std::string md = render_markdown(c, ctx);
  CHECK(contains(md, "Verdict: **correctness failure**"));
  CHECK(contains(md, "| rfc | writeback | dpu | 21 | unhealthy |\n"));
  CHECK(contains(md, "- " + finding + "\n"));
  auto j = nlohmann::json::parse(render_json(c, ctx));
  CHECK(j["schema_version"] == 3);
  CHECK(j["comparison"]["verdict"] == "correctness_failure");
  CHECK(j["comparison"]["performance_verdict"] == "improvement");
  const auto& corr = j["comparison"]["correctness"];
  CHECK(corr["ran"] == true);
  CHECK(corr["failure"] == true);
  REQUIRE(corr["kernels"].size() == 2);
  CHECK(corr["kernels"][0]["clean"] == true);
  CHECK(corr["kernels"][1]["not_clean"] == 1);
  CHECK(corr["kernels"][1]["checks"][1]["finding"] == ctx.gates[1].checks[1].finding);
  CHECK(corr["kernels"][1]["checks"][1]["rerun"] == "kab gate rfc-6.1 --family writeback --backend dpu --time 20s");
  const std::string junit = render_junit(c, ctx);
  CHECK(contains(junit, "<testsuite name=\"rfc-writeback/correctness\" tests=\"4\" failures=\"1\""));
  CHECK(contains(junit, "<testcase classname=\"kab.gate.rfc.writeback\" name=\"dpu\""));
  CHECK(contains(junit, "<failure type=\"unhealthy\" message=\"[   41.202030] BUG: KASAN: use-after-free"));
  CHECK(contains(junit, "<property name=\"verdict\" value=\"correctness failure\"/>"));
  const std::string html = render_html(c, ctx);
  CHECK(contains(html, "<span class=\"v big correctness_failure\">correctness failure</span>"));
  CHECK(contains(html, "<h2>Correctness</h2>"));
  CHECK(contains(html, "<td><span class=\"v regression\">unhealthy</span></td>"));
  CHECK(contains(render_summary(c, ctx), " Correctness gate: stock clean, rfc FAILED 1 of 2. Verdict: correctness failure."));
  const std::string mail = render_mail(c, ctx);
  INFO(mail);
  check_mail_width(mail);
  CHECK(mail.rfind("Subject: [kab] rfc-6.1 vs stock-6.1: correctness failure, bandwidth +15.1%\n\n", 0) == 0);
  const std::string flat = flat_words(mail);
  CHECK(contains(flat, "The candidate fails the correctness gate, which the base passes (Correctness, below)."));
  CHECK(contains(flat, "Verdict: correctness failure."));
  CHECK(contains(mail, "\n  rfc     writeback  dpu           21  unhealthy\n"));
  CHECK(contains(flat, "rerun: kab gate rfc-6.1 --family writeback --backend dpu --time 20s"));

  SECTION("both kernels fail: the base's findings are not the patch's, the verdict is the performance one") {
    ctx.gates = gates(false, false);
    CHECK_FALSE(correctness_failure(c, ctx));
    CHECK(headline_verdict(c, ctx) == "improvement");
    CHECK(contains(correctness_text(c, ctx), "Both kernels fail it"));
    CHECK(contains(render_text(c, ctx, {}), "\nverdict: improvement\n"));
    CHECK(correctness_findings(ctx).size() == 2);
    // JUnit fails exactly when the verdict is a correctness failure: both
    // findings are there, skipped, neither a failure.
    const std::string junit = render_junit(c, ctx);
    CHECK(contains(junit, "<testsuite name=\"rfc-writeback/correctness\" tests=\"4\" failures=\"0\" errors=\"0\" "
                          "skipped=\"2\""));
    CHECK(contains(junit, "<skipped message=\"the base kernel&apos;s finding, not the patch&apos;s: [   41.202030] BUG"));
    CHECK(contains(junit, "<skipped message=\"the base fails the gate too, not the patch&apos;s: [   41.202030] BUG"));
    CHECK_FALSE(contains(junit, "<failure type=\"unhealthy\""));
  }
  SECTION("only the base fails: its finding is skipped, the candidate's checks pass") {
    ctx.gates = gates(false, true);
    const std::string junit = render_junit(c, ctx);
    CHECK(contains(junit, "tests=\"4\" failures=\"0\" errors=\"0\" skipped=\"1\""));
    CHECK(contains(junit, "<skipped message=\"the base kernel&apos;s finding, not the patch&apos;s:"));
  }
  SECTION("no gate ran: every format says so, the verdict is the performance one") {
    ctx.gates.clear();
    CHECK(headline_verdict(c, ctx) == "improvement");
    for (const auto& f : formats()) {
      INFO(f.name);
      const std::string out = f.render(c, ctx, false);
      if (f.name == "json") {
        CHECK(nlohmann::json::parse(out)["comparison"]["correctness"]["ran"] == false);
      } else if (f.name == "junit") {
        CHECK_FALSE(contains(out, "correctness"));   // no gate, no tests of it
      } else if (f.name != "summary") {
        CHECK(contains(out, "no gate ran with this comparison"));
      }
    }
  }
}
