#include "cli/merge.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>

#include "cli/app.h"
#include "core/hash.h"
#include "core/text.h"
#include "store/store.h"

namespace fs = std::filesystem;

namespace kab::cli {

namespace {

// A run's identity in any database.
std::string identity(const store::RunRecord& r) {
  const std::string uid = store::run_fact(r, "run.uid");
  if (!uid.empty()) return uid;
  // Runs from before run.uid: when, where and what they ran.
  return "h" + core::fnv1a64_hex(r.created_at + "\n" + r.info.scenario_text + "\n" + std::to_string(r.info.plan_seed) +
                                 "\n" + r.info.cpu_model + "\n" + r.info.host_kernel + "\n" +
                                 store::run_fact(r, "command"));
}

// What makes a stored sample the same sample in two databases.
std::string fingerprint(const core::Sample& s) {
  char bw[64];
  std::snprintf(bw, sizeof bw, "%.17g", s.fio.bw_bytes);
  return s.arm + ", " + s.kernel_build_key.substr(0, 12) + ", started " + s.started_at + ", " +
         core::to_string(s.health.status) + ", " + bw + " B/s";
}

// The plan a shard is part of: the same scenario as run, seed and split.
std::string shard_set_key(const store::RunRecord& r, int count) {
  return core::fnv1a64_hex(r.info.scenario_text + "\n" + store::run_fact(r, "scenario.effective") + "\n" +
                           store::run_fact(r, "job_file_text") + "\n" + store::run_fact(r, "host_check_text") +
                           "\n" + std::to_string(r.info.plan_seed) + "\n" +
                           std::to_string(count));
}

// A run of the output, there already or to be added.
struct Target {
  std::int64_t id = 0;                  // in the output; 0 until added
  std::string where;                    // "a.db run 3"
  std::map<int, std::string> samples;   // plan index → fingerprint
  bool complete = false;
};

// What one input run brings.
struct Incoming {
  std::string ident, where;
  store::RunRecord record;
  std::vector<core::Sample> samples;   // those the output lacks
  int present = 0;
};

struct ShardSet {
  std::string scenario;
  std::uint64_t seed = 0;
  int count = 0;
  std::map<int, std::string> members;   // shard index → run identity
  bool touched = false;                 // a member came from the inputs
};

}  // namespace

std::optional<std::pair<int, int>> parse_shard(const std::string& text) {
  int i = 0, n = 0;
  char slash = 0, rest = 0;
  if (std::sscanf(text.c_str(), "%d%c%d%c", &i, &slash, &n, &rest) != 3 || slash != '/' || i < 1 || i > n)
    return std::nullopt;
  return std::pair(i, n);
}

MergeOutcome merge_databases(const std::string& output, const std::vector<std::string>& inputs) {
  for (const auto& in : inputs) {
    if (!fs::exists(in)) throw Fatal("kab db merge: no database " + in, k_exit_usage);
    std::error_code ec;
    if (fs::exists(output) && fs::equivalent(in, output, ec))
      throw Fatal("kab db merge: " + in + " is the output; name another file to merge into", k_exit_usage);
  }
  store::ResultStore out = store::ResultStore::open(output);
  std::map<std::string, Target> targets;
  std::map<std::string, ShardSet> sets;
  std::vector<std::string> conflicts;
  auto note_shard = [&](const store::RunRecord& r, const std::string& ident, const std::string& where,
                        const std::map<std::string, Target>& known, bool from_input) {
    const auto shard = parse_shard(store::run_fact(r, "shard"));
    if (!shard) return;
    const auto [index, count] = *shard;
    ShardSet& set = sets[shard_set_key(r, count)];
    set.scenario = r.info.scenario_name;
    set.seed = r.info.plan_seed;
    set.count = count;
    set.touched = set.touched || from_input;
    auto [it, fresh] = set.members.try_emplace(index, ident);
    if (!fresh && it->second != ident)
      conflicts.push_back("shard " + std::to_string(index) + "/" + std::to_string(count) + " of " +
                          r.info.scenario_name + " (seed " + std::to_string(r.info.plan_seed) + ") is in " + where +
                          " and in " + known.at(it->second).where + ", two runs of it");
  };
  for (const auto& r : out.runs()) {
    Target t;
    t.id = r.id;
    t.where = output + " run " + std::to_string(r.id);
    t.complete = r.status == store::RunStatus::complete;
    for (const auto& s : out.samples(r.id, store::WithArtifacts::no)) t.samples[s.plan_index] = fingerprint(s);
    const std::string ident = identity(r);
    targets[ident] = std::move(t);
    note_shard(r, ident, output + " run " + std::to_string(r.id), targets, false);
  }
  std::map<std::string, std::string> kernel_configs;   // build key → config hash
  for (const auto& k : out.kernels()) kernel_configs[k.build_key] = k.config_hash;

  std::vector<Incoming> incoming;
  std::vector<store::KernelRecord> kernels;
  for (const auto& in : inputs) {
    store::ResultStore db = store::ResultStore::open(in);
    for (const auto& r : db.runs()) {
      Incoming inc;
      inc.ident = identity(r);
      inc.where = in + " run " + std::to_string(r.id);
      inc.record = r;
      auto [it, fresh] = targets.try_emplace(inc.ident);
      Target& t = it->second;
      if (fresh) t.where = inc.where;
      for (auto& s : db.samples(r.id, store::WithArtifacts::yes)) {
        const std::string fp = fingerprint(s);
        if (auto f = t.samples.find(s.plan_index); f != t.samples.end()) {
          if (f->second == fp)
            ++inc.present;
          else
            conflicts.push_back("sample " + std::to_string(s.plan_index) + " of one run (uid " + inc.ident.substr(0, 12) +
                                ") differs: " + inc.where + " holds " + fp + "; " + t.where + " holds " + f->second);
          continue;
        }
        t.samples[s.plan_index] = fp;
        if (!s.kernel_build_key.empty()) {
          auto k = db.kernel(s.kernel_build_key);
          auto known = kernel_configs.find(s.kernel_build_key);
          if (k && known == kernel_configs.end()) {
            kernel_configs[k->build_key] = k->config_hash;
            kernels.push_back(*k);
          } else if (k && known->second != k->config_hash) {
            conflicts.push_back("kernel build " + k->build_key.substr(0, 12) + " (" + k->name + ") has config " +
                                k->config_hash.substr(0, 12) + " in " + in + " and " + known->second.substr(0, 12) +
                                " in another database");
          }
        }
        inc.samples.push_back(std::move(s));
      }
      note_shard(r, inc.ident, inc.where, targets, true);
      incoming.push_back(std::move(inc));
    }
  }
  if (!conflicts.empty()) {
    std::string text = "kab db merge: nothing merged into " + output + ": " + std::to_string(conflicts.size()) +
                       " conflict" + (conflicts.size() == 1 ? "" : "s");
    for (const auto& c : conflicts) text += "\n  " + c;
    throw Fatal(text, k_exit_usage);
  }

  MergeOutcome o;
  for (const auto& k : kernels) {
    out.record_kernel(k);
    ++o.kernels_added;
  }
  for (auto& inc : incoming) {
    Target& t = targets.at(inc.ident);
    const bool added = t.id == 0;
    if (added) {
      t.id = out.import_run(inc.record);
      t.complete = inc.record.status == store::RunStatus::complete;
      ++o.runs_added;
    }
    for (auto& s : inc.samples) {
      s.run_id = t.id;
      out.add_sample(s);
    }
    // A run resumed since an earlier merge: complete now.
    if (!added && !t.complete && inc.record.status == store::RunStatus::complete) {
      out.finish_run(t.id, store::RunStatus::complete);
      t.complete = true;
    }
    o.samples_added += static_cast<int>(inc.samples.size());
    o.samples_present += inc.present;
    if (std::find(o.runs.begin(), o.runs.end(), t.id) == o.runs.end()) o.runs.push_back(t.id);
    const std::string host = store::run_fact(inc.record, "host.name");
    const std::string shard = store::run_fact(inc.record, "shard");
    o.lines.push_back(inc.where + (added ? " -> run " : " = run ") + std::to_string(t.id) + ": " +
                      inc.record.info.scenario_name + (shard.empty() ? "" : ", shard " + shard) +
                      (host.empty() ? "" : ", host " + host) + "; " + std::to_string(inc.samples.size()) +
                      " sample" + (inc.samples.size() == 1 ? "" : "s") + " added" +
                      (inc.present ? ", " + std::to_string(inc.present) + " there already" : ""));
  }
  for (const auto& [key, set] : sets) {
    if (!set.touched) continue;
    std::string ids, have, missing;
    for (const auto& [index, ident] : set.members) {
      ids += (ids.empty() ? "" : " ") + std::to_string(targets.at(ident).id);
      have += (have.empty() ? "" : ", ") + std::to_string(index) + "/" + std::to_string(set.count);
    }
    for (int i = 1; i <= set.count; ++i)
      if (!set.members.count(i)) missing += (missing.empty() ? "" : ", ") + std::to_string(i) + "/" + std::to_string(set.count);
    o.lines.push_back("runs " + ids + " hold shards " + have + " of " + set.scenario + " (seed " +
                      std::to_string(set.seed) + "): " +
                      (missing.empty() ? "the whole plan; kab report " + ids + " --db " + output +
                                             " compares them, each run a block"
                                       : "shard" + std::string(set.count - static_cast<int>(set.members.size()) == 1 ? " " : "s ") +
                                             missing + " missing"));
  }
  return o;
}

}  // namespace kab::cli
