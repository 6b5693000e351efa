// A vhost-user front-end in the test process: shares a memfd as guest memory, drives the
// back-end over a socketpair, and places requests in split virtqueues like a guest driver.
#pragma once

#include "helpers.h"
#include "vhost_user.h"
#include "virtqueue.h"

#include <catch2/catch.hpp>

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

namespace kab::dpu::test {

struct FakeFrontEnd {
  static constexpr uint64_t k_gpa = 0x40000000;
  static constexpr uint64_t k_uaddr = 0x7f1234000000;
  static constexpr size_t k_size = 8 << 20;
  static constexpr uint32_t k_num = 64;

  int sock = -1;    // our end
  int server = -1;  // the back-end's end
  int memfd = -1;
  uint8_t* ram = nullptr;
  struct Queue {
    uint64_t desc = 0, avail = 0, used = 0;
    int kick = -1, call = -1;
    uint16_t avail_idx = 0, used_seen = 0;
  };
  Queue q[2];
  uint64_t data_next = k_gpa + 0x100000;

  FakeFrontEnd() {
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    sock = sv[0];
    server = sv[1];
    memfd = memfd_create("guest-ram", MFD_CLOEXEC);
    REQUIRE(ftruncate(memfd, k_size) == 0);
    ram = static_cast<uint8_t*>(mmap(nullptr, k_size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0));
    REQUIRE(ram != MAP_FAILED);
    for (int i = 0; i < 2; ++i) {
      q[i].desc = k_gpa + 0x10000 * (i + 1);
      q[i].avail = q[i].desc + 0x1000;
      q[i].used = q[i].desc + 0x2000;
      q[i].kick = eventfd(0, EFD_CLOEXEC);
      q[i].call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    }
  }
  ~FakeFrontEnd() {
    hang_up();
    if (server >= 0)
      close(server);
    munmap(ram, k_size);
    close(memfd);
    for (auto& x : q) {
      close(x.kick);
      close(x.call);
    }
  }
  void hang_up() {
    if (sock >= 0)
      close(sock);
    sock = -1;
  }
  uint8_t* at(uint64_t gpa) { return ram + (gpa - k_gpa); }

  // Sends a message; returns the reply payload when one is expected.
  Bytes send(uint32_t req, const Bytes& payload, std::vector<int> fds = {}, bool reply = false,
             bool need_ack = false) {
    uint32_t flags = vhost::k_flag_version | (need_ack ? vhost::k_flag_need_reply : 0);
    REQUIRE(vhost::send_message(sock, req, flags, payload.data(), payload.size(), fds.data(),
                                fds.size()));
    if (!reply && !need_ack)
      return {};
    auto m = std::make_unique<vhost::Message>();
    std::string err;
    REQUIRE(vhost::recv_message(sock, *m, err) == vhost::RecvStatus::ok);
    CHECK(m->request == req);
    CHECK((m->flags & vhost::k_flag_reply) != 0);
    return Bytes(m->payload, m->payload + m->size);
  }
  uint64_t send_u64(uint32_t req, uint64_t v, bool need_ack = false, std::vector<int> fds = {}) {
    Bytes b;
    append(b, v);
    Bytes r = send(req, b, fds, false, need_ack);
    uint64_t out = 0;
    if (!r.empty())
      std::memcpy(&out, r.data(), std::min<size_t>(8, r.size()));
    return out;
  }
  uint64_t get_u64(uint32_t req) {
    Bytes r = send(req, {}, {}, true);
    REQUIRE(r.size() == 8);
    uint64_t v;
    std::memcpy(&v, r.data(), 8);
    return v;
  }

  void setup(bool event_idx = true, bool indirect = true) {
    uint64_t f = get_u64(vhost::GET_FEATURES);
    if (!event_idx)
      f &= ~(1ull << vhost::k_f_event_idx);
    if (!indirect)
      f &= ~(1ull << vhost::k_f_indirect_desc);
    send_u64(vhost::SET_FEATURES, f);
    uint64_t pf = get_u64(vhost::GET_PROTOCOL_FEATURES);
    REQUIRE((pf & (1ull << vhost::k_pf_reply_ack)) != 0);
    REQUIRE(send_u64(vhost::SET_PROTOCOL_FEATURES, pf) == 0);
    REQUIRE(send_u64(vhost::SET_OWNER, 0, true) == 0);
    Bytes mt;
    uint32_t n = 1, pad = 0;
    append(mt, n);
    append(mt, pad);
    vhost::MemRegionWire r{k_gpa, k_size, k_uaddr, 0};
    append(mt, r);
    REQUIRE(send(vhost::SET_MEM_TABLE, mt, {memfd}, false, true) == Bytes(8, 0));
    for (uint32_t i = 0; i < 2; ++i) {
      Bytes s;
      append(s, vhost::VringStateWire{i, k_num});
      REQUIRE(send(vhost::SET_VRING_NUM, s, {}, false, true) == Bytes(8, 0));
      vhost::VringAddrWire a{i, 0, uaddr(q[i].desc), uaddr(q[i].used), uaddr(q[i].avail), 0};
      Bytes ab;
      append(ab, a);
      REQUIRE(send(vhost::SET_VRING_ADDR, ab, {}, false, true) == Bytes(8, 0));
      Bytes base;
      append(base, vhost::VringStateWire{i, 0});
      send(vhost::SET_VRING_BASE, base);
      REQUIRE(send_u64(vhost::SET_VRING_CALL, i, true, {q[i].call}) == 0);
      REQUIRE(send_u64(vhost::SET_VRING_KICK, i, true, {q[i].kick}) == 0);
      Bytes en;
      append(en, vhost::VringStateWire{i, 1});
      REQUIRE(send(vhost::SET_VRING_ENABLE, en, {}, false, true) == Bytes(8, 0));
    }
  }
  static uint64_t uaddr(uint64_t gpa) { return gpa - k_gpa + k_uaddr; }

  uint64_t alloc(size_t n) {
    uint64_t a = data_next;
    data_next += (n + 4095) & ~size_t(4095);
    REQUIRE(data_next < k_gpa + k_size);
    return a;
  }
  void set_desc(uint64_t table, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                uint16_t next) {
    VringDesc d{addr, len, flags, next};
    std::memcpy(at(table + 16 * i), &d, 16);
  }
  void publish(int qi, uint16_t head) {
    auto& x = q[qi];
    std::memcpy(at(x.avail + 4 + 2 * (x.avail_idx % k_num)), &head, 2);
    ++x.avail_idx;
    __atomic_store_n(reinterpret_cast<uint16_t*>(at(x.avail + 2)), x.avail_idx, __ATOMIC_RELEASE);
    uint64_t one = 1;
    REQUIRE(write(x.kick, &one, 8) == 8);
  }

  // Places a request: readable bytes split into `pieces` descriptors, then one writable buffer.
  // With `indirect`, the chain goes through an indirect table. Returns the writable GPA.
  uint64_t submit(int qi, const Bytes& readable, uint32_t writable, int pieces = 2,
                  bool indirect = false, uint16_t head = 0) {
    uint64_t rd = alloc(readable.size());
    std::memcpy(at(rd), readable.data(), readable.size());
    uint64_t wr = writable ? alloc(writable) : 0;
    uint64_t table = indirect ? alloc(16 * 64) : q[qi].desc;
    uint16_t i = indirect ? 0 : head;
    size_t off = 0;
    for (int p = 0; p < pieces; ++p) {
      size_t len = p + 1 == pieces ? readable.size() - off : readable.size() / pieces;
      bool last = p + 1 == pieces && writable == 0;
      set_desc(table, i, rd + off, uint32_t(len), last ? 0 : k_desc_f_next, uint16_t(i + 1));
      off += len;
      ++i;
    }
    if (writable)
      set_desc(table, i, wr, writable, k_desc_f_write, 0);
    if (indirect) {
      set_desc(q[qi].desc, head, table, 16 * (pieces + (writable ? 1 : 0)), k_desc_f_indirect, 0);
    }
    publish(qi, head);
    return wr;
  }

  // Waits for the next used element of queue qi; returns (id, len).
  std::pair<uint32_t, uint32_t> wait_used(int qi, int timeout_ms = 5000) {
    auto& x = q[qi];
    for (int waited = 0; waited < timeout_ms; waited += 1) {
      uint16_t idx = __atomic_load_n(reinterpret_cast<uint16_t*>(at(x.used + 2)), __ATOMIC_ACQUIRE);
      if (idx != x.used_seen) {
        uint32_t id, len;
        std::memcpy(&id, at(x.used + 4 + 8 * (x.used_seen % k_num)), 4);
        std::memcpy(&len, at(x.used + 8 + 8 * (x.used_seen % k_num)), 4);
        ++x.used_seen;
        // Event idx: ask for a notification on every completion.
        uint16_t ue = x.used_seen;
        std::memcpy(at(x.avail + 4 + 2 * k_num), &ue, 2);
        return {id, len};
      }
      pollfd p{x.call, POLLIN, 0};
      poll(&p, 1, 1);
      uint64_t v;
      if (read(x.call, &v, 8)) {
      }
    }
    FAIL("no used element on queue " << qi);
    return {0, 0};
  }

  // A full FUSE round trip on request queue 1.
  FuseReply fuse(uint32_t opcode, uint64_t nodeid, const Bytes& args, uint32_t out_size = 4096,
                 bool indirect = false) {
    data_next = k_gpa + 0x100000;  // synchronous: earlier buffers are free again
    Bytes req;
    fuse_in_header h{};
    h.len = uint32_t(sizeof h + args.size());
    h.opcode = opcode;
    h.unique = ++unique;
    h.nodeid = nodeid;
    append(req, h);
    req.insert(req.end(), args.begin(), args.end());
    uint64_t wr = submit(1, req, out_size, 2, indirect);
    auto [id, len] = wait_used(1);
    FuseReply r;
    r.res.reply_len = len;
    if (len >= sizeof(fuse_out_header)) {
      std::memcpy(&r.oh, at(wr), sizeof r.oh);
      r.body.assign(at(wr) + sizeof r.oh, at(wr) + len);
      CHECK(r.oh.unique == unique);
      CHECK(r.oh.len == len);
    }
    return r;
  }
  uint64_t unique = 100;
};

} // namespace kab::dpu::test
