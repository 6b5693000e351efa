#include "request_deadline.h"

#include "log.h"

#include <signal.h>

#include <cstring>

namespace kab::dpu {

namespace {

thread_local std::atomic<bool> t_expired{false};

void on_interrupt(int) {}

void install_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: the blocked call returns EINTR
    sigaction(request_interrupt_signal(), &sa, nullptr);
  });
}

} // namespace

int request_interrupt_signal() { return SIGURG; }

bool request_expired() { return t_expired.load(std::memory_order_relaxed); }

RequestWatchdog::RequestWatchdog(std::chrono::milliseconds bound) : m_bound(bound) {
  if (m_bound.count() > 0) {
    install_handler();
    m_thread = std::thread([this] { run(); });
  }
}

RequestWatchdog::~RequestWatchdog() {
  {
    std::lock_guard lock(m_mutex);
    m_stop = true;
  }
  m_cv.notify_all();
  if (m_thread.joinable())
    m_thread.join();
}

size_t RequestWatchdog::in_flight() const {
  std::lock_guard lock(m_mutex);
  return m_entries.size();
}

RequestWatchdog::Scope::Scope(RequestWatchdog* w) : m_w(w) {
  t_expired.store(false, std::memory_order_relaxed);
  if (!m_w || m_w->m_bound.count() == 0)
    return;
  std::lock_guard lock(m_w->m_mutex);
  m_it = m_w->m_entries.insert(m_w->m_entries.end(),
                               WatchEntry{pthread_self(), std::chrono::steady_clock::now(), {},
                                          &t_expired});
}

RequestWatchdog::Scope::~Scope() {
  if (!m_w || m_w->m_bound.count() == 0)
    return;
  // Once removed under the mutex, the watchdog signals this thread no more.
  std::lock_guard lock(m_w->m_mutex);
  m_w->m_entries.erase(m_it);
}

void RequestWatchdog::run() {
  auto tick = std::max(std::chrono::milliseconds(5),
                       std::min(m_bound / 4, std::chrono::milliseconds(100)));
  std::unique_lock lock(m_mutex);
  while (!m_stop) {
    m_cv.wait_for(lock, tick);
    if (m_stop)
      break;
    auto now = std::chrono::steady_clock::now();
    for (auto& e : m_entries) {
      if (now - e.start < m_bound)
        continue;
      bool first = !e.expired->exchange(true);
      // Again every second: a signal that arrived between two system calls interrupted none.
      if (first || now - e.signalled >= std::chrono::seconds(1)) {
        e.signalled = now;
        pthread_kill(e.thread, request_interrupt_signal());
      }
      if (first) {
        ++m_expired;
        log_msg(LogLevel::warn, "a request ran past its bound of " +
                                    std::to_string(m_bound.count()) + " ms; interrupted");
      }
    }
  }
}

} // namespace kab::dpu
