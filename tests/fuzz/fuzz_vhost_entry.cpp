// The vhost-user control plane under fuzzing: messages with real descriptors (memfds for
// SET_MEM_TABLE, eventfds for the rings), parsed by recv_message and handled by a
// VhostUserServer whose rings really start and serve FUSE requests from a scratch directory.
// In race mode a guest thread keeps posting requests on the request queue while the messages
// reset, stop and reconfigure the rings (run it under ThreadSanitizer as well).
#include "fuzz_entry.h"

#include "fuse_server.h"
#include "stats.h"
#include "vhost_user.h"
#include "vhost_user_server.h"
#include "virtio_fs_device.h"
#include "virtqueue.h"

#include <linux/fuse.h>
#include <stdlib.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

namespace kab::dpu::fuzz {

namespace {

constexpr uint64_t k_gpa = 0x40000000;
constexpr uint64_t k_uaddr = 0x7f0000000000;
constexpr size_t k_ram = 1 << 20;
constexpr uint32_t k_num = 64;
constexpr uint16_t k_slots = 16;  // requests the guest thread keeps in flight at most

uint64_t queue_base(unsigned q) { return k_gpa + 0x10000 * (q + 1); }

struct VhostFixture {
  std::string dir;
  std::unique_ptr<FuseServer> fuse;
  std::unique_ptr<Stats> stats;
  std::unique_ptr<VirtioFsDevice> device;
  int memfd = -1;
  uint8_t* ram = nullptr;

  VhostFixture() {
    dir = scratch_dir("kab-dpu-fuzz-vu");
    fuse = std::make_unique<FuseServer>(FuseOptions{dir, true});
    stats = std::make_unique<Stats>(4);
    device = std::make_unique<VirtioFsDevice>(*fuse, *stats, 0.0);
    memfd = memfd_create("fuzz-guest-ram", MFD_CLOEXEC);
    if (memfd < 0 || ftruncate(memfd, k_ram) != 0)
      throw std::runtime_error("memfd");
    ram = static_cast<uint8_t*>(mmap(nullptr, k_ram, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0));
    if (ram == MAP_FAILED)
      throw std::runtime_error("mmap");
  }
  ~VhostFixture() {
    device.reset();
    fuse.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  uint8_t* at(uint64_t gpa) { return ram + (gpa - k_gpa); }
};

VhostFixture& fixture() {
  static VhostFixture fx;
  return fx;
}

// A guest driver on request queue 1: STATFS requests (INIT first), one readable and one
// writable descriptor each, never more than k_slots outstanding (so it never rewrites a
// descriptor in use). Returns false when the ring is full.
bool post_one(VhostFixture& fx, int kick, uint16_t& avail) {
  uint64_t base = queue_base(1);
  uint16_t used = __atomic_load_n(reinterpret_cast<uint16_t*>(fx.at(base + 0x2000 + 2)),
                                  __ATOMIC_ACQUIRE);
  if (uint16_t(avail - used) >= k_slots)
    return false;
  uint16_t slot = avail % k_slots;
  uint64_t buf = k_gpa + 0x80000 + 0x1000 * slot;
  fuse_in_header h{};
  fuse_init_in init{};
  init.major = 7;
  init.minor = 38;
  init.flags = FUSE_WRITEBACK_CACHE | FUSE_MAX_PAGES;
  h.len = uint32_t(sizeof h + (avail == 0 ? sizeof init : 0));
  h.opcode = avail == 0 ? FUSE_INIT : FUSE_STATFS;
  h.unique = avail;
  h.nodeid = FUSE_ROOT_ID;
  std::memcpy(fx.at(buf), &h, sizeof h);
  std::memcpy(fx.at(buf + sizeof h), &init, sizeof init);
  VringDesc rd{buf, h.len, k_desc_f_next, uint16_t(2 * slot + 1)};
  VringDesc wr{buf + 0x100, 0x800, k_desc_f_write, 0};
  std::memcpy(fx.at(base + 16 * (2 * slot)), &rd, 16);
  std::memcpy(fx.at(base + 16 * (2 * slot + 1)), &wr, 16);
  uint16_t head = uint16_t(2 * slot);
  __atomic_store_n(reinterpret_cast<uint16_t*>(fx.at(base + 0x1000 + 4 + 2 * (avail % k_num))),
                   head, __ATOMIC_RELAXED);
  ++avail;
  __atomic_store_n(reinterpret_cast<uint16_t*>(fx.at(base + 0x1000 + 2)), avail, __ATOMIC_RELEASE);
  uint64_t one = 1;
  if (write(kick, &one, 8) < 0) {
  }
  return true;
}

void guest_driver(VhostFixture& fx, int kick, std::atomic<bool>& stop) {
  uint16_t avail = 0;
  int idle = 0;
  while (!stop.load() && idle < 2000) {
    if (!post_one(fx, kick, avail)) {
      ++idle;
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }
}

// A well-formed payload for `req` on queue `q` (so that short inputs reach running rings).
std::vector<uint8_t> canned(uint32_t req, unsigned q, const VhostUserServer& server,
                            const uint32_t* last_base) {
  std::vector<uint8_t> p;
  auto put = [&](const auto& v) {
    auto* b = reinterpret_cast<const uint8_t*>(&v);
    p.insert(p.end(), b, b + sizeof v);
  };
  switch (req) {
  case vhost::SET_FEATURES: put(server.supported_features()); break;
  case vhost::SET_PROTOCOL_FEATURES: put(VhostUserServer::supported_protocol_features()); break;
  case vhost::SET_MEM_TABLE: {
    uint32_t n = 1, pad = 0;
    put(n);
    put(pad);
    put(vhost::MemRegionWire{k_gpa, k_ram, k_uaddr, 0});
    break;
  }
  case vhost::SET_VRING_NUM: put(vhost::VringStateWire{q, k_num}); break;
  case vhost::SET_VRING_BASE: put(vhost::VringStateWire{q, last_base[q]}); break;  // as a VMM resumes
  case vhost::GET_VRING_BASE: put(vhost::VringStateWire{q, 0}); break;
  case vhost::SET_VRING_ENABLE: put(vhost::VringStateWire{q, 1}); break;
  case vhost::SET_VRING_ADDR: {
    uint64_t b = queue_base(q) - k_gpa + k_uaddr;
    put(vhost::VringAddrWire{q, 0, b, b + 0x2000, b + 0x1000, 0});
    break;
  }
  case vhost::SET_VRING_KICK:
  case vhost::SET_VRING_CALL:
  case vhost::SET_VRING_ERR: put(uint64_t(q)); break;
  case vhost::GET_CONFIG: {
    uint32_t hdr[3] = {0, 40, 0};
    put(hdr);
    p.resize(p.size() + 40);
    break;
  }
  default: break;
  }
  return p;
}

void drain(int sock) {
  char buf[8192];
  while (recv(sock, buf, sizeof buf, MSG_DONTWAIT) > 0) {
  }
}

} // namespace

uint64_t vhost_requests_served(uint32_t opcode) { return fixture().stats->requests(opcode); }

int vhost_one_input(const uint8_t* data, size_t size, bool race) {
  VhostFixture& fx = fixture();
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return 0;
  int guest_kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  int guest_call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  std::memset(fx.ram, 0, 0x40000);  // rings of the last input
  ServerOptions so;
  so.request_queues = 1;
  so.max_queues = 3;
  auto server = std::make_unique<VhostUserServer>(so, *fx.device, *fx.stats);
  std::atomic<bool> stop{false};
  uint32_t last_base[3] = {0, 0, 0};  // what GET_VRING_BASE answered, per queue
  uint16_t posted = 0;                // requests posted by this thread (not in race mode)
  std::thread guest;
  if (race)
    guest = std::thread([&] { guest_driver(fx, guest_kick, stop); });

  while (size >= 4) {
    uint8_t code = data[0], mode = data[1], index = data[2];
    size_t len = std::min<size_t>(data[3], size - 4);
    const uint8_t* payload = data + 4;
    data += 4 + len;
    size -= 4 + len;
    if (code == 0xff) {
      // Raw bytes on the wire, then end of input: recv_message meets whatever they hold.
      if (write(sv[0], payload, len) < 0) {
      }
      shutdown(sv[0], SHUT_WR);
      for (int i = 0; i < 64 && server->handle_one(sv[1]) == VhostUserServer::Step::ok; ++i)
        drain(sv[0]);
      break;
    }
    uint32_t req = code % 41;
    std::vector<uint8_t> body = (mode & 0x80) ? canned(req, index % 3, *server, last_base)
                                              : std::vector<uint8_t>(payload, payload + len);
    std::vector<int> fds;
    if (!(mode & 0x02)) {
      switch ((mode >> 2) & 3) {
      case 0:  // the guest's own eventfds for kick and call, fresh ones otherwise
        fds.push_back(req == vhost::SET_VRING_KICK ? dup(guest_kick)
                      : req == vhost::SET_VRING_CALL ? dup(guest_call)
                                                     : eventfd(0, EFD_CLOEXEC));
        break;
      case 1: fds.push_back(dup(fx.memfd)); break;
      case 2: {  // a memory fd shorter than any region
        int m = memfd_create("short", MFD_CLOEXEC);
        if (ftruncate(m, 4096) != 0) {
        }
        fds.push_back(m);
        break;
      }
      default: {
        int p[2];
        if (pipe2(p, O_CLOEXEC) == 0) {
          fds.push_back(p[0]);
          close(p[1]);
        }
        break;
      }
      }
    }
    if (req == vhost::SET_MEM_TABLE && (mode & 0x80)) {
      for (int f : fds)
        close(f);
      fds = {dup(fx.memfd)};
    }
    uint32_t flags = vhost::k_flag_version | ((mode & 1) ? vhost::k_flag_need_reply : 0);
    bool sent = vhost::send_message(sv[0], req, flags, body.data(),
                                    std::min(body.size(), vhost::k_max_payload), fds.data(),
                                    fds.size());
    for (int f : fds)
      if (f >= 0)
        close(f);
    if (!sent)
      break;
    if (server->handle_one(sv[1]) != VhostUserServer::Step::ok)
      break;
    if (req == vhost::GET_VRING_BASE && !(mode & 0x01)) {
      vhost::Message reply;
      std::string err;
      pollfd p{sv[0], POLLIN, 0};
      if (poll(&p, 1, 0) == 1 && vhost::recv_message(sv[0], reply, err) == vhost::RecvStatus::ok &&
          reply.size == 8) {
        vhost::VringStateWire st;
        std::memcpy(&st, reply.payload, 8);
        if (st.index < 3)
          last_base[st.index] = st.num;
      }
    }
    drain(sv[0]);
    // Without the guest thread, bit 4 of the mode posts one request after the message, so that
    // this target's inputs reach the data plane too.
    if (!race && (mode & 0x10))
      post_one(fx, guest_kick, posted);
  }
  if (race) {
    // Give the guest's requests a moment on rings the messages left running.
    uint64_t before = fx.stats->requests(FUSE_STATFS);
    for (int i = 0; i < 50 && fx.stats->requests(FUSE_STATFS) == before; ++i)
      std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  stop = true;
  if (guest.joinable())
    guest.join();
  server.reset();
  close(sv[0]);
  close(sv[1]);
  close(guest_kick);
  close(guest_call);
  return 0;
}

} // namespace kab::dpu::fuzz
