#include "cli/reporting.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

#include "cli/app.h"
#include "cli/gate_runner.h"
#include "core/fio_job.h"
#include "core/system.h"
#include "core/text.h"
#include "host/environment.h"
#include "report/format.h"
#include "report/formats.h"

namespace fs = std::filesystem;

namespace kab::cli {

std::string ref_name(const std::string& ref) {
  std::string out;
  for (char c : ref) out += std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' ? c : '_';
  return out;
}

std::vector<core::Sample> run_samples(store::ResultStore& db, const std::vector<std::int64_t>& runs) {
  std::vector<core::Sample> samples;
  for (auto r : runs) {
    auto more = db.samples(r, store::WithArtifacts::no);
    samples.insert(samples.end(), more.begin(), more.end());
  }
  return samples;
}

core::ReportContext context_for(store::ResultStore& db, const std::vector<std::int64_t>& runs, const core::Scenario& s,
                                const core::Comparison& c, const std::string& command,
                                const std::vector<core::Sample>& samples) {
  core::ReportContext ctx;
  ctx.command = command;
  ctx.date = core::iso_now();
  ctx.kab_version = KAB_VERSION;
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  ctx.host = host;
  if (auto r = db.run(runs.front())) {
    ctx.host_cpu = r->info.cpu_model + " (" + std::to_string(r->info.nproc) + " CPUs)";
    ctx.host_kernel = r->info.host_kernel;
    ctx.accelerator = r->info.accelerator;
    ctx.qemu_version = r->info.qemu_version;
    ctx.virtiofsd_version = r->info.virtiofsd_version;
    ctx.libvirt_version = r->info.libvirt_version;
    ctx.fio_version = r->info.fio_version;
    ctx.date = r->created_at;
  }
  // The job as the guest ran it (a job file with kab's [global] and fio.override applied).
  ctx.job_file = core::fio_job_for(s.fio, {});
  // Kernels of each arm, from the samples' build keys.
  for (const std::string& arm : {c.base_arm, c.candidate_arm}) {
    for (const auto& smp : samples) {
      if (smp.arm != arm) continue;
      core::KernelFacts k;
      k.arm = arm;
      k.kernel = smp.kernel;
      k.build_key = smp.kernel_build_key;
      if (auto rec = db.kernel(smp.kernel_build_key)) {
        k.version = rec->release;
        k.config_hash = rec->config_hash;
        // A commit's or mail's patch by its git patch-id, a file by its sha256.
        for (const auto& p : rec->patch_hashes)
          k.patch_hash += (k.patch_hash.empty() ? "" : ",") +
                          (p.rfind("patch-id:", 0) == 0 ? "patch-id " + p.substr(9, 12) : p.substr(0, 16));
        k.source = rec->source_name;
        k.patches = rec->patch_labels;
      }
      ctx.kernels.push_back(k);
      break;
    }
  }
  // The host facts that change results (recorded with each run since schema 3).
  if (auto r = db.run(runs.front()))
    for (const auto& [k, v] : r->info.extra)
      if (k.rfind("env.", 0) == 0) ctx.extra.push_back({k.substr(4), v});
  // Platform caveats and noise controls as applied, and harness plumbing
  // patches (UML), which both arms carry and which are not under test.
  if (!samples.empty() && !samples.front().noise.empty()) ctx.extra.push_back({"noise control", samples.front().noise});
  if (!samples.empty())
    if (auto rec = db.kernel(samples.front().kernel_build_key))
      for (const auto& [key, value] : rec->paths)
        if (key.rfind("plumbing", 0) == 0)
          ctx.extra.push_back({"harness plumbing (both arms, not under test)", value.substr(0, value.find(' ')) + " " +
                                                                                     value.substr(value.find(' ') + 1, 16)});
  return ctx;
}

core::Comparison analyse(store::ResultStore& db, const std::vector<std::int64_t>& runs, const core::Scenario& s,
                         const std::string& base, const std::string& candidate) {
  return analyse_samples(db, runs, run_samples(db, runs), s, base, candidate, runs.size() > 1);
}

core::Comparison analyse_samples(store::ResultStore& db, const std::vector<std::int64_t>& runs,
                                 const std::vector<core::Sample>& samples, const core::Scenario& s,
                                 const std::string& base, const std::string& candidate, bool block_by_run) {
  core::AnalysisOptions o;
  o.base_arm = base;
  o.candidate_arm = candidate;
  o.seed = s.seed;
  // The verdict's metric (the scenario's primary_metric; bandwidth by default).
  if (auto m = core::metric_from(s.primary_metric)) o.primary = *m;
  o.host_cores = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
  if (auto r = db.run(runs.front())) o.tcg = r->info.accelerator == "tcg";
  // Several runs: compared within each run, the run as a block.
  o.block_by_run = block_by_run;
  // A run sampled until decided is judged at the look it reached (a run cut
  // short mid-look at the last whole one: a stricter boundary, never a laxer).
  bool sequential_pooled = false;
  for (auto id : runs)
    if (auto r = db.run(id); r && r->info.extra.count("stop.until_decided")) {
      if (runs.size() > 1) {
        sequential_pooled = true;
        continue;
      }
      const int look_size = std::stoi(r->info.extra.at("stop.look_size"));
      const int looks = std::stoi(r->info.extra.at("stop.looks"));
      const int stored = static_cast<int>(samples.size());
      o.sequential.looks = looks;
      o.sequential.look = std::clamp(stored / std::max(1, look_size), 1, looks);
      o.sequential.look_size = look_size;
    }
  core::Comparison c;
  try {
    c = core::analyze(s, samples, o);
  } catch (const std::invalid_argument& e) {
    throw Fatal(std::string("cannot compare: ") + e.what(), k_exit_usage);
  }
  if (sequential_pooled)
    c.warnings.push_back({"sequential_pooled", "some of the pooled runs were sampled until decided: the pooled "
                                               "samples are analysed as one fixed-n comparison, which reads "
                                               "those runs' stopping as if it had been planned"});
  return c;
}

int analyse_and_report(store::ResultStore& db, const std::vector<std::int64_t>& runs, const core::Scenario& s,
                       const std::string& base, const std::string& candidate, const Output& out,
                       const std::string& command, const ReportExtras& extras) {
  const auto samples = run_samples(db, runs);
  return report_comparison(db, runs, samples, s,
                           analyse_samples(db, runs, samples, s, base, candidate, runs.size() > 1), out, command, extras);
}

int report_comparison(store::ResultStore& db, const std::vector<std::int64_t>& runs,
                      const std::vector<core::Sample>& samples, const core::Scenario& s, core::Comparison c,
                      const Output& out, const std::string& command, const ReportExtras& extras) {
  c.warnings.insert(c.warnings.end(), extras.warnings.begin(), extras.warnings.end());
  // Runs pooled from different hosts or settings: say what differed, in every format.
  {
    std::vector<std::map<std::string, std::string>> facts;
    for (auto id : runs)
      if (auto r = db.run(id)) facts.push_back(r->info.extra);
    std::string list;
    for (const auto& [k, values] : host::differing_facts(facts)) {
      list += (list.empty() ? "" : "; ") + k.substr(4) + ":";
      for (std::size_t i = 0; i < values.size(); ++i)
        list += (i ? "," : "") + std::string(" run ") + std::to_string(runs[i]) + " " + values[i];
    }
    if (!list.empty())
      c.warnings.push_back({"environment", "the runs differ in facts that change results (" + list + ")"});
  }
  core::ReportContext ctx = context_for(db, runs, s, c, command, samples);
  ctx.extra.insert(ctx.extra.end(), extras.facts.begin(), extras.facts.end());
  ctx.reports_dir = out.out_dir;
  // The correctness gate kab compare --gate ran on each arm's kernel before these runs.
  for (const std::string& arm : {c.base_arm, c.candidate_arm})
    for (auto id : runs) {
      auto r = db.run(id);
      if (!r) continue;
      auto it = r->info.extra.find("gate.of." + arm);
      if (it == r->info.extra.end()) continue;
      std::vector<std::int64_t> gate_runs;
      for (const auto& g : core::split(it->second, ',')) gate_runs.push_back(std::stoll(g));
      ctx.gates.push_back(gate_result(db, gate_runs, arm));
      break;
    }
  if (!out.out_dir.empty()) {
    fs::create_directories(out.out_dir);
    std::string extensions;
    for (const auto& f : report::formats()) {
      std::ofstream file(fs::path(out.out_dir) / ("comparison." + std::string(f.extension)));
      file << f.render(c, ctx, false);
      extensions += (extensions.empty() ? "" : ",") + std::string(f.extension);
    }
    std::fprintf(stderr, "kab: reports in %s (comparison.{%s})\n", out.out_dir.c_str(), extensions.c_str());
  }
  // --format is checked against the table; text is its first entry.
  const report::Format* format = report::find_format(out.format);
  if (!format) format = &report::formats().front();
  // Flushed whole before kab says anything more on stderr: with both in one log (2>&1, CI), a
  // JSON or JUnit document is not cut by a progress line at a buffer boundary.
  std::cout << format->render(c, ctx, ::isatty(STDOUT_FILENO)) << std::flush;
  return c.verdict == core::Verdict::regression || report::correctness_failure(c, ctx) ? k_exit_failure : k_exit_ok;
}

}  // namespace kab::cli
