#include "store/schema.h"

namespace kab::store {

const std::vector<Migration>& migrations() {
  static const std::vector<Migration> k_migrations = {
      // REAL columns are nullable: SQLite stores a NaN figure as NULL, read back as NaN.
      {1, "runs, kernels, samples, artifacts", R"sql(
CREATE TABLE runs (
  id                INTEGER PRIMARY KEY,
  created_at        TEXT NOT NULL,
  finished_at       TEXT,
  status            TEXT NOT NULL CHECK (status IN ('running','complete','interrupted','failed')),
  scenario_name     TEXT NOT NULL,
  scenario_text     TEXT NOT NULL,
  scenario_hash     TEXT NOT NULL,
  plan_seed         TEXT NOT NULL,          -- decimal: a uint64 does not fit SQLite's INTEGER
  plan_size         INTEGER NOT NULL,
  plan_json         TEXT NOT NULL,
  cpu_model         TEXT NOT NULL,
  host_kernel       TEXT NOT NULL,
  load_at_start     REAL,
  accelerator       TEXT NOT NULL,
  nproc             INTEGER NOT NULL,
  memory_bytes      INTEGER NOT NULL,
  qemu_version      TEXT NOT NULL,
  libvirt_version   TEXT NOT NULL,
  virtiofsd_version TEXT NOT NULL,
  fio_version       TEXT NOT NULL,
  kab_revision      TEXT NOT NULL,
  extra_json        TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE kernels (
  id                INTEGER PRIMARY KEY,
  build_key         TEXT NOT NULL UNIQUE,
  name              TEXT NOT NULL,
  variant           TEXT NOT NULL,
  arch              TEXT NOT NULL,
  config_hash       TEXT NOT NULL,
  patch_hashes_json TEXT NOT NULL,
  source_identity   TEXT NOT NULL,
  release           TEXT NOT NULL,          -- make kernelrelease
  paths_json        TEXT NOT NULL,
  built_at          TEXT NOT NULL,
  build_wall_s      REAL,
  build_cpu_s       REAL,
  objects_compiled  INTEGER NOT NULL,
  recorded_at       TEXT NOT NULL
);

CREATE TABLE samples (
  id                     INTEGER PRIMARY KEY,
  run_id                 INTEGER NOT NULL REFERENCES runs(id),
  plan_index             INTEGER NOT NULL,
  arm                    TEXT NOT NULL,
  kernel                 TEXT NOT NULL,
  variant                TEXT NOT NULL,
  backend                TEXT NOT NULL,
  cell_json              TEXT NOT NULL,     -- {"bs":"1M",...} in plan order
  cell_label             TEXT NOT NULL,     -- "bs=1M,rw=write"
  repetition             INTEGER NOT NULL,
  status                 TEXT NOT NULL CHECK (status IN ('ok','unhealthy','timeout','crashed','failed')),
  reason                 TEXT NOT NULL,
  findings_json          TEXT NOT NULL,     -- ["console line", ...]
  boot_s                 REAL,
  fio_s                  REAL,
  teardown_s             REAL,
  total_s                REAL,
  bw_bytes               REAL,     -- bytes per second
  iops                   REAL,
  clat_p50_ns            REAL,
  clat_p99_ns            REAL,
  clat_p999_ns           REAL,
  usr_cpu                REAL,
  sys_cpu                REAL,
  io_bytes               REAL,
  runtime_ms             REAL,
  fio_error              INTEGER NOT NULL,
  writeback_tmp_peak_kb  REAL,
  writeback_tmp_mean_kb  REAL,
  writeback_peak_kb      REAL,
  writeback_mean_kb      REAL,
  nr_writeback_temp_peak REAL,
  guest_sys_s            REAL,
  guest_user_s           REAL,
  vmstat_delta_json      TEXT NOT NULL,     -- {"nr_dirtied":123,...}
  backend_user_s         REAL,
  backend_sys_s          REAL,
  backend_minor_faults   INTEGER NOT NULL,
  backend_major_faults   INTEGER NOT NULL,
  backend_cmdline        TEXT NOT NULL,
  kernel_build_key       TEXT NOT NULL,
  host_load_before       REAL,
  host_load_after        REAL,
  started_at             TEXT NOT NULL,
  stored_at              TEXT NOT NULL,
  UNIQUE (run_id, plan_index)
);

CREATE TABLE artifacts (
  id         INTEGER PRIMARY KEY,
  sample_id  INTEGER NOT NULL REFERENCES samples(id) ON DELETE CASCADE,
  kind       TEXT NOT NULL,                 -- fio_json | console | agent | backend_stats
  content    TEXT NOT NULL,
  UNIQUE (sample_id, kind)
);
)sql"},
      {2, "platform, VM host usage, steal and noise controls per sample (0 / qemu / \"\" for older samples)", R"sql(
ALTER TABLE samples ADD COLUMN platform TEXT NOT NULL DEFAULT 'qemu';
ALTER TABLE samples ADD COLUMN vm_user_s REAL DEFAULT 0;
ALTER TABLE samples ADD COLUMN vm_sys_s REAL DEFAULT 0;
ALTER TABLE samples ADD COLUMN vm_minor_faults INTEGER NOT NULL DEFAULT 0;
ALTER TABLE samples ADD COLUMN vm_major_faults INTEGER NOT NULL DEFAULT 0;
ALTER TABLE samples ADD COLUMN host_steal_pct REAL DEFAULT 0;
ALTER TABLE samples ADD COLUMN noise TEXT NOT NULL DEFAULT '';
CREATE INDEX samples_by_kernel ON samples (kernel_build_key);
)sql"},
      {3, "each direction's bandwidth and IOPS per sample (0 for older samples: bw_bytes was one direction)", R"sql(
ALTER TABLE samples ADD COLUMN read_bw_bytes REAL DEFAULT 0;
ALTER TABLE samples ADD COLUMN read_iops REAL DEFAULT 0;
ALTER TABLE samples ADD COLUMN write_bw_bytes REAL DEFAULT 0;
ALTER TABLE samples ADD COLUMN write_iops REAL DEFAULT 0;
)sql"},
      {4, "how a kernel's source and patches are named (a git ref, commits, a series' mails); empty for older kernels", R"sql(
ALTER TABLE kernels ADD COLUMN source_name TEXT NOT NULL DEFAULT '';
ALTER TABLE kernels ADD COLUMN patch_labels_json TEXT NOT NULL DEFAULT '[]';
)sql"},
      {5, "what a sample that is not ok failed on: guest or platform ('' for older samples and ok ones)", R"sql(
ALTER TABLE samples ADD COLUMN failed_by TEXT NOT NULL DEFAULT '' CHECK (failed_by IN ('', 'guest', 'platform'));
)sql"},
  };
  return k_migrations;
}

}  // namespace kab::store
