#include "core/orchestrator.h"

#include <algorithm>
#include <filesystem>

#include "core/fio_job.h"
#include "core/health.h"

namespace kab::core {

std::string kernel_ref(const std::string& kernel, const std::string& variant) {
  return variant.empty() ? kernel : kernel + "+" + variant;
}

namespace {

SampleStatus status_of(GuestOutcome::End end) {
  switch (end) {
    case GuestOutcome::End::completed: return SampleStatus::ok;
    case GuestOutcome::End::timeout: return SampleStatus::timeout;
    case GuestOutcome::End::crashed: return SampleStatus::crashed;
    case GuestOutcome::End::failed: return SampleStatus::failed;
  }
  return SampleStatus::failed;
}

std::string tail_lines(const std::string& text, std::size_t n) {
  std::size_t end = text.size();
  if (end > 0 && text[end - 1] == '\n') --end;
  std::size_t pos = end;
  for (std::size_t i = 0; i < n; ++i) {
    if (pos == 0) return text;
    std::size_t nl = text.rfind('\n', pos - 1);
    if (nl == std::string::npos) return text;
    pos = nl;
  }
  return text.substr(pos + 1);
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

}  // namespace

Sample Orchestrator::run_one(const PlannedSample& ps, const RunSettings& st) {
  Sample s;
  s.run_id = st.run_id;
  s.plan_index = ps.index;
  s.arm = ps.arm;
  s.kernel = ps.kernel;
  s.variant = ps.variant;
  s.backend = ps.backend;
  s.platform = ps.platform;
  s.cell = ps.cell;
  s.repetition = ps.repetition;
  s.started_at = m_p.host->now_iso();
  s.noise = st.noise;
  const double t0 = m_p.host->now_s();

  // Before the guest runs, only the platform can fail a sample.
  auto fail = [&](SampleStatus status, const std::string& reason) {
    s.health.status = status;
    s.health.reason = reason;
    s.health.failed_by = FailedBy::platform;
    s.total_s = m_p.host->now_s() - t0;
    return s;
  };

  auto kit = st.kernels.find(kernel_ref(ps.kernel, ps.variant));
  if (kit == st.kernels.end()) return fail(SampleStatus::failed, "kernel " + kernel_ref(ps.kernel, ps.variant) + " was not built");
  s.kernel_build_key = kit->second.key;
  const BackendSpec* spec = nullptr;
  for (const auto& b : m_s.backends)
    if (b.name == ps.backend) spec = &b;
  if (!spec) return fail(SampleStatus::failed, "unknown backend " + ps.backend);

  const std::string work = st.work_root + "/sample-" + std::to_string(ps.index);
  if (m_s.quiet_load > 0) {
    for (int i = 0; i < 120 && m_p.host->load1() > m_s.quiet_load; ++i) m_p.host->sleep_s(1);
  }
  s.host_load_before = m_p.host->load1();
  m_p.host->steal_pct_since_last();
  m_p.host->drop_caches();

  std::unique_ptr<Backend> backend = m_p.make_backend(*spec);
  BackendHandle bh;
  try {
    bh = backend->start(*spec, work);
  } catch (const std::exception& e) {
    return fail(SampleStatus::failed, std::string("backend did not start: ") + e.what());
  }
  s.backend_cmdline = bh.cmdline;

  GuestRequest req;
  req.kernel = &kit->second;
  const bool disk = m_s.guest.image == "disk";
  (disk ? req.root_disk : req.initramfs) = st.base_image;
  const std::string job = fio_job_for(m_s.fio, ps.cell);
  try {
    (disk ? req.sample_disk : req.extra_initramfs) = m_p.sample_image(ps, job, work);
  } catch (const std::exception& e) {
    backend->stop();
    return fail(SampleStatus::failed, std::string("sample image: ") + e.what());
  }
  req.backend_socket = bh.socket_path;
  req.guest = m_s.guest;
  req.work_dir = work;
  // Unique per kab process: two kab runs (other databases) may share the host.
  req.name = "kab-" + st.instance + "-" + std::to_string(st.run_id) + "-" + std::to_string(ps.index);
  req.vcpu_cpus = st.vcpu_cpus;
  req.emulator_cpus = st.emulator_cpus;
  req.backend_alive = [&backend] { return backend->alive(); };

  GuestOutcome out;
  bool hypervisor_failed = false;
  try {
    out = m_p.hypervisor->run(req);
  } catch (const std::exception& e) {
    hypervisor_failed = true;
    // Hypervisors report guest failures as outcomes; anything thrown is the
    // platform failing (libvirt gone, a spawn error): this sample failed, the run goes on.
    out = GuestOutcome{};
    out.end = GuestOutcome::End::failed;
    out.reason = std::string("hypervisor: ") + e.what();
  }
  const bool backend_alive = backend->alive();
  // The host side of the share, before the backend's stop removes it: what
  // the guest wrote, as the backend stored it. Only after a guest that ran its
  // job to the end (a crashed guest's files are not a finished write).
  HostCheckResult host_check;
  if (!m_s.fio.host_check_text.empty() && out.end == GuestOutcome::End::completed) {
    if (!m_p.host_check)
      host_check = {"no host check port", false};
    else if (bh.shared_dir.empty())
      host_check = {"the backend has no share directory on the host", false};
    else
      host_check = m_p.host_check(m_s.fio.host_check_text, bh.shared_dir, work);
  }
  const double t_stop = m_p.host->now_s();   // teardown: the backend's stop, not the check
  s.backend_usage = backend->stop();
  s.backend_stats_json = backend->stats_json();
  s.vm_usage = out.vm_usage;
  s.teardown_s = m_p.host->now_s() - t_stop;
  s.host_load_after = m_p.host->load1();
  s.host_steal_pct = m_p.host->steal_pct_since_last();

  s.console_log = m_p.read_file(out.console_path);
  s.agent_record = m_p.read_file(out.report_path);
  s.health.status = status_of(out.end);
  s.health.reason = out.reason;
  if (out.end == GuestOutcome::End::completed) {
    std::string why;
    try {
      why = m_p.parse_record(s.agent_record, s);
    } catch (const std::exception& e) {
      why = std::string("the agent's record cannot be read: ") + e.what();
    }
    if (!why.empty()) {
      s.health.status = SampleStatus::failed;
      s.health.reason = why;
    }
  } else if (!s.agent_record.empty()) {
    // A guest that did not finish (hung, crashed): its record still says how
    // long it took to boot (its uptime when fio started), the rest is not a measurement.
    Sample partial;
    try {
      m_p.parse_record(s.agent_record, partial);
    } catch (const std::exception&) {
    }
    s.boot_s = partial.boot_s;
  }
  if (!backend_alive && out.end == GuestOutcome::End::failed) {
    // The hypervisor ended the guest because its backend died: say why it died.
    s.health.reason += "; its log ends: " + tail_lines(m_p.read_file(bh.log_path), 3);
  }
  bool host_check_platform = false;
  if (!host_check.failure.empty()) {
    // Data the host finds wrong: the guest's kernel wrote it, so the guest
    // failed. A check that could not be made (fio missing, timed out, its
    // job rejected) says nothing of the kernel: the platform failed.
    if (s.health.status == SampleStatus::ok) {
      s.health.status = SampleStatus::failed;
      s.health.reason = "host check (" + std::filesystem::path(m_s.fio.host_check).filename().string() + ", on the host side of the share)" +
                        (host_check.data_wrong ? ": " : " could not run: ") + first_line(host_check.failure);
      host_check_platform = !host_check.data_wrong;
    }
    s.health.findings.push_back("host check:\n" + host_check.failure);
  }
  // A guest-side check that reports through the kernel log must have said
  // it passed (guest.expect_console).
  if (s.health.status == SampleStatus::ok && !m_s.guest.expect_console.empty() &&
      s.console_log.find(m_s.guest.expect_console) == std::string::npos) {
    s.health.status = SampleStatus::failed;
    s.health.reason = "the console never says \"" + m_s.guest.expect_console +
                      "\" (guest.expect_console): the guest's own check did not report that it passed";
  }
  if (s.health.status != SampleStatus::ok)
    s.health.failed_by = host_check_platform || hypervisor_failed || out.platform_failed || (!backend_alive && out.end == GuestOutcome::End::failed)
                             ? FailedBy::platform
                             : FailedBy::guest;
  if (s.health.status != SampleStatus::ok && s.health.status != SampleStatus::unhealthy)
    s.health.findings.push_back("console tail:\n" + tail_lines(s.console_log, 20));
  // Health: a finished sample whose kernel complained is kept but marked.
  auto findings = console_findings(s.console_log);
  if (!findings.empty()) {
    if (s.health.status == SampleStatus::ok) {
      s.health.status = SampleStatus::unhealthy;
      s.health.failed_by = FailedBy::guest;
      // The "cut here" banner says nothing; the line after it names the problem.
      std::string first = findings.front();
      for (const auto& f : findings)
        if (f.find("cut here") == std::string::npos) {
          first = f;
          break;
        }
      s.health.reason = "kernel log: " + first;
    }
    s.health.findings.insert(s.health.findings.begin(), findings.begin(), findings.end());
  }
  // The record gives the guest's uptime at fio's start; add QEMU's start-up.
  s.boot_s += out.boot_s;
  s.total_s = m_p.host->now_s() - t0;
  if (s.health.status == SampleStatus::ok && !st.keep_work) m_p.remove_tree(work);
  return s;
}

RunSummary Orchestrator::run(const Plan& plan, const RunSettings& st, const std::function<bool()>& interrupted) {
  RunSummary sum;
  std::set<int> done = m_p.sink->completed_indices(st.run_id);
  const int total = static_cast<int>(plan.samples.size());
  int position = -1;   // in this plan (a shard's samples keep the whole plan's indices)
  for (const auto& ps : plan.samples) {
    ++position;
    if (done.count(ps.index)) {
      ++sum.skipped;
      continue;
    }
    if (interrupted()) {
      sum.interrupted = true;
      break;
    }
    if (st.stop_before && st.stop_before(ps.index)) {
      sum.stopped = true;
      break;
    }
    Sample s = run_one(ps, st);
    if (s.health.status != SampleStatus::ok && interrupted()) {
      // The sample in flight when kab was interrupted is not a measurement.
      sum.interrupted = true;
      break;
    }
    m_p.sink->add_sample(s);
    ++sum.stored;
    ++sum.by_status[s.health.status];
    if (st.on_sample) st.on_sample(position, total, s);
  }
  return sum;
}

}  // namespace kab::core
