#include <catch2/catch.hpp>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "core/hash.h"
#include "store/store.h"

using namespace kab;
using namespace kab::store;
namespace fs = std::filesystem;

namespace {

// A fresh directory, removed when the test passes (kept for a look when it fails).
struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "kab-store-XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    if (!std::uncaught_exceptions()) fs::remove_all(path);
  }
};

// Raw SQLite access, to build old databases and look under the store.
struct RawDb {
  sqlite3* db = nullptr;
  explicit RawDb(const fs::path& p) { REQUIRE(sqlite3_open(p.c_str(), &db) == SQLITE_OK); }
  ~RawDb() { sqlite3_close(db); }
  void exec(const std::string& sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    INFO(sql << ": " << (err ? err : ""));
    sqlite3_free(err);
    REQUIRE(rc == SQLITE_OK);
  }
  std::string text(const std::string& sql) {
    sqlite3_stmt* s = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK);
    std::string out;
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
      out = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    return out;
  }
};

RunInfo run_info() {
  RunInfo r;
  r.scenario_name = "rfc-writeback";
  r.scenario_text = "name: rfc-writeback\narms: [stock, rfc]\n";
  r.plan_seed = 18446744073709551557ull;  // > INT64_MAX on purpose
  r.plan_size = 20;
  r.plan_json = R"({"seed":"18446744073709551557","samples":[]})";
  r.cpu_model = "AMD EPYC 7B13";
  r.host_kernel = "6.1.0-27-amd64";
  r.load_at_start = 1.25;
  r.accelerator = "tcg";
  r.nproc = 2;
  r.memory_bytes = 24ull << 30;
  r.qemu_version = "7.2.13";
  r.libvirt_version = "9.0.0";
  r.virtiofsd_version = "1.5.0";
  r.fio_version = "fio-3.33";
  r.kab_revision = "ac4e8e9-dirty";
  r.extra = {{"note", "quoted \"value\"\nwith newline"}, {"tz", "UTC"}};
  return r;
}

core::Sample full_sample(std::int64_t run_id, int index) {
  core::Sample s;
  s.run_id = run_id;
  s.plan_index = index;
  s.arm = "rfc";
  s.kernel = "rfc-6.1";
  s.variant = "debug";
  s.backend = "virtiofsd-auto";
  s.platform = "uml";
  s.cell = {{"rw", "randwrite"}, {"bs", "1M"}, {"iodepth", "32"}};  // not sorted: order must survive
  s.repetition = 3;
  s.health.status = core::SampleStatus::unhealthy;
  s.health.reason = "WARNING in fuse_writepage_end";
  s.health.failed_by = core::FailedBy::guest;
  s.health.findings = {"[   12.345] WARNING: CPU: 0 PID: 1 at fs/fuse/file.c:1234", "tab\there \"quoted\" \\ µs ✓",
                       ""};
  s.fio = {754.0 * 1048576 + 0.1, 754.3, 500.25 * 1048576, 500.5, 254.0 * 1048576 + 0.1, 253.8,
           12345.6, 98765.4, 1.5e6, 12.5, 87.25, 7.9e9, 10000.5, 0};
  s.fio.fio_error = 5;
  s.guest.writeback_tmp_peak_kb = 10240;
  s.guest.writeback_tmp_mean_kb = 3333.3333333333335;
  s.guest.writeback_peak_kb = 2048.5;
  s.guest.writeback_mean_kb = 0.1 + 0.2;
  s.guest.nr_writeback_temp_peak = 2560;
  s.guest.guest_sys_s = 4.75;
  s.guest.guest_user_s = 0.5;
  s.guest.vmstat_delta = {{"nr_dirtied", 262144}, {"nr_written", 262000}, {"pgfault", -3.0e-7}};
  s.backend_usage = {1.5, 3.25, 12345, 2};
  s.vm_usage = {20.125, 5.5, 654321, 7};
  s.backend_cmdline = "/usr/lib/qemu/virtiofsd --socket-path=/run/kab/s0.sock -o source=/dev/shm/kab -o cache=auto -o writeback";
  s.kernel_build_key = "k-3f2a9c";
  s.boot_s = 2.9;
  s.fio_s = 10.01;
  s.teardown_s = 0.4;
  s.total_s = 15.5;
  s.host_load_before = 0.31;
  s.host_load_after = 1.92;
  s.host_steal_pct = 0.7;
  s.started_at = "2026-11-28T18:40:00.123Z";
  s.noise = "vcpu on cpu1, virtiofsd on cpu0, page cache dropped";
  s.fio_json = R"({"fio version":"fio-3.33","jobs":[{"jobname":"rfc"}]})";
  s.console_log = std::string("Linux version 6.1\nnul byte:\0:end\n", 32) + std::string(5000, 'x');
  s.agent_record = "KAB-AGENT done rc=0";
  s.backend_stats_json = R"({"requests":12})";
  return s;
}

// A sample with its plan index in it, artifacts small.
core::Sample small_sample(std::int64_t run_id, int index) {
  core::Sample s;
  s.run_id = run_id;
  s.plan_index = index;
  s.arm = index % 2 ? "rfc" : "stock";
  s.fio.bw_bytes = 1000.0 + index;
  s.fio_json = "{\"i\":" + std::to_string(index) + "}";
  s.console_log = std::string(4096, 'c');
  return s;
}

// A new field in core::Sample needs a column (a migration), a line in
// add_sample/read_sample and one in check_same; this trips when it is missed.
static_assert(sizeof(core::Sample) == 872, "core::Sample changed: store the new field and check it below");

void check_same(const core::Sample& a, const core::Sample& b) {
  CHECK(a.run_id == b.run_id);
  CHECK(a.plan_index == b.plan_index);
  CHECK(a.arm == b.arm);
  CHECK(a.kernel == b.kernel);
  CHECK(a.variant == b.variant);
  CHECK(a.backend == b.backend);
  CHECK(a.platform == b.platform);
  CHECK(a.cell == b.cell);
  CHECK(a.repetition == b.repetition);
  CHECK(a.health.status == b.health.status);
  CHECK(a.health.reason == b.health.reason);
  CHECK(a.health.failed_by == b.health.failed_by);
  CHECK(a.health.findings == b.health.findings);
  CHECK(a.fio.bw_bytes == b.fio.bw_bytes);
  CHECK(a.fio.iops == b.fio.iops);
  CHECK(a.fio.read_bw_bytes == b.fio.read_bw_bytes);
  CHECK(a.fio.read_iops == b.fio.read_iops);
  CHECK(a.fio.write_bw_bytes == b.fio.write_bw_bytes);
  CHECK(a.fio.write_iops == b.fio.write_iops);
  CHECK(a.fio.clat_p50_ns == b.fio.clat_p50_ns);
  CHECK(a.fio.clat_p99_ns == b.fio.clat_p99_ns);
  CHECK(a.fio.clat_p999_ns == b.fio.clat_p999_ns);
  CHECK(a.fio.usr_cpu == b.fio.usr_cpu);
  CHECK(a.fio.sys_cpu == b.fio.sys_cpu);
  CHECK(a.fio.bytes == b.fio.bytes);
  CHECK(a.fio.runtime_ms == b.fio.runtime_ms);
  CHECK(a.fio.fio_error == b.fio.fio_error);
  CHECK(a.guest.writeback_tmp_peak_kb == b.guest.writeback_tmp_peak_kb);
  CHECK(a.guest.writeback_tmp_mean_kb == b.guest.writeback_tmp_mean_kb);
  CHECK(a.guest.writeback_peak_kb == b.guest.writeback_peak_kb);
  CHECK(a.guest.writeback_mean_kb == b.guest.writeback_mean_kb);
  CHECK(a.guest.nr_writeback_temp_peak == b.guest.nr_writeback_temp_peak);
  CHECK(a.guest.guest_sys_s == b.guest.guest_sys_s);
  CHECK(a.guest.guest_user_s == b.guest.guest_user_s);
  CHECK(a.guest.vmstat_delta == b.guest.vmstat_delta);
  CHECK(a.backend_usage.user_s == b.backend_usage.user_s);
  CHECK(a.backend_usage.sys_s == b.backend_usage.sys_s);
  CHECK(a.backend_usage.minor_faults == b.backend_usage.minor_faults);
  CHECK(a.backend_usage.major_faults == b.backend_usage.major_faults);
  CHECK(a.vm_usage.user_s == b.vm_usage.user_s);
  CHECK(a.vm_usage.sys_s == b.vm_usage.sys_s);
  CHECK(a.vm_usage.minor_faults == b.vm_usage.minor_faults);
  CHECK(a.vm_usage.major_faults == b.vm_usage.major_faults);
  CHECK(a.backend_cmdline == b.backend_cmdline);
  CHECK(a.kernel_build_key == b.kernel_build_key);
  CHECK(a.boot_s == b.boot_s);
  CHECK(a.fio_s == b.fio_s);
  CHECK(a.teardown_s == b.teardown_s);
  CHECK(a.total_s == b.total_s);
  CHECK(a.host_load_before == b.host_load_before);
  CHECK(a.host_load_after == b.host_load_after);
  CHECK(a.host_steal_pct == b.host_steal_pct);
  CHECK(a.started_at == b.started_at);
  CHECK(a.noise == b.noise);
  CHECK(a.fio_json == b.fio_json);
  CHECK(a.console_log == b.console_log);
  CHECK(a.agent_record == b.agent_record);
  CHECK(a.backend_stats_json == b.backend_stats_json);
}

// Schema v1 exactly as kab wrote it (a frozen fixture: never edit it along with the code).
const char* const k_schema_v1 = R"sql(
CREATE TABLE runs (
  id INTEGER PRIMARY KEY, created_at TEXT NOT NULL, finished_at TEXT,
  status TEXT NOT NULL CHECK (status IN ('running','complete','interrupted','failed')),
  scenario_name TEXT NOT NULL, scenario_text TEXT NOT NULL, scenario_hash TEXT NOT NULL,
  plan_seed TEXT NOT NULL, plan_size INTEGER NOT NULL, plan_json TEXT NOT NULL,
  cpu_model TEXT NOT NULL, host_kernel TEXT NOT NULL, load_at_start REAL, accelerator TEXT NOT NULL,
  nproc INTEGER NOT NULL, memory_bytes INTEGER NOT NULL, qemu_version TEXT NOT NULL,
  libvirt_version TEXT NOT NULL, virtiofsd_version TEXT NOT NULL, fio_version TEXT NOT NULL,
  kab_revision TEXT NOT NULL, extra_json TEXT NOT NULL DEFAULT '{}');
CREATE TABLE kernels (
  id INTEGER PRIMARY KEY, build_key TEXT NOT NULL UNIQUE, name TEXT NOT NULL, variant TEXT NOT NULL,
  arch TEXT NOT NULL, config_hash TEXT NOT NULL, patch_hashes_json TEXT NOT NULL,
  source_identity TEXT NOT NULL, release TEXT NOT NULL, paths_json TEXT NOT NULL, built_at TEXT NOT NULL,
  build_wall_s REAL, build_cpu_s REAL, objects_compiled INTEGER NOT NULL, recorded_at TEXT NOT NULL);
CREATE TABLE samples (
  id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs(id), plan_index INTEGER NOT NULL,
  arm TEXT NOT NULL, kernel TEXT NOT NULL, variant TEXT NOT NULL, backend TEXT NOT NULL,
  cell_json TEXT NOT NULL, cell_label TEXT NOT NULL, repetition INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('ok','unhealthy','timeout','crashed','failed')),
  reason TEXT NOT NULL, findings_json TEXT NOT NULL, boot_s REAL, fio_s REAL, teardown_s REAL,
  total_s REAL, bw_bytes REAL, iops REAL, clat_p50_ns REAL, clat_p99_ns REAL, clat_p999_ns REAL,
  usr_cpu REAL, sys_cpu REAL, io_bytes REAL, runtime_ms REAL, fio_error INTEGER NOT NULL,
  writeback_tmp_peak_kb REAL, writeback_tmp_mean_kb REAL, writeback_peak_kb REAL, writeback_mean_kb REAL,
  nr_writeback_temp_peak REAL, guest_sys_s REAL, guest_user_s REAL, vmstat_delta_json TEXT NOT NULL,
  backend_user_s REAL, backend_sys_s REAL, backend_minor_faults INTEGER NOT NULL,
  backend_major_faults INTEGER NOT NULL, backend_cmdline TEXT NOT NULL, kernel_build_key TEXT NOT NULL,
  host_load_before REAL, host_load_after REAL, started_at TEXT NOT NULL, stored_at TEXT NOT NULL,
  UNIQUE (run_id, plan_index));
CREATE TABLE artifacts (
  id INTEGER PRIMARY KEY, sample_id INTEGER NOT NULL REFERENCES samples(id) ON DELETE CASCADE,
  kind TEXT NOT NULL, content TEXT NOT NULL, UNIQUE (sample_id, kind));
PRAGMA user_version = 1;
)sql";

// Runs `body` in a child process; returns its pid. Call it with no
// ResultStore open in this process (SQLite connections must not cross fork). The child exits 0 when
// body returns, 1 (with the message on stderr) when it throws.
template <typename F>
pid_t spawn(F body) {
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int rc = 0;
    try {
      body();
    } catch (const std::exception& e) {
      std::cerr << "child " << getpid() << ": " << e.what() << "\n";
      rc = 1;
    }
    _exit(rc);  // no destructors, atexit handlers or Catch2 reporting in the child
  }
  return pid;
}

int wait_exit_code(pid_t pid) {
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

TEST_CASE("ResultStore creates a versioned schema", "[store]") {
  TempDir tmp;
  const fs::path db = tmp.path / "results" / "nested" / "kab.db";

  SECTION("a new database gets the current schema in WAL mode, its directory created") {
    auto store = ResultStore::open(db);
    CHECK(fs::exists(db));
    CHECK(store.schema_version() == k_schema_version);
    CHECK(store.integrity_check() == "ok");
    RawDb raw(db);
    CHECK(raw.text("PRAGMA journal_mode") == "wal");
    CHECK(raw.text("PRAGMA application_id") == std::to_string(k_application_id));
    CHECK(raw.text("SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_schema WHERE type = 'table' "
                   "ORDER BY name)") == "artifacts,kernels,runs,samples");
  }
  SECTION("opening again changes nothing") {
    { auto s = ResultStore::open(db); s.begin_run(run_info()); }
    auto store = ResultStore::open(db);
    CHECK(store.schema_version() == k_schema_version);
    CHECK(store.runs().size() == 1);
  }
  SECTION("a database from a newer kab is refused with a clear error") {
    { auto s = ResultStore::open(db); }
    { RawDb raw(db); raw.exec("PRAGMA user_version = 99"); }
    try {
      ResultStore::open(db);
      FAIL("opened a newer database");
    } catch (const StoreError& e) {
      CHECK(e.kind() == StoreError::Kind::newer_schema);
      CHECK(std::string(e.what()) == db.string() +
                                         ": open: database schema version 99 is newer than this kab knows (" + std::to_string(k_schema_version) + "); "
                                         "use a newer kab or another --db");
    }
  }
  SECTION("another application's SQLite database is refused") {
    fs::create_directories(db.parent_path());
    { RawDb raw(db); raw.exec("CREATE TABLE t (x)"); }
    try {
      ResultStore::open(db);
      FAIL("opened a foreign database");
    } catch (const StoreError& e) {
      CHECK(e.kind() == StoreError::Kind::not_kab);
      CHECK(std::string(e.what()) == db.string() + ": open: not a kab database (it has tables but no kab schema version)");
    }
  }
  SECTION("a file that is not SQLite names the file and SQLite's reason") {
    fs::create_directories(db.parent_path());
    { std::ofstream(db) << "this is not a database, it is a text file that is long enough......................"
                           "................................................................................"; }
    try {
      ResultStore::open(db);
      FAIL("opened a text file");
    } catch (const StoreError& e) {
      CHECK(e.kind() == StoreError::Kind::sqlite);
      CHECK(std::string(e.what()) == db.string() + ": open: file is not a database");
    }
  }
  SECTION("a directory that cannot be created is an io error naming it") {
    { std::ofstream(tmp.path / "file") << "x"; }
    try {
      ResultStore::open(tmp.path / "file" / "sub" / "kab.db");
      FAIL("opened below a file");
    } catch (const StoreError& e) {
      CHECK(e.kind() == StoreError::Kind::io);
      CHECK_THAT(e.what(), Catch::StartsWith((tmp.path / "file" / "sub" / "kab.db").string() +
                                             ": create directory " + (tmp.path / "file" / "sub").string() + ": "));
    }
  }
}

TEST_CASE("ResultStore migrates a v1 database", "[store]") {
  TempDir tmp;
  const fs::path db = tmp.path / "kab.db";
  {
    RawDb raw(db);
    raw.exec(k_schema_v1);
    raw.exec(R"sql(
INSERT INTO runs VALUES (1, '2026-11-01T10:00:00.000Z', '2026-11-01T11:00:00.000Z', 'complete', 'old', 'name: old',
  'abc', '7', 2, '{}', 'cpu', '6.1.0', 0.5, 'tcg', 2, 1024, 'q', 'l', 'v', 'f', 'r0', '{}');
INSERT INTO samples (id, run_id, plan_index, arm, kernel, variant, backend, cell_json, cell_label, repetition,
  status, reason, findings_json, boot_s, fio_s, teardown_s, total_s, bw_bytes, iops, clat_p50_ns, clat_p99_ns,
  clat_p999_ns, usr_cpu, sys_cpu, io_bytes, runtime_ms, fio_error, writeback_tmp_peak_kb, writeback_tmp_mean_kb,
  writeback_peak_kb, writeback_mean_kb, nr_writeback_temp_peak, guest_sys_s, guest_user_s, vmstat_delta_json,
  backend_user_s, backend_sys_s, backend_minor_faults, backend_major_faults, backend_cmdline, kernel_build_key,
  host_load_before, host_load_after, started_at, stored_at)
VALUES (1, 1, 0, 'stock', 'stock-6.1', '', 'virtiofsd', '{"bs":"1M"}', 'bs=1M', 0, 'ok', '', '[]',
  3, 10, 1, 15, 686817280, 655, 1, 2, 3, 4, 5, 6, 10000, 0, 100, 50, 0, 0, 25, 1, 2, '{"nr_dirtied":5}',
  0.5, 0.25, 10, 0, 'virtiofsd -o cache=auto', 'k1', 0.1, 0.2, '2026-11-01T10:00:01.000Z', '2026-11-01T10:00:16.000Z');
INSERT INTO artifacts (sample_id, kind, content) VALUES (1, 'fio_json', '{"old":true}');
)sql");
  }

  auto store = ResultStore::open(db);
  CHECK(store.schema_version() == k_schema_version);
  CHECK(store.integrity_check() == "ok");

  SECTION("old samples read back with the defaults of the new columns") {
    auto samples = store.samples(1);
    REQUIRE(samples.size() == 1);
    const auto& s = samples[0];
    CHECK(s.arm == "stock");
    CHECK(s.cell == core::Cell{{"bs", "1M"}});
    CHECK(s.fio.bw_bytes == 686817280);
    CHECK(s.guest.vmstat_delta == std::map<std::string, double>{{"nr_dirtied", 5}});
    CHECK(s.fio_json == "{\"old\":true}");
    CHECK(s.platform == "qemu");
    CHECK(s.vm_usage.user_s == 0);
    CHECK(s.vm_usage.minor_faults == 0);
    CHECK(s.host_steal_pct == 0);
    CHECK(s.noise.empty());
    CHECK(s.fio.read_bw_bytes == 0);
    CHECK(s.fio.write_bw_bytes == 0);
    auto run = store.run(1);
    REQUIRE(run);
    CHECK(run->status == RunStatus::complete);
    CHECK(run->info.plan_seed == 7);
    CHECK(run->samples_stored == 1);
  }
  SECTION("new samples go in beside the old ones, with the new fields") {
    store.add_sample(full_sample(1, 1));
    auto samples = store.samples(1);
    REQUIRE(samples.size() == 2);
    check_same(samples[1], full_sample(1, 1));
    CHECK(store.completed_indices(1) == std::set<int>{0, 1});
  }
  SECTION("a failed migration names the step and leaves the database at its old version") {
    // A v1 database that already has a column v2 adds: v2's ALTER TABLE fails
    // after it added others, and all of it must roll back.
    const fs::path db2 = tmp.path / "broken.db";
    {
      RawDb raw(db2);
      raw.exec(k_schema_v1);
      raw.exec("ALTER TABLE samples ADD COLUMN noise TEXT");
    }
    try {
      ResultStore::open(db2);
      FAIL("migrated a database that cannot be migrated");
    } catch (const StoreError& e) {
      CHECK(e.kind() == StoreError::Kind::sqlite);
      CHECK_THAT(e.what(), Catch::StartsWith(db2.string() + ": migrate schema v1 to v2 (platform, VM host usage"));
      CHECK_THAT(e.what(), Catch::EndsWith(": duplicate column name: noise"));
    }
    RawDb raw(db2);
    CHECK(raw.text("PRAGMA user_version") == "1");
    CHECK(raw.text("SELECT count(*) FROM pragma_table_info('samples') WHERE name = 'platform'") == "0");
  }
  SECTION("a migrated database opens again without migrating") {
    auto again = ResultStore::open(db);
    CHECK(again.schema_version() == k_schema_version);
    CHECK(again.samples(1).size() == 1);
  }
}

TEST_CASE("ResultStore round-trips runs, kernels and samples", "[store]") {
  TempDir tmp;
  auto store = ResultStore::open(tmp.path / "kab.db");

  SECTION("a deleted run takes its samples and their artifacts, nothing of other runs") {
    auto a = store.begin_run(run_info()), b = store.begin_run(run_info());
    store.add_sample(full_sample(a, 0));
    store.add_sample(full_sample(a, 1));
    store.add_sample(full_sample(b, 0));
    const auto kept_id = store.sample_id(b, 0);
    REQUIRE(kept_id);
    const auto kept_artifacts = store.artifacts(*kept_id).size();
    CHECK(kept_artifacts > 0);
    const auto gone_0 = store.sample_id(a, 0), gone_1 = store.sample_id(a, 1);
    REQUIRE(gone_0);
    REQUIRE(gone_1);
    CHECK_FALSE(store.artifacts(*gone_0).empty());
    CHECK(store.delete_run(a) == 2);
    CHECK(store.artifacts(*gone_0).empty());
    CHECK(store.artifacts(*gone_1).empty());
    CHECK_FALSE(store.run(a));
    CHECK(store.samples(a).empty());
    CHECK(store.samples(b).size() == 1);
    CHECK(store.artifacts(*kept_id).size() == kept_artifacts);
    CHECK(store.integrity_check() == "ok");
    try {
      store.delete_run(a);
      FAIL("no error for a deleted run");
    } catch (const StoreError& e) {
      CHECK(e.kind() == StoreError::Kind::not_found);
    }
  }

  SECTION("a fact set after the run began joins its extra facts, the others kept") {
    auto info = run_info();
    info.extra = {{"nightly.suite", "fuse"}, {"env.thp", "always"}};
    auto id = store.begin_run(info);
    store.set_run_fact(id, "nightly.verdict", "regression");
    store.set_run_fact(id, "nightly.verdict", "equivalent");   // replaced, not duplicated
    auto r = store.run(id);
    REQUIRE(r);
    CHECK(r->info.extra == std::map<std::string, std::string>{
                               {"env.thp", "always"}, {"nightly.suite", "fuse"}, {"nightly.verdict", "equivalent"}});
    try {
      store.set_run_fact(id + 1, "x", "y");
      FAIL("no error for an unknown run");
    } catch (const StoreError& e) {
      CHECK(e.kind() == StoreError::Kind::not_found);
    }
  }

  SECTION("a run keeps its recipe and conditions, and its status") {
    auto info = run_info();
    auto id = store.begin_run(info);
    auto r = store.run(id);
    REQUIRE(r);
    CHECK(r->id == id);
    CHECK(r->status == RunStatus::running);
    CHECK(r->finished_at.empty());
    CHECK(r->created_at.size() == 24);  // 2026-11-28T18:40:00.123Z
    CHECK(r->info.scenario_name == info.scenario_name);
    CHECK(r->info.scenario_text == info.scenario_text);
    CHECK(r->info.scenario_hash == core::fnv1a64_hex(info.scenario_text));
    CHECK(r->info.plan_seed == info.plan_seed);
    CHECK(r->info.plan_size == 20);
    CHECK(r->info.plan_json == info.plan_json);
    CHECK(r->info.cpu_model == info.cpu_model);
    CHECK(r->info.host_kernel == info.host_kernel);
    CHECK(r->info.load_at_start == info.load_at_start);
    CHECK(r->info.accelerator == "tcg");
    CHECK(r->info.nproc == 2);
    CHECK(r->info.memory_bytes == info.memory_bytes);
    CHECK(r->info.qemu_version == info.qemu_version);
    CHECK(r->info.libvirt_version == info.libvirt_version);
    CHECK(r->info.virtiofsd_version == info.virtiofsd_version);
    CHECK(r->info.fio_version == info.fio_version);
    CHECK(r->info.kab_revision == info.kab_revision);
    CHECK(r->info.extra == info.extra);

    store.finish_run(id, RunStatus::interrupted);
    CHECK(store.run(id)->status == RunStatus::interrupted);
    CHECK_FALSE(store.run(id)->finished_at.empty());
    store.resume_run(id);
    CHECK(store.run(id)->status == RunStatus::running);
    CHECK(store.run(id)->finished_at.empty());
    store.finish_run(id, RunStatus::complete);

    info.scenario_hash = "given";
    auto id2 = store.begin_run(info);
    auto all = store.runs();
    REQUIRE(all.size() == 2);
    CHECK(all[0].id == id);
    CHECK(all[0].status == RunStatus::complete);
    CHECK(all[1].id == id2);
    CHECK(all[1].info.scenario_hash == "given");
    CHECK_FALSE(store.run(id2 + 1));
  }
  SECTION("finishing an unknown run is an error naming it") {
    try {
      store.finish_run(42, RunStatus::complete);
      FAIL("finished a run that does not exist");
    } catch (const StoreError& e) {
      CHECK(e.kind() == StoreError::Kind::not_found);
      CHECK(std::string(e.what()) == (tmp.path / "kab.db").string() + ": finish run 42: no such run");
    }
  }
  SECTION("a fully populated sample comes back field for field") {
    auto run = store.begin_run(run_info());
    auto in = full_sample(run, 4);
    auto id = store.add_sample(in);
    auto out = store.samples(run);
    REQUIRE(out.size() == 1);
    check_same(out[0], in);
    CHECK(store.sample_id(run, 4) == id);
    CHECK_FALSE(store.sample_id(run, 5));

    auto arts = store.artifacts(id);
    REQUIRE(arts.size() == 4);
    CHECK(arts[0].kind == "fio_json");
    CHECK(arts[1].kind == "console");
    CHECK(arts[1].content == in.console_log);
    CHECK(arts[2].kind == "agent");
    CHECK(arts[3].kind == "backend_stats");

    auto light = store.samples(run, WithArtifacts::no);
    REQUIRE(light.size() == 1);
    CHECK(light[0].console_log.empty());
    CHECK(light[0].fio.bw_bytes == in.fio.bw_bytes);
    CHECK(store.run(run)->samples_stored == 1);
  }
  SECTION("empty artifacts are not stored and read back empty") {
    auto run = store.begin_run(run_info());
    core::Sample s;
    s.run_id = run;
    auto id = store.add_sample(s);
    CHECK(store.artifacts(id).empty());
    auto out = store.samples(run);
    REQUIRE(out.size() == 1);
    check_same(out[0], s);
  }
  SECTION("NaN figures are stored as NULL and read back as NaN") {
    auto run = store.begin_run(run_info());
    core::Sample s;
    s.run_id = run;
    s.fio.clat_p999_ns = std::nan("");
    s.guest.vmstat_delta = {{"x", std::nan("")}};
    s.host_steal_pct = INFINITY;
    store.add_sample(s);
    auto out = store.samples(run).at(0);
    CHECK(std::isnan(out.fio.clat_p999_ns));
    CHECK(std::isnan(out.guest.vmstat_delta.at("x")));
    CHECK(out.host_steal_pct == INFINITY);
  }
  SECTION("samples come back in plan order") {
    auto run = store.begin_run(run_info());
    for (int i : {3, 0, 2, 1}) store.add_sample(small_sample(run, i));
    auto out = store.samples(run);
    REQUIRE(out.size() == 4);
    for (int i = 0; i < 4; ++i) CHECK(out[i].plan_index == i);
  }
  SECTION("a sample of an unknown run is refused") {
    try {
      store.add_sample(small_sample(77, 0));
      FAIL("stored a sample of no run");
    } catch (const StoreError& e) {
      CHECK(e.kind() == StoreError::Kind::not_found);
      CHECK(std::string(e.what()) == (tmp.path / "kab.db").string() + ": add sample 0 of run 77: no such run");
    }
  }
  SECTION("a kernel is recorded once per build key and updated in place") {
    KernelRecord k;
    k.build_key = "k-3f2a9c";
    k.name = "rfc-6.1";
    k.variant = "debug";
    k.arch = "x86_64";
    k.config_hash = "c0ffee";
    k.patch_hashes = {"aa11", "bb22"};
    k.source_identity = "linux-source-6.1 6.1.119-1";
    k.release = "6.1.119-kab";
    k.paths = {{"vmlinux", "/cache/k-3f2a9c/vmlinux"}, {"config", "/cache/k-3f2a9c/.config"}};
    k.built_at = "2026-11-28T17:00:00Z";
    k.build_wall_s = 660.5;
    k.build_cpu_s = 1290.25;
    k.objects_compiled = 1234;
    k.source_name = "v6.1 (48f647b15e40)";
    k.patch_labels = {"ec90b45a1b2c (\"fuse: use page cache pages for writeback io\")", "0002-x.patch"};
    store.record_kernel(k);
    auto back = store.kernel("k-3f2a9c");
    REQUIRE(back);
    CHECK(back->name == k.name);
    CHECK(back->variant == k.variant);
    CHECK(back->arch == k.arch);
    CHECK(back->config_hash == k.config_hash);
    CHECK(back->patch_hashes == k.patch_hashes);
    CHECK(back->source_identity == k.source_identity);
    CHECK(back->release == k.release);
    CHECK(back->paths == k.paths);
    CHECK(back->built_at == k.built_at);
    CHECK(back->build_wall_s == k.build_wall_s);
    CHECK(back->build_cpu_s == k.build_cpu_s);
    CHECK(back->objects_compiled == 1234);
    CHECK(back->source_name == k.source_name);
    CHECK(back->patch_labels == k.patch_labels);

    k.objects_compiled = 3;
    k.build_wall_s = 25;
    store.record_kernel(k);
    REQUIRE(store.kernels().size() == 1);
    CHECK(store.kernel("k-3f2a9c")->objects_compiled == 3);
    CHECK_FALSE(store.kernel("nope"));
  }
}

TEST_CASE("ResultStore stores a plan index of a run once", "[store]") {
  TempDir tmp;
  const fs::path db = tmp.path / "kab.db";
  auto store = ResultStore::open(db);
  auto run = store.begin_run(run_info());
  auto other = store.begin_run(run_info());
  store.add_sample(small_sample(run, 0));
  store.add_sample(small_sample(run, 1));

  SECTION("a second insert of (run, plan index) fails clearly and writes nothing") {
    auto dup = full_sample(run, 1);
    try {
      store.add_sample(dup);
      FAIL("stored a duplicate");
    } catch (const StoreError& e) {
      CHECK(e.kind() == StoreError::Kind::duplicate_sample);
      CHECK(std::string(e.what()) == db.string() + ": add sample 1 of run " + std::to_string(run) +
                                         ": sample already stored (plan index 1)");
    }
    auto out = store.samples(run);
    REQUIRE(out.size() == 2);
    CHECK(out[1].arm == "rfc");
    CHECK(out[1].kernel.empty());  // still the first one
    RawDb raw(db);
    CHECK(raw.text("SELECT count(*) FROM artifacts") == "4");
    // The store is usable after the failed transaction.
    store.add_sample(small_sample(run, 2));
  }
  SECTION("the same plan index in another run is a different sample") {
    store.add_sample(small_sample(other, 1));
    CHECK(store.completed_indices(other) == std::set<int>{1});
  }
  SECTION("resume skips what completed_indices reports") {
    CHECK(store.completed_indices(run) == std::set<int>{0, 1});
    CHECK(store.completed_indices(other).empty());
    auto done = store.completed_indices(run);
    for (int i = 0; i < 4; ++i)
      if (!done.count(i)) store.add_sample(small_sample(run, i));
    CHECK(store.completed_indices(run) == std::set<int>{0, 1, 2, 3});
  }
}

TEST_CASE("ResultStore imports a run of another database as it was", "[store]") {
  TempDir tmp;
  auto a = ResultStore::open(tmp.path / "a.db");
  const auto id = a.begin_run(run_info());
  a.add_sample(full_sample(id, 3));
  a.finish_run(id, RunStatus::interrupted);
  const RunRecord there = *a.run(id);
  REQUIRE_FALSE(there.finished_at.empty());

  auto b = ResultStore::open(tmp.path / "b.db");
  b.begin_run(run_info());   // b's ids are its own
  const auto imported = b.import_run(there);
  CHECK(imported == 2);
  const RunRecord here = *b.run(imported);
  CHECK(here.created_at == there.created_at);
  CHECK(here.finished_at == there.finished_at);
  CHECK(here.status == RunStatus::interrupted);
  CHECK(here.info.plan_seed == there.info.plan_seed);
  CHECK(here.info.scenario_hash == there.info.scenario_hash);
  CHECK(here.info.extra == there.info.extra);
  CHECK(here.samples_stored == 0);
  // Its samples, carried over with every field and artifact.
  auto s = a.samples(id);
  REQUIRE(s.size() == 1);
  s[0].run_id = imported;
  b.add_sample(s[0]);
  auto copied = b.samples(imported);
  REQUIRE(copied.size() == 1);
  CHECK(copied[0].plan_index == 3);
  CHECK(copied[0].started_at == s[0].started_at);
  CHECK(copied[0].fio.bw_bytes == s[0].fio.bw_bytes);
  CHECK(copied[0].console_log == s[0].console_log);
  CHECK(b.run(imported)->samples_stored == 1);
  // A run imported while running stays running, without finished_at.
  const auto running = a.begin_run(run_info());
  const auto again = b.import_run(*a.run(running));
  CHECK(b.run(again)->status == RunStatus::running);
  CHECK(b.run(again)->finished_at.empty());
}

TEST_CASE("ResultStore takes concurrent writers without lock errors", "[store]") {
  TempDir tmp;
  const fs::path db = tmp.path / "kab.db";
  constexpr int k_per_writer = 40;

  SECTION("two stores in one process, on two threads") {
    std::int64_t run = ResultStore::open(db).begin_run(run_info());
    std::string errors[2];
    auto writer = [&](int w) {
      try {
        auto store = ResultStore::open(db);
        for (int i = 0; i < k_per_writer; ++i) {
          store.add_sample(small_sample(run, 2 * i + w));
          store.completed_indices(run);  // readers interleaved with the other writer
        }
      } catch (const std::exception& e) {
        errors[w] = e.what();
      }
    };
    std::thread a(writer, 0), b(writer, 1);
    a.join();
    b.join();
    CHECK(errors[0].empty());
    CHECK(errors[1].empty());
    auto store = ResultStore::open(db);
    CHECK(store.completed_indices(run).size() == 2 * k_per_writer);
    CHECK(store.integrity_check() == "ok");
  }
  SECTION("a writer waits for another process's write transaction instead of failing") {
    // No connection may be open across fork(): SQLite's per-process lock
    // bookkeeping would be copied into the child.
    auto run = ResultStore::open(db).begin_run(run_info());
    int ready[2];
    REQUIRE(pipe(ready) == 0);
    pid_t holder = spawn([&] {
      RawDb raw(db);
      raw.exec("BEGIN IMMEDIATE");
      raw.exec("UPDATE runs SET cpu_model = 'held' WHERE id = " + std::to_string(run));
      if (write(ready[1], "x", 1) != 1) throw std::runtime_error("pipe");
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));
      raw.exec("COMMIT");
    });
    char c;
    REQUIRE(read(ready[0], &c, 1) == 1);
    close(ready[0]);
    close(ready[1]);
    auto store = ResultStore::open(db);
    auto t0 = std::chrono::steady_clock::now();
    store.add_sample(small_sample(run, 0));  // blocks on the lock, then succeeds
    auto waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    CHECK(wait_exit_code(holder) == 0);
    CHECK(waited > 1.0);
    CHECK(store.completed_indices(run) == std::set<int>{0});
    CHECK(store.run(run)->info.cpu_model == "held");
  }
  SECTION("two processes creating the same new database at once") {
    // Both race through creation, WAL switch and migration, then write.
    pid_t pids[2];
    for (int w = 0; w < 2; ++w) {
      pids[w] = spawn([&, w] {
        auto store = ResultStore::open(db);
        auto info = run_info();
        info.scenario_name = "writer-" + std::to_string(w);
        auto run = store.begin_run(info);
        for (int i = 0; i < k_per_writer; ++i) store.add_sample(small_sample(run, i));
        store.finish_run(run, RunStatus::complete);
      });
    }
    CHECK(wait_exit_code(pids[0]) == 0);
    CHECK(wait_exit_code(pids[1]) == 0);
    auto store = ResultStore::open(db);
    CHECK(store.integrity_check() == "ok");
    auto runs = store.runs();
    REQUIRE(runs.size() == 2);
    for (const auto& r : runs) {
      CHECK(r.status == RunStatus::complete);
      CHECK(r.samples_stored == k_per_writer);
    }
  }
}

TEST_CASE("ResultStore keeps every committed sample when the writer is killed", "[store]") {
  TempDir tmp;
  const fs::path db = tmp.path / "kab.db";
  auto run = ResultStore::open(db).begin_run(run_info());

  pid_t child = spawn([&] {
    auto store = ResultStore::open(db);
    for (int i = 0; i < 1000000; ++i) store.add_sample(small_sample(run, i));
  });
  // Let it commit a few, then kill it wherever it is (most likely inside a transaction).
  std::size_t seen = 0;
  {
    auto watcher = ResultStore::open(db);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while ((seen = watcher.completed_indices(run).size()) < 25 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  REQUIRE(kill(child, SIGKILL) == 0);
  CHECK(wait_exit_code(child) == 128 + SIGKILL);
  REQUIRE(seen >= 25);

  auto store = ResultStore::open(db);
  CHECK(store.integrity_check() == "ok");
  auto done = store.completed_indices(run);
  REQUIRE(done.size() >= seen);
  CHECK(*done.begin() == 0);
  CHECK(*done.rbegin() == static_cast<int>(done.size()) - 1);  // contiguous: nothing lost in the middle
  // Each stored sample has both its artifacts: a sample is all or nothing.
  RawDb raw(db);
  CHECK(raw.text("SELECT count(*) FROM artifacts") == std::to_string(2 * done.size()));
  CHECK(raw.text("SELECT count(*) FROM samples s WHERE (SELECT count(*) FROM artifacts a WHERE a.sample_id = s.id) != 2") ==
        "0");
  // Resume continues at the first missing index.
  const int next = static_cast<int>(done.size());
  store.add_sample(small_sample(run, next));
  CHECK(store.completed_indices(run).size() == done.size() + 1);
  auto samples = store.samples(run);
  CHECK(samples.back().fio.bw_bytes == 1000.0 + next);
}
