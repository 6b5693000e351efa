// Guest kernel health, judged from the console text alone (pure functions).
#pragma once

#include <string>
#include <vector>

#include "core/ports.h"

namespace kab::core {

// Lines reporting panic, Oops, BUG, WARNING, KASAN, UBSAN, lockdep, hung
// tasks, RCU stalls or soft lockups, in order, at most `limit`.
std::vector<std::string> console_findings(const std::string& console_text, std::size_t limit = 20);
bool console_has_panic(const std::string& console_text);
// The first line where the kernel reports a hung task ("INFO: task fio:58
// blocked for more than 30 seconds."), "" when none: a guest that will not
// finish, which the hypervisors stop then instead of waiting for the timeout.
std::string console_hung_task(const std::string& console_text);

// The console lines that say why a guest died, for the screen: from its first
// finding (a panic's message, not the end of its backtrace) at most max_lines,
// else its last max_lines non-empty lines. `from_finding` tells which.
struct ConsoleExcerpt {
  std::vector<std::string> lines;
  bool from_finding = false;
};
ConsoleExcerpt console_excerpt(const std::string& console_text, std::size_t max_lines = 8);

// How a guest run ended, from what every platform knows afterwards: whether
// kab was interrupted, whether the timeout fired, the console, and whether the
// agent's record is complete. `no_record_reason` says what a platform knows of
// a guest that stopped without its record. Sets out.end and out.reason.
void classify_guest_end(GuestOutcome& out, bool interrupted, bool timed_out, double timeout_s, bool backend_died,
                        const std::string& console_text, bool record_complete, const std::string& no_record_reason);
// A guest stopped AT_S seconds in because its kernel reported HUNG_LINE: a
// hang (End::timeout), said with the line and the timeout it did not wait for.
void stopped_for_hung_task(GuestOutcome& out, const std::string& hung_line, double at_s, double timeout_s);

}  // namespace kab::core
