#include "scenario/scenario.h"

#include <algorithm>
#include <cstdio>
#include <set>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/analyzer.h"
#include "core/fio_job.h"
#include "core/planner.h"
#include "scenario/yaml_reader.h"

namespace fs = std::filesystem;

namespace kab::scenario {

namespace {

const std::vector<std::string> k_top_keys = {"name",   "description", "arms",       "backends", "guest",
                                             "fio",    "repetitions", "seed",       "min_effect",
                                             "alpha",  "quiet_load",  "primary_metric", "stop"};
const std::vector<std::string> k_stop_keys = {"until_decided", "max_samples"};
const std::vector<std::string> k_backend_keys = {"name",    "type",  "binary", "cache",     "writeback", "thread_pool_size",
                                                 "sandbox", "store", "cpus",   "cpu_quota", "dpu"};
const std::vector<std::string> k_dpu_keys = {"cores", "core_cpus", "latency_us", "bandwidth_mbps", "queue_depth"};
const std::vector<std::string> k_guest_keys = {"platform", "vcpus",  "memory",        "cmdline",
                                               "timeout",  "image", "expect_console", "memory_cgroup"};
const std::vector<std::string> k_fio_keys = {"job", "matrix", "exclude", "job_file", "override", "host_check"};
const std::vector<std::string> k_arm_keys = {"kernel", "variant"};

class ScenarioParser {
 public:
  ScenarioParser(const std::string& path, const std::string& text, const Context& ctx)
      : m_r(path, text), m_ctx(ctx) {
    m_s.path = path;
    m_s.text = text;
  }

  Parsed<core::Scenario> run() {
    Parsed<core::Scenario> out;
    auto root = m_r.load();
    if (root) {
      if (!root->IsMap()) {
        m_r.error_at(*root, "a scenario must be a map of keys (arms, backends, guest, fio, ...), got " +
                                kind_of(*root));
      } else {
        parse_root(*root);
        if (m_r.errors().empty()) check_with_fio(*root);
      }
    }
    out.errors = m_r.errors();
    if (out.errors.empty()) out.value = std::move(m_s);
    return out;
  }

 private:
  void parse_root(const YAML::Node& root) {
    m_r.check_keys(root, k_top_keys);
    if (root["name"]) {
      if (auto v = m_r.scalar(root["name"], "name")) m_s.name = *v;
    } else {
      m_s.name = fs::path(m_s.path).stem().string();
    }
    if (root["description"])
      if (auto v = m_r.scalar(root["description"], "description")) m_s.description = *v;
    if (m_r.require(root, "arms", "scenario")) parse_arms(root["arms"]);
    if (root["backends"]) parse_backends(root["backends"]);
    else {
      core::BackendSpec b;
      b.name = "virtiofsd";
      m_s.backends.push_back(b);
    }
    if (root["guest"]) parse_guest(root["guest"]);
    if (m_r.require(root, "fio", "scenario")) parse_fio(root["fio"]);
    if (root["repetitions"]) {
      if (auto v = m_r.integer(root["repetitions"], "repetitions")) {
        if (*v < 1) m_r.error_at(root["repetitions"], "'repetitions' must be at least 1, got " + std::to_string(*v));
        else m_s.repetitions = static_cast<int>(*v);
      }
    }
    if (root["stop"]) parse_stop(root["stop"], root["repetitions"]);
    if (root["seed"]) {
      if (auto v = m_r.integer(root["seed"], "seed")) {
        if (*v < 0) m_r.error_at(root["seed"], "'seed' must not be negative, got " + std::to_string(*v));
        else m_s.seed = static_cast<std::uint64_t>(*v);
      }
    }
    if (root["min_effect"]) {
      if (auto v = m_r.fraction(root["min_effect"], "min_effect")) {
        if (*v < 0 || *v >= 1) m_r.error_at(root["min_effect"], "'min_effect' must be between 0% and 100%");
        else m_s.min_effect = *v;
      }
    }
    if (root["alpha"]) {
      if (auto v = m_r.number(root["alpha"], "alpha")) {
        if (*v <= 0 || *v >= 1) m_r.error_at(root["alpha"], "'alpha' must be between 0 and 1, got " + root["alpha"].Scalar());
        else m_s.alpha = *v;
      }
    }
    if (root["quiet_load"])
      if (auto v = m_r.number(root["quiet_load"], "quiet_load")) m_s.quiet_load = *v;
    if (root["primary_metric"])
      if (auto v = m_r.scalar(root["primary_metric"], "primary_metric")) {
        std::vector<std::string> keys;
        for (const auto& mi : core::all_metrics()) keys.push_back(mi.key);
        if (known(root["primary_metric"], *v, "metric", keys)) m_s.primary_metric = *v;
      }
  }

  void parse_stop(const YAML::Node& stop, const YAML::Node& repetitions) {
    if (!m_r.expect_map(stop, "stop")) return;
    m_r.check_keys(stop, k_stop_keys);
    if (stop["until_decided"])
      if (auto v = m_r.boolean(stop["until_decided"], "until_decided")) m_s.stop.until_decided = *v;
    if (stop["max_samples"]) {
      if (auto v = m_r.integer(stop["max_samples"], "max_samples")) {
        if (*v < 4 || *v % 2 != 0 || *v > 1000)
          m_r.error_at(stop["max_samples"], "'max_samples' must be an even number from 4 to 1000 (whole ABBA blocks of "
                                            "2 samples per arm), got " + std::to_string(*v));
        else
          m_s.stop.max_samples = static_cast<int>(*v);
      }
    }
    if (m_s.stop.until_decided && m_s.arms.size() > 2)
      m_r.error_at(stop, "'stop: {until_decided: true}' decides between two arms; this scenario has " +
                             std::to_string(m_s.arms.size()));
    if (m_s.stop.until_decided && repetitions)
      m_r.error_at(repetitions, "'repetitions' fixes the samples per arm, 'stop: {until_decided: true}' samples until "
                                "decided: keep one (max_samples caps the sequential run)");
  }

  void parse_arms(const YAML::Node& arms) {
    if (!arms.IsMap()) {
      m_r.error_at(arms, "'arms' must be a map of arm name to kernel, got " + kind_of(arms));
      return;
    }
    for (auto it = arms.begin(); it != arms.end(); ++it) {
      core::Arm arm;
      arm.name = it->first.Scalar();
      bool dup = false;
      for (const auto& a : m_s.arms) dup = dup || a.name == arm.name;
      if (dup) {
        m_r.error_at(it->first, "duplicate arm name '" + arm.name + "'");
        continue;
      }
      const YAML::Node& v = it->second;
      // YAML::Node's assignment writes through to the node, so pick, never reassign.
      if (v.IsMap()) {
        m_r.check_keys(v, k_arm_keys);
        if (!m_r.require(v, "kernel", "arm '" + arm.name + "'")) continue;
      }
      const YAML::Node kernel_node = v.IsMap() ? v["kernel"] : v;
      if (v.IsMap()) {
        if (v["variant"])
          if (auto s = m_r.scalar(v["variant"], "variant")) arm.variant = *s;
      }
      auto k = m_r.scalar(kernel_node, "arms." + arm.name);
      if (!k) continue;
      arm.kernel = *k;
      if (!m_ctx.kernels.empty() &&
          std::find(m_ctx.kernels.begin(), m_ctx.kernels.end(), arm.kernel) == m_ctx.kernels.end()) {
        std::string msg = "arm '" + arm.name + "' names unknown kernel '" + arm.kernel + "'";
        if (auto s = core::suggest(arm.kernel, m_ctx.kernels)) msg += ", did you mean '" + *s + "'?";
        m_r.error_at(kernel_node, msg);
      }
      m_s.arms.push_back(arm);
    }
    if (static_cast<int>(m_s.arms.size()) < m_ctx.min_arms && m_r.errors().empty())
      m_r.error_at(arms, m_ctx.min_arms == 1 ? std::string("a scenario needs an arm")
                                             : "a scenario needs at least two arms (base first, then candidates), got " +
                                                   std::to_string(m_s.arms.size()));
  }

  std::optional<std::vector<int>> cpu_list(const YAML::Node& n, const std::string& name) {
    auto items = m_r.scalar_list(n, name);
    if (!items) return std::nullopt;
    std::vector<int> out;
    for (const auto& s : *items) {
      try {
        std::size_t used = 0;
        int v = std::stoi(s, &used);
        if (used != s.size() || v < 0) throw std::invalid_argument(s);
        out.push_back(v);
      } catch (const std::exception&) {
        m_r.error_at(n, "'" + name + "' must list host CPU numbers, got '" + s + "'");
        return std::nullopt;
      }
    }
    return out;
  }

  void parse_backends(const YAML::Node& list) {
    if (!m_r.expect_list(list, "backends")) return;
    if (list.size() == 0) {
      m_r.error_at(list, "'backends' is empty: name at least one backend");
      return;
    }
    for (const auto& b : list) {
      if (!m_r.expect_map(b, "backends item")) continue;
      m_r.check_keys(b, k_backend_keys);
      core::BackendSpec spec;
      if (m_r.require(b, "type", "backend"))
        if (auto t = m_r.scalar(b["type"], "type")) {
          if (known(b["type"], *t, "backend type", m_ctx.backend_types)) spec.type = *t;
        }
      spec.name = spec.type;
      if (b["name"])
        if (auto v = m_r.scalar(b["name"], "name")) spec.name = *v;
      for (const auto& other : m_s.backends)
        if (other.name == spec.name)
          m_r.error_at(b["name"] ? b["name"] : b, "duplicate backend name '" + spec.name + "'");
      if (b["binary"])
        if (auto v = m_r.scalar(b["binary"], "binary")) {
          fs::path p(*v);
          if (p.is_relative() && p.has_parent_path()) p = fs::path(m_s.path).parent_path() / p;
          spec.binary = p.has_parent_path() ? p.lexically_normal().string() : *v;   // a bare name: PATH
          if (m_ctx.check_binary)
            if (auto why = m_ctx.check_binary(spec.binary); !why.empty())
              m_r.error_at(b["binary"], "backend binary '" + *v + "' " + why +
                                            " (leave 'binary' out to use the daemon kab finds; kab doctor names it)");
        }
      if (b["cache"])
        if (auto v = m_r.scalar(b["cache"], "cache")) {
          if (*v != "auto" && *v != "always" && *v != "none")
            m_r.error_at(b["cache"], "'cache' must be auto, always or none, got '" + *v + "'");
          spec.cache = *v;
        }
      if (b["writeback"])
        if (auto v = m_r.boolean(b["writeback"], "writeback")) spec.writeback = *v;
      if (b["thread_pool_size"])
        if (auto v = m_r.integer(b["thread_pool_size"], "thread_pool_size")) {
          if (*v < 0) m_r.error_at(b["thread_pool_size"], "'thread_pool_size' must not be negative");
          spec.thread_pool_size = static_cast<int>(*v);
        }
      if (b["sandbox"])
        if (auto v = m_r.scalar(b["sandbox"], "sandbox")) {
          if (*v != "namespace" && *v != "chroot" && *v != "none")
            m_r.error_at(b["sandbox"], "'sandbox' must be namespace, chroot or none, got '" + *v + "'");
          spec.sandbox = *v;
        }
      if (b["store"])
        if (auto v = m_r.scalar(b["store"], "store")) {
          if (*v != "tmpfs" && (v->empty() || (*v)[0] != '/'))
            m_r.error_at(b["store"], "'store' must be tmpfs or an absolute host directory, got '" + *v + "'");
          spec.store = *v;
        }
      if (b["cpus"])
        if (auto v = cpu_list(b["cpus"], "cpus")) spec.cpus = *v;
      if (b["cpu_quota"])
        if (auto v = m_r.fraction(b["cpu_quota"], "cpu_quota")) {
          if (*v <= 0) m_r.error_at(b["cpu_quota"], "'cpu_quota' must be above 0");
          spec.cpu_quota = *v;
        }
      if (b["dpu"]) {
        const YAML::Node& d = b["dpu"];
        if (spec.type != "dpu")
          m_r.error_at(d, "'dpu' settings need 'type: dpu'");
        if (m_r.expect_map(d, "dpu")) {
          m_r.check_keys(d, k_dpu_keys);
          if (d["cores"])
            if (auto v = m_r.integer(d["cores"], "cores")) {
              if (*v < 1) m_r.error_at(d["cores"], "'cores' must be at least 1, got " + std::to_string(*v));
              spec.dpu.cores = static_cast<int>(*v);
            }
          if (d["core_cpus"])
            if (auto v = cpu_list(d["core_cpus"], "core_cpus")) spec.dpu.core_cpus = *v;
          if (d["latency_us"])
            if (auto v = m_r.number(d["latency_us"], "latency_us")) spec.dpu.latency_us = *v;
          if (d["bandwidth_mbps"])
            if (auto v = m_r.number(d["bandwidth_mbps"], "bandwidth_mbps")) spec.dpu.bandwidth_mbps = *v;
          if (d["queue_depth"])
            if (auto v = m_r.integer(d["queue_depth"], "queue_depth")) spec.dpu.queue_depth = static_cast<int>(*v);
        }
      }
      m_s.backends.push_back(spec);
    }
  }

  void parse_guest(const YAML::Node& g) {
    if (!m_r.expect_map(g, "guest")) return;
    m_r.check_keys(g, k_guest_keys);
    auto& s = m_s.guest;
    if (g["platform"])
      if (auto v = m_r.scalar(g["platform"], "platform")) {
        std::vector<std::string> names;
        for (const auto& p : m_ctx.platforms) names.push_back(p.name);
        if (known(g["platform"], *v, "platform", names)) s.platform = *v;
      }
    if (g["vcpus"])
      if (auto v = m_r.integer(g["vcpus"], "vcpus")) {
        if (*v < 1 || *v > 64) m_r.error_at(g["vcpus"], "'vcpus' must be between 1 and 64, got " + std::to_string(*v));
        s.vcpus = static_cast<int>(*v);
      }
    if (g["memory"])
      if (auto v = m_r.size(g["memory"], "memory")) {
        if (*v < (64ull << 20)) m_r.error_at(g["memory"], "'memory' must be at least 64M");
        s.memory_bytes = *v;
      }
    if (g["cmdline"])
      if (auto v = m_r.scalar(g["cmdline"], "cmdline")) s.cmdline = *v;
    if (g["memory_cgroup"])
      if (auto v = m_r.size(g["memory_cgroup"], "memory_cgroup")) {
        if (*v < (16ull << 20) || *v >= s.memory_bytes)
          m_r.error_at(g["memory_cgroup"], "'memory_cgroup' is fio's memory cgroup limit: at least 16M and below the "
                                           "guest's memory (" + std::to_string(s.memory_bytes >> 20) + "M)");
        else s.memory_cgroup_bytes = *v;
      }
    if (g["expect_console"])
      if (auto v = m_r.scalar(g["expect_console"], "expect_console")) {
        if (v->empty() || v->find_first_of("\r\n") != std::string::npos)
          m_r.error_at(g["expect_console"], "expect_console is text a console line holds: one line, not empty");
        else s.expect_console = *v;
      }
    if (g["timeout"])
      if (auto v = m_r.duration(g["timeout"], "timeout")) {
        if (*v <= 0) m_r.error_at(g["timeout"], "'timeout' must be above 0");
        s.timeout_s = *v;
      }
    if (g["image"])
      if (auto v = m_r.scalar(g["image"], "image")) {
        if (*v != "initramfs" && *v != "disk")
          m_r.error_at(g["image"], "'image' must be initramfs or disk, got '" + *v + "'");
        else if (*v == "disk")
          for (const auto& p : m_ctx.platforms)
            if (p.name == s.platform && !p.boots_disk) {
              std::string disk_platforms;
              for (const auto& q : m_ctx.platforms)
                if (q.boots_disk) disk_platforms += (disk_platforms.empty() ? "" : ", ") + q.name;
              m_r.error_at(g["image"], "'image: disk' needs a platform that boots a root disk (" + disk_platforms +
                                           "); platform " + p.name + " boots its initramfs");
            }
        s.image = *v;
      }
  }

  // Whether `value` is one of `names` (any value when `names` is empty);
  // otherwise an error at `node` with a suggestion or the list.
  bool known(const YAML::Node& node, const std::string& value, const std::string& what,
             const std::vector<std::string>& names) {
    if (names.empty() || std::find(names.begin(), names.end(), value) != names.end()) return true;
    std::string msg = "unknown " + what + " '" + value + "'";
    if (auto s = core::suggest(value, names)) msg += ", did you mean '" + *s + "'?";
    else {
      std::string list;
      for (std::size_t i = 0; i < names.size(); ++i)
        list += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + names[i];
      msg += " (expected " + list + ")";
    }
    m_r.error_at(node, msg);
    return false;
  }

  // A fio option's value: one line (a line break would add options to the job).
  std::optional<std::string> fio_value(const YAML::Node& node, const std::string& name) {
    auto v = m_r.scalar(node, name);
    if (v && v->find_first_of("\r\n") != std::string::npos) {
      m_r.error_at(node, "a fio value is one line: '" + name + "' has a line break");
      return std::nullopt;
    }
    return v;
  }

  void check_fio_option(const YAML::Node& key_node) {
    const std::string name = key_node.Scalar();
    if (!m_ctx.fio_knows || m_ctx.fio_knows(name)) return;
    std::string msg = "unknown fio option '" + name + "'";
    if (auto s = core::suggest(name, m_ctx.fio_options)) msg += ", did you mean '" + *s + "'?";
    m_r.error_at(key_node, msg);
  }

  // The installed fio parses the exact job text of every cell (fio
  // --parse-only): a value it rejects is an error at the scenario's (or the job
  // file's) line before anything is built or booted. Also checked: runtime and
  // ramp_time against the guest's timeout.
  void check_with_fio(const YAML::Node& root) {
    const YAML::Node f = root["fio"];
    // Per cell, its exact job text: fio's verdict on its values, how long it
    // can run (stonewall groups in sequence) and the most it lays out.
    std::set<std::string> seen;
    double longest = 0;
    std::uint64_t largest = 0;
    for (const auto& cell : core::expand_cells(m_s.fio)) {
      const std::string text = core::fio_job_for(m_s.fio, cell);
      if (m_ctx.fio_parse) {
        std::string msg = core::trim(m_ctx.fio_parse(text));
        if (!msg.empty() && seen.insert(msg).second) report_fio_error(f, msg);
      }
      std::vector<core::Diagnostic> ignored;
      auto job = core::parse_fio_job_file("", text, ignored);
      longest = std::max(longest, core::longest_run_s(job));
      largest = std::max(largest, core::total_size_bytes(job));
    }
    if (m_ctx.store_free_bytes)
      for (std::size_t i = 0; i < m_s.backends.size(); ++i) {
        const std::string& store = m_s.backends[i].store;
        auto free = m_ctx.store_free_bytes(store);
        if (!free || largest <= *free) continue;
        const YAML::Node b = root["backends"] && root["backends"].IsSequence() && i < root["backends"].size()
                                 ? root["backends"][i]
                                 : YAML::Node();
        const YAML::Node at = b && b.IsMap() && b["store"] ? b["store"] : f;
        m_r.error_at(at, "the job lays out up to " + core::human_bytes(static_cast<double>(largest)) +
                             " (size × numjobs over its sections) but the share's store (" +
                             (store == "tmpfs" ? std::string("tmpfs, /dev/shm") : store) + ") has " +
                             core::human_bytes(static_cast<double>(*free)) +
                             " free: lower size (fio.override: {size: …} for a job file) or give the backend a "
                             "larger store: /dir");
        break;
      }
    if (longest > m_s.guest.timeout_s) {
      char buf[160];
      std::snprintf(buf, sizeof buf, "fio may run %.0f s (runtime + ramp_time) but guest.timeout is %.0f s", longest,
                    m_s.guest.timeout_s);
      m_r.error_at(root["guest"] && root["guest"]["timeout"] ? root["guest"]["timeout"] : f,
                   std::string(buf) + ": raise guest.timeout (boot and teardown need ~30 s more) or shorten the job" +
                       (m_s.fio.job_file.empty() ? "" : " (fio.override: {runtime: …})"));
    }
  }

  // fio's "failed parsing bs=banana": at the value in the scenario's job or
  // matrix, at the option's line in a job file, else at fio:.
  void report_fio_error(const YAML::Node& f, const std::string& msg) {
    std::string key, value;
    if (auto at = msg.find("failed parsing "); at != std::string::npos) {
      std::string kv = core::trim(msg.substr(at + 15));
      kv = kv.substr(0, kv.find('\n'));
      key = kv.substr(0, kv.find('='));
      if (kv.find('=') != std::string::npos) value = kv.substr(kv.find('=') + 1);
    }
    std::string first = msg.substr(0, msg.find('\n'));
    if (core::starts_with(first, "fio: ")) first = first.substr(5);
    const std::string what = "fio rejects " + (key.empty() ? std::string("the job") : key + "=" + value) +
                             " (fio --parse-only: " + first + ")";
    if (!key.empty()) {
      for (const auto& ov : {f["override"], f["job"]})
        if (ov && ov.IsMap() && ov[key] && ov[key].IsScalar() && ov[key].Scalar() == value)
          return m_r.error_at(ov[key], what);
      if (f["matrix"] && f["matrix"].IsMap() && f["matrix"][key]) {
        for (const auto& v : f["matrix"][key])
          if (v.IsScalar() && v.Scalar() == value) return m_r.error_at(v, what);
        return m_r.error_at(f["matrix"][key], what);
      }
      if (!m_s.fio.job_file.empty()) {
        std::vector<core::Diagnostic> ignored;
        auto file = core::parse_fio_job_file(m_s.fio.job_file, m_s.fio.job_file_text, ignored);
        for (const auto& sec : file.sections)
          for (const auto& o : sec.options)
            if (o.key == key && o.value == value)
              return m_r.add({m_s.fio.job_file, o.line, o.value_col ? o.value_col : o.col, what,
                              core::line_of(m_s.fio.job_file_text, o.line)});
      }
    }
    m_r.error_at(f, what);
  }

  // A user's fio job file: read now (its text is run and stored with the run),
  // every option name checked against the installed fio, paths outside the
  // share and devices refused at the file's own line and column.
  // A fio job file's text, read now, with its errors at their line and
  // column: option names the installed fio does not know, paths outside the
  // share, no job section. On the host (fio.host_check) a job runs as kab's
  // user outside the guest, so it may not run commands (exec_prerun,
  // exec_postrun, the exec engine), load an engine other than fio's own
  // synchronous and asynchronous ones, name an absolute path (the share is
  // its working directory; /mnt/kab is the guest's name for it) or write logs.
  std::string read_fio_file(const std::string& path, bool on_host) {
    std::string text;
    if (m_ctx.read_job_file) text = m_ctx.read_job_file(path).value_or("");
    else {
      std::ifstream in(path, std::ios::binary);
      std::ostringstream ss;
      ss << in.rdbuf();
      text = ss.str();
    }
    std::vector<core::Diagnostic> errors;
    core::FioJobFile file = core::parse_fio_job_file(path, text, errors);
    for (const auto& sec : file.sections)
      for (const auto& o : sec.options) {
        if (on_host) {
          static const std::set<std::string> engines = {"psync", "sync", "pvsync", "pvsync2", "vsync",
                                                        "mmap",  "libaio", "posixaio", "io_uring", "null"};
          static const std::set<std::string> logs = {"write_iolog", "read_iolog", "write_bw_log", "write_lat_log",
                                                     "write_iops_log", "write_hist_log", "replay_redirect"};
          std::string why;
          if (o.key == "exec_prerun" || o.key == "exec_postrun" || (o.key == "ioengine" && o.value == "exec"))
            why = "runs a command";
          else if (o.key == "ioengine" && !engines.count(o.value))
            why = "is not one of the engines a host check may load (psync, sync, pvsync, pvsync2, vsync, mmap, "
                  "libaio, posixaio, io_uring, null)";
          else if (logs.count(o.key))
            why = "reads or writes a file outside the share";
          else if ((o.key == "filename" || o.key == "directory" || o.key == "opendir") &&
                   o.value.find('/') != std::string::npos && (o.value[0] == '/' || o.value.find("..") != std::string::npos))
            why = "names a path outside the share (a host check runs in the share's directory: give a relative name)";
          if (!why.empty())
            errors.push_back({path, o.line, o.col,
                              "'" + o.key + (o.key == "ioengine" || o.key == "filename" || o.key == "directory"
                                                 ? "=" + o.value
                                                 : std::string()) +
                                  "' " + why + ", and a host check runs on the host: not allowed there",
                              core::line_of(text, o.line)});
        }
        if (!m_ctx.fio_knows || m_ctx.fio_knows(o.key)) continue;
        std::string msg = "unknown fio option '" + o.key + "'";
        if (auto s = core::suggest(o.key, m_ctx.fio_options)) msg += ", did you mean '" + *s + "'?";
        errors.push_back({path, o.line, o.col, msg, core::line_of(text, o.line)});
      }
    for (auto& d : core::check_fio_job_targets(file)) errors.push_back(std::move(d));
    bool any_job = false;
    for (const auto& sec : file.sections) any_job |= sec.name != "global";
    if (!any_job) errors.push_back({path, 0, 0, "the job file has no job section ([name] after [global]): fio would run nothing", ""});
    for (auto& d : errors) m_r.add(std::move(d));
    return text;
  }

  // A file the scenario names under KEY (fio.job_file, fio.host_check),
  // relative to the scenario's directory; nullopt, with the error at the key,
  // when it is not there.
  std::optional<fs::path> file_beside(const YAML::Node& node, const std::string& key) {
    auto v = m_r.scalar(node, key);
    if (!v) return std::nullopt;
    fs::path p = *v;
    if (p.is_relative()) p = fs::path(m_s.path).parent_path() / p;
    if (!m_ctx.read_job_file && !fs::is_regular_file(p)) {
      m_r.error_at(node, key + " '" + *v + "' does not exist");
      return std::nullopt;
    }
    return p;
  }

  void read_job_file(const std::string& path) {
    m_s.fio.job_file = path;
    m_s.fio.job_file_text = read_fio_file(path, false);
  }

  void parse_fio(const YAML::Node& f) {
    if (!m_r.expect_map(f, "fio")) return;
    m_r.check_keys(f, k_fio_keys);
    auto& fio = m_s.fio;
    if (f["host_check"])
      if (auto p = file_beside(f["host_check"], "host_check")) {
        fio.host_check = p->lexically_normal().string();
        fio.host_check_text = read_fio_file(fio.host_check, true);
        // fio's own verdict on its values, as for the guest's job.
        if (m_ctx.fio_parse && m_r.errors().empty())
          if (std::string msg = core::trim(m_ctx.fio_parse(fio.host_check_text)); !msg.empty())
            m_r.error_at(f["host_check"], "fio rejects the host check (fio --parse-only: " +
                                              msg.substr(0, msg.find('\n')) + ")");
      }
    if (f["override"] && !f["job_file"])
      m_r.error_at(f["override"], "'override' sets options in a job file's sections: it needs 'job_file' (put options "
                                  "of a generated job under 'job')");
    if (f["job_file"]) {
      if (auto p = file_beside(f["job_file"], "job_file")) read_job_file(p->string());
      if (f["job"] || f["matrix"])
        m_r.error_at(f["job_file"], "'job_file' runs a fio job file as it is: it excludes 'job' and 'matrix' (use "
                                    "'override' to change its options)");
      if (f["override"] && m_r.expect_map(f["override"], "fio.override")) {
        const YAML::Node& ov = f["override"];
        for (auto it = ov.begin(); it != ov.end(); ++it) {
          check_fio_option(it->first);
          if (it->second.IsNull()) fio.override.emplace_back(it->first.Scalar(), "");
          else if (auto val = fio_value(it->second, it->first.Scalar())) {
            fio.override.emplace_back(it->first.Scalar(), *val);
            // An override may not point the job out of the share either.
            std::vector<core::Diagnostic> ignored;
            auto one = core::parse_fio_job_file("", "[o]\n" + it->first.Scalar() + "=" + *val + "\n", ignored);
            for (const auto& d : core::check_fio_job_targets(one)) m_r.error_at(it->second, d.message);
          }
        }
      }
      return;
    }
    if (!m_r.require(f, "job", "fio")) return;
    const YAML::Node& job = f["job"];
    if (m_r.expect_map(job, "fio.job")) {
      for (auto it = job.begin(); it != job.end(); ++it) {
        check_fio_option(it->first);
        if (it->second.IsNull()) {  // a flag such as `time_based:`
          fio.job.emplace_back(it->first.Scalar(), "");
          continue;
        }
        if (auto v = fio_value(it->second, it->first.Scalar())) fio.job.emplace_back(it->first.Scalar(), *v);
      }
    }
    if (f["matrix"]) {
      const YAML::Node& m = f["matrix"];
      if (m_r.expect_map(m, "fio.matrix")) {
        for (auto it = m.begin(); it != m.end(); ++it) {
          const std::string axis = it->first.Scalar();
          check_fio_option(it->first);
          auto values = m_r.scalar_list(it->second, axis);
          if (!values) continue;
          for (const auto& v : *values)
            if (v.find_first_of("\r\n") != std::string::npos)
              m_r.error_at(it->second, "a fio value is one line: '" + axis + "' has a line break");
          if (values->empty()) {
            m_r.error_at(it->second, "matrix axis '" + axis + "' is empty");
            continue;
          }
          fio.matrix.emplace_back(axis, *values);
        }
      }
    }
    if (f["exclude"]) {
      const YAML::Node& ex = f["exclude"];
      if (m_r.expect_list(ex, "fio.exclude")) {
        for (const auto& item : ex) {
          if (!m_r.expect_map(item, "exclude item")) continue;
          core::FioOptions partial;
          for (auto it = item.begin(); it != item.end(); ++it) {
            const std::string axis = it->first.Scalar();
            auto ax = std::find_if(fio.matrix.begin(), fio.matrix.end(),
                                   [&](const auto& a) { return a.first == axis; });
            if (ax == fio.matrix.end()) {
              std::vector<std::string> axes;
              for (const auto& a : fio.matrix) axes.push_back(a.first);
              std::string msg = "exclude names '" + axis + "', which is not a matrix axis";
              if (auto s = core::suggest(axis, axes)) msg += ", did you mean '" + *s + "'?";
              m_r.error_at(it->first, msg);
              continue;
            }
            auto v = m_r.scalar(it->second, axis);
            if (!v) continue;
            if (std::find(ax->second.begin(), ax->second.end(), *v) == ax->second.end())
              m_r.error_at(it->second, "exclude value '" + *v + "' is not on matrix axis '" + axis + "'");
            partial.emplace_back(axis, *v);
          }
          fio.exclude.push_back(partial);
        }
      }
    }
  }

  YamlReader m_r;
  const Context& m_ctx;
  core::Scenario m_s;
};

}  // namespace

Parsed<core::Scenario> parse_scenario(const std::string& path, const std::string& text, const Context& ctx) {
  return ScenarioParser(path, text, ctx).run();
}

Parsed<core::Scenario> load_scenario(const std::string& path, const Context& ctx) {
  auto text = read_file(path);
  if (!text) {
    Parsed<core::Scenario> out;
    out.errors.push_back({path, 0, 0, "cannot read scenario file", ""});
    return out;
  }
  return parse_scenario(path, *text, ctx);
}

Parsed<core::KernelSpec> parse_kernel(const std::string& path, const std::string& text,
                                      const std::string& kernels_dir) {
  Parsed<core::KernelSpec> out;
  YamlReader r(path, text);
  core::KernelSpec k;
  k.name = fs::path(path).stem().string();
  k.path = path;
  auto resolve_all = [&](const YAML::Node& n, const std::string& name, const std::string& sub) {
    std::vector<std::string> paths;
    auto items = r.scalar_list(n, name);
    if (!items) return paths;
    for (const auto& item : *items) {
      fs::path p = item;
      if (p.is_relative()) p = fs::path(kernels_dir) / sub / p;
      if (!fs::exists(p)) r.error_at(n, name + " file '" + item + "' does not exist (looked for " + p.string() + ")");
      paths.push_back(fs::absolute(p).lexically_normal().string());
    }
    return paths;
  };
  if (auto root = r.load()) {
    if (!root->IsMap()) {
      r.error_at(*root, "a kernel definition must be a map (source, patches, config, variants), got " +
                            kind_of(*root));
    } else {
      const YAML::Node& n = *root;
      r.check_keys(n, {"description", "source", "commits", "series", "patches", "config", "variants"});
      auto local_path = [&](const std::string& v, const fs::path& under) {
        fs::path p = v;
        if (core::starts_with(v, "~/") && std::getenv("HOME")) p = fs::path(std::getenv("HOME")) / v.substr(2);
        if (p.is_relative()) p = under / p;
        return fs::absolute(p).lexically_normal();
      };
      if (r.require(n, "source", "kernel definition") && n["source"].IsMap()) {
        // source: {git: REPO, ref: REF}
        const YAML::Node& g = n["source"];
        r.check_keys(g, {"git", "ref"});
        if (r.require(g, "git", "git source"))
          if (auto v = r.scalar(g["git"], "git")) {
            fs::path p = local_path(*v, kernels_dir);
            if (!fs::is_directory(p)) r.error_at(g["git"], "git repository '" + *v + "' does not exist (looked for " + p.string() + ")");
            else if (!fs::exists(p / ".git")) r.error_at(g["git"], "'" + *v + "' is not a git repository (no .git in " + p.string() + ")");
            k.git_repo = p.string();
          }
        if (g["ref"]) {
          if (auto v = r.scalar(g["ref"], "ref")) k.git_ref = *v;
        } else if (!n["commits"]) {
          r.error_at(g, "a git source needs ref: (a tag, branch or commit, or WORKTREE for the tree as it is on disk)");
        }
        k.source = "git:" + k.git_repo;
      } else if (n["source"])
        if (auto v = r.scalar(n["source"], "source")) {
          k.source = *v;
          bool package = core::starts_with(*v, "linux-source-");
          if (!package) {
            fs::path p = *v;
            if (p.is_relative()) p = fs::path(kernels_dir) / p;
            if (!fs::exists(p))
              r.error_at(n["source"], "source '" + *v + "' is neither a linux-source-X.Y package nor an existing path");
            else k.source = fs::absolute(p).lexically_normal().string();
            // A git work tree is the tree as it is: HEAD plus the uncommitted
            // changes as a patch, in HEAD's lane (as source: {git: DIR, ref: WORKTREE}).
            if (fs::exists(p / ".git")) {
              k.git_repo = k.source;
              k.git_ref = "WORKTREE";
              k.source = "git:" + k.git_repo;
            }
          }
        }
      if (n["commits"])
        if (auto v = r.scalar(n["commits"], "commits")) {
          k.commits = *v;
          if (k.git_repo.empty()) r.error_at(n["commits"], "commits: needs a git source (source: {git: REPO})");
          else if (k.git_ref == "WORKTREE") r.error_at(n["commits"], "commits: is a range of commits; the WORKTREE source has none");
          auto dots = v->find("..");
          if (dots == std::string::npos || dots == 0 || dots + 2 >= v->size() || v->find("...") != std::string::npos)
            r.error_at(n["commits"], "commits '" + *v + "' is not a range BASE..HEAD");
        }
      if (n["series"])
        if (auto v = r.scalar(n["series"], "series")) {
          fs::path p = local_path(*v, fs::path(kernels_dir) / "patches");
          if (!fs::is_regular_file(p)) r.error_at(n["series"], "series file '" + *v + "' does not exist (looked for " + p.string() + ")");
          k.series = p.string();
        }
      if (n["patches"]) k.patches = resolve_all(n["patches"], "patch", "patches");
      if (n["config"]) {
        const YAML::Node& c = n["config"];
        if (r.expect_map(c, "config")) {
          r.check_keys(c, {"base", "fragments", "arch_fragments"});
          if (c["base"])
            if (auto v = r.scalar(c["base"], "base")) {
              static const std::vector<std::string> bases = {"tinyconfig", "defconfig", "allnoconfig"};
              if (std::find(bases.begin(), bases.end(), *v) == bases.end()) {
                std::string msg = "unknown config base '" + *v + "'";
                if (auto s = core::suggest(*v, bases)) msg += ", did you mean '" + *s + "'?";
                r.error_at(c["base"], msg);
              }
              k.config_base = *v;
            }
          if (c["fragments"]) k.fragments = resolve_all(c["fragments"], "fragment", "configs");
          if (c["arch_fragments"] && r.expect_map(c["arch_fragments"], "arch_fragments")) {
            for (auto it = c["arch_fragments"].begin(); it != c["arch_fragments"].end(); ++it) {
              std::string arch = it->first.Scalar();
              if (arch != "x86_64" && arch != "um") r.error_at(it->first, "unknown arch '" + arch + "' (expected x86_64 or um)");
              k.arch_fragments.emplace_back(arch, resolve_all(it->second, "fragment", "configs"));
            }
          }
        }
      }
      if (n["variants"] && r.expect_map(n["variants"], "variants")) {
        for (auto it = n["variants"].begin(); it != n["variants"].end(); ++it)
          k.variants.emplace_back(it->first.Scalar(), resolve_all(it->second, "fragment", "configs"));
      }
    }
  }
  out.errors = r.errors();
  if (out.errors.empty()) out.value = std::move(k);
  return out;
}

Parsed<core::KernelSpec> load_kernel(const std::string& path, const std::string& kernels_dir) {
  auto text = read_file(path);
  if (!text) {
    Parsed<core::KernelSpec> out;
    out.errors.push_back({path, 0, 0, "cannot read kernel definition", ""});
    return out;
  }
  return parse_kernel(path, *text, kernels_dir);
}

std::vector<std::string> list_kernel_names(const std::string& kernels_dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(kernels_dir, ec))
    if (e.path().extension() == ".yaml") out.push_back(e.path().stem().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::string format_errors(const std::vector<core::Diagnostic>& errors) {
  std::string out;
  for (const auto& d : errors) out += core::format_diagnostic(d);
  return out;
}

}  // namespace kab::scenario
