// Test helpers for kab-dpu: byte builders, a scratch directory, and FUSE calls in memory.
#pragma once

#include "fuse_server.h"

#include <linux/fuse.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace kab::dpu::test {

using Bytes = std::vector<uint8_t>;

template <class T> void append(Bytes& b, const T& t) {
  auto* p = reinterpret_cast<const uint8_t*>(&t);
  b.insert(b.end(), p, p + sizeof t);
}
inline void append_str(Bytes& b, const std::string& s) {
  b.insert(b.end(), s.begin(), s.end());
  b.push_back(0);
}

// A fresh directory under /tmp, removed at scope exit.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char tmpl[] = "/tmp/kab-dpu-test-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string str() const { return path.string(); }
};

// A FUSE name argument: the bytes and their NUL.
inline Bytes name_arg(const std::string& n) {
  Bytes b;
  append_str(b, n);
  return b;
}

struct FuseReply {
  FuseResult res;
  fuse_out_header oh{};
  Bytes body;
  template <class T> T as() const {
    T t{};
    std::memcpy(&t, body.data(), std::min(sizeof t, body.size()));
    return t;
  }
};

inline FuseReply fuse_call(FuseServer& s, uint32_t opcode, uint64_t nodeid, const Bytes& args,
                           size_t out_size = 8192, uint64_t unique = 7) {
  Bytes req;
  fuse_in_header h{};
  h.len = uint32_t(sizeof h + args.size());
  h.opcode = opcode;
  h.unique = unique;
  h.nodeid = nodeid;
  append(req, h);
  req.insert(req.end(), args.begin(), args.end());
  Bytes out(out_size, 0xee);
  iovec rd{req.data(), req.size()};
  iovec wr{out.data(), out.size()};
  FuseReply r;
  r.res = s.handle({&rd, 1}, {&wr, 1});
  if (r.res.reply_len >= sizeof(fuse_out_header)) {
    std::memcpy(&r.oh, out.data(), sizeof r.oh);
    r.body.assign(out.begin() + sizeof r.oh, out.begin() + r.res.reply_len);
  }
  return r;
}

inline void fuse_init(FuseServer& s, uint32_t flags = FUSE_ASYNC_READ | FUSE_BIG_WRITES |
                                                      FUSE_MAX_PAGES | FUSE_WRITEBACK_CACHE |
                                                      FUSE_DO_READDIRPLUS) {
  fuse_init_in in{};
  in.major = 7;
  in.minor = 38;
  in.max_readahead = 65536;
  in.flags = flags;
  Bytes b;
  append(b, in);
  fuse_call(s, FUSE_INIT, 0, b);
}

} // namespace kab::dpu::test
