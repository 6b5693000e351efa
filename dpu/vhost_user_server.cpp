#include "vhost_user_server.h"

#include "log.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <system_error>

namespace kab::dpu {

using namespace vhost;

// One started period of a ring: what its queue thread and its requests in flight use. Shared
// with them (shared_ptr), so the control plane can stop waiting for a request that hangs and
// reconfigure or reset the ring while that request still runs: the request then finishes
// against this state, whose completions are dropped (`detached`), and the guest memory it
// points into stays mapped until it is done.
struct VhostUserServer::Run {
  unsigned index = 0;
  unsigned depth = 0;  // requests in flight at most
  std::shared_ptr<GuestMemory> mem;
  Virtqueue vq;
  int kick_fd = -1;  // a dup: the control plane may close or replace its own at any time
  int call_fd = -1;  // a dup, replaced by SET_VRING_CALL under `mutex`
  int stop_fd = -1;
  std::atomic<bool> stopping{false};

  std::mutex mutex;  // guards vq, call_fd, inflight, detached, thread_done
  std::condition_variable cv;
  unsigned inflight = 0;
  bool detached = false;
  bool thread_done = false;
  std::thread thread;

  ~Run() {
    for (int f : {kick_fd, call_fd, stop_fd})
      if (f >= 0)
        ::close(f);
    if (thread.joinable())
      thread.detach();
  }
};

struct VhostUserServer::Vring {
  unsigned index = 0;
  uint32_t num = 0;
  VringAddrWire addr{};
  bool addr_set = false;
  uint16_t base = 0;
  int kick_fd = -1;
  int call_fd = -1;
  int err_fd = -1;
  bool kick_set = false;  // SET_VRING_KICK seen (with or without fd): the ring is started
  bool enabled = false;
  bool enable_seen = false;  // SET_VRING_ENABLE received
  std::shared_ptr<Run> run;  // set while the ring runs

  ~Vring() {
    for (int f : {kick_fd, call_fd, err_fd})
      if (f >= 0)
        ::close(f);
  }
};

// What the queue threads and the requests use besides their Run: kept apart from the server so
// that, should requests still be stuck when the server is destroyed, it can be left to them
// (leaked) instead of destroyed under their feet.
struct VhostUserServer::Core {
  DpuModelConfig model;
  RequestProcessor& processor;
  Stats& stats;
  std::unique_ptr<WorkerPool> pool;       // the DPU cores (--cores N)
  std::unique_ptr<WorkerPool> free_pool;  // cores 0: unpinned helpers for backlogs

  Core(const DpuModelConfig& m, RequestProcessor& p, Stats& s) : model(m), processor(p), stats(s) {}
  void run_vring(const std::shared_ptr<Run>& run);
  void dispatch(const std::shared_ptr<Run>& run, std::shared_ptr<Chain> chain, bool backlog);
  void serve_chain(Run& run, Chain& chain, unsigned worker);
  void complete(Run& run, uint16_t head, uint32_t len);
};

namespace {

// How long the control plane waits for a stopping ring's requests in flight, in all: any
// vhost-user request, SIGTERM or a disconnect is answered well within a second.
constexpr auto k_stop_wait = std::chrono::milliseconds(500);

int dup_fd(int fd) { return fd < 0 ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, 0); }

} // namespace

uint64_t VhostUserServer::supported_features() const {
  return (1ull << k_f_version_1) | (1ull << k_f_protocol_features) |
         (m_opts.indirect ? 1ull << k_f_indirect_desc : 0) |
         (m_opts.event_idx ? 1ull << k_f_event_idx : 0);
}

uint64_t VhostUserServer::supported_protocol_features() {
  // BACKEND_REQ is offered although kab-dpu never sends back-end requests: User-Mode Linux's
  // virtio_uml (6.1) allocates the interrupt for its call fds only when it can set up the
  // back-end request channel, and fails to probe otherwise.
  return (1ull << k_pf_mq) | (1ull << k_pf_reply_ack) | (1ull << k_pf_backend_req) |
         (1ull << k_pf_config) | (1ull << k_pf_reset_device);
}

VhostUserServer::VhostUserServer(ServerOptions opts, RequestProcessor& processor, Stats& stats)
    : m_opts(std::move(opts)), m_processor(processor), m_stats(stats),
      m_core(std::make_unique<Core>(m_opts.model, processor, stats)) {
  if (m_opts.max_queues < m_opts.request_queues + 1)
    m_opts.max_queues = m_opts.request_queues + 1;
  for (unsigned i = 0; i < m_opts.max_queues; ++i) {
    m_vrings.push_back(std::make_unique<Vring>());
    m_vrings.back()->index = i;
  }
  if (m_opts.model.cores > 0) {
    m_core->pool = std::make_unique<WorkerPool>(m_opts.model.cores, m_opts.model.core_cpus);
  } else {
    // No DPU model: a queue thread serves a lone request itself (lowest latency) and hands
    // requests to helpers when more are waiting behind it (parallel copies).
    unsigned n = std::max(2u, std::thread::hardware_concurrency());
    m_core->free_pool = std::make_unique<WorkerPool>(std::min(n, 8u), m_opts.model.core_cpus);
  }
}

VhostUserServer::~VhostUserServer() {
  stop_all();
  if (m_backend_req_fd >= 0)
    ::close(m_backend_req_fd);
  // A request still stuck (or a queue thread not yet out) uses the core: it is left to them;
  // joining a stuck worker in the pools' destructors would never return.
  if (size_t busy = detached_busy()) {
    log_msg(LogLevel::warn, std::to_string(busy) +
                                " request(s) or queue thread(s) still running at shutdown; left");
    (void)m_core.release();
  }
}

size_t VhostUserServer::detached_busy() const {
  size_t busy = 0;
  for (const auto& run : m_detached) {
    std::lock_guard lock(run->mutex);
    busy += run->inflight + (run->thread_done ? 0 : 1);
  }
  return busy;
}

std::vector<uint8_t> VhostUserServer::config_space() const {
  std::vector<uint8_t> c(40, 0);
  std::memcpy(c.data(), m_opts.tag.data(), std::min<size_t>(m_opts.tag.size(), 36));
  uint32_t n = m_opts.request_queues;
  std::memcpy(c.data() + 36, &n, 4);
  return c;
}

void VhostUserServer::stop_all() {
  std::vector<Vring*> all;
  for (auto& v : m_vrings)
    all.push_back(v.get());
  stop_rings(all);
}

void VhostUserServer::reset() {
  stop_all();
  for (auto& v : m_vrings) {
    unsigned i = v->index;
    v = std::make_unique<Vring>();
    v->index = i;
  }
  m_mem.reset();
  m_acked_features = 0;
  m_features_set = false;
  m_processor.reset();
}

bool VhostUserServer::vring_should_run(const Vring& v) const {
  return v.kick_set && v.enabled && v.addr_set && v.num > 0 && m_mem;
}

bool VhostUserServer::start_vring(Vring& v) {
  if (v.run || !vring_should_run(v))
    return true;
  auto run = std::make_shared<Run>();
  run->index = v.index;
  run->depth = m_opts.model.queue_depth ? m_opts.model.queue_depth : v.num;
  run->mem = m_mem;
  bool event_idx = m_acked_features & (1ull << k_f_event_idx);
  if (!run->vq.configure(run->mem.get(), v.num, v.addr.desc_user_addr, v.addr.avail_user_addr,
                         v.addr.used_user_addr, event_idx)) {
    log_msg(LogLevel::error, "queue " + std::to_string(v.index) +
                                 ": ring addresses or size invalid (num " + std::to_string(v.num) +
                                 "); queue not started");
    return false;
  }
  run->vq.set_last_avail(v.base);
  run->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  run->kick_fd = dup_fd(v.kick_fd);
  run->call_fd = dup_fd(v.call_fd);
  if (run->stop_fd < 0 || (v.kick_fd >= 0 && run->kick_fd < 0) ||
      (v.call_fd >= 0 && run->call_fd < 0)) {
    log_msg(LogLevel::error, "queue " + std::to_string(v.index) + ": no descriptor for its " +
                                 "event fds (" + std::strerror(errno) + "); queue not started");
    return false;
  }
  try {
    run->thread = std::thread([core = m_core.get(), run] { core->run_vring(run); });
  } catch (const std::system_error& e) {
    log_msg(LogLevel::error, "queue " + std::to_string(v.index) + ": " + e.what());
    return false;
  }
  v.run = std::move(run);
  log_msg(LogLevel::debug, "queue " + std::to_string(v.index) + " started, size " +
                               std::to_string(v.num) + ", base " + std::to_string(v.base));
  return true;
}

void VhostUserServer::stop_rings(const std::vector<Vring*>& rings) {
  std::vector<Vring*> stopping;
  for (Vring* v : rings) {
    if (!v->run)
      continue;
    Run& run = *v->run;
    run.stopping = true;
    uint64_t one = 1;
    if (::write(run.stop_fd, &one, sizeof one) < 0) {
    }
    {
      std::lock_guard lock(run.mutex);
      run.cv.notify_all();
    }
    stopping.push_back(v);
  }
  // One deadline for all of them: requests still running past it are left to finish on their
  // own, their completions dropped.
  auto deadline = std::chrono::steady_clock::now() + k_stop_wait;
  for (Vring* v : stopping) {
    std::shared_ptr<Run> run = std::move(v->run);
    std::unique_lock lock(run->mutex);
    bool drained = run->cv.wait_until(lock, deadline,
                                      [&] { return run->thread_done && run->inflight == 0; });
    v->base = run->vq.last_avail();
    unsigned stuck = run->inflight;
    bool thread_done = run->thread_done;
    if (!drained)
      run->detached = true;
    lock.unlock();
    if (thread_done)
      run->thread.join();
    else
      run->thread.detach();
    if (!drained) {
      m_stats.add_abandoned(stuck);
      m_detached.push_back(run);
      log_msg(LogLevel::warn,
              "queue " + std::to_string(v->index) + ": " + std::to_string(stuck) +
                  " request(s) still running after " + std::to_string(k_stop_wait.count()) +
                  " ms; the queue stopped without them (their completions are dropped)");
    }
  }
  // Forget detached runs that have finished since.
  std::erase_if(m_detached, [](const std::shared_ptr<Run>& r) {
    std::lock_guard lock(r->mutex);
    return r->inflight == 0 && r->thread_done;
  });
}

void VhostUserServer::Core::complete(Run& run, uint16_t head, uint32_t len) {
  std::lock_guard lock(run.mutex);
  // A detached run's ring may already be in use again (or the device reset): nothing is
  // written to it.
  if (!run.detached && run.vq.push_used(head, len) && run.call_fd >= 0) {
    uint64_t one = 1;
    if (::write(run.call_fd, &one, sizeof one) < 0) {
    }
    stats.add_notify();
  }
  --run.inflight;
  run.cv.notify_all();
}

void VhostUserServer::Core::serve_chain(Run& run, Chain& chain, unsigned worker) {
  bool skip;
  {
    std::lock_guard lock(run.mutex);
    skip = run.detached;
  }
  if (skip) {  // queued behind a request that hung, and the ring is gone
    complete(run, chain.head, 0);
    return;
  }
  auto t0 = std::chrono::steady_clock::now();
  uint32_t len = processor.process(run.index, chain, worker);
  complete(run, chain.head, len);
  stats.add_busy(worker, uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now() - t0)
                                        .count()));
}

void VhostUserServer::Core::dispatch(const std::shared_ptr<Run>& run,
                                     std::shared_ptr<Chain> chain, bool backlog) {
  {
    std::lock_guard lock(run->mutex);
    ++run->inflight;
  }
  if (free_pool && backlog) {
    free_pool->submit([this, run, chain](unsigned) { serve_chain(*run, *chain, run->index); });
    return;
  }
  if (pool) {
    pool->submit([this, run, chain](unsigned worker) { serve_chain(*run, *chain, worker); });
    return;
  }
  serve_chain(*run, *chain, run->index);
}

void VhostUserServer::Core::run_vring(const std::shared_ptr<Run>& run) {
  Run& v = *run;
  unsigned depth = v.depth;
  if (!pool && !model.core_cpus.empty())
    pin_current_thread(model.core_cpus[v.index % model.core_cpus.size()]);
  bool broken_logged = false;
  while (!v.stopping) {
    // Drain what the driver has made available, up to the queue depth.
    for (;;) {
      {
        std::unique_lock lock(v.mutex);
        v.cv.wait(lock, [&] { return v.inflight < depth || v.stopping; });
      }
      if (v.stopping)
        break;
      std::optional<uint16_t> head;
      {
        std::lock_guard lock(v.mutex);
        head = v.vq.pop();
      }
      if (!head)
        break;
      auto chain = std::make_shared<Chain>();
      WalkError err = v.vq.walk(*head, *chain);
      if (err != WalkError::none) {
        stats.add_malformed();
        log_guest_error("queue " + std::to_string(v.index) + ": descriptor chain at head " +
                        std::to_string(*head) + ": " + to_string(err) +
                        (*head < v.vq.num() ? "; completed with length 0" : "; dropped"));
        // Completed with no data, so the driver does not wait forever for this head.
        if (*head < v.vq.num()) {
          {
            std::lock_guard lock(v.mutex);
            ++v.inflight;
          }
          complete(v, *head, 0);
        }
        continue;
      }
      bool backlog;
      {
        std::lock_guard lock(v.mutex);
        backlog = v.vq.has_pending();
      }
      dispatch(run, std::move(chain), backlog);
    }
    if (v.stopping)
      break;
    if (v.vq.broken() && !broken_logged) {
      broken_logged = true;
      log_guest_error("queue " + std::to_string(v.index) +
                      ": available index ran more than the ring size ahead; queue halted");
    }
    bool more;
    {
      std::lock_guard lock(v.mutex);
      more = !v.vq.broken() && v.vq.enable_kicks();
    }
    if (more)
      continue;
    pollfd p[2] = {{v.kick_fd, POLLIN, 0}, {v.stop_fd, POLLIN, 0}};
    // Without a kick fd the ring is polled.
    int r = ::poll(p, 2, v.kick_fd >= 0 ? -1 : 1);
    if (r < 0 && errno != EINTR)
      break;
    if (v.kick_fd >= 0 && (p[0].revents & POLLIN)) {
      uint64_t cnt;
      if (::read(v.kick_fd, &cnt, sizeof cnt) > 0)
        stats.add_kick();
    }
  }
  // The control plane waits for the requests in flight (stop_rings), not this thread.
  std::lock_guard lock(v.mutex);
  v.thread_done = true;
  v.cv.notify_all();
}

VhostUserServer::Step VhostUserServer::handle_one(int fd) {
  auto msg = std::make_unique<Message>();
  std::string err;
  RecvStatus st = recv_message(fd, *msg, err);
  if (st == RecvStatus::eof)
    return Step::disconnect;
  if (st == RecvStatus::error) {
    log_msg(LogLevel::error, "vhost-user: " + err);
    return Step::error;
  }
  log_msg(LogLevel::debug, std::string("vhost-user: ") + request_name(msg->request) + " size " +
                               std::to_string(msg->size) + " fds " + std::to_string(msg->fds.size()));
  bool replied = false;
  bool ok = handle(*msg, fd, replied);
  msg->close_fds();
  if (!ok)
    log_msg(LogLevel::warn, std::string("vhost-user: ") + request_name(msg->request) + " failed");
  if (!replied && (msg->flags & k_flag_need_reply) &&
      (m_protocol_features & (1ull << k_pf_reply_ack))) {
    uint64_t status = ok ? 0 : 1;
    if (!send_message(fd, msg->request, k_flag_version | k_flag_reply, &status, sizeof status))
      return Step::error;
  }
  return Step::ok;
}

static int take_fd(Message& msg) {
  if (msg.fds.empty())
    return -1;
  int f = msg.fds.front();
  msg.fds.erase(msg.fds.begin());
  return f;
}

bool VhostUserServer::handle(Message& msg, int fd, bool& replied) {
  auto reply_u64 = [&](uint64_t v) {
    replied = true;
    return send_message(fd, msg.request, k_flag_version | k_flag_reply, &v, sizeof v);
  };
  auto vring_of = [&](uint32_t index) -> Vring* {
    if (index >= m_vrings.size()) {
      log_msg(LogLevel::warn, std::string(request_name(msg.request)) + ": queue index " +
                                  std::to_string(index) + " out of range");
      return nullptr;
    }
    return m_vrings[index].get();
  };
  switch (msg.request) {
  case GET_FEATURES:
    return reply_u64(supported_features());
  case SET_FEATURES: {
    uint64_t f;
    if (!msg.get(f))
      return false;
    if (f & ~supported_features())
      log_msg(LogLevel::warn, "SET_FEATURES: front-end acked unsupported bits; ignored");
    m_acked_features = f & supported_features();
    m_features_set = true;
    return true;
  }
  case GET_PROTOCOL_FEATURES:
    return reply_u64(supported_protocol_features());
  case SET_PROTOCOL_FEATURES: {
    uint64_t f;
    if (!msg.get(f))
      return false;
    m_protocol_features = f & supported_protocol_features();
    return true;
  }
  case SET_OWNER:
    return true;
  case RESET_OWNER:
  case RESET_DEVICE:
    reset();
    return true;
  case GET_QUEUE_NUM:
    return reply_u64(m_opts.max_queues);
  case SET_MEM_TABLE: {
    uint32_t nregions;
    if (!msg.get(nregions) || nregions == 0 || nregions > k_max_mem_regions ||
        msg.size < 8 + nregions * sizeof(MemRegionWire) || msg.fds.size() != nregions) {
      log_msg(LogLevel::error, "SET_MEM_TABLE: malformed (regions/fds mismatch)");
      return false;
    }
    auto mem = std::make_shared<GuestMemory>();
    for (uint32_t i = 0; i < nregions; ++i) {
      MemRegionWire r;
      std::memcpy(&r, msg.payload + 8 + i * sizeof r, sizeof r);
      std::string e = mem->map_region(r.guest_phys_addr, r.memory_size, r.userspace_addr,
                                      r.mmap_offset, msg.fds[i]);
      if (!e.empty()) {
        log_msg(LogLevel::error, "SET_MEM_TABLE: region " + std::to_string(i) + ": " + e);
        return false;
      }
      log_msg(LogLevel::debug, "memory region gpa " + std::to_string(r.guest_phys_addr) +
                                   " size " + std::to_string(r.memory_size));
    }
    // Queues see the table swap only while stopped. Every ring ready to run starts then, also
    // one that was set up before the first table (it could not start without memory).
    stop_all();
    m_mem = std::move(mem);
    bool ok = true;
    for (auto& v : m_vrings)
      ok = start_vring(*v) && ok;
    return ok;
  }
  case SET_VRING_NUM: {
    VringStateWire s;
    if (!msg.get(s))
      return false;
    Vring* v = vring_of(s.index);
    if (!v || s.num == 0 || s.num > k_max_queue_size || (s.num & (s.num - 1)))
      return false;
    v->num = s.num;
    return true;
  }
  case SET_VRING_ADDR: {
    VringAddrWire a;
    if (!msg.get(a))
      return false;
    Vring* v = vring_of(a.index);
    if (!v)
      return false;
    bool was = v->run != nullptr;
    stop_rings({v});
    v->addr = a;
    v->addr_set = true;
    if (was)
      start_vring(*v);
    return true;
  }
  case SET_VRING_BASE: {
    VringStateWire s;
    if (!msg.get(s))
      return false;
    Vring* v = vring_of(s.index);
    if (!v)
      return false;
    v->base = uint16_t(s.num);
    return true;
  }
  case GET_VRING_BASE: {
    VringStateWire s;
    if (!msg.get(s))
      return false;
    Vring* v = vring_of(s.index);
    if (!v)
      return false;
    stop_rings({v});
    v->kick_set = false;
    if (v->kick_fd >= 0) {
      ::close(v->kick_fd);
      v->kick_fd = -1;
    }
    VringStateWire r{s.index, v->base};
    replied = true;
    return send_message(fd, msg.request, k_flag_version | k_flag_reply, &r, sizeof r);
  }
  case SET_VRING_KICK:
  case SET_VRING_CALL:
  case SET_VRING_ERR: {
    uint64_t u;
    if (!msg.get(u))
      return false;
    Vring* v = vring_of(uint32_t(u & k_vring_idx_mask));
    if (!v)
      return false;
    int newfd = -1;
    if (!(u & k_vring_nofd)) {
      newfd = take_fd(msg);
      if (newfd < 0) {
        log_msg(LogLevel::error, std::string(request_name(msg.request)) + ": fd missing");
        return false;
      }
    }
    if (msg.request == SET_VRING_KICK) {
      stop_rings({v});
      if (v->kick_fd >= 0)
        ::close(v->kick_fd);
      v->kick_fd = newfd;
      v->kick_set = true;
      // Without protocol features a ring is enabled as soon as it is started. With them the
      // spec starts it disabled, but some front-ends (QEMU before 7.2's fix for vhost-user-fs)
      // never send SET_VRING_ENABLE: a ring not explicitly disabled is served.
      if (!(m_acked_features & (1ull << k_f_protocol_features)) || !v->enable_seen)
        v->enabled = true;
      start_vring(*v);
    } else if (msg.request == SET_VRING_CALL) {
      if (v->call_fd >= 0)
        ::close(v->call_fd);
      v->call_fd = newfd;
      if (v->run) {
        Run& run = *v->run;
        int dup = dup_fd(newfd);
        std::lock_guard lock(run.mutex);
        if (run.call_fd >= 0)
          ::close(run.call_fd);
        run.call_fd = dup;
        // A completion may have happened while there was no (or another) call fd: signal once
        // so the driver looks at the used ring. Spurious interrupts are harmless.
        if (dup >= 0) {
          uint64_t one = 1;
          if (::write(dup, &one, sizeof one) < 0) {
          }
        }
      }
    } else {
      if (v->err_fd >= 0)
        ::close(v->err_fd);
      v->err_fd = newfd;
    }
    return true;
  }
  case SET_VRING_ENABLE: {
    VringStateWire s;
    if (!msg.get(s))
      return false;
    Vring* v = vring_of(s.index);
    if (!v)
      return false;
    v->enabled = s.num != 0;
    v->enable_seen = true;
    if (v->enabled)
      return start_vring(*v);
    stop_rings({v});
    return true;
  }
  case GET_CONFIG: {
    uint32_t hdr[3];
    if (msg.size < k_config_header)
      return false;
    std::memcpy(hdr, msg.payload, sizeof hdr);
    uint32_t offset = hdr[0], size = hdr[1];
    if (size > k_max_config_size) {
      log_msg(LogLevel::warn, "GET_CONFIG: size " + std::to_string(size) + " too large");
      size = 0;
    }
    std::vector<uint8_t> out(k_config_header + size, 0);
    hdr[1] = size;
    std::memcpy(out.data(), hdr, sizeof hdr);
    auto cfg = config_space();
    for (uint32_t i = 0; i < size; ++i)
      if (uint64_t(offset) + i < cfg.size())
        out[k_config_header + i] = cfg[offset + i];
    replied = true;
    return send_message(fd, msg.request, k_flag_version | k_flag_reply, out.data(), out.size());
  }
  case SET_CONFIG:
    // The virtio-fs config space is read-only for the driver.
    return true;
  case SET_BACKEND_REQ_FD: {
    int f = take_fd(msg);
    if (f < 0)
      return false;
    if (m_backend_req_fd >= 0)
      ::close(m_backend_req_fd);
    m_backend_req_fd = f;
    return true;
  }
  case SET_LOG_FD:
  case SET_LOG_BASE:
  case SET_VRING_ENDIAN:
  default:
    log_msg(LogLevel::warn, std::string("vhost-user: unsupported request ") +
                                request_name(msg.request) + " (" + std::to_string(msg.request) + ")");
    return false;
  }
}

int VhostUserServer::serve(int fd, int signal_fd, const std::function<bool()>& on_signal) {
  for (;;) {
    pollfd p[2] = {{fd, POLLIN, 0}, {signal_fd, POLLIN, 0}};
    int r = ::poll(p, signal_fd >= 0 ? 2 : 1, -1);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return 1;
    }
    if (signal_fd >= 0 && (p[1].revents & POLLIN)) {
      if (!on_signal()) {
        stop_all();
        return 0;
      }
    }
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      Step s = handle_one(fd);
      if (s == Step::disconnect) {
        log_msg(LogLevel::info, "front-end disconnected");
        stop_all();
        return 0;
      }
      if (s == Step::error) {
        stop_all();
        return 1;
      }
    }
  }
}

} // namespace kab::dpu
