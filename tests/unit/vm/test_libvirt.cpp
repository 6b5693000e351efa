#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "vm/libvirt_hypervisor.h"

namespace fs = std::filesystem;

namespace {

int listen_on(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  REQUIRE(::listen(fd, 1) == 0);
  return fd;
}

}  // namespace

TEST_CASE("socket_accepts tells a live daemon's socket from a stale file", "[vm]") {
  fs::path dir = fs::temp_directory_path() / ("kab-sock-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::string path = (dir / "d.sock").string();

  SECTION("absent") { CHECK_FALSE(kab::vm::socket_accepts(path)); }
  SECTION("listening") {
    int fd = listen_on(path);
    CHECK(kab::vm::socket_accepts(path));
    ::close(fd);
  }
  SECTION("left behind by a daemon that died: the file exists, nothing listens") {
    int fd = listen_on(path);
    ::close(fd);
    REQUIRE(fs::exists(path));
    CHECK_FALSE(kab::vm::socket_accepts(path));
  }
  SECTION("a regular file is no socket") {
    { std::FILE* f = std::fopen(path.c_str(), "w"); REQUIRE(f); std::fclose(f); }
    CHECK_FALSE(kab::vm::socket_accepts(path));
  }
  fs::remove_all(dir);
}

TEST_CASE("domain XML boots an initramfs or a read-only root disk", "[vm]") {
  kab::vm::DomainXmlInput in;
  in.name = "kab-0-1-2";
  in.domain_type = "qemu";
  in.kernel = "/c/vmlinux";
  in.memory_bytes = 1u << 30;
  in.fs_socket = "/s/vfs.sock";
  in.fs_tag = "kabfs";
  in.console_path = "/w/console.log";
  in.report_path = "/w/report.log";

  SECTION("initramfs: an initrd, no disks") {
    in.initrd = "/w/initrd.cpio";
    std::string x = kab::vm::domain_xml(in);
    CHECK(x.find("<initrd>/w/initrd.cpio</initrd>") != std::string::npos);
    CHECK(x.find("<disk") == std::string::npos);
  }
  SECTION("disk: no initrd; root vda and sample vdb, both read-only raw virtio-blk") {
    in.root_disk = "/c/disk-1.img";
    in.sample_disk = "/w/sample.img";
    std::string x = kab::vm::domain_xml(in);
    CHECK(x.find("<initrd>") == std::string::npos);
    CHECK(x.find("<disk type='file' device='disk'>\n      <driver name='qemu' type='raw'/>\n"
                 "      <source file='/c/disk-1.img'/>\n      <target dev='vda' bus='virtio'/>\n      <readonly/>\n"
                 "    </disk>") != std::string::npos);
    CHECK(x.find("<source file='/w/sample.img'/>\n      <target dev='vdb' bus='virtio'/>\n      <readonly/>") !=
          std::string::npos);
    // The share under test is there either way.
    CHECK(x.find("<source socket='/s/vfs.sock'/>") != std::string::npos);
  }
}

TEST_CASE("a KASAN kernel boots its bzImage, any other its vmlinux through PVH", "[vm][boot]") {
  const fs::path dir = fs::temp_directory_path() / "kab-test-boot-image";
  fs::remove_all(dir);
  fs::create_directories(dir);
  kab::core::KernelArtifact k;
  k.vmlinux = (dir / "vmlinux").string();
  k.bzimage = (dir / "bzImage").string();
  k.config_path = (dir / "config").string();
  auto with_config = [&](const std::string& text) {
    std::ofstream(k.config_path) << text;
    return kab::vm::boot_image(k);
  };
  auto plain = with_config("CONFIG_64BIT=y\n# CONFIG_KASAN is not set\nCONFIG_KASAN_SHADOW_OFFSET=0xdffffc0000000000\n");
  CHECK(plain.protocol == "pvh");
  CHECK(plain.path == k.vmlinux);
  auto kasan = with_config("CONFIG_64BIT=y\nCONFIG_KASAN=y\nCONFIG_KASAN_INLINE=y\n");
  CHECK(kasan.protocol == "bzImage");
  CHECK(kasan.path == k.bzimage);
  // The first line of the file counts too.
  CHECK(with_config("CONFIG_KASAN=y\n").protocol == "bzImage");
  // No vmlinux kept: the bzImage.
  k.vmlinux.clear();
  CHECK(with_config("CONFIG_64BIT=y\n").path == k.bzimage);
  fs::remove_all(dir);
}
