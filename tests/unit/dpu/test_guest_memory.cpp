#include "guest_memory.h"

#include <catch2/catch.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include <vector>

using namespace kab::dpu;

TEST_CASE("guest memory translation", "[dpu][memory]") {
  std::vector<uint8_t> a(4096), b(4096);
  GuestMemory mem;
  REQUIRE(mem.add_region(0x1000, 4096, 0x7f0000001000, a.data()));
  REQUIRE(mem.add_region(0x2000, 4096, 0x7f0000002000, b.data()));

  SECTION("inside one region") {
    CHECK(mem.gpa_to_host(0x1000, 4096) == a.data());
    CHECK(mem.gpa_to_host(0x2ff0, 16) == b.data() + 0xff0);
    CHECK(mem.uaddr_to_host(0x7f0000001010, 8) == a.data() + 0x10);
  }
  SECTION("ranges that leave the table are refused") {
    CHECK(mem.gpa_to_host(0x0, 1) == nullptr);
    CHECK(mem.gpa_to_host(0x1ff0, 32) == nullptr);  // straddles: not contiguous on the host
    CHECK(mem.gpa_to_host(0x3000, 1) == nullptr);
    CHECK(mem.gpa_to_host(0x2fff, 2) == nullptr);
    CHECK(mem.gpa_to_host(0xffffffffffffff00ull, 0x200) == nullptr);
    CHECK(mem.gpa_to_host(0x1000, ~0ull) == nullptr);
  }
  SECTION("iovecs split at region boundaries") {
    std::vector<iovec> v;
    REQUIRE(mem.gpa_to_iovecs(0x1ff0, 32, v));
    REQUIRE(v.size() == 2);
    CHECK(v[0].iov_base == a.data() + 0xff0);
    CHECK(v[0].iov_len == 16);
    CHECK(v[1].iov_base == b.data());
    CHECK(v[1].iov_len == 16);
    v.clear();
    CHECK_FALSE(mem.gpa_to_iovecs(0x2ff0, 32, v));
    CHECK(v.empty());
    CHECK_FALSE(mem.gpa_to_iovecs(0xfffffffffffffff0ull, 0x20, v));
  }
  SECTION("overlapping and wrapping regions are refused") {
    std::vector<uint8_t> c(4096);
    CHECK_FALSE(mem.add_region(0x1800, 4096, 0, c.data()));
    CHECK_FALSE(mem.add_region(0xfffffffffffff000ull, 0x2000, 0, c.data()));
    CHECK_FALSE(mem.add_region(0x9000, 0, 0, c.data()));
  }
}

TEST_CASE("guest memory maps a memfd", "[dpu][memory]") {
  int fd = memfd_create("guest", 0);
  REQUIRE(fd >= 0);
  REQUIRE(ftruncate(fd, 2 * 4096) == 0);
  GuestMemory mem;
  SECTION("with an mmap offset") {
    REQUIRE(mem.map_region(0x100000, 4096, 0x5000, 4096, fd).empty());
    uint8_t* p = mem.gpa_to_host(0x100000, 4096);
    REQUIRE(p != nullptr);
    p[0] = 42;
    uint8_t v = 0;
    REQUIRE(pread(fd, &v, 1, 4096) == 1);
    CHECK(v == 42);
  }
  SECTION("a bad fd is an error with a message") {
    CHECK_FALSE(mem.map_region(0, 4096, 0, 0, -1).empty());
  }
  SECTION("a region beyond the end of its fd is refused, not mapped to SIGBUS") {
    // 2 pages in the fd; before, this mapped 3 and the first touch of the last one killed the
    // daemon with SIGBUS
    std::string e = mem.map_region(0x100000, 8192, 0x5000, 4096, fd);
    CHECK(e.find("holds only 8192") != std::string::npos);
    CHECK(mem.gpa_to_host(0x100000, 1) == nullptr);
    e = mem.map_region(0x100000, 3 * 4096, 0x5000, 0, fd);
    CHECK_FALSE(e.empty());
    CHECK(mem.map_region(0x100000, 8192, 0x5000, 0, fd).empty());
  }
  SECTION("an fd that is no memory file is refused") {
    int pipefd[2];
    REQUIRE(pipe(pipefd) == 0);
    CHECK(mem.map_region(0x100000, 4096, 0x5000, 0, pipefd[0]).find("not a memory file") !=
          std::string::npos);
    close(pipefd[0]);
    close(pipefd[1]);
  }
  close(fd);
}
