#include "backend/backends.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "core/system.h"
#include "core/text.h"

namespace fs = std::filesystem;

namespace kab::backend {

namespace {

std::string join_cpus(const std::vector<int>& cpus) {
  std::string s;
  for (int c : cpus) s += (s.empty() ? "" : ",") + std::to_string(c);
  return s;
}

std::string self_dir() {
  std::error_code ec;
  return fs::read_symlink("/proc/self/exe", ec).parent_path().string();
}

}  // namespace

std::string executable_problem(const std::string& binary) {
  if (binary.find('/') == std::string::npos)
    return proc::which(binary).empty() ? "is not on PATH" : "";
  std::error_code ec;
  if (!fs::exists(binary, ec)) return "does not exist";
  if (fs::is_directory(binary, ec)) return "is a directory";
  if (::access(binary.c_str(), X_OK) != 0) return "is not executable";
  return "";
}

std::vector<std::string> virtiofsd_candidates() {
  std::vector<std::string> out;
  if (auto on_path = proc::which("virtiofsd"); !on_path.empty()) out.push_back(on_path);
  out.push_back("/usr/libexec/virtiofsd");    // the Rust daemon's package (Debian 13, Fedora, Arch)
  out.push_back("/usr/lib/qemu/virtiofsd");   // QEMU's C daemon (Debian 12's qemu-system-common)
  return out;
}

std::string default_virtiofsd() {
  for (const auto& c : virtiofsd_candidates())
    if (executable_problem(c).empty()) return c;
  return "virtiofsd";
}

VirtiofsdFlavour virtiofsd_flavour(const std::string& binary) {
  // Asked once per binary: its --help names its options (the Rust daemon has --shared-dir).
  static std::map<std::string, VirtiofsdFlavour> known;
  if (auto it = known.find(binary); it != known.end()) return it->second;
  auto [ok, help] = proc::capture({binary, "--help"});
  (void)ok;   // QEMU's daemon exits 0, the Rust one too; a missing binary fails later, at start
  const auto f = help.find("--shared-dir") != std::string::npos ? VirtiofsdFlavour::rust : VirtiofsdFlavour::qemu_c;
  known[binary] = f;
  return f;
}

std::vector<std::string> virtiofsd_arguments(VirtiofsdFlavour flavour, const core::BackendSpec& spec,
                                             const std::string& socket, const std::string& shared_dir) {
  std::vector<std::string> argv = {"--socket-path=" + socket};
  if (flavour == VirtiofsdFlavour::rust) {
    // The Rust daemon: --shared-dir, --cache=never (not none), --writeback a flag, --sandbox=none allowed.
    argv.push_back("--shared-dir=" + shared_dir);
    argv.push_back("--cache=" + (spec.cache == "none" ? std::string("never") : spec.cache));
    if (spec.writeback) argv.push_back("--writeback");
    argv.push_back("--sandbox=" + spec.sandbox);
  } else {
    // QEMU's C daemon: -o options; it has no sandbox=none (chroot is the least).
    argv.insert(argv.end(), {"-o", "source=" + shared_dir, "-o", "cache=" + spec.cache, "-o",
                             spec.writeback ? "writeback" : "no_writeback", "-o",
                             "sandbox=" + (spec.sandbox == "none" ? std::string("chroot") : spec.sandbox)});
  }
  if (spec.thread_pool_size > 0) argv.push_back("--thread-pool-size=" + std::to_string(spec.thread_pool_size));
  return argv;
}

std::string default_kab_dpu() {
  for (const auto& cand : {self_dir() + "/kab-dpu", self_dir() + "/../dpu/kab-dpu"})
    if (fs::exists(cand)) return fs::canonical(cand).string();
  std::string p = proc::which("kab-dpu");
  return p.empty() ? "kab-dpu" : p;
}

namespace {

std::vector<std::string> virtiofsd_options(const std::string& binary, const core::BackendSpec& spec,
                                           const std::string& socket, const std::string& shared_dir, const std::string&) {
  return virtiofsd_arguments(virtiofsd_flavour(binary), spec, socket, shared_dir);
}

std::vector<std::string> dpu_options(const std::string&, const core::BackendSpec& spec, const std::string& socket,
                                     const std::string& shared_dir, const std::string& stats_path) {
  std::vector<std::string> argv = {"--socket", socket, "--shared-dir", shared_dir, "--tag", "kabfs"};
  if (spec.writeback) argv.push_back("--writeback");
  argv.insert(argv.end(), {"--cores", std::to_string(spec.dpu.cores)});
  if (!spec.dpu.core_cpus.empty()) argv.insert(argv.end(), {"--core-cpus", join_cpus(spec.dpu.core_cpus)});
  if (spec.dpu.latency_us > 0) argv.insert(argv.end(), {"--latency-us", std::to_string(spec.dpu.latency_us)});
  if (spec.dpu.bandwidth_mbps > 0) argv.insert(argv.end(), {"--bandwidth-mbps", std::to_string(spec.dpu.bandwidth_mbps)});
  if (spec.dpu.queue_depth > 0) argv.insert(argv.end(), {"--queue-depth", std::to_string(spec.dpu.queue_depth)});
  argv.insert(argv.end(), {"--stats", stats_path});
  return argv;
}

}  // namespace

// The share lives on tmpfs so the FUSE path is measured, not the host disk.
std::string share_parent(const std::string& store) { return store == "tmpfs" ? "/dev/shm" : store; }

const std::vector<Launcher>& launchers() {
  static const std::vector<Launcher> table = {
      {"virtiofsd", default_virtiofsd, virtiofsd_options, 0},
      {"dpu", default_kab_dpu, dpu_options, SIGUSR1},   // kab-dpu writes its statistics on SIGUSR1
  };
  return table;
}

const Launcher* find_launcher(std::string_view type) {
  for (const auto& l : launchers())
    if (type == l.type) return &l;
  return nullptr;
}

std::vector<std::string> backend_types() {
  std::vector<std::string> out;
  for (const auto& l : launchers()) out.push_back(l.type);
  return out;
}

std::unique_ptr<core::Backend> make_backend(const core::BackendSpec& spec) {
  const Launcher* l = find_launcher(spec.type);
  if (!l) throw BackendError("backend " + spec.name + ": no launcher for type '" + spec.type + "'");
  return std::make_unique<ProcessBackend>(*l);
}

std::vector<std::string> ProcessBackend::command(const core::BackendSpec& spec, const std::string& socket,
                                                 const std::string& shared_dir, const std::string& stats_path) const {
  std::vector<std::string> argv;
  // Pinning applies to whichever backend runs, so both compare under one CPU budget.
  if (!spec.cpus.empty()) argv = {"taskset", "-c", join_cpus(spec.cpus)};
  const std::string& binary = spec.binary.empty() ? m_binary : spec.binary;
  argv.push_back(binary);
  auto options = m_launcher->options(binary, spec, socket, shared_dir, stats_path);
  argv.insert(argv.end(), options.begin(), options.end());
  return argv;
}

// Caps the backend's CPU time with a cgroup (v1 cpu controller, or v2 cpu.max),
// so both backends can be compared under one CPU budget. Threads the backend
// starts later inherit the group.
void ProcessBackend::apply_cpu_quota(double fraction) {
  const long period = 100000;
  const long quota = static_cast<long>(fraction * period);
  const std::string name = "kab-backend-" + std::to_string(::getpid()) + "-" + std::to_string(m_child->pid());
  auto write = [](const fs::path& p, const std::string& v) {
    std::ofstream out(p);
    out << v;
    out.flush();
    return static_cast<bool>(out);
  };
  std::error_code ec;
  if (fs::exists("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")) {
    m_cgroup = "/sys/fs/cgroup/cpu/" + name;
    fs::create_directories(m_cgroup, ec);
    if (write(m_cgroup + "/cpu.cfs_period_us", std::to_string(period)) &&
        write(m_cgroup + "/cpu.cfs_quota_us", std::to_string(quota)) &&
        write(m_cgroup + "/cgroup.procs", std::to_string(m_child->pid())))
      return;
  } else if (fs::exists("/sys/fs/cgroup/cgroup.controllers")) {
    m_cgroup = "/sys/fs/cgroup/" + name;
    fs::create_directories(m_cgroup, ec);
    if (write(m_cgroup + "/cpu.max", std::to_string(quota) + " " + std::to_string(period)) &&
        write(m_cgroup + "/cgroup.procs", std::to_string(m_child->pid())))
      return;
  }
  stop();
  throw BackendError("cannot cap the backend's CPU at " + std::to_string(static_cast<int>(fraction * 100)) +
                     "%: no writable cgroup cpu controller (" + (m_cgroup.empty() ? "none found" : m_cgroup) + ")");
}

core::BackendHandle ProcessBackend::start(const core::BackendSpec& spec, const std::string& work_dir) {
  stop();
  fs::create_directories(work_dir);
  core::BackendHandle h;
  h.socket_path = work_dir + "/backend.sock";
  h.log_path = work_dir + "/backend.log";
  m_stats_path = work_dir + "/backend-stats.json";
  h.shared_dir = share_parent(spec.store) + "/kab-share-" +
                 (spec.store == "tmpfs" ? std::to_string(::getpid()) + "-" : std::string()) +
                 fs::path(work_dir).filename().string();
  m_owns_shared = true;
  fs::remove_all(h.shared_dir);
  fs::create_directories(h.shared_dir);
  m_shared_dir = h.shared_dir;
  fs::remove(h.socket_path);
  m_socket = h.socket_path;
  proc::Options o;
  o.argv = command(spec, h.socket_path, h.shared_dir, m_stats_path);
  o.output_path = h.log_path;
  for (const auto& a : o.argv) h.cmdline += (h.cmdline.empty() ? "" : " ") + a;
  try {
    m_child = std::make_unique<proc::Child>(o);
  } catch (const proc::SpawnError& e) {
    throw BackendError(std::string("backend ") + spec.name + ": " + e.what());
  }
  if (spec.cpu_quota > 0) apply_cpu_quota(spec.cpu_quota);
  // Ready when the socket exists.
  for (int i = 0; i < 1000; ++i) {
    if (fs::exists(h.socket_path)) return h;
    if (!m_child->running()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::string tail = proc::tail_file(h.log_path, 20);
  std::string why = m_child->running() ? "no socket after 10 s" : m_child->result().describe();
  stop();
  throw BackendError("backend " + spec.name + " (" + h.cmdline + ") did not start: " + why + "\n" + tail);
}

bool ProcessBackend::alive() { return m_child && m_child->running(); }

core::HostUsage ProcessBackend::stop() {
  if (m_child) {
    // virtiofsd and kab-dpu end by themselves when the guest disconnects.
    if (m_child->running() && m_launcher->stats_signal) {
      ::kill(m_child->pid(), m_launcher->stats_signal);
      m_child->wait(0.5);
    }
    m_child->stop(2);
    const auto& u = m_child->result().usage;
    m_usage = {u.user_s, u.sys_s, u.minor_faults, u.major_faults};
    m_child.reset();
  }
  std::error_code ec;
  if (!m_cgroup.empty()) {
    ::rmdir(m_cgroup.c_str());
    m_cgroup.clear();
  }
  if (!m_socket.empty()) fs::remove(m_socket, ec);
  if (m_owns_shared && !m_shared_dir.empty()) fs::remove_all(m_shared_dir, ec);
  m_shared_dir.clear();
  return m_usage;
}

std::string ProcessBackend::stats_json() { return core::read_text(m_stats_path); }

}  // namespace kab::backend
