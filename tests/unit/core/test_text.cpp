#include <catch2/catch.hpp>

#include "core/text.h"

using namespace kab::core;

TEST_CASE("parse_size reads fio-style sizes", "[text]") {
  SECTION("units") {
    CHECK(parse_size("512M") == 512ull << 20);
    CHECK(parse_size("1G") == 1ull << 30);
    CHECK(parse_size("4k") == 4096);
    CHECK(parse_size("1048576") == 1048576);
    CHECK(parse_size("2GiB") == 2ull << 30);
  }
  SECTION("rejects garbage") {
    CHECK_FALSE(parse_size("1 gigabyte"));
    CHECK_FALSE(parse_size(""));
    CHECK_FALSE(parse_size("M"));
    CHECK_FALSE(parse_size("-1G"));
  }
}

TEST_CASE("parse_duration and parse_fraction", "[text]") {
  CHECK(parse_duration("30s") == 30.0);
  CHECK(parse_duration("2m") == 120.0);
  CHECK(parse_duration("500ms") == 0.5);
  CHECK(parse_duration("45") == 45.0);
  CHECK_FALSE(parse_duration("soon"));
  CHECK(parse_fraction("2%") == Approx(0.02));
  CHECK(parse_fraction("0.05") == Approx(0.05));
  CHECK_FALSE(parse_fraction("two percent"));
}

TEST_CASE("suggest finds likely misspellings only", "[text]") {
  std::vector<std::string> keys = {"iodepth", "ioengine", "bs", "runtime"};
  CHECK(suggest("iodepht", keys) == std::optional<std::string>("iodepth"));
  CHECK(suggest("runtim", keys) == std::optional<std::string>("runtime"));
  CHECK_FALSE(suggest("completely-different", keys));
  CHECK(edit_distance("kitten", "sitting") == 3);
}

TEST_CASE("format_diagnostic puts a caret under the column", "[text]") {
  Diagnostic d{"scenarios/x.yaml", 12, 5, "unknown key 'iodepht', did you mean 'iodepth'?", "    iodepht: 32"};
  CHECK(format_diagnostic(d) ==
        "scenarios/x.yaml:12:5: unknown key 'iodepht', did you mean 'iodepth'?\n"
        "    iodepht: 32\n"
        "    ^ near here\n");
  Diagnostic nopos{"f.yaml", 0, 0, "cannot read scenario file", ""};
  CHECK(format_diagnostic(nopos) == "f.yaml: cannot read scenario file\n");
}

TEST_CASE("xml_escape makes text safe for XML and HTML", "[text]") {
  SECTION("markup characters become entities") {
    CHECK(xml_escape("a<b & \"c\" > 'd'") == "a&lt;b &amp; &quot;c&quot; &gt; &apos;d&apos;");
  }
  SECTION("control characters XML forbids become '?', tab and line ends stay") {
    CHECK(xml_escape(std::string("a\x01" "b\x1b" "c", 5)) == "a?b?c");
    CHECK(xml_escape(std::string("\0", 1)) == "?");
    CHECK(xml_escape("l1\r\n\tl2") == "l1\r\n\tl2");
  }
  SECTION("other bytes, UTF-8 included, pass unchanged") {
    CHECK(xml_escape("") == "");
    CHECK(xml_escape("µs → 5") == "µs → 5");
  }
}
