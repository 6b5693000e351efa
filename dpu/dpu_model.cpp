#include "dpu_model.h"

#include "log.h"

#include <pthread.h>
#include <sched.h>

#include <cstring>
#include <string>

namespace kab::dpu {

void wait_until(std::chrono::steady_clock::time_point deadline) {
  using namespace std::chrono;
  constexpr auto spin = microseconds(50);
  auto now = steady_clock::now();
  if (deadline - now > spin)
    std::this_thread::sleep_until(deadline - spin);
  while (steady_clock::now() < deadline) {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#endif
  }
}

void DmaThrottle::transfer(uint64_t bytes) {
  if (m_bytes_per_ns <= 0 || bytes == 0)
    return;
  using namespace std::chrono;
  auto cost = nanoseconds(int64_t(double(bytes) / m_bytes_per_ns));
  steady_clock::time_point done;
  {
    std::lock_guard lock(m_mutex);
    auto now = steady_clock::now();
    auto start = m_free_at > now ? m_free_at : now;
    done = start + cost;
    m_free_at = done;
  }
  wait_until(done);
}

bool pin_current_thread(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (cpu < 0 || cpu >= CPU_SETSIZE)
    return false;
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
}

WorkerPool::WorkerPool(unsigned n, const std::vector<int>& cpus) {
  for (unsigned i = 0; i < n; ++i) {
    int cpu = cpus.empty() ? -1 : cpus[i % cpus.size()];
    m_threads.emplace_back([this, i, cpu] { run(i, cpu); });
  }
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard lock(m_mutex);
    m_stop = true;
  }
  m_cv.notify_all();
  for (auto& t : m_threads)
    t.join();
}

void WorkerPool::submit(Task t) {
  {
    std::lock_guard lock(m_mutex);
    m_tasks.push_back(std::move(t));
  }
  m_cv.notify_one();
}

void WorkerPool::run(unsigned id, int cpu) {
  if (cpu >= 0 && !pin_current_thread(cpu))
    log_msg(LogLevel::warn, "worker " + std::to_string(id) + ": cannot pin to CPU " +
                                std::to_string(cpu) + ": " + std::strerror(errno));
  for (;;) {
    Task t;
    {
      std::unique_lock lock(m_mutex);
      m_cv.wait(lock, [&] { return m_stop || !m_tasks.empty(); });
      if (m_tasks.empty())
        return;
      t = std::move(m_tasks.front());
      m_tasks.pop_front();
    }
    t(id);
  }
}

bool parse_cpu_list(const std::string& s, std::vector<int>& out) {
  out.clear();
  size_t i = 0;
  auto number = [&](int& v) {
    if (i >= s.size() || !std::isdigit((unsigned char)s[i]))
      return false;
    v = 0;
    while (i < s.size() && std::isdigit((unsigned char)s[i])) {
      v = v * 10 + (s[i++] - '0');
      if (v >= CPU_SETSIZE)
        return false;
    }
    return true;
  };
  if (s.empty())
    return true;
  for (;;) {
    int a, b;
    if (!number(a))
      return false;
    b = a;
    if (i < s.size() && s[i] == '-') {
      ++i;
      if (!number(b) || b < a)
        return false;
    }
    for (int c = a; c <= b; ++c)
      out.push_back(c);
    if (i == s.size())
      return true;
    if (s[i++] != ',')
      return false;
  }
}

} // namespace kab::dpu
