// kab image build [--disk] [--json]
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/app.h"
#include "cli/parse.h"
#include "image/disk_image.h"
#include "image/initramfs.h"
#include "vm/libvirt_hypervisor.h"

namespace kab::cli {

int cmd_image(const std::vector<std::string>& args) {
  CLI::App app{"Build the guest image (or take it from the cache) and print its path.", "image"};
  app.require_subcommand(1);
  CLI::App* build = app.add_subcommand("build", "build the guest image: the initramfs, or with --disk the ext4 root disk");
  bool disk = false, json = false;
  build->add_flag("--disk", disk, "the ext4 root disk of guest.image: disk (libguestfs)");
  build->add_flag("--json", json, "print {path, key, kind}");
  if (auto code = parse_args(app, args)) return *code;

  image::InitramfsOptions io;
  io.cache_dir = paths().cache_dir;
  io.agent_path = paths().root + "/images/agent/init";
  core::GuestImage img;
  try {
    if (disk) {
      image::DiskImageOptions d;
      d.tree = io;
      d.force_tcg = !vm::kvm_available();
      d.progress = [](const std::string& s) { std::fprintf(stderr, "kab: disk image: %s\n", s.c_str()); };
      img = image::DiskImageBuilder(d).build();
    } else {
      img = image::InitramfsBuilder(io).build();
    }
  } catch (const std::exception& e) {
    throw Fatal(std::string(disk ? "guest image (disk): " : "guest image: ") + e.what());
  }
  if (json)
    std::printf("%s\n", nlohmann::ordered_json{{"kind", disk ? "disk" : "initramfs"}, {"path", img.path}, {"key", img.key}}
                            .dump(2)
                            .c_str());
  else
    std::printf("%s\n", img.path.c_str());
  return k_exit_ok;
}

}  // namespace kab::cli
