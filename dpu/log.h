// Minimal thread-safe logger for kab-dpu: one line per event, to a file or stderr.
#pragma once

#include <string>

namespace kab::dpu {

enum class LogLevel { error = 0, warn = 1, info = 2, debug = 3 };

// Opens the log file (append); empty path means stderr. Returns false if it cannot be opened.
bool log_open(const std::string& path, LogLevel level);
// Closes a log file opened by log_open; later lines go to stderr.
void log_close();
void log_msg(LogLevel level, const std::string& msg);
// Guest-caused problems: logged, but at most a bounded number of lines, then only counted.
void log_guest_error(const std::string& msg);
uint64_t guest_error_count();

} // namespace kab::dpu
