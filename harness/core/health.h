// Guest kernel health, judged from the console text alone (pure functions).
#pragma once

#include <string>
#include <vector>

namespace kab::core {

// Lines reporting panic, Oops, BUG, WARNING, KASAN, UBSAN, lockdep, hung
// tasks, RCU stalls or soft lockups, in order, at most `limit`.
std::vector<std::string> console_findings(const std::string& console_text, std::size_t limit = 20);
bool console_has_panic(const std::string& console_text);

}  // namespace kab::core
