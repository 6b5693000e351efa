// Positioned reading of YAML documents: every problem becomes a Diagnostic
// with file:line:col (1-based), the source line and a hint. Shared by the
// scenario and kernel-definition parsers.
#pragma once

#include <yaml-cpp/yaml.h>

#include <optional>
#include <string>
#include <vector>

#include "core/text.h"

namespace kab::scenario {

class YamlReader {
 public:
  YamlReader(std::string file, std::string text) : m_file(std::move(file)), m_text(std::move(text)) {}

  // Parses the text; a syntax error becomes a diagnostic and returns nullopt.
  std::optional<YAML::Node> load();

  void error_at(const YAML::Mark& mark, const std::string& message);
  void error_at(const YAML::Node& node, const std::string& message) { error_at(node.Mark(), message); }

  // Reports each key of `map` not in `allowed` ("unknown key 'x', did you mean 'y'?").
  void check_keys(const YAML::Node& map, const std::vector<std::string>& allowed, const std::string& what = "key");

  // The scalar text of `node`; reports "'name' must be a scalar" otherwise.
  std::optional<std::string> scalar(const YAML::Node& node, const std::string& name);
  std::optional<long long> integer(const YAML::Node& node, const std::string& name);
  std::optional<double> number(const YAML::Node& node, const std::string& name);
  std::optional<bool> boolean(const YAML::Node& node, const std::string& name);
  std::optional<std::uint64_t> size(const YAML::Node& node, const std::string& name);
  std::optional<double> duration(const YAML::Node& node, const std::string& name);
  std::optional<double> fraction(const YAML::Node& node, const std::string& name);
  // A list of scalars; a single scalar counts as a one-element list.
  std::optional<std::vector<std::string>> scalar_list(const YAML::Node& node, const std::string& name);

  // Requires `key` in `map`; a missing key is reported at the map itself.
  bool require(const YAML::Node& map, const std::string& key, const std::string& where);
  // A map is expected; reports "'name' must be a map, got a list" otherwise.
  bool expect_map(const YAML::Node& node, const std::string& name);
  bool expect_list(const YAML::Node& node, const std::string& name);

  // A diagnostic about another file (a fio job file the scenario names).
  void add(core::Diagnostic d) { m_errors.push_back(std::move(d)); }

  const std::vector<core::Diagnostic>& errors() const { return m_errors; }
  const std::string& file() const { return m_file; }

 private:
  std::string m_file;
  std::string m_text;
  std::vector<core::Diagnostic> m_errors;
};

// A whole file; nullopt when it cannot be read.
std::optional<std::string> read_file(const std::string& path);

// "a list", "a map", "a scalar", "nothing".
std::string kind_of(const YAML::Node& node);

}  // namespace kab::scenario
