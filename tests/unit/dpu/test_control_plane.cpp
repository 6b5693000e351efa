// The control plane against requests that hang (issue 16): a request stuck on a FIFO must not
// hold up GET_VRING_BASE, a reset, SIGTERM or a disconnect; a request past its bound is
// interrupted and failed with ETIMEDOUT; rings set up before the memory table start with it.
#include "fake_front_end.h"
#include "request_deadline.h"
#include "stats.h"
#include "vhost_user_server.h"
#include "virtio_fs_device.h"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <thread>

using namespace kab::dpu;
using namespace kab::dpu::test;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// Serves STATFS by opening a FIFO for reading, which blocks until a writer comes: a request
// stuck in the back-end, as a FIFO opened through CREATE stuck kab-dpu before. Every other
// opcode is answered at once.
struct FifoProcessor : RequestProcessor {
  std::string fifo;
  RequestWatchdog* watchdog = nullptr;
  std::atomic<int> entered{0}, left{0};
  std::atomic<int> last_error{0};

  explicit FifoProcessor(const std::string& path) : fifo(path) {
    REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  }
  uint32_t process(unsigned, Chain& chain, unsigned) override {
    fuse_in_header in{};
    IovReader r(chain.readable, chain.readable_len);
    r.read(in);
    int err = 0;
    if (in.opcode != FUSE_STATFS) {
      fuse_out_header out{sizeof out, 0, in.unique};
      IovWriter(chain.writable).write_at(0, &out, sizeof out);
      return sizeof out;
    }
    {
      RequestWatchdog::Scope scope(watchdog);
      ++entered;
      int fd = open(fifo.c_str(), O_RDONLY | O_CLOEXEC);
      err = fd >= 0 ? 0 : request_expired() ? ETIMEDOUT : errno;
      if (fd >= 0)
        close(fd);
    }
    last_error = err;
    fuse_out_header out{sizeof out, -err, in.unique};
    IovWriter w(chain.writable);
    w.write_at(0, &out, sizeof out);
    ++left;
    return sizeof out;
  }
  // Lets every blocked open finish (a writer that comes and goes).
  void release() {
    for (int i = 0; i < 100 && left < entered; ++i) {
      int fd = open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
      if (fd >= 0)
        close(fd);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  bool wait_entered(int n) {
    for (int i = 0; i < 500 && entered < n; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return entered >= n;
  }
};

struct StuckRig {
  TempDir dir;
  FifoProcessor proc{(dir.path / "fifo").string()};
  Stats stats{4};
  FakeFrontEnd fe;
  std::unique_ptr<VhostUserServer> server;
  std::thread thread;
  std::atomic<int> rc{-1};
  std::atomic<bool> returned{false};
  int sig[2] = {-1, -1};

  explicit StuckRig(DpuModelConfig model = {}) {
    REQUIRE(pipe2(sig, O_CLOEXEC) == 0);
    ServerOptions so;
    so.model = model;
    server = std::make_unique<VhostUserServer>(so, proc, stats);
    thread = std::thread([this] {
      rc = server->serve(fe.server, sig[0], [this] {
        char c;
        return read(sig[0], &c, 1) != 1;  // any byte: "SIGTERM"
      });
      returned = true;
    });
  }
  ~StuckRig() {
    proc.release();
    fe.hang_up();
    if (thread.joinable())
      thread.join();
    // Every request the control plane stopped waiting for has ended before the server goes.
    for (int i = 0; i < 300 && server->detached_busy() > 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    CHECK(server->detached_busy() == 0);
    server.reset();
    close(sig[0]);
    close(sig[1]);
  }
  // Sends a request that blocks in the back-end on queue 1 (or, with quick, one that does not).
  void submit_stuck(uint16_t head, bool quick = false) {
    Bytes req;
    fuse_in_header h{};
    h.len = sizeof h;
    h.opcode = quick ? FUSE_GETATTR : FUSE_STATFS;
    h.unique = 1000 + head;
    append(req, h);
    fe.data_next = FakeFrontEnd::k_gpa + 0x100000 + 0x10000 * head;
    fe.submit(1, req, 64, 1, false, head);
  }
  // A control-plane request with its reply, failing (after freeing the stuck request, so the
  // test can end) when no answer comes within 3 s.
  Bytes control(uint32_t req, const Bytes& payload, bool reply, bool ack) {
    uint32_t flags = vhost::k_flag_version | (ack ? vhost::k_flag_need_reply : 0);
    REQUIRE(vhost::send_message(fe.sock, req, flags, payload.data(), payload.size()));
    if (!reply && !ack)
      return {};
    pollfd p{fe.sock, POLLIN, 0};
    if (poll(&p, 1, 3000) != 1) {
      proc.release();
      FAIL("no answer to " << vhost::request_name(req) << " within 3 s");
    }
    auto m = std::make_unique<vhost::Message>();
    std::string err;
    REQUIRE(vhost::recv_message(fe.sock, *m, err) == vhost::RecvStatus::ok);
    return Bytes(m->payload, m->payload + m->size);
  }
  uint16_t used_idx(int qi) {
    return __atomic_load_n(reinterpret_cast<uint16_t*>(fe.at(fe.q[qi].used + 2)), __ATOMIC_ACQUIRE);
  }
};

} // namespace

TEST_CASE("a request stuck on a FIFO does not hold up the control plane", "[dpu][vhost][security]") {
  for (unsigned cores : {0u, 1u}) {
    DYNAMIC_SECTION("cores " << cores) {
      DpuModelConfig model;
      model.cores = cores;
      StuckRig rig(model);
      rig.fe.setup();
      rig.submit_stuck(0);
      REQUIRE(rig.proc.wait_entered(1));

      // GET_VRING_BASE stops the ring at once and reports the stuck request as consumed.
      Bytes s;
      append(s, vhost::VringStateWire{1, 0});
      auto t0 = Clock::now();
      Bytes r = rig.control(vhost::GET_VRING_BASE, s, true, false);
      double get_base_ms = ms_since(t0);
      CHECK(get_base_ms < 1000);
      REQUIRE(r.size() == 8);
      vhost::VringStateWire st;
      std::memcpy(&st, r.data(), 8);
      CHECK(st.num == 1);
      CHECK(rig.stats.abandoned() == 1);
      // The stuck request finishing later writes nothing into the stopped ring.
      rig.proc.release();
      REQUIRE(rig.proc.left == 1);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      CHECK(rig.used_idx(1) == 0);

      // Restarted from that base, the ring serves again; then a reset with a request stuck.
      Bytes base;
      append(base, vhost::VringStateWire{1, st.num});
      rig.control(vhost::SET_VRING_BASE, base, false, false);
      rig.fe.q[1].avail_idx = 1;
      REQUIRE(vhost::send_message(rig.fe.sock, vhost::SET_VRING_KICK, vhost::k_flag_version,
                                  Bytes{1, 0, 0, 0, 0, 0, 0, 0}.data(), 8, &rig.fe.q[1].kick, 1));
      // The next completion takes the used slot after the last one the driver saw (0), not the
      // stuck request's: used.idx 1 with this head in slot 0 (before: used.idx 2, slot 0 stale).
      rig.submit_stuck(1, true);
      auto [id, len] = rig.fe.wait_used(1, 3000);
      CHECK(id == 1);
      CHECK(len == sizeof(fuse_out_header));
      CHECK(rig.used_idx(1) == 1);
      rig.submit_stuck(2);
      REQUIRE(rig.proc.wait_entered(2));
      t0 = Clock::now();
      Bytes ack = rig.control(vhost::RESET_OWNER, Bytes(8, 0), false, true);
      double reset_ms = ms_since(t0);
      CHECK(reset_ms < 1000);
      CHECK(ack == Bytes(8, 0));
      CHECK(rig.stats.abandoned() == 2);

      // Set up again as after a reboot; one more stuck request, then "SIGTERM".
      rig.proc.release();
      rig.fe.q[0] = {rig.fe.q[0].desc, rig.fe.q[0].avail, rig.fe.q[0].used, rig.fe.q[0].kick,
                     rig.fe.q[0].call};
      rig.fe.q[1] = {rig.fe.q[1].desc, rig.fe.q[1].avail, rig.fe.q[1].used, rig.fe.q[1].kick,
                     rig.fe.q[1].call};
      std::memset(rig.fe.at(rig.fe.q[0].desc), 0, 0x20000);
      rig.fe.setup();
      rig.submit_stuck(0);
      REQUIRE(rig.proc.wait_entered(3));
      t0 = Clock::now();
      REQUIRE(write(rig.sig[1], "x", 1) == 1);
      while (!rig.returned && ms_since(t0) < 3000)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      double term_ms = ms_since(t0);
      CHECK(rig.returned);
      CHECK(term_ms < 1000);
      CHECK(rig.rc == 0);
      CHECK(rig.stats.abandoned() == 3);
      // The figures for the note (answer times with a request stuck on a FIFO).
      WARN("cores " << cores << ": GET_VRING_BASE " << get_base_ms << " ms, RESET_OWNER "
                    << reset_ms << " ms, SIGTERM " << term_ms << " ms");
    }
  }
}

TEST_CASE("a request past its bound is interrupted and fails with ETIMEDOUT", "[dpu][vhost][security]") {
  StuckRig rig;
  RequestWatchdog watchdog(std::chrono::milliseconds(200));
  rig.proc.watchdog = &watchdog;
  rig.fe.setup();
  auto t0 = Clock::now();
  rig.submit_stuck(0);
  auto [id, len] = rig.fe.wait_used(1, 3000);
  double ms = ms_since(t0);
  CHECK(id == 0);
  REQUIRE(len == sizeof(fuse_out_header));
  fuse_out_header oh;
  std::memcpy(&oh, rig.fe.at(FakeFrontEnd::k_gpa + 0x100000 + 0x1000), sizeof oh);
  CHECK(oh.error == -ETIMEDOUT);
  CHECK(oh.unique == 1000u);
  CHECK(ms >= 200);
  CHECK(ms < 1000);
  CHECK(watchdog.expired_count() == 1);
  CHECK(watchdog.in_flight() == 0);
  CHECK(rig.stats.abandoned() == 0);
}

TEST_CASE("the watchdog interrupts a blocked read and leaves quick requests alone", "[dpu][vhost]") {
  RequestWatchdog watchdog(std::chrono::milliseconds(100));
  int p[2];
  REQUIRE(pipe2(p, O_CLOEXEC) == 0);
  std::atomic<int> rc{0}, err{0};
  std::atomic<bool> expired{false};
  std::atomic<bool> done{false};
  std::thread t([&] {
    RequestWatchdog::Scope scope(&watchdog);
    char c;
    rc = int(read(p[0], &c, 1));
    err = errno;
    expired = request_expired();
    done = true;
  });
  for (int i = 0; i < 300 && !done; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (!done)
    REQUIRE(write(p[1], "x", 1) == 1);  // the watchdog did not interrupt it: end the read
  t.join();
  CHECK(rc == -1);
  CHECK(err == EINTR);
  CHECK(expired);
  CHECK(watchdog.expired_count() == 1);
  // a quick request: not expired, not counted
  {
    RequestWatchdog::Scope scope(&watchdog);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    CHECK_FALSE(request_expired());
  }
  CHECK(watchdog.expired_count() == 1);
  close(p[0]);
  close(p[1]);
}

TEST_CASE("rings set up before the memory table start when it arrives", "[dpu][vhost]") {
  // Before: SET_MEM_TABLE restarted only rings already running, so a front-end that sends the
  // table last had a device that never answered.
  TempDir dir;
  Stats stats{2};
  FuseServer fuse(FuseOptions{dir.str()});
  struct Echo : RequestProcessor {
    std::atomic<int> n{0};
    uint32_t process(unsigned, Chain& c, unsigned) override {
      fuse_in_header in{};
      IovReader(c.readable, c.readable_len).read(in);
      fuse_out_header out{sizeof out, 0, in.unique};
      IovWriter(c.writable).write_at(0, &out, sizeof out);
      ++n;
      return sizeof out;
    }
  } echo;
  FakeFrontEnd fe;
  VhostUserServer server(ServerOptions{}, echo, stats);
  std::thread t([&] { server.serve(fe.server, -1, [] { return true; }); });
  uint64_t f = fe.get_u64(vhost::GET_FEATURES);
  fe.send_u64(vhost::SET_FEATURES, f);
  fe.send_u64(vhost::SET_PROTOCOL_FEATURES, fe.get_u64(vhost::GET_PROTOCOL_FEATURES));
  for (uint32_t i = 0; i < 2; ++i) {
    Bytes s;
    append(s, vhost::VringStateWire{i, FakeFrontEnd::k_num});
    REQUIRE(fe.send(vhost::SET_VRING_NUM, s, {}, false, true) == Bytes(8, 0));
    vhost::VringAddrWire a{i, 0, FakeFrontEnd::uaddr(fe.q[i].desc), FakeFrontEnd::uaddr(fe.q[i].used),
                           FakeFrontEnd::uaddr(fe.q[i].avail), 0};
    Bytes ab;
    append(ab, a);
    // (addresses are checked when the ring starts, i.e. once there is memory)
    REQUIRE(fe.send(vhost::SET_VRING_ADDR, ab, {}, false, true) == Bytes(8, 0));
    REQUIRE(fe.send_u64(vhost::SET_VRING_CALL, i, true, {fe.q[i].call}) == 0);
    REQUIRE(fe.send_u64(vhost::SET_VRING_KICK, i, true, {fe.q[i].kick}) == 0);
  }
  Bytes mt;
  uint32_t n = 1, pad = 0;
  append(mt, n);
  append(mt, pad);
  append(mt, vhost::MemRegionWire{FakeFrontEnd::k_gpa, FakeFrontEnd::k_size, FakeFrontEnd::k_uaddr, 0});
  REQUIRE(fe.send(vhost::SET_MEM_TABLE, mt, {fe.memfd}, false, true) == Bytes(8, 0));
  auto r = fe.fuse(FUSE_STATFS, FUSE_ROOT_ID, {});
  CHECK(r.oh.error == 0);
  CHECK(echo.n == 1);
  fe.hang_up();
  t.join();
}

TEST_CASE("a memory table whose fd is shorter than its region is refused", "[dpu][vhost][security]") {
  TempDir dir;
  Stats stats{2};
  FuseServer fuse(FuseOptions{dir.str()});
  struct Nop : RequestProcessor {
    uint32_t process(unsigned, Chain&, unsigned) override { return 0; }
  } nop;
  FakeFrontEnd fe;
  VhostUserServer server(ServerOptions{}, nop, stats);
  int rc = -1;
  std::thread t([&] { rc = server.serve(fe.server, -1, [] { return true; }); });
  fe.send_u64(vhost::SET_PROTOCOL_FEATURES, fe.get_u64(vhost::GET_PROTOCOL_FEATURES));
  int shortfd = memfd_create("short", MFD_CLOEXEC);
  REQUIRE(ftruncate(shortfd, 4096) == 0);
  Bytes mt;
  uint32_t n = 1, pad = 0;
  append(mt, n);
  append(mt, pad);
  append(mt, vhost::MemRegionWire{FakeFrontEnd::k_gpa, 1 << 20, FakeFrontEnd::k_uaddr, 0});
  Bytes status = fe.send(vhost::SET_MEM_TABLE, mt, {shortfd}, false, true);
  CHECK(status != Bytes(8, 0));  // REPLY_ACK: failed
  close(shortfd);
  // the session goes on
  CHECK(fe.get_u64(vhost::GET_QUEUE_NUM) >= 2);
  fe.hang_up();
  t.join();
  CHECK(rc == 0);
}

TEST_CASE("a FUSE request blocked past its bound fails with ETIMEDOUT and is counted", "[dpu][fuse][security]") {
  // A regular file can block an open(2) too: under a lease, an open for writing waits until the
  // lease holder lets go (up to fs.lease-break-time, 45 s). The holder here never does.
  TempDir dir;
  std::string path = (dir.path / "leased").string();
  std::ofstream(path) << "data";
  FuseServer fuse(FuseOptions{dir.str()});
  Stats stats(1);
  VirtioFsDevice device(fuse, stats, 0.0, 1.0, std::chrono::milliseconds(200));
  auto call = [&](uint32_t opcode, uint64_t nodeid, const Bytes& args) {
    Bytes req;
    fuse_in_header h{};
    h.len = uint32_t(sizeof h + args.size());
    h.opcode = opcode;
    h.unique = 9;
    h.nodeid = nodeid;
    append(req, h);
    req.insert(req.end(), args.begin(), args.end());
    Bytes out(4096);
    Chain c;
    c.readable = {iovec{req.data(), req.size()}};
    c.writable = {iovec{out.data(), out.size()}};
    c.readable_len = req.size();
    c.writable_len = out.size();
    uint32_t len = device.process(1, c, 0);
    FuseReply r;
    r.res.reply_len = len;
    std::memcpy(&r.oh, out.data(), sizeof r.oh);
    r.body.assign(out.begin() + sizeof r.oh, out.begin() + std::max<size_t>(len, sizeof r.oh));
    return r;
  };
  fuse_init_in init{7, 38, 0, 0};
  Bytes ib;
  append(ib, init);
  REQUIRE(call(FUSE_INIT, 0, ib).oh.error == 0);
  auto e = call(FUSE_LOOKUP, FUSE_ROOT_ID, name_arg("leased")).as<fuse_entry_out>();
  REQUIRE(e.nodeid != 0);

  struct sigaction ignore {}, old {};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGIO, &ignore, &old);  // the lease break is announced to the holder with SIGIO
  int holder = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(holder >= 0);
  REQUIRE(fcntl(holder, F_SETLEASE, F_RDLCK) == 0);
  fuse_open_in oi{};
  oi.flags = O_WRONLY;
  Bytes ob;
  append(ob, oi);
  auto t0 = Clock::now();
  auto r = call(FUSE_OPEN, e.nodeid, ob);
  double ms = ms_since(t0);
  fcntl(holder, F_SETLEASE, F_UNLCK);
  close(holder);
  sigaction(SIGIO, &old, nullptr);
  CHECK(r.oh.error == -ETIMEDOUT);
  CHECK(ms >= 200);
  CHECK(ms < 2000);
  CHECK(stats.timed_out() == 1);
  CHECK(fuse.handle_count() == 0);
  // Without the lease the same open succeeds at once.
  CHECK(call(FUSE_OPEN, e.nodeid, ob).oh.error == 0);
  CHECK(stats.timed_out() == 1);
}
