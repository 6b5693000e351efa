#include "core/planner.h"

#include "core/stats.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>

namespace kab::core {

namespace {

bool excluded(const Cell& cell, const std::vector<FioOptions>& exclude) {
  for (const auto& ex : exclude) {
    bool all = !ex.empty();
    for (const auto& [k, v] : ex) {
      bool hit = false;
      for (const auto& [ck, cv] : cell)
        if (ck == k && cv == v) hit = true;
      if (!hit) {
        all = false;
        break;
      }
    }
    if (all) return true;
  }
  return false;
}

}  // namespace

std::vector<Cell> expand_cells(const FioSpec& fio) {
  std::vector<Cell> cells{Cell{}};
  for (const auto& [name, values] : fio.matrix) {
    std::vector<Cell> next;
    for (const auto& c : cells)
      for (const auto& v : values) {
        Cell n = c;
        n.emplace_back(name, v);
        next.push_back(std::move(n));
      }
    cells = std::move(next);
  }
  std::vector<Cell> out;
  for (auto& c : cells)
    if (!excluded(c, fio.exclude)) out.push_back(std::move(c));
  return out;
}

Plan make_plan(const Scenario& s) {
  Plan plan;
  plan.seed = s.seed;
  // Our own generator: the plan must not depend on the standard library's distributions.
  SplitMix64 rng(s.seed);

  struct Group {
    Cell cell;
    const BackendSpec* backend;
  };
  std::vector<Group> groups;
  for (const auto& cell : expand_cells(s.fio))
    for (const auto& b : s.backends) groups.push_back({cell, &b});

  // Fisher–Yates with our own generator.
  for (std::size_t i = groups.size(); i > 1; --i) std::swap(groups[i - 1], groups[rng.below(i)]);

  std::vector<bool> reversed;
  for (std::size_t g = 0; g < groups.size(); ++g) reversed.push_back(rng.below(2) == 1);
  auto add = [&](std::size_t g, int rep) {
    std::vector<std::size_t> order(s.arms.size());
    std::iota(order.begin(), order.end(), 0);
    if ((rep % 2 == 1) != reversed[g]) std::reverse(order.begin(), order.end());
    for (std::size_t a : order) {
      PlannedSample ps;
      ps.index = static_cast<int>(plan.samples.size());
      ps.arm = s.arms[a].name;
      ps.kernel = s.arms[a].kernel;
      ps.variant = s.arms[a].variant;
      ps.backend = groups[g].backend->name;
      ps.platform = s.guest.platform;
      ps.cell = groups[g].cell;
      ps.repetition = rep;
      plan.samples.push_back(std::move(ps));
    }
  };
  if (s.stop.until_decided) {
    // Look by look: one ABBA block of every group, then the next.
    plan.looks = s.stop.max_samples / 2;
    plan.look_size = static_cast<int>(groups.size() * s.arms.size() * 2);
    for (int look = 0; look < plan.looks; ++look)
      for (std::size_t g = 0; g < groups.size(); ++g) {
        add(g, 2 * look);
        add(g, 2 * look + 1);
      }
  } else {
    for (std::size_t g = 0; g < groups.size(); ++g)
      for (int rep = 0; rep < s.repetitions; ++rep) add(g, rep);
  }
  return plan;
}

Plan shard_of(const Plan& plan, int shard, int shards) {
  if (plan.look_size > 0)
    throw std::invalid_argument("a plan sampled until decided cannot be sharded: each look needs the samples of all before it");
  if (shards < 1 || shard < 1 || shard > shards)
    throw std::invalid_argument("shard " + std::to_string(shard) + "/" + std::to_string(shards) +
                                ": need 1 <= i <= N");
  Plan out;
  out.seed = plan.seed;
  int block = -1;
  const PlannedSample* previous = nullptr;
  for (const auto& ps : plan.samples) {
    // A block begins where the group or the pair of repetitions changes.
    if (!previous || previous->backend != ps.backend || previous->cell != ps.cell ||
        previous->repetition / 2 != ps.repetition / 2)
      ++block;
    previous = &ps;
    if (block % shards == shard - 1) out.samples.push_back(ps);
  }
  if (block + 1 < shards)
    throw std::invalid_argument("the plan has " + std::to_string(block + 1) + " ABBA block" + (block == 0 ? "" : "s") +
                                ": it splits into at most that many shards, not " + std::to_string(shards));
  return out;
}

}  // namespace kab::core
