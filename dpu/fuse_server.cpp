#include "fuse_server.h"

#include "log.h"
#include "request_deadline.h"

#include <fcntl.h>
#include <linux/fuse.h>
#include <linux/openat2.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <system_error>
#include <thread>

namespace kab::dpu {

namespace {

constexpr size_t k_out_header = sizeof(fuse_out_header);
constexpr size_t k_path_max = 4096;

std::string proc_path(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

int open_beneath(int dirfd, const std::string& name, int flags, mode_t mode = 0) {
  open_how how{};
  how.flags = uint64_t(flags);
  how.mode = (flags & O_CREAT) ? mode : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  int fd = int(syscall(SYS_openat2, dirfd, name.c_str(), &how, sizeof how));
  if (fd < 0 && errno == ENOSYS)
    fd = openat(dirfd, name.c_str(), flags, mode);  // the name is one checked component
  return fd;
}

bool pwritev_all(int fd, std::vector<iovec> iov, off_t off, uint64_t& done) {
  done = 0;
  size_t i = 0;
  while (i < iov.size()) {
    int cnt = int(std::min<size_t>(iov.size() - i, IOV_MAX));
    ssize_t n = pwritev(fd, iov.data() + i, cnt, off + off_t(done));
    if (n < 0) {
      if (errno == EINTR && !request_expired())
        continue;
      return false;
    }
    if (n == 0)
      return true;
    done += uint64_t(n);
    size_t k = size_t(n);
    while (i < iov.size() && k >= iov[i].iov_len) {
      k -= iov[i].iov_len;
      ++i;
    }
    if (k > 0) {
      iov[i].iov_base = static_cast<uint8_t*>(iov[i].iov_base) + k;
      iov[i].iov_len -= k;
    }
  }
  return true;
}

bool preadv_all(int fd, std::vector<iovec> iov, off_t off, uint64_t& done) {
  done = 0;
  size_t i = 0;
  while (i < iov.size()) {
    int cnt = int(std::min<size_t>(iov.size() - i, IOV_MAX));
    ssize_t n = preadv(fd, iov.data() + i, cnt, off + off_t(done));
    if (n < 0) {
      if (errno == EINTR && !request_expired())
        continue;
      return false;
    }
    if (n == 0)
      return true;  // end of file
    done += uint64_t(n);
    size_t k = size_t(n);
    while (i < iov.size() && k >= iov[i].iov_len) {
      k -= iov[i].iov_len;
      ++i;
    }
    if (k > 0) {
      iov[i].iov_base = static_cast<uint8_t*>(iov[i].iov_base) + k;
      iov[i].iov_len -= k;
    }
  }
  return true;
}

void fill_attr(fuse_attr& a, const struct stat& st) {
  a = {};
  a.ino = st.st_ino;
  a.size = uint64_t(st.st_size);
  a.blocks = uint64_t(st.st_blocks);
  a.atime = uint64_t(st.st_atim.tv_sec);
  a.mtime = uint64_t(st.st_mtim.tv_sec);
  a.ctime = uint64_t(st.st_ctim.tv_sec);
  a.atimensec = uint32_t(st.st_atim.tv_nsec);
  a.mtimensec = uint32_t(st.st_mtim.tv_nsec);
  a.ctimensec = uint32_t(st.st_ctim.tv_nsec);
  a.mode = st.st_mode;
  a.nlink = uint32_t(st.st_nlink);
  a.uid = st.st_uid;
  a.gid = st.st_gid;
  a.rdev = uint32_t(st.st_rdev);
  a.blksize = uint32_t(st.st_blksize);
}

} // namespace

int check_name(const std::string& name) {
  if (name.empty() || name == "." || name == "..")
    return EINVAL;
  if (name.find('/') != std::string::npos)
    return EINVAL;
  if (name.size() > NAME_MAX)
    return ENAMETOOLONG;
  return 0;
}

struct FuseServer::Inode {
  int fd = -1;  // O_PATH
  uint64_t nodeid = 0;
  uint64_t dev = 0, ino = 0;
  mode_t type = 0;
  uint64_t nlookup = 0;  // guarded by m_inodes_mutex
  ~Inode() {
    if (fd >= 0)
      ::close(fd);
  }
};

struct FuseServer::Handle {
  int fd = -1;
  bool dir = false;
  std::mutex mutex;  // serialises seek + getdents of a directory
  ~Handle() {
    if (fd >= 0)
      ::close(fd);
  }
};

struct FuseServer::Request {
  fuse_in_header h{};
  IovReader in;
  IovWriter out;
  FuseResult& res;
  bool replied = false;

  Request(std::span<const iovec> r, std::span<const iovec> w, FuseResult& result)
      : in(r, UINT64_MAX), out(w), res(result) {}

  // Writes fuse_out_header + the parts; replies EIO when they do not fit.
  int reply(std::initializer_list<std::pair<const void*, size_t>> parts) {
    size_t len = k_out_header;
    for (auto& p : parts)
      len += p.second;
    if (len > out.capacity())
      return EIO;
    size_t off = k_out_header;
    for (auto& p : parts) {
      out.write_at(off, p.first, p.second);
      off += p.second;
    }
    return header(0, len);
  }
  template <class T> int reply_struct(const T& t) { return reply({{&t, sizeof t}}); }
  int header(int error, size_t len) {
    fuse_out_header oh{uint32_t(len), -error, h.unique};
    if (!out.write_at(0, &oh, sizeof oh)) {
      log_guest_error("request " + std::to_string(h.unique) + " (opcode " +
                      std::to_string(h.opcode) + "): no room for a reply header");
      res.reply_len = 0;
      replied = true;
      return 0;
    }
    res.reply_len = uint32_t(len);
    res.error = error;
    replied = true;
    return 0;
  }
  bool name(std::string& s) { return in.read_cstring(s, k_path_max); }
};

FuseServer::FuseServer(FuseOptions opts, DmaThrottle* throttle)
    : m_opts(std::move(opts)), m_throttle(throttle) {
  m_root_fd = ::open(m_opts.shared_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (m_root_fd < 0)
    throw std::runtime_error("shared directory " + m_opts.shared_dir + ": " +
                             std::strerror(errno));
  struct stat st;
  if (fstat(m_root_fd, &st) != 0)
    throw std::runtime_error("shared directory " + m_opts.shared_dir + ": " +
                             std::strerror(errno));
  auto root = std::make_shared<Inode>();
  root->fd = ::dup(m_root_fd);
  root->nodeid = FUSE_ROOT_ID;
  root->dev = st.st_dev;
  root->ino = st.st_ino;
  root->type = st.st_mode & S_IFMT;
  root->nlookup = 1;
  m_inodes[FUSE_ROOT_ID] = root;
  m_by_dev_ino[{root->dev, root->ino}] = FUSE_ROOT_ID;
  m_is_root = geteuid() == 0;
  if (m_opts.max_write < 4096)
    m_opts.max_write = 4096;
  if (m_opts.max_inodes == 0 || m_opts.max_handles == 0) {
    // What the descriptor limit leaves: minus those open now and the control plane's reserve.
    rlimit nofile{};
    uint64_t limit = getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY
                         ? uint64_t(nofile.rlim_cur)
                         : 1u << 20;
    uint64_t open_now = 0;
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
      ++open_now;
    uint64_t budget = limit > open_now + k_reserved_fds + 16 ? limit - open_now - k_reserved_fds
                                                             : 16;
    if (m_opts.max_inodes == 0)
      m_opts.max_inodes = std::max<uint64_t>(8, budget * 3 / 4);
    if (m_opts.max_handles == 0)
      m_opts.max_handles = std::max<uint64_t>(8, budget - std::min(budget, m_opts.max_inodes));
  }
}

FuseServer::~FuseServer() {
  if (m_root_fd >= 0)
    ::close(m_root_fd);
}

size_t FuseServer::inode_count() const {
  std::lock_guard lock(m_inodes_mutex);
  return m_inodes.size();
}

size_t FuseServer::handle_count() const {
  std::shared_lock lock(m_handles_mutex);
  return m_handles.size();
}

FuseServer::InodePtr FuseServer::inode(uint64_t nodeid) const {
  std::lock_guard lock(m_inodes_mutex);
  auto it = m_inodes.find(nodeid);
  return it == m_inodes.end() ? nullptr : it->second;
}

std::shared_ptr<FuseServer::Handle> FuseServer::handle_of(uint64_t fh) const {
  std::shared_lock lock(m_handles_mutex);
  auto it = m_handles.find(fh);
  return it == m_handles.end() ? nullptr : it->second;
}

uint64_t FuseServer::add_handle(int fd, bool dir) {
  auto h = std::make_shared<Handle>();
  h->fd = fd;
  h->dir = dir;
  std::unique_lock lock(m_handles_mutex);
  if (m_handles.size() >= m_opts.max_handles) {
    lock.unlock();
    ++m_limit_refusals;
    log_guest_error("open handles at the limit of " + std::to_string(m_opts.max_handles) +
                    "; EMFILE");
    return 0;  // h closes fd
  }
  uint64_t id = m_next_fh++;
  m_handles[id] = std::move(h);
  return id;
}

void FuseServer::fill_entry(fuse_entry_out& e, uint64_t nodeid, const struct stat& st) const {
  e = {};
  e.nodeid = nodeid;
  e.generation = 0;
  double secs = std::floor(m_opts.timeout_s);
  e.entry_valid = e.attr_valid = uint64_t(secs);
  e.entry_valid_nsec = e.attr_valid_nsec = uint32_t((m_opts.timeout_s - secs) * 1e9);
  fill_attr(e.attr, st);
}

int FuseServer::lookup(const Inode& parent, const std::string& name, fuse_entry_out& out) {
  if (!S_ISDIR(parent.type))
    return ENOTDIR;
  return lookup_in(parent.fd, name, out);
}

int FuseServer::lookup_in(int dirfd, const std::string& name, fuse_entry_out& out) {
  if (int e = check_name(name))
    return e;
  int fd = open_beneath(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return errno;
  struct stat st;
  if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
    int e = errno;
    ::close(fd);
    return e;
  }
  uint64_t nodeid;
  {
    std::lock_guard lock(m_inodes_mutex);
    auto it = m_by_dev_ino.find({st.st_dev, st.st_ino});
    if (it != m_by_dev_ino.end()) {
      nodeid = it->second;
      ++m_inodes[nodeid]->nlookup;
      ::close(fd);
    } else if (m_inodes.size() >= m_opts.max_inodes) {
      ::close(fd);
      ++m_limit_refusals;
      log_guest_error("inodes at the limit of " + std::to_string(m_opts.max_inodes) +
                      " (LOOKUP without FORGET); ENFILE");
      return ENFILE;
    } else {
      auto ino = std::make_shared<Inode>();
      ino->fd = fd;
      ino->nodeid = nodeid = m_next_nodeid++;
      ino->dev = st.st_dev;
      ino->ino = st.st_ino;
      ino->type = st.st_mode & S_IFMT;
      ino->nlookup = 1;
      m_inodes[nodeid] = ino;
      m_by_dev_ino[{st.st_dev, st.st_ino}] = nodeid;
    }
  }
  fill_entry(out, nodeid, st);
  return 0;
}

void FuseServer::forget(uint64_t nodeid, uint64_t n) {
  if (nodeid == FUSE_ROOT_ID)
    return;
  InodePtr dead;  // closed outside the lock
  std::lock_guard lock(m_inodes_mutex);
  auto it = m_inodes.find(nodeid);
  if (it == m_inodes.end())
    return;
  Inode& ino = *it->second;
  ino.nlookup = n >= ino.nlookup ? 0 : ino.nlookup - n;
  if (ino.nlookup == 0) {
    m_by_dev_ino.erase({ino.dev, ino.ino});
    dead = std::move(it->second);
    m_inodes.erase(it);
  }
}

int FuseServer::reopen(const Inode& ino, int flags) const {
  if (!S_ISREG(ino.type) && !S_ISDIR(ino.type))
    return -EACCES;  // no devices, fifos, sockets or symlinks of the host
  flags &= ~(O_NOFOLLOW | O_CREAT | O_EXCL | O_NOCTTY | O_DIRECT | O_PATH);
  int fd = ::open(proc_path(ino.fd).c_str(), flags | O_CLOEXEC);
  return fd < 0 ? -errno : fd;
}

void FuseServer::chown_new(int dirfd, const std::string& name, uint32_t uid, uint32_t gid) const {
  if (m_opts.owner_uid >= 0)
    uid = uint32_t(m_opts.owner_uid);
  if (m_opts.owner_gid >= 0)
    gid = uint32_t(m_opts.owner_gid);
  if (m_is_root && fchownat(dirfd, name.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) != 0)
    log_msg(LogLevel::debug, "chown of new entry " + name + " failed: " + std::strerror(errno));
}

mode_t FuseServer::settable(mode_t mode, bool dir) const {
  mode &= 07777;
  if (!m_opts.allow_setid)
    mode &= dir ? ~mode_t(S_ISUID) : ~mode_t(S_ISUID | S_ISGID);
  return mode;
}

FuseResult FuseServer::handle(std::span<const iovec> readable, std::span<const iovec> writable) {
  FuseResult res;
  Request r(readable, writable, res);
  if (!r.in.read(r.h)) {
    res.malformed = true;
    log_guest_error("FUSE request shorter than its header (" + std::to_string(r.in.remaining()) +
                    " bytes)");
    // Without a header there is no unique id to answer; the chain is completed empty.
    return res;
  }
  res.opcode = r.h.opcode;
  uint64_t body = r.in.remaining();
  if (r.h.len < sizeof(fuse_in_header) || r.h.len - sizeof(fuse_in_header) > body) {
    res.malformed = true;
    log_guest_error("FUSE request " + std::to_string(r.h.unique) + ": header length " +
                    std::to_string(r.h.len) + " does not match " +
                    std::to_string(body + sizeof(fuse_in_header)) + " readable bytes");
    if (r.h.opcode != FUSE_FORGET && r.h.opcode != FUSE_BATCH_FORGET)
      r.header(EINVAL, k_out_header);
    return res;
  }
  r.in = IovReader(readable, r.h.len);
  r.in.skip(sizeof(fuse_in_header));

  int err;
  if (!m_initialized && r.h.opcode != FUSE_INIT) {
    err = r.h.opcode == FUSE_FORGET || r.h.opcode == FUSE_BATCH_FORGET ? 0 : EIO;
    if (err == 0)
      return res;
  } else {
    switch (r.h.opcode) {
    case FUSE_INIT: err = op_init(r); break;
    case FUSE_LOOKUP: err = op_lookup(r); break;
    case FUSE_FORGET: err = op_forget(r); break;
    case FUSE_BATCH_FORGET: err = op_batch_forget(r); break;
    case FUSE_GETATTR: err = op_getattr(r); break;
    case FUSE_SETATTR: err = op_setattr(r); break;
    case FUSE_READLINK: err = op_readlink(r); break;
    case FUSE_SYMLINK: err = op_symlink(r); break;
    case FUSE_MKNOD: err = op_mknod(r); break;
    case FUSE_MKDIR: err = op_mkdir(r); break;
    case FUSE_UNLINK: err = op_unlink(r, false); break;
    case FUSE_RMDIR: err = op_unlink(r, true); break;
    case FUSE_RENAME: err = op_rename(r, false); break;
    case FUSE_RENAME2: err = op_rename(r, true); break;
    case FUSE_LINK: err = op_link(r); break;
    case FUSE_OPEN: err = op_open(r, false); break;
    case FUSE_OPENDIR: err = op_open(r, true); break;
    case FUSE_CREATE: err = op_create(r); break;
    case FUSE_READ: err = op_read(r); break;
    case FUSE_WRITE: err = op_write(r); break;
    case FUSE_STATFS: err = op_statfs(r); break;
    case FUSE_RELEASE:
    case FUSE_RELEASEDIR: err = op_release(r); break;
    case FUSE_FSYNC:
    case FUSE_FSYNCDIR: err = op_fsync(r); break;
    case FUSE_FLUSH: err = op_flush(r); break;
    case FUSE_READDIR: err = op_readdir(r, false); break;
    case FUSE_READDIRPLUS: err = op_readdir(r, true); break;
    case FUSE_ACCESS: err = op_access(r); break;
    case FUSE_FALLOCATE: err = op_fallocate(r); break;
    case FUSE_LSEEK: err = op_lseek(r); break;
    case FUSE_DESTROY: err = op_destroy(r); break;
    case FUSE_SYNCFS: err = op_syncfs(r); break;
    case FUSE_INTERRUPT: return res;  // never answered; requests are not interruptible here
    default: err = ENOSYS; break;
    }
  }
  if (err != 0 && !r.replied) {
    if (request_expired()) {
      // Interrupted past its bound: whatever the call returned, the guest learns why.
      err = ETIMEDOUT;
      res.timed_out = true;
    }
    r.header(err, k_out_header);
  }
  return res;
}

// A request whose fixed argument is missing or short is malformed.
#define READ_ARG(var)                                                                  \
  do {                                                                                 \
    if (!r.in.read(var)) {                                                             \
      r.res.malformed = true;                                                          \
      log_guest_error("FUSE " + std::to_string(r.h.opcode) + ": argument too short");  \
      return EINVAL;                                                                   \
    }                                                                                  \
  } while (0)

#define READ_NAME(var)                                                                       \
  do {                                                                                       \
    if (!r.name(var)) {                                                                      \
      r.res.malformed = true;                                                                \
      log_guest_error("FUSE " + std::to_string(r.h.opcode) + ": name missing or unterminated"); \
      return EINVAL;                                                                         \
    }                                                                                        \
  } while (0)

#define GET_INODE(var, id)  \
  InodePtr var = inode(id); \
  if (!var)                 \
    return EBADF;

int FuseServer::op_init(Request& r) {
  fuse_init_in in{};
  // Older kernels send a shorter fuse_init_in; the missing fields read as zero.
  size_t n = std::min<uint64_t>(sizeof in, r.in.remaining());
  if (n < 16 || !r.in.read(&in, n)) {
    r.res.malformed = true;
    return EINVAL;
  }
  fuse_init_out out{};
  out.major = FUSE_KERNEL_VERSION;
  out.minor = FUSE_KERNEL_MINOR_VERSION;
  if (in.major < 7)
    return EPROTO;
  if (in.major > 7)  // the kernel will retry with our major
    return r.reply({{&out, sizeof out}});
  // A new session: what the last one looked up and opened is forgotten (a guest that sends
  // INIT in a loop holds nothing).
  if (m_initialized)
    clear_state();
  m_minor = in.minor;
  uint64_t want = FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_ATOMIC_O_TRUNC |
                  FUSE_PARALLEL_DIROPS | FUSE_MAX_PAGES | FUSE_DO_READDIRPLUS |
                  FUSE_READDIRPLUS_AUTO | FUSE_ASYNC_DIO | FUSE_AUTO_INVAL_DATA |
                  FUSE_CACHE_SYMLINKS;
  if (m_opts.writeback)
    want |= FUSE_WRITEBACK_CACHE;
  uint64_t offered = in.flags;
  if (in.flags & FUSE_INIT_EXT)
    offered |= uint64_t(in.flags2) << 32;
  uint64_t flags = offered & want;
  out.flags = uint32_t(flags);
  out.flags2 = uint32_t(flags >> 32);
  out.max_readahead = in.max_readahead;
  out.max_background = 64;
  out.congestion_threshold = 48;
  out.max_write = m_opts.max_write;
  out.time_gran = 1;
  out.max_pages = uint16_t(std::min<uint32_t>(m_opts.max_write / 4096, 0xffff));
  m_writeback = (flags & FUSE_WRITEBACK_CACHE) != 0;
  m_initialized = true;
  // Logged once at the default level: a guest that sends INIT in a loop cannot flood the log.
  uint64_t inits = ++m_inits;
  log_msg(inits == 1 ? LogLevel::info : LogLevel::debug, "FUSE INIT: protocol 7." + std::to_string(in.minor) + ", flags 0x" +
                              [&] { char b[32]; snprintf(b, sizeof b, "%llx", (unsigned long long)flags); return std::string(b); }() +
                              (m_writeback ? ", writeback cache on" : ""));
  size_t size = in.minor < 23 ? FUSE_COMPAT_22_INIT_OUT_SIZE : sizeof out;
  return r.reply({{&out, size}});
}

int FuseServer::op_lookup(Request& r) {
  std::string name;
  READ_NAME(name);
  GET_INODE(parent, r.h.nodeid);
  fuse_entry_out e;
  if (int err = lookup(*parent, name, e))
    return err;
  return r.reply_struct(e);
}

int FuseServer::op_forget(Request& r) {
  fuse_forget_in in;
  if (!r.in.read(in)) {
    r.res.malformed = true;
    log_guest_error("FORGET: argument too short");
  } else {
    forget(r.h.nodeid, in.nlookup);
  }
  r.replied = true;  // FORGET has no reply
  return 0;
}

int FuseServer::op_batch_forget(Request& r) {
  r.replied = true;
  fuse_batch_forget_in in;
  if (!r.in.read(in)) {
    r.res.malformed = true;
    log_guest_error("BATCH_FORGET: argument too short");
    return 0;
  }
  for (uint32_t i = 0; i < in.count; ++i) {
    fuse_forget_one one;
    if (!r.in.read(one)) {
      r.res.malformed = true;
      log_guest_error("BATCH_FORGET: count " + std::to_string(in.count) + " exceeds the request");
      return 0;
    }
    forget(one.nodeid, one.nlookup);
  }
  return 0;
}

int FuseServer::op_getattr(Request& r) {
  fuse_getattr_in in{};
  READ_ARG(in);
  GET_INODE(ino, r.h.nodeid);
  struct stat st;
  int rc;
  std::shared_ptr<Handle> h;
  if ((in.getattr_flags & FUSE_GETATTR_FH) && (h = handle_of(in.fh)))
    rc = fstat(h->fd, &st);
  else
    rc = fstatat(ino->fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
  if (rc != 0)
    return errno;
  fuse_attr_out out{};
  fuse_entry_out e;
  fill_entry(e, ino->nodeid, st);
  out.attr_valid = e.attr_valid;
  out.attr_valid_nsec = e.attr_valid_nsec;
  out.attr = e.attr;
  return r.reply_struct(out);
}

int FuseServer::op_setattr(Request& r) {
  fuse_setattr_in in;
  READ_ARG(in);
  GET_INODE(ino, r.h.nodeid);
  std::shared_ptr<Handle> h;
  if (in.valid & FATTR_FH) {
    h = handle_of(in.fh);
    if (!h)
      return EBADF;
  }
  std::string path = proc_path(ino->fd);
  bool is_link = S_ISLNK(ino->type);
  if (in.valid & FATTR_MODE) {
    mode_t mode = settable(in.mode, S_ISDIR(ino->type));
    int rc = h ? fchmod(h->fd, mode)
               : is_link ? (errno = EOPNOTSUPP, -1) : fchmodat(AT_FDCWD, path.c_str(), mode, 0);
    if (rc != 0)
      return errno;
  }
  if (in.valid & (FATTR_UID | FATTR_GID)) {
    uid_t uid = (in.valid & FATTR_UID) ? in.uid : uid_t(-1);
    gid_t gid = (in.valid & FATTR_GID) ? in.gid : gid_t(-1);
    if ((m_opts.owner_uid >= 0 && uid != uid_t(-1) && uid != uid_t(m_opts.owner_uid)) ||
        (m_opts.owner_gid >= 0 && gid != gid_t(-1) && gid != gid_t(m_opts.owner_gid)))
      return EPERM;
    if (fchownat(ino->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
      return errno;
  }
  if (in.valid & FATTR_SIZE) {
    int rc;
    if (h) {
      rc = ftruncate(h->fd, off_t(in.size));
    } else {
      if (!S_ISREG(ino->type))
        return S_ISDIR(ino->type) ? EISDIR : EINVAL;
      int fd = reopen(*ino, O_WRONLY);
      if (fd < 0)
        return -fd;
      rc = ftruncate(fd, off_t(in.size));
      int e = errno;
      ::close(fd);
      errno = e;
    }
    if (rc != 0)
      return errno;
  }
  if (in.valid & (FATTR_ATIME | FATTR_MTIME | FATTR_ATIME_NOW | FATTR_MTIME_NOW)) {
    timespec ts[2];
    ts[0].tv_sec = time_t(in.atime);
    ts[0].tv_nsec = in.atimensec;
    ts[1].tv_sec = time_t(in.mtime);
    ts[1].tv_nsec = in.mtimensec;
    if (!(in.valid & FATTR_ATIME))
      ts[0].tv_nsec = UTIME_OMIT;
    if (!(in.valid & FATTR_MTIME))
      ts[1].tv_nsec = UTIME_OMIT;
    if (in.valid & FATTR_ATIME_NOW)
      ts[0].tv_nsec = UTIME_NOW;
    if (in.valid & FATTR_MTIME_NOW)
      ts[1].tv_nsec = UTIME_NOW;
    for (auto& t : ts)
      if (t.tv_nsec != UTIME_NOW && t.tv_nsec != UTIME_OMIT && t.tv_nsec >= 1000000000)
        return EINVAL;
    int rc = h ? futimens(h->fd, ts)
               : is_link ? (errno = EOPNOTSUPP, -1) : utimensat(AT_FDCWD, path.c_str(), ts, 0);
    if (rc != 0)
      return errno;
  }
  struct stat st;
  if (fstatat(ino->fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
    return errno;
  fuse_attr_out out{};
  fuse_entry_out e;
  fill_entry(e, ino->nodeid, st);
  out.attr_valid = e.attr_valid;
  out.attr_valid_nsec = e.attr_valid_nsec;
  out.attr = e.attr;
  return r.reply_struct(out);
}

int FuseServer::op_readlink(Request& r) {
  GET_INODE(ino, r.h.nodeid);
  if (!S_ISLNK(ino->type))
    return EINVAL;
  char buf[k_path_max];
  ssize_t n = readlinkat(ino->fd, "", buf, sizeof buf);
  if (n < 0)
    return errno;
  return r.reply({{buf, size_t(n)}});
}

int FuseServer::op_symlink(Request& r) {
  std::string name, target;
  READ_NAME(name);
  READ_NAME(target);
  GET_INODE(parent, r.h.nodeid);
  if (int e = check_name(name))
    return e;
  if (symlinkat(target.c_str(), parent->fd, name.c_str()) != 0)
    return errno;
  chown_new(parent->fd, name, r.h.uid, r.h.gid);
  fuse_entry_out e;
  if (int err = lookup(*parent, name, e))
    return err;
  return r.reply_struct(e);
}

int FuseServer::op_mknod(Request& r) {
  fuse_mknod_in in;
  READ_ARG(in);
  std::string name;
  READ_NAME(name);
  GET_INODE(parent, r.h.nodeid);
  if (int e = check_name(name))
    return e;
  // Device nodes would hand the guest the host's devices.
  if (S_ISCHR(in.mode) || S_ISBLK(in.mode))
    return EPERM;
  if (mknodat(parent->fd, name.c_str(), (in.mode & S_IFMT) | settable(in.mode, false), 0) != 0)
    return errno;
  chown_new(parent->fd, name, r.h.uid, r.h.gid);
  fuse_entry_out e;
  if (int err = lookup(*parent, name, e))
    return err;
  return r.reply_struct(e);
}

int FuseServer::op_mkdir(Request& r) {
  fuse_mkdir_in in;
  READ_ARG(in);
  std::string name;
  READ_NAME(name);
  GET_INODE(parent, r.h.nodeid);
  if (int e = check_name(name))
    return e;
  if (mkdirat(parent->fd, name.c_str(), settable(in.mode, true)) != 0)
    return errno;
  chown_new(parent->fd, name, r.h.uid, r.h.gid);
  fuse_entry_out e;
  if (int err = lookup(*parent, name, e))
    return err;
  return r.reply_struct(e);
}

int FuseServer::op_unlink(Request& r, bool dir) {
  std::string name;
  READ_NAME(name);
  GET_INODE(parent, r.h.nodeid);
  if (int e = check_name(name))
    return e;
  if (unlinkat(parent->fd, name.c_str(), dir ? AT_REMOVEDIR : 0) != 0)
    return errno;
  return r.reply({});
}

int FuseServer::op_rename(Request& r, bool v2) {
  uint64_t newdir;
  uint32_t flags = 0;
  if (v2) {
    fuse_rename2_in in;
    READ_ARG(in);
    newdir = in.newdir;
    flags = in.flags;
  } else {
    fuse_rename_in in;
    READ_ARG(in);
    newdir = in.newdir;
  }
  std::string oldname, newname;
  READ_NAME(oldname);
  READ_NAME(newname);
  GET_INODE(from, r.h.nodeid);
  GET_INODE(to, newdir);
  if (int e = check_name(oldname))
    return e;
  if (int e = check_name(newname))
    return e;
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE))
    return EINVAL;  // no whiteouts
  if (renameat2(from->fd, oldname.c_str(), to->fd, newname.c_str(), flags) != 0)
    return errno;
  return r.reply({});
}

int FuseServer::op_link(Request& r) {
  fuse_link_in in;
  READ_ARG(in);
  std::string name;
  READ_NAME(name);
  GET_INODE(parent, r.h.nodeid);
  GET_INODE(target, in.oldnodeid);
  if (int e = check_name(name))
    return e;
  if (S_ISDIR(target->type))
    return EPERM;
  int rc = linkat(target->fd, "", parent->fd, name.c_str(), AT_EMPTY_PATH);
  if (rc != 0 && (errno == ENOENT || errno == EPERM) && !S_ISLNK(target->type))
    rc = linkat(AT_FDCWD, proc_path(target->fd).c_str(), parent->fd, name.c_str(),
                AT_SYMLINK_FOLLOW);
  if (rc != 0)
    return errno;
  fuse_entry_out e;
  if (int err = lookup(*parent, name, e))
    return err;
  return r.reply_struct(e);
}

int FuseServer::op_open(Request& r, bool dir) {
  fuse_open_in in;
  READ_ARG(in);
  GET_INODE(ino, r.h.nodeid);
  int flags = int(in.flags);
  if (dir) {
    if (!S_ISDIR(ino->type))
      return ENOTDIR;
    flags = O_RDONLY | O_DIRECTORY;
  } else {
    if (S_ISDIR(ino->type))
      return EISDIR;
    if (m_writeback) {
      // The guest's page cache may read to fill partial pages and handles O_APPEND itself.
      if ((flags & O_ACCMODE) == O_WRONLY)
        flags = (flags & ~O_ACCMODE) | O_RDWR;
      flags &= ~O_APPEND;
    }
  }
  int fd = reopen(*ino, flags);
  if (fd < 0)
    return -fd;
  fuse_open_out out{};
  out.fh = add_handle(fd, dir);
  if (out.fh == 0)
    return EMFILE;
  return r.reply_struct(out);
}

int FuseServer::op_create(Request& r) {
  fuse_create_in in;
  READ_ARG(in);
  std::string name;
  READ_NAME(name);
  GET_INODE(parent, r.h.nodeid);
  if (int e = check_name(name))
    return e;
  if (!S_ISDIR(parent->type))
    return ENOTDIR;
  int flags = int(in.flags);
  if (m_writeback) {
    if ((flags & O_ACCMODE) == O_WRONLY)
      flags = (flags & ~O_ACCMODE) | O_RDWR;
    flags &= ~O_APPEND;
  }
  flags &= ~(O_DIRECT | O_PATH | O_DIRECTORY | O_NOCTTY | O_CREAT | O_NOFOLLOW);
  // Exclusive first, so only a file this request created is given to the caller's ids.
  int fd = open_beneath(parent->fd, name, (flags & ~O_EXCL) | O_CREAT | O_EXCL | O_NOFOLLOW |
                                              O_CLOEXEC,
                        settable(in.mode, false));
  fuse_entry_out e;
  if (fd < 0 && errno == EEXIST && !(flags & O_EXCL)) {
    // The name exists: it is looked up and opened as OPEN opens it, through its inode and the
    // type check, never by name (a FIFO would block the worker, a device node is the host's).
    if (int err = lookup(*parent, name, e))
      return err;
    InodePtr ino = inode(e.nodeid);
    int err = !ino ? ENOENT : S_ISDIR(ino->type) ? EISDIR : S_ISLNK(ino->type) ? ELOOP : 0;
    if (err == 0 && (fd = reopen(*ino, flags)) < 0)
      err = -fd;
    if (err != 0) {
      forget(e.nodeid, 1);  // the guest never learns of this lookup
      return err;
    }
  } else {
    if (fd < 0)
      return errno;
    chown_new(parent->fd, name, r.h.uid, r.h.gid);  // only a file this request created
    if (int err = lookup(*parent, name, e)) {
      ::close(fd);
      return err;
    }
  }
  fuse_open_out out{};
  out.fh = add_handle(fd, false);
  if (out.fh == 0) {
    forget(e.nodeid, 1);
    return EMFILE;
  }
  return r.reply({{&e, sizeof e}, {&out, sizeof out}});
}

int FuseServer::op_read(Request& r) {
  fuse_read_in in;
  READ_ARG(in);
  auto h = handle_of(in.fh);
  if (!h || h->dir)
    return EBADF;
  if (in.offset > uint64_t(INT64_MAX))
    return EINVAL;
  uint64_t room = r.out.capacity() >= k_out_header ? r.out.capacity() - k_out_header : 0;
  uint64_t size = std::min<uint64_t>({in.size, room, m_opts.max_write * 2ull});
  std::vector<iovec> iov;
  r.out.slice(k_out_header, size, iov);
  uint64_t done;
  if (!preadv_all(h->fd, iov, off_t(in.offset), done))
    return errno;
  if (m_throttle)
    m_throttle->transfer(done);
  r.res.bytes_read = done;
  return r.header(0, k_out_header + done);
}

int FuseServer::op_write(Request& r) {
  fuse_write_in in;
  READ_ARG(in);
  auto h = handle_of(in.fh);
  if (!h || h->dir)
    return EBADF;
  if (in.size > r.in.remaining()) {
    r.res.malformed = true;
    log_guest_error("WRITE: size " + std::to_string(in.size) + " exceeds the " +
                    std::to_string(r.in.remaining()) + " data bytes sent");
    return EINVAL;
  }
  if (in.offset > uint64_t(INT64_MAX) || in.size > uint64_t(INT64_MAX) - in.offset)
    return EFBIG;
  std::vector<iovec> iov;
  r.in.take(in.size, iov);
  if (m_throttle)
    m_throttle->transfer(in.size);
  uint64_t done;
  if (!pwritev_all(h->fd, iov, off_t(in.offset), done) && done == 0)
    return errno;
  r.res.bytes_written = done;
  fuse_write_out out{};
  out.size = uint32_t(done);
  return r.reply_struct(out);
}

int FuseServer::op_statfs(Request& r) {
  GET_INODE(ino, r.h.nodeid);
  struct statvfs sv;
  if (fstatvfs(ino->fd, &sv) != 0)
    return errno;
  fuse_statfs_out out{};
  out.st.blocks = sv.f_blocks;
  out.st.bfree = sv.f_bfree;
  out.st.bavail = sv.f_bavail;
  out.st.files = sv.f_files;
  out.st.ffree = sv.f_ffree;
  out.st.bsize = uint32_t(sv.f_bsize);
  out.st.namelen = uint32_t(sv.f_namemax);
  out.st.frsize = uint32_t(sv.f_frsize);
  return r.reply_struct(out);
}

int FuseServer::op_release(Request& r) {
  fuse_release_in in;
  READ_ARG(in);
  std::shared_ptr<Handle> h;
  {
    std::unique_lock lock(m_handles_mutex);
    auto it = m_handles.find(in.fh);
    if (it == m_handles.end())
      return EBADF;
    h = std::move(it->second);
    m_handles.erase(it);
  }
  return r.reply({});
}

int FuseServer::op_fsync(Request& r) {
  fuse_fsync_in in;
  READ_ARG(in);
  auto h = handle_of(in.fh);
  if (!h)
    return EBADF;
  int rc = (in.fsync_flags & FUSE_FSYNC_FDATASYNC) ? fdatasync(h->fd) : fsync(h->fd);
  if (rc != 0)
    return errno;
  return r.reply({});
}

int FuseServer::op_flush(Request& r) {
  fuse_flush_in in;
  READ_ARG(in);
  if (!handle_of(in.fh))
    return EBADF;
  return r.reply({});
}

int FuseServer::op_readdir(Request& r, bool plus) {
  fuse_read_in in;
  READ_ARG(in);
  auto h = handle_of(in.fh);
  if (!h || !h->dir)
    return EBADF;
  uint64_t room = r.out.capacity() >= k_out_header ? r.out.capacity() - k_out_header : 0;
  uint64_t size = std::min<uint64_t>({in.size, room, 1u << 20});
  std::lock_guard lock(h->mutex);
  if (in.offset > uint64_t(INT64_MAX) || lseek(h->fd, off_t(in.offset), SEEK_SET) < 0)
    return errno ? errno : EINVAL;
  std::vector<char> buf(32768);
  uint64_t used = 0;
  std::vector<uint8_t> ent;
  bool full = false;
  while (!full) {
    long n = syscall(SYS_getdents64, h->fd, buf.data(), buf.size());
    if (n < 0) {
      if (used == 0)
        return errno;
      break;
    }
    if (n == 0)
      break;
    for (long pos = 0; pos < n;) {
      struct Dirent64 {
        uint64_t d_ino;
        int64_t d_off;
        uint16_t d_reclen;
        uint8_t d_type;
        char d_name[];
      };
      auto* d = reinterpret_cast<Dirent64*>(buf.data() + pos);
      pos += d->d_reclen;
      std::string name(d->d_name);
      size_t base = plus ? sizeof(fuse_entry_out) : 0;
      size_t entsize = base + FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + name.size());
      if (used + entsize > size) {
        full = true;
        break;
      }
      ent.assign(entsize, 0);
      if (plus && name != "." && name != "..") {
        fuse_entry_out e;
        // A failed lookup still lists the name, without attributes (nodeid 0).
        // In the directory the handle lists (its fd), whatever nodeid the request names.
        if (lookup_in(h->fd, name, e) == 0)
          std::memcpy(ent.data(), &e, sizeof e);
      }
      fuse_dirent de{};
      de.ino = d->d_ino;
      de.off = uint64_t(d->d_off);
      de.namelen = uint32_t(name.size());
      de.type = d->d_type;
      std::memcpy(ent.data() + base, &de, FUSE_NAME_OFFSET);
      std::memcpy(ent.data() + base + FUSE_NAME_OFFSET, name.data(), name.size());
      r.out.write_at(k_out_header + used, ent.data(), entsize);
      used += entsize;
    }
  }
  return r.header(0, k_out_header + used);
}

int FuseServer::op_access(Request& r) {
  fuse_access_in in;
  READ_ARG(in);
  GET_INODE(ino, r.h.nodeid);
  if (S_ISLNK(ino->type))
    return r.reply({});
  if (faccessat(AT_FDCWD, proc_path(ino->fd).c_str(), int(in.mask), 0) != 0)
    return errno;
  return r.reply({});
}

int FuseServer::op_fallocate(Request& r) {
  fuse_fallocate_in in;
  READ_ARG(in);
  auto h = handle_of(in.fh);
  if (!h || h->dir)
    return EBADF;
  if (in.offset > uint64_t(INT64_MAX) || in.length > uint64_t(INT64_MAX))
    return EINVAL;
  if (fallocate(h->fd, int(in.mode), off_t(in.offset), off_t(in.length)) != 0)
    return errno;
  return r.reply({});
}

int FuseServer::op_lseek(Request& r) {
  fuse_lseek_in in;
  READ_ARG(in);
  auto h = handle_of(in.fh);
  if (!h || h->dir)
    return EBADF;
  if (in.whence > SEEK_HOLE || in.offset > uint64_t(INT64_MAX))
    return EINVAL;
  off_t o = lseek(h->fd, off_t(in.offset), int(in.whence));
  if (o < 0)
    return errno;
  fuse_lseek_out out{};
  out.offset = uint64_t(o);
  return r.reply_struct(out);
}

int FuseServer::op_syncfs(Request& r) {
  fuse_syncfs_in in;
  READ_ARG(in);
  int fd = ::open(proc_path(m_root_fd).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return errno;
  int rc = syncfs(fd);
  int e = errno;
  ::close(fd);
  if (rc != 0)
    return e;
  return r.reply({});
}

int FuseServer::op_destroy(Request& r) {
  reset();
  return r.reply({});
}

void FuseServer::reset() {
  clear_state();
  m_initialized = false;
}

void FuseServer::clear_state() {
  // What the old session held is closed on a thread of its own: hundreds of thousands of
  // descriptors take a while to close, and a reset must answer within a second.
  struct Doomed {
    std::unordered_map<uint64_t, std::shared_ptr<Handle>> handles;
    std::vector<InodePtr> inodes;
  };
  auto doomed = std::make_unique<Doomed>();
  {
    std::unique_lock lock(m_handles_mutex);
    doomed->handles.swap(m_handles);
  }
  {
    std::lock_guard lock(m_inodes_mutex);
    for (auto it = m_inodes.begin(); it != m_inodes.end();) {
      if (it->first == FUSE_ROOT_ID) {
        ++it;
        continue;
      }
      m_by_dev_ino.erase({it->second->dev, it->second->ino});
      doomed->inodes.push_back(std::move(it->second));
      it = m_inodes.erase(it);
    }
  }
  if (doomed->handles.size() + doomed->inodes.size() < 4096)
    return;  // closed here, at once
  try {
    std::thread([d = std::move(doomed)] {}).detach();
  } catch (const std::system_error&) {
  }
}

} // namespace kab::dpu
