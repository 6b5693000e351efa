// The Analyzer: from stored samples of two arms to a Comparison — per backend,
// matrix cell and metric the per-arm summaries, the ratio of medians with its
// bootstrap confidence interval, the Mann–Whitney p-value, Holm's adjustment
// and a verdict; noise warnings; one overall verdict. Pure: no I/O, the same
// samples and options always give the same Comparison. Renderers
// (harness/report) only format a Comparison.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/model.h"
#include "core/sample.h"
#include "core/stats.h"

namespace kab::core {

enum class Metric {
  bandwidth, iops, read_bandwidth, write_bandwidth, read_iops, write_iops, clat_p99, guest_sys_cpu_per_gib,
  backend_cpu_per_gib, backend_faults_per_gib
};
enum class Better { higher, lower };

struct MetricInfo {
  Metric metric;
  const char* key;     // stable identifier: "bandwidth", "iops", "read_bandwidth", …, "backend_cpu_per_gib"
  const char* label;   // for people: "bandwidth", "IOPS", "clat p99", "guest sys CPU/GiB", "backend CPU/GiB"
  const char* unit;    // "B/s", "IO/s", "ns", "s/GiB", "s/GiB"
  Better better;
  bool mixed_only = false;   // a value only for samples that both read and wrote
};

// Every metric, in report order (bandwidth first: it is the primary metric).
const std::vector<MetricInfo>& all_metrics();
const MetricInfo& metric_info(Metric m);
std::optional<Metric> metric_from(const std::string& key);

// One sample's value of a metric:
//   bandwidth             fio.bw_bytes (bytes/s)             higher is better
//   iops                  fio.iops                           higher is better
//   clat_p99              fio.clat_p99_ns                    lower is better
//   guest_sys_cpu_per_gib guest.guest_sys_s / (fio.bytes / 2^30)               lower is better
//   backend_cpu_per_gib   (backend_usage.user_s + sys_s) / (fio.bytes / 2^30)  lower is better
//   backend_faults_per_gib backend page faults (minor + major) per GiB: the host-side cost
//                         the RFC's mechanism moves to the backend          lower is better
// nullopt when the sample did not measure it: a zero p99 or CPU time (not
// recorded), or no bytes moved for the per-GiB metrics.
std::optional<double> metric_value(const Sample& s, Metric m);

// What the data decide about a change:
//   improvement / regression  significant after Holm and |change| >= min_effect
//   equivalent                the change's interval lies inside ±min_effect
//                             (two one-sided tests at alpha: the 1 - 2·alpha
//                             Hodges–Lehmann interval, Bonferroni over the family)
//   inconclusive              neither: more samples are needed (samples_needed)
enum class Verdict { improvement, regression, equivalent, inconclusive };
// "improvement", "regression", "equivalent", "inconclusive" (also the JSON and JUnit keys).
std::string to_string(Verdict v);
std::string verdict_key(Verdict v);

struct AnalysisOptions {
  std::string base_arm;        // required
  std::string candidate_arm;   // required
  std::vector<Metric> metrics; // empty = all_metrics()
  int bootstrap_resamples = 10000;
  double confidence = 0.95;
  std::uint64_t seed = 1;      // bootstrap seed; kab passes the scenario's seed
  // The metric the verdict comes from: its tests over the cells are one Holm
  // family (the primary); every other tested metric is the secondary family,
  // reported beside it. IOPS over a fixed block size is bandwidth again: not tested.
  Metric primary = Metric::bandwidth;
  double cv_warn = 0.05;       // warn when an arm's CV exceeds this
  int host_cores = 0;          // warn when host load exceeded this during a sample; 0 = don't check
  bool tcg = false;            // guests ran under TCG (no KVM)
  // A sequential run (stop: until_decided) is judged at its look: the primary
  // family by the group-sequential design of core/sequential.h (look 0: fixed n).
  struct Sequential {
    int look = 0;   // 1-based; 0 = a fixed-n run
    int looks = 0;  // planned, the last at the cap
    // Samples per look in plan order (Plan::look_size): with it the look is
    // judged at the information its ok samples carry (a failed sample is
    // information that did not arrive); 0: at k / looks.
    int look_size = 0;
  } sequential;
  // Samples of several runs pooled with the run as a block (kab report R1 R2 …):
  // the test, the Hodges–Lehmann estimate and its intervals compare values
  // within a run only (core::van_elteren, stratified_hodges_lehmann_*). A
  // metric whose values come from one run is analysed as usual.
  bool block_by_run = false;
  // alpha and min_effect come from the Scenario.
};

// One arm's values of one metric in one cell.
struct ArmMetric {
  Summary summary;
  std::vector<double> values;     // in (run, plan index) order
  std::vector<int> plan_indices;  // same order as values
  std::vector<std::int64_t> run_ids;  // same order as values
};

struct MetricResult {
  Metric metric = Metric::bandwidth;
  ArmMetric base, candidate;
  double ratio = 0;               // median(candidate) / median(base); NaN when the base median is 0
  double change = 0;              // ratio - 1
  Interval ratio_ci;              // percentile bootstrap, AnalysisOptions::confidence
  double hodges_lehmann = 0;      // HL ratio estimate (NaN for non-positive values)
  Interval hodges_lehmann_ci;     // its distribution-free interval, AnalysisOptions::confidence
  // The interval reports print beside the verdict, the one it was judged by:
  // the Hodges–Lehmann interval at AnalysisOptions::confidence (the Mann–Whitney
  // test inverted), or, for a sequential run's primary metric, the look's
  // repeated confidence interval at 1 - level (excludes no change exactly when
  // the test rejects at the look's boundary). ratio_ci is the bootstrap of the
  // change of the medians, kept in the JSON.
  Interval ci;
  double ci_coverage = 0.95;
  bool at_look = false;           // judged at a sequential look: the raw p against level
  UTest test;                     // two-sided Mann–Whitney, base as x
  double p_adjusted = 1;          // Holm, within its family
  double level = 0.05;            // what it was compared with: alpha for the Holm-adjusted p (fixed n),
                                  // the look's step-down boundary for the raw p (sequential primary)
  bool significant = false;       // below its level
  double best_p = 1;              // smallest p the exact test could give with these n, times the Holm family size
  bool primary = false;           // the verdict's metric (else: secondary family)
  bool tested = true;             // false: the same number as another metric (IOPS = bandwidth / fixed bs)
  int blocks = 0;                 // runs its values came from when analysed with the run as a block (0: pooled as one)
  Interval equivalence_ci;        // HL ratio interval at 1 - 2·alpha/family size: the equivalence test
                                  // (sequential primary: the look's repeated confidence interval)
  int samples_needed = 0;         // inconclusive: samples per arm estimated to decide at the observed CV
  Verdict verdict = Verdict::inconclusive;
  std::string reason;             // why, in words: "adjusted p 0.016 < 0.05 and |change| 14.2% ≥ 2.0%"
};

// Per arm and cell: which samples counted, and facts that are shown, not tested.
struct ArmCell {
  int included = 0;
  int excluded = 0;
  std::vector<std::pair<std::string, int>> excluded_by_status;  // "unhealthy" → 1, …
  // The sample whose bandwidth is the median one (lower middle for even n); the
  // fio lines of the evidence come from it. Absent when no sample is included.
  std::optional<FioMetrics> median_fio;
  int median_plan_index = -1;
  Summary writeback_tmp_peak_kb;  // WritebackTmp peak of each included sample
  Summary nr_writeback_temp_peak; // vmstat nr_writeback_temp peak
  std::string kernel;             // kernel of the samples ("" if none)
};

struct CellResult {
  std::string backend;
  Cell cell;
  std::string label;              // cell_label(cell), "(default)" for the empty cell
  std::string direction;          // "WRITE" or "READ": what fio's summary line is called
  ArmCell base, candidate;
  std::vector<MetricResult> metrics;
  std::vector<std::string> unmeasured;  // metric keys left out: neither arm had a value for them
  Verdict verdict = Verdict::inconclusive;  // the primary metric's
};

struct Warning {
  std::string kind;      // "high_cv", "host_load", "tcg", "excluded_samples"
  std::string message;   // one line for people
};

struct Comparison {
  std::string scenario;
  std::string base_arm, candidate_arm;
  std::string base_kernel, candidate_kernel;
  double alpha = 0.05, min_effect = 0.02, confidence = 0.95;
  int bootstrap_resamples = 10000;
  std::uint64_t seed = 1;
  Metric primary = Metric::bandwidth;
  int look = 0, looks = 0;        // a sequential run's look (0: fixed n)
  double information = 0;         // a sequential look's information fraction (look / looks with no sample failed)
  bool block_by_run = false;      // several runs, compared within each run (AnalysisOptions::block_by_run)
  std::vector<std::int64_t> run_ids;                          // ascending
  std::vector<std::string> backends;                          // order of first appearance
  std::vector<std::pair<std::string, std::string>> backend_cmdlines;  // backend → command line seen
  std::vector<CellResult> cells;                              // by backend, then first appearance
  int base_included = 0, base_excluded = 0;
  int candidate_included = 0, candidate_excluded = 0;
  std::vector<Warning> warnings;
  // From the primary metric over the cells: any regression → regression; any
  // improvement → improvement; every cell equivalent → equivalent; else inconclusive.
  Verdict verdict = Verdict::inconclusive;
};

// Analyses the samples of options.base_arm against options.candidate_arm
// (other arms are ignored). Samples whose health status is not ok are
// excluded and counted. Scenario supplies name, alpha and min_effect (its
// arms are not consulted, so samples of two runs can be compared).
// Throws std::invalid_argument when an arm name is empty, both are the same,
// or an arm has no sample at all (the message lists the arms seen).
Comparison analyze(const Scenario& scenario, const std::vector<Sample>& samples,
                   const AnalysisOptions& options);

// Facts about where and how the comparison was made, filled by the CLI and
// rendered by the report renderers next to the Comparison.
struct KernelFacts {
  std::string arm;
  std::string kernel;        // definition name
  std::string version;       // "6.1.158"
  std::string config_hash;
  std::string patch_hash;    // "" = no patches
  std::string build_key;
  std::string source;        // a git source: "v6.1 (48f647b15e40)"; "" otherwise
  std::vector<std::string> patches;   // how they are named: abcdef123456 ("fuse: …"), a mail's subject, a file
};

// One (family, backend) sample of a kernel's correctness gate (kab gate), as stored.
struct GateCheck {
  std::string family, backend;
  std::string status;      // the sample's: "ok", "unhealthy", "timeout", "crashed", "failed"
  std::string reason;      // why it is not ok ("" when ok)
  std::string finding;     // the kernel's first finding line ("" = none)
  std::int64_t run = 0;    // the gate run that holds the sample
  double fio_s = 0;
  std::string rerun;       // the command that runs this check alone
};

// A kernel's gate on its debug variant: every check it ran.
struct GateResult {
  std::string arm, kernel, variant, build_key;
  std::vector<GateCheck> checks;
  int not_clean() const;
  // Ran something and every check was ok.
  bool clean() const { return !checks.empty() && not_clean() == 0; }
  double fio_s() const;
};

struct ReportContext {
  std::string title;             // "" = derived from the scenario and arms
  std::string command;           // the exact command that reproduces the comparison
  std::string job_file;          // the fio job file text as run
  std::string date;              // ISO 8601 UTC
  std::string kab_version;
  std::string host;              // host name
  std::string host_cpu;          // model name, core count
  std::string host_kernel;
  std::string accelerator;       // "kvm" or "tcg"
  std::string qemu_version, virtiofsd_version, libvirt_version, fio_version;
  std::vector<KernelFacts> kernels;                            // base first
  std::vector<std::pair<std::string, std::string>> backend_options;  // backend → options; empty = the
                                                                     // Comparison's backend_cmdlines
  std::vector<std::pair<std::string, std::string>> extra;      // further facts, rendered as given
  std::string reports_dir;       // where every format was written ("" = nowhere)
  // The correctness gate of each arm's kernel (kab compare --gate), base
  // first; empty when no gate ran with the comparison.
  std::vector<GateResult> gates;
};

}  // namespace kab::core
