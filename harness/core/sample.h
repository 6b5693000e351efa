// What one sample measured, and under which conditions. Produced by the
// orchestrator from the guest agent's record, stored by the ResultStore,
// read by the Analyzer.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/model.h"

namespace kab::core {

enum class SampleStatus { ok, unhealthy, timeout, crashed, failed };
std::string to_string(SampleStatus s);
std::optional<SampleStatus> sample_status_from(const std::string& s);

// fio's figures for one sample: both directions together (bw_bytes, iops),
// and each direction (0 when it moved nothing).
struct FioMetrics {
  double bw_bytes = 0;          // bytes per second
  double iops = 0;
  double read_bw_bytes = 0, read_iops = 0;
  double write_bw_bytes = 0, write_iops = 0;
  double clat_p50_ns = 0, clat_p99_ns = 0, clat_p999_ns = 0;
  double usr_cpu = 0, sys_cpu = 0;   // percent, as fio reports
  double bytes = 0;             // io_bytes, both directions
  double runtime_ms = 0;
  int fio_error = 0;            // fio's per-job "error"
};

// Guest kernel counters (from /proc/meminfo, /proc/vmstat, /proc/stat).
struct GuestCounters {
  double writeback_tmp_peak_kb = 0, writeback_tmp_mean_kb = 0;  // WritebackTmp
  double writeback_peak_kb = 0, writeback_mean_kb = 0;          // Writeback
  double nr_writeback_temp_peak = 0;                            // vmstat
  double guest_sys_s = 0, guest_user_s = 0;                     // whole-guest CPU during fio
  std::map<std::string, double> vmstat_delta;                   // after - before, selected keys
};

struct HostUsage {
  double user_s = 0, sys_s = 0;
  long minor_faults = 0, major_faults = 0;
};

// What a sample that is not ok failed on: the guest (its kernel, the
// workload: a finding, a crash, a hang, fio failing) or the platform under it
// (the backend did not start or died, the hypervisor, the harness) — which
// says nothing of the kernel. none when ok, or for samples stored before it was kept.
enum class FailedBy { none, guest, platform };
std::string to_string(FailedBy f);   // "", "guest", "platform"
FailedBy failed_by_from(const std::string& s);

struct Health {
  SampleStatus status = SampleStatus::ok;
  std::string reason;                   // "" when ok
  FailedBy failed_by = FailedBy::none;
  std::vector<std::string> findings;    // matching console lines
};

struct Sample {
  std::int64_t run_id = 0;
  int plan_index = 0;
  std::string arm, kernel, variant, backend;
  std::string platform = "qemu";
  Cell cell;
  int repetition = 0;
  Health health;
  FioMetrics fio;
  GuestCounters guest;
  HostUsage backend_usage;              // virtiofsd / kab-dpu
  HostUsage vm_usage;                   // QEMU or the UML process
  std::string backend_cmdline;
  std::string kernel_build_key;
  double boot_s = 0, fio_s = 0, teardown_s = 0, total_s = 0;  // timings
  double host_load_before = 0, host_load_after = 0, host_steal_pct = 0;
  std::string started_at;               // ISO 8601 UTC
  std::string noise;                    // pinning and other noise controls applied, free text
  // Artifacts kept with the sample.
  std::string fio_json, console_log, agent_record, backend_stats_json;
};

}  // namespace kab::core
