#include "cli/bundle.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "cli/app.h"
#include "cli/runner.h"
#include "core/hash.h"
#include "core/planner.h"
#include "core/system.h"
#include "core/text.h"
#include "kernel/builder.h"
#include "kernel/git_source.h"
#include "proc/runner.h"
#include "scenario/gate.h"
#include "scenario/scenario.h"
#include "scenario/yaml_reader.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

// A kernel definition as JSON, field by field (kernel.made.NAME); the
// (arch or variant, fragments) pairs as two-element arrays.
namespace kab::core {
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(KernelSpec, name, path, source, git_repo, git_ref, commits, series, patches,
                                   config_base, fragments, arch_fragments, variants)
}  // namespace kab::core

namespace kab::cli {

namespace {

constexpr const char* k_top = "kab-bundle";

void write_text(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary);
  f << text;
  if (!f) throw Fatal("cannot write " + p.string());
}

// Every file a kernel definition names, absolute.
std::vector<std::string> files_of(const core::KernelSpec& k) {
  std::vector<std::string> out = k.patches;
  if (!k.series.empty()) out.push_back(k.series);
  out.insert(out.end(), k.fragments.begin(), k.fragments.end());
  for (const auto& [arch, frags] : k.arch_fragments) out.insert(out.end(), frags.begin(), frags.end());
  for (const auto& [variant, frags] : k.variants) out.insert(out.end(), frags.begin(), frags.end());
  return out;
}

// PATH relative to DIR when it is inside it.
std::optional<fs::path> inside(const fs::path& path, const fs::path& dir) {
  const fs::path rel = fs::weakly_canonical(path).lexically_relative(fs::weakly_canonical(dir));
  if (rel.empty() || *rel.begin() == "..") return std::nullopt;
  return rel;
}

// The host facts a bundle keeps, as RunInfo has them.
json host_facts(const store::RunInfo& i) {
  json h = {{"cpu_model", i.cpu_model},       {"nproc", i.nproc},
            {"memory_bytes", i.memory_bytes}, {"host_kernel", i.host_kernel},
            {"accelerator", i.accelerator},   {"qemu", i.qemu_version},
            {"libvirt", i.libvirt_version},   {"virtiofsd", i.virtiofsd_version},
            {"fio", i.fio_version}};
  for (const auto& [k, v] : i.extra)
    if (core::starts_with(k, "env.")) h[k] = v;
  return h;
}

// A stored run's scenario as YAML (the file's own text, its arms replaced by
// *ARMS when given), its job file and host check beside it as JOB and CHECK:
// the texts read then, not what those paths hold now.
void write_scenario(const fs::path& yaml, const store::RunRecord& run, const std::string& job,
                    const std::string& check, const std::string& header, const YAML::Node* arms) {
  YAML::Node root = YAML::Load(run.info.scenario_text);
  if (arms) root["arms"] = *arms;
  if (const std::string text = store::run_fact(run, "job_file_text"); !text.empty()) {
    root["fio"]["job_file"] = job;
    write_text(yaml.parent_path() / job, text);
  }
  if (const std::string text = store::run_fact(run, "host_check_text"); !text.empty()) {
    root["fio"]["host_check"] = check;
    write_text(yaml.parent_path() / check, text);
  }
  YAML::Emitter emitted;
  emitted << root;
  write_text(yaml, "# " + header + "\n" + std::string(emitted.c_str()) + "\n");
}

// The number a stored fact holds; Fatal naming the run and fact otherwise.
long long fact_number(const std::string& text, std::int64_t run, const std::string& fact) {
  try {
    std::size_t used = 0;
    const long long n = std::stoll(core::trim(text), &used);
    if (used == core::trim(text).size()) return n;
  } catch (const std::logic_error&) {
  }
  throw Fatal("run " + std::to_string(run) + ": its fact " + fact + " is not a number: '" + text + "'");
}

// The run ids a fact lists: "4,5,6".
std::vector<std::int64_t> run_ids_of(const std::string& list, std::int64_t run, const std::string& fact) {
  std::vector<std::int64_t> out;
  for (const auto& id : core::split(list, ','))
    if (!core::trim(id).empty()) out.push_back(fact_number(id, run, fact));
  return out;
}

// A kernel built from a git repository, as the bundle holds it: the commit
// it builds on (source: {git: REPO, ref: COMMIT}; the rerun names a clone of
// REPO with --tree when REPO is not there), the change under test (commits
// or a series) as one mbox beside it, its patch files and fragments as in
// kernels/. The same inputs by patch-id: the same build key.
void write_git_kernel(const fs::path& top, const std::string& kernel, const core::KernelSpec& spec,
                      const kernel::BuildInputs& in, const fs::path& kernels_dir) {
  if (spec.git_ref == "WORKTREE")
    throw Fatal("kernel " + kernel + " is the work tree of " + spec.git_repo +
                    " with its uncommitted changes, which exist only on this machine: commit them and compare the commit",
                k_exit_usage);
  const std::string prefix = "git commit ";
  const std::string commit = in.source_identity.substr(prefix.size());
  const std::size_t mails = in.patch_paths.size() - spec.patches.size();
  YAML::Node k(YAML::NodeType::Map);
  k["description"] = in.source_name + (mails > 0 ? " and the change the run measured" : "");
  k["source"]["git"] = spec.git_repo;
  k["source"]["ref"] = commit;
  if (mails > 0) {
    // The mails of the commits or the series, in order, as one mbox.
    std::string mbox;
    for (std::size_t i = 0; i < mails; ++i) {
      std::string text = core::read_text(in.patch_paths[i]);
      if (!core::starts_with(text, "From ")) text = "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n" + text;
      if (!text.empty() && text.back() != '\n') text += '\n';
      mbox += text;
    }
    write_text(top / "kernels" / "patches" / (kernel + ".mbox"), mbox);
    k["series"] = kernel + ".mbox";
  }
  auto relative = [&](const std::string& f, const char* sub) {
    auto rel = inside(f, kernels_dir / sub);
    if (!rel)
      throw Fatal("kernel " + kernel + " names " + f + ", outside " + (kernels_dir / sub).string() +
                      ": a bundle keeps the files of kernels/ at their places",
                  k_exit_usage);
    fs::create_directories((top / "kernels" / sub / *rel).parent_path());
    fs::copy_file(f, top / "kernels" / sub / *rel, fs::copy_options::overwrite_existing);
    return rel->string();
  };
  for (const auto& p : spec.patches) k["patches"].push_back(relative(p, "patches"));
  k["config"]["base"] = spec.config_base;
  for (const auto& f : spec.fragments) k["config"]["fragments"].push_back(relative(f, "configs"));
  for (const auto& [arch, frags] : spec.arch_fragments)
    for (const auto& f : frags) k["config"]["arch_fragments"][arch].push_back(relative(f, "configs"));
  for (const auto& [variant, frags] : spec.variants) {
    k["variants"][variant] = YAML::Node(YAML::NodeType::Sequence);
    for (const auto& f : frags) k["variants"][variant].push_back(relative(f, "configs"));
  }
  YAML::Emitter emitted;
  emitted << k;
  write_text(top / "kernels" / (kernel + ".yaml"), "# " + kernel + " as the run built it\n" + std::string(emitted.c_str()) + "\n");
}

}  // namespace

std::string made_kernel_fact(const core::KernelSpec& k) { return json(k).dump(); }

std::map<std::string, core::KernelSpec> made_kernels(const store::RunRecord& run) {
  std::map<std::string, core::KernelSpec> out;
  for (const auto& [key, value] : run.info.extra) {
    if (!core::starts_with(key, k_made_kernel_fact)) continue;
    const auto k = json::parse(value).get<core::KernelSpec>();
    out[k.name] = k;
  }
  return out;
}

OpenedBundle read_bundle(const std::string& file, const std::string& dir, const std::string& tree);

void write_bundle(store::ResultStore& db, std::int64_t run_id, const std::string& out,
                  const std::map<std::string, core::KernelSpec>& used, const std::string& kernels_dir,
                  const kernel::Builder& builder) {
  auto run = db.run(run_id);
  if (!run) throw Fatal("no run " + std::to_string(run_id) + " in " + db.path().string(), k_exit_usage);
  const std::string effective_text = store::run_fact(*run, "scenario.effective");
  if (effective_text.empty())
    throw Fatal("run " + std::to_string(run_id) + " was stored by an older kab, without the scenario as run "
                "(its arms, repetitions and seed): it cannot be bundled",
                k_exit_usage);
  const json effective = json::parse(effective_text);
  if (effective["arms"].size() < 2)
    throw Fatal("run " + std::to_string(run_id) + " ran one kernel (a kab gate run): a bundle reruns a comparison",
                k_exit_usage);

  char tmpl[] = "/tmp/kab-bundle-XXXXXX";
  if (!::mkdtemp(tmpl)) throw Fatal("cannot make a temporary directory in /tmp");
  const fs::path tmp = tmpl, top = tmp / k_top;
  struct Cleanup {
    fs::path p;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(p, ec);
    }
  } cleanup{tmp};

  // The scenario as the run ran it: its arms (a command's --base and
  // --candidate replace the file's), its job file beside it.
  YAML::Node arms(YAML::NodeType::Map);
  for (const auto& a : effective["arms"]) {
    YAML::Node arm;
    arm["kernel"] = a["kernel"].get<std::string>();
    if (!a["variant"].get<std::string>().empty()) arm["variant"] = a["variant"].get<std::string>();
    arms[a["name"].get<std::string>()] = arm;
  }
  write_scenario(top / "scenario.yaml", *run, "job.fio", "host-check.fio",
                 run->info.scenario_name + " as run " + std::to_string(run_id) + " ran it", &arms);

  // Each arm's kernel: the definition the command made (kab compare --tree,
  // kab nightly; kept with the run), else kernels/NAME.yaml as today; either
  // checked against what the run built.
  std::map<std::string, core::KernelSpec> made_by_run;
  try {
    made_by_run = made_kernels(*run);
  } catch (const json::exception& e) {
    throw Fatal("run " + std::to_string(run_id) + ": a kernel definition stored with it does not read: " + e.what());
  }
  for (const auto& [k, v] : used) made_by_run[k] = v;
  const auto samples = db.samples(run_id, store::WithArtifacts::no);
  json kernels = json::array();
  std::vector<std::string> bundled;
  for (const auto& arm : effective["arms"]) {
    const std::string name = arm["name"], kernel = arm["kernel"], variant = arm["variant"];
    auto smp = std::find_if(samples.begin(), samples.end(), [&](const core::Sample& s) { return s.arm == name; });
    if (smp == samples.end())
      throw Fatal("run " + std::to_string(run_id) + " has no sample of arm " + name + ": nothing was built to bundle",
                  k_exit_usage);
    auto rec = db.kernel(smp->kernel_build_key);
    if (!rec) throw Fatal("run " + std::to_string(run_id) + ": kernel " + smp->kernel_build_key + " is not recorded");
    auto made = made_by_run.find(kernel);
    core::KernelSpec spec;
    if (made != made_by_run.end()) {
      spec = made->second;
      for (const auto& f : files_of(spec))
        if (!fs::is_regular_file(f))
          throw Fatal("kernel " + kernel + " (made by `" + store::run_fact(*run, "command") + "`) names " + f +
                          ", which is no longer there",
                      k_exit_usage);
    } else {
      auto parsed = scenario::load_kernel(kernels_dir + "/" + kernel + ".yaml", kernels_dir);
      if (!parsed.value) throw Fatal("kernel " + kernel + ": no definition " + kernels_dir + "/" + kernel + ".yaml to bundle",
                                     k_exit_usage);
      spec = *parsed.value;
    }
    if (spec.git_repo.empty() && !core::starts_with(spec.source, "linux-source-"))
      throw Fatal("kernel " + kernel + " builds from " + spec.source +
                      ", which exists only on this machine; a bundle holds kernels of a Debian source package or of "
                      "a git commit, with their files",
                  k_exit_usage);
    auto inputs_of = [&](const core::KernelSpec& k) {
      try {
        return builder.inputs_of(k, rec->arch, variant);
      } catch (const kernel::BuildError& e) {
        throw Fatal("kernel " + kernel + ": " + e.what(), k_exit_usage);
      }
    };
    if (std::find(bundled.begin(), bundled.end(), kernel) == bundled.end()) {
      bundled.push_back(kernel);
      if (!spec.git_repo.empty()) {
        write_git_kernel(top, kernel, spec, inputs_of(spec), kernels_dir);
      } else {
        std::vector<std::string> files = files_of(spec);
        files.push_back(spec.path);
        for (const auto& f : files) {
          auto rel = inside(f, kernels_dir);
          if (!rel)
            throw Fatal(spec.path + " names " + f + ", outside " + kernels_dir +
                            ": a bundle keeps the files of kernels/ at their places",
                        k_exit_usage);
          fs::create_directories((top / "kernels" / *rel).parent_path());
          fs::copy_file(f, top / "kernels" / *rel, fs::copy_options::overwrite_existing);
        }
      }
    }
    {
      // What the bundle holds is what each arm built (its variant too): the
      // same inputs (the source, every patch by content or patch-id,
      // fragments, compiler) under the same final .config make the arm's build key.
      auto bundled_spec = scenario::load_kernel((top / "kernels" / (kernel + ".yaml")).string(), (top / "kernels").string());
      if (!bundled_spec.value) throw Fatal("kernel " + kernel + ": the definition bundled does not load: " +
                                           scenario::format_errors(bundled_spec.errors));
      const kernel::BuildInputs again = inputs_of(*bundled_spec.value);
      if (core::Sha256().field(again.hash()).field(rec->config_hash).hex() != rec->build_key) {
        std::string why;
        if (auto built = builder.built_inputs(rec->build_key))
          for (const auto& d : again.differences(*built)) why += "; " + d;
        throw Fatal("kernel " + kernel + " is no longer what run " + std::to_string(run_id) + " built (build " +
                        rec->build_key.substr(0, 12) + ")" + (why.empty() ? ": its definition, patches, fragments or the compiler changed since" : why) +
                        ": the bundle would not rerun what was measured",
                    k_exit_usage);
      }
    }
    fs::create_directories(top / "built");
    auto config = rec->paths.find("config");
    if (config != rec->paths.end() && fs::exists(config->second))
      fs::copy_file(config->second, top / "built" / (name + ".config"), fs::copy_options::overwrite_existing);
    kernels.push_back({{"arm", name},
                       {"kernel", kernel},
                       {"variant", variant},
                       {"build_key", rec->build_key},
                       {"release", rec->release},
                       {"config_hash", rec->config_hash},
                       {"patch_hashes", rec->patch_hashes},
                       {"source_identity", rec->source_identity}});
  }

  // The gate the comparison ran first (kab compare --gate): each arm's
  // family scenarios as they ran, with their job files, so a rerun runs the
  // same checks (not the gate definition of the day) before measuring.
  json gate = json::array();
  for (const auto& arm : effective["arms"]) {
    const std::string name = arm["name"], kernel = arm["kernel"];
    const std::string ids = store::run_fact(*run, "gate.of." + name);
    if (ids.empty()) continue;
    json families = json::array();
    std::string variant, runtime;
    const auto bundled_spec =
        scenario::load_kernel((top / "kernels" / (kernel + ".yaml")).string(), (top / "kernels").string());
    std::set<std::string> checked;   // debug builds (a kernel's gate runs share one)
    for (const auto id : run_ids_of(ids, run_id, "gate.of." + name)) {
      auto g = db.run(id);
      if (!g || store::run_fact(*g, "gate.family").empty() || store::run_fact(*g, "gate.kernel") != kernel)
        throw Fatal("run " + std::to_string(run_id) + " names run " + std::to_string(id) + " as the gate of kernel " +
                        kernel + ", and " + db.path().string() + " holds no such gate run",
                    k_exit_usage);
      const std::string family = store::run_fact(*g, "gate.family");
      if (!scenario::gate_family_name_ok(family))
        throw Fatal("gate run " + std::to_string(id) + " names its family '" + family +
                        "': a bundle's files are named after families of letters, digits, '-' and '_'",
                    k_exit_usage);
      variant = store::run_fact(*g, "gate.variant");
      runtime = store::run_fact(*g, "gate.runtime_s");
      // The debug build it checked is what the bundled definition builds.
      for (const auto& smp : db.samples(id, store::WithArtifacts::no)) {
        if (!checked.insert(smp.kernel_build_key).second) break;
        auto rec = db.kernel(smp.kernel_build_key);
        if (!rec || !bundled_spec.value) continue;
        kernel::BuildInputs again;
        try {
          again = builder.inputs_of(*bundled_spec.value, rec->arch, smp.variant);
        } catch (const kernel::BuildError& e) {
          throw Fatal("kernel " + kernel + " (" + smp.variant + "): " + e.what(), k_exit_usage);
        }
        if (core::Sha256().field(again.hash()).field(rec->config_hash).hex() != rec->build_key)
          throw Fatal("kernel " + kernel + "'s " + (smp.variant.empty() ? "build" : smp.variant + " variant") +
                          " is no longer what gate run " + std::to_string(id) + " checked (build " +
                          rec->build_key.substr(0, 12) + "): the bundle would not rerun the gate that ran",
                      k_exit_usage);
        break;
      }
      const std::string rel = "gate/" + kernel + "/" + family + ".yaml";
      if (!inside(top / rel, top / "gate"))
        throw Fatal("kernel " + kernel + ": its name cannot name a directory of the bundle", k_exit_usage);
      write_scenario(top / rel, *g, family + ".fio", family + ".host-check.fio",
                     "gate-" + family + " of " + kernel + " as run " + std::to_string(id) + " ran it", nullptr);
      families.push_back({{"family", family}, {"run", id}, {"scenario", rel}, {"plan_json", g->info.plan_json}});
    }
    gate.push_back({{"arm", name},
                    {"kernel", kernel},
                    {"variant", variant},
                    {"runtime_s", fact_number(runtime, run_id, "gate.runtime_s of its gate")},
                    {"families", families}});
  }

  json manifest = {{"bundle_version", k_bundle_version},
                   {"run", run_id},
                   {"created_at", run->created_at},
                   {"command", store::run_fact(*run, "command")},
                   {"scenario", run->info.scenario_name},
                   {"effective", effective},
                   {"plan_seed", std::to_string(run->info.plan_seed)},
                   {"plan_json", run->info.plan_json},
                   {"kab_version", KAB_VERSION},
                   {"kab_revision", run->info.kab_revision},
                   {"kernels", kernels},
                   {"host", host_facts(run->info)}};
  if (!gate.empty()) manifest["gate"] = gate;
  write_text(top / "manifest.json", manifest.dump(2) + "\n");
  const std::string target = fs::absolute(out).string();
  fs::create_directories(fs::path(target).parent_path());
  auto [ok, output] = proc::capture({"tar", "-C", tmp.string(), "-czf", target, k_top}, 120);
  if (!ok) throw Fatal("tar could not write " + target + ": " + core::trim(output));
}

namespace {

// A bundled git kernel's source: the commit it names, in TREE (written into
// its definition) or in the repository it was bundled from.
void locate_git_source(const std::string& file, const std::string& name, const std::string& yaml, const std::string& tree) {
  YAML::Node k;
  try {
    k = YAML::LoadFile(yaml);
  } catch (const YAML::Exception&) {
    return;   // loading it says what is wrong, with its line
  }
  if (!k.IsMap() || !k["source"] || !k["source"].IsMap() || !k["source"]["git"] || !k["source"]["ref"]) return;
  const std::string there = k["source"]["git"].as<std::string>(""), commit = k["source"]["ref"].as<std::string>("");
  if (commit.size() != 40 || commit.find_first_not_of("0123456789abcdef") != std::string::npos)
    throw Fatal(file + ": kernel " + name + " names ref " + commit + "; a bundle names a commit id", k_exit_usage);
  const std::string repo = tree.empty() ? there : fs::absolute(tree).lexically_normal().string();
  const std::string what = "kernel " + name + " of " + file + " builds on commit " + commit.substr(0, 12) + " of " + there;
  if (!fs::exists(fs::path(repo) / ".git"))
    throw Fatal(tree.empty() ? what + ", which is not on this machine: name a clone that holds the commit with --tree"
                             : "--tree " + tree + " is not a git repository (" + what + ")",
                k_exit_usage);
  try {
    kernel::git_commit(repo, commit);
  } catch (const kernel::BuildError&) {
    throw Fatal((tree.empty() ? there : "--tree " + tree) + " does not hold commit " + commit.substr(0, 12) + " (" + what +
                    "): fetch it there first",
                k_exit_usage);
  }
  if (tree.empty()) return;
  k["source"]["git"] = repo;
  YAML::Emitter emitted;
  emitted << k;
  write_text(yaml, std::string(emitted.c_str()) + "\n");
}

}  // namespace

OpenedBundle open_bundle(const std::string& file, const std::string& dir, const std::string& tree) {
  if (!fs::is_regular_file(file)) throw Fatal("--bundle " + file + " does not exist", k_exit_usage);
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir);
  // Only directories and regular files, all under kab-bundle/: a link could
  // make kab read (and build with) a file of this machine.
  auto [listed, members] = proc::capture({"tar", "-tvzf", file}, 120);
  if (!listed) throw Fatal(file + " is not a kab bundle (tar: " + core::trim(members) + ")", k_exit_usage);
  for (const auto& line : core::split(members, '\n')) {
    if (core::trim(line).empty()) continue;
    if (line[0] != '-' && line[0] != 'd')
      throw Fatal(file + " holds something other than files and directories: " + core::trim(line), k_exit_usage);
  }
  auto [ok, output] = proc::capture({"tar", "-C", dir, "--no-same-owner", "--no-same-permissions", "-xzf", file}, 120);
  if (!ok) throw Fatal(file + " is not a kab bundle (tar: " + core::trim(output) + ")", k_exit_usage);
  try {
    return read_bundle(file, dir, tree);
  } catch (const json::exception& e) {
    throw Fatal(file + ": its manifest is not what kab writes: " + e.what(), k_exit_usage);
  } catch (const std::invalid_argument& e) {
    throw Fatal(file + ": its manifest is not what kab writes: " + e.what(), k_exit_usage);
  } catch (const std::out_of_range& e) {
    throw Fatal(file + ": its manifest is not what kab writes: " + e.what(), k_exit_usage);
  }
}

namespace {

// A bundle's scenario reads its job files from the bundle, nothing of this machine.
void require_inside(const std::string& file, const core::Scenario& s, const std::string& dir) {
  for (const std::string* f : {&s.fio.job_file, &s.fio.host_check})
    if (!f->empty() && !inside(*f, dir))
      throw Fatal(file + ": its scenario " + s.name + " names " + *f + ", which is not a file of the bundle", k_exit_usage);
}

}  // namespace

OpenedBundle read_bundle(const std::string& file, const std::string& dir, const std::string& tree) {
  OpenedBundle b;
  b.dir = (fs::path(dir) / k_top).string();
  auto text = scenario::read_file(b.dir + "/manifest.json");
  if (!text) throw Fatal(file + " is not a kab bundle (no " + std::string(k_top) + "/manifest.json)", k_exit_usage);
  try {
    b.manifest = json::parse(*text);
  } catch (const json::exception& e) {
    throw Fatal(file + ": manifest.json does not parse: " + e.what(), k_exit_usage);
  }
  // Version 1 had no gate; an older kab refuses version 2 rather than rerun
  // a gated comparison without its gate.
  if (b.manifest.value("bundle_version", 0) < 1 || b.manifest.value("bundle_version", 0) > k_bundle_version)
    throw Fatal(file + " is bundle version " + std::to_string(b.manifest.value("bundle_version", 0)) +
                    "; this kab reads version " + std::to_string(k_bundle_version),
                k_exit_usage);
  // The facts kab compare reads from it, of the types it reads them as.
  b.manifest.at("run").get<long long>();
  b.manifest.at("created_at").get<std::string>();
  b.manifest.at("scenario").get<std::string>();
  b.manifest.at("host").get<json::object_t>();
  for (const auto& k : b.manifest.at("kernels")) {
    k.at("arm").get<std::string>();
    k.at("config_hash").get<std::string>();
  }
  const std::string kernels_dir = b.dir + "/kernels";
  for (const auto& name : scenario::list_kernel_names(kernels_dir))
    locate_git_source(file, name, kernels_dir + "/" + name + ".yaml", tree);
  for (const auto& name : scenario::list_kernel_names(kernels_dir)) {
    auto parsed = scenario::load_kernel(kernels_dir + "/" + name + ".yaml", kernels_dir);
    if (!parsed.value) {
      std::fputs(scenario::format_errors(parsed.errors).c_str(), stderr);
      throw Fatal(file + ": kernel " + name + " does not load", k_exit_usage);
    }
    // What kab bundles, nothing else: a Debian source package or a git commit, files of the bundle.
    const core::KernelSpec& k = *parsed.value;
    if (k.git_repo.empty() && !core::starts_with(k.source, "linux-source-"))
      throw Fatal(file + ": kernel " + name + " builds from " + k.source + ", neither a Debian source package nor a git commit",
                  k_exit_usage);
    if (!k.git_repo.empty() && !k.commits.empty())
      throw Fatal(file + ": kernel " + name + " names commits " + k.commits + "; a bundle holds them as a series", k_exit_usage);
    for (const auto& f : files_of(k))
      if (!inside(f, kernels_dir) || !fs::is_regular_file(f))
        throw Fatal(file + ": kernel " + name + " names " + f + ", which is not a file of the bundle", k_exit_usage);
    b.kernels[name] = k;
  }
  scenario::Context ctx = validation_context();
  ctx.kernels = scenario::list_kernel_names(kernels_dir);
  auto parsed = scenario::load_scenario(b.dir + "/scenario.yaml", ctx);
  if (!parsed.value) {
    std::fputs(scenario::format_errors(parsed.errors).c_str(), stderr);
    throw Fatal(file + ": its scenario does not validate here", k_exit_usage);
  }
  b.scenario = *parsed.value;
  require_inside(file, b.scenario, b.dir);
  // The scenario as the run ran it.
  apply_effective(b.scenario, b.manifest.at("effective"));
  for (const auto& a : b.scenario.arms)
    if (!b.kernels.count(a.kernel)) throw Fatal(file + ": arm " + a.name + "'s kernel " + a.kernel + " is not in it", k_exit_usage);
  // The same plan, byte for byte, or it would not rerun what was measured.
  const core::Plan planned = core::make_plan(b.scenario);
  b.planned = planned.samples.size();
  const std::string plan = plan_json(b.scenario, planned).dump();
  if (plan != b.manifest.at("plan_json").get<std::string>())
    throw Fatal(file + ": the scenario it holds plans other samples here than run " +
                    std::to_string(b.manifest.at("run").get<long long>()) + " ran (kab " +
                    b.manifest.at("kab_version").get<std::string>() + " made it; this is kab " + KAB_VERSION + ")",
                k_exit_usage);
  // The gate the comparison ran first, family by family as it ran.
  scenario::Context gate_ctx = ctx;
  gate_ctx.min_arms = 1;
  for (const auto& g : b.manifest.value("gate", json::array())) {
    BundledGate bg;
    bg.arm = g.at("arm").get<std::string>();
    bg.kernel = g.at("kernel").get<std::string>();
    bg.variant = g.at("variant").get<std::string>();
    bg.runtime_s = g.at("runtime_s").get<int>();
    if (bg.runtime_s <= 0 || bg.runtime_s > 7 * 24 * 3600 || g.at("families").empty())
      throw Fatal(file + ": its gate of arm " + bg.arm + " has no families or a runtime of " +
                      std::to_string(bg.runtime_s) + " s",
                  k_exit_usage);
    if (std::any_of(b.gates.begin(), b.gates.end(), [&](const BundledGate& o) { return o.arm == bg.arm; }))
      throw Fatal(file + ": its gate names arm " + bg.arm + " twice", k_exit_usage);
    if (std::none_of(b.scenario.arms.begin(), b.scenario.arms.end(),
                     [&](const core::Arm& a) { return a.name == bg.arm && a.kernel == bg.kernel; }))
      throw Fatal(file + ": its gate names arm " + bg.arm + " (kernel " + bg.kernel + "), which its scenario does not have",
                  k_exit_usage);
    for (const auto& f : g.at("families")) {
      const std::string family = f.at("family").get<std::string>(), rel = f.at("scenario").get<std::string>();
      if (!scenario::gate_family_name_ok(family))
        throw Fatal(file + ": its gate names a family '" + family + "'; a family's name holds letters, digits, '-' and '_'",
                    k_exit_usage);
      const fs::path path = fs::path(b.dir) / rel;
      if (rel != "gate/" + bg.kernel + "/" + family + ".yaml" || !fs::is_regular_file(path))
        throw Fatal(file + ": its gate's family " + family + " names " + rel + ", which is not a file of the bundle",
                    k_exit_usage);
      auto gs = scenario::load_scenario(path.string(), gate_ctx);
      if (!gs.value) {
        std::fputs(scenario::format_errors(gs.errors).c_str(), stderr);
        throw Fatal(file + ": its gate's family " + family + " does not validate here", k_exit_usage);
      }
      const core::Scenario& sc = *gs.value;
      require_inside(file, sc, b.dir);
      if (sc.arms.size() != 1 || sc.arms[0].kernel != bg.kernel || sc.arms[0].variant != bg.variant)
        throw Fatal(file + ": its gate's family " + family + " (" + rel + ") does not run kernel " + bg.kernel +
                        (bg.variant.empty() ? "" : " (" + bg.variant + ")") + " alone",
                    k_exit_usage);
      const core::Plan p = core::make_plan(sc);
      if (plan_json(sc, p).dump() != f.at("plan_json").get<std::string>())
        throw Fatal(file + ": its gate's family " + family + " plans other samples here than run " +
                        std::to_string(f.at("run").get<long long>()) + " ran",
                    k_exit_usage);
      bg.cells += static_cast<int>(p.samples.size());
      bg.scenarios.emplace_back(family, sc);
    }
    b.gates.push_back(std::move(bg));
  }
  return b;
}

std::vector<std::string> bundle_differences(const json& manifest, const store::RunInfo& here) {
  std::vector<std::string> out;
  const json there = manifest.value("host", json::object()), now = host_facts(here);
  for (const auto& [k, v] : there.items()) {
    const json mine = now.contains(k) ? now[k] : json("-");
    if (mine != v) {
      auto text = [](const json& j) { return j.is_string() ? j.get<std::string>() : j.dump(); };
      out.push_back(k + ": " + text(v) + " there, " + text(mine) + " here");
    }
  }
  for (const auto& [k, v] : now.items())
    if (!there.contains(k)) out.push_back(k + ": - there, " + (v.is_string() ? v.get<std::string>() : v.dump()) + " here");
  return out;
}

}  // namespace kab::cli
