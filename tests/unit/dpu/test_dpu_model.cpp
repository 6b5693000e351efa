#include "dpu_model.h"
#include "stats.h"

#include <catch2/catch.hpp>

#include <linux/fuse.h>

using namespace kab::dpu;

TEST_CASE("CPU list parsing", "[dpu][model]") {
  std::vector<int> v;
  CHECK(parse_cpu_list("0,1", v));
  CHECK(v == std::vector<int>{0, 1});
  CHECK(parse_cpu_list("2-4,7", v));
  CHECK(v == std::vector<int>{2, 3, 4, 7});
  CHECK(parse_cpu_list("", v));
  CHECK(v.empty());
  CHECK_FALSE(parse_cpu_list("a", v));
  CHECK_FALSE(parse_cpu_list("3-1", v));
  CHECK_FALSE(parse_cpu_list("1,", v));
  CHECK_FALSE(parse_cpu_list("99999", v));
}

TEST_CASE("DMA throttle and latency", "[dpu][model]") {
  using namespace std::chrono;
  SECTION("10 MB at 100 MB/s take about 100 ms") {
    DmaThrottle t(100);
    auto t0 = steady_clock::now();
    for (int i = 0; i < 10; ++i)
      t.transfer(1000000);
    auto ms = duration_cast<milliseconds>(steady_clock::now() - t0).count();
    CHECK(ms >= 95);
    CHECK(ms < 400);
  }
  SECTION("off means no wait") {
    DmaThrottle t(0);
    CHECK_FALSE(t.enabled());
    auto t0 = steady_clock::now();
    t.transfer(1 << 30);
    CHECK(steady_clock::now() - t0 < milliseconds(5));
  }
  SECTION("wait_until is not early") {
    auto d = steady_clock::now() + microseconds(300);
    wait_until(d);
    CHECK(steady_clock::now() >= d);
  }
}

TEST_CASE("statistics JSON", "[dpu][stats]") {
  Stats s(2);
  s.record(FUSE_WRITE, 1500, false);
  s.record(FUSE_WRITE, 3'000'000, true);
  s.record(4096, 10, false);
  s.add_bytes_written(100);
  s.add_busy(1, 2'000'000'000);
  auto j = s.to_json({{"tool", "kab-dpu"}});
  CHECK(j["context"]["tool"] == "kab-dpu");
  CHECK(j["requests"]["WRITE"] == 2);
  CHECK(j["requests"]["OTHER"] == 1);
  CHECK(j["errors"]["WRITE"] == 1);
  CHECK(j["bytes_written"] == 100);
  CHECK(j["workers"][1]["busy_s"] == Approx(2.0));
  auto buckets = j["latency_us"]["WRITE"]["buckets"];
  REQUIRE(buckets.size() == 2);
  CHECK(buckets[0]["lt_us"] == 2);       // 1.5 µs
  CHECK(buckets[1]["lt_us"] == 4096);  // 3 ms
}
