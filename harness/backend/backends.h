// Backends serving the share under test: QEMU's virtiofsd and kab-dpu, both
// started per sample in their own process group, pinned and capped as the
// scenario says, their host CPU time and page faults recorded when stopped.
#pragma once

#include <memory>
#include <string>

#include "core/ports.h"
#include "proc/runner.h"

namespace kab::backend {

struct BackendError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class ProcessBackend : public core::Backend {
 public:
  // `binary`: virtiofsd path or kab-dpu path.
  explicit ProcessBackend(std::string binary) : m_binary(std::move(binary)) {}
  ~ProcessBackend() override { stop(); }
  core::BackendHandle start(const core::BackendSpec& spec, const std::string& work_dir) override;
  bool alive() override;
  core::HostUsage stop() override;
  std::string stats_json() override;

  // The command line for a spec (exposed for tests and provenance).
  std::vector<std::string> command(const core::BackendSpec& spec, const std::string& socket,
                                   const std::string& shared_dir, const std::string& stats_path) const;

 private:
  std::string m_binary;
  std::unique_ptr<proc::Child> m_child;
  void apply_cpu_quota(double fraction);
  std::string m_socket, m_stats_path, m_shared_dir, m_cgroup;
  bool m_owns_shared = false;
  bool m_is_dpu = false;
  core::HostUsage m_usage;
};

// The default binaries: /usr/lib/qemu/virtiofsd; kab-dpu next to kab or in PATH.
std::string default_virtiofsd();
std::string default_kab_dpu();
std::unique_ptr<core::Backend> make_backend(const core::BackendSpec& spec);

}  // namespace kab::backend
