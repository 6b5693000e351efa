// The host facts that change results and are not in a version string: how
// memory is backed and paged, how CPUs are clocked and shared, what the host
// kernel was booted with. Recorded with every run (runs.extra_json, keys
// "env.*"); `kab report R1 R2 …` lists those that differ between runs.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace kab::host {

// Reads the facts under ROOT ("" = this host; tests pass a fake tree):
//   env.thp.enabled, env.thp.shmem_enabled, env.thp.defrag   the selected [value]
//   env.hugepages                                            reserved count × size
//   env.cpu.governor, env.cpu.boost, env.cpu.smt             "none" when the host has no such control
//   env.host.cmdline                                         /proc/cmdline (mitigations=, …)
//   env.shm.size                                             /dev/shm's size
std::vector<std::pair<std::string, std::string>> host_environment(const std::string& root = "");

// The facts whose value is not the same in every run: key → one value per run
// (in RUNS order; "-" where a run did not record it). Empty when they all agree.
std::vector<std::pair<std::string, std::vector<std::string>>> differing_facts(
    const std::vector<std::map<std::string, std::string>>& runs);

}  // namespace kab::host
