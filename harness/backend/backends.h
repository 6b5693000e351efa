// Backends serving the share under test: QEMU's virtiofsd and kab-dpu, both
// started per sample in their own process group, pinned and capped as the
// scenario says, their host CPU time and page faults recorded when stopped.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/ports.h"
#include "proc/runner.h"

namespace kab::backend {

struct BackendError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A daemon kab can start to serve the share, registered in one table: a
// scenario's backends[].type names one. Adding a backend type is its launcher
// (these three functions) and one entry in backends.cpp.
struct Launcher {
  const char* type;           // backends[].type
  // Where its binary is: a path, or the bare name when it is not found.
  std::string (*binary)();
  // Its options after the binary (the one that runs: its spelling may depend
  // on it): socket, shared directory, statistics file and the spec's settings.
  std::vector<std::string> (*options)(const std::string& binary, const core::BackendSpec& spec,
                                      const std::string& socket, const std::string& shared_dir,
                                      const std::string& stats_path);
  // Sent before it is stopped, to have it write its statistics (0: none).
  int stats_signal;
};

// Where a backend's shares live for a scenario's `store`: /dev/shm for
// tmpfs, else the store directory itself.
std::string share_parent(const std::string& store);

const std::vector<Launcher>& launchers();
// The launcher of a backend type; nullptr when there is none.
const Launcher* find_launcher(std::string_view type);
std::vector<std::string> backend_types();

class ProcessBackend : public core::Backend {
 public:
  // Runs `launcher`'s daemon (a table entry of launchers(), which outlives it).
  explicit ProcessBackend(const Launcher& launcher) : m_launcher(&launcher), m_binary(launcher.binary()) {}
  ~ProcessBackend() override { stop(); }
  core::BackendHandle start(const core::BackendSpec& spec, const std::string& work_dir) override;
  bool alive() override;
  core::HostUsage stop() override;
  std::string stats_json() override;

  // The command line for a spec (exposed for tests and provenance).
  std::vector<std::string> command(const core::BackendSpec& spec, const std::string& socket,
                                   const std::string& shared_dir, const std::string& stats_path) const;

 private:
  const Launcher* m_launcher;
  std::string m_binary;
  std::unique_ptr<proc::Child> m_child;
  void apply_cpu_quota(double fraction);
  std::string m_socket, m_stats_path, m_shared_dir, m_cgroup;
  bool m_owns_shared = false;
  core::HostUsage m_usage;
};

// Why BINARY cannot be run: "does not exist", "is not executable", "is not
// on PATH" (a bare name); "" when it can.
std::string executable_problem(const std::string& binary);

// Where kab looks for the virtio-fs daemon, in order: virtiofsd on PATH,
// /usr/libexec/virtiofsd (the Rust daemon's packages), /usr/lib/qemu/virtiofsd
// (QEMU's C daemon, Debian 12). default_virtiofsd() is the first that runs
// ("virtiofsd" when none does); backends[].binary overrides it.
std::vector<std::string> virtiofsd_candidates();
std::string default_virtiofsd();
std::string default_kab_dpu();   // kab-dpu next to kab or in PATH

// The two daemons spell their options apart: QEMU's C daemon `-o source=DIR
// -o cache=none`, the Rust one `--shared-dir=DIR --cache=never --writeback`.
// Which one a binary is, from its --help (asked once per binary).
enum class VirtiofsdFlavour { qemu_c, rust };
VirtiofsdFlavour virtiofsd_flavour(const std::string& binary);
std::vector<std::string> virtiofsd_arguments(VirtiofsdFlavour flavour, const core::BackendSpec& spec,
                                             const std::string& socket, const std::string& shared_dir);
// A backend of spec.type; throws BackendError for a type no launcher has.
std::unique_ptr<core::Backend> make_backend(const core::BackendSpec& spec);

}  // namespace kab::backend
