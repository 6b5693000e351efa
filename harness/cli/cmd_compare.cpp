// kab compare, kab report
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>

#include "cli/app.h"
#include "cli/parse.h"
#include "cli/bundle.h"
#include "cli/reporting.h"
#include "cli/gate_runner.h"
#include "cli/runner.h"
#include "host/environment.h"
#include "core/analyzer.h"
#include "core/fio_job.h"
#include "core/orchestrator.h"
#include "core/system.h"
#include "core/text.h"
#include "kernel/git_source.h"
#include "proc/runner.h"
#include "report/format.h"
#include "report/formats.h"

namespace fs = std::filesystem;

namespace kab::cli {

namespace {


// kab compare --tree DIR --base REF (--candidate REF | --candidate-series MBOX):
// two kernel definitions of the tree with the stock definition's config. A
// candidate that descends from the base is built as the commits between
// them, on the base, in its lane: only what they touch recompiles. Every ref
// is checked here, before anything is built.
void tree_arms(const std::string& tree_arg, const std::string& base, const std::string& candidate,
               const std::string& series, RunRequest& rq) {
  if (base.empty()) throw Fatal("--tree needs --base: the ref the comparison starts from (a tag, branch, commit)", k_exit_usage);
  if (candidate.empty() == series.empty())
    throw Fatal("--tree needs one of --candidate REF and --candidate-series MBOX", k_exit_usage);
  const std::string tree = fs::absolute(tree_arg).lexically_normal().string();
  if (!fs::is_directory(fs::path(tree) / ".git")) throw Fatal("--tree " + tree_arg + " is not a git repository", k_exit_usage);
  core::KernelSpec config = load_kernel_or_exit("stock-6.1");
  auto commit_of = [&](const std::string& option, const std::string& ref) {
    try {
      return kernel::git_commit(tree, ref);
    } catch (const kernel::BuildError& e) {
      throw Fatal(option + " " + ref + ": " + e.what(), k_exit_usage);
    }
  };
  if (base == "WORKTREE") throw Fatal("--base WORKTREE: the base is a commit; the work tree can be the candidate", k_exit_usage);
  commit_of("--base", base);
  core::KernelSpec b = tree_kernel(tree, config, ref_name(base), base, "", base).spec, c;
  if (!series.empty()) {
    c = b;
    c.series = fs::absolute(series).lexically_normal().string();
    if (!fs::is_regular_file(c.series)) throw Fatal("--candidate-series " + series + " does not exist", k_exit_usage);
    c.name = b.name + "+" + ref_name(fs::path(series).stem().string());
  } else {
    if (candidate != "WORKTREE") commit_of("--candidate", candidate);
    // A candidate that descends from the base: the commits between them, in the base's lane.
    c = tree_kernel(tree, config, ref_name(candidate), candidate, base, base).spec;
  }
  if (c.name == b.name) c.name += "-candidate";
  rq.kernels[b.name] = b;
  rq.kernels[c.name] = c;
  rq.scenario.arms = {core::Arm{"base", b.name, ""}, core::Arm{"candidate", c.name, ""}};
}


}  // namespace

int cmd_compare(const std::vector<std::string>& args) {
  CLI::App app{"Build two kernels, run the scenario's matrix interleaved, analyse, report.", "compare"};
  std::string base, candidate, scenario_path = paths().scenarios_dir + "/rfc-writeback.yaml";
  std::string db_path = paths().default_db;
  int reps = 0, replicates = 1, max_samples = 0;
  bool until_decided = false;
  Output out;
  app.add_option("--replicate", replicates,
                 "run the comparison N times with fresh plan seeds and say whether the replicates agree")
      ->check(CLI::Range(1, 10));
  std::string tree, candidate_series;
  app.add_option("--base", base, "base kernel definition (default: the scenario's first arm); with --tree a ref of the tree");
  app.add_option("--candidate", candidate,
                 "candidate kernel definition (default: the scenario's second arm); with --tree a ref of the tree "
                 "(or WORKTREE: the tree as it is on disk)");
  app.add_option("--tree", tree,
                 "a git repository: --base and --candidate are its refs, built with the guest config of "
                 "kernels/stock-6.1.yaml, without a kernel definition to write; with --bundle, a clone that holds "
                 "the commits the bundle's git kernels build on");
  app.add_option("--candidate-series", candidate_series,
                 "with --tree: the candidate is --base plus this mbox (git format-patch, b4 am)");
  auto* scenario_opt = app.add_option("--scenario", scenario_path, "scenario file (default scenarios/rfc-writeback.yaml)");
  std::string bundle;
  auto* bundle_opt = app.add_option("--bundle", bundle,
                                    "rerun the comparison a bundle holds (kab bundle, or the one kab compare writes "
                                    "into --out): its scenario, kernels and plan, and its gate when it ran one; says "
                                    "which environment facts differ");
  auto* reps_opt = app.add_option("--repetitions", reps, "override the scenario's repetitions");
  app.add_flag("--until-decided", until_decided,
               "sample in ABBA blocks until the primary metric is decided (a group-sequential design), up to "
               "--max-samples per arm")
      ->excludes(reps_opt);
  app.add_option("--max-samples", max_samples,
                 "with --until-decided (or the scenario's stop): the cap per arm, cell and backend (even; default 40)")
      ->check(CLI::Range(4, 1000))
      ->excludes(reps_opt);
  bool gate = false;
  std::string gate_time = "10m";
  std::vector<std::string> gate_families, gate_backends;
  app.add_flag("--gate", gate,
               "first run the correctness gate (kab gate) on both kernels' debug variants; a candidate that fails it "
               "while the base passes makes the verdict \"correctness failure\" (exit 1)");
  app.add_option("--gate-time", gate_time, "with --gate: fio time of each kernel's gate (default 10m)");
  app.add_option("--gate-family", gate_families, "with --gate: the gate's families, comma-separated (default: all)");
  app.add_option("--gate-backend", gate_backends, "with --gate: the gate's backends, comma-separated (default: all)");
  app.add_option("--db", db_path, "SQLite database (default results/kab.db)");
  app.add_option("--format", out.format, report::format_list())->check(CLI::IsMember(report::format_names()));
  app.add_option("--out", out.out_dir, "also write every format into this directory");
  bundle_opt->excludes(scenario_opt)->excludes(reps_opt);
  if (auto code = parse_args(app, args)) return *code;
  if (!bundle.empty() && (!base.empty() || !candidate.empty() || !candidate_series.empty() || until_decided ||
                          max_samples > 0 || replicates > 1))
    throw Fatal("--bundle reruns the comparison it holds: its kernels, scenario and plan (drop --base, --candidate, "
                "--candidate-series, --until-decided, --max-samples, --replicate)",
                k_exit_usage);
  if (!gate && bundle.empty() && (gate_time != "10m" || !gate_families.empty() || !gate_backends.empty()))
    throw Fatal("--gate-time, --gate-family and --gate-backend set up the gate: add --gate", k_exit_usage);

  RunRequest rq;
  rq.db_path = db_path;
  rq.command_line = join_args("compare", args);
  ReportExtras extras;
  // A bundle: extracted beside nothing of the user's, removed at the end.
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code ec;
      if (!dir.empty()) fs::remove_all(dir, ec);
    }
  } bundle_dir;
  std::optional<OpenedBundle> opened;
  if (!bundle.empty()) {
    char tmpl[] = "/tmp/kab-rerun-XXXXXX";
    if (!::mkdtemp(tmpl)) throw Fatal("cannot make a temporary directory in /tmp");
    bundle_dir.dir = tmpl;
    opened = open_bundle(bundle, bundle_dir.dir, tree);
    rq.scenario = opened->scenario;
    rq.scenario_path = opened->dir + "/scenario.yaml";
    rq.kernels = opened->kernels;
    rq.kernels_made = false;
    std::fprintf(stderr, "kab: bundle of run %lld (%s, %s): the same plan, %zu samples\n",
                 opened->manifest["run"].get<long long>(), opened->manifest["scenario"].get<std::string>().c_str(),
                 opened->manifest["created_at"].get<std::string>().c_str(), opened->planned);
    extras.facts.push_back({"rerun of", "run " + std::to_string(opened->manifest["run"].get<long long>()) + " (" +
                                            opened->manifest["created_at"].get<std::string>() + ") from " +
                                            fs::path(bundle).filename().string() + ", the same plan"});
  } else {
    rq.scenario_path = scenario_path;
    rq.scenario = load_scenario_or_exit(scenario_path);
  }
  core::Scenario& s = rq.scenario;
  if (reps > 0) {
    s.repetitions = reps;
    s.stop.until_decided = false;
  }
  if (until_decided) s.stop.until_decided = true;
  if (max_samples > 0) {
    if (!s.stop.until_decided)
      throw Fatal("--max-samples caps a run sampled until decided: add --until-decided (or stop: {until_decided: "
                  "true} in the scenario)", k_exit_usage);
    if (max_samples % 2 != 0)
      throw Fatal("--max-samples must be even (whole ABBA blocks of 2 samples per arm), got " +
                  std::to_string(max_samples), k_exit_usage);
    s.stop.max_samples = max_samples;
  }
  if (s.stop.until_decided && s.arms.size() != 2)
    throw Fatal("sampling until decided compares two arms; the scenario has " + std::to_string(s.arms.size()) +
                    " (choose them with --base and --candidate)",
                k_exit_usage);
  // The arms: from a git tree (kernel definitions made here), the scenario's,
  // or base/candidate as given (named after the scenario arm that uses the
  // kernel, else after the kernel).
  if (!tree.empty() && !opened) {
    tree_arms(tree, base, candidate, candidate_series, rq);
  } else if (!candidate_series.empty()) {
    throw Fatal("--candidate-series is the series on --tree's --base: add --tree", k_exit_usage);
  } else if (!base.empty() || !candidate.empty()) {
    if (base.empty()) base = s.arms[0].kernel;
    if (candidate.empty()) candidate = s.arms.size() > 1 ? s.arms[1].kernel : base;
    auto known = scenario::list_kernel_names(paths().kernels_dir);
    for (const auto& k : {base, candidate}) load_kernel_or_exit(k);
    auto arm_name = [&](const std::string& kernel, const std::string& fallback) {
      for (const auto& a : s.arms)
        if (a.kernel == kernel) return a.name;
      return fallback.empty() ? kernel : fallback;
    };
    core::Arm a{arm_name(base, ""), base, ""}, b{arm_name(candidate, ""), candidate, ""};
    if (a.name == b.name) {
      a.name = "A";
      b.name = "B";
    }
    s.arms = {a, b};
  }
  // The gate of each arm's kernel: both checked before anything is built or
  // booted, then run (base first) before the measurement, whose runs name them.
  std::vector<std::pair<std::string, PreparedGate>> gates;
  if (opened && !opened->gates.empty()) {
    // A bundle of a gated comparison: its gate runs again as it ran.
    if (gate_time != "10m" || !gate_families.empty() || !gate_backends.empty())
      throw Fatal("the bundle holds the gate its comparison ran, which reruns as it ran (drop --gate-time, "
                  "--gate-family and --gate-backend)",
                  k_exit_usage);
    for (const auto& bg : opened->gates) {
      PreparedGate g;
      g.options.kernel = bg.kernel;
      g.options.variant = bg.variant;
      g.options.db = db_path;
      g.options.command_line = rq.command_line;
      g.options.kernels = rq.kernels;
      g.options.total_s = static_cast<double>(bg.runtime_s) * bg.cells;
      g.run.kernel = bg.kernel;
      g.run.variant = bg.variant;
      g.run.runtime_s = bg.runtime_s;
      g.cells = bg.cells;
      g.scenarios = bg.scenarios;
      for (const auto& [family, sc] : bg.scenarios) g.families.push_back(family);
      gates.emplace_back(bg.arm, g);
    }
  } else if (!gate && (gate_time != "10m" || !gate_families.empty() || !gate_backends.empty())) {
    throw Fatal("--gate-time, --gate-family and --gate-backend set up the gate: add --gate", k_exit_usage);
  } else if (gate) {
    auto total = core::parse_duration(gate_time);
    if (!total || *total <= 0)
      throw Fatal("--gate-time is not a duration: '" + gate_time + "' (expected e.g. 90s, 10m)", k_exit_usage);
    for (const auto& arm : s.arms) {
      GateOptions o;
      o.kernel = arm.kernel;
      o.platform = s.guest.platform;   // the kernels measured are the ones checked (ARCH=um under UML)
      o.total_s = *total;
      o.families = gate_families;
      o.backends = gate_backends;
      o.db = db_path;
      o.command_line = rq.command_line;
      o.kernels = rq.kernels;
      gates.emplace_back(arm.name, prepare_gate(o));
    }
  }
  std::map<std::string, std::string> gated;   // kernel → its gate runs, "4,5,6"
  for (const auto& [arm, g] : gates) {
    if (!gated.count(g.options.kernel)) {
      if (verbosity() != Verbosity::quiet)
        std::fprintf(stderr, "kab: gate of %s (%s, debug): %d (family, backend) pairs, fio %d s each\n", arm.c_str(),
                     g.options.kernel.c_str(), g.cells, g.run.runtime_s);
      const GateOutcome o = run_gate(g);
      if (o.interrupted) return k_exit_interrupted;
      std::string ids;
      for (auto id : o.runs) ids += (ids.empty() ? "" : ",") + std::to_string(id);
      for (const auto& r : o.results)
        if (failed_by_platform(r.sample))
          throw Fatal("the gate of " + g.options.kernel + " could not run: " + r.family + " on " + r.backend + ": " +
                          r.sample.health.reason + " (kab show " + std::to_string(r.run) + ")",
                      k_exit_run_failed);
      std::fprintf(stderr, "kab: gate of %s (%s): %s%zu check%s in run%s %s\n", arm.c_str(), g.options.kernel.c_str(),
                   o.passed() ? "clean, " : ("FAILED " + std::to_string(o.failed) + " of ").c_str(), o.results.size(),
                   o.results.size() == 1 ? "" : "s", o.runs.size() == 1 ? "" : "s", ids.c_str());
      gated[g.options.kernel] = ids;
    }
    rq.run_extra["gate.of." + arm] = gated[g.options.kernel];
  }
  if (!out.out_dir.empty()) fs::create_directories(out.out_dir);
  // Each replicate is a run of its own, with the next plan seed: another order
  // of the same samples, so its verdict is an independent look at the question.
  std::vector<std::int64_t> run_ids;
  const std::uint64_t first_seed = s.seed;
  for (int k = 0; k < replicates; ++k) {
    s.seed = first_seed + static_cast<std::uint64_t>(k);
    core::RunOutcome r = execute_run(rq);
    std::fprintf(stderr, "kab: run %lld stored %d samples (%d not ok)\n", static_cast<long long>(r.run_id), r.stored,
                 r.not_ok);
    if (r.looks > 0 && !r.interrupted)
      std::fprintf(stderr, "kab: run %lld sampled until decided: %s at look %d of %d (%s)\n",
                   static_cast<long long>(r.run_id), core::to_string(r.verdict).c_str(), r.look, r.looks,
                   r.decided ? "decided before the cap" : "the cap");
    if (r.interrupted) {
      if (bundle.empty() && tree.empty())   // (kernels made from a tree are not in kernels/)
        std::fprintf(stderr, "kab: run %lld interrupted; kab run %s --db %s --resume %lld continues it as planned\n",
                     static_cast<long long>(r.run_id), scenario_path.c_str(), db_path.c_str(),
                     static_cast<long long>(r.run_id));
      return k_exit_interrupted;
    }
    if (auto failed = arms_without_ok_sample(db_path, r.run_id, s); !failed.empty())
      throw Fatal(no_ok_sample_message(r.run_id, failed), k_exit_run_failed);
    run_ids.push_back(r.run_id);
  }
  s.seed = first_seed;
  store::ResultStore db = store::ResultStore::open(db_path);
  if (replicates > 1) {
    // Each replicate's verdict and primary change, then whether they agree.
    std::string verdicts;
    bool agree = true;
    core::Verdict first = core::Verdict::inconclusive;
    for (std::size_t i = 0; i < run_ids.size(); ++i) {
      core::Comparison one = analyse(db, {run_ids[i]}, s, s.arms[0].name, s.arms[1].name);
      if (i == 0) first = one.verdict;
      agree &= one.verdict == first;
      std::string change;
      for (const auto& cell : one.cells)
        for (const auto& m : cell.metrics)
          if (m.primary && change.empty()) {
            char buf[32];
            std::snprintf(buf, sizeof buf, " %+.1f%%", m.change * 100);
            change = std::string(" (") + core::metric_info(m.metric).label + buf + ")";
          }
      verdicts += (i ? ", " : "") + std::string("run ") + std::to_string(run_ids[i]) + " " +
                  core::to_string(one.verdict) + change;
    }
    std::fprintf(stderr, "kab: replicates: %s: they %s\n", verdicts.c_str(),
                 agree ? "agree" : "disagree (kab report of the runs lists the environment facts that differ)");
  }
  if (out.out_dir.empty()) out.out_dir = paths().root + "/results/compare-" + std::to_string(run_ids.back());
  // A rerun's environment as its run recorded it, against the bundle's.
  if (opened)
    if (auto rerun = db.run(run_ids.front())) {
      const auto differ = bundle_differences(opened->manifest, rerun->info);
      std::string list;
      for (const auto& d : differ) list += (list.empty() ? "" : "; ") + d;
      std::fprintf(stderr, "kab: bundle: %s\n",
                   differ.empty() ? "the environment facts are the same here" : ("this host differs in " + list).c_str());
      if (!differ.empty())
        extras.warnings.push_back({"bundle_environment", "this rerun's host differs from the bundle's in " + list});
    }
  // A rerun builds what the bundle's run built: the same final .config.
  if (opened)
    for (const auto& k : opened->manifest["kernels"])
      for (const auto& smp : db.samples(run_ids.front(), store::WithArtifacts::no)) {
        if (smp.arm != k["arm"]) continue;
        if (auto rec = db.kernel(smp.kernel_build_key); rec && rec->config_hash != k["config_hash"])
          extras.warnings.push_back({"bundle_config", "arm " + smp.arm + "'s kernel was built with another .config "
                                                      "than the bundle's (" + rec->config_hash.substr(0, 12) + " here, " +
                                                      k["config_hash"].get<std::string>().substr(0, 12) +
                                                      " there; the bundle's is built/" + smp.arm + ".config)"});
        break;
      }
  // The recipe is the bundle beside the reports, not paths of this machine.
  std::string recipe = rq.command_line;
  if (replicates == 1) {
    const std::string name = "kab-bundle-run" + std::to_string(run_ids.front()) + ".tar.gz";
    try {
      write_bundle(db, run_ids.front(), (fs::path(out.out_dir) / name).string(), rq.kernels,
                   opened ? opened->dir + "/kernels" : paths().kernels_dir, kernel::Builder(kernel_options()));
      recipe = "kab compare --bundle " + name;   // (with the gate, when one ran)
      extras.facts.push_back({"made with", rq.command_line});
    } catch (const std::exception& e) {   // the measurement is stored and reported all the same
      std::fprintf(stderr, "kab: no bundle of run %lld: %s\n", static_cast<long long>(run_ids.front()), e.what());
    }
  }
  return analyse_and_report(db, run_ids, s, s.arms[0].name, s.arms[1].name, out, recipe, extras);
}

int cmd_report(const std::vector<std::string>& args) {
  CLI::App app{"Analyse stored samples without running anything (also across runs).", "report"};
  std::vector<long long> runs;
  std::string base, candidate, db_path = paths().default_db;
  Output out;
  app.add_option("run", runs, "run id(s); samples of all of them are pooled")->required();
  app.add_option("--base", base, "base arm (default: the run's first arm)");
  app.add_option("--candidate", candidate, "candidate arm (default: the run's second arm)");
  app.add_option("--db", db_path, "SQLite database (default results/kab.db)");
  app.add_option("--format", out.format, report::format_list())->check(CLI::IsMember(report::format_names()));
  app.add_option("--out", out.out_dir, "also write every format into this directory");
  if (auto code = parse_args(app, args)) return *code;
  store::ResultStore db = store::ResultStore::open(db_path);
  std::vector<std::int64_t> ids(runs.begin(), runs.end());
  auto first = db.run(ids.front());
  for (auto id : ids)
    if (!db.run(id)) throw Fatal("no run " + std::to_string(id) + " in " + db_path, k_exit_usage);
  // The scenario as it was run (its text is stored with the run); kernels
  // and fio options are not re-checked against today's files.
  scenario::Context as_run;
  as_run.read_job_file = stored_job_files(*first);
  as_run.min_arms = 1;   // a gate run's scenario has one; said below
  auto parsed = scenario::parse_scenario(first->info.scenario_name + " (run " + std::to_string(ids.front()) + ")",
                                         first->info.scenario_text, as_run);
  if (!parsed.value) throw Fatal("the scenario stored with run " + std::to_string(ids.front()) + " does not parse",
                                 k_exit_run_failed);
  core::Scenario s = *parsed.value;
  if (s.arms.size() < 2)
    throw Fatal("run " + std::to_string(ids.front()) + " ran one kernel (" + s.name +
                    ", a kab gate run): there is nothing to compare; kab show " + std::to_string(ids.front()) +
                    " lists its samples",
                k_exit_usage);
  if (base.empty() || candidate.empty()) {
    // Arms in order of appearance in the samples.
    std::vector<std::string> arms;
    for (auto id : ids)
      for (const auto& smp : db.samples(id, store::WithArtifacts::no))
        if (std::find(arms.begin(), arms.end(), smp.arm) == arms.end()) arms.push_back(smp.arm);
    std::vector<std::string> ordered;
    for (const auto& a : s.arms)
      if (std::find(arms.begin(), arms.end(), a.name) != arms.end()) ordered.push_back(a.name);
    for (const auto& a : arms)
      if (std::find(ordered.begin(), ordered.end(), a) == ordered.end()) ordered.push_back(a);
    if (base.empty() && !ordered.empty()) base = ordered[0];
    if (candidate.empty())
      for (const auto& a : ordered)
        if (a != base) {
          candidate = a;
          break;
        }
  }
  return analyse_and_report(db, ids, s, base, candidate, out, join_args("report", args));
}

}  // namespace kab::cli

namespace kab::cli {

int cmd_bundle(const std::vector<std::string>& args) {
  CLI::App app{"Write what reruns a stored comparison elsewhere (kab compare --bundle FILE): its scenario, both kernel "
               "definitions with their patches and fragments, each build's final .config, the plan, kab's version and "
               "the host's facts.",
               "bundle"};
  long long run = 0;
  std::string out, db_path = paths().default_db;
  app.add_option("run", run, "the run of the comparison")->required();
  app.add_option("-o,--output", out, "the bundle to write (FILE.tar.gz)")->required();
  app.add_option("--db", db_path, "SQLite database (default results/kab.db)");
  if (auto code = parse_args(app, args)) return *code;
  if (!fs::exists(db_path)) throw Fatal("no database " + db_path, k_exit_usage);
  store::ResultStore db = store::ResultStore::open(db_path);
  write_bundle(db, run, out, {}, paths().kernels_dir, kernel::Builder(kernel_options()));
  std::printf("%s\n", out.c_str());
  return k_exit_ok;
}

}  // namespace kab::cli
