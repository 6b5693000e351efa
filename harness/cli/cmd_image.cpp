// kab image build [--disk] [--json]
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/app.h"
#include "cli/parse.h"
#include "cli/runner.h"

namespace kab::cli {

int cmd_image(const std::vector<std::string>& args) {
  CLI::App app{"Build the guest image (or take it from the cache) and print its path.", "image"};
  app.require_subcommand(1);
  CLI::App* build = app.add_subcommand("build", "build the guest image: the initramfs, or with --disk the ext4 root disk");
  bool disk = false, json = false;
  build->add_flag("--disk", disk, "the ext4 root disk of guest.image: disk (libguestfs)");
  build->add_flag("--json", json, "print {path, key, kind}");
  if (auto code = parse_args(app, args)) return *code;

  core::GuestImage img = build_guest_image(disk);
  if (json)
    std::printf("%s\n", nlohmann::ordered_json{{"kind", disk ? "disk" : "initramfs"}, {"path", img.path}, {"key", img.key}}
                            .dump(2)
                            .c_str());
  else
    std::printf("%s\n", img.path.c_str());
  return k_exit_ok;
}

}  // namespace kab::cli
