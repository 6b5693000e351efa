// The planner: scenario → ordered samples. Pure and deterministic: the same
// scenario and seed give a byte-identical plan.
#pragma once

#include "core/model.h"

namespace kab::core {

// The cartesian product of the scenario's matrix axes, in file order, minus
// every cell matched by an `exclude` entry (an entry matches a cell when all
// of its options equal the cell's). One empty cell when there is no matrix.
std::vector<Cell> expand_cells(const FioSpec& fio);

// Expands cells × backends × arms × repetitions. Groups (cell, backend) are
// shuffled by the seed; within a group arms run in ABBA-balanced blocks (one
// repetition of every arm per block, even blocks forward, odd blocks
// reversed), the orientation of the first block drawn from the seed, so slow
// drift affects every arm alike. A sequential scenario (stop.until_decided)
// plans max_samples per arm, ordered look by look: one ABBA block of every
// group per look, so the run can stop after any look with the groups alike.
Plan make_plan(const Scenario& scenario);

// Shard `shard` (1-based) of `shards` of a fixed-n plan (kab run --shard i/N):
// whole ABBA blocks — the repetitions 2k and 2k + 1 of one (cell, backend),
// every arm — dealt to the shards in turn in plan order, so each shard holds
// blocks of every group and both arms alike. The samples keep their plan
// indices; the shards together are the plan. Throws std::invalid_argument
// for a sequential plan (its looks need every sample), a shard outside
// 1..shards, or more shards than the plan has blocks.
Plan shard_of(const Plan& plan, int shard, int shards);

}  // namespace kab::core
