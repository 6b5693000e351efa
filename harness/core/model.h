// The model kab's core reasons about: scenarios, plans, samples. Plain data,
// no I/O; every adapter converts its outside world into these types.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kab::core {

// Ordered fio options (name → value). Order matters for the job file text and
// so for reproducibility, so this is a vector, not a map.
using FioOptions = std::vector<std::pair<std::string, std::string>>;

struct Arm {
  std::string name;     // e.g. "stock"; the first arm of a scenario is the base
  std::string kernel;   // kernel definition name, e.g. "stock-6.1"
  std::string variant;  // optional variant of the kernel definition ("" = none)
};

// A model of a DPU's virtio-fs function (kab-dpu); all zero = as fast as it can be.
struct DpuModel {
  int cores = 1;                // worker threads (DPU cores)
  std::vector<int> core_cpus;   // host CPUs the workers are pinned to
  double latency_us = 0;        // per request, doorbell + completion round trip
  double bandwidth_mbps = 0;    // DMA bandwidth cap in MB/s, 0 = none
  int queue_depth = 0;          // in-flight requests cap, 0 = none
};

struct BackendSpec {
  std::string name;                 // unique within a scenario
  std::string type = "virtiofsd";   // a registered backend (backend::launchers()): virtiofsd, dpu
  std::string binary;               // the daemon to run; "" = the one kab finds (backend::launchers())
  std::string cache = "auto";       // auto | always | none
  bool writeback = true;
  int thread_pool_size = 0;         // 0 = backend's default
  std::string sandbox = "namespace";
  std::string store = "tmpfs";      // "tmpfs" or a host directory backing the share
  std::vector<int> cpus;            // host CPUs the backend is pinned to (empty = kab decides)
  double cpu_quota = 0;             // fraction of one CPU, 0 = no cap
  DpuModel dpu;
};

struct GuestSpec {
  std::string platform = "qemu";   // a registered platform (vm::platforms()): qemu, uml
  int vcpus = 1;
  std::uint64_t memory_bytes = 1024ull << 20;
  std::string cmdline;             // extra kernel command line
  double timeout_s = 300;          // per-sample timeout
  std::string image = "initramfs"; // initramfs | disk
  // A line the console must hold for a finished sample to be ok
  // (guest.expect_console): a guest-side check that reports through the
  // kernel log (kab-append) and never ran, or was killed first, fails the sample.
  std::string expect_console;
  // fio (and what its jobs start) runs in a cgroup v2 memory cgroup of this
  // memory.max (guest.memory_cgroup): reclaim and writeback of the cgroup, not
  // only of the guest; 0 = none. The kernel needs CONFIG_MEMCG.
  std::uint64_t memory_cgroup_bytes = 0;
};

struct FioSpec {
  FioOptions job;                                  // base job options
  std::vector<std::pair<std::string, std::vector<std::string>>> matrix;  // axes, in file order
  std::vector<FioOptions> exclude;                 // partial cells to drop
  std::string job_file;                            // run this fio job file instead (absolute path)
  std::string job_file_text;                       // its text as read when the scenario was loaded
  FioOptions override;                             // set in every job section of job_file
  // A fio job file run on the host in the share's directory after the guest
  // ended and before the share is removed (fio.host_check): the data as the
  // backend stored it, read without the guest's kernel. Its failure fails the sample.
  std::string host_check;                          // absolute path ("" = none)
  std::string host_check_text;                     // its text as read when the scenario was loaded
};

struct Scenario {
  std::string name;
  std::string description;
  std::string path;       // where it was read from ("" for literals)
  std::string text;       // the file's text, stored with every run
  std::vector<Arm> arms;
  std::vector<BackendSpec> backends;
  GuestSpec guest;
  FioSpec fio;
  int repetitions = 5;
  // Sampling until decided (stop: {until_decided: true, max_samples: N}):
  // ABBA blocks, a look after each, the run ends when the primary metric is
  // decided or at max_samples per arm (core/sequential.h). Off: `repetitions`.
  struct Stop {
    bool until_decided = false;
    int max_samples = 40;     // per arm, cell and backend; even (whole ABBA blocks)
  } stop;
  std::uint64_t seed = 1;
  double min_effect = 0.02;   // fraction, 0.02 = 2%
  std::string primary_metric = "bandwidth";   // the metric the verdict comes from (core::all_metrics() keys)
  double alpha = 0.05;
  double quiet_load = 0;      // wait for a host load below this before a sample (0 = don't)
};

// One combination of the matrix axes: the fio options that vary.
using Cell = FioOptions;

struct PlannedSample {
  int index = 0;          // position in the plan, 0-based
  std::string arm;
  std::string kernel;
  std::string variant;
  std::string backend;
  std::string platform = "qemu";
  Cell cell;
  int repetition = 0;     // 0-based, per arm × cell × backend
};

struct Plan {
  std::uint64_t seed = 0;
  std::vector<PlannedSample> samples;
  // A sequential plan (stop.until_decided) runs to the cap in looks: every
  // (cell, backend) group gets one ABBA block (2 samples per arm) per look,
  // look_size samples in all. 0 = a fixed-n plan.
  int look_size = 0;
  int looks = 0;
};

// A kernel definition (kernels/NAME.yaml).
struct KernelSpec {
  std::string name;
  std::string path;                    // the definition file
  std::string source;                  // Debian package ("linux-source-6.1") or a tree/tarball path
  // source: {git: REPO, ref: REF}: REF's commit of the repository (a tag, a
  // branch, a commit id); `source` is then "git:REPO". ref WORKTREE is the tree
  // on disk as it is: HEAD plus its uncommitted changes as a patch.
  std::string git_repo, git_ref;
  // The change under test, applied on the source before `patches`:
  std::string commits;                 // "BASE..HEAD" of git_repo (the source is BASE)
  std::string series;                  // an mbox of patches (absolute path), as git format-patch or b4 write it
  std::vector<std::string> patches;    // absolute paths, applied in order
  std::string config_base = "tinyconfig";
  std::vector<std::string> fragments;  // absolute paths, merged in order (every arch)
  std::vector<std::pair<std::string, std::vector<std::string>>> arch_fragments;  // arch → more
  std::vector<std::pair<std::string, std::vector<std::string>>> variants;        // name → fragments
};


// "bs=1M,rw=randwrite"; "" for the empty cell.
std::string cell_label(const Cell& cell);

}  // namespace kab::core
