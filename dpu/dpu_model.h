// The DPU model: what makes kab-dpu behave like a device with its own cores, a PCIe round trip
// per request and bounded DMA bandwidth. Every knob at 0 means "off" (as fast as possible).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace kab::dpu {

struct DpuModelConfig {
  unsigned cores = 0;          // worker threads; 0: each queue's own thread serves its requests
  std::vector<int> core_cpus;  // host CPUs the workers are pinned to (round robin)
  double latency_us = 0;       // added to every request (doorbell + completion round trip)
  double bandwidth_mbps = 0;   // DMA bandwidth cap on data bytes, 10^6 bytes/s
  unsigned queue_depth = 0;    // requests in flight per queue; 0: the ring size
  double cpu_duty = 1.0;       // (0, 1]: a core computes at this fraction of host speed
};

// Waits until `deadline` precisely: sleeps while far away, spins the last 50 µs.
void wait_until(std::chrono::steady_clock::time_point deadline);

// A DMA engine of fixed bandwidth shared by all workers: transfers are served one after
// another (a virtual clock), so the aggregate never exceeds the rate.
class DmaThrottle {
public:
  explicit DmaThrottle(double mbps) : m_bytes_per_ns(mbps * 1e6 / 1e9) {}
  bool enabled() const { return m_bytes_per_ns > 0; }
  // Blocks the caller until `bytes` have passed through the engine.
  void transfer(uint64_t bytes);

private:
  double m_bytes_per_ns;
  std::mutex m_mutex;
  std::chrono::steady_clock::time_point m_free_at{};
};

// Pins the calling thread to one host CPU; returns false (and leaves it unpinned) on failure.
bool pin_current_thread(int cpu);

// Fixed pool of worker threads ("DPU cores"), each pinned when CPUs are given.
class WorkerPool {
public:
  using Task = std::function<void(unsigned worker)>;
  WorkerPool(unsigned n, const std::vector<int>& cpus);
  ~WorkerPool();  // runs the queued tasks, then joins
  void submit(Task t);
  unsigned size() const { return unsigned(m_threads.size()); }

private:
  void run(unsigned id, int cpu);
  std::mutex m_mutex;
  std::condition_variable m_cv;
  std::deque<Task> m_tasks;
  bool m_stop = false;
  std::vector<std::thread> m_threads;
};

// Parses "0,1,4-6" into CPU numbers; returns false on malformed input.
bool parse_cpu_list(const std::string& s, std::vector<int>& out);

} // namespace kab::dpu
