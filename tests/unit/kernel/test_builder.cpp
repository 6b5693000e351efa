#include <catch2/catch.hpp>
#include <chrono>
#include <thread>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <sys/stat.h>
#include <unistd.h>

#include "core/text.h"
#include "kernel/builder.h"
#include "kernel/git_source.h"
#include "proc/runner.h"

using namespace kab::kernel;
namespace fs = std::filesystem;

namespace {

const std::string k_data = std::string(KAB_TEST_DATA) + "/kernel";

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

BuildInputs sample_inputs() {
  BuildInputs in;
  in.source_identity = "linux-source-6.1=6.1.192-3";
  in.arch = "x86_64";
  in.config_base = "tinyconfig";
  in.compiler = "gcc (Debian 12.2.0-14) 12.2.0";
  in.patches = {{"0001-x.patch", "aaaa"}};
  in.fragments = {{"virtio-guest.config", "bbbb"}};
  return in;
}

}  // namespace

TEST_CASE("build inputs hash: every input counts, nothing else", "[kernel]") {
  BuildInputs a = sample_inputs();
  const std::string h = a.hash();
  SECTION("same inputs, same key") { CHECK(sample_inputs().hash() == h); }
  SECTION("one patch byte changes the key") {
    BuildInputs b = a;
    b.patches[0].second = "aaab";
    CHECK(b.hash() != h);
    CHECK(b.differences(a) == std::vector<std::string>{"patch 0001-x.patch changed"});
  }
  SECTION("a config fragment line changes the key") {
    BuildInputs b = a;
    b.fragments[0].second = "bbbc";
    CHECK(b.hash() != h);
    CHECK(b.differences(a) == std::vector<std::string>{"fragment virtio-guest.config changed"});
  }
  SECTION("arch and compiler are part of the key") {
    BuildInputs b = a;
    b.arch = "um";
    CHECK(b.hash() != h);
    BuildInputs c = a;
    c.compiler = "gcc 13";
    CHECK(c.hash() != h);
    CHECK(c.differences(a) == std::vector<std::string>{"compiler changed: gcc (Debian 12.2.0-14) 12.2.0 -> gcc 13"});
  }
  SECTION("added and removed patches are named") {
    BuildInputs b = a;
    b.patches.clear();
    CHECK(b.differences(a) == std::vector<std::string>{"patch 0001-x.patch removed"});
    CHECK(a.differences(b) == std::vector<std::string>{"patch 0001-x.patch added"});
  }
  SECTION("the real patch hashes come from file contents") {
    // Hash the real port twice through a copy: unrelated files do not matter.
    fs::path tmp = fs::temp_directory_path() / "kab-test-keys";
    fs::remove_all(tmp);
    fs::create_directories(tmp);
    fs::copy_file(k_data + "/good.patch", tmp / "a.patch");
    std::ofstream(tmp / "unrelated.txt") << "noise";
    kab::core::KernelSpec spec;
    spec.name = "t";
    spec.source = (fs::path(k_data) / "tree").string();
    spec.patches = {(tmp / "a.patch").string()};
    Builder builder(Options{tmp.string()});
    std::string k1 = builder.inputs_of(spec, "x86_64", "").hash();
    std::ofstream(tmp / "unrelated.txt") << "other noise";
    CHECK(builder.inputs_of(spec, "x86_64", "").hash() == k1);
    std::ofstream(tmp / "a.patch", std::ios::app) << " \n";
    CHECK(builder.inputs_of(spec, "x86_64", "").hash() != k1);
    fs::remove_all(tmp);
  }
}

TEST_CASE("patches apply to a staged copy, or fail naming each hunk", "[kernel]") {
  fs::path staging = fs::temp_directory_path() / "kab-test-staging";
  const std::string tree = k_data + "/tree";
  const std::string before = slurp(fs::path(tree) / "fs/demo/file.c");
  SECTION("a good patch") {
    apply_patches_staged(tree, {k_data + "/good.patch"}, staging.string());
    CHECK(slurp(staging / "fs/demo/file.c").find("return 42;") != std::string::npos);
    CHECK(slurp(fs::path(tree) / "fs/demo/file.c") == before);
  }
  SECTION("a failing hunk is named with its header and the tree is untouched") {
    try {
      apply_patches_staged(tree, {k_data + "/bad.patch"}, staging.string());
      FAIL("the bad patch applied");
    } catch (const BuildError& e) {
      CHECK(std::string(e.what()) ==
            "patch bad.patch does not apply to the source:\n"
            "  fs/demo/file.c: hunk #2 FAILED at line 7\n"
            "      @@ -7,4 +7,4 @@\n"
            "       static int demo_other(void)\n"
            "       {\n"
            "      -\treturn 3;\n"
            "      +\treturn 4;\n"
            "       }");
    }
    CHECK(slurp(fs::path(tree) / "fs/demo/file.c") == before);
    CHECK_FALSE(fs::exists(staging));
  }
  SECTION("patched_files reads the +++ lines") {
    CHECK(patched_files(slurp(k_data + "/good.patch")) == std::vector<std::string>{"fs/demo/file.c"});
    auto rfc = patched_files(slurp(std::string(KAB_SOURCE_DIR) +
                                   "/kernels/patches/0001-fuse-use-page-cache-pages-for-writeback-io-when-virtio_fs.patch"));
    CHECK(rfc == std::vector<std::string>{"fs/fuse/file.c", "fs/fuse/fuse_i.h", "fs/fuse/inode.c", "fs/fuse/virtio_fs.c"});
  }
  fs::remove_all(staging);
}

TEST_CASE("fragments: requested options are checked in the final config", "[kernel]") {
  auto wanted = read_fragment("# comment\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x\"\nCONFIG_NR=8\n", "f.config");
  REQUIRE(wanted.size() == 4);
  CHECK(wanted[1].value == "n");
  SECTION("all kept") {
    CHECK(dropped_options(wanted, "CONFIG_A=y\nCONFIG_C=\"x\"\nCONFIG_NR=8\n# CONFIG_B is not set\n").empty());
  }
  SECTION("dropped and changed options are reported") {
    auto d = dropped_options(wanted, "CONFIG_B=y\nCONFIG_C=\"x\"\nCONFIG_NR=4\n");
    REQUIRE(d.size() == 3);
    CHECK(d[0].wanted.option == "CONFIG_A");
    CHECK(d[0].got == "n");
    CHECK(d[1].wanted.option == "CONFIG_B");
    CHECK(d[1].got == "y");
    CHECK(d[2].got == "4");
  }
  SECTION("a later fragment overrides an earlier one") {
    auto more = read_fragment("CONFIG_A=n\n# CONFIG_A is not set\n", "g.config");
    auto all = wanted;
    all.insert(all.end(), more.begin(), more.end());
    auto d = dropped_options(all, "CONFIG_C=\"x\"\nCONFIG_NR=8\n");
    CHECK(d.empty());
  }
  SECTION("the unmet dependency is read from Kconfig") {
    CHECK(kconfig_depends(k_data + "/tree", "CONFIG_DEMO_FS") == "depends on DEMO_BUS && !DEMO_LEGACY");
    CHECK(kconfig_depends(k_data + "/tree", "CONFIG_NOPE").empty());
  }
}

TEST_CASE("harness plumbing patches: ARCH=um only, first, in the key but not under test", "[kernel]") {
  fs::path tmp = fs::temp_directory_path() / "kab-test-plumbing";
  fs::remove_all(tmp);
  fs::create_directories(tmp / "harness/uml");
  fs::copy_file(k_data + "/good.patch", tmp / "harness/uml/0001-plumbing.patch");
  std::ofstream(tmp / "harness/uml/README") << "not a patch";
  kab::core::KernelSpec spec;
  spec.name = "t";
  spec.source = (fs::path(k_data) / "tree").string();
  Options o{tmp.string()};
  o.harness_patch_dir = (tmp / "harness").string();
  Builder builder(o);
  SECTION("listed for um only") {
    CHECK(builder.plumbing_patches("x86_64", "").empty());
    CHECK(builder.plumbing_patches("um", "") == std::vector<std::string>{(tmp / "harness/uml/0001-plumbing.patch").string()});
    CHECK(builder.inputs_of(spec, "x86_64", "").plumbing.empty());
    BuildInputs um = builder.inputs_of(spec, "um", "");
    REQUIRE(um.plumbing.size() == 1);
    CHECK(um.plumbing[0].first == "0001-plumbing.patch");
    CHECK(um.patches.empty());   // never among the patches under test
  }
  SECTION("a version's own, for a source of that version, in file-name order") {
    fs::create_directories(tmp / "harness/uml/6.1");
    fs::copy_file(k_data + "/good.patch", tmp / "harness/uml/6.1/0000-first.patch");
    fs::copy_file(k_data + "/good.patch", tmp / "harness/uml/6.1/0002-six-one.patch");
    CHECK(builder.plumbing_patches("um", "6.1") ==
          std::vector<std::string>{(tmp / "harness/uml/6.1/0000-first.patch").string(),
                                   (tmp / "harness/uml/0001-plumbing.patch").string(),
                                   (tmp / "harness/uml/6.1/0002-six-one.patch").string()});
    CHECK(builder.plumbing_patches("um", "6.12").size() == 1);
    CHECK(builder.plumbing_patches("x86_64", "6.1").empty());
    // The version is the source's: a tree's Makefile, a Debian package's name.
    const fs::path tree = tmp / "tree";
    fs::create_directories(tree);
    std::ofstream(tree / "Makefile") << "# SPDX-License-Identifier: GPL-2.0\nVERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 192\n";
    spec.source = tree.string();
    BuildInputs um = builder.inputs_of(spec, "um", "");
    REQUIRE(um.plumbing.size() == 3);
    CHECK(um.plumbing[2].first == "0002-six-one.patch");
    CHECK(um.plumbing_paths.size() == 3);
    std::ofstream(tree / "Makefile") << "VERSION = 6\nPATCHLEVEL = 12\n";
    CHECK(builder.inputs_of(spec, "um", "").plumbing.size() == 1);
  }
  SECTION("a change to it changes the key and is explained") {
    BuildInputs before = builder.inputs_of(spec, "um", "");
    std::ofstream(tmp / "harness/uml/0001-plumbing.patch", std::ios::app) << " \n";
    BuildInputs after = builder.inputs_of(spec, "um", "");
    CHECK(after.hash() != before.hash());
    CHECK(after.differences(before) == std::vector<std::string>{"plumbing patch 0001-plumbing.patch changed"});
  }
  fs::remove_all(tmp);
}

TEST_CASE("a kernel's version is its Makefile's VERSION.PATCHLEVEL", "[kernel]") {
  CHECK(kernel_version("# SPDX\nVERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 192\nEXTRAVERSION =\n") == "6.1");
  CHECK(kernel_version("VERSION = 6\nPATCHLEVEL = 12\n") == "6.12");
  CHECK(kernel_version("VERSION = 6\n").empty());
  CHECK(kernel_version("VERSION = $(X)\nPATCHLEVEL = 1\n").empty());
  CHECK(kernel_version("").empty());
}

// The source part of a build's inputs, as the builder takes it from a directory.
BuildInputs tree_inputs(const fs::path& dir) {
  BuildInputs in;
  auto tree = tree_state(dir.string());
  in.source_identity = tree.identity;
  in.source_files = tree.files;
  return in;
}

TEST_CASE("a directory source is identified by its content", "[kernel][source]") {
  const fs::path dir = fs::temp_directory_path() / ("kab-tree-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::copy(k_data + "/tree", dir, fs::copy_options::recursive);
  auto write = [&](const std::string& rel, const std::string& text) { std::ofstream(dir / rel) << text; };
  SECTION("a plain directory: every file's path, size and mtime") {
    const std::string a = source_identity(dir.string());
    CHECK(a.rfind("tree:" + dir.string() + " manifest ", 0) == 0);
    CHECK(source_identity(dir.string()) == a);   // stable
    write("fs/demo/file.c", "int changed;\n");
    const std::string b = source_identity(dir.string());
    CHECK(b != a);
    write("fs/demo/new.c", "int n;\n");
    CHECK(source_identity(dir.string()) != b);
  }
  SECTION("--explain names the files that changed") {
    auto inputs = [&] { return tree_inputs(dir); };
    const BuildInputs before = inputs();
    CHECK(before.source_files.size() >= 2);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));   // another mtime
    write("fs/demo/file.c", "int changed;\n");
    write("fs/demo/new.c", "int n;\n");
    auto d = inputs().differences(before);
    REQUIRE(d.size() == 3);
    CHECK(d[0].rfind("source changed: tree:", 0) == 0);
    CHECK(d[1] == "source file fs/demo/file.c changed");
    CHECK(d[2] == "source file fs/demo/new.c added");
    CHECK(before.differences(inputs()).back() == "source file fs/demo/new.c removed");
  }
  SECTION("a git work tree: the commit and what differs from it") {
    auto git = [&](std::vector<std::string> args) {
      args.insert(args.begin(), {"git", "-C", dir.string(), "-c", "user.name=kab", "-c", "user.email=kab@localhost"});
      auto [ok, out] = kab::proc::capture(args);
      INFO(out);
      REQUIRE(ok);
      return kab::core::trim(out);
    };
    git({"init", "-q"});
    git({"add", "-A"});
    git({"commit", "-q", "-m", "base"});
    const std::string head = git({"rev-parse", "HEAD"});
    const std::string clean = source_identity(dir.string());
    CHECK(clean == "git:" + dir.string() + " commit " + head + " clean");
    write("fs/demo/file.c", "int edited;\n");
    const std::string edited = source_identity(dir.string());
    CHECK(edited.find(" commit " + head + " changes ") != std::string::npos);
    CHECK(edited.find("(0 untracked)") != std::string::npos);
    write("fs/demo/untracked.c", "int u;\n");
    const std::string untracked = source_identity(dir.string());
    CHECK(untracked != edited);
    CHECK(untracked.find("(1 untracked)") != std::string::npos);
    git({"add", "-A"});
    git({"commit", "-q", "-m", "second"});
    const std::string second = source_identity(dir.string());
    CHECK(second == "git:" + dir.string() + " commit " + git({"rev-parse", "HEAD"}) + " clean");
    CHECK(second != clean);
    // The cache key follows: another source identity is another build.
    git({"checkout", "-q", head});
    CHECK(source_identity(dir.string()) == clean);

    // --explain names the files: an edit, then a commit.
    auto inputs = [&] { return tree_inputs(dir); };
    const BuildInputs at_head = inputs();
    CHECK(at_head.source_files.empty());   // clean: nothing differs from the commit
    write("fs/demo/file.c", "int third;\n");
    const BuildInputs dirty = inputs();
    auto d = dirty.differences(at_head);
    REQUIRE(d.size() == 2);
    CHECK(d[1] == "source file fs/demo/file.c changed");
    CHECK(at_head.differences(dirty).back() == "source file fs/demo/file.c changed back to the commit");
    git({"commit", "-q", "-a", "-m", "third"});
    d = inputs().differences(at_head);
    REQUIRE(d.size() == 3);
    CHECK(d[1] == "source commit changed: " + head.substr(0, 12) + " -> " + git({"rev-parse", "HEAD"}).substr(0, 12));
    CHECK(d[2] == "source file fs/demo/file.c differs between the commits");
  }
  fs::remove_all(dir);
}

// Kernels from git (kernel/git_source.h): a small repository made here — a
// base tagged v1, a branch "topic" with two commits on it, one a cover-letter
// series of them written by git format-patch — stands in for a kernel tree.
TEST_CASE("git sources: commits and a mailed series are the same change, the user's repository untouched",
          "[kernel][git]") {
  const fs::path root = fs::temp_directory_path() / ("kab-git-" + std::to_string(::getpid()));
  const fs::path repo = root / "linux";
  fs::remove_all(root);
  fs::create_directories(root);
  fs::copy(k_data + "/tree", repo, fs::copy_options::recursive);
  // git in DIR as a fixed committer, which must succeed.
  auto git_in = [](const fs::path& dir) {
    return [dir](std::vector<std::string> args) {
      args.insert(args.begin(), {"git", "-C", dir.string(), "-c", "user.name=kab", "-c", "user.email=kab@localhost"});
      auto [ok, out] = kab::proc::capture(args);
      INFO(out);
      REQUIRE(ok);
      return out;
    };
  };
  auto git = git_in(repo);
  auto write = [&](const std::string& rel, const std::string& text) { std::ofstream(repo / rel) << text; };
  git({"init", "-q", "-b", "main"});
  git({"add", "-A"});
  git({"commit", "-q", "-m", "base"});
  git({"tag", "v1"});
  const std::string base = kab::core::trim(git({"rev-parse", "HEAD"}));
  git({"checkout", "-q", "-b", "topic"});
  write("fs/demo/file.c", "int writeback = 1;\n");
  git({"commit", "-q", "-a", "-m", "fuse: use page cache pages for writeback io"});
  write("fs/demo/new.c", "int helper;\n");
  git({"add", "fs/demo/new.c"});
  git({"commit", "-q", "-m", "fuse: add a helper"});
  const std::string topic = kab::core::trim(git({"rev-parse", "HEAD"}));
  const fs::path mbox = root / "series.mbox";
  {
    std::string text = git({"format-patch", "--stdout", "--cover-letter", "--thread", "--base=v1", "v1..topic"});
    std::ofstream(mbox) << text;
  }
  git({"checkout", "-q", "main"});
  write("fs/demo/file.c", "int uncommitted;\n");   // the user's work in progress stays as it is
  // The index by what it stages (mode, object id, path): its stat cache is
  // git's own to refresh, and this test's edits change mtimes.
  auto repo_state = [&] {
    return git({"status", "--porcelain=v1", "--branch"}) + git({"for-each-ref"}) + git({"rev-parse", "HEAD"}) +
           slurp(repo / "fs/demo/file.c") + git({"ls-files", "--stage"});
  };
  const std::string before = repo_state();

  SECTION("refs resolve to commits; a ref that is none is named") {
    CHECK(git_commit(repo.string(), "v1") == base);
    CHECK(git_commit(repo.string(), "topic") == topic);
    CHECK(git_commit(repo.string(), topic.substr(0, 12)) == topic);
    CHECK(git_describe(repo.string(), "v1", base) == "v1");
    CHECK(git_describe(repo.string(), "topic", topic) == "topic");
    CHECK(git_describe(repo.string(), topic.substr(0, 12), topic) == topic.substr(0, 12));
    CHECK_THROWS_WITH(git_commit(repo.string(), "v9"),
                      "ref 'v9' is not a commit in the git repository " + repo.string());
    CHECK_THROWS_WITH(git_range_patches(repo.string(), "v1", (root / "p").string()),
                      "commits 'v1' is not a range BASE..HEAD");
    CHECK_THROWS_WITH(git_range_patches(repo.string(), "topic..v1", (root / "p").string()),
                      "commits topic..v1 of " + repo.string() + " is empty: HEAD has nothing BASE has not");
  }
  SECTION("the commits and their series: the same subjects and patch ids, named as the kernel community does") {
    auto commits = git_range_patches(repo.string(), "v1..topic", (root / "commits").string());
    auto series = mbox_patches(mbox.string(), (root / "series").string());
    REQUIRE(commits.size() == 2);
    REQUIRE(series.patches.size() == 2);   // the cover letter carries no diff
    CHECK(series.base_commit == base);
    for (std::size_t i = 0; i < 2; ++i) {
      CHECK(commits[i].subject == series.patches[i].subject);
      CHECK(commits[i].patch_id == series.patches[i].patch_id);
      CHECK(commits[i].patch_id.size() == 40);
      CHECK(series.patches[i].message_id.empty() == false);
    }
    CHECK(commits[0].subject == "fuse: use page cache pages for writeback io");
    CHECK(commits[1].label ==
          kab::core::trim(git({"rev-parse", "topic"})).substr(0, 12) + " (\"fuse: add a helper\")");
    CHECK(series.patches[0].label == "fuse: use page cache pages for writeback io");
    CHECK(commits[0].patch_id != commits[1].patch_id);
  }
  SECTION("a mailed subject in another script and folded over lines reads as the commit's") {
    // git format-patch encodes a non-ASCII subject (RFC 2047) and folds a long
    // one. (In a clone: the user's repository is checked unchanged at the end.)
    const fs::path clone = root / "intl-repo";
    REQUIRE(kab::proc::capture({"git", "clone", "-q", repo.string(), clone.string()}).first);
    auto cgit = git_in(clone);
    const std::string subject = "fuse: écrire les pages de writeback sans copie — une très longue ligne de sujet "
                                "qui sera repliée";
    std::ofstream(clone / "fs/demo/file.c") << "int ecrire = 1;\n";
    cgit({"commit", "-q", "-a", "-m", subject});
    const fs::path intl = root / "intl.mbox";
    { std::ofstream(intl) << cgit({"format-patch", "--stdout", "HEAD~1..HEAD"}); }
    const std::string mail = slurp(intl);
    REQUIRE(mail.find("=?UTF-8?q?") != std::string::npos);   // really encoded
    auto series = mbox_patches(intl.string(), (root / "intl").string());
    REQUIRE(series.patches.size() == 1);
    CHECK(series.patches[0].subject == subject);
    CHECK(git_range_patches(clone.string(), "HEAD~1..HEAD", (root / "c").string())[0].subject == subject);
  }
  SECTION("build inputs: identified by commit and patch ids; a moved branch is explained") {
    Options o;
    o.cache_dir = (root / "cache").string();
    Builder b(o);
    kab::core::KernelSpec stock;
    stock.name = "stock";
    stock.git_repo = repo.string();
    stock.git_ref = "v1";
    kab::core::KernelSpec by_commits = stock, by_series = stock, by_branch = stock;
    by_commits.name = by_series.name = "rfc";
    by_commits.git_ref = "";
    by_commits.commits = "v1..topic";
    by_series.series = mbox.string();
    by_branch.git_ref = "topic";
    const BuildInputs s = b.inputs_of(stock, "x86_64", "");
    const BuildInputs c = b.inputs_of(by_commits, "x86_64", "");
    const BuildInputs m = b.inputs_of(by_series, "x86_64", "");
    CHECK(s.source_identity == "git commit " + base);
    CHECK(c.source_identity == s.source_identity);   // the candidate builds on the base, in its lane
    CHECK(c.hash() == m.hash());                     // commits or mails: the same build
    CHECK(c.hash() != s.hash());
    REQUIRE(c.patch_labels.size() == 2);
    CHECK(c.patch_labels[0].find(" (\"fuse: use page cache pages for writeback io\")") == 12);
    CHECK(m.patch_labels[1].rfind("fuse: add a helper <", 0) == 0);   // subject and Message-Id
    // The series' own base-commit: named beside the base it is applied to.
    CHECK(s.source_name == "v1 (" + base.substr(0, 12) + ")");
    CHECK(c.source_name == s.source_name);
    CHECK(m.source_name == s.source_name + ", the series' base-commit");
    kab::core::KernelSpec elsewhere = by_series;
    elsewhere.git_ref = "topic";
    CHECK(b.inputs_of(elsewhere, "x86_64", "").source_name ==
          "topic (" + topic.substr(0, 12) + "); the series names base-commit " + base.substr(0, 12) + ", not this base");
    // The patch files apply to the base's tree, as kernels/patches do.
    const fs::path exported = root / "export";
    git_export(repo.string(), base, exported.string());
    CHECK(slurp(exported / "fs/demo/file.c") == slurp(k_data + "/tree/fs/demo/file.c"));
    apply_patches_staged(exported.string(), m.patch_paths, (root / "staged").string());
    CHECK(slurp(root / "staged/fs/demo/file.c") == "int writeback = 1;\n");
    CHECK(slurp(root / "staged/fs/demo/new.c") == "int helper;\n");

    // The branch moves: another build, and why.
    const BuildInputs at_topic = b.inputs_of(by_branch, "x86_64", "");
    CHECK(at_topic.source_identity == "git commit " + topic);
    git({"branch", "-f", "topic", "topic~1"});
    const BuildInputs moved = b.inputs_of(by_branch, "x86_64", "");
    CHECK(moved.hash() != at_topic.hash());
    auto d = moved.differences(at_topic);
    REQUIRE(d.size() == 2);
    CHECK(d[0] == "ref topic moved from " + topic.substr(0, 12) + " to " +
                      kab::core::trim(git({"rev-parse", "topic"})).substr(0, 12) + " (" + repo.string() + ")");
    CHECK(d[1] == "source file fs/demo/new.c differs between the commits");
    git({"branch", "-f", "topic", topic});
    CHECK(b.inputs_of(by_branch, "x86_64", "").hash() == at_topic.hash());
    // A ref that is not the range's base is refused, not silently ignored.
    kab::core::KernelSpec both = by_commits;
    both.git_ref = "topic";
    CHECK_THROWS_WITH(b.inputs_of(both, "x86_64", ""), Catch::Contains("ref topic is not the base of commits v1..topic"));
  }
  SECTION("WORKTREE: HEAD plus the uncommitted changes as a patch; reverted, the base's build again") {
    Options o;
    o.cache_dir = (root / "cache").string();
    Builder b(o);
    kab::core::KernelSpec stock, wt;
    stock.name = "stock";
    stock.git_repo = wt.git_repo = repo.string();
    stock.git_ref = "v1";
    wt.name = "mine";
    wt.git_ref = "WORKTREE";
    const BuildInputs s = b.inputs_of(stock, "x86_64", "");
    const BuildInputs edited = b.inputs_of(wt, "x86_64", "");
    CHECK(edited.source_identity == s.source_identity);   // HEAD is v1: the base's lane
    REQUIRE(edited.patches.size() == 1);
    CHECK(edited.patches[0].first == "uncommitted changes");
    CHECK(edited.patch_labels[0] == "uncommitted changes (fs/demo/file.c)");
    CHECK(edited.hash() != s.hash());
    // The patch is the edit: applied to HEAD's tree it gives the work tree's file.
    git_export(repo.string(), base, (root / "head").string());
    apply_patches_staged((root / "head").string(), edited.patch_paths, (root / "staged").string());
    CHECK(slurp(root / "staged/fs/demo/file.c") == "int uncommitted;\n");
    // Another edit, then back as it was: each state its own build, the first again the same.
    write("fs/demo/file.c", "int other;\n");
    CHECK(b.inputs_of(wt, "x86_64", "").hash() != edited.hash());
    write("fs/demo/file.c", "int uncommitted;\n");
    CHECK(b.inputs_of(wt, "x86_64", "").hash() == edited.hash());
    // Reverted: nothing uncommitted, the base's build itself.
    const std::string original = slurp(k_data + "/tree/fs/demo/file.c");
    write("fs/demo/file.c", original);
    const BuildInputs clean = b.inputs_of(wt, "x86_64", "");
    CHECK(clean.patches.empty());
    CHECK(clean.hash() == s.hash());
    write("fs/demo/file.c", "int uncommitted;\n");   // as the user left it
  }
  // Nothing above wrote to the user's repository: work tree, index, refs, HEAD.
  CHECK(repo_state() == before);
  fs::remove_all(root);
}

TEST_CASE("a lane's work tree switches only the files that differ, never writing through a hard link",
          "[kernel][lane]") {
  const fs::path root = fs::temp_directory_path() / ("kab-sync-" + std::to_string(::getpid()));
  fs::remove_all(root);
  const fs::path a = root / "a", b = root / "b", work = root / "work";
  auto put = [](const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::trunc) << text;
  };
  put(a / "same.c", "int same;\n");
  put(a / "edited.h", "#define X 1\n");
  put(a / "sub/gone.c", "int gone;\n");
  put(a / ".kab-complete", "a\n");
  fs::create_symlink("same.c", a / "link");
  // b: another tree (other inodes), one file edited, one removed, one added, the link retargeted.
  put(b / "same.c", "int same;\n");
  put(b / "edited.h", "#define X 2\n");
  put(b / "added.c", "int added;\n");
  put(b / ".kab-complete", "b\n");
  fs::create_symlink("added.c", b / "link");
  REQUIRE(kab::proc::capture({"cp", "-al", a.string(), work.string()}).first);
  struct stat before {};
  REQUIRE(::stat((work / "same.c").c_str(), &before) == 0);

  SECTION("every file compared") {
    auto changed = sync_work_tree(b.string(), work.string(), std::nullopt, {".kab-complete"});
    CHECK(changed == std::vector<std::string>{"added.c", "edited.h", "link", "sub/gone.c"});
    CHECK(slurp(work / "edited.h") == "#define X 2\n");
    CHECK(slurp(work / "added.c") == "int added;\n");
    CHECK_FALSE(fs::exists(work / "sub/gone.c"));
    CHECK(fs::read_symlink(work / "link") == "added.c");
    // The same bytes under another inode: left alone, so its object stays valid.
    struct stat after {};
    REQUIRE(::stat((work / "same.c").c_str(), &after) == 0);
    CHECK(after.st_ino == before.st_ino);
    CHECK(after.st_mtim.tv_sec == before.st_mtim.tv_sec);
    CHECK(after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);
    // The tree the work tree was linked from is as it was.
    CHECK(slurp(a / "edited.h") == "#define X 1\n");
    CHECK(slurp(a / "sub/gone.c") == "int gone;\n");
    CHECK(fs::read_symlink(a / "link") == "same.c");
    CHECK(slurp(work / ".kab-complete") == "a\n");   // skipped
    // Switched back: the same four, the edit undone.
    auto back = sync_work_tree(a.string(), work.string(), std::nullopt, {".kab-complete"});
    CHECK(back == changed);
    CHECK(slurp(work / "edited.h") == "#define X 1\n");
    CHECK_FALSE(fs::exists(work / "added.c"));
    // Nothing differs: nothing written.
    CHECK(sync_work_tree(a.string(), work.string(), std::nullopt, {".kab-complete"}).empty());
  }
  SECTION("only the files named (what git says two commits differ in)") {
    auto changed = sync_work_tree(b.string(), work.string(), std::vector<std::string>{"edited.h", "same.c"}, {});
    CHECK(changed == std::vector<std::string>{"edited.h"});
    CHECK(fs::exists(work / "sub/gone.c"));   // not named: not looked at
    CHECK(slurp(a / "edited.h") == "#define X 1\n");
  }
  SECTION("a file the caller keeps is skipped") {
    auto changed = sync_work_tree(b.string(), work.string(), std::nullopt, {".kab-complete", "edited.h"});
    CHECK(changed == std::vector<std::string>{"added.c", "link", "sub/gone.c"});
    CHECK(slurp(work / "edited.h") == "#define X 1\n");
  }
  fs::remove_all(root);
}

TEST_CASE("an incremental build's object count is known in advance from Kbuild's dependency records and mtimes",
          "[kernel][lane]") {
  const fs::path lane = fs::temp_directory_path() / ("kab-deps-" + std::to_string(::getpid()));
  fs::remove_all(lane);
  const fs::path out = lane / "out";
  auto put = [](const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::trunc) << text;
  };
  // As fixdep writes them: the source, then its headers and the options it reads.
  auto cmd = [&](const std::string& obj, const std::string& source, const std::vector<std::string>& deps) {
    const fs::path o(obj);
    std::string text = "cmd_" + obj + " := gcc -c -o " + obj + " " + source + "\n\nsource_" + obj + " := " + source +
                       "\n\ndeps_" + obj + " := \\\n";
    for (const auto& d : deps) text += "  " + d + " \\\n";
    text += "\n" + obj + ": $(deps_" + obj + ")\n\n$(deps_" + obj + "):\n";
    put(out / o.parent_path() / ("." + o.filename().string() + ".cmd"), text);
  };
  cmd("fs/fuse/file.o", "../src/fs/fuse/file.c",
      {"$(wildcard include/config/FUSE_DAX)", "../src/include/linux/kconfig.h", "../src/fs/fuse/fuse_i.h"});
  cmd("fs/fuse/dir.o", "../src/fs/fuse/dir.c", {"../src/fs/fuse/fuse_i.h"});
  cmd("fs/fuse/virtio_fs.o", "../src/fs/fuse/virtio_fs.c",
      {"../src/fs/fuse/fuse_i.h", "$(wildcard include/config/VIRTIO_FS)", "include/generated/bounds.h"});
  cmd("mm/filemap.o", (lane / "src/mm/filemap.c").string(), {"../src/include/linux/kconfig.h"});
  put(out / "fs/fuse/.file.o.d", "fs/fuse/file.o: ../src/fs/fuse/file.c\n");   // not a .o.cmd: ignored
  // A host tool's, its paths relative to a directory of its own: not counted.
  cmd("tools/objtool/check.o", "check.c", {"../lib/rbtree.c"});
  // A built tree: every source an hour old, every object newer.
  const auto hour_ago = fs::file_time_type::clock::now() - std::chrono::hours(1);
  for (const char* f : {"src/fs/fuse/file.c", "src/fs/fuse/dir.c", "src/fs/fuse/virtio_fs.c", "src/fs/fuse/fuse_i.h",
                        "src/include/linux/kconfig.h", "src/mm/filemap.c", "src/README", "out/include/generated/bounds.h"}) {
    put(lane / f, "x\n");
    fs::last_write_time(lane / f, hour_ago);
  }
  // (Explicit times: a file system stamps writes with a clock that may not
  // tick between two of them.)
  auto build = [&](const char* o, std::chrono::minutes after) {
    put(out / o, "");
    fs::last_write_time(out / o, hour_ago + after);
  };
  for (const char* o : {"fs/fuse/file.o", "fs/fuse/dir.o", "fs/fuse/virtio_fs.o", "mm/filemap.o"})
    build(o, std::chrono::minutes(1));
  const std::set<std::string> none;
  CHECK(objects_out_of_date(out.string(), none) == 0);
  auto touch = [&](const char* f) { put(lane / f, "y\n"); };   // as a switch rewrites a file: now
  touch("src/README");
  CHECK(objects_out_of_date(out.string(), none) == 0);   // nothing built from it
  touch("src/fs/fuse/file.c");
  CHECK(objects_out_of_date(out.string(), none) == 1);
  touch("src/mm/filemap.c");
  CHECK(objects_out_of_date(out.string(), none) == 2);   // an absolute source path
  touch("src/fs/fuse/fuse_i.h");
  CHECK(objects_out_of_date(out.string(), none) == 4);
  // Built again: the objects newer than their sources; nothing to do.
  for (const char* o : {"fs/fuse/file.o", "fs/fuse/dir.o", "fs/fuse/virtio_fs.o", "mm/filemap.o"})
    build(o, std::chrono::minutes(120));
  CHECK(objects_out_of_date(out.string(), none) == 0);
  // The record of a source no longer in the tree (a file a commit added,
  // switched away since): make never builds it, object there or not.
  cmd("fs/fuse/added.o", "../src/fs/fuse/added.c", {"../src/fs/fuse/fuse_i.h"});
  CHECK(objects_out_of_date(out.string(), none) == 0);
  build("fs/fuse/added.o", std::chrono::minutes(1));
  CHECK(objects_out_of_date(out.string(), none) == 0);
  // A compile cut short: the object it failed on is missing.
  fs::remove(out / "fs/fuse/dir.o");
  CHECK(objects_out_of_date(out.string(), none) == 1);
  build("fs/fuse/dir.o", std::chrono::minutes(120));
  // A header gone (make remakes it by its empty rule, then the object), in the output tree.
  fs::remove(out / "include/generated/bounds.h");
  CHECK(objects_out_of_date(out.string(), none) == 1);
  put(out / "include/generated/bounds.h", "");
  build("fs/fuse/virtio_fs.o", std::chrono::minutes(120));
  CHECK(objects_out_of_date(out.string(), {"FUSE_DAX", "VIRTIO_FS"}) == 2);
  CHECK(objects_out_of_date(out.string(), {"FUSE"}) == 0);   // not FUSE_DAX's prefix
  fs::remove_all(lane);

  CHECK(changed_options("CONFIG_A=y\nCONFIG_B=m\n# CONFIG_C is not set\n",
                        "CONFIG_A=y\nCONFIG_B=y\nCONFIG_D=\"x\"\n") == std::set<std::string>{"B", "D"});
  // .config quotes a string, include/config/auto.conf (what Kbuild applied) does not.
  CHECK(changed_options("CONFIG_CC_VERSION_TEXT=gcc (Debian 12.2.0) 12.2.0\nCONFIG_LOCALVERSION=\nCONFIG_S=a\"b\n",
                        "CONFIG_CC_VERSION_TEXT=\"gcc (Debian 12.2.0) 12.2.0\"\nCONFIG_LOCALVERSION=\"\"\n"
                        "CONFIG_S=\"a\\\"b\"\n")
            .empty());
  CHECK(changed_options("CONFIG_A=y\n", "# CONFIG_A is not set\n") == std::set<std::string>{"A"});
  CHECK(changed_options("CONFIG_A=y\n", "CONFIG_A=y\n").empty());
}

// A patch whose hunk spans a line the source changed since the patch was
// written: patch(1) refuses it (the changed line is inner context, beyond any
// fuzz); git am -3 merges it from the file the patch names in its "index" line.
TEST_CASE("a git patch whose context moved on merges three-way, as git am -3, or names the conflict",
          "[kernel][git][threeway]") {
  const fs::path root = fs::temp_directory_path() / ("kab-3way-" + std::to_string(::getpid()));
  const fs::path repo = root / "linux";
  fs::remove_all(root);
  fs::create_directories(repo / "fs/demo");
  auto git = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"git", "-C", repo.string(), "-c", "user.name=kab", "-c", "user.email=kab@localhost"});
    auto [ok, out] = kab::proc::capture(args);
    INFO(out);
    REQUIRE(ok);
    return out;
  };
  // 40 lines; `edit` replaces some of them.
  auto lines = [](const std::map<int, std::string>& edit) {
    std::string text;
    for (int i = 1; i <= 40; ++i) text += (edit.count(i) ? edit.at(i) : "int line" + std::to_string(i) + ";") + "\n";
    return text;
  };
  std::ofstream(repo / "fs/demo/file.c") << lines({});
  git({"init", "-q", "-b", "main"});
  git({"add", "-A"});
  git({"commit", "-q", "-m", "base"});
  git({"checkout", "-q", "-b", "topic"});
  std::ofstream(repo / "fs/demo/file.c", std::ios::trunc) << lines({{20, "int line20_patched;"}, {26, "int line26_patched;"}});
  git({"commit", "-q", "-a", "-m", "demo: the patch"});
  const fs::path patch = root / "0001-demo-the-patch.patch";
  std::ofstream(patch) << git({"format-patch", "-1", "--stdout", "topic"});
  git({"checkout", "-q", "main"});
  // The source the patch is now applied to: line 23, inside the hunk, changed.
  const fs::path source = root / "source";
  fs::create_directories(source / "fs/demo");
  const fs::path staged = root / "staged";

  SECTION("a change between the patch's lines: merged, and said") {
    std::ofstream(source / "fs/demo/file.c") << lines({{23, "int line23_moved_on;"}});
    CHECK_THROWS_WITH(apply_patches_staged(source.string(), {patch.string()}, staged.string()),
                      Catch::Contains("fs/demo/file.c: hunk #1 FAILED"));
    auto notes = apply_patches_staged(source.string(), {patch.string()}, staged.string(), repo.string());
    REQUIRE(notes.size() == 1);
    CHECK(notes[0] == "patch 0001-demo-the-patch.patch did not apply as written; applied by a three-way merge with its "
                      "preimage from " + repo.string() + " (as git am -3): fs/demo/file.c");
    CHECK(slurp(staged / "fs/demo/file.c") ==
          lines({{20, "int line20_patched;"}, {23, "int line23_moved_on;"}, {26, "int line26_patched;"}}));
    // What applies as written is applied so, without a note.
    std::ofstream(source / "fs/demo/file.c", std::ios::trunc) << lines({});
    CHECK(apply_patches_staged(source.string(), {patch.string()}, staged.string(), repo.string()).empty());
    CHECK(slurp(staged / "fs/demo/file.c") == lines({{20, "int line20_patched;"}, {26, "int line26_patched;"}}));
  }
  SECTION("the same line changed both ways: the hunk and the conflict named, the source untouched") {
    std::ofstream(source / "fs/demo/file.c") << lines({{20, "int line20_elsewhere;"}});
    try {
      apply_patches_staged(source.string(), {patch.string()}, staged.string(), repo.string());
      FAIL("a conflicting patch applied");
    } catch (const BuildError& e) {
      const std::string msg = e.what();
      INFO(msg);
      CHECK(msg.find("patch 0001-demo-the-patch.patch does not apply to the source:") == 0);
      CHECK(msg.find("fs/demo/file.c: hunk #1 FAILED") != std::string::npos);
      CHECK(msg.find("a three-way merge (as git am -3) did not help either: fs/demo/file.c: the three-way merge "
                     "conflicts") != std::string::npos);
    }
    CHECK(slurp(source / "fs/demo/file.c") == lines({{20, "int line20_elsewhere;"}}));
    CHECK_FALSE(fs::exists(staged));
  }
  SECTION("a preimage the repository does not hold: said") {
    std::ofstream(source / "fs/demo/file.c") << lines({{23, "int line23_moved_on;"}});
    const fs::path empty = root / "empty";
    fs::create_directories(empty);
    REQUIRE(kab::proc::capture({"git", "-C", empty.string(), "init", "-q"}).first);
    CHECK_THROWS_WITH(apply_patches_staged(source.string(), {patch.string()}, staged.string(), empty.string()),
                      Catch::Contains("did not help either: fs/demo/file.c: its preimage"));
  }
  fs::remove_all(root);
}
