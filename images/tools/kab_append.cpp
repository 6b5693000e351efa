// kab-append: the correctness gate's O_APPEND check, run in the guest by
// the "append" family (scenarios/gate/append.fio, as a job's exec_prerun).
// fio cannot append with O_APPEND from several processes, so this does:
//
//   kab-append FILE WRITERS RECORD_BYTES [MAX_RECORDS]
//     WRITERS processes append records of RECORD_BYTES (not a multiple of
//     the page size: partial pages are the hard case) to FILE, each opened
//     with O_APPEND, fsync/fdatasync every 32 records, MAX_RECORDS each
//     (default 2500: 30 MB of 3000-byte records, read back in about a
//     second) or until SIGTERM/SIGINT (then what was written). Then the
//     guest's page cache is dropped and the file read back and checked:
//     every record whole (magic, writer, sequence, checksum), none lost or
//     repeated, each writer's in the order it wrote them, the file's size
//     exactly the records'.
//   kab-append --check FILE RECORD_BYTES COUNT,COUNT,…
//     the same check of an existing file whose writers wrote COUNT records.
//
// A failed check is written to the kernel log (/dev/kmsg) as
// "kab-append: integrity check failed: …", which kab's console scan reports
// as a finding like a kernel's own; an error that is not the data's (no
// space, a writer that could not start) as "kab-append: error: …". A passed
// check is logged as "kab-append: checked …", and the family requires that
// line (gate.yaml's expect_console): a check that never ran or was killed
// before it ended fails the sample too. The exit status is 0 for a passed
// check, 1 for wrong data, 2 for an error (fio's exec_prerun does not read it).
// KAB_APPEND_LOG=FILE appends those lines to FILE instead, and the page cache
// is then not dropped (the tests run it on the host, whose kernel log and
// page cache are not theirs).
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

namespace {

constexpr char k_magic[8] = {'K', 'A', 'B', 'A', 'P', 'P', 'N', 'D'};
constexpr std::size_t k_header = 8 + 4 * 4;   // magic, writer, sequence, record size, checksum

volatile sig_atomic_t g_stop = 0;
void on_term(int) { g_stop = 1; }
bool g_child = false;   // in a writer: a failure ends only this process

void log_kmsg(const std::string& line) {
  std::fprintf(stderr, "%s\n", line.c_str());
  const char* to = std::getenv("KAB_APPEND_LOG");
  const int k = to ? ::open(to, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644) : ::open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
  if (k < 0) return;
  const std::string l = line + "\n";
  if (::write(k, l.data(), l.size()) < 0) {
  }
  ::close(k);
}

// The data is wrong.
[[noreturn]] void fail(const std::string& what) {
  log_kmsg("kab-append: integrity check failed: " + what);
  if (g_child) std::_Exit(1);
  std::exit(1);
}

// Something other than the data went wrong: no check was made.
[[noreturn]] void error(const std::string& what) {
  log_kmsg("kab-append: error: " + what);
  if (g_child) std::_Exit(2);
  std::exit(2);
}

void put32(unsigned char* p, std::uint32_t v) { std::memcpy(p, &v, 4); }
std::uint32_t get32(const unsigned char* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// FNV-1a over the payload.
std::uint32_t checksum(const unsigned char* p, std::size_t n) {
  std::uint32_t h = 2166136261u;
  for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 16777619u;
  return h;
}

void fill(std::vector<unsigned char>& rec, std::uint32_t writer, std::uint32_t seq) {
  std::memcpy(rec.data(), k_magic, 8);
  put32(rec.data() + 8, writer);
  put32(rec.data() + 12, seq);
  put32(rec.data() + 16, static_cast<std::uint32_t>(rec.size()));
  for (std::size_t i = k_header; i < rec.size(); ++i)
    rec[i] = static_cast<unsigned char>(writer * 131 + seq * 7 + i * 13);
  put32(rec.data() + 20, checksum(rec.data() + k_header, rec.size() - k_header));
}

// One writer: appends until told to stop; returns how many records it wrote.
std::uint32_t append_records(const char* path, std::uint32_t writer, std::size_t bytes, std::uint32_t max) {
  const int fd = ::open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) error(std::string("writer ") + std::to_string(writer) + ": open: " + std::strerror(errno));
  std::vector<unsigned char> rec(bytes);
  std::uint32_t seq = 0;
  for (; seq < max && !g_stop; ++seq) {
    fill(rec, writer, seq);
    const ssize_t n = ::write(fd, rec.data(), rec.size());
    if (n < 0)   // ENOSPC, EIO: said, but not as wrong data
      error("writer " + std::to_string(writer) + ": record " + std::to_string(seq) + ": write: " + std::strerror(errno));
    if (n != static_cast<ssize_t>(rec.size()))   // an append of a regular file is whole or fails
      fail("writer " + std::to_string(writer) + ": record " + std::to_string(seq) + ": a short append (" +
           std::to_string(n) + " of " + std::to_string(rec.size()) + " bytes)");
    if (seq % 32 == 31 && ((writer % 2) ? ::fsync(fd) : ::fdatasync(fd)) != 0)
      error("writer " + std::to_string(writer) + ": fsync: " + std::strerror(errno));
  }
  if (::close(fd) != 0) error("writer " + std::to_string(writer) + ": close: " + std::strerror(errno));
  return seq;
}

// The file against what its writers wrote.
void check(const char* path, std::size_t bytes, const std::vector<std::uint32_t>& counts) {
  std::uint64_t total = 0;
  for (auto c : counts) total += c;
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) error(std::string(path) + ": open: " + std::strerror(errno));
  struct stat st {};
  ::fstat(fd, &st);
  if (static_cast<std::uint64_t>(st.st_size) != total * bytes)
    fail(std::string(path) + ": " + std::to_string(st.st_size) + " bytes, expected " + std::to_string(total * bytes) +
         " (" + std::to_string(total) + " records of " + std::to_string(bytes) + ")");
  std::vector<std::uint32_t> next(counts.size(), 0);
  std::vector<unsigned char> rec(bytes);
  for (std::uint64_t i = 0; i < total; ++i) {
    const std::uint64_t at = i * bytes;
    std::size_t got = 0;
    while (got < bytes) {
      const ssize_t n = ::pread(fd, rec.data() + got, bytes - got, static_cast<off_t>(at + got));
      if (n < 0) error(std::string(path) + ": read at " + std::to_string(at + got) + ": " + std::strerror(errno));
      if (n == 0) fail(std::string(path) + ": the file ends at " + std::to_string(at + got) + ", before its size");
      got += static_cast<std::size_t>(n);
    }
    const std::string where = std::string(path) + ": record at offset " + std::to_string(at);
    if (std::memcmp(rec.data(), k_magic, 8) != 0) fail(where + ": no record header (torn or misplaced append)");
    const std::uint32_t writer = get32(rec.data() + 8), seq = get32(rec.data() + 12);
    if (writer >= counts.size() || get32(rec.data() + 16) != bytes)
      fail(where + ": header names writer " + std::to_string(writer) + ", " + std::to_string(get32(rec.data() + 16)) +
           " bytes");
    if (seq != next[writer])
      fail(where + ": writer " + std::to_string(writer) + "'s record " + std::to_string(seq) + ", expected " +
           std::to_string(next[writer]) + (seq < next[writer] ? " (repeated)" : " (records lost or reordered)"));
    if (get32(rec.data() + 20) != checksum(rec.data() + k_header, bytes - k_header))
      fail(where + ": writer " + std::to_string(writer) + "'s record " + std::to_string(seq) + ": checksum mismatch");
    ++next[writer];
  }
  ::close(fd);
  // Every writer's records all there (the size alone would let one writer's
  // lost record and another's extra one pass).
  for (std::size_t w = 0; w < counts.size(); ++w)
    if (next[w] != counts[w])
      fail(std::string(path) + ": writer " + std::to_string(w) + " appended " + std::to_string(counts[w]) +
           " records, the file holds " + std::to_string(next[w]));
}

std::vector<std::uint32_t> parse_counts(const std::string& text) {
  std::vector<std::uint32_t> out;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t comma = text.find(',', pos);
    out.push_back(static_cast<std::uint32_t>(std::strtoul(text.substr(pos, comma - pos).c_str(), nullptr, 10)));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

std::string counts_text(const std::vector<std::uint32_t>& counts) {
  std::string out;
  for (auto c : counts) out += (out.empty() ? "" : ",") + std::to_string(c);
  return out;
}

int usage() {
  std::fprintf(stderr,
               "usage: kab-append FILE WRITERS RECORD_BYTES [MAX_RECORDS]\n"
               "       kab-append --check FILE RECORD_BYTES COUNT,COUNT,...\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 5 && std::string(argv[1]) == "--check") {
    const std::size_t bytes = std::strtoul(argv[3], nullptr, 10);
    if (bytes <= k_header) return usage();
    const auto counts = parse_counts(argv[4]);
    check(argv[2], bytes, counts);
    log_kmsg(std::string("kab-append: checked ") + argv[2] + ": records " + counts_text(counts) + " of " +
             std::to_string(bytes) + " bytes, whole and in order");
    return 0;
  }
  if (argc != 4 && argc != 5) return usage();
  const char* path = argv[1];
  const long writers = std::strtol(argv[2], nullptr, 10);
  const std::size_t bytes = std::strtoul(argv[3], nullptr, 10);
  const std::uint32_t max = argc == 5 ? static_cast<std::uint32_t>(std::strtoul(argv[4], nullptr, 10)) : 2500;
  if (writers < 1 || writers > 64 || bytes <= k_header || bytes > (1u << 20)) return usage();

  // SIGTERM (fio, at the end of the job's runtime) and SIGINT stop the
  // writers. Blocked from here on in this process and taken with
  // sigtimedwait, so a stop that comes while the writers start or between two
  // of them ending is not lost; each writer unblocks it and stops at its next record.
  struct sigaction sa {};
  sa.sa_handler = on_term;
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  sigset_t stops;
  sigemptyset(&stops);
  sigaddset(&stops, SIGTERM);
  sigaddset(&stops, SIGINT);
  ::sigprocmask(SIG_BLOCK, &stops, nullptr);

  const int fd = ::open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) error(std::string(path) + ": create: " + std::strerror(errno));
  ::close(fd);
  log_kmsg(std::string("kab-append: ") + std::to_string(writers) + " writers appending to " + path);
  int pipefd[2];
  if (::pipe(pipefd) != 0) error(std::string("pipe: ") + std::strerror(errno));
  std::vector<pid_t> pids;
  auto stop_writers = [&] {
    for (pid_t p : pids) ::kill(p, SIGKILL);
    while (::waitpid(-1, nullptr, 0) > 0) {
    }
  };
  for (long w = 0; w < writers; ++w) {
    const pid_t pid = ::fork();
    if (pid < 0) {
      stop_writers();
      error(std::string("fork: ") + std::strerror(errno));
    }
    if (pid == 0) {
      g_child = true;
      ::close(pipefd[0]);
      ::sigprocmask(SIG_UNBLOCK, &stops, nullptr);   // a stop already pending arrives here
      std::uint32_t msg[2] = {static_cast<std::uint32_t>(w), append_records(path, static_cast<std::uint32_t>(w), bytes, max)};
      if (::write(pipefd[1], msg, sizeof msg) != sizeof msg) std::_Exit(3);
      std::_Exit(0);
    }
    pids.push_back(pid);
  }
  ::close(pipefd[1]);
  // Wait for the writers, passing a stop on to them.
  bool passed_on = false;
  std::size_t done = 0;
  while (done < pids.size()) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid < 0) {
      stop_writers();
      error(std::string("waitpid: ") + std::strerror(errno));
    }
    if (pid > 0) {
      ++done;
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        // The writer said why in the log (1: wrong data, 2: an error).
        const bool data = WIFEXITED(status) && WEXITSTATUS(status) == 1;
        const std::string how = WIFEXITED(status) ? "with status " + std::to_string(WEXITSTATUS(status))
                                                  : "by signal " + std::to_string(WTERMSIG(status));
        stop_writers();
        if (data) fail("a writer found its append wrong and ended " + how);
        error("a writer ended " + how);
      }
      continue;
    }
    const struct timespec tick {0, 50 * 1000 * 1000};
    if (::sigtimedwait(&stops, nullptr, &tick) > 0 && !passed_on) {
      for (pid_t p : pids) ::kill(p, SIGTERM);
      passed_on = true;
    }
  }
  std::vector<std::uint32_t> counts(static_cast<std::size_t>(writers), 0);
  std::uint32_t msg[2];
  while (::read(pipefd[0], msg, sizeof msg) == static_cast<ssize_t>(sizeof msg))
    if (msg[0] < counts.size()) counts[msg[0]] = msg[1];
  // Read back as the backend holds it: written back, the guest's cache dropped.
  ::sync();
  if (const int dc = std::getenv("KAB_APPEND_LOG") ? -1 : ::open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
      dc >= 0) {
    if (::write(dc, "3", 1) < 0) {
    }
    ::close(dc);
  }
  check(path, bytes, counts);
  log_kmsg(std::string("kab-append: checked ") + path + ": " + std::to_string(writers) + " writers appended records " +
           counts_text(counts) + " of " + std::to_string(bytes) + " bytes with O_APPEND, whole and in order");
  std::printf("%s %s\n", path, counts_text(counts).c_str());
  return 0;
}
