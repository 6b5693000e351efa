#include "core/health.h"

#include <regex>
#include <sstream>

namespace kab::core {

namespace {

const std::regex& findings_pattern() {
  static const std::regex re(
      R"(Kernel panic - not syncing|Oops:|Oops\[|BUG: |kernel BUG at|WARNING: |------------\[ cut here \]|)"
      R"(KASAN:|UBSAN:|possible circular locking|possible recursive locking|inconsistent lock state|)"
      R"(INFO: task .* blocked for more than|rcu: INFO: .* stall|rcu_sched self-detected stall|)"
      R"(soft lockup - CPU|hard LOCKUP|general protection fault|Unable to handle kernel|)"
      // kab's own guest-side checks report through the kernel log (images/tools).
      R"(kab-append: integrity check failed)");
  return re;
}

// The console's lines, without the serial line's \r.
std::vector<std::string> console_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream ss(text);
  for (std::string line; std::getline(ss, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
  }
  return lines;
}

}  // namespace

std::vector<std::string> console_findings(const std::string& text, std::size_t limit) {
  std::vector<std::string> out;
  for (auto& line : console_lines(text)) {
    if (out.size() >= limit) break;
    if (std::regex_search(line, findings_pattern())) out.push_back(std::move(line));
  }
  return out;
}

ConsoleExcerpt console_excerpt(const std::string& text, std::size_t max_lines) {
  std::vector<std::string> lines;
  for (auto& line : console_lines(text))
    if (line.find_first_not_of(" \t") != std::string::npos) lines.push_back(std::move(line));
  ConsoleExcerpt out;
  std::size_t from = lines.size() > max_lines ? lines.size() - max_lines : 0;
  for (std::size_t i = 0; i < lines.size(); ++i)
    if (std::regex_search(lines[i], findings_pattern()) && lines[i].find("cut here") == std::string::npos) {
      from = i;
      out.from_finding = true;
      break;
    }
  for (std::size_t i = from; i < lines.size() && out.lines.size() < max_lines; ++i) out.lines.push_back(lines[i]);
  return out;
}

std::string console_hung_task(const std::string& text) {
  static const std::regex re(R"(INFO: task .* blocked for more than)");
  for (auto& line : console_lines(text))
    if (std::regex_search(line, re)) return line;
  return "";
}

void stopped_for_hung_task(GuestOutcome& out, const std::string& hung_line, double at_s, double timeout_s) {
  out.end = GuestOutcome::End::timeout;
  std::string line = hung_line;
  if (auto at = line.find("INFO: task "); at != std::string::npos) line = line.substr(at);
  out.reason = "the kernel reported a hung task (" + line + "); stopped at " + std::to_string(static_cast<int>(at_s)) +
               " s, not at the " + std::to_string(static_cast<int>(timeout_s)) + " s timeout";
}

bool console_has_panic(const std::string& text) {
  return text.find("Kernel panic - not syncing") != std::string::npos;
}

void classify_guest_end(GuestOutcome& out, bool interrupted, bool timed_out, double timeout_s, bool backend_died,
                        const std::string& console_text, bool record_complete, const std::string& no_record_reason) {
  using End = GuestOutcome::End;
  if (interrupted) out.end = End::failed, out.reason = "interrupted";
  else if (timed_out)
    out.end = End::timeout, out.reason = "guest did not finish in " + std::to_string(static_cast<int>(timeout_s)) + " s";
  else if (console_has_panic(console_text)) out.end = End::crashed, out.reason = "kernel panic";
  else if (backend_died && !record_complete) out.end = End::failed, out.reason = "the backend died while the guest ran";
  else if (!record_complete) out.end = End::crashed, out.reason = no_record_reason;
  else out.end = End::completed, out.reason.clear();
}

}  // namespace kab::core
