// kab validate, kab plan.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/app.h"
#include "cli/parse.h"
#include "cli/runner.h"
#include "core/planner.h"

namespace kab::cli {

int cmd_validate(const std::vector<std::string>& args) {
  CLI::App app{"Check a scenario file; every error is reported at once as file:line:col.", "validate"};
  std::vector<std::string> files;
  app.add_option("scenario", files, "scenario YAML file(s)")->required();
  if (auto code = parse_args(app, args)) return *code;
  int errors = 0;
  for (const auto& f : files) {
    auto parsed = scenario::load_scenario(f, validation_context());
    if (parsed.errors.empty()) {
      auto plan = core::make_plan(*parsed.value);
      std::printf("%s: ok (%zu arms, %zu backends, %zu cells, %s%zu samples)\n", f.c_str(),
                  parsed.value->arms.size(), parsed.value->backends.size(),
                  core::expand_cells(parsed.value->fio).size(), plan.looks > 0 ? "until decided, at most " : "",
                  plan.samples.size());
    } else {
      std::fputs(scenario::format_errors(parsed.errors).c_str(), stderr);
      errors += static_cast<int>(parsed.errors.size());
    }
  }
  if (errors) {
    std::fprintf(stderr, "%d error(s)\n", errors);
    return k_exit_usage;
  }
  return k_exit_ok;
}

nlohmann::ordered_json cell_json(const core::Cell& cell) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const auto& [k, v] : cell) j[k] = v;
  return j;
}

void apply_effective(core::Scenario& s, const nlohmann::json& e) {
  s.arms.clear();
  for (const auto& a : e.at("arms"))
    s.arms.push_back({a.at("name").get<std::string>(), a.at("kernel").get<std::string>(),
                      a.at("variant").get<std::string>()});
  s.repetitions = e.at("repetitions").get<int>();
  s.seed = std::stoull(e.at("seed").get<std::string>());
  s.stop.until_decided = e.at("until_decided").get<bool>();
  s.stop.max_samples = e.at("max_samples").get<int>();
}

nlohmann::ordered_json plan_json(const core::Scenario& s, const core::Plan& plan) {
  nlohmann::ordered_json j;
  j["scenario"] = s.name;
  j["seed"] = plan.seed;
  // A sequential plan runs to the cap in looks; the run may stop after any of them.
  if (plan.looks > 0) j["sequential"] = {{"looks", plan.looks}, {"look_size", plan.look_size}};
  j["samples"] = nlohmann::ordered_json::array();
  for (const auto& p : plan.samples) {
    nlohmann::ordered_json e;
    e["index"] = p.index;
    e["arm"] = p.arm;
    e["kernel"] = p.kernel;
    if (!p.variant.empty()) e["variant"] = p.variant;
    e["backend"] = p.backend;
    e["platform"] = p.platform;
    e["cell"] = cell_json(p.cell);
    e["repetition"] = p.repetition;
    j["samples"].push_back(e);
  }
  return j;
}

int cmd_plan(const std::vector<std::string>& args) {
  CLI::App app{"Print the ordered samples a scenario expands to (cells x backends x arms x repetitions).", "plan"};
  std::string file;
  bool json = false;
  long long seed = -1;
  app.add_option("scenario", file, "scenario YAML file")->required();
  app.add_flag("--json", json, "print the plan as JSON");
  app.add_option("--seed", seed, "override the scenario's seed");
  if (auto code = parse_args(app, args)) return *code;
  core::Scenario s = load_scenario_or_exit(file);
  if (seed >= 0) s.seed = static_cast<std::uint64_t>(seed);
  core::Plan plan = core::make_plan(s);
  if (json) {
    std::cout << plan_json(s, plan).dump(2) << "\n";
    return k_exit_ok;
  }
  std::printf("scenario %s: %zu samples, seed %llu\n", s.name.c_str(), plan.samples.size(),
              static_cast<unsigned long long>(plan.seed));
  if (plan.looks > 0)
    std::printf("sampled until decided: %d looks of %d samples (one ABBA block of every cell and backend); the run "
                "stops after the first look that decides, or at these %zu\n",
                plan.looks, plan.look_size, plan.samples.size());
  std::printf("%5s  %-10s %-14s %-12s %-5s %-4s %s\n", "index", "arm", "kernel", "backend", "plat", "rep", "cell");
  for (const auto& p : plan.samples)
    std::printf("%5d  %-10s %-14s %-12s %-5s %-4d %s\n", p.index, p.arm.c_str(), p.kernel.c_str(),
                p.backend.c_str(), p.platform.c_str(), p.repetition,
                p.cell.empty() ? "-" : core::cell_label(p.cell).c_str());
  return k_exit_ok;
}

}  // namespace kab::cli
