#include "core/nightly.h"

#include <algorithm>
#include <set>

namespace kab::core {

namespace {

bool judged(const Night& n) { return n.complete && !n.verdict.empty() && n.verdict != "failed"; }

}  // namespace

std::vector<std::int64_t> baseline_window(const std::vector<Night>& earlier, const std::string& scenario_hash, int k) {
  std::vector<std::int64_t> out;
  for (auto it = earlier.rbegin(); it != earlier.rend() && static_cast<int>(out.size()) < k; ++it)
    if (it->scenario_hash == scenario_hash && judged(*it) && it->verdict != "regression") out.insert(out.begin(), it->run);
  return out;
}

int regressions_in_a_row(const std::vector<Night>& earlier, const std::string& scenario_hash) {
  int streak = 0;
  for (auto it = earlier.rbegin(); it != earlier.rend(); ++it) {
    if (it->scenario_hash != scenario_hash || !judged(*it)) continue;
    if (it->verdict != "regression") break;
    ++streak;
  }
  return streak;
}

std::vector<std::int64_t> nights_to_prune(const std::vector<Night>& nights, int keep, int window) {
  std::set<std::int64_t> kept;
  if (!nights.empty() && window > 0)
    for (auto id : baseline_window(nights, nights.back().scenario_hash, window)) kept.insert(id);
  const std::size_t n = nights.size();
  for (std::size_t i = 0; i < n; ++i) {
    const Night& night = nights[i];
    const bool recent = i + static_cast<std::size_t>(std::max(keep, 0)) >= n;
    const bool regressed = night.verdict == "regression" || night.alert;
    if (recent || regressed) kept.insert(night.run);
    if (regressed || i + 1 == n) kept.insert(night.baseline.begin(), night.baseline.end());
  }
  std::vector<std::int64_t> out;
  for (const auto& night : nights)
    if (!kept.count(night.run)) out.push_back(night.run);
  return out;
}

}  // namespace kab::core
