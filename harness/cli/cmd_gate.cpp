// kab gate: the correctness gate. Every family of scenarios/gate/gate.yaml
// runs against every chosen backend on the kernel's debug variant, each family
// as a one-arm scenario through the same run path as a measurement (so its
// samples, consoles and findings are stored like any other); any sample that
// is not ok — a kernel finding, a failed verify, a crash, a hang — fails it.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>

#include "cli/app.h"
#include "cli/parse.h"
#include "cli/runner.h"
#include "core/health.h"
#include "core/text.h"
#include "scenario/gate.h"
#include "store/store.h"

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

struct Result {
  std::string family, backend;
  std::int64_t run = 0;
  core::Sample sample;
};

}  // namespace

int cmd_gate(const std::vector<std::string>& args) {
  CLI::App app{"Run the correctness gate: stress families against the share on the kernel's debug variant. "
               "Exit 0 clean, 1 a finding (kernel report, failed verify, crash or hang), 2 usage, 3 could not run "
               "(a build, or a sample failed by its backend or the hypervisor).",
               "gate"};
  std::string kernel, variant = "debug", time_text = "10m", definition = paths().scenarios_dir + "/gate/gate.yaml";
  std::string db = paths().default_db;
  std::vector<std::string> backend_args, family_args;
  bool json = false, keep = false;
  app.add_option("kernel", kernel, "kernel definition (kernels/NAME.yaml)")->required();
  app.add_option("--variant", variant, "the variant to boot (default debug; \"\" for the kernel as defined)");
  app.add_option("--time", time_text, "fio running time shared by every family and backend (default 10m)");
  app.add_option("--backend", backend_args, "backends to run against, comma-separated (default: all in the definition)");
  app.add_option("--family", family_args, "families to run, comma-separated (default: all)");
  app.add_option("--definition", definition, "the gate definition (default scenarios/gate/gate.yaml)");
  app.add_option("--db", db, "SQLite database (default results/kab.db)");
  app.add_flag("--keep", keep, "keep every sample's work directory");
  app.add_flag("--json", json, "print the result as JSON");
  if (auto code = parse_args(app, args)) return *code;

  // Everything is checked before anything is built or booted.
  auto total = core::parse_duration(time_text);
  if (!total || *total <= 0) throw Fatal("--time is not a duration: '" + time_text + "' (expected e.g. 90s, 10m)", k_exit_usage);
  if (*total > 7 * 24 * 3600) throw Fatal("--time " + time_text + " is more than a week", k_exit_usage);
  auto def = scenario::load_gate(definition);
  if (!def.value) {
    std::fputs(scenario::format_errors(def.errors).c_str(), stderr);
    throw Fatal(definition + ": " + std::to_string(def.errors.size()) + " error(s)", k_exit_usage);
  }
  const core::KernelSpec spec = load_kernel_or_exit(kernel);
  if (!variant.empty() &&
      std::none_of(spec.variants.begin(), spec.variants.end(), [&](const auto& v) { return v.first == variant; }))
    throw Fatal("kernel " + kernel + " has no variant '" + variant + "' (" + spec.path +
                    ": add `variants: {debug: [debug.config]}`, or --variant \"\" to gate the kernel as it is)",
                k_exit_usage);
  std::vector<std::string> family_names;
  for (const auto& f : def.value->families) family_names.push_back(f.name);
  const auto families = chosen(listed(family_args), family_names, "family");
  const auto backends = chosen(listed(backend_args), def.value->backends, "backend");
  // Each (family, backend) is one sample, where the family can run against
  // the backend; the time is split evenly, at least 3 s each.
  auto backends_of = [&](const scenario::GateFamily& f) {
    std::vector<std::string> out;
    for (const auto& b : backends)
      if (f.backends.empty() || std::find(f.backends.begin(), f.backends.end(), b) != f.backends.end()) out.push_back(b);
    return out;
  };
  int cells = 0;
  for (const auto& f : def.value->families)
    if (std::find(families.begin(), families.end(), f.name) != families.end()) cells += static_cast<int>(backends_of(f).size());
  if (cells == 0) throw Fatal("no family of the gate runs against the backends chosen (--backend)", k_exit_usage);
  scenario::GateRun run;
  run.kernel = kernel;
  run.variant = variant;
  run.backends = backends;
  run.runtime_s = std::max(3, static_cast<int>(std::floor(*total / cells)));
  // The job's time-based phase, its checks (each bounded by the same runtime),
  // and a debug kernel's boot under TCG.
  run.timeout_s = 3 * run.runtime_s + 600;

  scenario::Context ctx = validation_context();
  ctx.min_arms = 1;
  std::vector<std::pair<const scenario::GateFamily*, core::Scenario>> scenarios;
  for (const auto& f : def.value->families) {
    if (std::find(families.begin(), families.end(), f.name) == families.end()) continue;
    scenario::GateRun family_run = run;
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
    scenarios.emplace_back(&f, std::move(*parsed.value));
  }

  const std::string arm_text = kernel + (variant.empty() ? "" : " (" + variant + ")");
  if (verbosity() != Verbosity::quiet)
    std::fprintf(stderr, "kab: gate %s: %d (family, backend) pairs of %zu famil%s and %zu backend%s, fio %d s each\n",
                 arm_text.c_str(), cells, families.size(), families.size() == 1 ? "y" : "ies", backends.size(),
                 backends.size() == 1 ? "" : "s", run.runtime_s);
  std::vector<Result> results;
  bool interrupted = false;
  std::string build_key;
  for (auto& [family, s] : scenarios) {
    RunRequest rq;
    rq.scenario = s;
    rq.scenario_path = s.path;
    rq.db_path = db;
    rq.keep_work = keep;
    rq.command_line = join_args("gate", args) + "  # family " + family->name;
    const core::RunOutcome out = execute_run(rq);
    for (auto& smp : store::ResultStore::open(db).samples(out.run_id, store::WithArtifacts::yes)) {
      if (build_key.empty()) build_key = smp.kernel_build_key;
      results.push_back({family->name, smp.backend, out.run_id, std::move(smp)});
    }
    if (out.interrupted) {
      interrupted = true;
      break;
    }
  }

  // The verdict, and each finding with what reruns it alone.
  auto rerun = [&](const Result& r) {
    return "kab gate " + kernel + (variant == "debug" ? "" : " --variant \"" + variant + "\"") + " --family " + r.family +
           " --backend " + r.backend + " --time " + std::to_string(run.runtime_s) + "s";
  };
  // A sample the platform failed (a backend that did not start or died, the
  // hypervisor) says nothing of the kernel: the gate could not run (exit 3).
  auto infrastructure = [](const core::Sample& smp) {
    const std::string& why = smp.health.reason;
    return smp.health.status == core::SampleStatus::failed &&
           (core::starts_with(why, "backend did not start") || core::starts_with(why, "hypervisor: ") ||
            core::starts_with(why, "the backend died"));
  };
  int failed = 0, infra = 0;
  double fio_s = 0, total_s = 0;
  std::set<std::int64_t> runs;
  for (const auto& r : results) {
    if (r.sample.health.status != core::SampleStatus::ok) (infrastructure(r.sample) ? infra : failed) += 1;
    fio_s += r.sample.fio_s;
    total_s += r.sample.total_s;
    runs.insert(r.run);
  }
  const bool passed = !interrupted && failed == 0 && infra == 0 && !results.empty();
  if (json) {
    nlohmann::ordered_json j{{"kernel", kernel},       {"variant", variant},   {"build_key", build_key},
                             {"runtime_s", run.runtime_s}, {"passed", passed}, {"interrupted", interrupted},
                             {"fio_s", fio_s},         {"total_s", total_s}, {"results", nlohmann::ordered_json::array()}};
    for (const auto& r : results) {
      const core::ConsoleExcerpt ex = core::console_excerpt(r.sample.console_log, 12);
      j["results"].push_back({{"family", r.family},
                              {"backend", r.backend},
                              {"run", r.run},
                              {"status", core::to_string(r.sample.health.status)},
                              {"reason", r.sample.health.reason},
                              // what the kernel reported (the stored findings of a failed
                              // sample also hold its console's tail)
                              {"findings", core::console_findings(r.sample.console_log)},
                              {"console", r.sample.health.status == core::SampleStatus::ok ? std::vector<std::string>{}
                                                                                          : ex.lines},
                              {"fio_s", r.sample.fio_s},
                              {"boot_s", r.sample.boot_s},
                              {"rerun", rerun(r)}});
    }
    std::cout << j.dump(2) << "\n";
  } else {
    std::printf("gate %s, build %s: fio %d s per family and backend\n", arm_text.c_str(), build_key.substr(0, 12).c_str(),
                run.runtime_s);
    std::printf("  %-10s %-10s %-9s %6s %6s  %s\n", "family", "backend", "result", "fio s", "boot s", "run");
    for (const auto& r : results)
      std::printf("  %-10s %-10s %-9s %6.1f %6.1f  %lld\n", r.family.c_str(), r.backend.c_str(),
                  r.sample.health.status == core::SampleStatus::ok ? "clean"
                                                                    : core::to_string(r.sample.health.status).c_str(),
                  r.sample.fio_s, r.sample.boot_s, static_cast<long long>(r.run));
    for (const auto& r : results) {
      if (r.sample.health.status == core::SampleStatus::ok) continue;
      std::printf("\n%s on %s (run %lld): %s\n", r.family.c_str(), r.backend.c_str(), static_cast<long long>(r.run),
                  r.sample.health.reason.c_str());
      const core::ConsoleExcerpt ex = core::console_excerpt(r.sample.console_log, 12);
      if (ex.from_finding)
        for (const auto& l : ex.lines) std::printf("  | %s\n", core::trim(l).c_str());
      std::printf("  rerun: %s\n", rerun(r).c_str());
    }
    std::printf("\ngate: %s — %zu sample%s in %zu run%s, %d not clean%s; %.1f min of fio, %.1f min in all\n",
                interrupted ? "INTERRUPTED" : passed ? "clean" : failed ? "FAILED" : "COULD NOT RUN", results.size(),
                results.size() == 1 ? "" : "s", runs.size(), runs.size() == 1 ? "" : "s", failed,
                infra ? (", " + std::to_string(infra) + " failed by the backend or hypervisor").c_str() : "", fio_s / 60,
                total_s / 60);
  }
  if (interrupted) return k_exit_interrupted;
  if (failed) return k_exit_failure;
  return passed ? k_exit_ok : k_exit_run_failed;
}

}  // namespace kab::cli
