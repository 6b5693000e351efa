#include "fuse_io.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace kab::dpu;

TEST_CASE("reading requests from scattered buffers", "[dpu][fuse_io]") {
  std::string a = "ab", c("c\0de\0f", 6), empty;
  std::vector<iovec> v = {{a.data(), a.size()}, {empty.data(), 0}, {c.data(), 6}};
  SECTION("reads across buffers and zero-length pieces") {
    IovReader r(v, 1000);
    CHECK(r.remaining() == 8);
    char buf[3];
    REQUIRE(r.read(buf, 3));
    CHECK(std::string(buf, 3) == "abc");
    std::string s;
    CHECK_FALSE(r.read_cstring(s, 10));  // empty string: "\0" right away
  }
  SECTION("C strings end at their NUL and respect the maximum") {
    IovReader r(v, 1000);
    std::string s;
    REQUIRE(r.read_cstring(s, 10));
    CHECK(s == "abc");
    REQUIRE(r.read_cstring(s, 10));
    CHECK(s == "de");
    CHECK_FALSE(r.read_cstring(s, 10));  // "f" has no NUL
    IovReader r2(v, 1000);
    CHECK_FALSE(r2.read_cstring(s, 2));
  }
  SECTION("the limit hides bytes beyond it") {
    IovReader r(v, 2);
    char buf[3];
    CHECK_FALSE(r.read(buf, 3));
    CHECK(r.remaining() == 2);
    std::vector<iovec> out;
    REQUIRE(r.take(2, out));
    CHECK(out.size() == 1);
    CHECK(r.remaining() == 0);
    CHECK_FALSE(r.skip(1));
  }
  SECTION("take returns views without copying") {
    IovReader r(v, 1000);
    r.skip(1);
    std::vector<iovec> out;
    REQUIRE(r.take(4, out));
    REQUIRE(out.size() == 2);
    CHECK(out[0].iov_base == a.data() + 1);
    CHECK(out[0].iov_len == 1);
    CHECK(out[1].iov_base == c.data());
    CHECK(out[1].iov_len == 3);
  }
}

TEST_CASE("writing replies into scattered buffers", "[dpu][fuse_io]") {
  std::vector<char> x(3, '.'), y(4, '.');
  std::vector<iovec> v = {{x.data(), 3}, {nullptr, 0}, {y.data(), 4}};
  IovWriter w(v);
  CHECK(w.capacity() == 7);
  REQUIRE(w.write_at(2, "abc", 3));
  CHECK(std::string(x.begin(), x.end()) == "..a");
  CHECK(std::string(y.begin(), y.end()) == "bc..");
  CHECK_FALSE(w.write_at(5, "abc", 3));
  CHECK_FALSE(w.write_at(8, "", 0));
  std::vector<iovec> s;
  CHECK_FALSE(w.slice(~0ull, 2, s));
  REQUIRE(w.slice(0, 7, s));
  CHECK(s.size() == 2);
}
