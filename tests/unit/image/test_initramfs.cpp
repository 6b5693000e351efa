#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <algorithm>

#include "image/disk_image.h"
#include "image/initramfs.h"
#include "proc/runner.h"

using namespace kab;
namespace fs = std::filesystem;

TEST_CASE("cpio archives are read back by the real cpio", "[image]") {
  fs::path dir = fs::temp_directory_path() / "kab-test-cpio";
  fs::remove_all(dir);
  fs::create_directories(dir / "x");
  std::string archive = image::sample_cpio({{"KAB_SAMPLE", "7"}, {"KAB_TAG", "it's"}}, "[global]\nbs=1M\n");
  { std::ofstream(dir / "a.cpio", std::ios::binary) << archive; }
  CHECK(archive.size() % 4 == 0);
  proc::Options o;
  o.argv = {"cpio", "-i", "-d", "-F", (dir / "a.cpio").string()};
  o.cwd = (dir / "x").string();
  auto r = proc::run(o);
  INFO(r.output);
  REQUIRE(r.ok());
  std::ifstream env(dir / "x/kab/sample/env"), job(dir / "x/kab/sample/job.fio");
  std::string env_text((std::istreambuf_iterator<char>(env)), {}), job_text((std::istreambuf_iterator<char>(job)), {});
  CHECK(env_text == "KAB_SAMPLE='7'\nKAB_TAG='it'\\''s'\n");
  CHECK(job_text == "[global]\nbs=1M\n");
  fs::remove_all(dir);
}

TEST_CASE("the guest tree and the disk image's pieces", "[image]") {
  image::InitramfsOptions o;
  o.cache_dir = (fs::temp_directory_path() / "kab-test-tree").string();
  o.agent_path = std::string(KAB_SOURCE_DIR) + "/images/agent/init";
  image::InitramfsBuilder b(o);

  SECTION("the tree holds the agent as /init, busybox, fio and every library ldd names; parents come first") {
    auto t = b.tree();
    std::map<std::string, image::TreeEntry> by_path;
    std::set<std::string> seen_dirs{"/"};
    for (const auto& e : t) {
      CHECK(seen_dirs.count(fs::path(e.path).parent_path().string()) == 1);
      if (e.kind == image::TreeEntry::Kind::directory) seen_dirs.insert(e.path);
      by_path[e.path] = e;
    }
    REQUIRE(by_path.count("/init"));
    CHECK(by_path["/init"].source == o.agent_path);
    CHECK(by_path["/init"].mode == 0755);
    CHECK(by_path["/usr/bin/fio"].source == "/usr/bin/fio");
    CHECK(by_path["/bin/sh"].kind == image::TreeEntry::Kind::symlink);
    CHECK(by_path["/bin/sh"].data == "busybox");
    // Every applet is linked in the tree (the agent cannot link them on a read-only root).
    // Each path once: a link over /bin/busybox would make the guest's /init unrunnable.
    std::set<std::string> paths;
    for (const auto& e : t) CHECK(paths.insert(e.path).second);
    CHECK(by_path["/bin/busybox"].kind == image::TreeEntry::Kind::file);
    for (const auto& a : image::busybox_applets("/bin/busybox")) {
      if (a == "busybox") continue;
      auto it = by_path.find("/bin/" + a);
      REQUIRE(it != by_path.end());
      CHECK(it->second.kind == image::TreeEntry::Kind::symlink);
      CHECK(it->second.data == "busybox");
    }
    auto [ok, ldd] = proc::capture({"ldd", "/usr/bin/fio"});
    REQUIRE(ok);
    int libs = 0;
    for (const auto& [p, e] : by_path)
      if (p.find(".so") != std::string::npos) {
        ++libs;
        CHECK(ldd.find(p) != std::string::npos);
      }
    CHECK(libs > 10);   // Debian's fio links ~66 libraries
  }
  SECTION("a sample disk is the sample archive padded to whole sectors, read back by the real cpio") {
    fs::path dir = fs::temp_directory_path() / "kab-test-sample-disk";
    fs::remove_all(dir);
    fs::create_directories(dir / "x");
    std::string archive = image::sample_cpio({{"KAB_SAMPLE", "3"}}, "[global]\nbs=4k\n");
    image::write_sample_disk(archive, (dir / "sample.img").string());
    auto size = fs::file_size(dir / "sample.img");
    CHECK(size % image::k_sector == 0);
    CHECK(size >= archive.size());
    CHECK(size < archive.size() + image::k_sector);
    proc::Options c;
    c.argv = {"sh", "-c", "cpio -i -d < " + (dir / "sample.img").string()};
    c.cwd = (dir / "x").string();
    auto r = proc::run(c);
    INFO(r.output);
    REQUIRE(r.ok());
    std::ifstream job(dir / "x/kab/sample/job.fio");
    CHECK(std::string((std::istreambuf_iterator<char>(job)), {}) == "[global]\nbs=4k\n");
    fs::remove_all(dir);
  }
  SECTION("the image has room for ext4's metadata and journal, in whole MiB") {
    const std::uint64_t mib = 1 << 20;
    CHECK(image::disk_image_size(0) == 48 * mib);
    CHECK(image::disk_image_size(84 * mib) == 153 * mib);
    CHECK(image::disk_image_size(84 * mib + 1) % mib == 0);
  }
  SECTION("busybox's applets include what the agent runs") {
    auto a = image::busybox_applets("/bin/busybox");
    for (const char* need : {"mount", "cpio", "poweroff", "mkdir", "cat", "sleep", "umount", "sync"})
      CHECK(std::find(a.begin(), a.end(), need) != a.end());
  }
}
