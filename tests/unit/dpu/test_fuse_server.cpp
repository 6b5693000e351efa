#include "fuse_server.h"
#include "helpers.h"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <fstream>

using namespace kab::dpu;
using namespace kab::dpu::test;
namespace fs = std::filesystem;

namespace {

fuse_entry_out lookup_ok(FuseServer& s, uint64_t parent, const std::string& name) {
  auto r = fuse_call(s, FUSE_LOOKUP, parent, name_arg(name));
  REQUIRE(r.oh.error == 0);
  return r.as<fuse_entry_out>();
}

// Creates name under parent and returns (nodeid, fh).
std::pair<uint64_t, uint64_t> create(FuseServer& s, uint64_t parent, const std::string& name,
                                     int flags = O_RDWR) {
  fuse_create_in in{};
  in.flags = uint32_t(flags);
  in.mode = S_IFREG | 0644;
  Bytes b;
  append(b, in);
  append_str(b, name);
  auto r = fuse_call(s, FUSE_CREATE, parent, b);
  REQUIRE(r.oh.error == 0);
  REQUIRE(r.body.size() == sizeof(fuse_entry_out) + sizeof(fuse_open_out));
  fuse_entry_out e;
  fuse_open_out o;
  std::memcpy(&e, r.body.data(), sizeof e);
  std::memcpy(&o, r.body.data() + sizeof e, sizeof o);
  return {e.nodeid, o.fh};
}

FuseReply write_data(FuseServer& s, uint64_t nodeid, uint64_t fh, uint64_t off,
                     const std::string& data) {
  fuse_write_in in{};
  in.fh = fh;
  in.offset = off;
  in.size = uint32_t(data.size());
  Bytes b;
  append(b, in);
  b.insert(b.end(), data.begin(), data.end());
  return fuse_call(s, FUSE_WRITE, nodeid, b);
}

FuseReply read_data(FuseServer& s, uint64_t nodeid, uint64_t fh, uint64_t off, uint32_t size,
                    size_t out = 8192) {
  fuse_read_in in{};
  in.fh = fh;
  in.offset = off;
  in.size = size;
  Bytes b;
  append(b, in);
  return fuse_call(s, FUSE_READ, nodeid, b, out);
}

std::vector<std::string> dirent_names(const Bytes& body, bool plus) {
  std::vector<std::string> names;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t base = plus ? sizeof(fuse_entry_out) : 0;
    fuse_dirent d;
    std::memcpy(&d, body.data() + pos + base, FUSE_NAME_OFFSET);
    names.emplace_back(reinterpret_cast<const char*>(body.data() + pos + base + FUSE_NAME_OFFSET),
                       d.namelen);
    pos += base + FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + d.namelen);
  }
  std::sort(names.begin(), names.end());
  return names;
}

} // namespace

TEST_CASE("FUSE INIT negotiation", "[dpu][fuse]") {
  TempDir dir;
  SECTION("writeback is offered only when configured and asked for") {
    for (bool wb : {false, true}) {
      FuseServer s({dir.str(), wb});
      fuse_init_in in{};
      in.major = 7;
      in.minor = 38;
      in.flags = FUSE_WRITEBACK_CACHE | FUSE_BIG_WRITES | FUSE_MAX_PAGES | FUSE_POSIX_LOCKS;
      Bytes b;
      append(b, in);
      auto r = fuse_call(s, FUSE_INIT, 0, b);
      REQUIRE(r.oh.error == 0);
      auto out = r.as<fuse_init_out>();
      CHECK(out.major == 7);
      CHECK(bool(out.flags & FUSE_WRITEBACK_CACHE) == wb);
      CHECK((out.flags & FUSE_POSIX_LOCKS) == 0);
      CHECK(out.max_write == (1u << 20));
      CHECK(out.max_pages == 256);
      CHECK(r.body.size() == sizeof(fuse_init_out));
    }
  }
  SECTION("requests before INIT get EIO") {
    FuseServer s({dir.str()});
    auto r = fuse_call(s, FUSE_GETATTR, FUSE_ROOT_ID, Bytes(sizeof(fuse_getattr_in)));
    CHECK(r.oh.error == -EIO);
  }
  SECTION("an old protocol minor gets the short INIT reply") {
    FuseServer s({dir.str()});
    fuse_init_in in{};
    in.major = 7;
    in.minor = 22;
    Bytes b;
    append(b, in);
    b.resize(16);
    auto r = fuse_call(s, FUSE_INIT, 0, b);
    CHECK(r.oh.error == 0);
    CHECK(r.body.size() == FUSE_COMPAT_22_INIT_OUT_SIZE);
  }
  SECTION("a missing export is an error naming the directory") {
    REQUIRE_THROWS_WITH(FuseServer({dir.str() + "/nope"}), Catch::Contains("/nope"));
  }
}

TEST_CASE("FUSE passthrough operations", "[dpu][fuse]") {
  TempDir dir;
  FuseServer s({dir.str(), true});
  fuse_init(s);

  SECTION("create, write, read back, getattr, release") {
    auto [node, fh] = create(s, FUSE_ROOT_ID, "a.dat");
    auto w = write_data(s, node, fh, 4, "hello");
    REQUIRE(w.oh.error == 0);
    CHECK(w.as<fuse_write_out>().size == 5);
    CHECK(w.res.bytes_written == 5);
    auto r = read_data(s, node, fh, 0, 100);
    REQUIRE(r.oh.error == 0);
    REQUIRE(r.body.size() == 9);
    CHECK(std::string(r.body.begin() + 4, r.body.end()) == "hello");
    auto g = fuse_call(s, FUSE_GETATTR, node, Bytes(sizeof(fuse_getattr_in)));
    REQUIRE(g.oh.error == 0);
    CHECK(g.as<fuse_attr_out>().attr.size == 9);
    fuse_release_in rel{};
    rel.fh = fh;
    Bytes b;
    append(b, rel);
    CHECK(fuse_call(s, FUSE_RELEASE, node, b).oh.error == 0);
    CHECK(s.handle_count() == 0);
    CHECK(fuse_call(s, FUSE_RELEASE, node, b).oh.error == -EBADF);
    CHECK(fs::file_size(dir.path / "a.dat") == 9);
  }
  SECTION("read is bounded by the reply buffer") {
    std::ofstream(dir.path / "big") << std::string(10000, 'x');
    auto e = lookup_ok(s, FUSE_ROOT_ID, "big");
    fuse_open_in oi{};
    oi.flags = O_RDONLY;
    Bytes b;
    append(b, oi);
    auto o = fuse_call(s, FUSE_OPEN, e.nodeid, b);
    REQUIRE(o.oh.error == 0);
    auto r = read_data(s, e.nodeid, o.as<fuse_open_out>().fh, 0, 1 << 20, 1000);
    REQUIRE(r.oh.error == 0);
    CHECK(r.body.size() == 1000 - sizeof(fuse_out_header));
  }
  SECTION("mkdir, mknod, symlink, readlink, link, rename, unlink, rmdir") {
    fuse_mkdir_in mi{0755, 0};
    Bytes b;
    append(b, mi);
    append_str(b, "d");
    auto md = fuse_call(s, FUSE_MKDIR, FUSE_ROOT_ID, b);
    REQUIRE(md.oh.error == 0);
    uint64_t d = md.as<fuse_entry_out>().nodeid;
    CHECK(fs::is_directory(dir.path / "d"));

    fuse_mknod_in mn{};
    mn.mode = S_IFIFO | 0600;
    b.clear();
    append(b, mn);
    append_str(b, "fifo");
    CHECK(fuse_call(s, FUSE_MKNOD, d, b).oh.error == 0);
    mn.mode = S_IFCHR | 0600;
    mn.rdev = makedev(1, 3);
    b.clear();
    append(b, mn);
    append_str(b, "null");
    CHECK(fuse_call(s, FUSE_MKNOD, d, b).oh.error == -EPERM);

    b.clear();
    append_str(b, "ln");
    append_str(b, "../../etc/passwd");
    auto sl = fuse_call(s, FUSE_SYMLINK, d, b);
    REQUIRE(sl.oh.error == 0);
    auto rl = fuse_call(s, FUSE_READLINK, sl.as<fuse_entry_out>().nodeid, {});
    REQUIRE(rl.oh.error == 0);
    CHECK(std::string(rl.body.begin(), rl.body.end()) == "../../etc/passwd");

    auto [f, fh] = create(s, d, "f");
    fuse_link_in li{f};
    b.clear();
    append(b, li);
    append_str(b, "f2");
    auto lk = fuse_call(s, FUSE_LINK, FUSE_ROOT_ID, b);
    REQUIRE(lk.oh.error == 0);
    CHECK(lk.as<fuse_entry_out>().nodeid == f);  // same inode, same node id
    CHECK(fs::hard_link_count(dir.path / "f2") == 2);

    fuse_rename2_in rn{};
    rn.newdir = FUSE_ROOT_ID;
    rn.flags = RENAME_NOREPLACE;
    b.clear();
    append(b, rn);
    append_str(b, "f");
    append_str(b, "f2");
    CHECK(fuse_call(s, FUSE_RENAME2, d, b).oh.error == -EEXIST);
    fuse_rename_in rn1{FUSE_ROOT_ID};
    b.clear();
    append(b, rn1);
    append_str(b, "f");
    append_str(b, "g");
    CHECK(fuse_call(s, FUSE_RENAME, d, b).oh.error == 0);
    CHECK(fs::exists(dir.path / "g"));

    CHECK(fuse_call(s, FUSE_UNLINK, FUSE_ROOT_ID, name_arg("g")).oh.error == 0);
    CHECK(fuse_call(s, FUSE_RMDIR, FUSE_ROOT_ID, name_arg("d")).oh.error == -ENOTEMPTY);
    CHECK(fuse_call(s, FUSE_UNLINK, d, name_arg("fifo")).oh.error == 0);
    CHECK(fuse_call(s, FUSE_UNLINK, d, name_arg("ln")).oh.error == 0);
    CHECK(fuse_call(s, FUSE_RMDIR, FUSE_ROOT_ID, name_arg("d")).oh.error == 0);
  }
  SECTION("setattr truncates, chmods and sets times") {
    auto [node, fh] = create(s, FUSE_ROOT_ID, "t");
    write_data(s, node, fh, 0, std::string(100, 'a'));
    fuse_setattr_in sa{};
    sa.valid = FATTR_SIZE | FATTR_MODE | FATTR_MTIME;
    sa.size = 10;
    sa.mode = 0600;
    sa.mtime = 1000000;
    Bytes b;
    append(b, sa);
    auto r = fuse_call(s, FUSE_SETATTR, node, b);
    REQUIRE(r.oh.error == 0);
    auto a = r.as<fuse_attr_out>().attr;
    CHECK(a.size == 10);
    CHECK((a.mode & 07777) == 0600);
    CHECK(a.mtime == 1000000);
  }
  SECTION("readdir and readdirplus list entries and continue at an offset") {
    for (int i = 0; i < 50; ++i)
      std::ofstream(dir.path / ("file" + std::to_string(i)));
    fuse_open_in oi{};
    Bytes b;
    append(b, oi);
    auto o = fuse_call(s, FUSE_OPENDIR, FUSE_ROOT_ID, b);
    REQUIRE(o.oh.error == 0);
    uint64_t fh = o.as<fuse_open_out>().fh;
    for (bool plus : {false, true}) {
      std::vector<std::string> all;
      uint64_t off = 0;
      for (int round = 0; round < 100; ++round) {
        fuse_read_in ri{};
        ri.fh = fh;
        ri.offset = off;
        ri.size = 600;  // forces many rounds
        Bytes rb;
        append(rb, ri);
        auto r = fuse_call(s, plus ? FUSE_READDIRPLUS : FUSE_READDIR, FUSE_ROOT_ID, rb);
        REQUIRE(r.oh.error == 0);
        if (r.body.empty())
          break;
        auto names = dirent_names(r.body, plus);
        all.insert(all.end(), names.begin(), names.end());
        // offset of the last entry
        size_t pos = 0;
        while (pos < r.body.size()) {
          size_t base = plus ? sizeof(fuse_entry_out) : 0;
          fuse_dirent d;
          std::memcpy(&d, r.body.data() + pos + base, FUSE_NAME_OFFSET);
          off = d.off;
          pos += base + FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + d.namelen);
        }
      }
      CHECK(all.size() == 52);  // 50 files, ".", ".."
    }
    // readdirplus took one lookup per file
    CHECK(s.inode_count() == 51);
  }
  SECTION("statfs, access, fsync, flush, fallocate, lseek") {
    auto [node, fh] = create(s, FUSE_ROOT_ID, "x");
    auto st = fuse_call(s, FUSE_STATFS, FUSE_ROOT_ID, {});
    REQUIRE(st.oh.error == 0);
    CHECK(st.as<fuse_statfs_out>().st.bsize > 0);
    fuse_access_in ai{R_OK, 0};
    Bytes b;
    append(b, ai);
    CHECK(fuse_call(s, FUSE_ACCESS, node, b).oh.error == 0);
    fuse_fsync_in fi{fh, 0, 0};
    b.clear();
    append(b, fi);
    CHECK(fuse_call(s, FUSE_FSYNC, node, b).oh.error == 0);
    fuse_flush_in fl{};
    fl.fh = fh;
    b.clear();
    append(b, fl);
    CHECK(fuse_call(s, FUSE_FLUSH, node, b).oh.error == 0);
    fuse_fallocate_in fa{};
    fa.fh = fh;
    fa.length = 8192;
    b.clear();
    append(b, fa);
    CHECK(fuse_call(s, FUSE_FALLOCATE, node, b).oh.error == 0);
    CHECK(fs::file_size(dir.path / "x") == 8192);
    fuse_lseek_in ls{};
    ls.fh = fh;
    ls.whence = SEEK_DATA;
    b.clear();
    append(b, ls);
    auto r = fuse_call(s, FUSE_LSEEK, node, b);
    CHECK((r.oh.error == 0 || r.oh.error == -ENXIO));
  }
  SECTION("forget releases inodes; the root is never forgotten") {
    std::ofstream(dir.path / "f");
    auto e = lookup_ok(s, FUSE_ROOT_ID, "f");
    lookup_ok(s, FUSE_ROOT_ID, "f");
    CHECK(s.inode_count() == 2);
    fuse_forget_in fi{1};
    Bytes b;
    append(b, fi);
    auto r = fuse_call(s, FUSE_FORGET, e.nodeid, b);
    CHECK(r.res.reply_len == 0);
    CHECK(s.inode_count() == 2);
    fuse_batch_forget_in bi{2, 0};
    b.clear();
    append(b, bi);
    fuse_forget_one one{e.nodeid, 1};
    append(b, one);
    fuse_forget_one root{FUSE_ROOT_ID, 100};
    append(b, root);
    r = fuse_call(s, FUSE_BATCH_FORGET, 0, b);
    CHECK(r.res.reply_len == 0);
    CHECK(s.inode_count() == 1);
    CHECK(fuse_call(s, FUSE_GETATTR, e.nodeid, Bytes(sizeof(fuse_getattr_in))).oh.error == -EBADF);
  }
  SECTION("syncfs") {
    CHECK(fuse_call(s, FUSE_SYNCFS, FUSE_ROOT_ID, Bytes(sizeof(fuse_syncfs_in))).oh.error == 0);
  }
  SECTION("unknown and unimplemented opcodes get ENOSYS") {
    CHECK(fuse_call(s, FUSE_GETXATTR, FUSE_ROOT_ID, Bytes(64)).oh.error == -ENOSYS);
    CHECK(fuse_call(s, 9999, FUSE_ROOT_ID, {}).oh.error == -ENOSYS);
    CHECK(fuse_call(s, FUSE_SETLKW, FUSE_ROOT_ID, Bytes(64)).oh.error == -ENOSYS);
  }
}

TEST_CASE("FUSE export confinement", "[dpu][fuse][security]") {
  TempDir outer;
  fs::create_directory(outer.path / "export");
  std::ofstream(outer.path / "secret") << "secret";
  fs::create_symlink(outer.path / "secret", outer.path / "export" / "abs");
  fs::create_symlink("../secret", outer.path / "export" / "rel");
  fs::create_symlink("/proc/self/root/etc/passwd", outer.path / "export" / "magic");
  fs::create_directory_symlink(outer.path, outer.path / "export" / "dirlink");
  FuseServer s({(outer.path / "export").string()});
  fuse_init(s);

  SECTION("dot-dot and slashes in names are refused") {
    CHECK(fuse_call(s, FUSE_LOOKUP, FUSE_ROOT_ID, name_arg("..")).oh.error == -EINVAL);
    CHECK(fuse_call(s, FUSE_LOOKUP, FUSE_ROOT_ID, name_arg("../secret")).oh.error == -EINVAL);
    CHECK(fuse_call(s, FUSE_LOOKUP, FUSE_ROOT_ID, name_arg("/etc")).oh.error == -EINVAL);
    CHECK(fuse_call(s, FUSE_LOOKUP, FUSE_ROOT_ID, name_arg(".")).oh.error == -EINVAL);
    CHECK(fuse_call(s, FUSE_LOOKUP, FUSE_ROOT_ID, name_arg(std::string(300, 'a'))).oh.error ==
          -ENAMETOOLONG);
    fuse_mkdir_in mi{0755, 0};
    Bytes b;
    append(b, mi);
    append_str(b, "../escaped");
    CHECK(fuse_call(s, FUSE_MKDIR, FUSE_ROOT_ID, b).oh.error == -EINVAL);
    CHECK_FALSE(fs::exists(outer.path / "escaped"));
  }
  SECTION("symlinks are looked up as links and never opened or followed") {
    for (std::string n : {"abs", "rel", "magic", "dirlink"}) {
      auto e = lookup_ok(s, FUSE_ROOT_ID, n);
      CHECK(S_ISLNK(e.attr.mode));
      fuse_open_in oi{};
      oi.flags = O_RDONLY;
      Bytes b;
      append(b, oi);
      CHECK(fuse_call(s, FUSE_OPEN, e.nodeid, b).oh.error == -EACCES);
      // a lookup "through" the link is a lookup under a non-directory
      CHECK(fuse_call(s, FUSE_LOOKUP, e.nodeid, name_arg("secret")).oh.error == -ENOTDIR);
      fuse_setattr_in sa{};
      sa.valid = FATTR_SIZE;
      b.clear();
      append(b, sa);
      CHECK(fuse_call(s, FUSE_SETATTR, e.nodeid, b).oh.error != 0);
    }
    CHECK(std::ifstream(outer.path / "secret").get() == 's');
    CHECK(fs::file_size(outer.path / "secret") == 6);
  }
  SECTION("create does not follow a symlink at the final name") {
    fuse_create_in in{};
    in.flags = O_WRONLY | O_TRUNC;
    in.mode = 0644;
    Bytes b;
    append(b, in);
    append_str(b, "abs");
    CHECK(fuse_call(s, FUSE_CREATE, FUSE_ROOT_ID, b).oh.error == -ELOOP);
    CHECK(fs::file_size(outer.path / "secret") == 6);
  }
}

TEST_CASE("FUSE malformed requests", "[dpu][fuse][security]") {
  TempDir dir;
  FuseServer s({dir.str()});
  fuse_init(s);

  SECTION("a request shorter than its header gets no reply") {
    Bytes req(20, 0);
    Bytes out(100);
    iovec rd{req.data(), req.size()}, wr{out.data(), out.size()};
    auto res = s.handle({&rd, 1}, {&wr, 1});
    CHECK(res.malformed);
    CHECK(res.reply_len == 0);
  }
  SECTION("a header length beyond the readable bytes is EINVAL") {
    Bytes req;
    fuse_in_header h{};
    h.len = 1000;
    h.opcode = FUSE_GETATTR;
    h.nodeid = FUSE_ROOT_ID;
    append(req, h);
    Bytes out(100);
    iovec rd{req.data(), req.size()}, wr{out.data(), out.size()};
    auto res = s.handle({&rd, 1}, {&wr, 1});
    CHECK(res.malformed);
    fuse_out_header oh;
    std::memcpy(&oh, out.data(), sizeof oh);
    CHECK(oh.error == -EINVAL);
  }
  SECTION("short arguments, unterminated names, bogus sizes") {
    CHECK(fuse_call(s, FUSE_GETATTR, FUSE_ROOT_ID, Bytes(3)).oh.error == -EINVAL);
    CHECK(fuse_call(s, FUSE_LOOKUP, FUSE_ROOT_ID, Bytes{'a', 'b'}).oh.error == -EINVAL);
    CHECK(fuse_call(s, FUSE_LOOKUP, 12345, name_arg("x")).oh.error == -EBADF);
    auto [node, fh] = create(s, FUSE_ROOT_ID, "w");
    fuse_write_in wi{};
    wi.fh = fh;
    wi.size = 1 << 30;
    Bytes b;
    append(b, wi);
    b.resize(b.size() + 10);
    auto r = fuse_call(s, FUSE_WRITE, node, b);
    CHECK(r.oh.error == -EINVAL);
    CHECK(r.res.malformed);
    wi.size = 0;
    wi.fh = 999;
    b.clear();
    append(b, wi);
    CHECK(fuse_call(s, FUSE_WRITE, node, b).oh.error == -EBADF);
    fuse_batch_forget_in bf{1000000, 0};
    b.clear();
    append(b, bf);
    CHECK(fuse_call(s, FUSE_BATCH_FORGET, 0, b).res.malformed);
  }
  SECTION("no room for the reply header: nothing written") {
    Bytes req;
    fuse_in_header h{};
    h.len = sizeof h;
    h.opcode = FUSE_STATFS;
    h.nodeid = FUSE_ROOT_ID;
    append(req, h);
    Bytes out(8, 0x55);
    iovec rd{req.data(), req.size()}, wr{out.data(), out.size()};
    auto res = s.handle({&rd, 1}, {&wr, 1});
    CHECK(res.reply_len == 0);
    CHECK(out == Bytes(8, 0x55));
  }
  SECTION("a reply that does not fit becomes EIO") {
    auto r = fuse_call(s, FUSE_STATFS, FUSE_ROOT_ID, {}, sizeof(fuse_out_header) + 8);
    CHECK(r.oh.error == -EIO);
  }
}
