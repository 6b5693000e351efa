#include "log.h"

#include <atomic>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace kab::dpu {

static std::mutex g_mutex;
static FILE* g_file = nullptr;
static LogLevel g_level = LogLevel::info;
static std::atomic<uint64_t> g_guest_errors{0};
static constexpr uint64_t k_max_guest_error_lines = 200;

bool log_open(const std::string& path, LogLevel level) {
  std::lock_guard lock(g_mutex);
  g_level = level;
  if (path.empty())
    return true;
  FILE* f = std::fopen(path.c_str(), "ae");
  if (!f)
    return false;
  std::setvbuf(f, nullptr, _IOLBF, 0);
  if (g_file)
    std::fclose(g_file);
  g_file = f;
  return true;
}

void log_close() {
  std::lock_guard lock(g_mutex);
  if (g_file)
    std::fclose(g_file);
  g_file = nullptr;
}

void log_msg(LogLevel level, const std::string& msg) {
  if (level > g_level)
    return;
  static const char* names[] = {"error", "warn", "info", "debug"};
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  std::lock_guard lock(g_mutex);
  FILE* f = g_file ? g_file : stderr;
  std::fprintf(f, "%lld.%06ld kab-dpu %s: %s\n", (long long)ts.tv_sec, ts.tv_nsec / 1000,
               names[int(level)], msg.c_str());
}

void log_guest_error(const std::string& msg) {
  uint64_t n = ++g_guest_errors;
  if (n < k_max_guest_error_lines)
    log_msg(LogLevel::warn, "guest error: " + msg);
  else if (n == k_max_guest_error_lines)
    log_msg(LogLevel::warn, "guest error: " + msg + " (further guest errors only counted)");
}

uint64_t guest_error_count() { return g_guest_errors.load(); }

} // namespace kab::dpu
