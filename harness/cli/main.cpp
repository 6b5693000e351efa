#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "cli/app.h"
#include "core/text.h"
#include "fio/catalog.h"
#include "backend/backends.h"
#include "cli/runner.h"
#include "proc/runner.h"
#include "vm/platforms.h"

namespace fs = std::filesystem;

#ifndef KAB_SOURCE_DIR
#define KAB_SOURCE_DIR "."
#endif

namespace kab::cli {

namespace {

int cmd_help(const std::vector<std::string>&);

const std::vector<Command> k_commands = {
    {"help", "list the subcommands", cmd_help},
    {"validate", "check a scenario file and report every error in it", cmd_validate},
    {"plan", "print the ordered samples a scenario expands to", cmd_plan},
    {"kernel", "build, list, show and clean kernels (kab kernel --help)", cmd_kernel},
    {"run", "run a scenario and store every sample", cmd_run},
    {"runs", "list stored runs", cmd_runs},
    {"show", "print the samples of a stored run", cmd_show},
    {"compare", "build two kernels, run them interleaved, analyse, report", cmd_compare},
    {"report", "analyse stored samples without running anything", cmd_report},
    {"gate", "the correctness gate: stress families on a debug kernel, any finding fails", cmd_gate},
    {"bundle", "write what reruns a stored comparison elsewhere (kab compare --bundle)", cmd_bundle},
    {"nightly", "one night of a suite: the head of a ref measured against its history, alerts", cmd_nightly},
    {"history", "the nights of a nightly suite: a metric per cell and the verdict of each", cmd_history},
    {"bisect", "find the commit of a suite's tree that regressed: measured steps, each decided", cmd_bisect},
    {"db", "maintain the result database: kab db prune --keep-nights N, kab db merge OUT IN…", cmd_db},
    {"image", "build the guest image: initramfs, or --disk the ext4 root (kab image --help)", cmd_image},
    {"doctor", "check this machine: tools, accelerator, daemons, caches, noise", cmd_doctor},
};

int cmd_help(const std::vector<std::string>&) {
  std::printf("usage: kab [-q|-v] COMMAND [options]   (kab COMMAND --help for its options)\n\n"
              "  -q, --quiet    errors, warnings and results only\n"
              "  -v, --verbose  also each sample's timings, host load and backend command line\n\n"
              "commands:\n");
  for (const auto& c : k_commands) std::printf("  %-10s %s\n", c.name, c.summary);
  std::printf(
      "\nexit codes:\n"
      "  0    done; no regression (improvement, equivalent and inconclusive are 0)\n"
      "  1    a regression (compare, report); kab run: some samples were not ok; kab gate: a finding\n"
      "  2    usage or input error: nothing was built or booted\n"
      "  3    could not be completed: a kernel or image build, the hypervisor or backend, every\n"
      "       sample of an arm failed, a failing kab doctor check\n"
      "  130  interrupted (what was stored is kept; kab run --resume continues)\n");
  return k_exit_ok;
}

std::string find_root() {
  if (const char* env = std::getenv("KAB_ROOT")) return env;
  std::error_code ec;
  for (fs::path p = fs::current_path(ec); !p.empty(); p = p.parent_path()) {
    if (fs::exists(p / "kernels") && fs::exists(p / "scenarios") && fs::exists(p / "harness")) return p.string();
    if (p == p.root_path()) break;
  }
  return KAB_SOURCE_DIR;
}

}  // namespace

const std::vector<Command>& commands() { return k_commands; }

const Paths& paths() {
  static Paths p = [] {
    Paths out;
    out.root = find_root();
    out.kernels_dir = std::getenv("KAB_KERNELS") ? std::getenv("KAB_KERNELS") : out.root + "/kernels";
    out.scenarios_dir = out.root + "/scenarios";
    out.default_db = out.root + "/results/kab.db";
    if (const char* c = std::getenv("KAB_CACHE_DIR")) out.cache_dir = c;
    else if (const char* x = std::getenv("XDG_CACHE_HOME")) out.cache_dir = std::string(x) + "/kab";
    else if (const char* h = std::getenv("HOME")) out.cache_dir = std::string(h) + "/.cache/kab";
    else out.cache_dir = "/var/cache/kab";
    return out;
  }();
  return p;
}

Verbosity& verbosity() {
  static Verbosity v = Verbosity::normal;
  return v;
}

scenario::Context validation_context() {
  static fio::Catalog* catalog = [] {
    try {
      return new fio::Catalog();
    } catch (const std::exception& e) {
      throw Fatal(std::string(e.what()) + " (install fio: make deps)", k_exit_usage);
    }
  }();
  scenario::Context ctx;
  ctx.kernels = scenario::list_kernel_names(paths().kernels_dir);
  ctx.fio_options = catalog->names();
  ctx.fio_knows = [](const std::string& o) { return catalog->knows(o); };
  ctx.fio_parse = [](const std::string& job) { return catalog->parse_only(job); };
  for (const auto& p : vm::platforms()) ctx.platforms.push_back({p.name, p.boots_disk});
  ctx.backend_types = backend::backend_types();
  ctx.check_binary = backend::executable_problem;
  ctx.store_free_bytes = [](const std::string& store) { return free_bytes(backend::share_parent(store)); };
  return ctx;
}

core::Scenario load_scenario_or_exit(const std::string& path) {
  auto parsed = scenario::load_scenario(path, validation_context());
  if (!parsed.errors.empty()) {
    std::fputs(scenario::format_errors(parsed.errors).c_str(), stderr);
    throw Fatal(path + ": " + std::to_string(parsed.errors.size()) + " error(s)", k_exit_usage);
  }
  return std::move(*parsed.value);
}

core::KernelSpec load_kernel_or_exit(const std::string& name) {
  std::string path = paths().kernels_dir + "/" + name + ".yaml";
  if (!fs::exists(path)) {
    auto names = scenario::list_kernel_names(paths().kernels_dir);
    std::string msg = "unknown kernel '" + name + "'";
    if (auto s = core::suggest(name, names)) msg += ", did you mean '" + *s + "'?";
    throw Fatal(msg, k_exit_usage);
  }
  auto parsed = scenario::load_kernel(path, paths().kernels_dir);
  if (!parsed.errors.empty()) {
    std::fputs(scenario::format_errors(parsed.errors).c_str(), stderr);
    throw Fatal(path + ": " + std::to_string(parsed.errors.size()) + " error(s)", k_exit_usage);
  }
  return std::move(*parsed.value);
}

}  // namespace kab::cli

int main(int argc, char** argv) {
  using namespace kab::cli;
  kab::proc::install_interrupt_handler();
  std::vector<std::string> args;
  // -q and -v apply to every command, before or after its name (up to "--").
  bool options_end = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    options_end |= a == "--";
    if (!options_end && (a == "-q" || a == "--quiet")) verbosity() = Verbosity::quiet;
    else if (!options_end && (a == "-v" || a == "--verbose")) verbosity() = Verbosity::verbose;
    else args.push_back(a);
  }
  if (args.empty() || args[0] == "--help" || args[0] == "-h") args = {"help"};
  if (args[0] == "--version") {
    std::printf("kab %s\n", KAB_VERSION);
    return k_exit_ok;
  }
  const Command* cmd = nullptr;
  for (const auto& c : commands())
    if (args[0] == c.name) cmd = &c;
  if (!cmd) {
    std::vector<std::string> names;
    for (const auto& c : commands()) names.push_back(c.name);
    std::string msg = "kab: error: unknown command '" + args[0] + "'";
    if (auto s = kab::core::suggest(args[0], names)) msg += ", did you mean '" + *s + "'?";
    std::fprintf(stderr, "%s\n(kab help lists the commands)\n", msg.c_str());
    return k_exit_usage;
  }
  try {
    int code = cmd->run(std::vector<std::string>(args.begin() + 1, args.end()));
    if (kab::proc::interrupted_flag()) return k_exit_interrupted;
    return code;
  } catch (const Fatal& e) {
    std::fprintf(stderr, "kab: error: %s\n", e.what());
    return kab::proc::interrupted_flag() ? k_exit_interrupted : e.exit_code;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kab: error: %s\n", e.what());
    // Not a regression: whatever went wrong, the command could not be completed.
    return kab::proc::interrupted_flag() ? k_exit_interrupted : k_exit_run_failed;
  }
}
