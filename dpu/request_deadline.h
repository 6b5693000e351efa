// A bound on how long one guest request may run. A watchdog thread interrupts a worker that has
// served one request for longer than the bound: it marks the request expired and sends the
// worker a signal whose handler does nothing and is installed without SA_RESTART, so a system
// call blocked in an interruptible wait (a FIFO, a lock, a slow network file system) returns
// EINTR. The FUSE server then stops retrying and fails the request with ETIMEDOUT. A call in
// uninterruptible sleep cannot be cut short; the control plane does not wait for it either
// (see VhostUserServer::stop_rings).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <list>
#include <mutex>
#include <thread>

#include <pthread.h>

namespace kab::dpu {

// One request being served, as the watchdog sees it.
struct WatchEntry {
  pthread_t thread;
  std::chrono::steady_clock::time_point start;
  std::chrono::steady_clock::time_point signalled{};
  std::atomic<bool>* expired;
};

class RequestWatchdog {
public:
  // bound 0: requests are never interrupted (the watchdog thread is not started).
  explicit RequestWatchdog(std::chrono::milliseconds bound);
  ~RequestWatchdog();
  RequestWatchdog(const RequestWatchdog&) = delete;
  RequestWatchdog& operator=(const RequestWatchdog&) = delete;

  // The calling thread serves one request from construction to destruction. A null watchdog
  // makes a scope that only clears the thread's expired flag.
  class Scope {
  public:
    explicit Scope(RequestWatchdog* w);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

  private:
    RequestWatchdog* m_w;
    std::list<WatchEntry>::iterator m_it;
  };

  std::chrono::milliseconds bound() const { return m_bound; }
  uint64_t expired_count() const { return m_expired.load(); }
  size_t in_flight() const;

private:
  void run();
  std::chrono::milliseconds m_bound;
  mutable std::mutex m_mutex;
  std::condition_variable m_cv;
  std::list<WatchEntry> m_entries;
  bool m_stop = false;
  std::atomic<uint64_t> m_expired{0};
  std::thread m_thread;
};

// True when the calling thread's current request has passed its bound: loops that retry on
// EINTR stop, and the request is failed with ETIMEDOUT.
bool request_expired();

// The signal the watchdog sends (its handler is installed on first use).
int request_interrupt_signal();

} // namespace kab::dpu
