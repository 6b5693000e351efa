#include "cli/bundle.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "cli/app.h"
#include "cli/runner.h"
#include "core/hash.h"
#include "core/planner.h"
#include "core/system.h"
#include "core/text.h"
#include "kernel/builder.h"
#include "kernel/git_source.h"
#include "proc/runner.h"
#include "scenario/scenario.h"
#include "scenario/yaml_reader.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

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
  YAML::Node root = YAML::Load(run->info.scenario_text);
  YAML::Node arms(YAML::NodeType::Map);
  for (const auto& a : effective["arms"]) {
    YAML::Node arm;
    arm["kernel"] = a["kernel"].get<std::string>();
    if (!a["variant"].get<std::string>().empty()) arm["variant"] = a["variant"].get<std::string>();
    arms[a["name"].get<std::string>()] = arm;
  }
  root["arms"] = arms;
  if (const std::string job = store::run_fact(*run, "job_file_text"); !job.empty()) {
    root["fio"]["job_file"] = "job.fio";
    write_text(top / "job.fio", job);
  }
  if (const std::string check = store::run_fact(*run, "host_check_text"); !check.empty()) {
    root["fio"]["host_check"] = "host-check.fio";
    write_text(top / "host-check.fio", check);
  }
  YAML::Emitter emitted;
  emitted << root;
  write_text(top / "scenario.yaml", "# " + run->info.scenario_name + " as run " + std::to_string(run_id) + " ran it\n" +
                                        std::string(emitted.c_str()) + "\n");

  // Each arm's kernel: its definition as today, checked against what the run built.
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
    auto made = used.find(kernel);
    core::KernelSpec spec;
    if (made != used.end()) {
      spec = made->second;
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
  if (b.manifest.value("bundle_version", 0) != k_bundle_version)
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
