#include "image/disk_image.h"

#include <guestfs.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <stdexcept>

#include "core/hash.h"

namespace fs = std::filesystem;

namespace kab::image {

namespace {

struct GuestfsClose {
  void operator()(guestfs_h* g) const {
    if (g) guestfs_close(g);
  }
};
using Guestfs = std::unique_ptr<guestfs_h, GuestfsClose>;

// libguestfs prints its errors itself unless told not to; kab reports them with context.
void check(guestfs_h* g, int rc, const std::string& what) {
  if (rc == -1) {
    const char* e = guestfs_last_error(g);
    throw std::runtime_error("libguestfs " + what + " failed: " + (e ? e : "unknown error"));
  }
}

}  // namespace

std::uint64_t disk_image_size(std::uint64_t payload_bytes) {
  const std::uint64_t mib = 1024 * 1024;
  // ext4 needs ~5% for inode tables and bitmaps, its journal (16 MiB at
  // these sizes), and slack so the filesystem is never nearly full.
  std::uint64_t want = payload_bytes + payload_bytes / 4 + 48 * mib;
  return (want + mib - 1) / mib * mib;
}

namespace {
std::string description(const std::string& path) { return "disk (ext4 root, read-only virtio-blk; " + path + ")"; }
}  // namespace

std::string DiskImageBuilder::key() const { return key_of(InitramfsBuilder(m_o.tree)); }

std::string DiskImageBuilder::key_of(const InitramfsBuilder& tree) {
  return core::Sha256().field("kab-disk-v2").field(tree.key()).hex();
}

std::string DiskImageBuilder::sample_image(const core::GuestImage&, const core::SampleEnv& env,
                                          const std::string& job_text, const std::string& work_dir) {
  fs::create_directories(work_dir);
  const std::string path = work_dir + "/sample.img";
  write_sample_disk(sample_cpio(env, job_text), path);
  return path;
}

core::GuestImage DiskImageBuilder::build() {
  InitramfsBuilder tree_builder(m_o.tree);
  const std::string k = key_of(tree_builder);
  fs::path dir = fs::path(m_o.tree.cache_dir) / "images";
  fs::path path = dir / ("disk-" + k.substr(0, 16) + ".img");
  if (fs::exists(path)) return {path.string(), k, description(path.string())};
  fs::create_directories(dir);
  const std::vector<TreeEntry> entries = tree_builder.tree();
  auto say = [&](const std::string& s) {
    if (m_o.progress) m_o.progress(s);
  };

  std::uint64_t payload = 0;
  for (const auto& e : entries)
    if (e.kind == TreeEntry::Kind::file) payload += e.source.empty() ? e.data.size() : fs::file_size(e.source);
  fs::path tmp = path;
  tmp += ".tmp" + std::to_string(::getpid());
  std::error_code ec;
  fs::remove(tmp, ec);

  Guestfs g(guestfs_create());
  if (!g) throw std::runtime_error("libguestfs: cannot create a handle");
  guestfs_set_error_handler(g.get(), nullptr, nullptr);
  check(g.get(), guestfs_set_backend(g.get(), "direct"), "set_backend(direct)");
  if (m_o.force_tcg) {
    char force[] = "force_tcg";
    char* settings[] = {force, nullptr};
    check(g.get(), guestfs_set_backend_settings(g.get(), settings), "set_backend_settings(force_tcg)");
  }
  try {
    check(g.get(), guestfs_disk_create(g.get(), tmp.c_str(), "raw", static_cast<int64_t>(disk_image_size(payload)), -1),
          "disk_create(" + tmp.string() + ")");
    check(g.get(), guestfs_add_drive_opts(g.get(), tmp.c_str(), GUESTFS_ADD_DRIVE_OPTS_FORMAT, "raw", -1), "add_drive");
    say("boot libguestfs's appliance (" + std::string(m_o.force_tcg ? "TCG" : "KVM") + ")");
    check(g.get(), guestfs_launch(g.get()),
          "launch (its appliance needs a kernel in /boot: make deps installs linux-image-amd64)");
    say("make ext4, copy " + std::to_string(entries.size()) + " files (" + std::to_string(payload >> 20) + " MiB)");
    check(g.get(), guestfs_mkfs_opts(g.get(), "ext4", "/dev/sda", GUESTFS_MKFS_OPTS_LABEL, "kabroot", -1), "mkfs ext4");
    check(g.get(), guestfs_mount(g.get(), "/dev/sda", "/"), "mount");
    for (const auto& e : entries) {
      const char* p = e.path.c_str();
      switch (e.kind) {
        case TreeEntry::Kind::directory:
          check(g.get(), guestfs_mkdir_mode(g.get(), p, static_cast<int>(e.mode)), "mkdir " + e.path);
          break;
        case TreeEntry::Kind::file:
          if (e.source.empty()) check(g.get(), guestfs_write(g.get(), p, e.data.data(), e.data.size()), "write " + e.path);
          else check(g.get(), guestfs_upload(g.get(), e.source.c_str(), p), "upload " + e.source + " to " + e.path);
          check(g.get(), guestfs_chmod(g.get(), static_cast<int>(e.mode), p), "chmod " + e.path);
          break;
        case TreeEntry::Kind::symlink:
          check(g.get(), guestfs_ln_s(g.get(), e.data.c_str(), p), "ln -s " + e.path);
          break;
      }
    }
    check(g.get(), guestfs_umount_all(g.get()), "umount");
    check(g.get(), guestfs_shutdown(g.get()), "shutdown");
  } catch (...) {
    g.reset();
    fs::remove(tmp, ec);
    throw;
  }
  g.reset();
  fs::rename(tmp, path);
  return {path.string(), k, description(path.string())};
}

}  // namespace kab::image
