// Kernels from git: a commit of a repository as the source, and the change
// under test as commits (BASE..HEAD) or as a mailed series (an mbox), each
// turned into patch files that the builder applies like kernels/patches.
//
// A build is identified by what it compiles, never by names: the resolved
// commit id of the source, and each patch by its `git patch-id --stable` (the
// diff, without line numbers, whitespace or mail headers), so a series made
// with `git format-patch` from commits is the same build as the commits.
// Nothing here writes to the user's repository: commits are read with
// rev-parse, archive and format-patch only.
#pragma once

#include <string>
#include <vector>

namespace kab::kernel {

// REF (tag, branch, commit, "HEAD~2") of REPO as a full commit id. Throws
// BuildError naming the ref and the repository when it is not a commit there.
std::string git_commit(const std::string& repo, const std::string& ref);

// "v6.1" when REF names a tag or branch, else the first 12 hex digits: how a
// report names the source.
std::string git_describe(const std::string& repo, const std::string& ref, const std::string& commit);

// The text of FILE at COMMIT of REPO ("" when it has no such file).
std::string git_file(const std::string& repo, const std::string& commit, const std::string& file);

// The tree of COMMIT, exported with `git archive` into DIR (created; must not exist).
void git_export(const std::string& repo, const std::string& commit, const std::string& dir);

// One patch under test, as a file the builder applies.
struct GitPatch {
  std::string file;        // the patch (one mail of a series, one commit of a range)
  std::string subject;     // without "[PATCH n/m]": the same for a commit and its mail
  std::string patch_id;    // git patch-id --stable of the diff
  std::string label;       // abcdef123456 ("fuse: …") for a commit; the subject for a mail
  std::string message_id;  // a mail's Message-Id, "" for commits
};

// The commits of RANGE ("BASE..HEAD") in REPO, oldest first, as patches
// written under DIR. Throws BuildError for a range that is not A..B, an empty
// range, or one with a merge commit (a patch cannot carry it).
std::vector<GitPatch> git_range_patches(const std::string& repo, const std::string& range, const std::string& dir);
// RANGE's base: the commit A of "A..B".
std::string git_range_base(const std::string& repo, const std::string& range);

// The mails of MBOX that carry a diff, in order, as patches written under
// DIR (a cover letter, "[PATCH 0/n]", carries none and is skipped). Throws
// BuildError when the file holds no patch.
struct Series {
  std::vector<GitPatch> patches;
  std::string base_commit;   // the "base-commit:" trailer git format-patch --base writes, "" when absent
};
Series mbox_patches(const std::string& mbox, const std::string& dir);

// The uncommitted state of REPO's work tree (ref WORKTREE) as one patch on
// HEAD: tracked changes, staged or not, and untracked files git does not
// ignore, written under DIR. A clean tree gives no file. So a WORKTREE build
// is HEAD's source (its lane: an edit recompiles what it touches) plus this
// patch, and an edit reverted is the earlier build again.
struct WorktreeChange {
  std::string file;                 // "" when the work tree is clean
  std::string hash;                 // sha256 of the patch
  std::vector<std::string> files;   // the paths it changes
};
WorktreeChange worktree_patch(const std::string& repo, const std::string& dir);

// git patch-id --stable of a patch file; "" when it holds no diff.
std::string patch_id(const std::string& file);

}  // namespace kab::kernel
