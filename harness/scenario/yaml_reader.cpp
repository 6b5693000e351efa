#include "scenario/yaml_reader.h"

#include <charconv>
#include <fstream>
#include <sstream>

namespace kab::scenario {

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string kind_of(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a map";
    case YAML::NodeType::Scalar: return "'" + node.Scalar() + "'";
    default: return "nothing";
  }
}

std::optional<YAML::Node> YamlReader::load() {
  try {
    return YAML::Load(m_text);
  } catch (const YAML::ParserException& e) {
    error_at(e.mark, "YAML syntax error: " + e.msg);
  } catch (const YAML::Exception& e) {
    error_at(e.mark, "YAML error: " + e.msg);
  }
  return std::nullopt;
}

void YamlReader::error_at(const YAML::Mark& mark, const std::string& message) {
  core::Diagnostic d;
  d.file = m_file;
  d.message = message;
  if (!mark.is_null()) {
    d.line = mark.line + 1;    // yaml-cpp marks are 0-based
    d.col = mark.column + 1;
    d.source_line = core::line_of(m_text, d.line);
  }
  m_errors.push_back(std::move(d));
}

void YamlReader::check_keys(const YAML::Node& map, const std::vector<std::string>& allowed,
                            const std::string& what) {
  if (!map.IsMap()) return;
  for (auto it = map.begin(); it != map.end(); ++it) {
    const std::string key = it->first.Scalar();
    bool ok = false;
    for (const auto& a : allowed) ok = ok || a == key;
    if (ok) continue;
    std::string msg = "unknown " + what + " '" + key + "'";
    if (auto s = core::suggest(key, allowed)) msg += ", did you mean '" + *s + "'?";
    error_at(it->first, msg);
  }
}

std::optional<std::string> YamlReader::scalar(const YAML::Node& node, const std::string& name) {
  if (!node.IsScalar()) {
    error_at(node, "'" + name + "' must be a single value, got " + kind_of(node));
    return std::nullopt;
  }
  return node.Scalar();
}

std::optional<long long> YamlReader::integer(const YAML::Node& node, const std::string& name) {
  auto s = scalar(node, name);
  if (!s) return std::nullopt;
  long long v = 0;
  auto [p, ec] = std::from_chars(s->data(), s->data() + s->size(), v);
  if (ec != std::errc() || p != s->data() + s->size()) {
    error_at(node, "'" + name + "' must be an integer, got '" + *s + "'");
    return std::nullopt;
  }
  return v;
}

std::optional<double> YamlReader::number(const YAML::Node& node, const std::string& name) {
  auto s = scalar(node, name);
  if (!s) return std::nullopt;
  double v = 0;
  auto [p, ec] = std::from_chars(s->data(), s->data() + s->size(), v);
  if (ec != std::errc() || p != s->data() + s->size()) {
    error_at(node, "'" + name + "' must be a number, got '" + *s + "'");
    return std::nullopt;
  }
  return v;
}

std::optional<bool> YamlReader::boolean(const YAML::Node& node, const std::string& name) {
  auto s = scalar(node, name);
  if (!s) return std::nullopt;
  if (*s == "true" || *s == "yes" || *s == "on") return true;
  if (*s == "false" || *s == "no" || *s == "off") return false;
  error_at(node, "'" + name + "' must be true or false, got '" + *s + "'");
  return std::nullopt;
}

std::optional<std::uint64_t> YamlReader::size(const YAML::Node& node, const std::string& name) {
  auto s = scalar(node, name);
  if (!s) return std::nullopt;
  auto v = core::parse_size(*s);
  if (!v) error_at(node, "'" + name + "' is not a size: '" + *s + "' (expected e.g. 512M, 1G)");
  return v;
}

std::optional<double> YamlReader::duration(const YAML::Node& node, const std::string& name) {
  auto s = scalar(node, name);
  if (!s) return std::nullopt;
  auto v = core::parse_duration(*s);
  if (!v) error_at(node, "'" + name + "' is not a duration: '" + *s + "' (expected e.g. 30s, 2m)");
  return v;
}

std::optional<double> YamlReader::fraction(const YAML::Node& node, const std::string& name) {
  auto s = scalar(node, name);
  if (!s) return std::nullopt;
  auto v = core::parse_fraction(*s);
  if (!v) error_at(node, "'" + name + "' is not a fraction: '" + *s + "' (expected e.g. 2% or 0.02)");
  return v;
}

std::optional<std::vector<std::string>> YamlReader::scalar_list(const YAML::Node& node,
                                                                 const std::string& name) {
  if (node.IsScalar()) return std::vector<std::string>{node.Scalar()};
  if (!node.IsSequence()) {
    error_at(node, "'" + name + "' must be a list, got " + kind_of(node));
    return std::nullopt;
  }
  std::vector<std::string> out;
  bool ok = true;
  for (const auto& item : node) {
    auto s = scalar(item, name + " item");
    if (s) out.push_back(*s);
    else ok = false;
  }
  if (!ok) return std::nullopt;
  return out;
}

bool YamlReader::require(const YAML::Node& map, const std::string& key, const std::string& where) {
  if (map.IsMap() && map[key]) return true;
  error_at(map, "missing required key '" + key + "' in " + where);
  return false;
}

bool YamlReader::expect_map(const YAML::Node& node, const std::string& name) {
  if (node.IsMap()) return true;
  error_at(node, "'" + name + "' must be a map, got " + kind_of(node));
  return false;
}

bool YamlReader::expect_list(const YAML::Node& node, const std::string& name) {
  if (node.IsSequence()) return true;
  error_at(node, "'" + name + "' must be a list, got " + kind_of(node));
  return false;
}

}  // namespace kab::scenario
