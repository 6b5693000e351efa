// The JSON of the store's TEXT columns, apart from SQLite: exact text out,
// the same values back in, nullopt for what is not the expected shape.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "store/codec.h"

using namespace kab;
using namespace kab::store;

TEST_CASE("codec writes the flat JSON shapes exactly", "[store][codec]") {
  SECTION("string maps in key order, cells in their own order") {
    CHECK(encode_string_map({}) == "{}");
    CHECK(encode_string_map({{"vmlinux", "/k/vmlinux"}, {"config", "/k/config"}}) ==
          R"({"config":"/k/config","vmlinux":"/k/vmlinux"})");
    CHECK(encode_cell({{"rw", "randwrite"}, {"bs", "1M"}}) == R"({"rw":"randwrite","bs":"1M"})");
    CHECK(encode_cell({}) == "{}");
  }
  SECTION("string lists") {
    CHECK(encode_string_list({}) == "[]");
    CHECK(encode_string_list({"ab12", "cd34"}) == R"(["ab12","cd34"])");
  }
  SECTION("numbers in shortest round-trip form, NaN and infinity as null") {
    CHECK(encode_number_map({{"a", 5}, {"b", 0.1}, {"c", -2.5e-7}}) == R"({"a":5,"b":0.1,"c":-2.5e-07})");
    CHECK(encode_number_map({{"nan", std::numeric_limits<double>::quiet_NaN()},
                             {"inf", std::numeric_limits<double>::infinity()}}) == R"({"inf":null,"nan":null})");
  }
  SECTION("strings escaped as RFC 8259 asks, other bytes as they are") {
    CHECK(encode_string_list({"q\"b\\s/n\nr\rt\tb\bf\f"}) == R"(["q\"b\\s/n\nr\rt\tb\bf\f"])");
    CHECK(encode_string_list({std::string("\x01\x1f", 2)}) == R"(["\u0001\u001f"])");
    CHECK(encode_string_list({"µs"}) == "[\"µs\"]");
  }
}

TEST_CASE("codec reads back what it writes", "[store][codec]") {
  SECTION("string map") {
    std::map<std::string, std::string> m{{"host", "a \"b\"\n"}, {"empty", ""}, {"utf8", "µs → 5"}};
    CHECK(decode_string_map(encode_string_map(m)) == m);
  }
  SECTION("cell keeps order and repeated keys") {
    core::Cell cell{{"rw", "randwrite"}, {"bs", "1M"}, {"rw", "read"}};
    CHECK(decode_cell(encode_cell(cell)) == cell);
  }
  SECTION("string list, control characters included") {
    std::vector<std::string> v{"", "a\x01z", "tab\there", "\\"};
    CHECK(decode_string_list(encode_string_list(v)) == v);
  }
  SECTION("number map, every double exactly, NaN as NaN") {
    std::map<std::string, double> m{{"third", 1.0 / 3}, {"big", 1.7976931348623157e308}, {"neg", -0.0}};
    CHECK(decode_number_map(encode_number_map(m)) == m);
    auto nan = decode_number_map(encode_number_map({{"x", std::numeric_limits<double>::quiet_NaN()}}));
    REQUIRE(nan);
    CHECK(std::isnan(nan->at("x")));
  }
}

TEST_CASE("codec reads JSON it did not write", "[store][codec]") {
  SECTION("whitespace around tokens") {
    CHECK(decode_string_list(" [ \"a\" ,\n\t\"b\" ]\r\n") == std::vector<std::string>{"a", "b"});
    CHECK(decode_number_map("{ \"a\" : 1 }") == std::map<std::string, double>{{"a", 1}});
  }
  SECTION("\\u escapes, surrogate pairs and \\/ become UTF-8") {
    CHECK(decode_string_list(R"(["\u00b5s", "\ud83d\ude00", "a\/b"])") ==
          std::vector<std::string>{"µs", "\xf0\x9f\x98\x80", "a/b"});
  }
  SECTION("a key given twice keeps its last value in maps") {
    CHECK(decode_string_map(R"({"k":"1","k":"2"})") == std::map<std::string, std::string>{{"k", "2"}});
  }
  SECTION("the other scalar kind reads as \"\" or 0") {
    CHECK(decode_string_map(R"({"n":5,"z":null})") == std::map<std::string, std::string>{{"n", ""}, {"z", ""}});
    CHECK(decode_string_list("[1]") == std::vector<std::string>{""});
    CHECK(decode_number_map(R"({"s":"x"})") == std::map<std::string, double>{{"s", 0}});
  }
}

TEST_CASE("codec rejects malformed JSON with nullopt", "[store][codec]") {
  SECTION("empty or other text") {
    CHECK_FALSE(decode_string_map(""));
    CHECK_FALSE(decode_string_list(""));
    CHECK_FALSE(decode_cell("not json"));
    CHECK_FALSE(decode_number_map("null"));
  }
  SECTION("the wrong container") {
    CHECK_FALSE(decode_string_map("[]"));
    CHECK_FALSE(decode_string_list("{}"));
  }
  SECTION("nested containers and literals the shapes do not have") {
    CHECK_FALSE(decode_string_map(R"({"a":{"b":"c"}})"));
    CHECK_FALSE(decode_string_list(R"([["a"]])"));
    CHECK_FALSE(decode_number_map(R"({"a":true})"));
  }
  SECTION("broken syntax") {
    CHECK_FALSE(decode_string_map(R"({"a":"b")"));
    CHECK_FALSE(decode_string_map(R"({"a" "b"})"));
    CHECK_FALSE(decode_string_map(R"({"a":"b",})"));
    CHECK_FALSE(decode_string_list(R"(["a" "b"])"));
    CHECK_FALSE(decode_string_list(R"(["unterminated)"));
    CHECK_FALSE(decode_string_list(R"(["bad \q escape"])"));
    CHECK_FALSE(decode_string_list(R"(["\u12"])"));
    CHECK_FALSE(decode_number_map(R"({"a":})"));
  }
  SECTION("trailing text") {
    CHECK_FALSE(decode_string_list(R"(["a"] x)"));
    CHECK_FALSE(decode_cell(R"({} {})"));
  }
}
