// ImageBuilder: the guest's initramfs — Debian's busybox-static, fio with the
// shared libraries ldd finds, kab's agent as /init — cached by content hash.
// Per-sample inputs travel in a small cpio appended to the cached one.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/ports.h"

namespace kab::image {

// A newc cpio archive written in memory order ("070701" headers).
class CpioWriter {
 public:
  void directory(const std::string& path, unsigned mode = 0755);
  void file(const std::string& path, const std::string& data, unsigned mode = 0644);
  void symlink(const std::string& path, const std::string& target);
  std::string finish();   // appends the trailer and returns the archive

 private:
  void entry(const std::string& path, unsigned mode, const std::string& data);
  std::string m_out;
  unsigned m_ino = 1;
};

struct InitramfsOptions {
  std::string cache_dir;         // images go under cache_dir/images
  std::string agent_path;        // images/agent/init
  std::string busybox = "/bin/busybox";
  std::string fio = "/usr/bin/fio";
  std::string append_tool;       // kab-append (images/tools), the gate's O_APPEND check ("" = none)
};

// One file of the guest's root tree. A file's bytes are read from `source`
// when it is set, else taken from `data`; a symlink's target is `data`.
struct TreeEntry {
  enum class Kind { directory, file, symlink } kind;
  std::string path;
  std::string source;
  std::string data;
  unsigned mode = 0644;
};

class InitramfsBuilder : public core::ImageBuilder {
 public:
  explicit InitramfsBuilder(InitramfsOptions o) : m_o(std::move(o)) {}
  // Returns the cached image or builds it. Throws std::runtime_error naming a missing file.
  core::GuestImage build() override;
  // The base initramfs with the sample's archive appended (work_dir/initrd.cpio).
  std::string sample_image(const core::GuestImage& base, const core::SampleEnv& env, const std::string& job_text,
                           const std::string& work_dir) override;
  // The key without building (hash of agent, busybox, fio and its libraries).
  std::string key() const;
  // The guest's root tree, directories before what they hold: the agent as
  // /init, busybox with a /bin link per applet, fio and the libraries ldd finds. The initramfs and the
  // disk image hold the same tree. Throws std::runtime_error naming a missing file.
  std::vector<TreeEntry> tree() const;

 private:
  std::vector<std::string> libraries() const;
  void require_inputs() const;   // throws naming the first missing file
  InitramfsOptions m_o;
  mutable std::optional<std::vector<std::string>> m_libraries;
};

// The per-sample archive: /kab/sample/env (shell assignments) and /kab/sample/job.fio.
std::string sample_cpio(const std::vector<std::pair<std::string, std::string>>& env, const std::string& job_text);

// guest.image: disk — the per-sample archive as a raw disk (/dev/vdb in the
// guest, unpacked by the agent with `cpio -i`): the archive padded to whole sectors.
constexpr std::size_t k_sector = 512;
void write_sample_disk(const std::string& sample_archive, const std::string& out_path);

// The busybox applets to link in /bin (`busybox --list` of the host's static
// busybox, the one the guest runs). Throws std::runtime_error when it cannot run.
std::vector<std::string> busybox_applets(const std::string& busybox);

// Writes base + sample archive to `out_path` (the kernel unpacks concatenated archives in order).
void write_combined(const std::string& base_path, const std::string& sample_archive, const std::string& out_path);

}  // namespace kab::image
