#include "cli/gate_runner.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "cli/app.h"
#include "cli/runner.h"
#include "core/system.h"
#include "core/text.h"
#include "store/store.h"
#include "vm/platforms.h"

namespace fs = std::filesystem;

namespace kab::cli {

namespace {

// A list option as typed: "a,b" and repeated flags alike.
std::vector<std::string> listed(const std::vector<std::string>& values) {
  std::vector<std::string> out;
  for (const auto& v : values)
    for (const auto& item : core::split(v, ','))
      if (!core::trim(item).empty()) out.push_back(core::trim(item));
  return out;
}

// Keeps the definition's order; an unknown name is a usage error with a suggestion.
std::vector<std::string> chosen(const std::vector<std::string>& asked, const std::vector<std::string>& known,
                                const std::string& what) {
  if (asked.empty()) return known;
  for (const auto& a : asked)
    if (std::find(known.begin(), known.end(), a) == known.end()) {
      std::string msg = "unknown " + what + " '" + a + "'";
      if (auto s = core::suggest(a, known)) msg += ", did you mean '" + *s + "'?";
      std::string all;
      for (const auto& k : known) all += (all.empty() ? "" : ", ") + k;
      throw Fatal(msg + " (the gate's " + what + "s: " + all + ")", k_exit_usage);
    }
  std::vector<std::string> out;
  for (const auto& k : known)
    if (std::find(asked.begin(), asked.end(), k) != asked.end()) out.push_back(k);
  return out;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// Whether the kernel's definition turns on memory cgroups for VARIANT: a
// fragment it merges (every arch's, the variant's) sets CONFIG_MEMCG=y, or
// its base is defconfig (which has them).
bool has_memcg(const core::KernelSpec& k, const std::string& variant) {
  if (k.config_base == "defconfig") return true;
  std::vector<std::string> files = k.fragments;
  for (const auto& [arch, list] : k.arch_fragments) files.insert(files.end(), list.begin(), list.end());
  for (const auto& [v, list] : k.variants)
    if (v == variant) files.insert(files.end(), list.begin(), list.end());
  for (const auto& f : files)
    for (const auto& line : core::split(core::read_text(f), '\n'))
      if (core::trim(line) == "CONFIG_MEMCG=y") return true;
  return false;
}

}  // namespace

PreparedGate prepare_gate(const GateOptions& options) {
  PreparedGate g;
  g.options = options;
  if (g.options.definition.empty()) g.options.definition = paths().scenarios_dir + "/gate/gate.yaml";
  const std::string& definition = g.options.definition;
  const std::string& kernel = options.kernel;
  const std::string& variant = options.variant;
  if (!(options.total_s > 0)) throw Fatal("the gate's time must be more than 0 s", k_exit_usage);
  auto def = scenario::load_gate(definition);
  if (!def.value) {
    std::fputs(scenario::format_errors(def.errors).c_str(), stderr);
    throw Fatal(definition + ": " + std::to_string(def.errors.size()) + " error(s)", k_exit_usage);
  }
  auto made = options.kernels.find(kernel);
  const core::KernelSpec spec = made != options.kernels.end() ? made->second : load_kernel_or_exit(kernel);
  if (!variant.empty() &&
      std::none_of(spec.variants.begin(), spec.variants.end(), [&](const auto& v) { return v.first == variant; }))
    throw Fatal("kernel " + kernel + " has no variant '" + variant + "' (" + spec.path +
                    ": add `variants: {debug: [debug.config]}`, or --variant \"\" to gate the kernel as it is)",
                k_exit_usage);
  std::vector<std::string> family_names;
  for (const auto& f : def.value->families) family_names.push_back(f.name);
  g.families = chosen(listed(options.families), family_names, "family");
  g.backends = chosen(listed(options.backends), def.value->backends, "backend");
  // Each (family, backend) is one sample, where the family can run against
  // the backend; the time is split evenly, at least 3 s each.
  auto backends_of = [&](const scenario::GateFamily& f) {
    std::vector<std::string> out;
    for (const auto& b : g.backends)
      if (f.backends.empty() || contains(f.backends, b)) out.push_back(b);
    return out;
  };
  for (const auto& f : def.value->families)
    if (contains(g.families, f.name)) g.cells += static_cast<int>(backends_of(f).size());
  if (g.cells == 0) throw Fatal("no family of the gate runs against the backends chosen (--backend)", k_exit_usage);
  if (!options.platform.empty() && !vm::find_platform(options.platform))
    throw Fatal("unknown platform '" + options.platform + "' (qemu, uml)", k_exit_usage);
  g.run.kernel = kernel;
  g.run.variant = variant;
  g.run.platform = options.platform;
  g.run.backends = g.backends;
  g.run.runtime_s = std::max(3, static_cast<int>(std::floor(options.total_s / g.cells)));
  // The job's time-based phase, its checks (each bounded by the same runtime),
  // and a debug kernel's boot under TCG (10-25 s) with room to spare: a hang
  // (the hung-task detector reports one after 30 s) costs this much a check.
  g.run.timeout_s = 3 * g.run.runtime_s + 300;

  scenario::Context ctx = validation_context();
  ctx.min_arms = 1;
  for (const auto& [name, k] : options.kernels) ctx.kernels.push_back(name);
  const bool memcg = has_memcg(spec, variant);
  for (scenario::GateFamily f : def.value->families) {
    if (!contains(g.families, f.name)) continue;
    if (!f.memory_cgroup.empty() && !memcg) {
      // A harness requirement, not the kernel's failure: the family runs
      // without its cgroup, and says so.
      if (verbosity() != Verbosity::quiet)
        std::fprintf(stderr, "kab: gate: kernel %s%s does not turn on CONFIG_MEMCG: family %s runs without its memory "
                             "cgroup\n",
                     kernel.c_str(), variant.empty() ? "" : (" (" + variant + ")").c_str(), f.name.c_str());
      f.memory_cgroup.clear();
    }
    scenario::GateRun family_run = g.run;
    family_run.backends = backends_of(f);
    if (family_run.backends.empty()) {
      if (verbosity() != Verbosity::quiet)
        std::fprintf(stderr, "kab: gate: family %s does not run against the backends chosen; skipped\n", f.name.c_str());
      continue;
    }
    const std::string text = scenario::gate_scenario_text(*def.value, f, family_run);
    const std::string where = (fs::path(definition).parent_path() / ("gate-" + f.name + ".yaml")).string();
    auto parsed = scenario::parse_scenario(where, text, ctx);
    if (!parsed.value) {
      std::fputs(scenario::format_errors(parsed.errors).c_str(), stderr);
      throw Fatal("the gate's family " + f.name + " does not make a valid scenario (" + definition + ")", k_exit_usage);
    }
    g.scenarios.emplace_back(f.name, std::move(*parsed.value));
  }
  return g;
}

bool failed_by_platform(const core::Sample& s) {
  return s.health.status != core::SampleStatus::ok && s.health.failed_by == core::FailedBy::platform;
}

GateOutcome run_gate(const PreparedGate& g) {
  GateOutcome out;
  for (const auto& [family, s] : g.scenarios) {
    RunRequest rq;
    rq.scenario = s;
    rq.scenario_path = s.path;
    rq.db_path = g.options.db;
    rq.keep_work = g.options.keep;
    rq.command_line = g.options.command_line + "  # gate " + g.options.kernel + ", family " + family;
    rq.kernels = g.options.kernels;
    rq.kernels_made = false;   // (a gate run is not bundled on its own)
    // What a report needs to show the check and rerun it.
    rq.run_extra = {{"gate.kernel", g.options.kernel},
                    {"gate.variant", g.options.variant},
                    {"gate.family", family},
                    {"gate.runtime_s", std::to_string(g.run.runtime_s)},
                    {"gate.platform", s.guest.platform}};
    const core::RunOutcome r = execute_run(rq);
    out.runs.push_back(r.run_id);
    for (auto& smp : store::ResultStore::open(g.options.db).samples(r.run_id, store::WithArtifacts::yes)) {
      if (out.build_key.empty()) out.build_key = smp.kernel_build_key;
      if (smp.health.status != core::SampleStatus::ok) (failed_by_platform(smp) ? out.infra : out.failed) += 1;
      out.results.push_back({family, smp.backend, r.run_id, std::move(smp)});
    }
    if (r.interrupted) {
      out.interrupted = true;
      break;
    }
  }
  return out;
}

std::string gate_rerun_command(const std::string& kernel, const std::string& variant, const std::string& family,
                               const std::string& backend, int runtime_s, const std::string& platform) {
  return "kab gate " + kernel + (variant == "debug" ? "" : " --variant \"" + variant + "\"") +
         (platform.empty() || platform == "qemu" ? "" : " --platform " + platform) + " --family " + family +
         " --backend " + backend + " --time " + std::to_string(runtime_s) + "s";
}

core::GateResult gate_result(store::ResultStore& db, const std::vector<std::int64_t>& runs, const std::string& arm) {
  core::GateResult g;
  g.arm = arm;
  for (auto id : runs) {
    auto r = db.run(id);
    if (!r) continue;
    auto fact = [&](const std::string& k) {
      auto it = r->info.extra.find(k);
      return it == r->info.extra.end() ? std::string() : it->second;
    };
    std::string family = fact("gate.family");
    if (family.empty()) family = core::starts_with(r->info.scenario_name, "gate-") ? r->info.scenario_name.substr(5)
                                                                                  : r->info.scenario_name;
    const std::string runtime = fact("gate.runtime_s");
    for (const auto& smp : db.samples(id, store::WithArtifacts::no)) {
      if (g.kernel.empty()) {
        g.kernel = smp.kernel;
        g.variant = smp.variant;
        g.build_key = smp.kernel_build_key;
      }
      core::GateCheck c;
      c.family = family;
      c.backend = smp.backend;
      c.status = core::to_string(smp.health.status);
      if (smp.health.status != core::SampleStatus::ok) c.reason = smp.health.reason;
      // The console's first finding, as the run stored it (a failed sample's
      // findings end with its console's tail, which is not one).
      if (!smp.health.findings.empty() && !core::starts_with(smp.health.findings.front(), "console tail:"))
        c.finding = core::trim(smp.health.findings.front());
      c.run = id;
      c.fio_s = smp.fio_s;
      if (!runtime.empty())
        c.rerun = gate_rerun_command(smp.kernel, smp.variant, family, smp.backend, std::stoi(runtime),
                                     fact("gate.platform"));
      g.checks.push_back(c);
    }
  }
  return g;
}

}  // namespace kab::cli
