#include "fake_front_end.h"
#include "stats.h"
#include "vhost_user_server.h"
#include "virtio_fs_device.h"

#include <catch2/catch.hpp>

#include <fcntl.h>

#include <filesystem>
#include <fstream>
#include <thread>

using namespace kab::dpu;
using namespace kab::dpu::test;

namespace {

struct Rig {
  TempDir dir;
  Stats stats{4};
  FuseServer fuse;
  VirtioFsDevice device;
  FakeFrontEnd fe;
  std::unique_ptr<VhostUserServer> server;
  std::thread thread;
  int rc = -1;

  explicit Rig(DpuModelConfig model = {}, bool writeback = true)
      : fuse(FuseOptions{dir.str(), writeback}), device(fuse, stats, model.latency_us) {
    ServerOptions so;
    so.tag = "kabtag";
    so.request_queues = 1;
    so.model = model;
    server = std::make_unique<VhostUserServer>(so, device, stats);
    thread = std::thread([this] { rc = server->serve(fe.server, -1, [] { return true; }); });
  }
  int finish() {
    fe.hang_up();
    if (thread.joinable())
      thread.join();
    return rc;
  }
  ~Rig() { finish(); }
};

void init_fuse(FakeFrontEnd& fe) {
  fuse_init_in in{};
  in.major = 7;
  in.minor = 38;
  in.flags = FUSE_BIG_WRITES | FUSE_MAX_PAGES | FUSE_WRITEBACK_CACHE;
  Bytes b;
  append(b, in);
  auto r = fe.fuse(FUSE_INIT, 0, b);
  REQUIRE(r.oh.error == 0);
}

} // namespace

TEST_CASE("vhost-user control plane", "[dpu][vhost]") {
  Rig rig;
  auto& fe = rig.fe;
  SECTION("features, queue count and config space") {
    uint64_t f = fe.get_u64(vhost::GET_FEATURES);
    CHECK((f & (1ull << vhost::k_f_version_1)) != 0);
    CHECK((f & (1ull << vhost::k_f_protocol_features)) != 0);
    CHECK((f & (1ull << vhost::k_f_indirect_desc)) != 0);
    CHECK((f & (1ull << vhost::k_f_event_idx)) != 0);
    uint64_t pf = fe.get_u64(vhost::GET_PROTOCOL_FEATURES);
    CHECK((pf & (1ull << vhost::k_pf_config)) != 0);
    CHECK((pf & (1ull << vhost::k_pf_mq)) != 0);
    fe.send_u64(vhost::SET_PROTOCOL_FEATURES, pf);
    CHECK(fe.get_u64(vhost::GET_QUEUE_NUM) >= 2);
    Bytes req;
    uint32_t hdr[3] = {0, 40, 0};
    append(req, hdr);
    req.resize(12 + 40);
    Bytes cfg = fe.send(vhost::GET_CONFIG, req, {}, true);
    REQUIRE(cfg.size() == 12 + 40);
    CHECK(std::string(reinterpret_cast<char*>(cfg.data() + 12)) == "kabtag");
    uint32_t nq;
    std::memcpy(&nq, cfg.data() + 12 + 36, 4);
    CHECK(nq == 1);
    // a partial read at an offset
    uint32_t hdr2[3] = {36, 4, 0};
    req.clear();
    append(req, hdr2);
    req.resize(16);
    cfg = fe.send(vhost::GET_CONFIG, req, {}, true);
    REQUIRE(cfg.size() == 16);
    std::memcpy(&nq, cfg.data() + 12, 4);
    CHECK(nq == 1);
  }
  SECTION("REPLY_ACK reports failures; unsupported requests do not end the session") {
    fe.send_u64(vhost::SET_PROTOCOL_FEATURES, 1ull << vhost::k_pf_reply_ack);
    CHECK(fe.send_u64(vhost::SET_LOG_BASE, 0, true) != 0);
    CHECK(fe.send_u64(77, 0, true) != 0);
    Bytes s;
    append(s, vhost::VringStateWire{200, 64});
    CHECK(fe.send(vhost::SET_VRING_NUM, s, {}, false, true) != Bytes(8, 0));
    s.clear();
    append(s, vhost::VringStateWire{0, 100});  // not a power of two
    CHECK(fe.send(vhost::SET_VRING_NUM, s, {}, false, true) != Bytes(8, 0));
    CHECK(fe.send_u64(vhost::SET_VRING_KICK, 0, true) != 0);  // neither fd nor NOFD flag
    Bytes mt(8 + 32, 0);
    uint32_t n = 1;
    std::memcpy(mt.data(), &n, 4);
    CHECK(fe.send(vhost::SET_MEM_TABLE, mt, {}, false, true) != Bytes(8, 0));  // fd missing
    CHECK(fe.get_u64(vhost::GET_FEATURES) != 0);
  }
  SECTION("the back-end request channel is accepted (UML needs it to probe)") {
    uint64_t pf = fe.get_u64(vhost::GET_PROTOCOL_FEATURES);
    REQUIRE((pf & (1ull << vhost::k_pf_backend_req)) != 0);
    fe.send_u64(vhost::SET_PROTOCOL_FEATURES, pf);
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    CHECK(fe.send(vhost::SET_BACKEND_REQ_FD, {}, {sv[1]}, false, true) == Bytes(8, 0));
    CHECK(fe.send(vhost::SET_BACKEND_REQ_FD, {}, {}, false, true) != Bytes(8, 0));  // no fd
    close(sv[0]);
    close(sv[1]);
  }
  SECTION("a clean disconnect ends serve() with 0") {
    CHECK(rig.finish() == 0);
  }
  SECTION("a bad protocol version is an error") {
    uint32_t hdr[3] = {vhost::GET_FEATURES, 2, 0};
    REQUIRE(write(fe.sock, hdr, sizeof hdr) == sizeof hdr);
    rig.thread.join();
    CHECK(rig.rc == 1);
  }
}

TEST_CASE("vhost-user data plane serves FUSE", "[dpu][vhost]") {
  for (int cores : {0, 2}) {
    DYNAMIC_SECTION("cores " << cores) {
      DpuModelConfig model;
      model.cores = unsigned(cores);
      Rig rig(model);
      auto& fe = rig.fe;
      fe.setup();
      init_fuse(fe);

      // create + 1 MiB write through many descriptors + read back
      fuse_create_in ci{};
      ci.flags = O_RDWR;
      ci.mode = 0644;
      Bytes b;
      append(b, ci);
      append_str(b, "big.dat");
      auto cr = fe.fuse(FUSE_CREATE, FUSE_ROOT_ID, b, 4096, true);
      REQUIRE(cr.oh.error == 0);
      fuse_entry_out e;
      fuse_open_out o;
      std::memcpy(&e, cr.body.data(), sizeof e);
      std::memcpy(&o, cr.body.data() + sizeof e, sizeof o);

      Bytes data(1 << 20);
      for (size_t i = 0; i < data.size(); ++i)
        data[i] = uint8_t(i * 7 + i / 4096);
      fuse_write_in wi{};
      wi.fh = o.fh;
      wi.size = uint32_t(data.size());
      Bytes wb;
      append(wb, wi);
      wb.insert(wb.end(), data.begin(), data.end());
      auto wr = fe.fuse(FUSE_WRITE, e.nodeid, wb);
      REQUIRE(wr.oh.error == 0);
      CHECK(wr.as<fuse_write_out>().size == data.size());

      fuse_fsync_in fi{o.fh, 0, 0};
      Bytes fb;
      append(fb, fi);
      CHECK(fe.fuse(FUSE_FSYNC, e.nodeid, fb).oh.error == 0);

      fuse_read_in ri{};
      ri.fh = o.fh;
      ri.size = uint32_t(data.size());
      Bytes rb;
      append(rb, ri);
      auto rd = fe.fuse(FUSE_READ, e.nodeid, rb, uint32_t(data.size() + 16));
      REQUIRE(rd.oh.error == 0);
      CHECK(rd.body == data);

      std::ifstream f(rig.dir.path / "big.dat", std::ios::binary);
      Bytes on_disk((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      CHECK(on_disk == data);

      // FORGET on the hiprio queue gets no reply but completes its chain
      fuse_forget_in fg{1};
      Bytes fgb;
      fuse_in_header h{};
      h.len = sizeof h + sizeof fg;
      h.opcode = FUSE_FORGET;
      h.nodeid = e.nodeid;
      append(fgb, h);
      append(fgb, fg);
      fe.submit(0, fgb, 0, 1);
      auto [id, len] = fe.wait_used(0);
      CHECK(len == 0);

      CHECK(rig.stats.requests(FUSE_WRITE) == 1);
      CHECK(rig.stats.bytes_written() == data.size());
      CHECK(rig.stats.bytes_read() == data.size());
      CHECK(rig.finish() == 0);
    }
  }
}

TEST_CASE("vhost-user data plane survives malformed chains", "[dpu][vhost][security]") {
  Rig rig;
  auto& fe = rig.fe;
  fe.setup();
  init_fuse(fe);
  auto& q = fe.q[1];
  SECTION("descriptor outside guest memory") {
    fe.set_desc(q.desc, 5, 0x1000, 64, 0, 0);
    fe.publish(1, 5);
    auto [id, len] = fe.wait_used(1);
    CHECK(id == 5);
    CHECK(len == 0);
  }
  SECTION("descriptor loop") {
    uint64_t buf = fe.alloc(64);
    fe.set_desc(q.desc, 3, buf, 64, k_desc_f_next, 4);
    fe.set_desc(q.desc, 4, buf, 64, k_desc_f_next, 3);
    fe.publish(1, 3);
    auto [id, len] = fe.wait_used(1);
    CHECK(id == 3);
    CHECK(len == 0);
  }
  SECTION("head index out of range") {
    fe.publish(1, 1000);
    // nothing to complete for a head that does not exist; the next request still works
    Bytes b;
    auto r = fe.fuse(FUSE_STATFS, FUSE_ROOT_ID, b);
    CHECK(r.oh.error == 0);
  }
  SECTION("short FUSE header") {
    fe.submit(1, Bytes(10, 0), 64, 1);
    auto [id, len] = fe.wait_used(1);
    CHECK(len == 0);
  }
  auto r = fe.fuse(FUSE_STATFS, FUSE_ROOT_ID, {});
  CHECK(r.oh.error == 0);
  CHECK(rig.stats.to_json({})["malformed_requests"].get<uint64_t>() >= 1);
  CHECK(rig.finish() == 0);
}

TEST_CASE("GET_VRING_BASE stops a queue and reports its index", "[dpu][vhost]") {
  Rig rig;
  auto& fe = rig.fe;
  fe.setup();
  init_fuse(fe);
  fe.fuse(FUSE_STATFS, FUSE_ROOT_ID, {});
  Bytes s;
  append(s, vhost::VringStateWire{1, 0});
  Bytes r = fe.send(vhost::GET_VRING_BASE, s, {}, true);
  REQUIRE(r.size() == 8);
  vhost::VringStateWire st;
  std::memcpy(&st, r.data(), 8);
  CHECK(st.index == 1);
  CHECK(st.num == 2);
  // restart from that base
  Bytes base;
  append(base, vhost::VringStateWire{1, st.num});
  fe.send(vhost::SET_VRING_BASE, base);
  fe.send_u64(vhost::SET_VRING_KICK, 1, false, {fe.q[1].kick});
  CHECK(fe.fuse(FUSE_STATFS, FUSE_ROOT_ID, {}).oh.error == 0);
  CHECK(rig.finish() == 0);
}

TEST_CASE("DPU model knobs act on the data plane", "[dpu][vhost][model]") {
  SECTION("per-request latency shows in the statistics") {
    DpuModelConfig model;
    model.latency_us = 3000;
    Rig rig(model);
    rig.fe.setup();
    init_fuse(rig.fe);
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 5; ++i)
      CHECK(rig.fe.fuse(FUSE_STATFS, FUSE_ROOT_ID, {}).oh.error == 0);
    CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(15));
    auto j = rig.stats.to_json({});
    CHECK(j["latency_us"]["STATFS"]["mean_us"].get<double>() >= 3000);
    CHECK(rig.finish() == 0);
  }
  SECTION("queue depth 1 with two cores still serves everything") {
    DpuModelConfig model;
    model.cores = 2;
    model.queue_depth = 1;
    Rig rig(model);
    rig.fe.setup(false, true);  // without event idx
    init_fuse(rig.fe);
    for (int i = 0; i < 20; ++i)
      CHECK(rig.fe.fuse(FUSE_STATFS, FUSE_ROOT_ID, {}).oh.error == 0);
    CHECK(rig.stats.requests(FUSE_STATFS) == 20);
    CHECK(rig.finish() == 0);
  }
}

TEST_CASE("a call fd set after completions is signalled", "[dpu][vhost]") {
  Rig rig;
  auto& fe = rig.fe;
  fe.setup();
  init_fuse(fe);
  int fresh = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  REQUIRE(fe.send_u64(vhost::SET_VRING_CALL, 1, true, {fresh}) == 0);
  pollfd p{fresh, POLLIN, 0};
  CHECK(poll(&p, 1, 1000) == 1);
  close(fresh);
  CHECK(rig.finish() == 0);
}

TEST_CASE("RESET_OWNER resets the device and the FUSE session", "[dpu][vhost]") {
  Rig rig;
  auto& fe = rig.fe;
  fe.setup();
  init_fuse(fe);
  std::ofstream(rig.dir.path / "f");
  Bytes name;
  append_str(name, "f");
  REQUIRE(fe.fuse(FUSE_LOOKUP, FUSE_ROOT_ID, name).oh.error == 0);
  CHECK(rig.fuse.inode_count() == 2);
  fe.send_u64(vhost::RESET_OWNER, 0, true);
  CHECK(rig.fuse.inode_count() == 1);
  CHECK_FALSE(rig.fuse.initialized());
  // the front-end sets the device up again, as after a guest reboot
  fe.q[0] = {fe.q[0].desc, fe.q[0].avail, fe.q[0].used, fe.q[0].kick, fe.q[0].call};
  fe.q[1] = {fe.q[1].desc, fe.q[1].avail, fe.q[1].used, fe.q[1].kick, fe.q[1].call};
  std::memset(fe.at(fe.q[0].desc), 0, 0x20000);
  fe.setup();
  init_fuse(fe);
  CHECK(fe.fuse(FUSE_LOOKUP, FUSE_ROOT_ID, name).oh.error == 0);
  CHECK(rig.finish() == 0);
}
