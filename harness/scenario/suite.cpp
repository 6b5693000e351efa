#include "scenario/suite.h"

#include <cctype>
#include <cstdlib>
#include <filesystem>

#include "scenario/yaml_reader.h"

namespace fs = std::filesystem;

namespace kab::scenario {

namespace {

const std::vector<std::string> k_suite_keys = {"name", "tree", "kernel", "scenarios", "repetitions", "baseline", "alert"};
const std::vector<std::string> k_tree_keys = {"git", "ref", "base"};
const std::vector<std::string> k_baseline_keys = {"nights", "reference"};
const std::vector<std::string> k_alert_keys = {"min_effect", "alpha", "persist"};

bool name_ok(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  return true;
}

}  // namespace

Parsed<Suite> parse_suite(const std::string& path, const std::string& text, const std::string& scenarios_dir) {
  Parsed<Suite> out;
  YamlReader r(path, text);
  Suite s;
  s.path = path;
  s.name = fs::path(path).stem().string();
  const fs::path dir = fs::absolute(fs::path(path)).parent_path();
  auto root = r.load();
  if (root && !root->IsMap())
    r.error_at(*root, "a suite must be a map (name, tree, scenarios, baseline, alert), got " + kind_of(*root));
  if (root && root->IsMap()) {
    const YAML::Node& y = *root;
    r.check_keys(y, k_suite_keys);
    if (y["name"])
      if (auto v = r.scalar(y["name"], "name")) {
        if (!name_ok(*v)) r.error_at(y["name"], "'name' may hold letters, digits, '-', '_' and '.', got '" + *v + "'");
        s.name = *v;
      }
    if (r.require(y, "tree", "suite") && r.expect_map(y["tree"], "tree")) {
      const YAML::Node t = y["tree"];
      r.check_keys(t, k_tree_keys);
      if (r.require(t, "git", "tree"))
        if (auto v = r.scalar(t["git"], "git")) {
          fs::path p = *v;
          if (v->rfind("~/", 0) == 0 && std::getenv("HOME")) p = fs::path(std::getenv("HOME")) / v->substr(2);
          if (p.is_relative()) p = dir / p;
          s.tree = p.lexically_normal().string();
          if (s.tree.size() > 1 && s.tree.back() == '/') s.tree.pop_back();
          if (!fs::is_directory(p / ".git"))
            r.error_at(t["git"], "'" + *v + "' is not a git repository (no " + (p / ".git").string() + ")");
        }
      if (r.require(t, "ref", "tree"))
        if (auto v = r.scalar(t["ref"], "ref")) s.ref = *v;
      if (t["base"])
        if (auto v = r.scalar(t["base"], "base")) s.base = *v;
    }
    if (y["kernel"])
      if (auto v = r.scalar(y["kernel"], "kernel")) s.kernel = *v;
    if (r.require(y, "scenarios", "suite"))
      if (auto list = r.scalar_list(y["scenarios"], "scenarios")) {
        if (list->empty()) r.error_at(y["scenarios"], "a suite needs at least one scenario");
        for (const auto& name : *list) {
          fs::path p = name;
          if (p.is_relative()) p = fs::exists(dir / p) ? dir / p : fs::path(scenarios_dir) / p;
          if (!fs::is_regular_file(p))
            r.error_at(y["scenarios"], "scenario '" + name + "' does not exist (looked in " + dir.string() + " and " +
                                           scenarios_dir + ")");
          s.scenarios.push_back(fs::absolute(p).lexically_normal().string());
        }
      }
    if (y["repetitions"])
      if (auto v = r.integer(y["repetitions"], "repetitions")) {
        if (*v < 1 || *v > 1000) r.error_at(y["repetitions"], "'repetitions' must be between 1 and 1000");
        else s.repetitions = static_cast<int>(*v);
      }
    if (y["baseline"] && r.expect_map(y["baseline"], "baseline")) {
      const YAML::Node b = y["baseline"];
      r.check_keys(b, k_baseline_keys);
      if (b["nights"] && b["reference"])
        r.error_at(b, "the baseline is either the last 'nights' or a pinned 'reference', not both");
      if (b["nights"])
        if (auto v = r.integer(b["nights"], "nights")) {
          if (*v < 1 || *v > 100) r.error_at(b["nights"], "'nights' must be between 1 and 100");
          else s.nights = static_cast<int>(*v);
        }
      if (b["reference"])
        if (auto v = r.scalar(b["reference"], "reference")) s.reference = *v;
    }
    if (y["alert"] && r.expect_map(y["alert"], "alert")) {
      const YAML::Node a = y["alert"];
      r.check_keys(a, k_alert_keys);
      if (a["min_effect"])
        if (auto v = r.fraction(a["min_effect"], "min_effect")) {
          if (*v <= 0 || *v >= 1) r.error_at(a["min_effect"], "'min_effect' must be between 0% and 100%");
          else s.min_effect = *v;
        }
      if (a["alpha"])
        if (auto v = r.number(a["alpha"], "alpha")) {
          if (*v <= 0 || *v >= 0.5) r.error_at(a["alpha"], "'alpha' must be between 0 and 0.5");
          else s.alpha = *v;
        }
      if (a["persist"])
        if (auto v = r.integer(a["persist"], "persist")) {
          if (*v < 1 || *v > 30) r.error_at(a["persist"], "'persist' must be between 1 and 30 nights");
          else s.persist = static_cast<int>(*v);
        }
    }
  }
  out.errors = r.errors();
  if (out.errors.empty()) out.value = s;
  return out;
}

Parsed<Suite> load_suite(const std::string& path, const std::string& scenarios_dir) {
  auto text = read_file(path);
  if (!text) {
    Parsed<Suite> out;
    out.errors.push_back({path, 0, 0, "cannot read the suite file", ""});
    return out;
  }
  return parse_suite(path, *text, scenarios_dir);
}

}  // namespace kab::scenario
