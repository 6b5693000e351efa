#include "cli/runner.h"

#include <sys/resource.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>

#include "backend/backends.h"
#include "cli/app.h"
#include "cli/bundle.h"
#include "core/health.h"
#include "core/planner.h"
#include "core/system.h"
#include "core/text.h"
#include "fio/record.h"
#include "host/environment.h"
#include "image/disk_image.h"
#include "kernel/git_source.h"
#include "image/initramfs.h"
#include "proc/runner.h"
#include "vm/libvirt_hypervisor.h"
#include "vm/platforms.h"

namespace fs = std::filesystem;

namespace kab::cli {

namespace {

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
  std::string now_iso() override { return core::iso_now(); }
  double now_s() override { return core::now_s(); }
  void sleep_s(double s) override { std::this_thread::sleep_for(std::chrono::duration<double>(s)); }
  int cpus() override { return static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN)); }
  bool raise_priority() override { return ::setpriority(PRIO_PROCESS, 0, -10) == 0; }

 private:
  double m_total = 0, m_steal = 0;
};

// The run's records in the SQLite store, with the host's facts added to the run.
class Store : public core::RunStore {
 public:
  Store(store::ResultStore& db, std::map<std::string, std::string> extra) : m_db(db), m_extra(std::move(extra)) {}
  void add_sample(const core::Sample& s) override { m_db.add_sample(s); }
  std::set<int> completed_indices(std::int64_t run) override { return m_db.completed_indices(run); }
  void record_kernel(const core::KernelArtifact& a) override {
    store::KernelRecord k;
    k.build_key = a.key;
    k.name = a.name;
    k.variant = a.variant;
    k.arch = a.arch;
    k.config_hash = a.config_hash;
    k.patch_hashes = a.patch_hashes;
    k.source_identity = a.source_identity;
    k.source_name = a.source_name;
    k.patch_labels = a.patch_labels;
    k.release = a.release;
    k.paths = {{"dir", a.dir}, {"config", a.config_path}};
    if (!a.vmlinux.empty()) k.paths["vmlinux"] = a.vmlinux;
    if (!a.uml_binary.empty()) k.paths["linux"] = a.uml_binary;
    // Harness plumbing (not under test) applied to this kernel, by name and hash.
    for (std::size_t i = 0; i < a.plumbing_patches.size(); ++i)
      k.paths["plumbing" + std::to_string(i)] = a.plumbing_patches[i];
    k.build_wall_s = a.wall_s;
    k.build_cpu_s = a.cpu_s;
    k.objects_compiled = a.objects_compiled;
    k.built_at = a.built_at;
    m_db.record_kernel(k);
  }
  std::optional<core::StoredRun> stored_run(std::int64_t id) override {
    auto r = m_db.run(id);
    if (!r) return std::nullopt;
    return core::StoredRun{r->info.plan_seed, r->info.plan_size, r->info.scenario_text,
                           store::run_fact(*r, "job_file_text"), store::run_fact(*r, "host_check_text")};
  }
  std::int64_t begin_run(const core::RunRecord& r) override {
    store::RunInfo info = host_run_info();
    info.scenario_name = r.scenario->name;
    info.scenario_text = r.scenario->text;
    info.plan_seed = r.plan->seed;
    info.plan_size = static_cast<int>(r.plan->samples.size());
    info.plan_json = plan_json(*r.scenario, *r.plan).dump();
    info.accelerator = r.accelerator;
    info.libvirt_version = r.platform_versions;
    info.extra["command"] = r.command;
    // Who made the run, once: kab db merge knows it again in any database.
    info.extra["run.uid"] = random_hex(16);
    info.extra["host.name"] = host_name();
    for (auto& [k, v] : host::host_environment()) info.extra[k] = v;
    if (const vm::Platform* p = vm::find_platform(r.scenario->guest.platform))
      info.extra["env.guest.memory_backing"] = std::string(p->name) + ": " + p->memory_backing;
    // A sequential run's design: kab report judges its primary metric at the look it reached.
    if (r.scenario->stop.until_decided) {
      info.extra["stop.until_decided"] = "true";
      info.extra["stop.look_size"] = std::to_string(r.plan->look_size);
      info.extra["stop.looks"] = std::to_string(r.plan->looks);
    }
    info.extra["image_key"] = r.image.key;
    info.extra["image"] = r.image.description;
    // The job file as read: a resume must run the same job, a report shows it.
    if (!r.scenario->fio.job_file.empty()) info.extra["job_file_text"] = r.scenario->fio.job_file_text;
    if (!r.scenario->fio.host_check.empty()) {
      info.extra["host_check"] = r.scenario->fio.host_check;
      info.extra["host_check_text"] = r.scenario->fio.host_check_text;
    }
    // What the command changed of the scenario's text (kab compare's --base,
    // --candidate, --repetitions, --until-decided, --max-samples, a replicate's
    // seed): with the text, the scenario as run (kab bundle).
    nlohmann::ordered_json effective;
    for (const auto& a : r.scenario->arms)
      effective["arms"].push_back({{"name", a.name}, {"kernel", a.kernel}, {"variant", a.variant}});
    effective["repetitions"] = r.scenario->repetitions;
    effective["seed"] = std::to_string(r.scenario->seed);
    effective["until_decided"] = r.scenario->stop.until_decided;
    effective["max_samples"] = r.scenario->stop.max_samples;
    info.extra["scenario.effective"] = effective.dump();
    for (const auto& [k, v] : m_extra) info.extra[k] = v;
    return m_db.begin_run(info);
  }
  void resume_run(std::int64_t id) override { m_db.resume_run(id); }
  std::vector<core::Sample> run_samples(std::int64_t id) override {
    return m_db.samples(id, store::WithArtifacts::no);
  }
  void finish_run(std::int64_t id, bool interrupted) override {
    m_db.finish_run(id, interrupted ? store::RunStatus::interrupted : store::RunStatus::complete);
  }

 private:
  store::ResultStore& m_db;
  std::map<std::string, std::string> m_extra;
};

// Per-sample directories on /dev/shm, named with the run and kab's pid: run
// ids are per database, and concurrent kabs on other databases must not collide.
class ShmWorkspace : public core::Workspace {
 public:
  std::string instance() override { return std::to_string(::getpid()); }
  std::string prepare(std::int64_t run_id) override {
    remove_stale();
    return "/dev/shm/kab-run-" + std::to_string(run_id) + "-" + std::to_string(::getpid());
  }
  void finish(const std::string& root) override {
    std::error_code ec;
    fs::remove(root, ec);   // only when empty: failed samples keep their directories
  }

 private:
  // A kab killed with SIGKILL leaves its per-sample directories and tmpfs
  // shares behind (its guest and backend die with it). They carry the dead
  // kab's pid: remove those whose kab is gone.
  static void remove_stale() {
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
};

// A guest that did not finish: where its agent got to and how its console
// ended, so the cause is on the screen (and in a CI log) without kab show.
void print_dead_guest(const core::Sample& smp) {
  const auto record = core::split(core::trim(smp.agent_record), '\n');
  if (record.empty() || record.back().empty())
    std::fprintf(stderr, "kab:   the agent wrote nothing to its report port\n");
  else
    std::fprintf(stderr, "kab:   the agent's record ends (line %zu): %s\n", record.size(),
                 core::trim(record.back()).substr(0, 160).c_str());
  const core::ConsoleExcerpt ex = core::console_excerpt(smp.console_log, 8);
  if (ex.lines.empty()) {
    std::fprintf(stderr, "kab:   its console is empty\n");
    return;
  }
  std::fprintf(stderr, "kab:   %s\n", ex.from_finding ? "its console, from the first finding:" : "its console ends:");
  for (const auto& l : ex.lines) std::fprintf(stderr, "kab:   | %s\n", core::trim(l).c_str());
}

class StderrProgress : public core::RunProgress {
 public:
  explicit StderrProgress(bool quiet) : m_quiet(quiet) {}
  void note(const std::string& line) override {
    if (!m_quiet) std::fprintf(stderr, "kab: %s\n", line.c_str());
  }
  void warning(const std::string& line) override { std::fprintf(stderr, "kab: %s\n", line.c_str()); }
  void sample(int index, int total, const core::Sample& smp, double eta_s) override {
    if (m_quiet) return;
    std::fprintf(stderr, "kab: sample %d/%d %-8s %-10s %-20s %-9s %8.1f MiB/s  WritebackTmp peak %5.0f kB  ETA %s\n",
                 index + 1, total, smp.arm.c_str(), smp.backend.c_str(),
                 smp.cell.empty() ? "-" : core::cell_label(smp.cell).c_str(), core::to_string(smp.health.status).c_str(),
                 smp.fio.bw_bytes / 1048576.0, smp.guest.writeback_tmp_peak_kb, core::human_seconds(eta_s).c_str());
    if (smp.health.status != core::SampleStatus::ok) {
      std::fprintf(stderr, "kab:   %s\n", smp.health.reason.c_str());
      if (smp.health.status != core::SampleStatus::unhealthy) print_dead_guest(smp);
    }
    if (verbosity() == Verbosity::verbose) {
      std::fprintf(stderr, "kab:   %s kernel %s: boot %.1f s, fio %.1f s, teardown %.1f s; host load %.2f -> %.2f, steal %.1f%%\n",
                   smp.kernel.c_str(), smp.kernel_build_key.substr(0, 12).c_str(), smp.boot_s, smp.fio_s,
                   smp.teardown_s, smp.host_load_before, smp.host_load_after, smp.host_steal_pct);
      std::fprintf(stderr, "kab:   backend: %s\n", smp.backend_cmdline.c_str());
    }
  }

 private:
  bool m_quiet;
};

// fio.host_check: the job file run by the host's fio in the share's
// directory. fio says a failed verify in its exit code and in each job's
// error: a job's error is wrong data; fio failing without one (missing,
// timed out, the job rejected) is a check that could not be made.
core::HostCheckResult run_host_check(const std::string& job_text, const std::string& shared_dir,
                                     const std::string& work) {
  std::error_code ec;
  fs::create_directories(work, ec);
  const std::string job = work + "/host-check.fio", json_path = work + "/host-check.json",
                    log = work + "/host-check.log";
  std::ofstream(job) << job_text;
  proc::Options o;
  o.argv = {"fio", "--output-format=json", "--output=" + json_path, job};
  o.cwd = shared_dir;
  o.output_path = log;
  o.timeout_s = 600;
  o.tail_lines = 12;
  proc::Result r;
  try {
    r = proc::run(o);
  } catch (const std::exception& e) {
    return {std::string("fio could not run: ") + e.what(), false};
  }
  std::string failed_jobs;
  try {
    const auto j = nlohmann::json::parse(core::read_text(json_path));
    for (const auto& jb : j.at("jobs"))
      if (const int err = jb.value("error", 0); err != 0)
        failed_jobs += (failed_jobs.empty() ? "" : ", ") + jb.value("jobname", std::string("?")) + " (error " +
                       std::to_string(err) + ")";
  } catch (const std::exception&) {
    if (r.ok()) return {"fio exited with 0 but its JSON output (" + json_path + ") cannot be read", false};
  }
  if (r.ok() && failed_jobs.empty()) return {};
  std::string why = "fio " + r.describe();
  if (!failed_jobs.empty()) why += ", failed: " + failed_jobs;
  return {why + "\n" + core::trim(r.tail), !failed_jobs.empty() && !r.timed_out && !r.interrupted};
}

}  // namespace

std::string join_args(const std::string& cmd, const std::vector<std::string>& args) {
  std::string out = "kab " + cmd;
  for (const auto& a : args) out += " " + a;
  return out;
}

std::string first_line(const std::vector<std::string>& argv) {
  auto [ok, out] = proc::capture(argv);
  return ok ? core::trim(core::split(out, '\n')[0]) : k_unavailable;
}

std::optional<std::uint64_t> free_bytes(const std::string& path) {
  struct statvfs v {};
  if (::statvfs(path.c_str(), &v) != 0) return std::nullopt;
  return static_cast<std::uint64_t>(v.f_bavail) * v.f_frsize;
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
  // The daemon kab finds, named with its version (a scenario's backends[].binary
  // is in each sample's backend command line).
  const std::string vfs = backend::default_virtiofsd();
  info.virtiofsd_version = first_line({vfs, "--version"}) + " (" + vfs + ")";
  info.fio_version = first_line({"fio", "--version"});
  info.libvirt_version = first_line({"libvirtd", "--version"});
  info.kab_revision = KAB_VERSION;
  return info;
}

// The guest's kab-append (images/tools): beside kab, in the build tree, or in
// PATH; else where the build puts it, for the image's "missing" error.
std::string append_tool_path() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec).parent_path();
  for (const fs::path& p : {self / "kab-append", self / "../images/tools/kab-append"})
    if (fs::exists(p)) return fs::canonical(p).string();
  const std::string in_path = proc::which("kab-append");
  return in_path.empty() ? (self / "../images/tools/kab-append").lexically_normal().string() : in_path;
}

std::unique_ptr<core::ImageBuilder> image_builder(const std::string& kind, bool quiet) {
  image::InitramfsOptions io;
  io.cache_dir = paths().cache_dir;
  io.agent_path = paths().root + "/images/agent/init";
  io.append_tool = append_tool_path();
  if (kind != "disk") return std::make_unique<image::InitramfsBuilder>(io);
  image::DiskImageOptions d;
  d.tree = io;
  d.force_tcg = !vm::kvm_available();
  if (!quiet) d.progress = [](const std::string& step) { std::fprintf(stderr, "kab: disk image: %s\n", step.c_str()); };
  return std::make_unique<image::DiskImageBuilder>(d);
}

core::GuestImage build_guest_image(bool disk, bool quiet) {
  try {
    return image_builder(disk ? "disk" : "initramfs", quiet)->build();
  } catch (const std::exception& e) {
    throw Fatal(std::string(disk ? "guest image (disk): " : "guest image: ") + e.what());
  }
}

core::RunOutcome execute_run(const RunRequest& rq) {
  const core::Scenario& s = rq.scenario;
  core::RunRequest req;
  req.scenario = s;
  req.kernels = rq.kernels;
  for (const auto& arm : s.arms)
    if (!req.kernels.count(arm.kernel)) req.kernels[arm.kernel] = load_kernel_or_exit(arm.kernel);
  req.resume = rq.resume;
  req.shard = rq.shard;
  req.shards = rq.shards;
  req.keep_work = rq.keep_work;
  req.command = rq.command_line;
  req.where = rq.db_path;

  const vm::Platform* platform = vm::find_platform(s.guest.platform);
  if (!platform) throw Fatal("unknown platform '" + s.guest.platform + "'", k_exit_usage);
  std::unique_ptr<core::Hypervisor> hv = platform->make();
  kernel::Builder kernels(kernel_options());
  const bool quiet = rq.quiet || verbosity() == Verbosity::quiet;
  std::unique_ptr<core::ImageBuilder> image = image_builder(s.guest.image, quiet);
  store::ResultStore db = store::ResultStore::open(rq.db_path);
  // The definitions the command made, kept with the run: kab bundle RUN
  // bundles them later as they were.
  std::map<std::string, std::string> extra = rq.run_extra;
  if (rq.kernels_made)
    for (const auto& arm : s.arms)
      if (auto made = rq.kernels.find(arm.kernel); made != rq.kernels.end())
        extra[k_made_kernel_fact + arm.kernel] = made_kernel_fact(made->second);
  Store store(db, extra);
  Host host;
  ShmWorkspace workspace;
  StderrProgress progress(quiet);

  core::RunPorts ports;
  ports.kernels = &kernels;
  ports.image = image.get();
  ports.hypervisor = hv.get();
  ports.make_backend = [](const core::BackendSpec& b) { return backend::make_backend(b); };
  ports.store = &store;
  ports.host = &host;
  ports.workspace = &workspace;
  ports.progress = &progress;
  ports.parse_record = fio::parse_record;
  ports.host_check = run_host_check;
  ports.read_file = core::read_text;
  ports.remove_tree = [](const std::string& p) {
    std::error_code ec;
    fs::remove_all(p, ec);
  };
  ports.interrupted = [] { return proc::interrupted_flag().load(); };
  try {
    return core::ScenarioRun(std::move(ports)).execute(req);
  } catch (const core::RunError& e) {
    throw Fatal(e.what(), e.kind == core::RunError::Kind::input ? k_exit_usage : k_exit_run_failed);
  }
}

std::vector<std::string> arms_without_ok_sample(const std::string& db_path, std::int64_t run,
                                                const core::Scenario& scenario) {
  std::map<std::string, int> ok;
  for (const auto& smp : store::ResultStore::open(db_path).samples(run, store::WithArtifacts::no))
    ok[smp.arm] += smp.health.status == core::SampleStatus::ok;
  std::vector<std::string> out;
  for (const auto& arm : scenario.arms)
    if (ok[arm.name] == 0) out.push_back(arm.name);
  return out;
}

std::string no_ok_sample_message(std::int64_t run, const std::vector<std::string>& arms) {
  const std::string id = std::to_string(run);
  std::string names;
  for (const auto& a : arms) names += (names.empty() ? "" : ", ") + a;
  return "run " + id + ": every sample of arm" + (arms.size() > 1 ? "s " : " ") + names +
         " failed, nothing to measure it by (kab show " + id + " lists the reasons)";
}

TreeKernel tree_kernel(const std::string& tree, const core::KernelSpec& config, const std::string& name,
                       const std::string& ref, const std::string& base_ref, const std::string& base_label) {
  TreeKernel t;
  core::KernelSpec& k = t.spec;
  k = config;
  k.name = name;
  k.path = tree;
  k.patches.clear();
  k.git_repo = tree;
  k.git_ref = ref;
  k.source = "git:" + tree;
  const std::string commit = ref == "WORKTREE" ? ref : kernel::git_commit(tree, ref);
  t.built_as = "the tree of " + commit.substr(0, 12);
  if (base_ref.empty() || ref == "WORKTREE") return t;
  const std::string base_commit = kernel::git_commit(tree, base_ref);
  auto [ancestor, o1] = proc::capture({"git", "-C", tree, "merge-base", "--is-ancestor", base_commit, commit});
  auto [ok, merges] = proc::capture({"git", "-C", tree, "rev-list", "--merges", base_commit + ".." + commit});
  if (base_commit == commit) {
    t.built_as = base_label + " itself";
  } else if (ancestor && ok && core::trim(merges).empty()) {
    k.git_ref.clear();
    k.commits = base_ref + ".." + ref;
    auto [counted, n] = proc::capture({"git", "-C", tree, "rev-list", "--count", base_commit + ".." + commit});
    t.built_as = base_label + " + " + core::trim(n) + " commit(s), in " + base_label + "'s lane";
  } else {
    std::fprintf(stderr, "kab: %s does not descend from %s without merges: built whole (a full build)\n",
                 ref.c_str(), base_label.c_str());
  }
  return t;
}

std::function<std::optional<std::string>(const std::string&)> stored_job_files(const store::RunRecord& run) {
  const std::string job = store::run_fact(run, "job_file_text"), check = store::run_fact(run, "host_check_text"),
                    check_name = fs::path(store::run_fact(run, "host_check")).filename().string();
  return [=](const std::string& path) {
    return std::optional<std::string>(!check_name.empty() && fs::path(path).filename() == check_name ? check : job);
  };
}

std::string host_name() {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  return host;
}

std::string random_hex(int bytes) {
  std::ifstream in("/dev/urandom", std::ios::binary);
  std::string raw(static_cast<std::size_t>(bytes), '\0');
  if (!in.read(raw.data(), bytes)) throw Fatal("cannot read /dev/urandom");
  static const char* digits = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : raw) {
    hex += digits[c >> 4];
    hex += digits[c & 15];
  }
  return hex;
}

}  // namespace kab::cli
