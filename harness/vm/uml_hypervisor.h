// Hypervisor for User-Mode Linux: the guest kernel (ARCH=um `linux` binary) is
// a host process, started per sample in its own process group. It reaches the
// backend's vhost-user-fs socket through virtio_uml, boots the same per-sample
// initramfs and agent as QEMU guests, writes printk and the main console to
// console.log (its stderr) and the agent's record through its first serial
// line (/dev/ttyS0 in the guest) to report.log (its stdout).
#pragma once

#include <string>
#include <vector>

#include "core/ports.h"

namespace kab::vm {

// Where the agent writes its record under UML.
inline constexpr const char* k_uml_report_device = "/dev/ttyS0";

struct UmlCommandInput {
  std::string binary;          // the artifact's `linux`
  std::string initrd;
  std::uint64_t memory_bytes = 0;
  std::string fs_socket, fs_tag;
  std::string umid, uml_dir;
  std::string extra_cmdline;   // the scenario's guest.cmdline (may override rdinit=)
  std::vector<int> cpus;       // host CPUs the whole group runs on (empty = unpinned)
};
// The argv of a UML guest: [taskset -c CPUS] linux mem= initrd= virtio_uml... con0=... .
std::vector<std::string> uml_command(const UmlCommandInput& in);

// UML's pinning: the whole synchronous pipeline — the UML kernel, its
// userspace and the backend — on the host's last CPU at a raised priority.
core::PinningPlan uml_pinning(int host_cpus, int vcpus);

class UmlHypervisor : public core::Hypervisor {
 public:
  std::string accelerator() override { return "uml"; }
  std::string kernel_arch() const override { return "um"; }
  std::string report_device() const override { return k_uml_report_device; }
  std::string versions() override { return "not used (platform uml)"; }
  core::PinningPlan pinning(int host_cpus, int vcpus) const override { return uml_pinning(host_cpus, vcpus); }
  // Never throws for guest failures: they are outcomes. Completion is the
  // agent's KAB-END line, not the exit status (UML may SIGABRT after
  // "System halted" with a complete record). On timeout or interruption the
  // process group is TERMed then KILLed; the UML directory and memory file
  // (TMPDIR under the work directory) are removed after any outcome.
  core::GuestOutcome run(const core::GuestRequest& request) override;
};

}  // namespace kab::vm
