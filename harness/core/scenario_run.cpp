#include "core/scenario_run.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/planner.h"

namespace kab::core {

std::vector<std::pair<std::string, std::string>> kernels_needed(const Scenario& s) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& arm : s.arms) {
    std::pair<std::string, std::string> k{arm.kernel, arm.variant};
    if (std::find(out.begin(), out.end(), k) == out.end()) out.push_back(k);
  }
  return out;
}

std::string noise_text(const PinningPlan& plan, const Scenario& s, std::optional<bool> priority_raised) {
  std::string text = plan.caveat.empty() ? "" : plan.caveat + "; ";
  text += "drop_caches; share on " + (s.backends.empty() ? std::string("tmpfs") : s.backends[0].store);
  if (!plan.noise.empty()) text += "; " + plan.noise;
  if (priority_raised) text += *priority_raised ? ", nice -10" : ", priority not raised (not permitted)";
  return text;
}

Comparison look_at(const Scenario& s, const std::vector<Sample>& samples, int look, int looks, int look_size) {
  AnalysisOptions o;
  o.base_arm = s.arms.at(0).name;
  o.candidate_arm = s.arms.at(1).name;
  o.primary = metric_from(s.primary_metric).value_or(Metric::bandwidth);
  o.metrics = {o.primary};
  o.bootstrap_resamples = 100;   // the look decides on the test and the interval, not the bootstrap
  o.seed = s.seed;
  o.sequential.look = look;
  o.sequential.looks = looks;
  o.sequential.look_size = look_size;
  return analyze(s, samples, o);
}

namespace {

std::string look_line(const Comparison& c) {
  std::string line = "look " + std::to_string(c.look) + " of " + std::to_string(c.looks);
  if (c.looks > 0 && std::fabs(c.information - static_cast<double>(c.look) / c.looks) > 1e-9) {
    char t[96];
    std::snprintf(t, sizeof t, " (information %.3f, not %.3f: samples failed)", c.information,
                  static_cast<double>(c.look) / c.looks);
    line += t;
  }
  line += ": " + to_string(c.verdict);
  for (const auto& cell : c.cells)
    for (const auto& r : cell.metrics)
      if (r.primary) {
        line += "; " + cell.backend + " " + cell.label + " " + metric_info(r.metric).label + " n = " +
                std::to_string(r.base.summary.n) + " + " + std::to_string(r.candidate.summary.n) + ": " + r.reason;
      }
  return line;
}

}  // namespace

RunOutcome ScenarioRun::execute(const RunRequest& rq) {
  const Scenario& s = rq.scenario;
  Hypervisor& hv = *m_p.hypervisor;
  RunOutcome res;
  const Plan plan = [&] {
    if (rq.shards == 0) return make_plan(s);
    try {
      return shard_of(make_plan(s), rq.shard, rq.shards);
    } catch (const std::invalid_argument& e) {
      throw RunError(RunError::Kind::input, (s.path.empty() ? s.name : s.path) + ": " + e.what());
    }
  }();
  const std::string arch = hv.kernel_arch();

  // Everything the plan boots, built (or taken from the cache) before the
  // first sample and before anything is recorded: a failed build leaves no run.
  RunSettings st;
  for (const auto& [name, variant] : kernels_needed(s)) {
    auto spec = rq.kernels.find(name);
    if (spec == rq.kernels.end())
      throw RunError(RunError::Kind::input, "kernel " + name + ": no definition given to the run");
    try {
      KernelArtifact a = m_p.kernels->build(spec->second, arch, variant);
      res.kernels.push_back(a);
      st.kernels[kernel_ref(name, variant)] = std::move(a);
    } catch (const RunError&) {
      throw;
    } catch (const std::exception& e) {
      throw RunError(RunError::Kind::infrastructure,
                     "kernel " + kernel_ref(name, variant) + " (" + arch + ") did not build: " + e.what());
    }
  }
  GuestImage img;
  try {
    img = m_p.image->build();
  } catch (const std::exception& e) {
    throw RunError(RunError::Kind::infrastructure, "guest image (" + s.guest.image + "): " + e.what());
  }
  st.base_image = img.path;

  // The platform before anything is recorded: a hypervisor that cannot be
  // reached (libvirt down) ends the run here, not as a failed sample each.
  std::string versions;
  try {
    res.accelerator = hv.accelerator();
    versions = hv.versions();
  } catch (const std::exception& e) {
    throw RunError(RunError::Kind::infrastructure, "platform " + s.guest.platform + ": " + e.what());
  }
  if (std::string w = hv.warning(); !w.empty()) m_p.progress->warning(w);
  if (rq.resume) {
    std::optional<StoredRun> stored;
    try {
      stored = m_p.store->stored_run(rq.resume);
    } catch (const std::exception& e) {
      throw RunError(RunError::Kind::infrastructure, std::string("result store: ") + e.what());
    }
    if (!stored) throw RunError(RunError::Kind::input, "no run " + std::to_string(rq.resume) + " in " + rq.where);
    if (stored->seed != plan.seed || stored->plan_size != static_cast<int>(plan.samples.size()) ||
        stored->scenario_text != s.text || stored->job_file_text != s.fio.job_file_text ||
        stored->host_check_text != s.fio.host_check_text)
      throw RunError(RunError::Kind::input, "run " + std::to_string(rq.resume) +
                                                " was made from another scenario, job file or seed; cannot resume it with " +
                                                (s.path.empty() ? s.name : s.path));
  }
  try {
    for (const auto& a : res.kernels) m_p.store->record_kernel(a);
    if (rq.resume) {
      m_p.store->resume_run(rq.resume);
      res.run_id = rq.resume;
    } else {
      RunRecord r;
      r.scenario = &s;
      r.plan = &plan;
      r.accelerator = res.accelerator;
      r.platform_versions = versions;
      r.command = rq.command;
      r.image = img;
      res.run_id = m_p.store->begin_run(r);
    }
  } catch (const std::exception& e) {
    throw RunError(RunError::Kind::infrastructure, std::string("result store: ") + e.what());
  }

  // Pinning as the platform plans it for this host; backends without CPUs of
  // their own get the plan's.
  const PinningPlan pin = hv.pinning(m_p.host->cpus(), s.guest.vcpus);
  Scenario run_s = s;
  for (auto& b : run_s.backends)
    if (b.cpus.empty()) b.cpus = pin.backend_cpus;
  std::optional<bool> raised;
  if (pin.raise_priority) raised = m_p.host->raise_priority();   // inherited by backend and guest
  if (!pin.warning.empty()) m_p.progress->warning(pin.warning);
  st.noise = noise_text(pin, s, raised);
  st.vcpu_cpus = pin.vcpu_cpus;
  st.emulator_cpus = pin.emulator_cpus;
  st.run_id = res.run_id;
  st.work_root = m_p.workspace->prepare(res.run_id);
  st.instance = m_p.workspace->instance();
  st.keep_work = rq.keep_work;

  const double t_start = m_p.host->now_s();
  int done_now = 0;
  st.on_sample = [&](int index, int total, const Sample& smp) {
    ++done_now;
    const double per = (m_p.host->now_s() - t_start) / done_now;
    m_p.progress->sample(index, total, smp, per * (total - index - 1));
  };

  OrchestratorPorts op;
  op.hypervisor = &hv;
  op.make_backend = m_p.make_backend;
  const std::string report_device = hv.report_device();
  op.sample_image = [&](const PlannedSample& ps, const std::string& job, const std::string& work) {
    SampleEnv env = {
        {"KAB_SAMPLE", std::to_string(ps.index)}, {"KAB_TAG", "kabfs"}, {"KAB_REPORT", report_device}};
    if (s.guest.memory_cgroup_bytes) env.emplace_back("KAB_MEMCG", std::to_string(s.guest.memory_cgroup_bytes));
    return m_p.image->sample_image(img, env, job, work);
  };
  op.sink = m_p.store;
  op.host = m_p.host;
  op.parse_record = m_p.parse_record;
  op.read_file = m_p.read_file;
  op.remove_tree = m_p.remove_tree;
  op.host_check = m_p.host_check;
  m_p.progress->note("run " + std::to_string(res.run_id) + ": " + std::to_string(plan.samples.size()) + " samples (" +
                     res.accelerator +
                     (rq.shards ? ", shard " + std::to_string(rq.shard) + " of " + std::to_string(rq.shards) : "") +
                     "), results in " + rq.where);
  if (plan.look_size > 0) {
    // Sequential: before the first sample of every look after the first, look
    // at the data; stop when the primary metric is decided.
    res.looks = plan.looks;
    st.stop_before = [&](int index) {
      if (index == 0 || index % plan.look_size != 0) return false;
      res.look = index / plan.look_size;
      Comparison c = look_at(s, m_p.store->run_samples(res.run_id), res.look, plan.looks, plan.look_size);
      res.verdict = c.verdict;
      m_p.progress->note(look_line(c));
      res.decided = c.verdict != Verdict::inconclusive;
      return res.decided;
    };
  }
  Orchestrator orch(run_s, op);
  RunSummary sum = orch.run(plan, st, m_p.interrupted ? m_p.interrupted : [] { return false; });
  res.stored = sum.stored;
  res.skipped = sum.skipped;
  res.interrupted = sum.interrupted;
  if (plan.look_size > 0 && !sum.stopped && !sum.interrupted) {
    // At the cap: the last look.
    res.look = plan.looks;
    Comparison c = look_at(s, m_p.store->run_samples(res.run_id), res.look, plan.looks, plan.look_size);
    res.verdict = c.verdict;
    m_p.progress->note(look_line(c));
  }
  for (const auto& [status, n] : sum.by_status)
    if (status != SampleStatus::ok) res.not_ok += n;
  m_p.store->finish_run(res.run_id, sum.interrupted);
  if (!rq.keep_work) m_p.workspace->finish(st.work_root);
  return res;
}

}  // namespace kab::core
