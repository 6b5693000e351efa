// kab-dpu against a hostile guest (issue 16): special files, descriptor exhaustion, repeated
// INIT, mismatched handles, setuid bits. Each case failed before its fix.
#include "fuse_server.h"
#include "helpers.h"
#include "log.h"
#include "vhost_user.h"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <chrono>
#include <fstream>
#include <future>

using namespace kab::dpu;
using namespace kab::dpu::test;
namespace fs = std::filesystem;

namespace {

Bytes create_arg(const std::string& name, int flags, mode_t mode = S_IFREG | 0644) {
  fuse_create_in in{};
  in.flags = uint32_t(flags);
  in.mode = mode;
  Bytes b;
  append(b, in);
  append_str(b, name);
  return b;
}

Bytes mknod_arg(const std::string& name, mode_t mode) {
  fuse_mknod_in in{};
  in.mode = mode;
  Bytes b;
  append(b, in);
  append_str(b, name);
  return b;
}

// Runs a FUSE call on another thread; fails (instead of hanging) when it does not answer in 5 s.
// `unblock` is run before the thread is joined, so a call that blocked still ends.
FuseReply call_bounded(FuseServer& s, uint32_t op, uint64_t nodeid, const Bytes& args,
                       const std::function<void()>& unblock) {
  auto fut = std::async(std::launch::async, [&] { return fuse_call(s, op, nodeid, args); });
  if (fut.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
    unblock();
    fut.wait();
    FAIL("the request blocked its worker for more than 5 s");
  }
  return fut.get();
}

size_t count_lines_with(const std::string& path, const std::string& needle) {
  std::ifstream in(path);
  size_t n = 0;
  for (std::string line; std::getline(in, line);)
    n += line.find(needle) != std::string::npos;
  return n;
}

} // namespace

TEST_CASE("CREATE opens no special file", "[dpu][fuse][security]") {
  TempDir dir;
  FuseServer s({dir.str()});
  fuse_init(s);

  SECTION("a FIFO made by MKNOD, then CREATEd read-only, is refused at once") {
    REQUIRE(fuse_call(s, FUSE_MKNOD, FUSE_ROOT_ID, mknod_arg("fifo", S_IFIFO | 0644)).oh.error == 0);
    REQUIRE(fs::is_fifo(dir.path / "fifo"));
    auto unblock = [&] { close(open((dir.path / "fifo").c_str(), O_RDWR | O_NONBLOCK)); };
    auto r = call_bounded(s, FUSE_CREATE, FUSE_ROOT_ID, create_arg("fifo", O_RDONLY), unblock);
    CHECK(r.oh.error == -EACCES);
    CHECK(s.handle_count() == 0);
  }
  SECTION("a device node already in the export is neither opened nor written") {
    REQUIRE(geteuid() == 0);  // CI and the dev machines run as root; mknod of a device needs it
    // /dev/zero's numbers: a read would succeed on the host device.
    REQUIRE(mknod((dir.path / "zero").c_str(), S_IFCHR | 0666, makedev(1, 5)) == 0);
    // The node works on the host (no nodev mount), so opening it by name would have succeeded.
    int direct = open((dir.path / "zero").c_str(), O_RDWR | O_CLOEXEC);
    REQUIRE(direct >= 0);
    close(direct);
    auto r = call_bounded(s, FUSE_CREATE, FUSE_ROOT_ID, create_arg("zero", O_RDWR), [] {});
    CHECK(r.oh.error == -EACCES);
    CHECK(s.handle_count() == 0);
    // The same through LOOKUP + OPEN, the path that had the check already.
    auto e = fuse_call(s, FUSE_LOOKUP, FUSE_ROOT_ID, name_arg("zero")).as<fuse_entry_out>();
    fuse_open_in oi{};
    oi.flags = O_RDWR;
    Bytes ob;
    append(ob, oi);
    CHECK(fuse_call(s, FUSE_OPEN, e.nodeid, ob).oh.error == -EACCES);
  }
  SECTION("CREATE of an existing directory is EISDIR, not a file handle on it") {
    fs::create_directory(dir.path / "d");
    auto r = fuse_call(s, FUSE_CREATE, FUSE_ROOT_ID, create_arg("d", O_RDONLY));
    CHECK(r.oh.error == -EISDIR);
    CHECK(s.handle_count() == 0);
  }
  SECTION("CREATE of an existing regular file still opens it (and truncates with O_TRUNC)") {
    std::ofstream(dir.path / "f") << "old contents";
    auto r = fuse_call(s, FUSE_CREATE, FUSE_ROOT_ID, create_arg("f", O_WRONLY | O_TRUNC));
    REQUIRE(r.oh.error == 0);
    CHECK(fs::file_size(dir.path / "f") == 0);
    CHECK(s.handle_count() == 1);
    // with O_EXCL it is EEXIST
    CHECK(fuse_call(s, FUSE_CREATE, FUSE_ROOT_ID, create_arg("f", O_WRONLY | O_EXCL)).oh.error ==
          -EEXIST);
  }
}

TEST_CASE("the guest cannot hold more inodes and handles than its limits", "[dpu][fuse][security]") {
  TempDir dir;
  for (int i = 0; i < 40; ++i)
    std::ofstream(dir.path / ("f" + std::to_string(i)));
  FuseOptions o{dir.str()};
  o.max_inodes = 11;  // the root and 10 more
  o.max_handles = 5;
  FuseServer s(o);
  fuse_init(s);
  std::vector<uint64_t> ids;
  int enfile = 0;
  for (int i = 0; i < 40; ++i) {
    auto r = fuse_call(s, FUSE_LOOKUP, FUSE_ROOT_ID, name_arg("f" + std::to_string(i)));
    if (r.oh.error == 0)
      ids.push_back(r.as<fuse_entry_out>().nodeid);
    else if (r.oh.error == -ENFILE)
      ++enfile;
  }
  CHECK(ids.size() == 10);
  CHECK(enfile == 30);
  CHECK(s.inode_count() == 11);
  // A lookup of a name already known takes no new inode.
  CHECK(fuse_call(s, FUSE_LOOKUP, FUSE_ROOT_ID, name_arg("f0")).oh.error == 0);
  // FORGET gives room back.
  fuse_forget_in fi{2};
  Bytes fb;
  append(fb, fi);
  fuse_call(s, FUSE_FORGET, ids[0], fb);
  CHECK(fuse_call(s, FUSE_LOOKUP, FUSE_ROOT_ID, name_arg("f39")).oh.error == 0);

  fuse_open_in oi{};
  oi.flags = O_RDONLY;
  Bytes ob;
  append(ob, oi);
  int opened = 0, emfile = 0;
  for (int i = 0; i < 8; ++i) {
    auto r = fuse_call(s, FUSE_OPEN, ids[1], ob);
    opened += r.oh.error == 0;
    emfile += r.oh.error == -EMFILE;
  }
  CHECK(opened == 5);
  CHECK(emfile == 3);
  CHECK(s.handle_count() == 5);
  // CREATE past the handle limit: EMFILE, and the lookup it made is not left behind
  size_t inodes = s.inode_count();
  CHECK(fuse_call(s, FUSE_CREATE, FUSE_ROOT_ID, create_arg("f1", O_RDWR)).oh.error == -EMFILE);
  CHECK(s.inode_count() == inodes);
  CHECK(s.limit_refusals() == 30 + 3 + 1);
}

TEST_CASE("LOOKUP without FORGET cannot use up the daemon's descriptors", "[dpu][fuse][security]") {
  // The default limits come from RLIMIT_NOFILE: lower it, look up more files than it allows,
  // and the guest gets ENFILE/EMFILE while a vhost-user message with 8 fds still arrives whole.
  rlimit old{};
  REQUIRE(getrlimit(RLIMIT_NOFILE, &old) == 0);
  TempDir dir;
  const int files = 700;
  for (int i = 0; i < files; ++i)
    std::ofstream(dir.path / ("f" + std::to_string(i)));
  rlimit low = old;
  low.rlim_cur = 640;
  REQUIRE(setrlimit(RLIMIT_NOFILE, &low) == 0);
  struct Restore {
    rlimit r;
    ~Restore() { setrlimit(RLIMIT_NOFILE, &r); }
  } restore{old};
  {
    FuseServer s({dir.str()});
    fuse_init(s);
    CHECK(s.max_inodes() + s.max_handles() + k_reserved_fds <= 640);
    int ok = 0, enfile = 0, other = 0;
    for (int i = 0; i < files; ++i) {
      auto r = fuse_call(s, FUSE_LOOKUP, FUSE_ROOT_ID, name_arg("f" + std::to_string(i)));
      ok += r.oh.error == 0;
      enfile += r.oh.error == -ENFILE;
      other += r.oh.error != 0 && r.oh.error != -ENFILE;
    }
    CHECK(uint64_t(ok) == s.max_inodes() - 1);
    CHECK(enfile == files - ok);
    CHECK(other == 0);
    fuse_open_in oi{};
    oi.flags = O_RDONLY;
    Bytes ob;
    append(ob, oi);
    int opened = 0, emfile = 0, bad = 0;
    for (int i = 0; i < 400; ++i) {
      auto r = fuse_call(s, FUSE_OPEN, 2, ob);
      opened += r.oh.error == 0;
      emfile += r.oh.error == -EMFILE;
      bad += r.oh.error != 0 && r.oh.error != -EMFILE;
    }
    CHECK(uint64_t(opened) == s.max_handles());
    CHECK(emfile == 400 - opened);
    CHECK(bad == 0);

    // The control plane still receives descriptors: 8 in one message, none lost.
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    int fds[8];
    for (int& f : fds)
      f = open("/dev/null", O_RDONLY | O_CLOEXEC);
    for (int f : fds)
      REQUIRE(f >= 0);
    uint64_t u = 0;
    REQUIRE(vhost::send_message(sv[0], vhost::SET_VRING_KICK, vhost::k_flag_version, &u, 8, fds, 8));
    for (int f : fds)
      close(f);
    auto m = std::make_unique<vhost::Message>();
    std::string err;
    CHECK(vhost::recv_message(sv[1], *m, err) == vhost::RecvStatus::ok);
    CHECK(err.empty());
    CHECK(m->fds.size() == 8);
    m->close_fds();
    close(sv[0]);
    close(sv[1]);
  }
}

TEST_CASE("a second INIT starts a new session", "[dpu][fuse][security]") {
  TempDir dir;
  std::ofstream(dir.path / "f");
  FuseServer s({dir.str()});
  fuse_init(s);
  auto e = fuse_call(s, FUSE_LOOKUP, FUSE_ROOT_ID, name_arg("f")).as<fuse_entry_out>();
  fuse_open_in oi{};
  oi.flags = O_RDONLY;
  Bytes ob;
  append(ob, oi);
  REQUIRE(fuse_call(s, FUSE_OPEN, e.nodeid, ob).oh.error == 0);
  REQUIRE(s.inode_count() == 2);
  REQUIRE(s.handle_count() == 1);
  fuse_init(s);
  CHECK(s.inode_count() == 1);
  CHECK(s.handle_count() == 0);
  CHECK(s.initialized());
  // the old nodeid is gone; a new lookup works
  CHECK(fuse_call(s, FUSE_GETATTR, e.nodeid, Bytes(sizeof(fuse_getattr_in))).oh.error == -EBADF);
  CHECK(fuse_call(s, FUSE_LOOKUP, FUSE_ROOT_ID, name_arg("f")).oh.error == 0);
}

TEST_CASE("INIT in a loop does not flood the log", "[dpu][fuse][security]") {
  TempDir dir;
  std::string log = (dir.path / "dpu.log").string();
  fs::create_directory(dir.path / "export");
  FuseServer s({(dir.path / "export").string()});
  REQUIRE(log_open(log, LogLevel::info));
  for (int i = 0; i < 1000; ++i)
    fuse_init(s);
  log_close();
  CHECK(s.init_count() == 1000);
  CHECK(count_lines_with(log, "FUSE INIT") == 1);
  CHECK(fs::file_size(log) < 1000);
}

TEST_CASE("READDIRPLUS looks names up in the directory its handle lists", "[dpu][fuse][security]") {
  TempDir dir;
  fs::create_directory(dir.path / "a");
  fs::create_directory(dir.path / "b");
  std::ofstream(dir.path / "a" / "x") << "in a";
  std::ofstream(dir.path / "b" / "x") << "in b, longer";
  FuseServer s({dir.str()});
  fuse_init(s);
  auto a = fuse_call(s, FUSE_LOOKUP, FUSE_ROOT_ID, name_arg("a")).as<fuse_entry_out>();
  auto b = fuse_call(s, FUSE_LOOKUP, FUSE_ROOT_ID, name_arg("b")).as<fuse_entry_out>();
  fuse_open_in oi{};
  Bytes ob;
  append(ob, oi);
  auto fh = fuse_call(s, FUSE_OPENDIR, a.nodeid, ob).as<fuse_open_out>().fh;
  REQUIRE(fh != 0);
  fuse_read_in ri{};
  ri.fh = fh;
  ri.size = 4096;
  Bytes rb;
  append(rb, ri);
  // the handle lists a; the request names b
  auto r = fuse_call(s, FUSE_READDIRPLUS, b.nodeid, rb);
  REQUIRE(r.oh.error == 0);
  bool found = false;
  for (size_t pos = 0; pos < r.body.size();) {
    fuse_entry_out e;
    fuse_dirent d;
    std::memcpy(&e, r.body.data() + pos, sizeof e);
    std::memcpy(&d, r.body.data() + pos + sizeof e, FUSE_NAME_OFFSET);
    std::string name(reinterpret_cast<const char*>(r.body.data() + pos + sizeof e + FUSE_NAME_OFFSET),
                     d.namelen);
    if (name == "x") {
      found = true;
      struct stat st;
      REQUIRE(stat((dir.path / "a" / "x").c_str(), &st) == 0);
      CHECK(e.attr.ino == st.st_ino);
      CHECK(e.attr.size == 4);
    }
    pos += sizeof e + FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + d.namelen);
  }
  CHECK(found);
}

TEST_CASE("the guest cannot leave set-user-ID files on the host", "[dpu][fuse][security]") {
  TempDir dir;
  auto mode_of = [&](const std::string& n) {
    struct stat st;
    REQUIRE(lstat((dir.path / n).c_str(), &st) == 0);
    return st.st_mode & 07777;
  };
  auto setattr_mode = [](FuseServer& s, uint64_t nodeid, mode_t mode) {
    fuse_setattr_in sa{};
    sa.valid = FATTR_MODE;
    sa.mode = mode;
    Bytes b;
    append(b, sa);
    return fuse_call(s, FUSE_SETATTR, nodeid, b);
  };
  SECTION("by default set-ID bits are removed (set-group-ID stays on directories)") {
    FuseServer s({dir.str()});
    fuse_init(s);
    auto r = fuse_call(s, FUSE_CREATE, FUSE_ROOT_ID, create_arg("suid", O_RDWR, S_IFREG | 06755));
    REQUIRE(r.oh.error == 0);
    CHECK(mode_of("suid") == 0755);
    auto e = r.as<fuse_entry_out>();
    auto sr = setattr_mode(s, e.nodeid, 04755);
    REQUIRE(sr.oh.error == 0);
    CHECK(mode_of("suid") == 0755);
    CHECK((sr.as<fuse_attr_out>().attr.mode & 07777) == 0755);  // the guest sees what is there
    fuse_mkdir_in mi{02755 | 04000, 0};
    Bytes mb;
    append(mb, mi);
    append_str(mb, "d");
    auto d = fuse_call(s, FUSE_MKDIR, FUSE_ROOT_ID, mb);
    REQUIRE(d.oh.error == 0);
    // (mkdir(2) itself ignores set-ID bits; SETATTR is how a guest sets them)
    REQUIRE(setattr_mode(s, d.as<fuse_entry_out>().nodeid, 06755).oh.error == 0);
    CHECK(mode_of("d") == 02755);
    REQUIRE(fuse_call(s, FUSE_MKNOD, FUSE_ROOT_ID, mknod_arg("n", S_IFREG | 04700)).oh.error == 0);
    CHECK(mode_of("n") == 0700);
  }
  SECTION("--allow-setid keeps them") {
    FuseOptions o{dir.str()};
    o.allow_setid = true;
    FuseServer s(o);
    fuse_init(s);
    auto r = fuse_call(s, FUSE_CREATE, FUSE_ROOT_ID, create_arg("suid", O_RDWR, S_IFREG | 0755));
    REQUIRE(r.oh.error == 0);
    REQUIRE(setattr_mode(s, r.as<fuse_entry_out>().nodeid, 04755).oh.error == 0);
    CHECK(mode_of("suid") == 04755);
  }
  SECTION("--uid/--gid own every new entry and refuse chown to anyone else") {
    REQUIRE(geteuid() == 0);
    FuseOptions o{dir.str()};
    o.owner_uid = 4321;
    o.owner_gid = 8765;
    FuseServer s(o);
    fuse_init(s);
    auto r = fuse_call(s, FUSE_CREATE, FUSE_ROOT_ID, create_arg("f", O_RDWR));
    REQUIRE(r.oh.error == 0);
    struct stat st;
    REQUIRE(lstat((dir.path / "f").c_str(), &st) == 0);
    CHECK(st.st_uid == 4321u);
    CHECK(st.st_gid == 8765u);
    auto e = r.as<fuse_entry_out>();
    fuse_setattr_in sa{};
    sa.valid = FATTR_UID;
    sa.uid = 0;
    Bytes b;
    append(b, sa);
    CHECK(fuse_call(s, FUSE_SETATTR, e.nodeid, b).oh.error == -EPERM);
    sa.uid = 4321;
    b.clear();
    append(b, sa);
    CHECK(fuse_call(s, FUSE_SETATTR, e.nodeid, b).oh.error == 0);
    REQUIRE(lstat((dir.path / "f").c_str(), &st) == 0);
    CHECK(st.st_uid == 4321u);
  }
}
