#include "cli/runner.h"

#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "backend/backends.h"
#include "cli/app.h"
#include "core/orchestrator.h"
#include "core/planner.h"
#include "core/text.h"
#include "fio/record.h"
#include "image/disk_image.h"
#include "image/initramfs.h"
#include "proc/runner.h"
#include "vm/libvirt_hypervisor.h"
#include "vm/uml_hypervisor.h"

namespace fs = std::filesystem;

namespace kab::cli {

nlohmann::ordered_json plan_json(const core::Scenario& s, const core::Plan& plan);  // cmd_scenario.cpp

namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class Host : public core::HostProbe {
 public:
  double load1() override { return host_load1(); }
  double steal_pct_since_last() override {
    std::ifstream in("/proc/stat");
    std::string cpu;
    double v[8] = {};
    in >> cpu;
    for (double& x : v) in >> x;
    double total = 0;
    for (double x : v) total += x;
    double steal = v[7];
    double pct = 0;
    if (m_total > 0 && total > m_total) pct = 100.0 * (steal - m_steal) / (total - m_total);
    m_total = total;
    m_steal = steal;
    return pct;
  }
  void drop_caches() override {
    ::sync();
    std::ofstream("/proc/sys/vm/drop_caches") << "3\n";
  }
  std::string now_iso() override {
    std::time_t t = std::time(nullptr);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
    return buf;
  }
  double now_s() override {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
  }
  void sleep_s(double s) override { std::this_thread::sleep_for(std::chrono::duration<double>(s)); }

 private:
  double m_total = 0, m_steal = 0;
};

class StoreSink : public core::SampleSink {
 public:
  explicit StoreSink(store::ResultStore& s) : m_store(s) {}
  void add_sample(const core::Sample& s) override { m_store.add_sample(s); }
  std::set<int> completed_indices(std::int64_t run) override { return m_store.completed_indices(run); }

 private:
  store::ResultStore& m_store;
};

// A kab killed with SIGKILL leaves its per-sample directories and tmpfs
// shares behind (its guest and backend die with its libvirt connection).
// They carry the dead kab's pid: remove those whose kab is gone.
void remove_stale_work_dirs() {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/dev/shm", ec)) {
    const std::string name = e.path().filename().string();
    std::string pid;
    if (core::starts_with(name, "kab-share-")) pid = name.substr(10, name.find('-', 10) - 10);
    else if (core::starts_with(name, "kab-run-")) pid = name.substr(name.rfind('-') + 1);
    else continue;
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    if (fs::exists("/proc/" + pid)) continue;
    fs::remove_all(e.path(), ec);
  }
}

}  // namespace

std::string first_line(const std::vector<std::string>& argv) {
  auto [ok, out] = proc::capture(argv);
  return ok ? core::trim(core::split(out, '\n')[0]) : k_unavailable;
}

double host_load1() {
  double l = 0;
  std::ifstream("/proc/loadavg") >> l;
  return l;
}

store::RunInfo host_run_info() {
  store::RunInfo info;
  {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line))
      if (core::starts_with(line, "model name")) {
        info.cpu_model = core::trim(line.substr(line.find(':') + 1));
        break;
      }
  }
  struct utsname u {};
  ::uname(&u);
  info.host_kernel = std::string(u.release) + " " + u.version;
  std::ifstream("/proc/loadavg") >> info.load_at_start;
  info.nproc = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
  info.memory_bytes = static_cast<std::uint64_t>(::sysconf(_SC_PHYS_PAGES)) * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  info.qemu_version = first_line({"qemu-system-x86_64", "--version"});
  info.virtiofsd_version = first_line({backend::default_virtiofsd(), "--version"});
  info.fio_version = first_line({"fio", "--version"});
  info.libvirt_version = first_line({"libvirtd", "--version"});
  info.kab_revision = KAB_VERSION;
  return info;
}

core::GuestImage build_guest_image(bool disk, bool quiet) {
  image::InitramfsOptions io;
  io.cache_dir = paths().cache_dir;
  io.agent_path = paths().root + "/images/agent/init";
  try {
    if (!disk) return image::InitramfsBuilder(io).build();
    image::DiskImageOptions d;
    d.tree = io;
    d.force_tcg = !vm::kvm_available();
    if (!quiet) d.progress = [](const std::string& step) { std::fprintf(stderr, "kab: disk image: %s\n", step.c_str()); };
    return image::DiskImageBuilder(d).build();
  } catch (const std::exception& e) {
    throw Fatal(std::string(disk ? "guest image (disk): " : "guest image: ") + e.what());
  }
}

RunResult execute_run(const RunRequest& rq) {
  const core::Scenario& s = rq.scenario;
  RunResult res;
  core::Plan plan = core::make_plan(s);
  const bool uml = s.guest.platform == core::Platform::uml;
  const std::string arch = uml ? "um" : "x86_64";

  // Everything the plan needs, built (or found in the cache) before the first sample.
  core::RunSettings st;
  for (const auto& arm : s.arms) {
    std::string ref = core::kernel_ref(arm.kernel, arm.variant);
    if (!st.kernels.count(ref)) st.kernels[ref] = build_kernel(arm.kernel, arch, arm.variant);
  }
  const bool disk = s.guest.image == "disk";
  const core::GuestImage img = build_guest_image(disk, rq.quiet);
  st.base_image = img.path;

  store::ResultStore db = store::ResultStore::open(rq.db_path);
  for (const auto& [ref, a] : st.kernels) {
    store::KernelRecord k;
    k.build_key = a.key;
    k.name = a.name;
    k.variant = a.variant;
    k.arch = a.arch;
    k.config_hash = a.config_hash;
    k.patch_hashes = a.patch_hashes;
    k.source_identity = a.source_identity;
    k.release = a.release;
    k.paths = {{"dir", a.dir}, {"config", a.config_path}};
    if (uml) k.paths["linux"] = a.uml_binary;
    else k.paths["vmlinux"] = a.vmlinux;
    // Harness plumbing (not under test) applied to this kernel, by name and hash.
    for (std::size_t i = 0; i < a.plumbing_patches.size(); ++i)
      k.paths["plumbing" + std::to_string(i)] = a.plumbing_patches[i];
    k.build_wall_s = a.wall_s;
    k.build_cpu_s = a.cpu_s;
    k.objects_compiled = a.objects_compiled;
    db.record_kernel(k);
  }

  // The platform is the hypervisor: QEMU through libvirt, or UML as a process.
  std::unique_ptr<vm::LibvirtHypervisor> libvirt;
  vm::UmlHypervisor uml_hv;
  if (!uml) libvirt = std::make_unique<vm::LibvirtHypervisor>();
  core::Hypervisor& hv = uml ? static_cast<core::Hypervisor&>(uml_hv) : *libvirt;
  res.accelerator = hv.accelerator();
  if (res.accelerator == "tcg" && !rq.quiet)
    std::fprintf(stderr,
                 "kab: *** WARNING *** no /dev/kvm: guests run under QEMU TCG (software emulation). Absolute MiB/s "
                 "are not hardware numbers; A/B ratios within one run are the result. (platform: uml runs the "
                 "guest kernel natively without KVM.)\n");
  if (rq.resume) {
    auto r = db.run(rq.resume);
    if (!r) throw Fatal("no run " + std::to_string(rq.resume) + " in " + rq.db_path, k_exit_usage);
    if (r->info.plan_seed != plan.seed || r->info.plan_size != static_cast<int>(plan.samples.size()) ||
        r->info.scenario_text != s.text)
      throw Fatal("run " + std::to_string(rq.resume) + " was made from another scenario or seed; cannot resume it with " +
                      rq.scenario_path,
                  k_exit_usage);
    db.resume_run(rq.resume);
    res.run_id = rq.resume;
  } else {
    store::RunInfo info = host_run_info();
    info.scenario_name = s.name;
    info.scenario_text = s.text;
    info.plan_seed = plan.seed;
    info.plan_size = static_cast<int>(plan.samples.size());
    info.plan_json = plan_json(s, plan).dump();
    info.accelerator = res.accelerator;
    info.libvirt_version = uml ? uml_hv.versions() : libvirt->versions();
    info.extra["command"] = rq.command_line;
    info.extra["image_key"] = img.key;
    info.extra["image"] = disk ? "disk (ext4 root, read-only virtio-blk; " + img.path + ")" : "initramfs";
    res.run_id = db.begin_run(info);
  }

  // Noise control: the share on tmpfs (scenario), page cache dropped per
  // sample; pinning only where the host has a CPU for each role.
  const int ncpu = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
  std::string noise = "drop_caches; share on " + s.backends[0].store;
  core::Scenario run_s = s;
  if (uml) {
    // The whole synchronous pipeline — the UML kernel, its userspace and the
    // backend — on one host CPU at a raised priority: spread over two CPUs
    // repeated samples varied 10-28%, on one 0.9% while the host was quiet.
    const int cpu = ncpu - 1;
    st.vcpu_cpus = {cpu};
    for (auto& b : run_s.backends)
      if (b.cpus.empty()) b.cpus = {cpu};
    const bool raised = ::setpriority(PRIO_PROCESS, 0, -10) == 0;   // inherited by the backend and UML
    noise = "uml: uniprocessor, syscalls via ptrace; UML and backend pinned to host CPU " + std::to_string(cpu) +
            (raised ? ", nice -10" : ", priority not raised (not permitted)") + "; " + noise;
  } else if (ncpu >= s.guest.vcpus + 2) {
    for (int i = 0; i < s.guest.vcpus; ++i) st.vcpu_cpus.push_back(2 + i);
    st.emulator_cpus = {1};
    noise += "; vcpus pinned to 2-" + std::to_string(1 + s.guest.vcpus) + ", emulator to 1, backend free on 0";
  } else {
    noise += "; not pinned (host has " + std::to_string(ncpu) + " CPUs, need " + std::to_string(s.guest.vcpus + 2) + ")";
    if (!rq.quiet)
      std::fprintf(stderr, "kab: warning: host has %d CPUs: vCPUs, emulator and backend are not pinned apart\n", ncpu);
  }

  remove_stale_work_dirs();
  st.run_id = res.run_id;
  // Run ids are per database: the pid keeps concurrent kabs on other databases apart.
  st.work_root = "/dev/shm/kab-run-" + std::to_string(res.run_id) + "-" + std::to_string(::getpid());
  st.instance = std::to_string(::getpid());
  st.keep_work = rq.keep_work;
  const double t_start = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  int done_now = 0;
  st.on_sample = [&](int index, int total, const core::Sample& smp) {
    ++done_now;
    if (rq.quiet) return;
    double now = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
    double per = (now - t_start) / done_now;
    int left = total - index - 1;
    std::fprintf(stderr, "kab: sample %d/%d %-8s %-10s %-20s %-9s %8.1f MiB/s  WritebackTmp peak %5.0f kB  ETA %s\n",
                 index + 1, total, smp.arm.c_str(), smp.backend.c_str(),
                 smp.cell.empty() ? "-" : core::cell_label(smp.cell).c_str(), core::to_string(smp.health.status).c_str(),
                 smp.fio.bw_bytes / 1048576.0, smp.guest.writeback_tmp_peak_kb, core::human_seconds(per * left).c_str());
    if (smp.health.status != core::SampleStatus::ok)
      std::fprintf(stderr, "kab:   %s\n", smp.health.reason.c_str());
  };

  Host host;
  StoreSink sink(db);
  core::OrchestratorPorts ports;
  ports.hypervisor = &hv;
  const std::string report_device = uml ? vm::k_uml_report_device : "/dev/ttyS1";
  ports.make_backend = [](const core::BackendSpec& b) { return backend::make_backend(b); };
  ports.sample_image = [&](const core::PlannedSample& ps, const std::string& job, const std::string& work) {
    fs::create_directories(work);
    std::string archive = image::sample_cpio(
        {{"KAB_SAMPLE", std::to_string(ps.index)}, {"KAB_TAG", "kabfs"}, {"KAB_REPORT", report_device}}, job);
    if (disk) {
      std::string path = work + "/sample.img";
      image::write_sample_disk(archive, path);
      return path;
    }
    std::string path = work + "/initrd.cpio";
    image::write_combined(img.path, archive, path);
    return path;
  };
  ports.sink = &sink;
  ports.host = &host;
  ports.parse_record = fio::parse_record;
  ports.read_file = read_text;
  ports.remove_tree = [](const std::string& p) {
    std::error_code ec;
    fs::remove_all(p, ec);
  };
  st.noise = noise;
  core::Orchestrator orch(run_s, ports);
  if (!rq.quiet)
    std::fprintf(stderr, "kab: run %lld: %zu samples (%s), results in %s\n", static_cast<long long>(res.run_id),
                 plan.samples.size(), res.accelerator.c_str(), rq.db_path.c_str());
  core::RunSummary sum = orch.run(plan, st, [] { return proc::interrupted_flag().load(); });
  res.stored = sum.stored;
  res.skipped = sum.skipped;
  res.interrupted = sum.interrupted;
  for (const auto& [status, n] : sum.by_status)
    if (status != core::SampleStatus::ok) res.not_ok += n;
  db.finish_run(res.run_id, sum.interrupted ? store::RunStatus::interrupted : store::RunStatus::complete);
  std::error_code ec;
  if (!rq.keep_work) fs::remove(st.work_root, ec);
  return res;
}

}  // namespace kab::cli
