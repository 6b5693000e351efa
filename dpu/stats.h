// Request statistics of kab-dpu: counts, bytes and latency histograms per FUSE opcode, worker
// busy time. Recording is lock-free (relaxed atomics); to_json() takes a consistent-enough
// snapshot while requests continue.
#pragma once

#include <nlohmann/json.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace kab::dpu {

class Stats {
public:
  static constexpr size_t k_ops = 64;      // opcodes >= 63 are counted as "other"
  static constexpr size_t k_buckets = 28;  // bucket i: latency < 2^i µs (last: everything else)

  explicit Stats(unsigned workers = 0);
  void record(uint32_t opcode, uint64_t latency_ns, bool error);
  void add_bytes_read(uint64_t n) { m_bytes_read.fetch_add(n, std::memory_order_relaxed); }
  void add_bytes_written(uint64_t n) { m_bytes_written.fetch_add(n, std::memory_order_relaxed); }
  void add_busy(unsigned worker, uint64_t ns);
  void add_malformed() { m_malformed.fetch_add(1, std::memory_order_relaxed); }
  void add_notify() { m_notifications.fetch_add(1, std::memory_order_relaxed); }
  void add_kick() { m_kicks.fetch_add(1, std::memory_order_relaxed); }
  // A request failed with ETIMEDOUT past its bound; requests the control plane stopped waiting
  // for (their completions are dropped).
  void add_timed_out() { m_timed_out.fetch_add(1, std::memory_order_relaxed); }
  void add_abandoned(uint64_t n) { m_abandoned.fetch_add(n, std::memory_order_relaxed); }
  uint64_t timed_out() const { return m_timed_out.load(); }
  uint64_t abandoned() const { return m_abandoned.load(); }
  // Fields another part adds to every report (e.g. the FUSE server's limits); called by to_json.
  void set_extra(std::function<nlohmann::json()> f) { m_extra = std::move(f); }
  uint64_t requests(uint32_t opcode) const;
  uint64_t bytes_written() const { return m_bytes_written.load(); }
  uint64_t bytes_read() const { return m_bytes_read.load(); }

  // `context` is copied into the report as its "context" block.
  nlohmann::json to_json(const nlohmann::json& context) const;
  // Writes to path atomically (temp file + rename). Returns false on I/O error.
  bool write_file(const std::string& path, const nlohmann::json& context) const;

private:
  struct Op {
    std::atomic<uint64_t> count{0}, errors{0}, sum_ns{0}, max_ns{0};
    std::array<std::atomic<uint64_t>, k_buckets> buckets{};
  };
  std::array<Op, k_ops> m_ops;
  std::atomic<uint64_t> m_bytes_read{0}, m_bytes_written{0}, m_malformed{0};
  std::atomic<uint64_t> m_notifications{0}, m_kicks{0}, m_timed_out{0}, m_abandoned{0};
  std::function<nlohmann::json()> m_extra;
  std::vector<std::atomic<uint64_t>> m_busy_ns;
  std::chrono::steady_clock::time_point m_start;
};

const char* fuse_opcode_name(uint32_t opcode);

} // namespace kab::dpu
