// fio job text as kab runs it: the generated job of a scenario's fio.job and
// matrix cell, or a user's job file with fio.override applied, both pointed at
// the share and reported as one group per stonewall group. Pure text work.
#pragma once

#include <string>
#include <vector>

#include "core/model.h"
#include "core/text.h"

namespace kab::core {

// Where the guest mounts the share: every job runs in it.
inline constexpr const char* k_share_dir = "/mnt/kab";

// One `key[=value]` line of a job file, with its 1-based position.
struct FioJobLine {
  int line = 0;
  int col = 1;            // of the key
  int value_col = 0;      // of the value (0: a flag)
  std::string key, value;
  bool flag = false;      // `time_based` with no value
};

struct FioJobSection {
  std::string name;       // "global" for [global]
  int line = 0;
  std::vector<FioJobLine> options;
};

struct FioJobFile {
  std::string path;
  std::string text;
  std::vector<FioJobSection> sections;   // in file order; options before any section go to an implicit global
};

// Parses fio's ini format: [sections], key=value or key, ';' and '#' comments.
// Never throws; a line it cannot read is an error in `errors`.
FioJobFile parse_fio_job_file(const std::string& path, const std::string& text, std::vector<Diagnostic>& errors);

// What kab refuses in a job file before any guest boots: a directory or file
// outside the share, a device. Returns diagnostics at the offending value with the remedy.
std::vector<Diagnostic> check_fio_job_targets(const FioJobFile& file);

// The job file as run: a [global] first with the share as directory and
// group_reporting, then the file's sections, with every fio.override option set
// in each job section (replacing the section's own value).
std::string fio_job_file_text(const FioJobFile& file, const FioOptions& overrides);

// The generated job for a scenario's fio.job and one matrix cell: [global]
// with the share as directory (unless the job names one) and group_reporting,
// the options with the cell's overrides, one [kab] job.
std::string fio_job_text(const FioSpec& fio, const Cell& cell, const std::string& directory = k_share_dir);

// How long a job text can run, in seconds: runtime (or timeout) plus
// ramp_time and startdelay of each job section, with [global]'s inherited; the
// longest job of each stonewall group, summed over the groups (they run one
// after another). A job bounded only by its size counts 0.
double longest_run_s(const FioJobFile& file);

// The most a job text can lay out, in bytes: each job section's size (or
// filesize × nrfiles) times numjobs, with [global]'s inherited, summed over the
// sections (files stay until the job ends). Percentages count 0.
std::uint64_t total_size_bytes(const FioJobFile& file);

// The job text of one cell of a scenario, whichever way its fio section is written.
std::string fio_job_for(const FioSpec& fio, const Cell& cell);

}  // namespace kab::core
