// guest.image: disk — the guest's root tree (InitramfsBuilder::tree(): the
// agent as /init, busybox with its applet links, fio and its libraries) on an
// ext4 filesystem in a raw disk image, made with libguestfs and cached by
// content hash. The guest mounts it read-only from virtio-blk (/dev/vda), so
// one cached image serves every sample unchanged; per-sample inputs come on
// a second disk (image::write_sample_disk).
#pragma once

#include <string>

#include "image/initramfs.h"

namespace kab::image {

struct DiskImageOptions {
  InitramfsOptions tree;     // what goes in, and cache_dir
  bool force_tcg = false;    // libguestfs's appliance without KVM (no usable /dev/kvm)
  // Called with one line per step while an image is made (the appliance boots for ~30 s under TCG).
  std::function<void(const std::string&)> progress;
};

class DiskImageBuilder : public core::ImageBuilder {
 public:
  explicit DiskImageBuilder(DiskImageOptions o) : m_o(std::move(o)) {}
  // Returns the cached image or makes it (cache_dir/images/disk-KEY.img, written
  // to a temporary name and renamed). Throws std::runtime_error naming the
  // libguestfs call that failed and its error.
  core::GuestImage build() override;
  // The sample's archive as a raw second disk (work_dir/sample.img, /dev/vdb in the guest).
  std::string sample_image(const core::GuestImage& base, const core::SampleEnv& env, const std::string& job_text,
                           const std::string& work_dir) override;
  std::string key() const;

 private:
  static std::string key_of(const InitramfsBuilder& tree);
  DiskImageOptions m_o;
};

// The size of the image for a tree whose files hold `payload_bytes`: room for
// ext4's metadata and journal, rounded up to whole MiB.
std::uint64_t disk_image_size(std::uint64_t payload_bytes);

}  // namespace kab::image
