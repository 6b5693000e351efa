// The vhost-user back-end of kab-dpu: the control plane (one front-end connection) and the
// data plane (one thread per started queue, optionally handing requests to a worker pool).
#pragma once

#include "dpu_model.h"
#include "guest_memory.h"
#include "stats.h"
#include "vhost_user.h"
#include "virtqueue.h"

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace kab::dpu {

// What serves the requests of a queue; implemented by the virtio-fs device.
class RequestProcessor {
public:
  virtual ~RequestProcessor() = default;
  // Serves one well-formed chain of queue `queue`; returns the bytes written into its writable
  // part (the used length). `worker` identifies the serving thread for statistics.
  virtual uint32_t process(unsigned queue, Chain& chain, unsigned worker) = 0;
  // The front-end reset the device (RESET_OWNER / RESET_DEVICE); no request is in flight.
  virtual void reset() {}
};

struct ServerOptions {
  std::string tag = "kab";
  unsigned request_queues = 1;  // announced in the config space
  unsigned max_queues = 17;     // answered to GET_QUEUE_NUM; hiprio + request queues
  DpuModelConfig model;
  bool event_idx = true;  // offer VIRTIO_RING_F_EVENT_IDX
  bool indirect = true;   // offer VIRTIO_RING_F_INDIRECT_DESC
};

class VhostUserServer {
public:
  VhostUserServer(ServerOptions opts, RequestProcessor& processor, Stats& stats);
  ~VhostUserServer();

  enum class Step { ok, disconnect, error };
  // Reads and handles one message from `fd`. `error` means a protocol violation by the
  // front-end (the caller drops the connection); `disconnect` means EOF.
  Step handle_one(int fd);
  // Serves until EOF or until on_signal() returns false. Polls `signal_fd` (may be -1) and
  // calls on_signal when it is readable. Returns 0 on a clean disconnect, 1 on error.
  int serve(int fd, int signal_fd, const std::function<bool()>& on_signal);
  // Stops every queue: drains requests in flight for at most half a second, then leaves the
  // ones still running to finish on their own (their completions dropped, counted as
  // abandoned). Whatever the queues do, the control plane answers within a second.
  void stop_all();

  // Requests and queue threads of stopped rings that are still running (0 when all ended).
  size_t detached_busy() const;

  uint64_t acked_features() const { return m_acked_features; }
  uint64_t protocol_features() const { return m_protocol_features; }
  uint64_t supported_features() const;
  static uint64_t supported_protocol_features();
  // The virtio-fs config space (struct virtio_fs_config).
  std::vector<uint8_t> config_space() const;

private:
  struct Vring;
  struct Run;
  struct Core;
  bool handle(vhost::Message& msg, int fd, bool& replied);
  bool start_vring(Vring& v);
  // Stops the rings, waiting at most k_stop_wait in all for their requests in flight; a ring
  // whose requests do not finish by then is detached from them (stop_rings in the .cpp).
  void stop_rings(const std::vector<Vring*>& rings);
  bool vring_should_run(const Vring& v) const;
  void reset();

  ServerOptions m_opts;
  RequestProcessor& m_processor;
  Stats& m_stats;
  std::shared_ptr<GuestMemory> m_mem;  // shared with the rings' runs and their requests
  std::vector<std::unique_ptr<Vring>> m_vrings;
  std::vector<std::shared_ptr<Run>> m_detached;  // stopped with requests still running
  std::unique_ptr<Core> m_core;  // what the data plane uses (left to stuck requests at the end)
  uint64_t m_acked_features = 0;
  uint64_t m_protocol_features = 0;
  bool m_features_set = false;
  int m_backend_req_fd = -1;  // accepted, never used: kab-dpu sends no back-end requests
};

} // namespace kab::dpu
