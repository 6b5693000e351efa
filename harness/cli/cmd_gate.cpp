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
#include "cli/gate_runner.h"
#include "cli/runner.h"
#include "core/health.h"
#include "core/text.h"
#include "scenario/gate.h"
#include "store/store.h"

namespace fs = std::filesystem;

namespace kab::cli {

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
  std::string platform;
  app.add_option("--platform", platform,
                 "the guests: qemu (the definition's default) or uml (the ARCH=um build of the variant)");
  app.add_option("--db", db, "SQLite database (default results/kab.db)");
  app.add_flag("--keep", keep, "keep every sample's work directory");
  app.add_flag("--json", json, "print the result as JSON");
  if (auto code = parse_args(app, args)) return *code;

  // Everything is checked before anything is built or booted.
  auto total = core::parse_duration(time_text);
  if (!total || *total <= 0) throw Fatal("--time is not a duration: '" + time_text + "' (expected e.g. 90s, 10m)", k_exit_usage);
  if (*total > 7 * 24 * 3600) throw Fatal("--time " + time_text + " is more than a week", k_exit_usage);
  GateOptions o;
  o.kernel = kernel;
  o.variant = variant;
  o.total_s = *total;
  o.definition = definition;
  o.platform = platform;
  o.families = family_args;
  o.backends = backend_args;
  o.db = db;
  o.keep = keep;
  o.command_line = join_args("gate", args);
  const PreparedGate gate = prepare_gate(o);
  const scenario::GateRun& run = gate.run;
  const std::string platform_used = gate.scenarios.front().second.guest.platform;
  const std::string arm_text = kernel + (variant.empty() ? "" : " (" + variant + ")") +
                               (platform_used == "qemu" ? "" : " on " + platform_used);
  if (verbosity() != Verbosity::quiet)
    std::fprintf(stderr, "kab: gate %s: %d (family, backend) pairs of %zu famil%s and %zu backend%s, fio %d s each\n",
                 arm_text.c_str(), gate.cells, gate.families.size(), gate.families.size() == 1 ? "y" : "ies",
                 gate.backends.size(), gate.backends.size() == 1 ? "" : "s", run.runtime_s);
  const GateOutcome outcome = run_gate(gate);
  const auto& results = outcome.results;
  const bool interrupted = outcome.interrupted;
  const std::string& build_key = outcome.build_key;

  // The verdict, and each finding with what reruns it alone.
  auto rerun = [&](const GateSampleResult& r) {
    return gate_rerun_command(kernel, variant, r.family, r.backend, run.runtime_s, platform_used);
  };
  const int failed = outcome.failed, infra = outcome.infra;
  double fio_s = 0, total_s = 0;
  for (const auto& r : results) {
    fio_s += r.sample.fio_s;
    total_s += r.sample.total_s;
  }
  const bool passed = outcome.passed();
  // Whether reclaim ran in the guest (the pressure family is there for it):
  // pages scanned and stolen by kswapd and direct reclaim, pages reclaim wrote
  // back itself, direct-reclaim stalls — deltas over the sample's fio run.
  auto sum = [](const core::Sample& smp, const std::string& prefix) {
    double n = 0;
    for (const auto& [k, v] : smp.guest.vmstat_delta)
      if (core::starts_with(k, prefix)) n += v;
    return static_cast<long long>(n);
  };
  // The memory cgroup fio ran in (guest.memory_cgroup, the pressure
  // family): its limit, how often usage reached it, what reclaim freed in it,
  // OOM kills; null when the sample had none.
  auto memcg = [](const core::Sample& smp) -> nlohmann::ordered_json {
    const auto& vm = smp.guest.vmstat_delta;
    auto at = [&](const char* k) {
      auto it = vm.find(std::string("memcg_") + k);
      return it == vm.end() ? 0LL : static_cast<long long>(it->second);
    };
    if (!vm.count("memcg_memory.max")) return nullptr;
    return {{"limit_bytes", at("memory.max")}, {"max_events", at("max")},  {"oom_kill", at("oom_kill")},
            {"pgscan", at("pgscan")},           {"pgsteal", at("pgsteal")}, {"peak_bytes", at("peak")}};
  };
  const std::size_t runs = outcome.runs.size();
  if (json) {
    nlohmann::ordered_json j{{"kernel", kernel},       {"variant", variant},   {"platform", platform_used}, {"build_key", build_key},
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
                              {"reclaim", {{"pgscan", sum(r.sample, "pgscan_")},
                                           {"pgsteal", sum(r.sample, "pgsteal_")},
                                           {"nr_vmscan_write", sum(r.sample, "nr_vmscan_write")},
                                           {"allocstall", sum(r.sample, "allocstall_")}}},
                              {"memory_cgroup", memcg(r.sample)},
                              {"rerun", rerun(r)}});
    }
    std::cout << j.dump(2) << "\n";
  } else {
    std::printf("gate %s, build %s: fio %d s per family and backend\n", arm_text.c_str(), build_key.substr(0, 12).c_str(),
                run.runtime_s);
    std::printf("  %-10s %-10s %-9s %6s %6s %10s  %s\n", "family", "backend", "result", "fio s", "boot s",
                "reclaimed", "run");
    for (const auto& r : results)
      std::printf("  %-10s %-10s %-9s %6.1f %6.1f %10lld  %lld\n", r.family.c_str(), r.backend.c_str(),
                  r.sample.health.status == core::SampleStatus::ok ? "clean"
                                                                    : core::to_string(r.sample.health.status).c_str(),
                  r.sample.fio_s, r.sample.boot_s, sum(r.sample, "pgsteal_"), static_cast<long long>(r.run));
    std::printf("  (reclaimed: pages kswapd and direct reclaim freed in the guest while fio ran)\n");
    for (const auto& r : results)
      if (auto m = memcg(r.sample); !m.is_null())
        std::printf("  (%s on %s: fio in a memory cgroup of %lld MiB, at its limit %lld times, %lld pages reclaimed "
                    "in it, %lld OOM kills)\n",
                    r.family.c_str(), r.backend.c_str(), m["limit_bytes"].get<long long>() >> 20,
                    m["max_events"].get<long long>(), m["pgsteal"].get<long long>(), m["oom_kill"].get<long long>());
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
                results.size() == 1 ? "" : "s", runs, runs == 1 ? "" : "s", failed,
                infra ? (", " + std::to_string(infra) + " failed by the backend or hypervisor").c_str() : "", fio_s / 60,
                total_s / 60);
  }
  if (interrupted) return k_exit_interrupted;
  if (failed) return k_exit_failure;
  return passed ? k_exit_ok : k_exit_run_failed;
}

}  // namespace kab::cli
