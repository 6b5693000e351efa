// The one place kab spawns processes. argv vectors, never shell strings; each
// child in its own process group with stdin from /dev/null; on timeout or
// interruption the whole group gets TERM, then KILL after a grace period.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace kab::proc {

struct Options {
  std::vector<std::string> argv;                          // argv[0] is looked up in PATH
  std::string cwd;                                        // "" = inherit
  std::vector<std::pair<std::string, std::string>> env;   // set on top of the inherited environment
  std::string output_path;     // stdout+stderr appended here; "" = captured in memory
  double timeout_s = 0;        // 0 = none
  double grace_s = 3;          // TERM → KILL
  std::size_t tail_lines = 30; // kept for error messages
  std::string error_path;      // Child only: stderr appended here instead ("" = with stdout)
  std::string input_path;      // stdin read from this file ("" = /dev/null)
};

struct Usage {
  double user_s = 0, sys_s = 0;   // CPU time of the child and its reaped descendants
  long minor_faults = 0, major_faults = 0;
  long max_rss_kb = 0;
};

struct Result {
  int exit_code = -1;          // valid when signal == 0
  int signal = 0;              // the terminating signal, 0 if it exited
  bool timed_out = false;
  bool interrupted = false;    // kab got SIGINT/SIGTERM while it ran
  std::string output;          // captured output when output_path is ""
  std::string tail;            // the last tail_lines lines of output
  double wall_s = 0;
  Usage usage;

  bool ok() const { return exit_code == 0 && signal == 0 && !timed_out && !interrupted; }
  // "exited with 2", "killed by signal 9", "timed out after 30 s".
  std::string describe() const;
};

// Runs to completion. Throws kab::proc::SpawnError when the program cannot start.
Result run(const Options& options);

// Convenience: runs argv, returns stdout+stderr text and whether it exited 0.
std::pair<bool, std::string> capture(const std::vector<std::string>& argv, double timeout_s = 60);

struct SpawnError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A long-running child (backend, UML guest): started in its own process group.
class Child {
 public:
  Child() = default;
  explicit Child(const Options& options);   // throws SpawnError
  Child(Child&&) noexcept;
  Child& operator=(Child&&) noexcept;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child();   // stops the group if still running

  pid_t pid() const { return m_pid; }
  bool running();
  // Waits up to timeout_s (negative = forever); returns true when it exited.
  bool wait(double timeout_s);
  // TERM the group, wait grace_s, KILL the group, reap. Idempotent.
  void stop(double grace_s = 3);
  // Valid after the child is reaped.
  const Result& result() const { return m_result; }
  // CPU time so far of a running child (from /proc), or the final usage.
  Usage usage_now() const;

 private:
  bool reap(int flags);
  pid_t m_pid = -1;
  bool m_reaped = true;
  double m_start = 0;
  std::string m_output_path;
  std::size_t m_tail_lines = 30;
  Result m_result;
};

// CPU time and page faults so far of a running process, from /proc/PID/stat;
// zeros when it is gone.
Usage usage_of(pid_t pid);

// Processes other than this one that hold any of `paths` open (by /proc/PID/fd).
std::vector<pid_t> holders_of(const std::vector<std::string>& paths);

// Waits up to timeout_s until no other process holds any of `paths` open;
// true when none does. A writer that is a relay (libvirt's virtlogd copies a
// guest's serial pipe into its file after QEMU has exited) has written all it
// will when it closes the file.
bool wait_until_released(const std::vector<std::string>& paths, double timeout_s);

// The last n lines of a file (for error messages).
std::string tail_file(const std::string& path, std::size_t n);

// Set by kab's SIGINT/SIGTERM handler; runners stop their children when set.
std::atomic<bool>& interrupted_flag();
void install_interrupt_handler();

// Finds a program in PATH; "" when absent.
std::string which(const std::string& program);

}  // namespace kab::proc
