#include "virtqueue.h"

#include <catch2/catch.hpp>

#include <cstring>
#include <vector>

using namespace kab::dpu;

namespace {

// 1 MiB of fake guest memory at GPA 0x100000 with one queue of 8 entries.
struct FakeQueue {
  static constexpr uint64_t k_base = 0x100000;
  static constexpr uint32_t k_num = 8;
  std::vector<uint8_t> ram = std::vector<uint8_t>(1 << 20);
  GuestMemory mem;
  Virtqueue vq;
  uint64_t desc_gpa = k_base, avail_gpa = k_base + 0x1000, used_gpa = k_base + 0x2000;
  uint16_t avail_idx = 0;

  explicit FakeQueue(bool event_idx = false) {
    mem.add_region(k_base, ram.size(), k_base, ram.data());
    REQUIRE(vq.configure(&mem, k_num, desc_gpa, avail_gpa, used_gpa, event_idx));
  }
  uint8_t* at(uint64_t gpa) { return ram.data() + (gpa - k_base); }
  void set_desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next = 0,
                uint64_t table = 0) {
    VringDesc d{addr, len, flags, next};
    std::memcpy(at((table ? table : desc_gpa) + 16 * i), &d, sizeof d);
  }
  void make_available(uint16_t head) {
    uint16_t slot = avail_idx % k_num;
    std::memcpy(at(avail_gpa + 4 + 2 * slot), &head, 2);
    ++avail_idx;
    std::memcpy(at(avail_gpa + 2), &avail_idx, 2);
  }
  uint16_t used_idx() {
    uint16_t v;
    std::memcpy(&v, at(used_gpa + 2), 2);
    return v;
  }
};

} // namespace

TEST_CASE("virtqueue chain walker", "[dpu][virtqueue]") {
  FakeQueue q;
  Chain c;
  uint64_t buf = FakeQueue::k_base + 0x10000;

  SECTION("readable then writable chain") {
    q.set_desc(0, buf, 40, k_desc_f_next, 3);
    q.set_desc(3, buf + 100, 8, k_desc_f_next, 5);
    q.set_desc(5, buf + 200, 4096, k_desc_f_write);
    REQUIRE(q.vq.walk(0, c) == WalkError::none);
    CHECK(c.readable.size() == 2);
    CHECK(c.readable_len == 48);
    CHECK(c.writable.size() == 1);
    CHECK(c.writable_len == 4096);
    CHECK(c.writable[0].iov_base == q.at(buf + 200));
  }
  SECTION("indirect table") {
    uint64_t table = FakeQueue::k_base + 0x20000;
    q.set_desc(0, buf, 16, k_desc_f_next, 1, table);
    q.set_desc(1, buf + 16, 16, k_desc_f_write, 0, table);
    q.set_desc(2, table, 32, k_desc_f_indirect);
    REQUIRE(q.vq.walk(2, c) == WalkError::none);
    CHECK(c.readable_len == 16);
    CHECK(c.writable_len == 16);
  }
  SECTION("zero-length descriptors are skipped") {
    q.set_desc(0, 0, 0, k_desc_f_next, 1);
    q.set_desc(1, buf, 8, 0);
    REQUIRE(q.vq.walk(0, c) == WalkError::none);
    CHECK(c.readable.size() == 1);
  }
  SECTION("malformed chains are refused") {
    CHECK(q.vq.walk(8, c) == WalkError::head_out_of_range);
    q.set_desc(0, buf, 8, k_desc_f_next, 9);
    CHECK(q.vq.walk(0, c) == WalkError::next_out_of_range);
    q.set_desc(0, buf, 8, k_desc_f_next, 1);
    q.set_desc(1, buf, 8, k_desc_f_next, 0);
    CHECK(q.vq.walk(0, c) == WalkError::loop);
    q.set_desc(0, buf, 8, k_desc_f_next, 0);
    CHECK(q.vq.walk(0, c) == WalkError::loop);
    q.set_desc(0, 0x10, 8, 0);
    CHECK(q.vq.walk(0, c) == WalkError::bad_address);
    q.set_desc(0, FakeQueue::k_base + (1 << 20) - 4, 8, 0);
    CHECK(q.vq.walk(0, c) == WalkError::bad_address);
    q.set_desc(0, buf, 8, k_desc_f_write | k_desc_f_next, 1);
    q.set_desc(1, buf, 8, 0);
    CHECK(q.vq.walk(0, c) == WalkError::readable_after_writable);
    q.set_desc(0, buf, 0xffffffff, 0);
    CHECK(q.vq.walk(0, c) == WalkError::too_long);
  }
  SECTION("malformed indirect tables are refused") {
    uint64_t table = FakeQueue::k_base + 0x20000;
    q.set_desc(0, table, 0, k_desc_f_indirect);
    CHECK(q.vq.walk(0, c) == WalkError::bad_indirect);
    q.set_desc(0, table, 24, k_desc_f_indirect);
    CHECK(q.vq.walk(0, c) == WalkError::bad_indirect);
    q.set_desc(0, 0x1000, 32, k_desc_f_indirect);
    CHECK(q.vq.walk(0, c) == WalkError::bad_indirect);
    q.set_desc(0, table, 32, k_desc_f_indirect | k_desc_f_next, 1);
    CHECK(q.vq.walk(0, c) == WalkError::nested_indirect);
    q.set_desc(0, table, 16, k_desc_f_indirect, 0, table);  // table points at itself
    q.set_desc(1, table, 32, k_desc_f_indirect);
    CHECK(q.vq.walk(1, c) == WalkError::nested_indirect);
    q.set_desc(0, buf, 8, k_desc_f_next, 0, table);  // loop inside the table
    q.set_desc(1, table, 16, k_desc_f_indirect);
    CHECK(q.vq.walk(1, c) == WalkError::loop);
    q.set_desc(0, buf, 8, k_desc_f_next, 5, table);
    q.set_desc(1, table, 32, k_desc_f_indirect);
    CHECK(q.vq.walk(1, c) == WalkError::next_out_of_range);
  }
}

TEST_CASE("virtqueue rings", "[dpu][virtqueue]") {
  SECTION("pop follows the available ring and push_used fills the used ring") {
    FakeQueue q;
    CHECK_FALSE(q.vq.pop());
    q.make_available(3);
    q.make_available(1);
    CHECK(q.vq.pop() == std::optional<uint16_t>(3));
    CHECK(q.vq.pop() == std::optional<uint16_t>(1));
    CHECK_FALSE(q.vq.pop());
    CHECK(q.vq.push_used(3, 100));  // no NO_INTERRUPT flag: notify
    CHECK(q.used_idx() == 1);
    uint32_t id, len;
    std::memcpy(&id, q.at(q.used_gpa + 4), 4);
    std::memcpy(&len, q.at(q.used_gpa + 8), 4);
    CHECK(id == 3);
    CHECK(len == 100);
    uint16_t no_interrupt = k_avail_f_no_interrupt;
    std::memcpy(q.at(q.avail_gpa), &no_interrupt, 2);
    CHECK_FALSE(q.vq.push_used(1, 0));
  }
  SECTION("an available index running ahead by more than the ring breaks the queue") {
    FakeQueue q;
    uint16_t bogus = 100;
    std::memcpy(q.at(q.avail_gpa + 2), &bogus, 2);
    CHECK_FALSE(q.vq.pop());
    CHECK(q.vq.broken());
  }
  SECTION("event index suppresses notifications until used_event") {
    FakeQueue q(true);
    uint16_t used_event = 1;  // notify when used idx passes 1
    std::memcpy(q.at(q.avail_gpa + 4 + 2 * FakeQueue::k_num), &used_event, 2);
    CHECK_FALSE(q.vq.push_used(0, 0));  // used idx 0 -> 1
    CHECK(q.vq.push_used(0, 0));        // 1 -> 2 crosses used_event
    CHECK_FALSE(q.vq.push_used(0, 0));
    q.make_available(0);
    q.vq.pop();
    CHECK_FALSE(q.vq.enable_kicks());
    uint16_t avail_event;
    std::memcpy(&avail_event, q.at(q.used_gpa + 4 + 8 * FakeQueue::k_num), 2);
    CHECK(avail_event == 1);
    q.make_available(0);
    CHECK(q.vq.enable_kicks());
  }
  SECTION("configure refuses bad sizes and unmapped rings") {
    FakeQueue q;
    Virtqueue v;
    CHECK_FALSE(v.configure(&q.mem, 6, q.desc_gpa, q.avail_gpa, q.used_gpa, false));
    CHECK_FALSE(v.configure(&q.mem, 0, q.desc_gpa, q.avail_gpa, q.used_gpa, false));
    CHECK_FALSE(v.configure(&q.mem, 65536, q.desc_gpa, q.avail_gpa, q.used_gpa, false));
    CHECK_FALSE(v.configure(&q.mem, 8, 0x10, q.avail_gpa, q.used_gpa, false));
    CHECK_FALSE(v.configure(&q.mem, 8, q.desc_gpa, q.avail_gpa, FakeQueue::k_base + (1 << 20) - 8, false));
  }
}

TEST_CASE("an indirect table is no longer than the ring", "[dpu][virtqueue][security]") {
  // Before: any table up to 32768 descriptors was walked, whatever the ring size (8 here).
  FakeQueue q;
  Chain c;
  uint64_t table = FakeQueue::k_base + 0x20000;
  uint64_t buf = FakeQueue::k_base + 0x40000;
  auto fill = [&](uint16_t n) {
    for (uint16_t i = 0; i < n; ++i)
      q.set_desc(i, buf + 64 * i, 16, i + 1 < n ? k_desc_f_next : 0, uint16_t(i + 1), table);
  };
  fill(FakeQueue::k_num);
  q.set_desc(0, table, 16 * FakeQueue::k_num, k_desc_f_indirect);
  REQUIRE(q.vq.walk(0, c) == WalkError::none);
  CHECK(c.readable.size() == FakeQueue::k_num);
  fill(FakeQueue::k_num + 1);
  q.set_desc(0, table, 16 * (FakeQueue::k_num + 1), k_desc_f_indirect);
  CHECK(q.vq.walk(0, c) == WalkError::bad_indirect);
  fill(4096);
  q.set_desc(0, table, 16 * 4096, k_desc_f_indirect);
  CHECK(q.vq.walk(0, c) == WalkError::bad_indirect);
}
