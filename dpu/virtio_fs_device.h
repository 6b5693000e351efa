// The virtio-fs device of kab-dpu: routes descriptor chains to the FUSE server, applies the DPU
// model's per-request latency, and records statistics.
#pragma once

#include "dpu_model.h"
#include "fuse_server.h"
#include "request_deadline.h"
#include "stats.h"
#include "vhost_user_server.h"

namespace kab::dpu {

class VirtioFsDevice : public RequestProcessor {
public:
  // latency_us: minimum time per request; cpu_duty in (0, 1]: after serving a request for t,
  // the worker stays busy t * (1/duty - 1) more, a core slower than the host's.
  // request_timeout: a request still running after it is interrupted and failed with ETIMEDOUT
  // (request_deadline.h); 0: never.
  VirtioFsDevice(FuseServer& fuse, Stats& stats, double latency_us, double cpu_duty = 1.0,
                 std::chrono::milliseconds request_timeout = std::chrono::milliseconds(0))
      : m_fuse(fuse), m_stats(stats),
        m_latency(std::chrono::nanoseconds(int64_t(latency_us * 1000))),
        m_slowdown(cpu_duty > 0 && cpu_duty < 1 ? 1.0 / cpu_duty - 1.0 : 0.0),
        m_watchdog(request_timeout) {}
  uint32_t process(unsigned queue, Chain& chain, unsigned worker) override;
  void reset() override { m_fuse.reset(); }

private:
  FuseServer& m_fuse;
  Stats& m_stats;
  std::chrono::nanoseconds m_latency;
  double m_slowdown;
  RequestWatchdog m_watchdog;
};

} // namespace kab::dpu
