#include "scenario/gate.h"

#include <cctype>
#include <algorithm>
#include <filesystem>

#include "scenario/yaml_reader.h"

namespace fs = std::filesystem;

namespace kab::scenario {

namespace {

const std::vector<std::string> k_gate_keys = {"families", "backends", "guest", "host_check"};
const std::vector<std::string> k_family_keys = {"job_file", "summary", "memory", "backends", "host_check",
                                                "expect_console", "memory_cgroup"};

std::string dump(const YAML::Node& n) {
  YAML::Emitter e;
  e << n;
  return e.c_str();
}

}  // namespace

Parsed<GateDefinition> parse_gate(const std::string& path, const std::string& text) {
  Parsed<GateDefinition> out;
  YamlReader r(path, text);
  GateDefinition def;
  def.path = path;
  const fs::path dir = fs::absolute(fs::path(path)).parent_path();
  if (auto root = r.load()) {
    if (!root->IsMap()) {
      r.error_at(*root, "a gate definition must be a map (families, backends, guest), got " + kind_of(*root));
    } else {
      r.check_keys(*root, k_gate_keys);
      // A job file beside the definition, resolved and required to exist.
      auto job_path = [&](const YAML::Node& node, const std::string& what) -> std::string {
        auto s = r.scalar(node, what);
        if (!s) return "";
        fs::path p = *s;
        if (p.is_relative()) p = dir / p;
        if (!fs::exists(p)) r.error_at(node, "job file '" + *s + "' does not exist (looked for " + p.string() + ")");
        return p.lexically_normal().string();
      };
      // The host check every family ends with, unless it names its own.
      std::string host_check;
      if ((*root)["host_check"]) host_check = job_path((*root)["host_check"], "host_check");
      if (r.require(*root, "families", "gate definition") && r.expect_map((*root)["families"], "families")) {
        const YAML::Node families = (*root)["families"];
        for (auto it = families.begin(); it != families.end(); ++it) {
          GateFamily f;
          f.name = it->first.Scalar();
          if (!gate_family_name_ok(f.name))
            r.error_at(it->first, "a family's name may hold letters, digits, '-' and '_', got '" + f.name + "'");
          const YAML::Node v = it->second;
          if (!r.expect_map(v, "families." + f.name)) continue;
          r.check_keys(v, k_family_keys);
          if (!r.require(v, "job_file", "family '" + f.name + "'")) continue;
          f.job_file = job_path(v["job_file"], "job_file");
          f.host_check = v["host_check"] ? job_path(v["host_check"], "host_check") : host_check;
          if (v["summary"])
            if (auto s = r.scalar(v["summary"], "summary")) f.summary = *s;
          if (v["memory"])
            if (auto s = r.scalar(v["memory"], "memory")) f.memory = *s;
          if (v["memory_cgroup"])
            if (auto s = r.scalar(v["memory_cgroup"], "memory_cgroup")) f.memory_cgroup = *s;
          if (v["expect_console"])
            if (auto s = r.scalar(v["expect_console"], "expect_console")) f.expect_console = *s;
          if (v["backends"])
            if (auto list = r.scalar_list(v["backends"], "backends")) f.backends = *list;
          def.families.push_back(f);
        }
        if (def.families.empty()) r.error_at(families, "a gate needs at least one family");
      }
      if (r.require(*root, "backends", "gate definition") && r.expect_list((*root)["backends"], "backends")) {
        for (const auto& b : (*root)["backends"]) {
          if (!b.IsMap() || !b["name"]) {
            r.error_at(b, "each backend is a map with a name (as a scenario's backends)");
            continue;
          }
          const std::string name = b["name"].Scalar();
          if (std::find(def.backends.begin(), def.backends.end(), name) != def.backends.end()) {
            r.error_at(b["name"], "duplicate backend name '" + name + "'");
            continue;
          }
          def.backends.push_back(name);
          def.backend_yaml.push_back(dump(b));
        }
      }
      if (def.backends.empty() && (*root)["backends"] && r.errors().empty())
        r.error_at((*root)["backends"], "a gate needs at least one backend");
      // A family's backends are the definition's.
      if ((*root)["families"] && (*root)["families"].IsMap())
        for (auto it = (*root)["families"].begin(); it != (*root)["families"].end(); ++it)
          if (it->second.IsMap() && it->second["backends"])
            for (const auto& b : it->second["backends"].IsSequence() ? it->second["backends"] : YAML::Node())
              if (b.IsScalar() && std::find(def.backends.begin(), def.backends.end(), b.Scalar()) == def.backends.end())
                r.error_at(b, "family '" + it->first.Scalar() + "' names backend '" + b.Scalar() +
                                  "', which the gate does not define");
      if ((*root)["guest"] && r.expect_map((*root)["guest"], "guest")) def.guest_yaml = dump((*root)["guest"]);
    }
  }
  out.errors = r.errors();
  if (out.errors.empty()) out.value = std::move(def);
  return out;
}

Parsed<GateDefinition> load_gate(const std::string& path) {
  auto text = read_file(path);
  if (!text) {
    Parsed<GateDefinition> out;
    out.errors.push_back({path, 0, 0, "cannot read gate definition", ""});
    return out;
  }
  return parse_gate(path, *text);
}

bool gate_family_name_ok(const std::string& name) {
  if (name.empty()) return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return false;
  return true;
}

std::string gate_scenario_text(const GateDefinition& def, const GateFamily& family, const GateRun& run) {
  YAML::Node root;
  root["name"] = "gate-" + family.name;
  root["description"] = "kab gate, family " + family.name + (family.summary.empty() ? "" : ": " + family.summary);
  YAML::Node arm;
  arm["kernel"] = run.kernel;
  if (!run.variant.empty()) arm["variant"] = run.variant;
  root["arms"]["gate"] = arm;
  YAML::Node backends(YAML::NodeType::Sequence);
  for (std::size_t i = 0; i < def.backends.size(); ++i)   // the definition's order
    if (std::find(run.backends.begin(), run.backends.end(), def.backends[i]) != run.backends.end())
      backends.push_back(YAML::Load(def.backend_yaml[i]));
  root["backends"] = backends;
  YAML::Node guest = def.guest_yaml.empty() ? YAML::Node(YAML::NodeType::Map) : YAML::Load(def.guest_yaml);
  if (!family.memory.empty()) guest["memory"] = family.memory;
  if (!family.expect_console.empty()) guest["expect_console"] = family.expect_console;
  if (!family.memory_cgroup.empty()) guest["memory_cgroup"] = family.memory_cgroup;
  if (!run.platform.empty()) guest["platform"] = run.platform;
  guest["timeout"] = std::to_string(run.timeout_s) + "s";
  root["guest"] = guest;
  root["fio"]["job_file"] = family.job_file;
  if (!family.host_check.empty()) root["fio"]["host_check"] = family.host_check;
  root["fio"]["override"]["runtime"] = run.runtime_s;
  root["repetitions"] = 1;
  root["seed"] = 1;
  return "# kab gate " + run.kernel + ", family " + family.name + " (" + fs::path(def.path).filename().string() + ")\n" +
         dump(root) + "\n";
}

}  // namespace kab::scenario
