#include "virtio_fs_device.h"

#include "log.h"

#include <linux/fuse.h>

namespace kab::dpu {

uint32_t VirtioFsDevice::process(unsigned queue, Chain& chain, unsigned worker) {
  auto t0 = std::chrono::steady_clock::now();
  FuseResult res;
  {
    RequestWatchdog::Scope scope(&m_watchdog);
    res = m_fuse.handle(chain.readable, chain.writable);
  }
  if (res.timed_out)
    m_stats.add_timed_out();
  if (m_slowdown > 0) {
    auto now = std::chrono::steady_clock::now();
    wait_until(now + std::chrono::duration_cast<std::chrono::nanoseconds>((now - t0) * m_slowdown));
  }
  if (m_latency.count() > 0)
    wait_until(t0 + m_latency);
  auto ns = uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                         std::chrono::steady_clock::now() - t0)
                         .count());
  m_stats.record(res.opcode, ns, res.error != 0 || res.malformed);
  if (res.malformed)
    m_stats.add_malformed();
  m_stats.add_bytes_read(res.bytes_read);
  m_stats.add_bytes_written(res.bytes_written);
  if (queue == 0 && res.reply_len != 0 && res.opcode != FUSE_FORGET &&
      res.opcode != FUSE_BATCH_FORGET)
    log_msg(LogLevel::debug, "hiprio queue carried opcode " + std::to_string(res.opcode));
  return res.reply_len;
}

} // namespace kab::dpu
