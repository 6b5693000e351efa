// What the installed fio knows: its option names, read from fio itself
// (`fio --cmdhelp=all`, aliases and engine options via `fio --cmdhelp=NAME`).
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace kab::fio {

class Catalog {
 public:
  // Runs `fio --cmdhelp=all` once. Throws std::runtime_error when fio is missing.
  explicit Catalog(std::string fio_binary = "fio");
  const std::vector<std::string>& names() const { return m_names; }
  // True for listed names, aliases and engine options (asks fio, memoized).
  bool knows(const std::string& option);
  std::string version() const { return m_version; }
  // Runs `fio --parse-only` on the job text (written to a temporary file):
  // "" when fio accepts every value, else what fio said.
  std::string parse_only(const std::string& job_text) const;

 private:
  std::string m_fio;
  std::string m_version;
  std::vector<std::string> m_names;
  std::map<std::string, bool> m_asked;
  // Every engine's own options (`fio --enghelp=ENGINE`: the exec engine's
  // program, arguments, grace_time…), listed the first time a name is not
  // otherwise known; --cmdhelp does not name them.
  std::optional<std::set<std::string>> m_engine_options;
};

}  // namespace kab::fio
