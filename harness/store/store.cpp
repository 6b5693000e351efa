#include "store/store.h"

#include <sqlite3.h>

#include <cmath>
#include <cstdio>
#include <ctime>
#include <limits>
#include <system_error>
#include <utility>

#include "core/hash.h"
#include "core/model.h"
#include "core/system.h"
#include "store/codec.h"
#include "store/schema.h"

namespace kab::store {

namespace {

constexpr int k_busy_timeout_ms = 30000;

// core::iso_utc with milliseconds: "2026-12-02T02:44:54.123Z".
std::string now_iso8601() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  std::string out = core::iso_utc(ts.tv_sec);
  out.pop_back();  // the 'Z'
  char ms[8];
  std::snprintf(ms, sizeof ms, ".%03dZ", static_cast<int>(ts.tv_nsec / 1000000) % 1000);
  return out + ms;
}

struct StmtDeleter {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};

}  // namespace

struct ResultStore::Db {
  sqlite3* handle = nullptr;
  std::string where;  // the path as the caller gave it, first part of every message

  ~Db() {
    if (handle) sqlite3_close_v2(handle);
  }

  [[noreturn]] void fail(const std::string& op, int code = 0) const {
    if (!code) code = sqlite3_extended_errcode(handle);
    throw StoreError(StoreError::Kind::sqlite, code, where + ": " + op + ": " + sqlite3_errmsg(handle));
  }
  [[noreturn]] void fail(StoreError::Kind kind, const std::string& op, const std::string& cause) const {
    throw StoreError(kind, 0, where + ": " + op + ": " + cause);
  }

  void exec(const std::string& sql, const std::string& op) {
    if (sqlite3_exec(handle, sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) fail(op);
  }
};

namespace {

// A prepared statement bound and read by column name, so a statement of 50
// columns cannot silently shift a value into its neighbour.
class Stmt {
 public:
  Stmt(ResultStore::Db& db, const std::string& sql, std::string op) : m_db(db), m_op(std::move(op)) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db.handle, sql.c_str(), static_cast<int>(sql.size()), &s, nullptr) != SQLITE_OK)
      db.fail(m_op);
    m_stmt.reset(s);
  }

  int index(const char* name) {
    int i = sqlite3_bind_parameter_index(m_stmt.get(), name);
    if (i == 0) m_db.fail(StoreError::Kind::sqlite, m_op, std::string("no parameter ") + name);
    return i;
  }
  void check(int rc) {
    if (rc != SQLITE_OK) m_db.fail(m_op, rc);
  }
  Stmt& bind(const char* name, const std::string& v) {
    check(sqlite3_bind_text(m_stmt.get(), index(name), v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Stmt& bind(const char* name, const char* v) { return bind(name, std::string(v)); }
  Stmt& bind(const char* name, double v) {
    // SQLite would store a NaN as NULL anyway; say so explicitly.
    int i = index(name);
    check(std::isnan(v) ? sqlite3_bind_null(m_stmt.get(), i) : sqlite3_bind_double(m_stmt.get(), i, v));
    return *this;
  }
  Stmt& bind(const char* name, std::int64_t v) {
    check(sqlite3_bind_int64(m_stmt.get(), index(name), v));
    return *this;
  }
  Stmt& bind(const char* name, int v) { return bind(name, static_cast<std::int64_t>(v)); }
  Stmt& bind(const char* name, long long v) { return bind(name, static_cast<std::int64_t>(v)); }
  Stmt& bind(const char* name, std::uint64_t v) = delete;  // does not fit; store as text

  // Steps once: true when a row is available. Throws on errors.
  bool step() {
    int rc = sqlite3_step(m_stmt.get());
    if (rc == SQLITE_ROW) {
      if (m_columns.empty()) {
        for (int i = 0, n = sqlite3_column_count(m_stmt.get()); i < n; ++i)
          m_columns.emplace(sqlite3_column_name(m_stmt.get(), i), i);
      }
      return true;
    }
    if (rc == SQLITE_DONE) return false;
    m_db.fail(m_op, sqlite3_extended_errcode(m_db.handle));
  }
  // Steps once and returns the extended result code instead of throwing.
  int try_step() {
    int rc = sqlite3_step(m_stmt.get());
    if (rc == SQLITE_ROW || rc == SQLITE_DONE) return rc;
    return sqlite3_extended_errcode(m_db.handle);
  }
  void reset() {
    sqlite3_reset(m_stmt.get());
    sqlite3_clear_bindings(m_stmt.get());
  }

  int col(const char* name) {
    auto it = m_columns.find(name);
    if (it == m_columns.end()) m_db.fail(StoreError::Kind::sqlite, m_op, std::string("no column ") + name);
    return it->second;
  }
  std::string text(int i) {
    auto p = reinterpret_cast<const char*>(sqlite3_column_text(m_stmt.get(), i));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(m_stmt.get(), i))) : std::string();
  }
  std::string text(const char* name) { return text(col(name)); }
  double real(const char* name) {
    int i = col(name);
    if (sqlite3_column_type(m_stmt.get(), i) == SQLITE_NULL) return std::numeric_limits<double>::quiet_NaN();
    return sqlite3_column_double(m_stmt.get(), i);
  }
  std::int64_t int64(int i) { return sqlite3_column_int64(m_stmt.get(), i); }
  std::int64_t int64(const char* name) { return int64(col(name)); }

  const std::string& op() const { return m_op; }

 private:
  ResultStore::Db& m_db;
  std::string m_op;
  std::unique_ptr<sqlite3_stmt, StmtDeleter> m_stmt;
  std::map<std::string, int> m_columns;
};

// BEGIN IMMEDIATE takes the write lock up front (waiting up to the busy
// timeout), so a transaction never fails later on upgrading a read lock
// after another process wrote (SQLITE_BUSY_SNAPSHOT is not retried).
class Transaction {
 public:
  Transaction(ResultStore::Db& db, const std::string& op, bool write = true) : m_db(db), m_op(op) {
    db.exec(write ? "BEGIN IMMEDIATE" : "BEGIN", op + ": begin transaction");
  }
  void commit() {
    m_db.exec("COMMIT", m_op + ": commit");
    m_done = true;
  }
  ~Transaction() {
    if (!m_done) sqlite3_exec(m_db.handle, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

 private:
  ResultStore::Db& m_db;
  std::string m_op;
  bool m_done = false;
};

std::int64_t pragma_int(ResultStore::Db& db, const std::string& pragma, const std::string& op) {
  Stmt s(db, "PRAGMA " + pragma, op);
  return s.step() ? s.int64(0) : 0;
}

std::string pragma_text(ResultStore::Db& db, const std::string& pragma, const std::string& op) {
  Stmt s(db, "PRAGMA " + pragma, op);
  return s.step() ? s.text(0) : std::string();
}

std::string sample_op(const core::Sample& s) {
  return "add sample " + std::to_string(s.plan_index) + " of run " + std::to_string(s.run_id);
}

// Artifact kinds, in the order of core::Sample's artifact fields.
constexpr const char* k_fio_json = "fio_json";
constexpr const char* k_console = "console";
constexpr const char* k_agent = "agent";
constexpr const char* k_backend_stats = "backend_stats";

const char* const k_sample_columns[] = {
    "run_id", "plan_index", "arm", "kernel", "variant", "backend", "platform", "cell_json", "cell_label",
    "repetition", "status", "reason", "findings_json", "boot_s", "fio_s", "teardown_s", "total_s", "bw_bytes",
    "iops", "read_bw_bytes", "read_iops", "write_bw_bytes", "write_iops", "clat_p50_ns", "clat_p99_ns", "clat_p999_ns", "usr_cpu", "sys_cpu", "io_bytes", "runtime_ms",
    "fio_error", "writeback_tmp_peak_kb", "writeback_tmp_mean_kb", "writeback_peak_kb", "writeback_mean_kb",
    "nr_writeback_temp_peak", "guest_sys_s", "guest_user_s", "vmstat_delta_json", "backend_user_s",
    "backend_sys_s", "backend_minor_faults", "backend_major_faults", "vm_user_s", "vm_sys_s",
    "vm_minor_faults", "vm_major_faults", "backend_cmdline", "kernel_build_key", "host_load_before",
    "host_load_after", "host_steal_pct", "noise", "started_at", "stored_at", "failed_by",
};

const char* const k_run_columns[] = {
    "created_at", "status", "scenario_name", "scenario_text", "scenario_hash", "plan_seed", "plan_size",
    "plan_json", "cpu_model", "host_kernel", "load_at_start", "accelerator", "nproc", "memory_bytes",
    "qemu_version", "libvirt_version", "virtiofsd_version", "fio_version", "kab_revision", "extra_json",
};

const char* const k_kernel_columns[] = {
    "build_key", "name", "variant", "arch", "config_hash", "patch_hashes_json", "source_identity",
    "release", "paths_json", "built_at", "build_wall_s", "build_cpu_s", "objects_compiled", "recorded_at",
    "source_name", "patch_labels_json",
};

template <std::size_t N>
std::string insert_sql(const char* table, const char* const (&cols)[N], const char* suffix = "") {
  std::string names, values;
  for (std::size_t i = 0; i < N; ++i) {
    if (i) {
      names += ", ";
      values += ", ";
    }
    names += cols[i];
    values += std::string(":") + cols[i];
  }
  return std::string("INSERT INTO ") + table + " (" + names + ") VALUES (" + values + ")" + suffix;
}

}  // namespace

// ---------------------------------------------------------------------------

std::string to_string(RunStatus s) {
  switch (s) {
    case RunStatus::running: return "running";
    case RunStatus::complete: return "complete";
    case RunStatus::interrupted: return "interrupted";
    case RunStatus::failed: return "failed";
  }
  return "failed";
}

std::optional<RunStatus> run_status_from(const std::string& s) {
  for (auto st : {RunStatus::running, RunStatus::complete, RunStatus::interrupted, RunStatus::failed})
    if (to_string(st) == s) return st;
  return std::nullopt;
}

ResultStore::ResultStore(std::filesystem::path path) : m_path(std::move(path)), m_db(std::make_unique<Db>()) {
  m_db->where = m_path.string();
}
ResultStore::ResultStore(ResultStore&&) noexcept = default;
ResultStore& ResultStore::operator=(ResultStore&&) noexcept = default;
ResultStore::~ResultStore() = default;

ResultStore ResultStore::open(const std::filesystem::path& path) {
  ResultStore store(path);
  Db& db = *store.m_db;
  const std::string name = path.string();
  const bool in_memory = name == ":memory:";
  if (!in_memory && path.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(path.parent_path(), ec);
    if (ec) db.fail(StoreError::Kind::io, "create directory " + path.parent_path().string(), ec.message());
  }
  int rc = sqlite3_open_v2(name.c_str(), &db.handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  if (rc != SQLITE_OK) {
    if (!db.handle) db.fail(StoreError::Kind::sqlite, "open", sqlite3_errstr(rc));
    db.fail("open", rc);
  }
  sqlite3_extended_result_codes(db.handle, 1);
  sqlite3_busy_timeout(db.handle, k_busy_timeout_ms);
  db.exec("PRAGMA foreign_keys = ON", "open");

  // Refuse what is not ours before writing anything to it.
  auto version = pragma_int(db, "user_version", "open");
  auto app_id = pragma_int(db, "application_id", "open");
  auto check_identity = [&](std::int64_t v, std::int64_t app) {
    if (app != 0 && app != k_application_id)
      db.fail(StoreError::Kind::not_kab, "open", "not a kab database (application_id " + std::to_string(app) + ")");
    if (v > k_schema_version)
      db.fail(StoreError::Kind::newer_schema, "open",
              "database schema version " + std::to_string(v) + " is newer than this kab knows (" +
                  std::to_string(k_schema_version) + "); use a newer kab or another --db");
    if (v == 0 && pragma_int(db, "schema_version", "open") != 0) {
      // One statement, one snapshot: another kab creating this new database
      // may commit its schema between a read of user_version and a count of
      // the tables, which read apart look like somebody else's database.
      Stmt s(db, "SELECT user_version, (SELECT count(*) FROM sqlite_schema) FROM pragma_user_version", "open");
      if (s.step() && s.int64(0) == 0 && s.int64(1) > 0)
        db.fail(StoreError::Kind::not_kab, "open", "not a kab database (it has tables but no kab schema version)");
    }
  };
  check_identity(version, app_id);

  if (!in_memory) {
    // WAL lets readers go on while one process writes; the mode is stored in
    // the file, so only the first open changes it.
    std::string mode = pragma_text(db, "journal_mode", "open");
    if (mode != "wal") {
      // SQLite does not call the busy handler for this pragma: another
      // process opening the same new file at once makes it fail with BUSY.
      for (int waited_ms = 0;; waited_ms += 10) {
        try {
          mode = pragma_text(db, "journal_mode = WAL", "open: set WAL journal mode");
          break;
        } catch (const StoreError& e) {
          if ((e.code() & 0xff) != SQLITE_BUSY || waited_ms >= k_busy_timeout_ms) throw;
          sqlite3_sleep(10);
        }
      }
      if (mode != "wal") db.fail(StoreError::Kind::sqlite, "open", "cannot use WAL journal mode (got " + mode + ")");
    }
  }
  // FULL: a committed sample survives a power loss too; one fsync per sample is nothing next to a boot.
  db.exec("PRAGMA synchronous = FULL", "open");

  if (version < k_schema_version) {
    Transaction tx(db, "migrate schema");
    // Another process may have migrated while we waited for the lock.
    version = pragma_int(db, "user_version", "migrate schema");
    check_identity(version, pragma_int(db, "application_id", "migrate schema"));
    for (const auto& m : migrations()) {
      if (m.version <= version) continue;
      const std::string op = "migrate schema v" + std::to_string(m.version - 1) + " to v" +
                             std::to_string(m.version) + " (" + m.description + ")";
      db.exec(m.sql, op);
      db.exec("PRAGMA user_version = " + std::to_string(m.version), op);
    }
    db.exec("PRAGMA application_id = " + std::to_string(k_application_id), "migrate schema");
    tx.commit();
  }
  return store;
}

int ResultStore::schema_version() { return static_cast<int>(pragma_int(*m_db, "user_version", "schema version")); }

std::string ResultStore::integrity_check() {
  Stmt s(*m_db, "PRAGMA integrity_check", "integrity check");
  std::string out;
  while (s.step()) {
    if (!out.empty()) out += '\n';
    out += s.text(0);
  }
  return out;
}

// ----- runs -----------------------------------------------------------------

namespace {

std::int64_t insert_run(ResultStore::Db& db, const RunInfo& info, const std::string& created_at, RunStatus status,
                        const std::string& finished_at, const std::string& op) {
  Transaction tx(db, op);
  Stmt s(db, insert_sql("runs", k_run_columns), op);
  s.bind(":created_at", created_at)
      .bind(":status", to_string(status))
      .bind(":scenario_name", info.scenario_name)
      .bind(":scenario_text", info.scenario_text)
      .bind(":scenario_hash", info.scenario_hash.empty() ? core::fnv1a64_hex(info.scenario_text) : info.scenario_hash)
      .bind(":plan_seed", std::to_string(info.plan_seed))
      .bind(":plan_size", info.plan_size)
      .bind(":plan_json", info.plan_json)
      .bind(":cpu_model", info.cpu_model)
      .bind(":host_kernel", info.host_kernel)
      .bind(":load_at_start", info.load_at_start)
      .bind(":accelerator", info.accelerator)
      .bind(":nproc", info.nproc)
      .bind(":memory_bytes", static_cast<std::int64_t>(info.memory_bytes))
      .bind(":qemu_version", info.qemu_version)
      .bind(":libvirt_version", info.libvirt_version)
      .bind(":virtiofsd_version", info.virtiofsd_version)
      .bind(":fio_version", info.fio_version)
      .bind(":kab_revision", info.kab_revision)
      .bind(":extra_json", encode_string_map(info.extra));
  s.step();
  auto id = sqlite3_last_insert_rowid(db.handle);
  if (!finished_at.empty()) {
    Stmt f(db, "UPDATE runs SET finished_at = :finished_at WHERE id = :id", op);
    f.bind(":finished_at", finished_at).bind(":id", static_cast<std::int64_t>(id));
    f.step();
  }
  tx.commit();
  return id;
}

}  // namespace

std::int64_t ResultStore::begin_run(const RunInfo& info) {
  return insert_run(*m_db, info, now_iso8601(), RunStatus::running, "", "begin run of " + info.scenario_name);
}

std::int64_t ResultStore::import_run(const RunRecord& r) {
  return insert_run(*m_db, r.info, r.created_at, r.status, r.finished_at, "import run of " + r.info.scenario_name);
}

namespace {

void set_run_status(ResultStore::Db& db, std::int64_t run_id, RunStatus status, bool finished,
                    const std::string& op) {
  Transaction tx(db, op);
  Stmt s(db, "UPDATE runs SET status = :status, finished_at = :finished_at WHERE id = :id", op);
  s.bind(":status", to_string(status)).bind(":id", run_id);
  if (finished) s.bind(":finished_at", now_iso8601());  // else NULL
  s.step();
  if (sqlite3_changes(db.handle) == 0) db.fail(StoreError::Kind::not_found, op, "no such run");
  tx.commit();
}

// The value a JSON column decoded to; a column that does not decode throws
// "read <what>: <cause>".
template <typename T>
T decoded(ResultStore::Db& db, std::optional<T> value, const std::string& what,
          const std::string& cause = "malformed JSON") {
  if (!value) db.fail(StoreError::Kind::sqlite, "read " + what, cause);
  return std::move(*value);
}

RunRecord read_run(ResultStore::Db& db, Stmt& s) {
  RunRecord r;
  r.id = s.int64("id");
  r.created_at = s.text("created_at");
  r.finished_at = s.text("finished_at");
  r.status = run_status_from(s.text("status")).value_or(RunStatus::failed);
  r.samples_stored = static_cast<int>(s.int64("samples_stored"));
  RunInfo& i = r.info;
  i.scenario_name = s.text("scenario_name");
  i.scenario_text = s.text("scenario_text");
  i.scenario_hash = s.text("scenario_hash");
  i.plan_seed = std::strtoull(s.text("plan_seed").c_str(), nullptr, 10);
  i.plan_size = static_cast<int>(s.int64("plan_size"));
  i.plan_json = s.text("plan_json");
  i.cpu_model = s.text("cpu_model");
  i.host_kernel = s.text("host_kernel");
  i.load_at_start = s.real("load_at_start");
  i.accelerator = s.text("accelerator");
  i.nproc = static_cast<int>(s.int64("nproc"));
  i.memory_bytes = static_cast<std::uint64_t>(s.int64("memory_bytes"));
  i.qemu_version = s.text("qemu_version");
  i.libvirt_version = s.text("libvirt_version");
  i.virtiofsd_version = s.text("virtiofsd_version");
  i.fio_version = s.text("fio_version");
  i.kab_revision = s.text("kab_revision");
  i.extra = decoded(db, decode_string_map(s.text("extra_json")), "run " + std::to_string(r.id) + " extra_json");
  return r;
}

constexpr const char* k_run_select =
    "SELECT runs.*, (SELECT count(*) FROM samples WHERE samples.run_id = runs.id) AS samples_stored FROM runs";

}  // namespace

void ResultStore::finish_run(std::int64_t run_id, RunStatus status) {
  set_run_status(*m_db, run_id, status, status != RunStatus::running, "finish run " + std::to_string(run_id));
}

std::string run_fact(const RunRecord& r, const std::string& key) {
  auto it = r.info.extra.find(key);
  return it == r.info.extra.end() ? "" : it->second;
}

void ResultStore::set_run_fact(std::int64_t run_id, const std::string& key, const std::string& value) {
  const std::string op = "set fact " + key + " of run " + std::to_string(run_id);
  Transaction tx(*m_db, op);
  std::map<std::string, std::string> extra;
  {
    Stmt s(*m_db, "SELECT extra_json FROM runs WHERE id = :id", op);
    s.bind(":id", run_id);
    if (!s.step()) m_db->fail(StoreError::Kind::not_found, op, "no such run");
    extra = decoded(*m_db, decode_string_map(s.text("extra_json")), "run " + std::to_string(run_id) + " extra_json");
  }
  extra[key] = value;
  Stmt u(*m_db, "UPDATE runs SET extra_json = :extra WHERE id = :id", op);
  u.bind(":extra", encode_string_map(extra)).bind(":id", run_id);
  u.step();
  tx.commit();
}

int ResultStore::delete_run(std::int64_t run_id) {
  const std::string op = "delete run " + std::to_string(run_id);
  Transaction tx(*m_db, op);
  {
    Stmt s(*m_db, "DELETE FROM artifacts WHERE sample_id IN (SELECT id FROM samples WHERE run_id = :id)", op);
    s.bind(":id", run_id);
    s.step();
  }
  int samples = 0;
  {
    Stmt s(*m_db, "DELETE FROM samples WHERE run_id = :id", op);
    s.bind(":id", run_id);
    s.step();
    samples = sqlite3_changes(m_db->handle);
  }
  Stmt s(*m_db, "DELETE FROM runs WHERE id = :id", op);
  s.bind(":id", run_id);
  s.step();
  if (sqlite3_changes(m_db->handle) == 0) m_db->fail(StoreError::Kind::not_found, op, "no such run");
  tx.commit();
  return samples;
}

void ResultStore::resume_run(std::int64_t run_id) {
  set_run_status(*m_db, run_id, RunStatus::running, false, "resume run " + std::to_string(run_id));
}

std::optional<RunRecord> ResultStore::run(std::int64_t run_id) {
  Stmt s(*m_db, std::string(k_run_select) + " WHERE id = :id", "read run " + std::to_string(run_id));
  s.bind(":id", run_id);
  if (!s.step()) return std::nullopt;
  return read_run(*m_db, s);
}

std::vector<RunRecord> ResultStore::runs() {
  Stmt s(*m_db, std::string(k_run_select) + " ORDER BY id", "list runs");
  std::vector<RunRecord> out;
  while (s.step()) out.push_back(read_run(*m_db, s));
  return out;
}

// ----- kernels --------------------------------------------------------------

void ResultStore::record_kernel(const KernelRecord& k) {
  const std::string op = "record kernel " + k.build_key;
  std::string update;
  for (const char* c : k_kernel_columns)
    if (std::string_view(c) != "build_key") update += std::string(update.empty() ? "" : ", ") + c + " = excluded." + c;
  Transaction tx(*m_db, op);
  Stmt s(*m_db, insert_sql("kernels", k_kernel_columns, (" ON CONFLICT (build_key) DO UPDATE SET " + update).c_str()),
         op);
  s.bind(":build_key", k.build_key)
      .bind(":name", k.name)
      .bind(":variant", k.variant)
      .bind(":arch", k.arch)
      .bind(":config_hash", k.config_hash)
      .bind(":patch_hashes_json", encode_string_list(k.patch_hashes))
      .bind(":source_identity", k.source_identity)
      .bind(":release", k.release)
      .bind(":paths_json", encode_string_map(k.paths))
      .bind(":built_at", k.built_at)
      .bind(":build_wall_s", k.build_wall_s)
      .bind(":build_cpu_s", k.build_cpu_s)
      .bind(":objects_compiled", k.objects_compiled)
      .bind(":recorded_at", now_iso8601())
      .bind(":source_name", k.source_name)
      .bind(":patch_labels_json", encode_string_list(k.patch_labels));
  s.step();
  tx.commit();
}

namespace {

KernelRecord read_kernel(ResultStore::Db& db, Stmt& s) {
  KernelRecord k;
  k.build_key = s.text("build_key");
  k.name = s.text("name");
  k.variant = s.text("variant");
  k.arch = s.text("arch");
  k.config_hash = s.text("config_hash");
  k.patch_hashes = decoded(db, decode_string_list(s.text("patch_hashes_json")), "kernel " + k.build_key + " patch hashes");
  k.source_identity = s.text("source_identity");
  k.release = s.text("release");
  k.paths = decoded(db, decode_string_map(s.text("paths_json")), "kernel " + k.build_key + " paths");
  k.built_at = s.text("built_at");
  k.build_wall_s = s.real("build_wall_s");
  k.build_cpu_s = s.real("build_cpu_s");
  k.objects_compiled = static_cast<long>(s.int64("objects_compiled"));
  k.source_name = s.text("source_name");
  k.patch_labels = decoded(db, decode_string_list(s.text("patch_labels_json")), "kernel " + k.build_key + " patch labels");
  return k;
}

}  // namespace

std::optional<KernelRecord> ResultStore::kernel(const std::string& build_key) {
  Stmt s(*m_db, "SELECT * FROM kernels WHERE build_key = :k", "read kernel " + build_key);
  s.bind(":k", build_key);
  if (!s.step()) return std::nullopt;
  return read_kernel(*m_db, s);
}

std::vector<KernelRecord> ResultStore::kernels() {
  Stmt s(*m_db, "SELECT * FROM kernels ORDER BY id", "list kernels");
  std::vector<KernelRecord> out;
  while (s.step()) out.push_back(read_kernel(*m_db, s));
  return out;
}

// ----- samples --------------------------------------------------------------

std::int64_t ResultStore::add_sample(const core::Sample& x) {
  Db& db = *m_db;
  const std::string op = sample_op(x);
  Transaction tx(db, op);
  Stmt s(db, insert_sql("samples", k_sample_columns), op);
  s.bind(":run_id", x.run_id)
      .bind(":plan_index", x.plan_index)
      .bind(":arm", x.arm)
      .bind(":kernel", x.kernel)
      .bind(":variant", x.variant)
      .bind(":backend", x.backend)
      .bind(":platform", x.platform)
      .bind(":cell_json", encode_cell(x.cell))
      .bind(":cell_label", core::cell_label(x.cell))
      .bind(":repetition", x.repetition)
      .bind(":status", core::to_string(x.health.status))
      .bind(":reason", x.health.reason)
      .bind(":failed_by", core::to_string(x.health.failed_by))
      .bind(":findings_json", encode_string_list(x.health.findings))
      .bind(":boot_s", x.boot_s)
      .bind(":fio_s", x.fio_s)
      .bind(":teardown_s", x.teardown_s)
      .bind(":total_s", x.total_s)
      .bind(":bw_bytes", x.fio.bw_bytes)
      .bind(":iops", x.fio.iops)
      .bind(":read_bw_bytes", x.fio.read_bw_bytes)
      .bind(":read_iops", x.fio.read_iops)
      .bind(":write_bw_bytes", x.fio.write_bw_bytes)
      .bind(":write_iops", x.fio.write_iops)
      .bind(":clat_p50_ns", x.fio.clat_p50_ns)
      .bind(":clat_p99_ns", x.fio.clat_p99_ns)
      .bind(":clat_p999_ns", x.fio.clat_p999_ns)
      .bind(":usr_cpu", x.fio.usr_cpu)
      .bind(":sys_cpu", x.fio.sys_cpu)
      .bind(":io_bytes", x.fio.bytes)
      .bind(":runtime_ms", x.fio.runtime_ms)
      .bind(":fio_error", x.fio.fio_error)
      .bind(":writeback_tmp_peak_kb", x.guest.writeback_tmp_peak_kb)
      .bind(":writeback_tmp_mean_kb", x.guest.writeback_tmp_mean_kb)
      .bind(":writeback_peak_kb", x.guest.writeback_peak_kb)
      .bind(":writeback_mean_kb", x.guest.writeback_mean_kb)
      .bind(":nr_writeback_temp_peak", x.guest.nr_writeback_temp_peak)
      .bind(":guest_sys_s", x.guest.guest_sys_s)
      .bind(":guest_user_s", x.guest.guest_user_s)
      .bind(":vmstat_delta_json", encode_number_map(x.guest.vmstat_delta))
      .bind(":backend_user_s", x.backend_usage.user_s)
      .bind(":backend_sys_s", x.backend_usage.sys_s)
      .bind(":backend_minor_faults", x.backend_usage.minor_faults)
      .bind(":backend_major_faults", x.backend_usage.major_faults)
      .bind(":vm_user_s", x.vm_usage.user_s)
      .bind(":vm_sys_s", x.vm_usage.sys_s)
      .bind(":vm_minor_faults", x.vm_usage.minor_faults)
      .bind(":vm_major_faults", x.vm_usage.major_faults)
      .bind(":backend_cmdline", x.backend_cmdline)
      .bind(":kernel_build_key", x.kernel_build_key)
      .bind(":host_load_before", x.host_load_before)
      .bind(":host_load_after", x.host_load_after)
      .bind(":host_steal_pct", x.host_steal_pct)
      .bind(":noise", x.noise)
      .bind(":started_at", x.started_at)
      .bind(":stored_at", now_iso8601());
  int rc = s.try_step();
  if (rc == SQLITE_CONSTRAINT_UNIQUE)
    db.fail(StoreError::Kind::duplicate_sample, op,
            "sample already stored (plan index " + std::to_string(x.plan_index) + ")");
  if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) db.fail(StoreError::Kind::not_found, op, "no such run");
  if (rc != SQLITE_DONE) db.fail(op, rc);
  const std::int64_t id = sqlite3_last_insert_rowid(db.handle);

  Stmt a(db, "INSERT INTO artifacts (sample_id, kind, content) VALUES (:sample_id, :kind, :content)",
         op + ": artifacts");
  for (auto [kind, content] : {std::pair{k_fio_json, &x.fio_json}, std::pair{k_console, &x.console_log},
                               std::pair{k_agent, &x.agent_record}, std::pair{k_backend_stats, &x.backend_stats_json}}) {
    if (content->empty()) continue;
    a.reset();
    a.bind(":sample_id", id).bind(":kind", kind).bind(":content", *content);
    a.step();
  }
  tx.commit();
  return id;
}

namespace {

core::Sample read_sample(ResultStore::Db& db, Stmt& s) {
  core::Sample x;
  x.run_id = s.int64("run_id");
  x.plan_index = static_cast<int>(s.int64("plan_index"));
  const std::string what = "sample " + std::to_string(x.plan_index) + " of run " + std::to_string(x.run_id);
  x.arm = s.text("arm");
  x.kernel = s.text("kernel");
  x.variant = s.text("variant");
  x.backend = s.text("backend");
  x.platform = s.text("platform").empty() ? "qemu" : s.text("platform");
  x.cell = decoded(db, decode_cell(s.text("cell_json")), what, "malformed cell_json");
  x.repetition = static_cast<int>(s.int64("repetition"));
  x.health.status = core::sample_status_from(s.text("status")).value_or(core::SampleStatus::failed);
  x.health.reason = s.text("reason");
  x.health.failed_by = core::failed_by_from(s.text("failed_by"));
  x.health.findings = decoded(db, decode_string_list(s.text("findings_json")), what + " findings");
  x.boot_s = s.real("boot_s");
  x.fio_s = s.real("fio_s");
  x.teardown_s = s.real("teardown_s");
  x.total_s = s.real("total_s");
  x.fio.bw_bytes = s.real("bw_bytes");
  x.fio.iops = s.real("iops");
  x.fio.read_bw_bytes = s.real("read_bw_bytes");
  x.fio.read_iops = s.real("read_iops");
  x.fio.write_bw_bytes = s.real("write_bw_bytes");
  x.fio.write_iops = s.real("write_iops");
  x.fio.clat_p50_ns = s.real("clat_p50_ns");
  x.fio.clat_p99_ns = s.real("clat_p99_ns");
  x.fio.clat_p999_ns = s.real("clat_p999_ns");
  x.fio.usr_cpu = s.real("usr_cpu");
  x.fio.sys_cpu = s.real("sys_cpu");
  x.fio.bytes = s.real("io_bytes");
  x.fio.runtime_ms = s.real("runtime_ms");
  x.fio.fio_error = static_cast<int>(s.int64("fio_error"));
  x.guest.writeback_tmp_peak_kb = s.real("writeback_tmp_peak_kb");
  x.guest.writeback_tmp_mean_kb = s.real("writeback_tmp_mean_kb");
  x.guest.writeback_peak_kb = s.real("writeback_peak_kb");
  x.guest.writeback_mean_kb = s.real("writeback_mean_kb");
  x.guest.nr_writeback_temp_peak = s.real("nr_writeback_temp_peak");
  x.guest.guest_sys_s = s.real("guest_sys_s");
  x.guest.guest_user_s = s.real("guest_user_s");
  x.guest.vmstat_delta =
      decoded(db, decode_number_map(s.text("vmstat_delta_json")), what, "malformed vmstat_delta_json");
  x.backend_usage.user_s = s.real("backend_user_s");
  x.backend_usage.sys_s = s.real("backend_sys_s");
  x.backend_usage.minor_faults = static_cast<long>(s.int64("backend_minor_faults"));
  x.backend_usage.major_faults = static_cast<long>(s.int64("backend_major_faults"));
  x.vm_usage.user_s = s.real("vm_user_s");
  x.vm_usage.sys_s = s.real("vm_sys_s");
  x.vm_usage.minor_faults = static_cast<long>(s.int64("vm_minor_faults"));
  x.vm_usage.major_faults = static_cast<long>(s.int64("vm_major_faults"));
  x.backend_cmdline = s.text("backend_cmdline");
  x.kernel_build_key = s.text("kernel_build_key");
  x.host_load_before = s.real("host_load_before");
  x.host_load_after = s.real("host_load_after");
  x.host_steal_pct = s.real("host_steal_pct");
  x.noise = s.text("noise");
  x.started_at = s.text("started_at");
  return x;
}

void put_artifact(core::Sample& x, const std::string& kind, std::string content) {
  if (kind == k_fio_json) x.fio_json = std::move(content);
  else if (kind == k_console) x.console_log = std::move(content);
  else if (kind == k_agent) x.agent_record = std::move(content);
  else if (kind == k_backend_stats) x.backend_stats_json = std::move(content);
}

}  // namespace

std::vector<core::Sample> ResultStore::samples(std::int64_t run_id, WithArtifacts with) {
  Db& db = *m_db;
  const std::string op = "read samples of run " + std::to_string(run_id);
  // One read transaction: the samples and their artifacts from one snapshot.
  Transaction tx(db, op, false);
  Stmt s(db, "SELECT * FROM samples WHERE run_id = :run ORDER BY plan_index", op);
  s.bind(":run", run_id);
  std::vector<core::Sample> out;
  std::map<std::int64_t, std::size_t> by_id;
  while (s.step()) {
    by_id[s.int64("id")] = out.size();
    out.push_back(read_sample(db, s));
  }
  if (with == WithArtifacts::yes && !out.empty()) {
    Stmt a(db,
           "SELECT a.sample_id, a.kind, a.content FROM artifacts a JOIN samples s ON s.id = a.sample_id "
           "WHERE s.run_id = :run",
           op + ": artifacts");
    a.bind(":run", run_id);
    while (a.step()) {
      auto it = by_id.find(a.int64(0));
      if (it != by_id.end()) put_artifact(out[it->second], a.text(1), a.text(2));
    }
  }
  tx.commit();
  return out;
}

std::set<int> ResultStore::completed_indices(std::int64_t run_id) {
  Stmt s(*m_db, "SELECT plan_index FROM samples WHERE run_id = :run",
         "read stored plan indices of run " + std::to_string(run_id));
  s.bind(":run", run_id);
  std::set<int> out;
  while (s.step()) out.insert(static_cast<int>(s.int64(0)));
  return out;
}

std::optional<std::int64_t> ResultStore::sample_id(std::int64_t run_id, int plan_index) {
  Stmt s(*m_db, "SELECT id FROM samples WHERE run_id = :run AND plan_index = :i",
         "find sample " + std::to_string(plan_index) + " of run " + std::to_string(run_id));
  s.bind(":run", run_id).bind(":i", plan_index);
  if (!s.step()) return std::nullopt;
  return s.int64(0);
}

std::vector<Artifact> ResultStore::artifacts(std::int64_t sample_id) {
  Stmt s(*m_db, "SELECT id, sample_id, kind, content FROM artifacts WHERE sample_id = :id ORDER BY id",
         "read artifacts of sample id " + std::to_string(sample_id));
  s.bind(":id", sample_id);
  std::vector<Artifact> out;
  while (s.step()) out.push_back({s.int64(0), s.int64(1), s.text(2), s.text(3)});
  return out;
}

}  // namespace kab::store
