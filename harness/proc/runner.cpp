#include "proc/runner.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

// Boost 1.81 forgets these in Process v2 when BOOST_PROCESS_USE_STD_FS is set.
#include <boost/io/quoted.hpp>
#include <boost/optional.hpp>
#include <type_traits>

#include <boost/asio/io_context.hpp>
#include <boost/process/v2/posix/default_launcher.hpp>
#include <boost/process/v2/process.hpp>
#include <boost/process/v2/stdio.hpp>
#include <boost/process/v2/start_dir.hpp>
#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/system.h"

extern char** environ;

namespace bp = boost::process::v2;
namespace fs = std::filesystem;

namespace kab::proc {

namespace {

// Put the child in its own process group, so Ctrl-C at the terminal does not
// reach it and kab can signal everything it started at once.
struct NewProcessGroup {
  bp::error_code on_exec_setup(bp::posix::default_launcher&, const bp::filesystem::path&, const char* const*) {
    if (::setpgid(0, 0) != 0) return bp::error_code(errno, bp::system_category());
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    return {};
  }
};

// The environment: ours plus the overrides.
struct Environment {
  std::vector<std::string> storage;
  std::vector<const char*> pointers;
  explicit Environment(const std::vector<std::pair<std::string, std::string>>& overrides) {
    for (char** e = environ; *e; ++e) {
      std::string kv = *e;
      std::string key = kv.substr(0, kv.find('='));
      bool overridden = false;
      for (const auto& [k, v] : overrides) overridden = overridden || k == key;
      if (!overridden) storage.push_back(kv);
    }
    for (const auto& [k, v] : overrides) storage.push_back(k + "=" + v);
    for (const auto& s : storage) pointers.push_back(s.c_str());
    pointers.push_back(nullptr);
  }
  bp::error_code on_setup(bp::posix::default_launcher& launcher, const bp::filesystem::path&, const char* const*) {
    launcher.env = pointers.data();
    return {};
  }
};

std::string temp_output_path() {
  static std::atomic<int> counter{0};
  return (fs::temp_directory_path() / ("kab-out-" + std::to_string(::getpid()) + "-" +
                                       std::to_string(counter++) + ".log"))
      .string();
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Usage usage_from(const struct rusage& ru) {
  Usage u;
  u.user_s = static_cast<double>(ru.ru_utime.tv_sec) + ru.ru_utime.tv_usec / 1e6;
  u.sys_s = static_cast<double>(ru.ru_stime.tv_sec) + ru.ru_stime.tv_usec / 1e6;
  u.minor_faults = ru.ru_minflt;
  u.major_faults = ru.ru_majflt;
  u.max_rss_kb = ru.ru_maxrss;
  return u;
}

std::atomic<bool> g_interrupted{false};

extern "C" void on_interrupt(int) { g_interrupted = true; }

}  // namespace

std::atomic<bool>& interrupted_flag() { return g_interrupted; }

void install_interrupt_handler() {
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

std::string which(const std::string& program) {
  if (program.find('/') != std::string::npos) return fs::exists(program) ? program : "";
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/local/bin:/usr/bin:/bin";
  p += ":/usr/sbin:/sbin";
  std::stringstream ss(p);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    fs::path cand = fs::path(dir.empty() ? "." : dir) / program;
    if (::access(cand.c_str(), X_OK) == 0 && !fs::is_directory(cand)) return cand.string();
  }
  return "";
}

std::string tail_file(const std::string& path, std::size_t n) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  in.seekg(0, std::ios::end);
  auto size = static_cast<std::streamoff>(in.tellg());
  std::streamoff start = std::max<std::streamoff>(0, size - static_cast<std::streamoff>(256 * n + 4096));
  in.seekg(start);
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::deque<std::string> lines;
  std::stringstream ss(data);
  std::string line;
  bool first = start > 0;
  while (std::getline(ss, line)) {
    if (first) {  // a partial line
      first = false;
      continue;
    }
    lines.push_back(line);
    if (lines.size() > n) lines.pop_front();
  }
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

std::string Result::describe() const {
  if (interrupted) return "interrupted";
  if (timed_out) return "timed out after " + std::to_string(static_cast<int>(wall_s)) + " s";
  if (signal) return std::string("killed by signal ") + std::to_string(signal) + " (" + strsignal(signal) + ")";
  return "exited with " + std::to_string(exit_code);
}

Child::Child(const Options& o) {
  if (o.argv.empty()) throw SpawnError("empty command line");
  std::string exe = which(o.argv[0]);
  if (exe.empty()) throw SpawnError("cannot run '" + o.argv[0] + "': not found in PATH");
  m_output_path = o.output_path;
  m_tail_lines = o.tail_lines;
  int out_fd = ::open(o.output_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out_fd < 0)
    throw SpawnError("cannot open " + o.output_path + " for the output of " + o.argv[0] + ": " + std::strerror(errno));

  int err_fd = out_fd;
  if (!o.error_path.empty()) {
    err_fd = ::open(o.error_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (err_fd < 0) {
      int e = errno;
      ::close(out_fd);
      throw SpawnError("cannot open " + o.error_path + " for the errors of " + o.argv[0] + ": " + std::strerror(e));
    }
  }
  int in_fd = -1;
  if (!o.input_path.empty()) {
    in_fd = ::open(o.input_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (in_fd < 0) {
      int e = errno;
      if (err_fd != out_fd) ::close(err_fd);
      ::close(out_fd);
      throw SpawnError("cannot open " + o.input_path + " as the input of " + o.argv[0] + ": " + std::strerror(e));
    }
  }
  auto close_fds = [&] {
    if (in_fd >= 0) ::close(in_fd);
    if (err_fd != out_fd) ::close(err_fd);
    ::close(out_fd);
  };

  boost::asio::io_context ctx;
  std::vector<std::string> args(o.argv.begin() + 1, o.argv.end());
  Environment env(o.env);
  try {
    auto stdio = in_fd >= 0 ? bp::process_stdio{in_fd, out_fd, err_fd} : bp::process_stdio{nullptr, out_fd, err_fd};
    bp::process p = o.cwd.empty() ? bp::process(ctx, exe, args, stdio, NewProcessGroup{}, env)
                                  : bp::process(ctx, exe, args, stdio, NewProcessGroup{}, env,
                                                bp::process_start_dir(o.cwd));
    m_pid = p.id();
    // kab waits with wait4() itself: it needs the child's rusage and kills
    // whole process groups, which the process object does not do.
    p.detach();
  } catch (const std::exception& e) {
    close_fds();
    throw SpawnError("cannot run '" + o.argv[0] + "': " + e.what());
  }
  close_fds();
  // Also set the group from the parent: avoids racing a signal sent before the child ran setpgid.
  ::setpgid(m_pid, m_pid);
  m_reaped = false;
  m_start = core::now_s();
}

Child::Child(Child&& o) noexcept { *this = std::move(o); }

Child& Child::operator=(Child&& o) noexcept {
  if (this != &o) {
    if (!m_reaped) stop();
    m_pid = o.m_pid;
    m_reaped = o.m_reaped;
    m_start = o.m_start;
    m_output_path = std::move(o.m_output_path);
    m_tail_lines = o.m_tail_lines;
    m_result = std::move(o.m_result);
    o.m_reaped = true;
    o.m_pid = -1;
  }
  return *this;
}

Child::~Child() {
  if (!m_reaped) stop(1);
}

bool Child::reap(int flags) {
  if (m_reaped) return true;
  int status = 0;
  struct rusage ru {};
  pid_t r = ::wait4(m_pid, &status, flags, &ru);
  if (r == 0) return false;
  if (r < 0 && errno == EINTR) return false;
  m_reaped = true;
  m_result.wall_s = core::now_s() - m_start;
  if (r == m_pid) {
    m_result.usage = usage_from(ru);
    if (WIFEXITED(status)) m_result.exit_code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status)) m_result.signal = WTERMSIG(status);
  }
  m_result.tail = tail_file(m_output_path, m_tail_lines);
  return true;
}

bool Child::running() { return !reap(WNOHANG); }

bool Child::wait(double timeout_s) {
  double deadline = timeout_s < 0 ? 1e300 : core::now_s() + timeout_s;
  while (true) {
    if (reap(WNOHANG)) return true;
    if (core::now_s() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void Child::stop(double grace_s) {
  if (m_reaped) return;
  ::kill(-m_pid, SIGTERM);
  if (!wait(grace_s)) {
    ::kill(-m_pid, SIGKILL);
    wait(-1);
  }
  // Descendants that outlived the leader still hold the group id.
  ::kill(-m_pid, SIGKILL);
}

Usage Child::usage_now() const { return m_reaped ? m_result.usage : usage_of(m_pid); }

Usage usage_of(pid_t pid) {
  Usage u;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = stat.rfind(')');
  if (close == std::string::npos) return u;
  std::istringstream ss(stat.substr(close + 2));
  std::vector<std::string> f;
  std::string tok;
  while (ss >> tok) f.push_back(tok);
  // Fields after the command name: state(0) ... minflt(7) cminflt(8) majflt(9) cmajflt(10) utime(11) stime(12)
  if (f.size() < 13) return u;
  double hz = static_cast<double>(::sysconf(_SC_CLK_TCK));
  u.minor_faults = std::stol(f[7]);
  u.major_faults = std::stol(f[9]);
  u.user_s = std::stod(f[11]) / hz;
  u.sys_s = std::stod(f[12]) / hz;
  return u;
}

std::vector<pid_t> holders_of(const std::vector<std::string>& paths) {
  namespace fs = std::filesystem;
  std::vector<pid_t> out;
  if (paths.empty()) return out;
  std::vector<fs::path> want;
  for (const auto& p : paths) {
    std::error_code ec;
    fs::path c = fs::weakly_canonical(p, ec);
    want.push_back(ec ? fs::path(p) : c);
  }
  const pid_t self = ::getpid();
  std::error_code ec;
  for (fs::directory_iterator it("/proc", ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(name));
    if (pid == self) continue;
    std::error_code fec;   // a process that exits meanwhile, or one we may not read, holds nothing
    for (fs::directory_iterator fd(it->path() / "fd", fec), fend; !fec && fd != fend; fd.increment(fec)) {
      std::error_code lec;
      const fs::path target = fs::read_symlink(fd->path(), lec);
      if (lec) continue;
      if (std::find(want.begin(), want.end(), target) != want.end()) {
        out.push_back(pid);
        break;
      }
    }
  }
  return out;
}

bool wait_until_released(const std::vector<std::string>& paths, double timeout_s) {
  const double start = core::now_s();
  while (true) {
    if (holders_of(paths).empty()) return true;
    if (core::now_s() - start >= timeout_s) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Result run(const Options& o) {
  Options opts = o;
  bool capture_mode = o.output_path.empty();
  if (capture_mode) opts.output_path = temp_output_path();
  Child child(opts);
  double start = core::now_s();
  bool timed_out = false, interrupted = false;
  while (!child.wait(0.05)) {
    if (g_interrupted) {
      interrupted = true;
      break;
    }
    if (o.timeout_s > 0 && core::now_s() - start > o.timeout_s) {
      timed_out = true;
      break;
    }
  }
  if (timed_out || interrupted) child.stop(o.grace_s);
  Result r = child.result();
  r.timed_out = timed_out;
  r.interrupted = interrupted;
  if (capture_mode) {
    r.output = read_all(opts.output_path);
    fs::remove(opts.output_path);
  }
  return r;
}

std::pair<bool, std::string> capture(const std::vector<std::string>& argv, double timeout_s) {
  Options o;
  o.argv = argv;
  o.timeout_s = timeout_s;
  try {
    Result r = run(o);
    return {r.ok(), r.output};
  } catch (const SpawnError& e) {
    return {false, e.what()};
  }
}

}  // namespace kab::proc
