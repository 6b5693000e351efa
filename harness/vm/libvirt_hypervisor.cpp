#include "vm/libvirt_hypervisor.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/health.h"
#include "core/system.h"
#include "core/text.h"
#include "proc/runner.h"

namespace fs = std::filesystem;

namespace kab::vm {

namespace {

std::string last_libvirt_error() {
  virErrorPtr e = virGetLastError();
  return e && e->message ? e->message : "unknown libvirt error";
}

std::string cpuset(const std::vector<int>& cpus) {
  std::string s;
  for (int c : cpus) s += (s.empty() ? "" : ",") + std::to_string(c);
  return s;
}

void silence_libvirt(void*, virErrorPtr) {}  // errors are read and reported by kab itself

}  // namespace

bool kvm_available() {
  // KAB_ACCEL=tcg|kvm overrides the probe.
  if (const char* forced = std::getenv("KAB_ACCEL")) return std::string(forced) == "kvm";
  int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  int version = ::ioctl(fd, KVM_GET_API_VERSION, 0);
  ::close(fd);
  if (version != KVM_API_VERSION) return false;
  // Some nested hosts expose /dev/kvm without virtualisation in the CPU; QEMU
  // then dies on MSR writes or hangs the guest. Trust KVM only with vmx/svm.
  return cpu_has_virtualisation();
}

bool cpu_has_virtualisation() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (core::starts_with(line, "flags"))
      return line.find(" vmx") != std::string::npos || line.find(" svm") != std::string::npos;
  return false;
}

bool socket_accepts(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    ::close(fd);
    return false;
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

namespace {

// A daemon that was killed (a session's end, a CI runner's cleanup) leaves its
// socket file behind: only a socket that accepts a connection means "running".
void ensure_daemon(const std::string& name, const std::string& sock, bool verbose) {
  if (socket_accepts(sock)) return;
  bool stale = fs::exists(sock);
  if (verbose)
    std::fprintf(stderr, "kab: starting %s (%s)\n", name.c_str(),
                 stale ? ("its socket " + sock + " refuses connections: stale, removed").c_str()
                       : "its socket is absent");
  std::error_code ec;
  if (stale) fs::remove(sock, ec);
  proc::Options o;
  o.argv = {name, "-d"};
  o.timeout_s = 30;
  proc::Result r = proc::run(o);
  if (!r.ok()) throw VmError("cannot start " + name + ": " + r.describe() + "\n" + r.output);
  for (int i = 0; i < 300 && !socket_accepts(sock); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  if (!socket_accepts(sock))
    throw VmError(name + " started but " + sock + " did not accept connections within 30 s");
}

}  // namespace

void ensure_libvirt_daemons(bool verbose) {
  // virtlogd first: libvirtd hands every domain's log to it.
  ensure_daemon("virtlogd", "/run/libvirt/virtlogd-sock", verbose);
  ensure_daemon("libvirtd", "/run/libvirt/libvirt-sock", verbose);
}

std::string domain_xml(const DomainXmlInput& in) {
  std::ostringstream x;
  x << "<domain type='" << in.domain_type << "'>\n"
    << "  <name>" << core::xml_escape(in.name) << "</name>\n"
    << "  <memory unit='b'>" << in.memory_bytes << "</memory>\n"
    << "  <vcpu placement='static'>" << in.vcpus << "</vcpu>\n";
  if (!in.vcpu_cpus.empty() || !in.emulator_cpus.empty()) {
    x << "  <cputune>\n";
    for (int v = 0; v < in.vcpus && !in.vcpu_cpus.empty(); ++v)
      x << "    <vcpupin vcpu='" << v << "' cpuset='" << in.vcpu_cpus[static_cast<std::size_t>(v) % in.vcpu_cpus.size()] << "'/>\n";
    if (!in.emulator_cpus.empty()) x << "    <emulatorpin cpuset='" << cpuset(in.emulator_cpus) << "'/>\n";
    x << "  </cputune>\n";
  }
  // vhost-user needs guest memory the backend can map.
  x << "  <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>\n"
    << "  <os>\n    <type arch='x86_64' machine='pc'>hvm</type>\n"
    << "    <kernel>" << core::xml_escape(in.kernel) << "</kernel>\n";
  if (!in.initrd.empty()) x << "    <initrd>" << core::xml_escape(in.initrd) << "</initrd>\n";
  x << "    <cmdline>" << core::xml_escape(in.cmdline) << "</cmdline>\n  </os>\n"
    << "  <features><acpi/></features>\n";
  if (in.domain_type == "kvm") x << "  <cpu mode='host-passthrough'/>\n";
  // A panic with panic=-1 reboots: destroy on every end, and let the agent's record decide.
  x << "  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>destroy</on_reboot>\n  <on_crash>destroy</on_crash>\n"
    << "  <devices>\n"
    << "    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n";
  // Read-only: one cached root serves every sample and no sample can change it.
  const std::pair<const std::string*, const char*> disks[] = {{&in.root_disk, "vda"}, {&in.sample_disk, "vdb"}};
  for (const auto& [file, dev] : disks)
    if (!file->empty())
      x << "    <disk type='file' device='disk'>\n      <driver name='qemu' type='raw'/>\n"
        << "      <source file='" << core::xml_escape(*file) << "'/>\n"
        << "      <target dev='" << dev << "' bus='virtio'/>\n      <readonly/>\n    </disk>\n";
  x
    << "    <filesystem type='mount'>\n      <driver type='virtiofs' queue='1024'/>\n"
    << "      <source socket='" << core::xml_escape(in.fs_socket) << "'/>\n"
    << "      <target dir='" << core::xml_escape(in.fs_tag) << "'/>\n    </filesystem>\n"
    << "    <serial type='file'><source path='" << core::xml_escape(in.console_path) << "'/><target port='0'/></serial>\n"
    << "    <serial type='file'><source path='" << core::xml_escape(in.report_path) << "'/><target port='1'/></serial>\n"
    << "    <memballoon model='none'/>\n"
    << "  </devices>\n"
    // QEMU runs as root: the cache under /root is not readable by libvirt-qemu,
    // and the backend's socket then needs no group juggling.
    << "  <seclabel type='static' model='dac' relabel='no'><label>+0:+0</label></seclabel>\n"
    << "</domain>\n";
  return x.str();
}

LibvirtHypervisor::LibvirtHypervisor(std::string uri) : m_uri(std::move(uri)) {}

void* LibvirtHypervisor::connection() {
  if (m_conn) return m_conn;
  virSetErrorFunc(nullptr, silence_libvirt);
  if (m_uri == "qemu:///system") ensure_libvirt_daemons();
  m_conn = virConnectOpen(m_uri.c_str());
  if (!m_conn) throw VmError("cannot connect to " + m_uri + ": " + last_libvirt_error());
  return m_conn;
}

core::PinningPlan qemu_pinning(int host_cpus, int vcpus) {
  core::PinningPlan p;
  if (host_cpus >= vcpus + 2) {
    for (int i = 0; i < vcpus; ++i) p.vcpu_cpus.push_back(2 + i);
    p.emulator_cpus = {1};
    p.noise = "vcpus pinned to 2-" + std::to_string(1 + vcpus) + ", emulator to 1, backend free on 0";
    return p;
  }
  // Measured on 2 CPUs (ARCHITECTURE.md): pinning QEMU to one CPU and the
  // backend to the other was worse in every figure than leaving them free.
  p.noise = "not pinned (host has " + std::to_string(host_cpus) + " CPUs, need " + std::to_string(vcpus + 2) + ")";
  p.warning = "warning: host has " + std::to_string(host_cpus) +
              " CPUs: vCPUs, emulator and backend are not pinned apart";
  return p;
}

core::PinningPlan LibvirtHypervisor::pinning(int host_cpus, int vcpus) const { return qemu_pinning(host_cpus, vcpus); }

std::string LibvirtHypervisor::warning() {
  if (accelerator() != "tcg") return "";
  return "*** WARNING *** no /dev/kvm: guests run under QEMU TCG (software emulation). Absolute MiB/s are not "
         "hardware numbers; A/B ratios within one run are the result. (platform: uml runs the guest kernel natively "
         "without KVM.)";
}

LibvirtHypervisor::~LibvirtHypervisor() {
  if (m_conn) virConnectClose(static_cast<virConnectPtr>(m_conn));
}

BootImage boot_image(const core::KernelArtifact& kernel) {
  const std::string config = kernel.config_path.empty() ? "" : core::read_text(kernel.config_path);
  const bool kasan = ("\n" + config).find("\nCONFIG_KASAN=y\n") != std::string::npos;
  if ((kasan || kernel.vmlinux.empty()) && !kernel.bzimage.empty()) return {kernel.bzimage, "bzImage"};
  return {kernel.vmlinux, "pvh"};
}

std::string LibvirtHypervisor::accelerator() { return kvm_available() ? "kvm" : "tcg"; }

std::string LibvirtHypervisor::versions() {
  unsigned long lib = 0, hv = 0;
  virConnectGetLibVersion(static_cast<virConnectPtr>(connection()), &lib);
  virConnectGetVersion(static_cast<virConnectPtr>(m_conn), &hv);
  auto v = [](unsigned long n) {
    return std::to_string(n / 1000000) + "." + std::to_string((n / 1000) % 1000) + "." + std::to_string(n % 1000);
  };
  return "libvirt " + v(lib) + ", QEMU " + v(hv);
}

core::GuestOutcome LibvirtHypervisor::run(const core::GuestRequest& req) {
  core::GuestOutcome out;
  out.console_path = req.work_dir + "/console.log";
  out.report_path = req.work_dir + "/report.log";
  fs::create_directories(req.work_dir);
  std::error_code ec;
  fs::remove(out.console_path, ec);
  fs::remove(out.report_path, ec);

  DomainXmlInput in;
  in.name = req.name;
  in.domain_type = kvm_available() ? "kvm" : "qemu";
  in.kernel = boot_image(*req.kernel).path;
  // acpi=noirq: PCI interrupts are routed from the BIOS's $PIR table, not by
  // evaluating the DSDT's _PRT. i440fx's _PRT is an AML loop over every slot;
  // a KASAN kernel under TCG spends 25 s in it, the lockup detector reports it,
  // and past ACPICA's 30 s loop limit the virtio-fs device gets no IRQ at all
  // (AE_AML_LOOP_TIMEOUT, "PCI INT A: no GSI"): the share mounts and its first
  // request never completes. The routing found is the same (INT A -> IRQ 10).
  in.cmdline = "console=ttyS0 panic=-1 oops=panic reboot=t acpi=noirq ";
  if (!req.root_disk.empty()) {
    // guest.image: disk — the agent unpacks its per-sample inputs from vdb.
    in.root_disk = req.root_disk;
    in.sample_disk = req.sample_disk;
    in.cmdline += "root=/dev/vda ro rootfstype=ext4 init=/init kab.disk=/dev/vdb ";
  } else {
    in.initrd = req.extra_initramfs.empty() ? req.initramfs : req.extra_initramfs;
    in.cmdline += "rdinit=/init ";
  }
  in.cmdline += req.guest.cmdline;
  in.memory_bytes = req.guest.memory_bytes;
  in.vcpus = req.guest.vcpus;
  in.fs_socket = req.backend_socket;
  in.fs_tag = req.tag;
  in.console_path = out.console_path;
  in.report_path = out.report_path;
  in.vcpu_cpus = req.vcpu_cpus;
  in.emulator_cpus = req.emulator_cpus;
  std::string xml = domain_xml(in);
  { std::ofstream(req.work_dir + "/domain.xml") << xml; }

  auto* conn = static_cast<virConnectPtr>(connection());
  // A leftover domain of the same name (from a killed kab) would block the name.
  if (virDomainPtr old = virDomainLookupByName(conn, req.name.c_str())) {
    virDomainDestroy(old);
    virDomainFree(old);
  }
  const double t0 = core::now_s();
  virDomainPtr dom = virDomainCreateXML(conn, xml.c_str(), VIR_DOMAIN_START_AUTODESTROY);
  if (!dom) {
    out.end = core::GuestOutcome::End::failed;
    out.reason = "libvirt could not start domain " + req.name + ": " + last_libvirt_error();
    out.platform_failed = true;
    return out;
  }
  out.boot_s = core::now_s() - t0;
  pid_t qemu_pid = 0;
  {
    // QEMU's pid, for its host CPU time: libvirt writes it to /run/libvirt/qemu/NAME.pid.
    std::ifstream pidf("/run/libvirt/qemu/" + req.name + ".pid");
    pidf >> qemu_pid;
  }
  auto qemu_usage = [&](core::HostUsage& u) {
    if (qemu_pid <= 0) return;
    proc::Usage now = proc::usage_of(qemu_pid);
    if (now.user_s + now.sys_s > 0) u = {now.user_s, now.sys_s, now.minor_faults, now.major_faults};
  };


  bool timed_out = false, interrupted = false, backend_died = false;
  std::string hung;   // the kernel's hung-task report: the guest will not finish
  for (int tick = 1;; ++tick) {
    int state = 0, reason = 0;
    if (virDomainGetState(dom, &state, &reason, 0) < 0 || state == VIR_DOMAIN_SHUTOFF || state == VIR_DOMAIN_CRASHED)
      break;
    qemu_usage(out.vm_usage);   // the last reading before QEMU exits
    if (proc::interrupted_flag()) {
      interrupted = true;
      break;
    }
    if (core::now_s() - t0 > req.guest.timeout_s) {
      timed_out = true;
      break;
    }
    // A hung task, unless the agent already finished (a stall that passed).
    if (tick % 20 == 0 && !(hung = core::console_hung_task(core::read_text(out.console_path))).empty()) {
      if (core::read_text(out.report_path).find("KAB-END") == std::string::npos) break;
      hung.clear();
    }
    if (req.backend_alive && !req.backend_alive()) {
      // Give a guest that is powering off (and so closing the share) a moment to finish.
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      if (virDomainGetState(dom, &state, &reason, 0) == 0 && state != VIR_DOMAIN_SHUTOFF) backend_died = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  virDomainDestroy(dom);   // no-op when already gone; ends it on timeout
  virDomainFree(dom);
  out.total_s = core::now_s() - t0;
  // The serial files are written by virtlogd from pipes QEMU held (libvirt's
  // default stdio_handler): when the domain is off, the last lines (KAB-END,
  // a panic) may still be in the pipe. virtlogd closes a file once it has
  // copied everything, so read them only then (CI lost a finished sample's
  // record to this race, "guest stopped without the agent's record").
  const bool released = proc::wait_until_released({out.console_path, out.report_path}, 10.0);

  const std::string report = core::read_text(out.report_path);
  const std::string console = core::read_text(out.console_path);
  const bool completed = report.find("KAB-END") != std::string::npos;
  core::classify_guest_end(out, interrupted, timed_out, req.guest.timeout_s, backend_died, console, completed,
                           "guest stopped without the agent's record");
  if (!hung.empty() && !completed && !core::console_has_panic(console))
    core::stopped_for_hung_task(out, hung, out.total_s, req.guest.timeout_s);
  if (!released && out.end != core::GuestOutcome::End::completed)
    out.reason += " (its serial logs were still held open 10 s after it stopped)";
  return out;
}

}  // namespace kab::vm
