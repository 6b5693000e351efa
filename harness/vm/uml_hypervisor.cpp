#include "vm/uml_hypervisor.h"

#include <algorithm>
#include <chrono>
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

bool record_complete(const std::string& path) { return core::read_text(path).find("KAB-END") != std::string::npos; }

}  // namespace

core::PinningPlan uml_pinning(int host_cpus, int) {
  // Spread over two CPUs repeated samples varied 10-28%; on one, 0.9% while
  // the host was quiet.
  core::PinningPlan p;
  const int cpu = std::max(0, host_cpus - 1);
  p.vcpu_cpus = {cpu};
  p.backend_cpus = {cpu};
  p.raise_priority = true;
  p.caveat = "uml: uniprocessor, syscalls via ptrace";
  p.noise = "UML and backend pinned to host CPU " + std::to_string(cpu);
  return p;
}

std::vector<std::string> uml_command(const UmlCommandInput& in) {
  std::vector<std::string> argv;
  if (!in.cpus.empty()) {
    std::string list;
    for (int c : in.cpus) list += (list.empty() ? "" : ",") + std::to_string(c);
    argv = {"taskset", "-c", list};
  }
  // A panicking UML aborts: no core file of guest-memory size in the work directory.
  argv.insert(argv.end(), {"prlimit", "--core=0", "--", in.binary});
  argv.push_back("mem=" + std::to_string(in.memory_bytes / (1024 * 1024)) + "M");
  argv.push_back("initrd=" + in.initrd);
  argv.push_back("umid=" + in.umid);
  argv.push_back("uml_dir=" + in.uml_dir);
  argv.push_back("virtio_uml.device=" + in.fs_socket + ":26");
  // QEMU 7.2's virtiofsd cannot report the tag (no GET_CONFIG); kab's plumbing
  // patch makes virtio_uml use this one then (kernels/patches/harness/uml).
  argv.push_back("virtio_uml.fs_tag=" + in.fs_tag);
  // printk and the main console on stderr (console.log); the agent's record
  // through the first serial line on stdout (report.log); nothing else.
  argv.insert(argv.end(), {"con=null", "con0=null,fd:2", "ssl=null", "ssl0=null,fd:1"});
  // No panic=-1: a rebooting UML re-executes itself; a panicking one aborts.
  argv.insert(argv.end(), {"oops=panic", "rdinit=/init"});
  for (const auto& w : core::split(in.extra_cmdline, ' '))
    if (!core::trim(w).empty()) argv.push_back(core::trim(w));
  return argv;
}

core::GuestOutcome UmlHypervisor::run(const core::GuestRequest& req) {
  core::GuestOutcome out;
  out.console_path = req.work_dir + "/console.log";
  out.report_path = req.work_dir + "/report.log";
  fs::create_directories(req.work_dir);
  std::error_code ec;
  fs::remove(out.console_path, ec);
  fs::remove(out.report_path, ec);
  // UML's state (umid directory, mconsole socket) and its memory file live in
  // the sample's work directory, so nothing of it can outlive the sample.
  const std::string uml_dir = req.work_dir + "/uml";
  const std::string tmp_dir = core::starts_with(req.work_dir, "/dev/shm/") ? req.work_dir + "/uml-mem" : "/dev/shm";
  fs::create_directories(uml_dir);
  fs::create_directories(tmp_dir);
  auto cleanup = [&] {
    std::error_code e;
    fs::remove_all(uml_dir, e);
    if (tmp_dir != "/dev/shm") fs::remove_all(tmp_dir, e);
  };

  UmlCommandInput in;
  in.binary = req.kernel ? req.kernel->uml_binary : "";
  in.initrd = req.extra_initramfs.empty() ? req.initramfs : req.extra_initramfs;
  in.memory_bytes = req.guest.memory_bytes;
  in.fs_socket = req.backend_socket;
  in.fs_tag = req.tag;
  in.umid = req.name;
  in.uml_dir = uml_dir;
  in.extra_cmdline = req.guest.cmdline;
  in.cpus = req.vcpu_cpus;
  if (in.binary.empty() || !fs::exists(in.binary)) {
    out.end = core::GuestOutcome::End::failed;
    out.reason = "kernel " + (req.kernel ? req.kernel->name : std::string("?")) + " has no UML binary (build it with --arch um)";
    out.platform_failed = true;
    cleanup();
    return out;
  }

  proc::Options o;
  o.argv = uml_command(in);
  o.cwd = req.work_dir;
  o.env = {{"TMPDIR", tmp_dir}};
  o.output_path = out.report_path;
  o.error_path = out.console_path;
  {
    std::ofstream cmd(req.work_dir + "/uml-cmdline");
    for (const auto& a : o.argv) cmd << a << "\n";
  }

  const double t0 = core::now_s();
  proc::Child child;
  try {
    child = proc::Child(o);
  } catch (const std::exception& e) {
    out.end = core::GuestOutcome::End::failed;
    out.reason = std::string("cannot start the UML guest: ") + e.what();
    out.platform_failed = true;
    cleanup();
    return out;
  }
  out.boot_s = core::now_s() - t0;

  bool timed_out = false, interrupted = false, backend_died = false, exited = false;
  double record_seen = 0, panic_seen = 0;
  std::string hung;   // the kernel's hung-task report: the guest will not finish
  for (int tick = 0;; ++tick) {
    if (child.wait(0.05)) {
      exited = true;
      break;
    }
    if (proc::interrupted_flag()) {
      interrupted = true;
      break;
    }
    if (core::now_s() - t0 > req.guest.timeout_s) {
      timed_out = true;
      break;
    }
    if (req.backend_alive && !req.backend_alive()) {
      if (child.wait(0.5)) {  // a guest powering off closes the share first
        exited = true;
        break;
      }
      backend_died = true;
      break;
    }
    // The record is complete but the guest lingers in its power-off: give it
    // a moment, then end it; the record decides, not the exit.
    if (tick % 10 == 9) {
      if (record_seen == 0 && record_complete(out.report_path)) record_seen = core::now_s();
      if (panic_seen == 0 && core::console_has_panic(core::read_text(out.console_path))) panic_seen = core::now_s();
      if (record_seen == 0 && panic_seen == 0 && !(hung = core::console_hung_task(core::read_text(out.console_path))).empty())
        break;
    }
    if (record_seen > 0 && core::now_s() - record_seen > 5) break;
    // A panicked UML normally aborts at once; one that lingers is ended.
    if (panic_seen > 0 && core::now_s() - panic_seen > 3) break;
  }
  if (!exited) child.stop(2);
  // The group's CPU time: the UML kernel process and its userspace processes (reaped children).
  const proc::Usage& u = child.result().usage;
  out.vm_usage.user_s = u.user_s;
  out.vm_usage.sys_s = u.sys_s;
  out.vm_usage.minor_faults = u.minor_faults;
  out.vm_usage.major_faults = u.major_faults;
  out.total_s = core::now_s() - t0;
  cleanup();

  const bool completed = record_complete(out.report_path);
  const std::string console = core::read_text(out.console_path);
  const proc::Result& r = child.result();
  core::classify_guest_end(out, interrupted, timed_out, req.guest.timeout_s, backend_died, console, completed,
                           "UML guest " + r.describe() + " without the agent's record");
  if (!hung.empty() && !completed && !core::console_has_panic(console))
    core::stopped_for_hung_task(out, hung, out.total_s, req.guest.timeout_s);
  return out;
}

}  // namespace kab::vm
