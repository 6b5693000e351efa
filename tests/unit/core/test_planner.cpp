#include <catch2/catch.hpp>
#include <map>
#include <set>

#include "core/planner.h"

using namespace kab::core;

namespace {

Scenario two_arm_scenario(int reps, std::uint64_t seed) {
  Scenario s;
  s.arms = {{"stock", "stock-6.1", ""}, {"rfc", "rfc-6.1", ""}};
  BackendSpec b;
  b.name = "virtiofsd";
  s.backends = {b};
  s.fio.job = {{"rw", "randwrite"}};
  s.repetitions = reps;
  s.seed = seed;
  return s;
}

std::string order_of(const Plan& p) {
  std::string out;
  for (const auto& s : p.samples) out += s.arm == "stock" ? 'A' : 'B';
  return out;
}

}  // namespace

TEST_CASE("expand_cells is the cartesian product minus exclusions", "[planner]") {
  FioSpec f;
  SECTION("no matrix is one empty cell") { CHECK(expand_cells(f) == std::vector<Cell>{Cell{}}); }
  SECTION("product in file order") {
    f.matrix = {{"bs", {"4k", "1M"}}, {"rw", {"write", "randwrite"}}};
    auto cells = expand_cells(f);
    REQUIRE(cells.size() == 4);
    CHECK(cells[0] == Cell{{"bs", "4k"}, {"rw", "write"}});
    CHECK(cells[3] == Cell{{"bs", "1M"}, {"rw", "randwrite"}});
  }
  SECTION("exclusion by partial cell") {
    f.matrix = {{"bs", {"4k", "1M"}}, {"rw", {"write", "randwrite"}}, {"numjobs", {"1", "2"}}};
    f.exclude = {{{"bs", "4k"}, {"numjobs", "2"}}};
    auto cells = expand_cells(f);
    CHECK(cells.size() == 6);
    for (const auto& c : cells) CHECK_FALSE((c[0].second == "4k" && c[2].second == "2"));
  }
}

TEST_CASE("make_plan interleaves arms in ABBA blocks", "[planner]") {
  SECTION("two arms alternate in balanced blocks") {
    auto plan = make_plan(two_arm_scenario(4, 1));
    std::string o = order_of(plan);
    CHECK((o == "ABBAABBA" || o == "BAABBAAB"));
  }
  SECTION("every arm runs each repetition once, positions balanced") {
    Scenario s = two_arm_scenario(6, 99);
    s.fio.matrix = {{"bs", {"4k", "64k", "1M"}}};
    s.backends.push_back(s.backends[0]);
    s.backends[1].name = "dpu";
    auto plan = make_plan(s);
    CHECK(plan.samples.size() == 3 * 2 * 2 * 6);
    std::map<std::string, int> first_in_block;
    std::set<std::string> seen;
    for (std::size_t i = 0; i < plan.samples.size(); i += 2) {
      const auto& a = plan.samples[i];
      const auto& b = plan.samples[i + 1];
      CHECK(a.cell == b.cell);
      CHECK(a.backend == b.backend);
      CHECK(a.repetition == b.repetition);
      CHECK(a.arm != b.arm);
      first_in_block[a.arm]++;
      seen.insert(a.arm + a.backend + cell_label(a.cell) + std::to_string(a.repetition));
    }
    CHECK(first_in_block["stock"] == first_in_block["rfc"]);
    CHECK(seen.size() == 3 * 2 * 6);
    for (std::size_t i = 0; i < plan.samples.size(); ++i) CHECK(plan.samples[i].index == static_cast<int>(i));
  }
  SECTION("three arms: reversed blocks") {
    Scenario s = two_arm_scenario(2, 5);
    s.arms.push_back({"third", "x", ""});
    auto plan = make_plan(s);
    std::string o;
    for (const auto& p : plan.samples) o += p.arm[0];
    CHECK((o == "srttrs" || o == "trssrt"));
  }
}

TEST_CASE("make_plan is deterministic and the seed matters", "[planner]") {
  Scenario s = two_arm_scenario(3, 1234);
  s.fio.matrix = {{"bs", {"4k", "64k", "1M", "2M"}}, {"rw", {"write", "randwrite"}}};
  auto label = [](const Plan& p) {
    std::string out;
    for (const auto& x : p.samples) out += x.arm + "/" + cell_label(x.cell) + "/" + std::to_string(x.repetition) + ";";
    return out;
  };
  SECTION("same seed, same plan") { CHECK(label(make_plan(s)) == label(make_plan(s))); }
  SECTION("the seed is recorded") { CHECK(make_plan(s).seed == 1234); }
  SECTION("another seed, another order") {
    Scenario t = s;
    t.seed = 1235;
    CHECK(label(make_plan(s)) != label(make_plan(t)));
  }
  SECTION("the seed also chooses the first arm of a one-cell plan") {
    std::set<std::string> firsts;
    for (std::uint64_t seed = 0; seed < 16; ++seed) firsts.insert(make_plan(two_arm_scenario(2, seed)).samples[0].arm);
    CHECK(firsts.size() == 2);
  }
}

TEST_CASE("make_plan for sampling until decided: look by look, every group alike", "[planner][sequential]") {
  Scenario s = two_arm_scenario(5, 42);
  s.stop.until_decided = true;
  s.stop.max_samples = 6;   // 3 looks
  s.fio.matrix = {{"bs", {"4k", "1M"}}};
  auto plan = make_plan(s);
  CHECK(plan.looks == 3);
  CHECK(plan.look_size == 2 * 2 * 2);   // 2 cells × 2 arms × an ABBA block
  REQUIRE(plan.samples.size() == 2 * 2 * 6);   // the cap, not `repetitions`
  for (int look = 0; look < plan.looks; ++look) {
    // Each look: one whole ABBA block of each cell, reps 2·look and 2·look + 1.
    std::map<std::string, int> per_cell_arm;
    for (int i = look * plan.look_size; i < (look + 1) * plan.look_size; ++i) {
      const auto& ps = plan.samples[static_cast<std::size_t>(i)];
      CHECK(ps.repetition / 2 == look);
      ++per_cell_arm[cell_label(ps.cell) + "/" + ps.arm];
    }
    CHECK(per_cell_arm == std::map<std::string, int>{{"bs=1M/rfc", 2}, {"bs=1M/stock", 2}, {"bs=4k/rfc", 2},
                                                     {"bs=4k/stock", 2}});
    // ABBA within a cell's block.
    const auto& a = plan.samples[static_cast<std::size_t>(look * plan.look_size)];
    const auto& d = plan.samples[static_cast<std::size_t>(look * plan.look_size + 3)];
    CHECK(a.arm == d.arm);
    CHECK(a.cell == d.cell);
  }
  // A fixed-n plan of the same scenario is unchanged by the stop rule's absence.
  s.stop.until_decided = false;
  auto fixed = make_plan(s);
  CHECK(fixed.looks == 0);
  CHECK(fixed.samples.size() == 2 * 2 * 5);
}

TEST_CASE("shard_of deals whole ABBA blocks in turn, and the shards are the plan", "[planner][shards]") {
  // Two cells x two backends, 6 repetitions: 4 groups of 3 blocks, 12 blocks.
  Scenario s = two_arm_scenario(6, 3);
  BackendSpec dpu;
  dpu.name = "dpu";
  s.backends.push_back(dpu);
  s.fio.matrix = {{"bs", {"4k", "1M"}}};
  const Plan plan = make_plan(s);
  REQUIRE(plan.samples.size() == 48);
  std::map<int, int> owner;   // plan index → shard
  for (int shard = 1; shard <= 3; ++shard) {
    const Plan p = shard_of(plan, shard, 3);
    CHECK(p.seed == plan.seed);
    CHECK(p.samples.size() == 16);   // 4 blocks of 4 samples
    std::map<std::string, int> per_arm;
    std::map<std::string, int> per_group;
    for (std::size_t i = 0; i < p.samples.size(); ++i) {
      const auto& ps = p.samples[i];
      CHECK(owner.emplace(ps.index, shard).second);
      // The sample is the plan's, at its plan index.
      CHECK(plan.samples[static_cast<std::size_t>(ps.index)].arm == ps.arm);
      CHECK(plan.samples[static_cast<std::size_t>(ps.index)].repetition == ps.repetition);
      ++per_arm[ps.arm];
      ++per_group[ps.backend + cell_label(ps.cell)];
      // Blocks are whole: repetitions 2k and 2k + 1 of a group, ABBA.
      if (i % 4 == 0) {
        REQUIRE(i + 3 < p.samples.size());
        CHECK(p.samples[i + 3].index == ps.index + 3);
        CHECK(ps.repetition % 2 == 0);
        CHECK(p.samples[i + 3].repetition == ps.repetition + 1);
        CHECK(ps.arm == p.samples[i + 3].arm);
        CHECK(p.samples[i + 1].arm == p.samples[i + 2].arm);
        CHECK(ps.arm != p.samples[i + 1].arm);
      }
    }
    CHECK(per_arm == std::map<std::string, int>{{"rfc", 8}, {"stock", 8}});
    // Dealt in turn: a group's 3 blocks go to 3 different shards.
    CHECK(per_group.size() == 4);
    for (const auto& [group, n] : per_group) CHECK(n == 4);
  }
  CHECK(owner.size() == 48);   // every sample once
  // One shard of one is the plan.
  CHECK(shard_of(plan, 1, 1).samples.size() == 48);
  // An odd repetition count: the last block is one repetition of each arm.
  const Plan odd = make_plan(two_arm_scenario(3, 9));
  CHECK(shard_of(odd, 1, 2).samples.size() == 4);
  CHECK(shard_of(odd, 2, 2).samples.size() == 2);
  CHECK_THROWS_WITH(shard_of(odd, 1, 3), "the plan has 2 ABBA blocks: it splits into at most that many shards, not 3");
  CHECK_THROWS_AS(shard_of(plan, 0, 2), std::invalid_argument);
  CHECK_THROWS_AS(shard_of(plan, 3, 2), std::invalid_argument);
  Scenario seq = two_arm_scenario(0, 3);
  seq.stop.until_decided = true;
  seq.stop.max_samples = 8;
  CHECK_THROWS_WITH(shard_of(make_plan(seq), 1, 2), Catch::Contains("cannot be sharded"));
}
