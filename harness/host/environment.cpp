#include "host/environment.h"

#include <sys/statvfs.h>

#include <fstream>
#include <set>
#include <sstream>

#include "core/text.h"

namespace kab::host {

namespace {

std::string first_line_of(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return "";
  return core::trim(line);
}

// "always [madvise] never" → "madvise".
std::string selected(const std::string& line) {
  auto open = line.find('['), close = line.find(']');
  if (open == std::string::npos || close == std::string::npos || close < open) return line;
  return line.substr(open + 1, close - open - 1);
}

std::string or_none(const std::string& v, const std::string& none) { return v.empty() ? none : v; }

}  // namespace

std::vector<std::pair<std::string, std::string>> host_environment(const std::string& root) {
  std::vector<std::pair<std::string, std::string>> f;
  const std::string thp = root + "/sys/kernel/mm/transparent_hugepage/";
  for (const char* k : {"enabled", "shmem_enabled", "defrag"})
    f.emplace_back(std::string("env.thp.") + k, or_none(selected(first_line_of(thp + k)), "none (no THP)"));
  {
    std::string n = first_line_of(root + "/proc/sys/vm/nr_hugepages"), size;
    std::ifstream in(root + "/proc/meminfo");
    for (std::string line; std::getline(in, line);)
      if (core::starts_with(line, "Hugepagesize:")) size = core::trim(line.substr(13));
    f.emplace_back("env.hugepages", or_none(n, "?") + (size.empty() ? "" : " × " + size));
  }
  const std::string cpu = root + "/sys/devices/system/cpu/";
  f.emplace_back("env.cpu.governor", or_none(first_line_of(cpu + "cpu0/cpufreq/scaling_governor"), "none (no cpufreq)"));
  {
    std::string boost = first_line_of(cpu + "cpufreq/boost");
    if (boost.empty()) {
      std::string no_turbo = first_line_of(cpu + "intel_pstate/no_turbo");
      if (!no_turbo.empty()) boost = no_turbo == "1" ? "0 (intel_pstate no_turbo)" : "1 (intel_pstate)";
    }
    f.emplace_back("env.cpu.boost", or_none(boost, "none (no boost control)"));
  }
  f.emplace_back("env.cpu.smt", or_none(first_line_of(cpu + "smt/control"), "none (no SMT control)"));
  f.emplace_back("env.host.cmdline", or_none(first_line_of(root + "/proc/cmdline"), "?"));
  {
    struct statvfs v {};
    const std::string shm = root + "/dev/shm";
    std::string size = "?";
    if (::statvfs(shm.c_str(), &v) == 0) {
      std::ostringstream s;
      s.precision(1);
      s << std::fixed << static_cast<double>(v.f_blocks) * static_cast<double>(v.f_frsize) / (1024.0 * 1024 * 1024)
        << " GiB";
      size = s.str();
    }
    f.emplace_back("env.shm.size", size);
  }
  return f;
}

std::vector<std::pair<std::string, std::vector<std::string>>> differing_facts(
    const std::vector<std::map<std::string, std::string>>& runs) {
  std::set<std::string> keys;
  for (const auto& r : runs)
    for (const auto& [k, v] : r)
      if (core::starts_with(k, "env.")) keys.insert(k);
  std::vector<std::pair<std::string, std::vector<std::string>>> out;
  for (const auto& k : keys) {
    std::vector<std::string> values;
    for (const auto& r : runs) {
      auto it = r.find(k);
      values.push_back(it == r.end() ? "-" : it->second);
    }
    bool same = true;
    for (const auto& v : values) same &= v == values.front();
    if (!same) out.emplace_back(k, std::move(values));
  }
  return out;
}

}  // namespace kab::host
