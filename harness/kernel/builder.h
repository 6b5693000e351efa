// KernelBuilder over Kbuild: sources, patches, config fragments, a
// content-addressed artifact cache and incremental A/B builds.
//
// Layout under the cache directory (~/.cache/kab):
//   src/<source-hash>/        pristine extracted source, read-only, shared
//   lanes/<lane-hash>/src     work tree (hard links to pristine; patched or switched files are copies)
//   lanes/<lane-hash>/out     Kbuild O= directory, reused by every kernel of the lane
//   kernels/<key>/            artifacts: vmlinux, bzImage or linux, config, build.log, meta.json
//   index/<input-hash>        input hash → key, so a repeated build is found without Kbuild
// A lane is one (source's lane, arch, config inputs): stock and patched
// kernels of the same config share it, so switching between them recompiles
// only the files the patches touch (Kbuild command lines hold absolute source
// paths, so a tree at another path would recompile everything). Every git
// commit of any repository shares one lane, and a plain directory keeps one
// whatever its content: a new commit or an edit rewrites only the files that
// differ (lanes/<hash>/state.json names the source and patch set it holds).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/ports.h"

namespace kab::kernel {

struct BuildError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Progress {
  std::string step;        // "extract", "patch", "config", "compile", "done"
  int done = 0, expected = 0;
  double elapsed_s = 0;
};

struct Options {
  std::string cache_dir;
  int jobs = 0;                 // 0 = nproc
  bool use_ccache = true;
  bool force = false;           // rebuild even when cached
  // Harness plumbing patches (kernels/patches/harness): for ARCH=um, every
  // uml/*.patch there, and every uml/VERSION/*.patch for a source of that
  // kernel version ("6.1"), is applied before the definition's patches, in
  // file-name order. They are in the cache key but never among the patches
  // under test.
  std::string harness_patch_dir;
  std::function<void(const Progress&)> progress;   // may be empty
};

// The inputs that decide a build, each hashed; --explain compares two of these.
struct BuildInputs {
  std::string source_identity;
  // A directory source's files behind its identity (tree_state()): kept to
  // name what changed, not hashed (the identity covers them).
  std::vector<std::pair<std::string, std::string>> source_files;
  std::string arch;
  std::vector<std::pair<std::string, std::string>> plumbing;    // harness patches: file name → sha256
  std::vector<std::string> plumbing_paths;                      // the same, as files (not hashed)
  std::vector<std::pair<std::string, std::string>> patches;     // file name → sha256; a commit's or mail's
                                                                // subject → "patch-id:" its git patch-id
  // Not hashed: where the inputs come from, for applying and for people.
  std::string source_ref;                 // a git source: "REPO ref REF" (explains "ref main moved from …")
  std::string source_name;                // a git source as people name it: "v6.1 (48f647b15e40)"
  std::vector<std::string> patch_paths;   // the files of `patches`, in order
  std::vector<std::string> patch_labels;  // how reports name them: abcdef123456 ("fuse: …"), a mail's subject <Message-Id>
  std::string config_base;
  std::vector<std::pair<std::string, std::string>> fragments;   // file name → sha256
  std::string compiler;
  std::string hash() const;
  // Human list of differences from `before` ("patch 0001-x.patch changed", ...).
  std::vector<std::string> differences(const BuildInputs& before) const;
};

struct SourcesCleaned {
  int sources = 0;              // directories under src/ removed
  std::uintmax_t bytes = 0;     // file bytes removed (shared hard links counted once per name)
};

class Builder : public core::KernelBuilder {
 public:
  explicit Builder(Options options);
  core::KernelArtifact build(const core::KernelSpec& spec, const std::string& arch, const std::string& variant) override;

  BuildInputs inputs_of(const core::KernelSpec& spec, const std::string& arch, const std::string& variant) const;
  // The inputs the cached build KEY was made from; nullopt when it is not in the cache.
  std::optional<BuildInputs> built_inputs(const std::string& key) const;
  // Artifacts in the cache (from their meta.json).
  std::vector<core::KernelArtifact> cached() const;
  // Removes artifacts (of kernel `name`, or all when empty) and, with all,
  // everything else kab keeps: lanes, sources, patch files, indexes.
  int clean(const std::string& name);
  // Removes the extracted tarballs and exported commits under src/ that no
  // lane holds now (made again when a build needs one) and the patch files
  // written from commits and mails (written again likewise).
  SourcesCleaned clean_sources();
  // The harness plumbing patches for `arch` and a source of kernel VERSION
  // ("6.1"; "" unknown: only those of every version), paths in order; empty
  // but for um.
  std::vector<std::string> plumbing_patches(const std::string& arch, const std::string& version) const;

 private:
  // The read-only tree a lane links to: a directory source itself, else
  // extracted (a tarball) or exported (a git commit) once under src/.
  std::string pristine_source(const core::KernelSpec& spec, const std::string& identity);

  // The stages of build(), in order. BuildState (builder.cpp) carries one
  // build's inputs, paths and results from stage to stage; build() holds the
  // lane's lock from before the second find_built_inputs to its return.
  struct BuildState;
  core::KernelArtifact build_stages(BuildState& st);
  // Inputs, their hash, the label, the cache files, and the explanation of
  // what changed since the last build of this kernel. Throws BuildError on an
  // unknown variant or source.
  BuildState resolve_inputs(const core::KernelSpec& spec, const std::string& arch, const std::string& variant) const;
  std::string explain_inputs(const BuildState& st) const;
  // The artifact these inputs built before (via index/<input-hash>), its
  // explanation "cached: <why>; …"; nullopt when none or with force.
  std::optional<core::KernelArtifact> find_built_inputs(const BuildState& st, const std::string& why) const;
  // The lane's paths (its directory created); the caller then locks it.
  void enter_lane(BuildState& st) const;
  // Links the lane's work tree to the pristine source, once per lane.
  void prepare_lane(const BuildState& st) const;
  // Switches the work tree to this build's source when the lane holds
  // another (a commit, a plain directory as it was): only the files that
  // differ are rewritten, so only what uses them recompiles.
  void switch_source(BuildState& st) const;
  // Stages and applies this kernel's patch set (plumbing first) and switches
  // the work tree to it (nothing to do when the lane has it already); throws
  // BuildError naming the failing hunks, the work tree then unchanged.
  void switch_patch_set(BuildState& st) const;
  // Kbuild environment, a fresh build log, base config + fragments +
  // olddefconfig; sets the config hash and the artifact key. Throws
  // BuildError when the final .config lost an option a fragment asked for.
  void configure(BuildState& st) const;
  // The artifact of this final .config when already built (re-indexes these
  // inputs to it); nullopt when none or with force.
  std::optional<core::KernelArtifact> find_built_config(const BuildState& st) const;
  // make -jN with progress from the log; records the object counts.
  void compile(BuildState& st) const;
  // Copies the artifacts and meta.json into a temp directory renamed into
  // the cache, records the inputs as the last build's.
  core::KernelArtifact publish(const BuildState& st) const;
  // make with the lane's argv and environment plus `extra`, output appended to
  // the build log, progress as `step` (expected < 0: none). Returns make's CPU
  // seconds; throws BuildError on failure (log tail) or interruption.
  double run_make(const BuildState& st, const std::vector<std::string>& extra, const std::string& step,
                  int expected) const;
  void report(const BuildState& st, const std::string& step, int done = 0, int expected = 0) const;

  Options m_options;
};

// "6.1" from a kernel Makefile's VERSION and PATCHLEVEL; "" when it has none.
std::string kernel_version(const std::string& makefile);

// The tarball of Debian package `package` (linux-source-X.Y) under /usr/src, "" when absent.
std::string debian_source_tarball(const std::string& package);

// What a source is, by content, for the cache key and --explain:
// "linux-source-6.1=6.1.192-3" for a Debian package, "tarball:/x sha256:…" for
// a tarball, tree_identity() for a directory. Throws BuildError for a package
// that is not installed.
std::string source_identity(const std::string& source);

// A directory source by content: for a git work tree "git:DIR commit SHA clean"
// or "… changes HASH (N untracked)" (the contents of the files git diff HEAD
// names and of the untracked files); otherwise "tree:DIR manifest HASH (N files)" over every file's
// path, size and modification time. An edit, a checkout or a new file changes it.
std::string tree_identity(const std::string& dir);

// The same, with the files behind it: for a git work tree each file that
// differs from the commit (tracked changes, untracked files) → its content
// hash ("deleted" when gone); otherwise every file → "size\tmtime".
struct TreeState {
  std::string identity;
  std::vector<std::pair<std::string, std::string>> files;   // sorted by path
};
TreeState tree_state(const std::string& dir);

// What `explain` says about a changed directory source: the files that differ
// ("source file fs/fuse/file.c changed", "… added", "… removed"; at most 20
// lines, then how many more). For git trees on two commits, the files the
// commits differ in (git diff --name-only, the tree's own repository).
std::vector<std::string> source_differences(const BuildInputs& now, const BuildInputs& before);

// Files a unified diff touches (paths after stripping one component).
std::vector<std::string> patched_files(const std::string& patch_text);

// Makes work tree `dir` hold what `pristine` holds, entry by entry: one that
// differs (another inode and other bytes, or a symlink elsewhere) becomes a
// fresh copy (a new inode, mtime now: Kbuild recompiles what uses it), one
// the pristine tree lacks is removed, one that is the same is left alone (its
// objects stay valid). `only`: just these relative paths (the files two
// commits differ in); else both whole trees. `skip`: paths the caller keeps.
// Returns the paths changed, sorted. Never writes through a hard link.
std::vector<std::string> sync_work_tree(const std::string& pristine, const std::string& dir,
                                        const std::optional<std::vector<std::string>>& only,
                                        const std::set<std::string>& skip);

// How many objects of the Kbuild output `out_dir` (its .*.o.cmd files: the
// source and every header fixdep recorded, and the config options used) an
// incremental build there will recompile, by make's rule: the object is
// missing, or older than a file it was built from (or that file is gone), or
// it reads an option of `changed_options` (X of CONFIG_X).
int objects_out_of_date(const std::string& out_dir, const std::set<std::string>& changed_options);

// The options (X of CONFIG_X) whose values differ between two .config texts.
std::set<std::string> changed_options(const std::string& before, const std::string& after);

// Applies `patches` in order to a copy of the files they touch, taken from
// `base_dir`, in `staging_dir`. On failure throws BuildError naming the patch
// file and each failing hunk with its header; nothing in base_dir changes.
// With `repo` (the git repository a series or commits come from), a patch
// whose context no longer matches is merged three-way as `git am -3` would:
// the file it was made against (its "index" line's blob, read from repo), the
// patch applied to that strictly, merged into the staged file with git
// merge-file. Returns a note for each patch applied so.
std::vector<std::string> apply_patches_staged(const std::string& base_dir, const std::vector<std::string>& patches,
                                              const std::string& staging_dir, const std::string& repo = "");

// An option a fragment asks for: value "y", "m", a literal, or "n" for
// "# CONFIG_X is not set".
struct Wanted {
  std::string option, value, fragment;
};
std::vector<Wanted> read_fragment(const std::string& text, const std::string& fragment_name);

struct DroppedOption {
  Wanted wanted;
  std::string got;          // the final value, "n" when unset
  std::string depends;      // the Kconfig "depends on" of the option, when found
};
// The requested options that the final .config does not have as asked.
std::vector<DroppedOption> dropped_options(const std::vector<Wanted>& wanted, const std::string& final_config);
// "depends on A && B" lines of `option` (CONFIG_ prefix optional) in the tree's Kconfig files.
std::string kconfig_depends(const std::string& src_dir, const std::string& option);

}  // namespace kab::kernel
