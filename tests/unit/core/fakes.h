// Fakes of every port of core's orchestrator and run use case (ninja's
// FakeCommandRunner style): scripted failures by name, real console text
// from tests/data. Shared by test_orchestrator.cpp and test_scenario_run.cpp.
#pragma once

#include <filesystem>
#include <functional>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>

#include "core/orchestrator.h"

namespace kab::core::fakes {

inline std::string data_file(const std::string& name) {
  std::ifstream in(std::string(KAB_TEST_DATA) + "/console/" + name);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Files the fakes "write": path → text.
struct FakeFs {
  std::map<std::string, std::string> files;
  std::vector<std::string> removed;
};

// Fails samples by script: "boot-timeout@3" (sample 3 times out),
// "panic-after-2" (every sample after the second panics), "backend-dies@1",
// "warn@0" (kernel WARNING in the console of sample 0), "no-record@4".
class FakeHypervisor : public Hypervisor {
 public:
  FakeHypervisor(FakeFs& fs, std::string script) : m_fs(fs), m_script(std::move(script)) {}
  std::string accelerator() override { return "fake"; }
  std::string kernel_arch() const override { return arch; }
  std::string report_device() const override { return "/dev/fake0"; }
  PinningPlan pinning(int host_cpus, int vcpus) const override {
    PinningPlan p;
    p.noise = "fake plan for " + std::to_string(host_cpus) + " CPUs, " + std::to_string(vcpus) + " vCPUs";
    p.backend_cpus = {0};
    p.vcpu_cpus = {1};
    p.emulator_cpus = {0};
    p.raise_priority = true;
    p.warning = "fake warning";
    return p;
  }
  std::string versions() override {
    if (m_script.find("versions-throw") != std::string::npos) throw std::runtime_error("cannot connect to qemu:///system");
    return "fake 1.0";
  }
  GuestOutcome run(const GuestRequest& r) override {
    int n = m_boots++;
    requests.push_back(r);
    if (m_script.find("throws@" + r.name.substr(r.name.rfind('-') + 1)) != std::string::npos)
      throw std::runtime_error("libvirt: connection reset");
    int index = std::stoi(r.name.substr(r.name.rfind('-') + 1));
    GuestOutcome o;
    o.console_path = r.work_dir + "/console.log";
    o.report_path = r.work_dir + "/report.log";
    o.boot_s = 0.5;
    auto has = [&](const std::string& what) { return m_script.find(what + "@" + std::to_string(index)) != std::string::npos; };
    m_fs.files[o.console_path] = data_file("ok.txt");
    if (r.backend_alive && !r.backend_alive()) {   // as the real hypervisors poll it
      o.end = GuestOutcome::End::failed;
      o.reason = "the backend died while the guest ran";
      return o;
    }
    if (has("refused")) {   // as libvirt refusing the domain
      o.end = GuestOutcome::End::failed;
      o.reason = "libvirt could not start domain " + r.name + ": internal error";
      o.platform_failed = true;
      return o;
    }
    if (has("boot-timeout")) {
      o.end = GuestOutcome::End::timeout;
      o.reason = "guest did not finish in " + std::to_string(static_cast<int>(r.guest.timeout_s)) + " s";
      return o;
    }
    if (m_script.find("panic-after-2") != std::string::npos && n >= 2) {
      m_fs.files[o.console_path] = data_file("panic.txt");
      o.end = GuestOutcome::End::crashed;
      o.reason = "kernel panic";
      return o;
    }
    if (has("warn")) m_fs.files[o.console_path] = data_file("warning.txt");
    if (has("no-record")) {
      o.end = GuestOutcome::End::crashed;
      o.reason = "guest stopped without the agent's record";
      return o;
    }
    m_fs.files[o.report_path] = "KAB-BEGIN sample=" + std::to_string(index) + "\nKAB-END status=ok\n";
    o.end = GuestOutcome::End::completed;
    last_request = r;
    return o;
  }
  GuestRequest last_request;   // its kernel pointer and backend_alive dangle after the run: read names, CPUs, paths
  std::vector<GuestRequest> requests;
  std::string arch = "x86_64";

 private:
  FakeFs& m_fs;
  std::string m_script;
  int m_boots = 0;
};

class FakeBackend : public Backend {
 public:
  FakeBackend(bool dies, int* live, bool refuses = false) : m_dies(dies), m_refuses(refuses), m_live(live) {}
  ~FakeBackend() override { stop(); }
  BackendHandle start(const BackendSpec& spec, const std::string& work) override {
    if (m_refuses) throw std::runtime_error("socket " + work + "/sock: address in use");
    ++*m_live;
    m_running = true;
    std::string cpus;
    for (int c : spec.cpus) cpus += (cpus.empty() ? " --cpus " : ",") + std::to_string(c);
    return {work + "/sock", work + "/share", "fake-backend --name " + spec.name + cpus, work + "/backend.log"};
  }
  bool alive() override { return m_running && !m_dies; }
  HostUsage stop() override {
    if (m_running) --*m_live;
    m_running = false;
    return {1.5, 0.5, 100, 0};
  }

 private:
  bool m_dies, m_refuses;
  int* m_live;
  bool m_running = false;
};

class VectorSink : public SampleSink {
 public:
  void add_sample(const Sample& s) override { samples.push_back(s); }
  std::set<int> completed_indices(std::int64_t) override {
    std::set<int> out;
    for (const auto& s : samples) out.insert(s.plan_index);
    return out;
  }
  std::vector<Sample> samples;
};

class FakeHost : public HostProbe {
 public:
  double load1() override { return 0.5; }
  double steal_pct_since_last() override { return 0; }
  void drop_caches() override { ++drops; }
  std::string now_iso() override { return "2026-11-28T00:00:00Z"; }
  double now_s() override { return t += 1; }
  void sleep_s(double) override {}
  int cpus() override { return 2; }
  bool raise_priority() override { return true; }
  int drops = 0;
  double t = 0;
};

// The record parser's stand-in: a record that ends with status=ok is 100 MiB/s.
inline std::string fake_parse_record(const std::string& rec, Sample& s) {
  // The guest's uptime at fio's start, as the real parser reads it (ended or not).
  if (auto at = rec.find("KAB-FIO-START uptime="); at != std::string::npos) s.boot_s = std::stod(rec.substr(at + 21));
  if (rec.find("KAB-END status=ok") == std::string::npos) return "no end";
  s.fio.bw_bytes = 100 << 20;
  return "";
}

// read_file and remove_tree over the fakes' files.
inline std::function<std::string(const std::string&)> fake_reader(FakeFs& fs) {
  return [&fs](const std::string& path) { return fs.files.count(path) ? fs.files[path] : std::string(); };
}
inline std::function<void(const std::string&)> fake_remover(FakeFs& fs) {
  return [&fs](const std::string& path) { fs.removed.push_back(path); };
}

}  // namespace kab::core::fakes
