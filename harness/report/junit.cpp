#include "report/junit.h"

#include "report/format.h"

namespace kab::report {

namespace {

std::string attr(const std::string& name, const std::string& value) {
  return " " + name + "=\"" + xml_escape(value) + "\"";
}

// Dots separate the levels of a JUnit class name; keep them out of the parts.
std::string class_part(std::string s) {
  for (char& ch : s)
    if (ch == '.' || ch == ' ') ch = '_';
  return s;
}

}  // namespace

std::string render_junit(const core::Comparison& c, const core::ReportContext& ctx) {
  int tests = 0, failures = 0, skipped = 0;
  std::string suites;
  for (const auto& backend : c.backends) {
    int st = 0, sf = 0, ss = 0;
    std::string cases;
    for (const auto& cell : c.cells) {
      if (cell.backend != backend) continue;
      for (const auto& r : cell.metrics) {
        ++st;
        const auto& mi = core::metric_info(r.metric);
        std::string summary = std::string(mi.label) + ": " + c.base_arm + " " +
                              metric_value_text(r.metric, r.base.summary.median) + " (n=" +
                              std::to_string(r.base.summary.n) + "), " + c.candidate_arm + " " +
                              metric_value_text(r.metric, r.candidate.summary.median) + " (n=" +
                              std::to_string(r.candidate.summary.n) + "), change " + change_text(r.change) +
                              " " + interval_text(r, c.confidence) + ", p " + p_text(judged_p(r)) + ": " +
                              core::to_string(r.verdict) + " (" + r.reason + ")";
        cases += "    <testcase" + attr("classname", "kab." + class_part(c.scenario) + "." + class_part(backend) + "." +
                                                        class_part(cell.label)) +
                 attr("name", mi.key) + attr("time", "0") + ">\n";
        if (r.verdict == core::Verdict::regression) {
          ++sf;
          cases += "      <failure" + attr("type", "regression") + attr("message", summary) + "/>\n";
        } else if (r.verdict == core::Verdict::inconclusive) {
          ++ss;
          cases += "      <skipped" + attr("message", "inconclusive: " + r.reason) + "/>\n";
        }
        cases += "      <system-out>" + xml_escape(summary) + "</system-out>\n";
        cases += "    </testcase>\n";
      }
    }
    tests += st;
    failures += sf;
    skipped += ss;
    suites += "  <testsuite" + attr("name", c.scenario + "/" + backend) + attr("tests", std::to_string(st)) +
              attr("failures", std::to_string(sf)) + attr("errors", "0") + attr("skipped", std::to_string(ss)) +
              (ctx.date.empty() ? "" : attr("timestamp", ctx.date)) + ">\n";
    suites += "    <properties>\n";
    auto prop = [&](const std::string& k, const std::string& v) {
      if (!v.empty()) suites += "      <property" + attr("name", k) + attr("value", v) + "/>\n";
    };
    prop("base", arm_label(c.base_arm, c.base_kernel));
    prop("candidate", arm_label(c.candidate_arm, c.candidate_kernel));
    prop("verdict", headline_verdict(c, ctx));
    prop("accelerator", ctx.accelerator);
    prop("command", ctx.command);
    for (const auto& w : c.warnings) prop("warning." + w.kind, w.message);
    suites += "    </properties>\n" + cases + "  </testsuite>\n";
  }
  // The correctness gate: a test per kernel, family and backend; a check of
  // the candidate that was not clean, while the base passes, is a failure
  // with the kernel's finding. The base's findings are not the patch's: a
  // check the base fails, and every check when both fail (the verdict is then
  // the performance one), is skipped with its finding, so the suite fails
  // exactly when the verdict is "correctness failure".
  if (!ctx.gates.empty()) {
    int st = 0, sf = 0, ss = 0;
    bool base_failed = false;
    for (const auto& g : ctx.gates)
      if (g.arm == c.base_arm)
        for (const auto& k : g.checks) base_failed |= k.status != "ok";
    std::string cases;
    for (const auto& g : ctx.gates)
      for (const auto& k : g.checks) {
        ++st;
        cases += "    <testcase" + attr("classname", "kab.gate." + class_part(g.arm) + "." + class_part(k.family)) +
                 attr("name", k.backend) + attr("time", std::to_string(k.fio_s)) + ">\n";
        if (k.status != "ok") {
          const std::string message =
              (k.finding.empty() ? k.reason : k.finding) + " (run " + std::to_string(k.run) + ")";
          if (g.arm == c.base_arm || base_failed) {
            ++ss;
            cases += "      <skipped" +
                     attr("message", (g.arm == c.base_arm ? "the base kernel's finding, not the patch's: "
                                                          : "the base fails the gate too, not the patch's: ") +
                                         message) +
                     "/>\n";
          } else {
            ++sf;
            cases += "      <failure" + attr("type", k.status) + attr("message", message) + ">" +
                     xml_escape("rerun: " + k.rerun) + "</failure>\n";
          }
        }
        cases += "    </testcase>\n";
      }
    tests += st;
    failures += sf;
    skipped += ss;
    suites += "  <testsuite" + attr("name", c.scenario + "/correctness") + attr("tests", std::to_string(st)) +
              attr("failures", std::to_string(sf)) + attr("errors", "0") + attr("skipped", std::to_string(ss)) +
              (ctx.date.empty() ? "" : attr("timestamp", ctx.date)) + ">\n    <properties>\n" +
              "      <property" + attr("name", "summary") + attr("value", correctness_text(c, ctx)) + "/>\n" +
              "    </properties>\n" + cases + "  </testsuite>\n";
  }
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites" + attr("name", "kab compare " + c.scenario) +
         attr("tests", std::to_string(tests)) + attr("failures", std::to_string(failures)) + attr("errors", "0") +
         attr("skipped", std::to_string(skipped)) + ">\n" + suites + "</testsuites>\n";
}

}  // namespace kab::report
