// Hypervisor over libvirt's C API: transient QEMU domains (KVM when
// /dev/kvm exists, TCG otherwise) booting the cached vmlinux directly, with
// memfd shared memory, a vhost-user-fs device on the backend's socket, the
// console and the agent's report on two serial ports logged to files.
#pragma once

#include <string>

#include "core/ports.h"

namespace kab::vm {

struct VmError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Starts virtlogd and libvirtd when their sockets do not accept connections
// (absent, or stale files of a killed daemon, which are removed first; no
// systemd here); says so on stderr. Throws VmError when they do not come up.
void ensure_libvirt_daemons(bool verbose = true);

// True when a unix stream socket at `path` accepts a connection.
bool socket_accepts(const std::string& path);

// KVM is used when /dev/kvm answers KVM_GET_API_VERSION and the CPU shows
// vmx/svm; KAB_ACCEL=tcg|kvm overrides the probe.
bool kvm_available();
bool cpu_has_virtualisation();   // vmx or svm in /proc/cpuinfo

struct DomainXmlInput {
  std::string name, domain_type;      // "kvm" | "qemu"
  std::string kernel, initrd, cmdline;   // initrd empty: none
  std::string root_disk, sample_disk;    // read-only virtio-blk vda, vdb (empty: none)
  std::uint64_t memory_bytes = 0;
  int vcpus = 1;
  std::string fs_socket, fs_tag;
  std::string console_path, report_path;
  std::vector<int> vcpu_cpus, emulator_cpus;
};
std::string domain_xml(const DomainXmlInput& in);

// The image QEMU boots: the uncompressed vmlinux through PVH (no decompression
// under TCG), except for a kernel built with KASAN: its instrumented early
// code faults before the first console line on the PVH entry, so it boots the
// bzImage through the usual x86 boot protocol. Read from the artifact's config.
struct BootImage {
  std::string path;
  std::string protocol;   // "pvh" | "bzImage"
};
BootImage boot_image(const core::KernelArtifact& kernel);

// QEMU's pinning on a host of `host_cpus`: vCPUs on 2…, the emulator on 1 and
// the backend free on 0 when there is a CPU for each role; unpinned (with a
// warning) below vcpus + 2 CPUs.
core::PinningPlan qemu_pinning(int host_cpus, int vcpus);

class LibvirtHypervisor : public core::Hypervisor {
 public:
  // Connects on first use (versions(), run()), starting the daemons then: a
  // run builds its kernels before it needs libvirt. run() throws VmError when
  // libvirt cannot be reached.
  explicit LibvirtHypervisor(std::string uri = "qemu:///system");
  ~LibvirtHypervisor() override;
  std::string accelerator() override;
  std::string kernel_arch() const override { return "x86_64"; }
  std::string report_device() const override { return "/dev/ttyS1"; }
  std::string versions() override;   // "libvirt X, QEMU Y"
  core::PinningPlan pinning(int host_cpus, int vcpus) const override;
  std::string warning() override;    // the TCG warning without KVM
  core::GuestOutcome run(const core::GuestRequest& request) override;

 private:
  void* connection();       // virConnectPtr
  std::string m_uri;
  void* m_conn = nullptr;
};

}  // namespace kab::vm
