// kab kernel build|list|show|clean
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/app.h"
#include "cli/parse.h"
#include "core/text.h"
#include "kernel/builder.h"

namespace kab::cli {

namespace {

// A progress bar with ETA on a terminal, a plain line per step (and per 10%) otherwise.
std::function<void(const kernel::Progress&)> progress_printer() {
  bool tty = ::isatty(STDERR_FILENO);
  auto last_step = std::make_shared<std::string>();
  auto last_decile = std::make_shared<int>(-1);
  return [tty, last_step, last_decile](const kernel::Progress& p) {
    if (p.step != "compile") {
      if (*last_step == "compile" && tty) std::fputs("\n", stderr);
      if (p.step != *last_step) std::fprintf(stderr, "kab: kernel: %s\n", p.step.c_str());
      *last_step = p.step;
      return;
    }
    *last_step = p.step;
    double frac = p.expected > 0 ? std::min(1.0, static_cast<double>(p.done) / p.expected) : 0;
    std::string eta = "?";
    if (frac > 0.02 && p.expected > 0) eta = core::human_seconds(p.elapsed_s / frac * (1 - frac));
    if (tty) {
      int width = 30, filled = static_cast<int>(frac * width);
      std::fprintf(stderr, "\r[%s%s] %3d%% %d/%d objects, %s elapsed, ETA %s   ",
                   std::string(static_cast<std::size_t>(filled), '#').c_str(),
                   std::string(static_cast<std::size_t>(width - filled), ' ').c_str(), static_cast<int>(frac * 100),
                   p.done, p.expected, core::human_seconds(p.elapsed_s).c_str(), eta.c_str());
    } else {
      int decile = static_cast<int>(frac * 10);
      if (decile != *last_decile) {
        std::fprintf(stderr, "kab: kernel: compile %d/%d objects (%d%%), %s elapsed, ETA %s\n", p.done, p.expected,
                     decile * 10, core::human_seconds(p.elapsed_s).c_str(), eta.c_str());
        *last_decile = decile;
      }
    }
  };
}

nlohmann::ordered_json artifact_json(const core::KernelArtifact& a) {
  nlohmann::ordered_json j;
  j["name"] = a.name;
  j["variant"] = a.variant;
  j["arch"] = a.arch;
  j["key"] = a.key;
  j["release"] = a.release;
  j["dir"] = a.dir;
  if (!a.vmlinux.empty()) j["vmlinux"] = a.vmlinux;
  if (!a.bzimage.empty()) j["bzimage"] = a.bzimage;
  if (!a.uml_binary.empty()) j["uml_binary"] = a.uml_binary;
  j["config"] = a.config_path;
  j["config_hash"] = a.config_hash;
  j["patch_hashes"] = a.patch_hashes;
  if (!a.plumbing_patches.empty()) j["plumbing_patches"] = a.plumbing_patches;
  j["source_identity"] = a.source_identity;
  j["fresh"] = a.fresh;
  j["wall_s"] = a.wall_s;
  j["cpu_s"] = a.cpu_s;
  j["objects_compiled"] = a.objects_compiled;
  if (a.objects_expected >= 0) j["objects_expected"] = a.objects_expected;
  if (!a.steps.empty()) {
    j["steps"] = nlohmann::ordered_json::object();
    for (const auto& [name, s] : a.steps) j["steps"][name] = s;
  }
  j["explain"] = a.explain;
  j["source_name"] = a.source_name;
  j["patch_labels"] = a.patch_labels;
  return j;
}

}  // namespace

kernel::Options kernel_options() {
  kernel::Options o;
  o.cache_dir = paths().cache_dir;
  o.harness_patch_dir = paths().root + "/kernels/patches/harness";
  if (verbosity() != Verbosity::quiet) o.progress = progress_printer();
  return o;
}

core::KernelArtifact build_kernel(const std::string& name, const std::string& arch, const std::string& variant,
                                  bool force) {
  core::KernelSpec spec = load_kernel_or_exit(name);
  kernel::Options o = kernel_options();
  o.force = force;
  kernel::Builder b(o);
  try {
    return b.build(spec, arch, variant);
  } catch (const kernel::BuildError& e) {
    throw Fatal(std::string("kernel ") + name + ": " + e.what(), k_exit_run_failed);
  }
}

int cmd_kernel(const std::vector<std::string>& args) {
  CLI::App app{"Build, list, show and clean guest kernels (definitions in kernels/*.yaml).", "kernel"};
  app.require_subcommand(1);
  std::string name, variant, arch = "x86_64";
  bool explain = false, json = false, force = false;
  auto* build = app.add_subcommand("build", "build a kernel (or take it from the cache)");
  build->add_option("name", name, "kernel definition name, e.g. stock-6.1")->required();
  build->add_option("--variant", variant, "a variant of the definition, e.g. debug");
  build->add_option("--arch", arch, "x86_64 (QEMU guests) or um (User-Mode Linux)")->check(CLI::IsMember({"x86_64", "um"}));
  build->add_flag("--explain", explain, "say why the kernel is (or is not) rebuilt");
  build->add_flag("--json", json, "print the artifact as JSON");
  build->add_flag("--force", force, "rebuild even when cached");
  auto* list = app.add_subcommand("list", "kernel definitions and cached builds");
  list->add_flag("--json", json, "as JSON");
  auto* show = app.add_subcommand("show", "a kernel's cached builds: key, paths, config hash, build times");
  show->add_option("name", name, "kernel definition name")->required();
  show->add_flag("--json", json, "as JSON");
  auto* clean = app.add_subcommand("clean", "remove cached builds of one kernel, or everything");
  clean->add_option("name", name, "kernel definition name (all when omitted)");
  bool sources = false;
  clean->add_flag("--sources", sources,
                  "only the extracted sources and exported commits no lane holds, and the patch files made from commits "
                  "and mails (kab makes them again when needed)");
  if (auto code = parse_args(app, args)) return *code;

  if (build->parsed()) {
    core::KernelArtifact a = build_kernel(name, arch, variant, force);
    if (json) {
      std::cout << artifact_json(a).dump(2) << "\n";
      return k_exit_ok;
    }
    if (explain) std::printf("%s\n", a.explain.c_str());
    if (a.fresh) {
      // Where the time went: "source 21.0 s, work tree 2.1 s, config 6.9 s, compile 12.0 s".
      std::string steps;
      for (const auto& [step, s] : a.steps) steps += (steps.empty() ? "" : ", ") + step + " " + core::human_seconds(s);
      std::printf("built %s (%s) in %s wall%s, %s CPU, %d objects compiled%s\n  %s\n", a.name.c_str(), a.arch.c_str(),
                  core::human_seconds(a.wall_s).c_str(), steps.empty() ? "" : (" (" + steps + ")").c_str(),
                  core::human_seconds(a.cpu_s).c_str(), a.objects_compiled,
                  a.objects_expected >= 0 ? (" (" + std::to_string(a.objects_expected) + " expected)").c_str() : "",
                  a.dir.c_str());
    }
    else
      std::printf("cached %s (%s) %s\n  %s\n", a.name.c_str(), a.arch.c_str(), a.key.substr(0, 12).c_str(),
                  a.dir.c_str());
    return k_exit_ok;
  }
  kernel::Builder b(kernel_options());
  if (list->parsed()) {
    auto defs = scenario::list_kernel_names(paths().kernels_dir);
    auto arts = b.cached();
    if (json) {
      nlohmann::ordered_json j;
      j["definitions"] = defs;
      j["cached"] = nlohmann::ordered_json::array();
      for (const auto& a : arts) j["cached"].push_back(artifact_json(a));
      std::cout << j.dump(2) << "\n";
      return k_exit_ok;
    }
    std::printf("definitions (%s):\n", paths().kernels_dir.c_str());
    for (const auto& d : defs) std::printf("  %s\n", d.c_str());
    std::printf("cached builds (%s/kernels):\n", paths().cache_dir.c_str());
    for (const auto& a : arts)
      std::printf("  %-12s %-6s %-8s %s  %s\n", a.name.c_str(), a.arch.c_str(), a.variant.empty() ? "-" : a.variant.c_str(),
                  a.key.substr(0, 12).c_str(), a.release.c_str());
    return k_exit_ok;
  }
  if (show->parsed()) {
    load_kernel_or_exit(name);
    nlohmann::ordered_json arr = nlohmann::ordered_json::array();
    int n = 0;
    for (const auto& a : b.cached()) {
      if (a.name != name) continue;
      ++n;
      if (json) {
        arr.push_back(artifact_json(a));
        continue;
      }
      std::printf("%s %s%s\n  key          %s\n  release      %s\n  dir          %s\n  config hash  %s\n"
                  "  source       %s\n  built in     %s wall, %s CPU, %d objects\n",
                  a.name.c_str(), a.arch.c_str(), a.variant.empty() ? "" : (" +" + a.variant).c_str(), a.key.c_str(),
                  a.release.c_str(), a.dir.c_str(), a.config_hash.c_str(), a.source_identity.c_str(),
                  core::human_seconds(a.wall_s).c_str(), core::human_seconds(a.cpu_s).c_str(), a.objects_compiled);
      for (const auto& p : a.patch_hashes) std::printf("  patch        %s\n", p.c_str());
    }
    if (json) std::cout << arr.dump(2) << "\n";
    else if (!n) std::printf("%s: no cached builds (kab kernel build %s)\n", name.c_str(), name.c_str());
    return k_exit_ok;
  }
  if (clean->parsed()) {
    if (sources) {
      if (!name.empty()) throw Fatal("kab kernel clean --sources takes no kernel name", k_exit_usage);
      kernel::SourcesCleaned c = b.clean_sources();
      std::printf("removed %d source tree(s) no lane holds and the patch files, %.1f MiB\n", c.sources,
                  static_cast<double>(c.bytes) / (1 << 20));
      return k_exit_ok;
    }
    int n = b.clean(name);
    std::printf("removed %d cached build(s)%s\n", n, name.empty() ? ", the work trees, sources and patch files" : "");
    return k_exit_ok;
  }
  return k_exit_usage;
}

}  // namespace kab::cli
