#include <catch2/catch.hpp>

#include "core/hash.h"

using namespace kab::core;

TEST_CASE("fnv1a64 matches the FNV-1a 64 reference vectors", "[hash]") {
  SECTION("the offset basis for the empty input") {
    CHECK(fnv1a64("") == 0xcbf29ce484222325ULL);
    CHECK(fnv1a64_hex("") == "cbf29ce484222325");
  }
  SECTION("published test vectors") {
    CHECK(fnv1a64("a") == 0xaf63dc4c8601ec8cULL);
    CHECK(fnv1a64("foobar") == 0x85944171f73967e8ULL);
    CHECK(fnv1a64_hex("a") == "af63dc4c8601ec8c");
  }
  SECTION("hex is zero-padded to 16 digits") {
    CHECK(fnv1a64_hex("foobar").size() == 16);
    for (const char* s : {"", "a", "kab", "scenario: quick\n"}) CHECK(fnv1a64_hex(s).size() == 16);
  }
  SECTION("a seed continues the stream: hashing in two parts equals hashing at once") {
    CHECK(fnv1a64("bar", fnv1a64("foo")) == fnv1a64("foobar"));
    CHECK(fnv1a64("a", 42) != fnv1a64("a"));
  }
}

TEST_CASE("sha256_hex matches FIPS 180-4 vectors", "[hash]") {
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
