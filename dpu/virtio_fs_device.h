// The virtio-fs device of kab-dpu: routes descriptor chains to the FUSE server, applies the DPU
// model's per-request latency, and records statistics.
#pragma once

#include "dpu_model.h"
#include "fuse_server.h"
#include "stats.h"
#include "vhost_user_server.h"

namespace kab::dpu {

class VirtioFsDevice : public RequestProcessor {
public:
  VirtioFsDevice(FuseServer& fuse, Stats& stats, double latency_us)
      : m_fuse(fuse), m_stats(stats), m_latency(std::chrono::nanoseconds(int64_t(latency_us * 1000))) {}
  uint32_t process(unsigned queue, Chain& chain, unsigned worker) override;

private:
  FuseServer& m_fuse;
  Stats& m_stats;
  std::chrono::nanoseconds m_latency;
};

} // namespace kab::dpu
