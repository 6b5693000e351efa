// The ports: the only ways kab's core reaches the world. Adapters implement
// them (harness/kernel, image, backend, vm, store); unit tests use fakes.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/model.h"
#include "core/sample.h"

namespace kab::core {

// A built kernel in the cache.
struct KernelArtifact {
  std::string key;            // content-addressed cache key
  std::string name, variant, arch;
  std::string dir;            // cache directory holding the files below
  std::string vmlinux;        // uncompressed ELF (PVH boot) — x86_64
  std::string bzimage;        // x86_64
  std::string uml_binary;     // ARCH=um: the `linux` executable
  std::string config_path;
  std::string config_hash;
  std::vector<std::string> patch_hashes;       // the definition's patches (under test)
  std::vector<std::string> plumbing_patches;   // harness plumbing applied first ("name sha256"), not under test
  std::string source_identity;
  std::string source_name;    // a git source: "v6.1 (48f647b15e40)"; "" otherwise
  std::vector<std::string> patch_labels;   // as patch_hashes: abcdef123456 ("fuse: …") for a commit
  std::string release;        // `make kernelrelease`
  bool fresh = false;         // built now rather than taken from the cache
  double wall_s = 0, cpu_s = 0;
  int objects_compiled = 0;
  int objects_expected = -1;  // what the build expected to compile, known in advance; -1 when not known
  std::vector<std::pair<std::string, double>> steps;   // wall seconds per build stage ("source", "compile", …)
  std::string built_at;       // ISO 8601 UTC of the build that made it (a cached artifact: that earlier build)
  std::string explain;        // why it was (or was not) built
};

class KernelBuilder {
 public:
  virtual ~KernelBuilder() = default;
  // Returns the cached artifact or builds it. Throws on a failed build, with
  // the failing patch hunk or the build log tail in the message.
  virtual KernelArtifact build(const KernelSpec& spec, const std::string& arch, const std::string& variant) = 0;
};

// The guest image (initramfs, or ext4 root disk, with busybox, fio and kab's agent).
struct GuestImage {
  std::string path;
  std::string key;
  std::string description;   // for the run record: "initramfs", "disk (ext4 root, …)"
};

// Environment the agent reads per sample (KAB_SAMPLE, KAB_TAG, KAB_REPORT;
// KAB_MEMCG, the memory cgroup limit in bytes, when guest.memory_cgroup is set).
using SampleEnv = std::vector<std::pair<std::string, std::string>>;

class ImageBuilder {
 public:
  virtual ~ImageBuilder() = default;
  // Returns the cached image or builds it. Throws std::runtime_error naming the cause.
  virtual GuestImage build() = 0;
  // The per-sample image under work_dir, carrying the sample's environment and
  // fio job to the agent in the way this image kind boots (an initramfs with the
  // inputs appended, or a second disk); returns its path. Throws on I/O errors.
  virtual std::string sample_image(const GuestImage& base, const SampleEnv& env, const std::string& job_text,
                                   const std::string& work_dir) = 0;
};

// A running backend serving the share under test.
struct BackendHandle {
  std::string socket_path;
  std::string shared_dir;
  std::string cmdline;
  std::string log_path;
};

class Backend {
 public:
  virtual ~Backend() = default;
  // Starts the backend for one sample; throws with its log tail on failure.
  virtual BackendHandle start(const BackendSpec& spec, const std::string& work_dir) = 0;
  virtual bool alive() = 0;
  // Stops and reaps it; returns its host CPU usage. Idempotent.
  virtual HostUsage stop() = 0;
  // The backend's own statistics (kab-dpu), "" otherwise.
  virtual std::string stats_json() { return ""; }
};

// What a guest boot produced.
struct GuestOutcome {
  enum class End { completed, timeout, crashed, failed } end = End::failed;
  std::string reason;
  bool platform_failed = false;            // the guest never ran: the hypervisor could not start it
  std::string console_path, report_path;   // console log, agent report
  double boot_s = 0, total_s = 0;
  HostUsage vm_usage;
};

struct GuestRequest {
  const KernelArtifact* kernel = nullptr;
  std::string initramfs;            // base image
  std::string extra_initramfs;      // per-sample cpio appended (job, sample id)
  // guest.image: disk — instead of the two above: the cached ext4 root (read-only
  // virtio-blk /dev/vda) and the per-sample archive as a raw disk (/dev/vdb).
  std::string root_disk;
  std::string sample_disk;
  std::string backend_socket;
  std::string tag = "kabfs";
  GuestSpec guest;
  std::string work_dir;             // console, report files go here
  std::string name;                 // domain / process name
  std::vector<int> vcpu_cpus;       // host CPUs for vCPUs (empty = unpinned)
  std::vector<int> emulator_cpus;
  // Polled while the guest runs: a backend that dies ends the guest at once
  // (instead of a guest hung on its share until the timeout).
  std::function<bool()> backend_alive;
};

// Where a platform puts the guest, its emulator and the backend on the host's
// CPUs, and what the samples' noise text says of it. A pure function of the
// host's CPU count and the guest's vCPUs (kab doctor asks the same plan).
struct PinningPlan {
  std::vector<int> vcpu_cpus;       // host CPUs of the guest's vCPUs (empty = unpinned)
  std::vector<int> emulator_cpus;   // the hypervisor's own threads (empty = unpinned)
  std::vector<int> backend_cpus;    // backends without cpus of their own (empty = unpinned)
  bool raise_priority = false;      // run kab (and so guest and backend) at nice -10
  std::string caveat;               // what the platform is, first in every noise text ("" = none)
  std::string noise;                // what the pinning did, in every noise text
  std::string warning;              // said once before the run ("" = nothing to say)
};

class Hypervisor {
 public:
  virtual ~Hypervisor() = default;
  virtual std::string accelerator() = 0;   // "kvm", "tcg", "uml"
  // What a run needs to know of the platform: the kernel arch it boots
  // ("x86_64", "um"), the guest device the agent writes its record to, the
  // tool versions for provenance, the pinning plan, and a warning about what
  // its numbers mean ("" = none; the TCG warning).
  virtual std::string kernel_arch() const = 0;
  virtual std::string report_device() const = 0;
  virtual std::string versions() = 0;
  virtual PinningPlan pinning(int host_cpus, int vcpus) const = 0;
  virtual std::string warning() { return ""; }
  // Boots, waits for the agent to finish or the timeout, tears down.
  // Never throws for guest failures: they are outcomes.
  virtual GuestOutcome run(const GuestRequest& request) = 0;
};

}  // namespace kab::core
