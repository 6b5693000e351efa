// kab run, kab runs, kab show
#include <cstdio>
#include <iostream>
#include <optional>
#include <tuple>
#include <nlohmann/json.hpp>

#include "cli/app.h"
#include "cli/merge.h"
#include "cli/parse.h"
#include "cli/runner.h"
#include "core/text.h"

namespace kab::cli {

int cmd_run(const std::vector<std::string>& args) {
  CLI::App app{"Run a scenario: build what is missing, run every sample, store each the moment it ends.", "run"};
  RunRequest rq;
  rq.db_path = paths().default_db;
  long long resume = 0;
  bool json = false;
  int reps = 0;
  app.add_option("scenario", rq.scenario_path, "scenario YAML file")->required();
  app.add_option("--db", rq.db_path, "SQLite database (default results/kab.db)");
  app.add_option("--resume", resume, "continue run RUN at its first missing sample");
  app.add_option("--repetitions", reps, "override the scenario's repetitions");
  std::string shard;
  app.add_option("--shard", shard,
                 "run shard I of N of the plan (I/N): whole ABBA blocks dealt in turn; kab db merge joins the "
                 "shards' databases, kab report RUN… compares them with each run as a block");
  app.add_flag("--keep", rq.keep_work, "keep every sample's work directory (console, domain XML)");
  app.add_flag("--json", json, "print the result as JSON");
  if (auto code = parse_args(app, args)) return *code;
  rq.scenario = load_scenario_or_exit(rq.scenario_path);
  if (reps > 0) rq.scenario.repetitions = reps;
  if (!shard.empty()) {
    auto parsed = parse_shard(shard);
    if (!parsed) throw Fatal("--shard: expected I/N with 1 <= I <= N, got '" + shard + "'", k_exit_usage);
    if (rq.scenario.stop.until_decided)
      throw Fatal(rq.scenario_path + ": sampled until decided (stop.until_decided): its looks need every sample "
                  "before them, so it cannot be sharded",
                  k_exit_usage);
    std::tie(rq.shard, rq.shards) = *parsed;
    rq.run_extra["shard"] = std::to_string(rq.shard) + "/" + std::to_string(rq.shards);
  }
  if (resume) {
    // The run as it was made: kab compare's --base/--candidate,
    // --until-decided, --max-samples and a replicate's seed are not in the
    // scenario's text but are in its plan.
    auto store = store::ResultStore::open(rq.db_path);
    auto run = store.run(resume);
    if (!run) throw Fatal("no run " + std::to_string(resume) + " in " + rq.db_path, k_exit_usage);
    const std::string effective = store::run_fact(*run, "scenario.effective");
    if (!effective.empty()) {
      apply_effective(rq.scenario, nlohmann::json::parse(effective));
      // The command line that started the run, with --resume added, is
      // accepted; a different number of repetitions would be another plan.
      if (reps > 0 && reps != rq.scenario.repetitions)
        throw Fatal("run " + std::to_string(resume) + " was planned with " + std::to_string(rq.scenario.repetitions) +
                        " repetitions; --resume continues it as planned: drop --repetitions " + std::to_string(reps),
                    k_exit_usage);
    }
    // Likewise its shard: the same --shard or none.
    auto stored = parse_shard(store::run_fact(*run, "shard"));
    if (!shard.empty() && (!stored || *stored != std::make_pair(rq.shard, rq.shards)))
      throw Fatal("run " + std::to_string(resume) + " is " +
                      (stored ? "shard " + store::run_fact(*run, "shard") : std::string("not sharded")) +
                      "; --resume continues it as planned: drop --shard " + shard,
                  k_exit_usage);
    if (stored) std::tie(rq.shard, rq.shards) = *stored;
  }
  rq.resume = resume;
  rq.command_line = join_args("run", args);
  core::RunOutcome r = execute_run(rq);
  if (json) {
    nlohmann::ordered_json j{{"run", r.run_id},          {"stored", r.stored},
                             {"skipped", r.skipped},     {"not_ok", r.not_ok},
                             {"interrupted", r.interrupted}, {"accelerator", r.accelerator}};
    if (rq.shards > 0) j["shard"] = std::to_string(rq.shard) + "/" + std::to_string(rq.shards);
    if (r.looks > 0)
      j["sequential"] = {{"look", r.look}, {"looks", r.looks}, {"verdict", core::to_string(r.verdict)},
                         {"decided", r.decided}};
    std::cout << j.dump(2) << "\n";
  } else {
    std::printf("run %lld: %d samples stored (%d not ok), %d already stored\n", static_cast<long long>(r.run_id),
                r.stored, r.not_ok, r.skipped);
    if (r.looks > 0 && !r.interrupted)
      std::printf("run %lld sampled until decided: %s at look %d of %d (%s)\n", static_cast<long long>(r.run_id),
                  core::to_string(r.verdict).c_str(), r.look, r.looks,
                  r.decided ? "decided before the cap" : "the cap");
  }
  if (r.interrupted) return k_exit_interrupted;
  if (auto failed = arms_without_ok_sample(rq.db_path, r.run_id, rq.scenario); !failed.empty()) {
    std::fprintf(stderr, "kab: error: %s\n", no_ok_sample_message(r.run_id, failed).c_str());
    return k_exit_run_failed;
  }
  return r.not_ok ? k_exit_failure : k_exit_ok;
}

int cmd_runs(const std::vector<std::string>& args) {
  CLI::App app{"List the runs stored in the database.", "runs"};
  std::string db = paths().default_db;
  bool json = false;
  app.add_option("--db", db, "SQLite database (default results/kab.db)");
  app.add_flag("--json", json, "as JSON");
  if (auto code = parse_args(app, args)) return *code;
  auto store = store::ResultStore::open(db);
  nlohmann::ordered_json arr = nlohmann::ordered_json::array();
  if (!json) std::printf("%5s  %-20s  %-11s  %-16s %7s  %s\n", "run", "created", "status", "scenario", "samples", "accel");
  for (const auto& r : store.runs()) {
    if (json) {
      arr.push_back({{"run", r.id}, {"created_at", r.created_at}, {"status", store::to_string(r.status)},
                     {"scenario", r.info.scenario_name}, {"samples", r.samples_stored}, {"planned", r.info.plan_size},
                     {"accelerator", r.info.accelerator}});
      continue;
    }
    std::printf("%5lld  %-20s  %-11s  %-16s %3d/%-3d  %s\n", static_cast<long long>(r.id), r.created_at.c_str(),
                store::to_string(r.status).c_str(), r.info.scenario_name.c_str(), r.samples_stored, r.info.plan_size,
                r.info.accelerator.c_str());
  }
  if (json) std::cout << arr.dump(2) << "\n";
  return k_exit_ok;
}

int cmd_show(const std::vector<std::string>& args) {
  CLI::App app{"Print the samples of a stored run.", "show"};
  std::string db = paths().default_db;
  long long run = 0;
  bool json = false;
  app.add_option("run", run, "run id (kab runs lists them)")->required();
  app.add_option("--db", db, "SQLite database (default results/kab.db)");
  app.add_flag("--json", json, "as JSON");
  if (auto code = parse_args(app, args)) return *code;
  auto store = store::ResultStore::open(db);
  if (!store.run(run)) throw Fatal("no run " + std::to_string(run) + " in " + db, k_exit_usage);
  auto samples = store.samples(run, store::WithArtifacts::no);
  if (json) {
    nlohmann::ordered_json arr = nlohmann::ordered_json::array();
    for (const auto& s : samples)
      arr.push_back({{"index", s.plan_index}, {"arm", s.arm}, {"kernel", s.kernel}, {"backend", s.backend},
                     {"cell", core::cell_label(s.cell)}, {"repetition", s.repetition},
                     {"status", core::to_string(s.health.status)}, {"reason", s.health.reason},
                     {"failed_by", core::to_string(s.health.failed_by)}, {"findings", s.health.findings},
                     {"bw_bytes", s.fio.bw_bytes}, {"iops", s.fio.iops},
                     {"read_bw_bytes", s.fio.read_bw_bytes}, {"write_bw_bytes", s.fio.write_bw_bytes},
                     {"read_iops", s.fio.read_iops}, {"write_iops", s.fio.write_iops}, {"clat_p99_ns", s.fio.clat_p99_ns},
                     {"writeback_tmp_peak_kb", s.guest.writeback_tmp_peak_kb},
                     {"writeback_tmp_mean_kb", s.guest.writeback_tmp_mean_kb},
                     {"nr_writeback_temp_peak", s.guest.nr_writeback_temp_peak}, {"guest_sys_s", s.guest.guest_sys_s},
                     {"backend_cpu_s", s.backend_usage.user_s + s.backend_usage.sys_s},
                     {"vm_cpu_s", s.vm_usage.user_s + s.vm_usage.sys_s}, {"boot_s", s.boot_s}, {"fio_s", s.fio_s},
                     {"teardown_s", s.teardown_s}, {"total_s", s.total_s}});
    std::cout << arr.dump(2) << "\n";
    return k_exit_ok;
  }
  std::printf("%5s %-8s %-10s %-14s %3s %-9s %9s %8s %9s %7s %6s %6s\n", "index", "arm", "backend", "cell", "rep", "status",
              "MiB/s", "IOPS", "p99 ms", "WBTmp", "boot", "total");
  for (const auto& s : samples) {
    std::printf("%5d %-8s %-10s %-14s %3d %-9s %9.1f %8.1f %9.2f %7.0f %6.1f %6.1f\n", s.plan_index, s.arm.c_str(),
                s.backend.c_str(), s.cell.empty() ? "-" : core::cell_label(s.cell).c_str(), s.repetition,
                core::to_string(s.health.status).c_str(), s.fio.bw_bytes / 1048576.0, s.fio.iops, s.fio.clat_p99_ns / 1e6,
                s.guest.writeback_tmp_peak_kb, s.boot_s, s.total_s);
    if (s.health.status != core::SampleStatus::ok) std::printf("      %s\n", s.health.reason.c_str());
  }
  return k_exit_ok;
}

}  // namespace kab::cli
