#include "stats.h"

#include "log.h"

#include <linux/fuse.h>

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace kab::dpu {

const char* fuse_opcode_name(uint32_t op) {
  switch (op) {
  case FUSE_LOOKUP: return "LOOKUP";
  case FUSE_FORGET: return "FORGET";
  case FUSE_GETATTR: return "GETATTR";
  case FUSE_SETATTR: return "SETATTR";
  case FUSE_READLINK: return "READLINK";
  case FUSE_SYMLINK: return "SYMLINK";
  case FUSE_MKNOD: return "MKNOD";
  case FUSE_MKDIR: return "MKDIR";
  case FUSE_UNLINK: return "UNLINK";
  case FUSE_RMDIR: return "RMDIR";
  case FUSE_RENAME: return "RENAME";
  case FUSE_LINK: return "LINK";
  case FUSE_OPEN: return "OPEN";
  case FUSE_READ: return "READ";
  case FUSE_WRITE: return "WRITE";
  case FUSE_STATFS: return "STATFS";
  case FUSE_RELEASE: return "RELEASE";
  case FUSE_FSYNC: return "FSYNC";
  case FUSE_SETXATTR: return "SETXATTR";
  case FUSE_GETXATTR: return "GETXATTR";
  case FUSE_LISTXATTR: return "LISTXATTR";
  case FUSE_REMOVEXATTR: return "REMOVEXATTR";
  case FUSE_FLUSH: return "FLUSH";
  case FUSE_INIT: return "INIT";
  case FUSE_OPENDIR: return "OPENDIR";
  case FUSE_READDIR: return "READDIR";
  case FUSE_RELEASEDIR: return "RELEASEDIR";
  case FUSE_FSYNCDIR: return "FSYNCDIR";
  case FUSE_GETLK: return "GETLK";
  case FUSE_SETLK: return "SETLK";
  case FUSE_SETLKW: return "SETLKW";
  case FUSE_ACCESS: return "ACCESS";
  case FUSE_CREATE: return "CREATE";
  case FUSE_INTERRUPT: return "INTERRUPT";
  case FUSE_BMAP: return "BMAP";
  case FUSE_DESTROY: return "DESTROY";
  case FUSE_IOCTL: return "IOCTL";
  case FUSE_POLL: return "POLL";
  case FUSE_NOTIFY_REPLY: return "NOTIFY_REPLY";
  case FUSE_BATCH_FORGET: return "BATCH_FORGET";
  case FUSE_FALLOCATE: return "FALLOCATE";
  case FUSE_READDIRPLUS: return "READDIRPLUS";
  case FUSE_RENAME2: return "RENAME2";
  case FUSE_LSEEK: return "LSEEK";
  case FUSE_COPY_FILE_RANGE: return "COPY_FILE_RANGE";
  case FUSE_SETUPMAPPING: return "SETUPMAPPING";
  case FUSE_REMOVEMAPPING: return "REMOVEMAPPING";
  case FUSE_SYNCFS: return "SYNCFS";
  case FUSE_TMPFILE: return "TMPFILE";
  default: return nullptr;
  }
}

Stats::Stats(unsigned workers) : m_busy_ns(workers), m_start(std::chrono::steady_clock::now()) {}

void Stats::record(uint32_t opcode, uint64_t ns, bool error) {
  Op& op = m_ops[opcode < k_ops - 1 ? opcode : k_ops - 1];
  op.count.fetch_add(1, std::memory_order_relaxed);
  if (error)
    op.errors.fetch_add(1, std::memory_order_relaxed);
  op.sum_ns.fetch_add(ns, std::memory_order_relaxed);
  uint64_t prev = op.max_ns.load(std::memory_order_relaxed);
  while (ns > prev && !op.max_ns.compare_exchange_weak(prev, ns, std::memory_order_relaxed)) {
  }
  uint64_t us = ns / 1000;
  size_t b = 0;
  while (b + 1 < k_buckets && us >= (uint64_t(1) << b))
    ++b;
  op.buckets[b].fetch_add(1, std::memory_order_relaxed);
}

void Stats::add_busy(unsigned worker, uint64_t ns) {
  if (worker < m_busy_ns.size())
    m_busy_ns[worker].fetch_add(ns, std::memory_order_relaxed);
}

uint64_t Stats::requests(uint32_t opcode) const {
  return m_ops[opcode < k_ops - 1 ? opcode : k_ops - 1].count.load();
}

nlohmann::json Stats::to_json(const nlohmann::json& context) const {
  using nlohmann::json;
  json j;
  j["schema"] = 1;
  j["context"] = context;
  double up = std::chrono::duration<double>(std::chrono::steady_clock::now() - m_start).count();
  j["uptime_s"] = up;
  json requests = json::object(), errors = json::object(), latency = json::object();
  uint64_t total = 0;
  for (size_t i = 0; i < k_ops; ++i) {
    const Op& op = m_ops[i];
    uint64_t n = op.count.load();
    if (n == 0)
      continue;
    total += n;
    const char* nm = i == k_ops - 1 ? "OTHER" : fuse_opcode_name(uint32_t(i));
    std::string name = nm ? nm : "OP_" + std::to_string(i);
    requests[name] = n;
    if (uint64_t e = op.errors.load())
      errors[name] = e;
    json buckets = json::array();
    for (size_t b = 0; b < k_buckets; ++b) {
      uint64_t c = op.buckets[b].load();
      if (c == 0)
        continue;
      json bucket{{"count", c}};
      if (b + 1 < k_buckets)
        bucket["lt_us"] = uint64_t(1) << b;
      else
        bucket["lt_us"] = nullptr;
      buckets.push_back(bucket);
    }
    latency[name] = json{{"count", n},
                         {"mean_us", double(op.sum_ns.load()) / double(n) / 1000.0},
                         {"max_us", double(op.max_ns.load()) / 1000.0},
                         {"buckets", buckets}};
  }
  j["requests_total"] = total;
  j["requests"] = requests;
  j["errors"] = errors;
  j["latency_us"] = latency;
  j["bytes_read"] = m_bytes_read.load();
  j["bytes_written"] = m_bytes_written.load();
  j["malformed_requests"] = m_malformed.load();
  j["guest_errors_logged"] = guest_error_count();
  j["notifications"] = m_notifications.load();
  j["kicks"] = m_kicks.load();
  j["timed_out_requests"] = m_timed_out.load();
  j["abandoned_requests"] = m_abandoned.load();
  if (m_extra) {
    nlohmann::json extra = m_extra();
    for (auto& [k, v] : extra.items())
      j[k] = v;
  }
  json workers = json::array();
  for (size_t i = 0; i < m_busy_ns.size(); ++i) {
    double busy = double(m_busy_ns[i].load()) / 1e9;
    workers.push_back(json{{"id", i}, {"busy_s", busy}, {"utilization", up > 0 ? busy / up : 0.0}});
  }
  j["workers"] = workers;
  return j;
}

bool Stats::write_file(const std::string& path, const nlohmann::json& context) const {
  // mkstemp: a new file of mode 0600 (the process umask is 0 for the guest's modes), never an
  // existing name a local user prepared.
  std::string tmp = path + ".XXXXXX";
  int fd = mkstemp(tmp.data());
  if (fd < 0)
    return false;
  std::string text = to_json(context).dump(2) + "\n";
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      ::close(fd);
      ::unlink(tmp.c_str());
      return false;
    }
    done += size_t(n);
  }
  if (::close(fd) != 0 || std::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

} // namespace kab::dpu
