// The few facts of the running system every layer needs: a monotonic clock,
// the wall time as ISO 8601, a whole file as text. One copy each.
#pragma once

#include <ctime>
#include <string>

namespace kab::core {

// Seconds on the monotonic clock (for durations, never for dates).
double now_s();

// "2026-12-02T02:44:54Z" for `t` (UTC); iso_now() for the current time.
std::string iso_utc(std::time_t t);
std::string iso_now();

// The whole file as bytes; "" when it cannot be read (absent, unreadable).
std::string read_text(const std::string& path);

}  // namespace kab::core
