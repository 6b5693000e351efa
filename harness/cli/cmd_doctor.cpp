// kab doctor: is this machine ready to produce evidence, and how trustworthy
// will it be? Every check names what it found and what to do about it.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backend/backends.h"
#include "cli/app.h"
#include "cli/parse.h"
#include "cli/runner.h"
#include "core/text.h"
#include "kernel/builder.h"
#include "vm/libvirt_hypervisor.h"
#include "vm/platforms.h"

namespace fs = std::filesystem;

namespace kab::cli {

namespace {

enum class Level { ok, warn, fail };

struct Check {
  std::string name;
  Level level;
  std::string detail;
};

const char* level_name(Level l) { return l == Level::ok ? "ok" : l == Level::warn ? "warn" : "FAIL"; }

std::vector<Check> run_checks() {
  std::vector<Check> c;
  // The accelerator decides what the numbers mean.
  if (vm::kvm_available()) c.push_back({"accelerator", Level::ok, "KVM (/dev/kvm usable, CPU has vmx/svm)"});
  else {
    const char* forced = std::getenv("KAB_ACCEL");
    std::string why = forced ? "KAB_ACCEL=" + std::string(forced) + ": "
                      : fs::exists("/dev/kvm") && !vm::cpu_has_virtualisation() ? "/dev/kvm exists but the CPU shows no vmx/svm: "
                                                                                  : "no /dev/kvm: ";
    c.push_back({"accelerator", Level::warn,
                 why + "QEMU guests run under TCG (absolute MiB/s are not hardware numbers). For native-speed kernel "
                       "code use guest.platform: uml (e.g. scenarios/rfc-writeback-uml.yaml)"});
  }
  // Tools every run needs (the same version probes a run records), and two it can do without.
  struct Tool {
    const char* name;
    std::vector<std::string> version;
    const char* package;
    bool required;
  };
  const Tool tools[] = {
      {"qemu-system-x86_64", {"qemu-system-x86_64", "--version"}, "qemu-system-x86", true},
      {"libvirtd", {"libvirtd", "--version"}, "libvirt-daemon-system", true},
      {"fio", {"fio", "--version"}, "fio", true},
      {"busybox", {"/bin/busybox", "--help"}, "busybox-static", true},
      {"make", {"make", "--version"}, "make", true},
      {"gcc", {"gcc", "--version"}, "build-essential", true},
      {"ccache", {"ccache", "--version"}, "ccache", false},
      {"gnuplot", {"gnuplot", "--version"}, "gnuplot-nox", false},
  };
  for (const auto& t : tools) {
    std::string v = first_line(t.version);
    if (v == k_unavailable)
      c.push_back({t.name, t.required ? Level::fail : Level::warn,
                   std::string("not found (apt-get install ") + t.package + ", or make deps)"});
    else c.push_back({t.name, Level::ok, v});
  }
  {
    // The virtio-fs daemon kab finds (backends[].binary overrides it), and how it spells its options.
    const std::string vfs = backend::default_virtiofsd();
    const std::string v = first_line({vfs, "--version"});
    std::string searched;
    for (const auto& cand : backend::virtiofsd_candidates()) searched += (searched.empty() ? "" : ", ") + cand;
    if (v == k_unavailable)
      c.push_back({"virtiofsd", Level::fail,
                   "not found (looked for " + searched + "; apt-get install qemu-system-common, or make deps, or set "
                   "backends[].binary)"});
    else
      c.push_back({"virtiofsd", Level::ok,
                   v + " — " + vfs +
                       (backend::virtiofsd_flavour(vfs) == backend::VirtiofsdFlavour::rust
                            ? ", the Rust daemon (--shared-dir options)"
                            : ", QEMU's C daemon (-o options)")});
  }
  {
    std::string dpu = backend::default_kab_dpu();
    c.push_back({"kab-dpu", fs::exists(dpu) ? Level::ok : Level::warn,
                 fs::exists(dpu) ? dpu : "not built (make): backends of type dpu cannot run"});
  }
  // Daemons: kab starts them itself, so their absence is only a note.
  for (const auto& [name, sock] : {std::pair<std::string, std::string>{"virtlogd", "/run/libvirt/virtlogd-sock"},
                                   {"libvirtd", "/run/libvirt/libvirt-sock"}}) {
    bool up = vm::socket_accepts(sock);
    c.push_back({name + " daemon", Level::ok,
                 up ? "running (" + sock + ")"
                    : std::string(fs::exists(sock) ? "stale socket " + sock : "not running") +
                          ": kab starts it before the first QEMU guest"});
  }
  // Kernel sources and the build cache.
  {
    std::string found;
    for (const char* pkg : {"linux-source-6.1", "linux-source-6.12"})
      if (!kernel::debian_source_tarball(pkg).empty()) found += (found.empty() ? "" : ", ") + std::string(pkg);
    c.push_back({"kernel sources", found.empty() ? Level::fail : Level::ok,
                 found.empty() ? "no linux-source tarball under /usr/src (make deps installs linux-source-6.1)" : found});
  }
  {
    const std::size_t kernels = kernel::Builder(kernel_options()).cached().size();
    c.push_back({"build cache", Level::ok,
                 paths().cache_dir + ": " + std::to_string(kernels) + " kernel build(s)" +
                     (kernels ? "" : " (the first build of a kernel takes ~11 min on 2 cores)")});
  }
  // libguestfs (guest.image: disk) boots its appliance with a host kernel.
  {
    bool kernel = false;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/boot", ec))
      if (core::starts_with(e.path().filename().string(), "vmlinuz-")) kernel = true;
    c.push_back({"libguestfs", kernel ? Level::ok : Level::warn,
                 kernel ? "a kernel in /boot for its appliance (guest.image: disk)"
                        : "no kernel in /boot: guest.image: disk cannot build its root disk (apt-get install "
                          "linux-image-amd64)"});
  }
  // Noise: how far this host can separate what it measures — each platform's
  // own pinning plan for this host and a 1-vCPU guest, the plan a run applies.
  {
    const int cores = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
    bool apart = true;
    std::string plans;
    for (const auto& p : vm::platforms()) {
      core::PinningPlan plan = p.pinning(cores, 1);
      apart &= plan.warning.empty();
      plans += std::string("; ") + p.name + ": " + plan.noise;
    }
    c.push_back({"host CPUs", apart ? Level::ok : Level::warn,
                 std::to_string(cores) + " CPU(s)" + plans +
                     (apart ? "" : " (expect more noise where vCPU, emulator and backend share CPUs)")});
    const double load = host_load1();
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f", load);
    c.push_back({"host load", load < cores ? Level::ok : Level::warn,
                 std::string("1-min load ") + buf + (load < cores ? "" : ": the host is busy; samples will be noisy")});
  }
  {
    if (auto free = free_bytes(backend::share_parent("tmpfs"))) {
      double gib = static_cast<double>(*free) / (1ull << 30);
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.1f GiB free", gib);
      c.push_back({"/dev/shm", gib >= 2 ? Level::ok : Level::warn,
                   std::string(buf) + (gib >= 2 ? " (shares and UML memory live here)" : ": too little for shares of 512M jobs")});
    }
  }
  {
    std::ifstream gov("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor");
    std::string g;
    if (gov >> g)
      c.push_back({"CPU frequency", g == "performance" ? Level::ok : Level::warn,
                   "governor " + g + (g == "performance" ? "" : ": frequency scaling adds noise (set performance)")});
  }
  return c;
}

}  // namespace

int cmd_doctor(const std::vector<std::string>& args) {
  CLI::App app{"Check that this machine can run kab, and how noisy its numbers will be.", "doctor"};
  bool json = false;
  app.add_flag("--json", json, "print the checks as JSON");
  if (auto code = parse_args(app, args)) return *code;
  auto checks = run_checks();
  bool failed = false;
  for (const auto& c : checks) failed |= c.level == Level::fail;
  if (json) {
    nlohmann::ordered_json j = nlohmann::ordered_json::array();
    for (const auto& c : checks) j.push_back({{"check", c.name}, {"level", level_name(c.level)}, {"detail", c.detail}});
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    for (const auto& c : checks) std::printf("%-4s  %-20s %s\n", level_name(c.level), c.name.c_str(), c.detail.c_str());
    std::printf("\n%s\n", failed ? "kab doctor: this machine cannot run kab yet (see FAIL above; make deps installs "
                                   "what is missing)"
                                 : "kab doctor: ready");
  }
  return failed ? k_exit_run_failed : k_exit_ok;
}

}  // namespace kab::cli
