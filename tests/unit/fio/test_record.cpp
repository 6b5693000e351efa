#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "fio/record.h"

using namespace kab;

namespace {
std::string data(const std::string& name) {
  std::ifstream in(std::string(KAB_TEST_DATA) + "/console/" + name);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace

TEST_CASE("the agent's record from real guests becomes a Sample", "[record]") {
  SECTION("stock kernel: temporary pages are visible") {
    core::Sample s;
    CHECK(fio::parse_record(data("record-stock.txt"), s) == "");
    CHECK(s.fio.bw_bytes > 1e6);
    CHECK(s.fio.iops > 0);
    CHECK(s.fio.clat_p99_ns > 0);
    CHECK(s.fio.bytes > 0);
    CHECK(s.guest.writeback_tmp_peak_kb > 0);
    CHECK(s.guest.nr_writeback_temp_peak > 0);
    CHECK(s.guest.guest_sys_s > 0);
    CHECK(s.boot_s > 0);
    CHECK(s.fio_s > 4);
    CHECK(s.fio_json.find("\"jobs\"") != std::string::npos);
  }
  SECTION("RFC kernel: no temporary pages") {
    core::Sample s;
    CHECK(fio::parse_record(data("record-rfc.txt"), s) == "");
    CHECK(s.fio.bw_bytes > 1e6);
    CHECK(s.guest.writeback_tmp_peak_kb == 0);
    CHECK(s.guest.nr_writeback_temp_peak == 0);
    CHECK(s.guest.writeback_peak_kb > 0);
  }
  SECTION("a record cut short is not a measurement") {
    std::string r = data("record-stock.txt");
    r = r.substr(0, r.find("KAB-FIO-JSON-BEGIN"));
    core::Sample s;
    CHECK(fio::parse_record(r, s) == "the agent's record has no end (guest stopped early)");
  }
  SECTION("a failed mount is reported with the agent's words") {
    core::Sample s;
    CHECK(fio::parse_record("KAB-BEGIN sample=1\r\nKAB-ERROR mount: mount: mounting kabfs on /mnt/kab failed: No such device\r\n"
                            "KAB-END status=mount-failed fio_rc=-1\r\n",
                            s) == "agent: mount-failed; mount: mount: mounting kabfs on /mnt/kab failed: No such device");
  }
  SECTION("fio's JSON with an error") {
    core::FioMetrics m;
    CHECK(fio::parse_fio_json("fio: some warning\n{\"jobs\": [{\"error\": 5, \"write\": {\"io_bytes\": 0}, \"read\": {}}]}", m) ==
          "fio reported error 5");
    CHECK(fio::parse_fio_json("not json", m) == "fio wrote no JSON");
  }
}
