// A FUSE server (kernel protocol 7.x, include/uapi/linux/fuse.h) that passes requests through
// to a host directory. Guests are untrusted: every request is decoded from copies of its bytes,
// every length is checked, and every path operation is one validated name component relative to
// an O_PATH handle of a directory inside the export, so nothing outside it can be reached
// through "..", absolute or magic symlinks.
#pragma once

#include "dpu_model.h"
#include "fuse_io.h"

#include <linux/fuse.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <unordered_map>

namespace kab::dpu {

struct FuseOptions {
  std::string shared_dir;
  bool writeback = false;           // offer FUSE_WRITEBACK_CACHE
  uint32_t max_write = 1u << 20;    // bytes per WRITE (max_pages = max_write / 4096)
  double timeout_s = 1.0;           // entry and attribute validity
  // Limits on what the guest holds, so it cannot use up the daemon's descriptors: inodes it
  // looked up and has not forgotten (each an O_PATH fd), files and directories it has open.
  // Past a limit the guest gets ENFILE (inodes) or EMFILE (handles). 0: share what RLIMIT_NOFILE
  // leaves after the descriptors already open and k_reserved_fds for the control plane.
  uint64_t max_inodes = 0;
  uint64_t max_handles = 0;
  // When >= 0, every entry the guest creates is owned by this uid/gid (kab-dpu running as
  // root), and SETATTR may change ownership to nothing else (EPERM).
  int64_t owner_uid = -1;
  int64_t owner_gid = -1;
  // Keep set-user-ID and set-group-ID bits in the modes the guest sets. Off: they are removed
  // (set-group-ID stays on directories), so a guest cannot leave a setuid file on the host.
  bool allow_setid = false;
};

// Descriptors kept free for the control plane (vhost-user messages carry up to 8, each queue
// holds 4 eventfds) and for the short-lived descriptors of requests in flight.
inline constexpr uint64_t k_reserved_fds = 256;

struct FuseResult {
  uint32_t opcode = 0;
  uint32_t reply_len = 0;  // bytes written into the writable buffers (0: no reply)
  int error = 0;           // errno sent to the guest (0: success)
  bool malformed = false;  // the request itself was bad (short header, bogus lengths, ...)
  uint64_t bytes_read = 0;     // file data returned by READ
  uint64_t bytes_written = 0;  // file data stored by WRITE
  bool timed_out = false;      // interrupted past the request bound (request_deadline.h)
};

class FuseServer {
public:
  // Opens the shared directory; throws std::runtime_error naming the directory and the cause.
  // `throttle` (may be null) is charged with every READ/WRITE data byte.
  explicit FuseServer(FuseOptions opts, DmaThrottle* throttle = nullptr);
  ~FuseServer();
  FuseServer(const FuseServer&) = delete;
  FuseServer& operator=(const FuseServer&) = delete;

  // Serves one request: `readable` holds fuse_in_header and its arguments, `writable` receives
  // fuse_out_header and the reply. Thread-safe; never throws for guest input.
  FuseResult handle(std::span<const iovec> readable, std::span<const iovec> writable);

  // Forgets every inode but the root and closes every handle, as after DESTROY; the next
  // request must be INIT (a device reset, e.g. a guest reboot).
  void reset();

  size_t inode_count() const;
  size_t handle_count() const;
  bool initialized() const { return m_initialized.load(); }
  uint64_t max_inodes() const { return m_opts.max_inodes; }
  uint64_t max_handles() const { return m_opts.max_handles; }
  // Requests refused because a limit above was reached.
  uint64_t limit_refusals() const { return m_limit_refusals.load(); }
  uint64_t init_count() const { return m_inits.load(); }

private:
  struct Inode;
  struct Handle;
  struct Request;
  using InodePtr = std::shared_ptr<Inode>;

  InodePtr inode(uint64_t nodeid) const;
  std::shared_ptr<Handle> handle_of(uint64_t fh) const;
  // Takes ownership of fd; returns 0 (fd closed) when the handle limit is reached.
  uint64_t add_handle(int fd, bool dir);
  // Looks `name` up under `parent`, taking one lookup reference on success.
  int lookup(const Inode& parent, const std::string& name, ::fuse_entry_out& out);
  // The same, under a directory fd (O_PATH or open).
  int lookup_in(int dirfd, const std::string& name, ::fuse_entry_out& out);
  void forget(uint64_t nodeid, uint64_t n);
  void fill_entry(::fuse_entry_out& e, uint64_t nodeid, const struct stat& st) const;
  int reopen(const Inode& ino, int flags) const;
  void chown_new(int dirfd, const std::string& name, uint32_t uid, uint32_t gid) const;
  // The mode bits the guest may set (see FuseOptions::allow_setid).
  mode_t settable(mode_t mode, bool dir) const;
  void clear_state();

  // one function per opcode; each returns an errno (0 = replied already)
  int op_init(Request& r);
  int op_lookup(Request& r);
  int op_forget(Request& r);
  int op_batch_forget(Request& r);
  int op_getattr(Request& r);
  int op_setattr(Request& r);
  int op_readlink(Request& r);
  int op_symlink(Request& r);
  int op_mknod(Request& r);
  int op_mkdir(Request& r);
  int op_unlink(Request& r, bool dir);
  int op_rename(Request& r, bool v2);
  int op_link(Request& r);
  int op_open(Request& r, bool dir);
  int op_create(Request& r);
  int op_read(Request& r);
  int op_write(Request& r);
  int op_statfs(Request& r);
  int op_release(Request& r);
  int op_fsync(Request& r);
  int op_flush(Request& r);
  int op_readdir(Request& r, bool plus);
  int op_access(Request& r);
  int op_fallocate(Request& r);
  int op_lseek(Request& r);
  int op_destroy(Request& r);
  int op_syncfs(Request& r);

  FuseOptions m_opts;
  DmaThrottle* m_throttle;
  int m_root_fd = -1;
  std::atomic<bool> m_initialized{false};
  std::atomic<bool> m_writeback{false};
  uint32_t m_minor = 0;
  bool m_is_root = false;
  std::atomic<uint64_t> m_limit_refusals{0};
  std::atomic<uint64_t> m_inits{0};

  mutable std::mutex m_inodes_mutex;
  std::unordered_map<uint64_t, InodePtr> m_inodes;
  std::map<std::pair<uint64_t, uint64_t>, uint64_t> m_by_dev_ino;
  uint64_t m_next_nodeid = 2;

  mutable std::shared_mutex m_handles_mutex;
  std::unordered_map<uint64_t, std::shared_ptr<Handle>> m_handles;
  uint64_t m_next_fh = 1;
};

// Validates one path component sent by the guest: non-empty, no '/', not "." or "..",
// at most NAME_MAX bytes. Returns 0 or an errno.
int check_name(const std::string& name);

} // namespace kab::dpu
