// ResultStore: runs, kernels, samples and their artifacts in one SQLite
// database (default results/kab.db).
//
// Contract:
//  - The schema is versioned (PRAGMA user_version) and migrated forward on
//    open; a database written by a newer kab is refused with a StoreError.
//  - WAL journal, synchronous=FULL, a 30 s busy timeout and BEGIN IMMEDIATE
//    write transactions: two kab processes on one database neither corrupt it
//    nor fail on a lock while the other one writes.
//  - add_sample() commits one sample (row + artifacts) in its own transaction
//    before it returns: a killed kab loses at most the sample in flight.
//  - (run_id, plan_index) is unique: storing a plan index twice throws
//    StoreError (kind duplicate_sample); resume code asks completed_indices().
//  - Every failure throws StoreError, its message
//    "<db path>: <operation>: <cause>", e.g.
//    "results/kab.db: add sample 7 of run 3: sample already stored (plan index 7)".
// A ResultStore is one SQLite connection: use it from one thread at a time,
// open one per thread or process, and never use one across fork().
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/sample.h"

struct sqlite3;

namespace kab::store {

// The schema version this code writes (PRAGMA user_version).
inline constexpr int k_schema_version = 5;
// PRAGMA application_id of a kab database ("kab" + 1).
inline constexpr int k_application_id = 0x6b616201;

class StoreError : public std::runtime_error {
 public:
  enum class Kind {
    sqlite,            // SQLite reported an error (code() has its extended code)
    io,                // the file or its directory could not be created
    newer_schema,      // the database was written by a newer kab
    not_kab,           // the file is an SQLite database of something else
    not_found,         // no such run / sample
    duplicate_sample,  // (run_id, plan_index) already stored
  };
  StoreError(Kind kind, int code, const std::string& message)
      : std::runtime_error(message), m_kind(kind), m_code(code) {}
  Kind kind() const { return m_kind; }
  int code() const { return m_code; }  // SQLite extended result code, 0 when none

 private:
  Kind m_kind;
  int m_code;
};

enum class RunStatus { running, complete, interrupted, failed };
std::string to_string(RunStatus s);
std::optional<RunStatus> run_status_from(const std::string& s);

// What kab knows about a run when it begins: the recipe and the conditions.
struct RunInfo {
  std::string scenario_name;
  std::string scenario_text;
  std::string scenario_hash;      // hex; "" = begin_run computes core::fnv1a64_hex(scenario_text)
  std::uint64_t plan_seed = 0;
  int plan_size = 0;              // number of planned samples
  std::string plan_json;          // the plan as JSON (produced by the caller)
  // Host facts.
  std::string cpu_model;
  std::string host_kernel;        // uname -r (and -v if wanted)
  double load_at_start = 0;       // 1-minute load average
  std::string accelerator;        // "kvm" | "tcg" | "uml"
  int nproc = 0;
  std::uint64_t memory_bytes = 0;
  // Tool versions.
  std::string qemu_version, libvirt_version, virtiofsd_version, fio_version;
  std::string kab_revision;       // git describe of kab
  std::map<std::string, std::string> extra;  // anything else worth keeping (JSON object)
};

// A run as stored.
struct RunRecord {
  std::int64_t id = 0;
  std::string created_at;         // ISO 8601 UTC
  std::string finished_at;        // "" while running
  RunStatus status = RunStatus::running;
  RunInfo info;
  int samples_stored = 0;
};

// A built kernel as stored, keyed by its build key (the kernel cache key).
struct KernelRecord {
  std::string build_key;          // unique
  std::string name, variant, arch;
  std::string config_hash;
  std::vector<std::string> patch_hashes;   // in application order
  std::string source_identity;    // package + version, or tarball/tree hash
  std::string source_name;        // a git source as people name it: "v6.1 (48f647b15e40)"; "" otherwise
  std::vector<std::string> patch_labels;   // same order as patch_hashes: abcdef123456 ("fuse: …"), file names
  std::string release;            // make kernelrelease
  std::map<std::string, std::string> paths;  // "vmlinux", "bzImage", "config", "build_dir", …
  std::string built_at;           // ISO 8601 UTC
  double build_wall_s = 0, build_cpu_s = 0;
  long objects_compiled = 0;
};

struct Artifact {
  std::int64_t id = 0;
  std::int64_t sample_id = 0;
  std::string kind;               // fio_json | console | agent | backend_stats
  std::string content;
};

// One fact of a run's RunInfo::extra; "" when the run did not record it.
std::string run_fact(const RunRecord& r, const std::string& key);

enum class WithArtifacts { yes, no };

class ResultStore {
 public:
  // Opens (creating the file and its parent directory if needed) and
  // migrates the database at `path`. Throws StoreError when the file cannot
  // be created or opened, is not a kab database, is newer than this code, or
  // a migration fails (the database is then left at its old version).
  static ResultStore open(const std::filesystem::path& path);

  ResultStore(ResultStore&&) noexcept;
  ResultStore& operator=(ResultStore&&) noexcept;
  ~ResultStore();

  const std::filesystem::path& path() const { return m_path; }
  int schema_version();

  // Stores a new run with status running; returns its id.
  std::int64_t begin_run(const RunInfo& info);
  // Stores a run made in another database (kab db merge) as it was there:
  // its created_at, finished_at, status and facts; returns its id here.
  std::int64_t import_run(const RunRecord& r);
  // Sets the run's status and finished_at. Throws (not_found) on an unknown id.
  void finish_run(std::int64_t run_id, RunStatus status);
  // `kab run --resume`: sets the run back to running, clears finished_at.
  void resume_run(std::int64_t run_id);
  // Sets one fact of a run's RunInfo::extra after it began (kab nightly
  // records each night's verdicts so later nights read them). Throws
  // (not_found) on an unknown id.
  void set_run_fact(std::int64_t run_id, const std::string& key, const std::string& value);
  std::optional<RunRecord> run(std::int64_t run_id);
  // Deletes a run with its samples and their artifacts in one transaction
  // (kab db prune); returns the number of samples deleted. Throws (not_found)
  // on an unknown id. Kernels stay: other runs may name them.
  int delete_run(std::int64_t run_id);
  std::vector<RunRecord> runs();  // oldest first

  // Inserts or replaces the kernel with this build key.
  void record_kernel(const KernelRecord& k);
  std::optional<KernelRecord> kernel(const std::string& build_key);
  std::vector<KernelRecord> kernels();

  // Stores one sample and its non-empty artifacts in one committed
  // transaction; returns the sample's id. Throws StoreError kind
  // duplicate_sample when (run_id, plan_index) is already stored (nothing
  // is written then), not_found when the run does not exist.
  std::int64_t add_sample(const core::Sample& s);
  // The run's samples in plan order; with artifacts every field of
  // core::Sample is as it was stored.
  std::vector<core::Sample> samples(std::int64_t run_id, WithArtifacts a = WithArtifacts::yes);
  // Plan indices of the stored samples of a run (whatever their status).
  std::set<int> completed_indices(std::int64_t run_id);
  std::optional<std::int64_t> sample_id(std::int64_t run_id, int plan_index);
  std::vector<Artifact> artifacts(std::int64_t sample_id);

  // PRAGMA integrity_check: "ok" when the database is sound.
  std::string integrity_check();

  struct Db;  // the connection; defined in store.cpp

 private:
  explicit ResultStore(std::filesystem::path path);
  std::filesystem::path m_path;
  std::unique_ptr<Db> m_db;
};

}  // namespace kab::store
