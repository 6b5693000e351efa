#include "fuzz_entry.h"

#include "fuse_server.h"
#include "guest_memory.h"
#include "virtqueue.h"

#include <linux/fuse.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <vector>

namespace kab::dpu::fuzz {

std::string scratch_dir(const std::string& prefix) {
  const char* tmp = getenv("TMPDIR");
  std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/" + prefix + "-XXXXXX";
  if (!mkdtemp(tmpl.data()))
    throw std::runtime_error("mkdtemp " + tmpl);
  return tmpl;
}

static void touch(const std::vector<iovec>& v) {
  volatile uint8_t sink = 0;
  for (const auto& i : v) {
    auto* p = static_cast<uint8_t*>(i.iov_base);
    if (i.iov_len) {
      sink = sink + p[0];
      sink = sink + p[i.iov_len - 1];
    }
  }
  (void)sink;
}

int walker_one_input(const uint8_t* data, size_t size) {
  if (size < 5)
    return 0;
  uint32_t num = 1u << (data[0] % 9);  // 1..256
  uint16_t head, avail_idx;
  std::memcpy(&head, data + 1, 2);
  std::memcpy(&avail_idx, data + 3, 2);
  data += 5;
  size -= 5;
  // Guest memory: exactly the input (so every out-of-bounds read is a sanitizer report), but at
  // least big enough for the rings; a second region right after it tests splitting.
  size_t ring_bytes = num * 16 + 6 + num * 2 + 6 + num * 8 + 8;
  std::vector<uint8_t> ram(std::max(size, ring_bytes));
  std::memcpy(ram.data(), data, size);
  std::vector<uint8_t> ram2(64);
  GuestMemory mem;
  mem.add_region(0x1000, ram.size(), 0x1000, ram.data());
  mem.add_region(0x1000 + ram.size(), ram2.size(), 0x1000 + ram.size(), ram2.data());

  Chain c;
  walk_chain(mem, ram.data(), num, head, c);
  touch(c.readable);
  touch(c.writable);

  size_t avail_off = num * 16;
  size_t used_off = (avail_off + 6 + num * 2 + 3) & ~size_t(3);
  if (used_off + 6 + num * 8 > ram.size())
    return 0;
  Virtqueue vq;
  if (!vq.configure(&mem, num, 0x1000, 0x1000 + avail_off, 0x1000 + used_off, head & 1))
    return 0;
  vq.set_last_avail(avail_idx);
  for (uint32_t i = 0; i < 2 * num; ++i) {
    auto h = vq.pop();
    if (!h)
      break;
    if (vq.walk(*h, c) == WalkError::none) {
      touch(c.readable);
      touch(c.writable);
    }
    vq.push_used(*h, uint32_t(c.writable_len));
  }
  vq.enable_kicks();
  return 0;
}

namespace {

// `n` pieces covering `size` bytes (copied from `src` when given), each in its own heap block so
// an overrun of one is caught.
std::vector<iovec> scatter(const uint8_t* src, size_t size, unsigned n,
                           std::vector<std::unique_ptr<uint8_t[]>>& blocks) {
  std::vector<iovec> v;
  size_t off = 0;
  for (unsigned i = 0; i < n; ++i) {
    size_t len = i + 1 == n ? size - off : size / n;
    blocks.emplace_back(new uint8_t[len ? len : 1]);
    if (src && len)
      std::memcpy(blocks.back().get(), src + off, len);
    v.push_back(iovec{blocks.back().get(), len});
    off += len;
  }
  return v;
}

struct FuseFixture {
  std::string dir;
  std::unique_ptr<FuseServer> server;
  FuseFixture() {
    dir = scratch_dir("kab-dpu-fuzz");
    server = std::make_unique<FuseServer>(FuseOptions{dir, true});
    init();
  }
  void init() {
    fuse_in_header h{};
    fuse_init_in in{};
    in.major = 7;
    in.minor = 38;
    in.flags = FUSE_WRITEBACK_CACHE | FUSE_MAX_PAGES | FUSE_DO_READDIRPLUS;
    std::vector<uint8_t> req(sizeof h + sizeof in);
    h.len = uint32_t(req.size());
    h.opcode = FUSE_INIT;
    std::memcpy(req.data(), &h, sizeof h);
    std::memcpy(req.data() + sizeof h, &in, sizeof in);
    std::vector<uint8_t> out(4096);
    iovec rd{req.data(), req.size()}, wr{out.data(), out.size()};
    server->handle({&rd, 1}, {&wr, 1});
  }
  ~FuseFixture() {
    server.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};
} // namespace

int fuse_one_input(const uint8_t* data, size_t size) {
  static FuseFixture fx;
  if (size < 3)
    return 0;
  uint16_t wsize;
  std::memcpy(&wsize, data, 2);
  // Split byte: 1..4 pieces, or with the high bit past IOV_MAX (1024..3056 pieces, readable and
  // writable alike), the case pwritev/preadv must take in several calls.
  unsigned split = data[2] & 0x80 ? 1024 + (data[2] & 0x7f) * 16u : data[2] % 4 + 1;
  std::vector<uint8_t> req(data + 3, data + size);
  if (req.size() >= sizeof(fuse_in_header)) {
    fuse_in_header h;
    std::memcpy(&h, req.data(), sizeof h);
    // FALLOCATE runs, bounded so the fuzzer cannot fill the disk: at most 1 MiB below 16 MiB.
    if (h.opcode == FUSE_FALLOCATE && req.size() >= sizeof h + sizeof(fuse_fallocate_in)) {
      fuse_fallocate_in fa;
      std::memcpy(&fa, req.data() + sizeof h, sizeof fa);
      fa.offset %= 16u << 20;
      fa.length %= 1u << 20;
      std::memcpy(req.data() + sizeof h, &fa, sizeof fa);
    }
  }
  std::vector<std::unique_ptr<uint8_t[]>> pieces, outs;
  std::vector<iovec> rd = scatter(req.data(), req.size(), split, pieces);
  std::vector<iovec> wr = scatter(nullptr, wsize, split > 4 ? split : 1, outs);
  FuseResult r = fx.server->handle(rd, wr);
  if (r.reply_len > wsize)
    __builtin_trap();
  // DESTROY (or a reset) ends the session: the next input starts a new one, as a guest would.
  if (!fx.server->initialized())
    fx.init();
  return 0;
}

} // namespace kab::dpu::fuzz
