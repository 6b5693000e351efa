#include "fio/record.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "core/text.h"

namespace kab::fio {

namespace {

std::map<std::string, std::string> fields(const std::string& rest) {
  std::map<std::string, std::string> out;
  std::istringstream ss(rest);
  std::string tok;
  while (ss >> tok) {
    auto eq = tok.find('=');
    if (eq != std::string::npos) out[tok.substr(0, eq)] = tok.substr(eq + 1);
  }
  return out;
}

double num(const std::map<std::string, std::string>& f, const std::string& k) {
  auto it = f.find(k);
  if (it == f.end()) return 0;
  try {
    return std::stod(it->second);
  } catch (...) {
    return 0;
  }
}

// "cpu  user nice system idle iowait irq softirq steal" in USER_HZ.
std::vector<double> cpu_line(const std::string& line) {
  std::vector<double> v;
  std::istringstream ss(line);
  std::string tok;
  ss >> tok;  // "cpu"
  double x;
  while (ss >> x) v.push_back(x);
  v.resize(8, 0);
  return v;
}

}  // namespace

std::string parse_fio_json(const std::string& json_text, core::FioMetrics& m) {
  // fio may print warnings before its JSON.
  auto brace = json_text.find('{');
  if (brace == std::string::npos) return "fio wrote no JSON";
  auto j = nlohmann::json::parse(json_text.substr(brace), nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("jobs") || !j["jobs"].is_array() || j["jobs"].empty())
    return "fio's JSON is malformed or has no jobs";
  try {
    // Every job of the sample: kab's [global] asks for group_reporting, so each
    // entry is a reporting group (numjobs jobs together, as fio sums them).
    // Groups apart (stonewall) ran one after another.
    static const nlohmann::json k_none = nlohmann::json::object();
    auto side_of = [](const nlohmann::json& job, const char* name) -> const nlohmann::json& {
      if (!job.is_object()) return k_none;
      auto it = job.find(name);
      return it != job.end() && it->is_object() ? *it : k_none;
    };
    const auto& jobs = j["jobs"];
    const bool one_group = jobs.size() == 1;
    struct Side {
      double bytes = 0, runtime_ms = 0, ios = 0, bw = 0, iops = 0;
      bool present = false;
    } read, write;
    double elapsed_ms = 0;   // per group the longer of its sides, summed
    m = core::FioMetrics{};
    for (const auto& job : jobs) {
      if (!job.is_object()) return "fio's JSON has a job that is not an object";
      if (int e = job.value("error", 0)) m.fio_error = e;
      double group_ms = 0;
      for (auto [side, name] : {std::pair(&read, "read"), std::pair(&write, "write")}) {
        const auto& f = side_of(job, name);
        side->present |= &f != &k_none;
        const double bytes = f.value("io_bytes", 0.0), runtime = f.value("runtime", 0.0), iops = f.value("iops", 0.0);
        side->bytes += bytes;
        side->runtime_ms += runtime;
        side->ios += iops * runtime / 1000.0;
        side->bw = f.value("bw_bytes", 0.0);   // fio's own figures: kept when there is one group
        side->iops = iops;
        if (bytes > 0) group_ms = std::max(group_ms, runtime);
      }
      elapsed_ms += group_ms;
    }
    if (m.fio_error) return "fio reported error " + std::to_string(m.fio_error);
    if (!read.present && !write.present) return "fio's JSON has no read or write figures";
    for (Side* side : {&read, &write})
      if (!one_group) {
        side->bw = side->runtime_ms > 0 ? side->bytes / (side->runtime_ms / 1000.0) : 0;
        side->iops = side->runtime_ms > 0 ? side->ios / (side->runtime_ms / 1000.0) : 0;
      }
    m.read_bw_bytes = read.bytes > 0 ? read.bw : 0;
    m.read_iops = read.bytes > 0 ? read.iops : 0;
    m.write_bw_bytes = write.bytes > 0 ? write.bw : 0;
    m.write_iops = write.bytes > 0 ? write.iops : 0;
    m.bytes = read.bytes + write.bytes;
    const bool wrote = write.bytes > 0, mixed = wrote && read.bytes > 0;
    if (!mixed) {
      const Side& s = wrote ? write : read;
      m.bw_bytes = s.bw;
      m.iops = s.iops;
      m.runtime_ms = s.runtime_ms;
    } else if (one_group) {
      // What fio prints for a job that reads and writes, added: both directions.
      m.bw_bytes = read.bw + write.bw;
      m.iops = read.iops + write.iops;
      m.runtime_ms = elapsed_ms;
    } else {
      // Phases one after another: all bytes over the time the phases took.
      m.runtime_ms = elapsed_ms;
      m.bw_bytes = elapsed_ms > 0 ? m.bytes / (elapsed_ms / 1000.0) : 0;
      m.iops = elapsed_ms > 0 ? (read.ios + write.ios) / (elapsed_ms / 1000.0) : 0;
    }
    // Latency percentiles from fio's report of the group and direction that
    // moved the most bytes (writes win a tie: the RFC's question is writeback).
    const nlohmann::json* largest = nullptr;
    const char* largest_side = "write";
    double largest_bytes = -1;
    for (const auto& job : jobs)
      for (const char* name : {"write", "read"}) {
        const double bytes = side_of(job, name).value("io_bytes", 0.0);
        if (bytes > largest_bytes) {
          largest_bytes = bytes;
          largest = &job;
          largest_side = name;
        }
      }
    const auto& side = side_of(*largest, largest_side);
    if (side.contains("clat_ns") && side["clat_ns"].is_object() && side["clat_ns"].contains("percentile")) {
      const auto& p = side["clat_ns"]["percentile"];
      m.clat_p50_ns = p.value("50.000000", 0.0);
      m.clat_p99_ns = p.value("99.000000", 0.0);
      m.clat_p999_ns = p.value("99.900000", 0.0);
    }
    m.usr_cpu = largest->value("usr_cpu", 0.0);
    m.sys_cpu = largest->value("sys_cpu", 0.0);
  } catch (const nlohmann::json::exception& e) {
    return std::string("fio's JSON is malformed: ") + e.what();
  }
  if (m.fio_error) return "fio reported error " + std::to_string(m.fio_error);
  return "";
}

// "KEY VALUE", as the agent writes a counter; nullopt when it is not one.
static std::optional<std::pair<std::string, double>> key_value(const std::string& text) {
  std::istringstream r(text);
  std::string k;
  double v = 0;
  if (!(r >> k >> v)) return std::nullopt;
  return std::make_pair(k, v);
}

std::string parse_record(const std::string& record, core::Sample& s) {
  std::istringstream ss(record);
  std::string line, json_text, end_status, stat_before, stat_after;
  bool in_json = false, ended = false;
  double fio_start = -1, fio_end = -1, fio_rc = -1;
  double wbt_sum = 0, wb_sum = 0;
  int n_samples = 0;
  std::map<std::string, double> vm_before, vm_after;
  std::vector<std::string> errors, fio_log;   // fio_log: the first lines fio printed (a failed verify says where)
  while (std::getline(ss, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (in_json) {
      if (line == "KAB-FIO-JSON-END") in_json = false;
      else json_text += line + "\n";
      continue;
    }
    auto sp = line.find(' ');
    std::string tag = line.substr(0, sp);
    std::string rest = sp == std::string::npos ? "" : line.substr(sp + 1);
    if (tag == "KAB-FIO-JSON-BEGIN") in_json = true;
    else if (tag == "KAB-FIO-START") fio_start = num(fields(rest), "uptime");
    else if (tag == "KAB-FIO-END") {
      auto f = fields(rest);
      fio_end = num(f, "uptime");
      fio_rc = num(f, "rc");
    } else if (tag == "KAB-SAMPLE") {
      auto f = fields(rest);
      double wbt = num(f, "wbtmp_kb"), wb = num(f, "wb_kb"), nwt = num(f, "nr_writeback_temp");
      s.guest.writeback_tmp_peak_kb = std::max(s.guest.writeback_tmp_peak_kb, wbt);
      s.guest.writeback_peak_kb = std::max(s.guest.writeback_peak_kb, wb);
      s.guest.nr_writeback_temp_peak = std::max(s.guest.nr_writeback_temp_peak, nwt);
      wbt_sum += wbt;
      wb_sum += wb;
      ++n_samples;
    } else if (tag == "KAB-VMSTAT-BEFORE" || tag == "KAB-VMSTAT-AFTER") {
      if (auto kv = key_value(rest)) (tag == "KAB-VMSTAT-BEFORE" ? vm_before : vm_after)[kv->first] = kv->second;
    } else if (tag == "KAB-STAT-BEFORE") stat_before = rest;
    else if (tag == "KAB-STAT-AFTER") stat_after = rest;
    else if (tag == "KAB-MEMCG") {
      // The memory cgroup fio ran in (guest.memory_cgroup): its limit, its
      // events and reclaim counters at the end, kept as memcg_KEY.
      if (auto kv = key_value(rest)) s.guest.vmstat_delta["memcg_" + kv->first] = kv->second;
    } else if (tag == "KAB-ERROR") errors.push_back(rest);
    else if (tag == "KAB-FIO-LOG" && fio_log.size() < 3 && !core::trim(rest).empty()) fio_log.push_back(core::trim(rest));
    else if (tag == "KAB-END") {
      ended = true;
      end_status = fields(rest)["status"];
    }
  }
  if (n_samples) {
    s.guest.writeback_tmp_mean_kb = wbt_sum / n_samples;
    s.guest.writeback_mean_kb = wb_sum / n_samples;
  }
  for (const auto& [k, v] : vm_after)
    if (vm_before.count(k)) s.guest.vmstat_delta[k] = v - vm_before[k];
  if (!stat_before.empty() && !stat_after.empty()) {
    auto b = cpu_line(stat_before), a = cpu_line(stat_after);
    s.guest.guest_user_s = ((a[0] - b[0]) + (a[1] - b[1])) / 100.0;
    s.guest.guest_sys_s = ((a[2] - b[2]) + (a[5] - b[5]) + (a[6] - b[6])) / 100.0;
  }
  if (fio_start >= 0) s.boot_s = fio_start;
  if (fio_start >= 0 && fio_end >= 0) s.fio_s = fio_end - fio_start;
  s.fio_json = json_text;
  if (!ended) return "the agent's record has no end (guest stopped early)";
  if (end_status != "ok") {
    std::string why = "agent: " + end_status;
    for (const auto& e : errors) why += "; " + e;
    if (fio_rc > 0) why += "; fio exited " + std::to_string(static_cast<int>(fio_rc));
    for (const auto& l : fio_log) why += "; fio: " + l;
    return why;
  }
  return parse_fio_json(json_text, s.fio);
}

}  // namespace kab::fio
