#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

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
