// kab-dpu-bench: a minimal vhost-user-fs front-end that drives any virtio-fs back-end
// (kab-dpu, virtiofsd) directly, without a guest: it shares a memfd as guest memory, sets up the
// hiprio and one request queue, negotiates FUSE INIT, creates a file and streams WRITE (or READ)
// requests of --bs bytes through indirect descriptor chains, --depth in flight, with an optional
// FSYNC after every --fsync-every writes. Prints one JSON line with MiB/s and IOPS.
// This measures the back-end alone: the guest kernel and the hypervisor are not in the loop.
#include "vhost_user.h"
#include "virtqueue.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <linux/fuse.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <iostream>
#include <random>
#include <stdexcept>

using namespace kab::dpu;
namespace vu = kab::dpu::vhost;

namespace {

struct FrontEnd {
  static constexpr uint64_t k_gpa = 0x100000000ull;
  static constexpr uint64_t k_uaddr = 0x7e0000000000ull;
  static constexpr uint32_t k_num = 1024;  // as libvirt configures virtiofs (queue='1024')
  size_t size;
  int sock = -1, memfd = -1;
  uint8_t* ram = nullptr;
  struct Q {
    uint64_t desc, avail, used;
    int kick, call;
    uint16_t avail_idx = 0, used_seen = 0;
  } q[2];
  bool indirect = false;

  FrontEnd(const std::string& path, size_t mem) : size(mem) {
    sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    for (int i = 0; connect(sock, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0; ++i) {
      if (i > 100)
        throw std::runtime_error("connect " + path + ": " + std::strerror(errno));
      usleep(50000);
    }
    memfd = memfd_create("bench-ram", MFD_CLOEXEC);
    if (ftruncate(memfd, off_t(size)) != 0)
      throw std::runtime_error("ftruncate");
    ram = static_cast<uint8_t*>(mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0));
    for (int i = 0; i < 2; ++i) {
      q[i].desc = k_gpa + 0x10000 * (i + 1);
      q[i].avail = q[i].desc + 0x4000;  // after 1024 descriptors
      q[i].used = q[i].desc + 0x6000;
      q[i].kick = eventfd(0, EFD_CLOEXEC);
      q[i].call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    }
  }
  uint8_t* at(uint64_t gpa) { return ram + (gpa - k_gpa); }
  static uint64_t ua(uint64_t gpa) { return gpa - k_gpa + k_uaddr; }

  std::vector<uint8_t> msg(uint32_t req, const void* p, size_t n, std::vector<int> fds = {},
                           bool reply = false) {
    if (!vu::send_message(sock, req, vu::k_flag_version, p, n, fds.data(), fds.size()))
      throw std::runtime_error(std::string("send ") + vu::request_name(req));
    if (!reply)
      return {};
    auto m = std::make_unique<vu::Message>();
    std::string err;
    if (vu::recv_message(sock, *m, err) != vu::RecvStatus::ok)
      throw std::runtime_error(std::string("reply to ") + vu::request_name(req) + ": " + err);
    return std::vector<uint8_t>(m->payload, m->payload + m->size);
  }
  uint64_t get(uint32_t req) {
    auto r = msg(req, nullptr, 0, {}, true);
    uint64_t v = 0;
    std::memcpy(&v, r.data(), std::min<size_t>(8, r.size()));
    return v;
  }
  void set(uint32_t req, uint64_t v, std::vector<int> fds = {}) { msg(req, &v, 8, fds); }

  void setup() {
    uint64_t f = get(vu::GET_FEATURES);
    uint64_t want = (1ull << vu::k_f_version_1) | (1ull << vu::k_f_protocol_features) |
                    (1ull << vu::k_f_indirect_desc);
    f &= want;
    indirect = f & (1ull << vu::k_f_indirect_desc);
    if (!indirect)
      throw std::runtime_error("back-end does not offer indirect descriptors");
    bool pf = f & (1ull << vu::k_f_protocol_features);
    if (pf) {
      uint64_t p = get(vu::GET_PROTOCOL_FEATURES);
      set(vu::SET_PROTOCOL_FEATURES, p & (1ull << vu::k_pf_mq));
    }
    msg(vu::SET_OWNER, nullptr, 0);
    set(vu::SET_FEATURES, f);
    struct {
      uint32_t n, pad;
      vu::MemRegionWire r;
    } mt{1, 0, {k_gpa, size, k_uaddr, 0}};
    msg(vu::SET_MEM_TABLE, &mt, sizeof mt, {memfd});
    for (uint32_t i = 0; i < 2; ++i) {
      vu::VringStateWire s{i, k_num};
      msg(vu::SET_VRING_NUM, &s, sizeof s);
      vu::VringStateWire b{i, 0};
      msg(vu::SET_VRING_BASE, &b, sizeof b);
      vu::VringAddrWire a{i, 0, ua(q[i].desc), ua(q[i].used), ua(q[i].avail), 0};
      msg(vu::SET_VRING_ADDR, &a, sizeof a);
      set(vu::SET_VRING_KICK, i, {q[i].kick});
      set(vu::SET_VRING_CALL, i, {q[i].call});
      if (pf) {
        vu::VringStateWire e{i, 1};
        msg(vu::SET_VRING_ENABLE, &e, sizeof e);
      }
    }
  }

  void desc(uint64_t table, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    VringDesc d{addr, len, flags, next};
    std::memcpy(at(table + 16 * i), &d, 16);
  }
  // Publishes head `slot` on the request queue pointing at an indirect table.
  void publish(uint16_t slot, uint64_t table, uint32_t ndesc) {
    auto& x = q[1];
    desc(x.desc, slot, table, 16 * ndesc, k_desc_f_indirect, 0);
    std::memcpy(at(x.avail + 4 + 2 * (x.avail_idx % k_num)), &slot, 2);
    ++x.avail_idx;
    __atomic_store_n(reinterpret_cast<uint16_t*>(at(x.avail + 2)), x.avail_idx, __ATOMIC_RELEASE);
    uint64_t one = 1;
    if (write(x.kick, &one, 8) != 8)
      throw std::runtime_error("kick");
  }
  // Returns completed heads (blocking until at least one).
  void reap(std::vector<std::pair<uint16_t, uint32_t>>& out) {
    auto& x = q[1];
    out.clear();
    int idle = 0;
    for (;;) {
      uint16_t idx = __atomic_load_n(reinterpret_cast<uint16_t*>(at(x.used + 2)), __ATOMIC_ACQUIRE);
      while (x.used_seen != idx) {
        uint32_t id, len;
        std::memcpy(&id, at(x.used + 4 + 8 * (x.used_seen % k_num)), 4);
        std::memcpy(&len, at(x.used + 8 + 8 * (x.used_seen % k_num)), 4);
        out.emplace_back(uint16_t(id), len);
        ++x.used_seen;
      }
      if (!out.empty())
        return;
      pollfd p{x.call, POLLIN, 0};
      // The used index is re-read after every wake-up or timeout; only a long silence is fatal.
      if (poll(&p, 1, 100) == 0 && ++idle > 100)
        throw std::runtime_error(
            "back-end did not complete a request in 10 s (avail idx " +
            std::to_string(x.avail_idx) + ", used idx " + std::to_string(idx) + ", seen " +
            std::to_string(x.used_seen) + ")");
      uint64_t v;
      if (read(x.call, &v, 8) < 0) {
      }
    }
  }
};

struct Slot {
  uint64_t base;   // request header area
  uint64_t data;   // data pages
  uint64_t table;  // indirect table
  uint64_t reply;  // reply header area
};

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"kab-dpu-bench: drive a vhost-user-fs back-end without a guest"};
  std::string sock;
  uint32_t bs = 1 << 20;
  unsigned depth = 1, fsync_every = 1;
  double seconds = 5;
  uint64_t file_size = 64ull << 20;
  bool do_read = false;
  std::string label = "backend";
  app.add_option("--socket", sock, "back-end socket")->required();
  app.add_option("--bs", bs, "bytes per request")->check(CLI::Range(4096u, 1u << 20));
  app.add_option("--depth", depth, "requests in flight")->check(CLI::Range(1u, 64u));
  app.add_option("--fsync-every", fsync_every, "FSYNC after this many writes (0: never)");
  app.add_option("--seconds", seconds, "duration");
  app.add_option("--file-size", file_size, "bytes of the file written at random offsets");
  app.add_flag("--read", do_read, "READ instead of WRITE (file written first)");
  app.add_option("--label", label, "name printed in the result");
  CLI11_PARSE(app, argc, argv);
  if (fsync_every && depth != 1) {
    std::cerr << "kab-dpu-bench: --fsync-every needs --depth 1\n";
    return 2;
  }
  try {
    size_t slot_bytes = size_t(bs) + 3 * 4096 + 16 * 512;
    FrontEnd fe(sock, 0x100000 + slot_bytes * (depth + 2) + (1 << 20));
    fe.setup();
    std::vector<Slot> slots(depth + 1);
    uint64_t next = FrontEnd::k_gpa + 0x100000;
    for (auto& s : slots) {
      s.base = next;
      s.reply = next + 4096;
      s.table = next + 8192;
      s.data = next + 12288 + 16 * 512;
      next += slot_bytes;
    }
    uint64_t unique = 1;
    std::vector<std::pair<uint16_t, uint32_t>> done;
    // Synchronous request on slot `depth` (the spare one): readable args, writable reply.
    auto call = [&](uint32_t op, uint64_t nodeid, const void* args, size_t n, uint32_t out) {
      Slot& s = slots[depth];
      fuse_in_header h{};
      h.len = uint32_t(sizeof h + n);
      h.opcode = op;
      h.unique = unique++;
      h.nodeid = nodeid;
      std::memcpy(fe.at(s.base), &h, sizeof h);
      std::memcpy(fe.at(s.base + sizeof h), args, n);
      fe.desc(s.table, 0, s.base, h.len, k_desc_f_next, 1);
      fe.desc(s.table, 1, s.reply, out, k_desc_f_write, 0);
      fe.publish(uint16_t(depth), s.table, 2);
      std::vector<std::pair<uint16_t, uint32_t>> mine;  // `done` may be being iterated
      fe.reap(mine);
      fuse_out_header oh;
      std::memcpy(&oh, fe.at(s.reply), sizeof oh);
      if (oh.error)
        throw std::runtime_error("FUSE opcode " + std::to_string(op) + " failed: " +
                                 std::strerror(-oh.error));
      return fe.at(s.reply + sizeof oh);
    };
    fuse_init_in ii{};
    ii.major = 7;
    ii.minor = 31;
    ii.max_readahead = 1 << 20;
    ii.flags = FUSE_BIG_WRITES | FUSE_MAX_PAGES | FUSE_ASYNC_READ;
    call(FUSE_INIT, 0, &ii, sizeof ii, 4096);
    std::string name = "kab-bench-" + std::to_string(getpid());
    std::vector<uint8_t> cargs(sizeof(fuse_create_in) + name.size() + 1, 0);
    fuse_create_in ci{};
    ci.flags = O_RDWR | O_CREAT | O_TRUNC;
    ci.mode = 0644;
    std::memcpy(cargs.data(), &ci, sizeof ci);
    std::memcpy(cargs.data() + sizeof ci, name.c_str(), name.size() + 1);
    uint8_t* r = call(FUSE_CREATE, FUSE_ROOT_ID, cargs.data(), cargs.size(), 4096);
    fuse_entry_out e;
    fuse_open_out o;
    std::memcpy(&e, r, sizeof e);
    std::memcpy(&o, r + sizeof e, sizeof o);
    for (auto& s : slots)
      for (uint32_t i = 0; i < bs; i += 4096)
        fe.at(s.data)[i] = uint8_t(i >> 12);

    std::mt19937_64 rng(42);
    uint64_t blocks = std::max<uint64_t>(1, file_size / bs);
    auto submit_io = [&](uint16_t slot, bool write, uint64_t off) {
      Slot& s = slots[slot];
      fuse_in_header h{};
      h.opcode = write ? FUSE_WRITE : FUSE_READ;
      h.unique = unique++;
      h.nodeid = e.nodeid;
      uint32_t nd = 0;
      if (write) {
        fuse_write_in wi{};
        wi.fh = o.fh;
        wi.offset = off;
        wi.size = bs;
        h.len = uint32_t(sizeof h + sizeof wi + bs);
        std::memcpy(fe.at(s.base), &h, sizeof h);
        std::memcpy(fe.at(s.base + sizeof h), &wi, sizeof wi);
        fe.desc(s.table, nd, s.base, sizeof h, k_desc_f_next, uint16_t(nd + 1)), ++nd;
        fe.desc(s.table, nd, s.base + sizeof h, sizeof wi, k_desc_f_next, uint16_t(nd + 1)), ++nd;
        for (uint32_t p = 0; p < bs; p += 4096)  // one descriptor per page, like the kernel
          fe.desc(s.table, nd, s.data + p, std::min<uint32_t>(4096, bs - p), k_desc_f_next,
                  uint16_t(nd + 1)),
              ++nd;
        fe.desc(s.table, nd, s.reply, sizeof(fuse_out_header) + sizeof(fuse_write_out),
                k_desc_f_write, 0), ++nd;
      } else {
        fuse_read_in ri{};
        ri.fh = o.fh;
        ri.offset = off;
        ri.size = bs;
        h.len = uint32_t(sizeof h + sizeof ri);
        std::memcpy(fe.at(s.base), &h, sizeof h);
        std::memcpy(fe.at(s.base + sizeof h), &ri, sizeof ri);
        fe.desc(s.table, nd, s.base, sizeof h, k_desc_f_next, uint16_t(nd + 1)), ++nd;
        fe.desc(s.table, nd, s.base + sizeof h, sizeof ri, k_desc_f_next, uint16_t(nd + 1)), ++nd;
        fe.desc(s.table, nd, s.reply, sizeof(fuse_out_header), k_desc_f_write | k_desc_f_next,
                uint16_t(nd + 1)), ++nd;
        for (uint32_t p = 0; p < bs; p += 4096)
          fe.desc(s.table, nd, s.data + p, std::min<uint32_t>(4096, bs - p),
                  uint16_t(k_desc_f_write | (p + 4096 < bs ? k_desc_f_next : 0)), uint16_t(nd + 1)),
              ++nd;
      }
      fe.publish(slot, s.table, nd);
    };
    if (do_read) {  // lay the file out first
      for (uint64_t b = 0; b < blocks; ++b) {
        submit_io(0, true, b * bs);
        fe.reap(done);
      }
    }
    using clock = std::chrono::steady_clock;
    auto t0 = clock::now();
    auto end = t0 + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(seconds));
    uint64_t ios = 0, since_fsync = 0;
    unsigned inflight = 0;
    std::vector<uint16_t> free_slots;
    for (unsigned i = 0; i < depth; ++i)
      free_slots.push_back(uint16_t(i));
    while (clock::now() < end || inflight) {
      while (!free_slots.empty() && clock::now() < end) {
        uint16_t s = free_slots.back();
        free_slots.pop_back();
        submit_io(s, !do_read, (rng() % blocks) * bs);
        ++inflight;
      }
      fe.reap(done);
      for (auto [id, len] : done) {
        fuse_out_header oh;
        std::memcpy(&oh, fe.at(slots[id].reply), sizeof oh);
        if (oh.error)
          throw std::runtime_error(std::string("I/O failed: ") + std::strerror(-oh.error));
        free_slots.push_back(id);
        --inflight;
        ++ios;
        if (fsync_every && ++since_fsync == fsync_every) {
          since_fsync = 0;
          fuse_fsync_in fi{o.fh, 0, 0};
          call(FUSE_FSYNC, e.nodeid, &fi, sizeof fi, 4096);
        }
      }
    }
    double secs = std::chrono::duration<double>(clock::now() - t0).count();
    std::vector<uint8_t> un(name.begin(), name.end());
    un.push_back(0);
    fuse_release_in rel{};
    rel.fh = o.fh;
    call(FUSE_RELEASE, e.nodeid, &rel, sizeof rel, 4096);
    call(FUSE_UNLINK, FUSE_ROOT_ID, un.data(), un.size(), 4096);
    nlohmann::json j{{"label", label},      {"op", do_read ? "read" : "write"},
                     {"bs", bs},            {"depth", depth},
                     {"fsync_every", fsync_every}, {"seconds", secs},
                     {"ios", ios},          {"iops", double(ios) / secs},
                     {"mib_s", double(ios) * bs / secs / 1048576.0}};
    std::cout << j.dump() << std::endl;
  } catch (const std::exception& ex) {
    std::cerr << "kab-dpu-bench: error: " << ex.what() << "\n";
    return 1;
  }
  return 0;
}
