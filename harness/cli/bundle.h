// A comparison's bundle: what `kab compare --bundle FILE.tar.gz` needs to run
// it again on another machine, and nothing that existed only on the author's.
//
//   kab-bundle/manifest.json     run, plan (as stored, byte for byte), seed, arms,
//                                each kernel's build facts, kab's version, the host
//   kab-bundle/scenario.yaml     the scenario as run (its job file beside it as job.fio)
//   kab-bundle/kernels/…         each arm's kernel definition and every file it
//                                names (patches, series, config fragments), at
//                                their places under kernels/; a git kernel as
//                                its commit and patches/KERNEL.mbox
//   kab-bundle/built/ARM.config  the final .config each arm's kernel was built with
//   kab-bundle/gate/KERNEL/…     the gate the comparison ran first (kab compare
//                                --gate): each family's scenario as it ran,
//                                FAMILY.yaml, its job files beside it
//
// Made with `tar`; read back by extracting into a directory of its own.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/model.h"
#include "kernel/builder.h"
#include "store/store.h"

namespace kab::cli {

inline constexpr int k_bundle_version = 2;   // 2: a gated comparison's gate

// Writes run RUN of DB as a bundle to OUT (a .tar.gz). The kernel definitions
// are those in USED (the ones a command made or read from a bundle, whose
// files live under KERNELS_DIR), else KERNELS_DIR/NAME.yaml; BUILDER resolves
// their inputs. A git kernel is bundled as its commit and its change as an
// mbox. Throws Fatal (exit 2) when the run cannot be bundled: a kernel from a
// directory or tarball or a work tree's uncommitted changes, a file outside
// KERNELS_DIR, a kernel whose inputs changed since the run built it.
void write_bundle(store::ResultStore& db, std::int64_t run, const std::string& out,
                  const std::map<std::string, core::KernelSpec>& used, const std::string& kernels_dir,
                  const kernel::Builder& builder);

// A kernel definition a command made (kab compare --tree, kab nightly), kept
// with the run as fact "kernel.made.NAME", so kab bundle RUN finds it later.
inline constexpr const char* k_made_kernel_fact = "kernel.made.";
std::string made_kernel_fact(const core::KernelSpec& k);
// The definitions run RUN's facts hold, by name.
std::map<std::string, core::KernelSpec> made_kernels(const store::RunRecord& run);

// The gate of one arm's kernel as the bundle holds it: the family scenarios
// its run ran, in order, each with the kernel, variant, backends and runtime.
struct BundledGate {
  std::string arm, kernel, variant;
  int runtime_s = 0;
  int cells = 0;   // (family, backend) pairs
  std::vector<std::pair<std::string, core::Scenario>> scenarios;   // family → its scenario
};

struct OpenedBundle {
  std::string dir;                     // where it was extracted (kab-bundle/)
  nlohmann::json manifest;
  core::Scenario scenario;             // as run: the arms, repetitions, seed and stop of the run
  std::map<std::string, core::KernelSpec> kernels;   // by name, read from the bundle
  std::size_t planned = 0;             // samples of its plan
  std::vector<BundledGate> gates;      // a gated comparison's gate, per arm, in arm order
};

// Extracts FILE into DIR (created; emptied first) and reads it. Throws Fatal
// (exit 2) naming what is wrong with it, and when the scenario it holds does
// not plan byte for byte the samples the bundle recorded.
// A git kernel builds on its commit in TREE when given, else in the
// repository it was bundled from; either must hold the commit.
OpenedBundle open_bundle(const std::string& file, const std::string& dir, const std::string& tree = "");

// The facts of the bundle's host that differ here: "accelerator: kvm there, tcg here".
std::vector<std::string> bundle_differences(const nlohmann::json& manifest, const store::RunInfo& here);

}  // namespace kab::cli
