// Integration tests of kernels from git, on a repository made from Debian's
// linux-source-6.1 tarball: one commit tagged v6.1, a branch rfc with the RFC
// patch committed on it. Made once (about a minute) and kept under
// ~/.cache/kab-test; with fixed dates and names its commit ids are the same
// on every machine. Each test works on a clone of it, the user's tree.
// Listed after the other integration tests: ccache then holds stock-6.1's
// objects, so the build from the tag is mostly cache hits (~5 min, not 14).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include "core/system.h"
#include "helpers.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace kab;
using namespace kab::integration;

namespace {

const std::string k_rfc_subject = "fuse: use page cache pages for writeback io when virtio_fs is in use";

std::string git(const fs::path& repo, std::vector<std::string> args) {
  args.insert(args.begin(), {"git", "-C", repo.string(), "-c", "gc.auto=0"});
  proc::Options o;
  o.argv = args;
  o.env = {{"GIT_AUTHOR_NAME", "kab"},          {"GIT_AUTHOR_EMAIL", "kab@localhost"},
           {"GIT_COMMITTER_NAME", "kab"},       {"GIT_COMMITTER_EMAIL", "kab@localhost"},
           {"GIT_AUTHOR_DATE", "2022-12-11 22:15:00 +0000"},
           {"GIT_COMMITTER_DATE", "2022-12-11 22:15:00 +0000"}};
  auto r = proc::run(o);
  INFO("git " << args[5] << ": " << r.output);
  REQUIRE(r.ok());
  return r.output;
}

// The cached test repository (made when absent).
fs::path test_repository() {
  const fs::path dir = fs::path(std::getenv("HOME")) / ".cache/kab-test/linux-6.1-git";
  if (fs::exists(dir / ".kab-complete")) return dir / "linux";
  fs::remove_all(dir);
  fs::create_directories(dir / "linux");
  const fs::path repo = dir / "linux";
  auto [found, tarball] = proc::capture({"sh", "-c", "ls /usr/src/linux-source-6.1.tar.*"});
  REQUIRE(found);
  auto x = proc::capture({"tar", "-xf", tarball.substr(0, tarball.find('\n')), "-C", repo.string(), "--strip-components=1"}, 600);
  REQUIRE(x.first);
  git(repo, {"init", "-q", "-b", "main"});
  git(repo, {"add", "-f", "-A", "."});   // Debian's .gitignore ignores the top level
  git(repo, {"commit", "-q", "-m", "Linux 6.1 (Debian linux-source-6.1)"});
  git(repo, {"tag", "v6.1"});
  git(repo, {"checkout", "-q", "-b", "rfc"});
  git(repo, {"apply", k_root + "/kernels/patches/0001-fuse-use-page-cache-pages-for-writeback-io-when-virtio_fs.patch"});
  git(repo, {"commit", "-q", "-a", "-m", k_rfc_subject});
  git(repo, {"checkout", "-q", "main"});
  std::ofstream(dir / ".kab-complete") << "made from " << tarball;
  return repo;
}

// Everything of the user's repository kab must leave alone: the index by
// what it stages (its stat cache is git's own to refresh).
std::string repository_state(const fs::path& repo) {
  return git(repo, {"status", "--porcelain=v1", "--branch", "--untracked-files=all"}) + git(repo, {"for-each-ref"}) +
         git(repo, {"rev-parse", "HEAD"}) + git(repo, {"stash", "list"}) + git(repo, {"ls-files", "--stage"}) +
         read(repo / "MAINTAINERS");
}

// stock-6.1.yaml's config: and variants: sections, fragments by absolute path,
// for a kernel definition outside kab's kernels/.
std::string stock_config() {
  const std::string stock = read(k_root + "/kernels/stock-6.1.yaml");
  std::string cfg = stock.substr(stock.find("config:"));
  for (const char* f : {"virtio-guest.config", "disk-root.config", "uml-guest.config", "debug.config"}) {
    const std::string name = std::string("[") + f + "]";
    for (std::string::size_type at; (at = cfg.find(name)) != std::string::npos;)
      cfg.replace(at, name.size(), "[" + k_root + "/kernels/configs/" + f + "]");
  }
  REQUIRE(cfg.find("[virtio-guest.config]") == std::string::npos);
  return cfg;
}

// The artifact's lane (meta.json), from the directory `kab kernel build --json` names.
std::string lane_of(const json& artifact) {
  json meta = json::parse(read(fs::path(artifact["dir"].get<std::string>()) / "meta.json"));
  return meta["lane"];
}

json kernels_table(const std::string& db) {
  auto [ok, out] = proc::capture({"sqlite3", "-json", db,
                                  "SELECT name, build_key, objects_compiled, source_name, patch_labels_json, "
                                  "patch_hashes_json, built_at FROM kernels ORDER BY id"});
  INFO(out);
  REQUIRE(ok);
  return json::parse(out);
}

}  // namespace

TEST_CASE("git: kab compare --tree builds the base from a tag and the candidate as its commits, named by commit",
          "[integration][git]") {
  TestDir dir("git-tree");
  const fs::path cached = test_repository();
  const fs::path repo = dir.path / "linux";
  git(dir.path, {"clone", "-q", "--shared", cached.string(), repo.string()});
  git(repo, {"branch", "-q", "rfc", "origin/rfc"});
  std::ofstream(repo / "MAINTAINERS", std::ios::app) << "\n";   // work in progress, not committed
  const std::string rfc_commit = kab::integration::read(repo / ".git/refs/heads/rfc").substr(0, 12);
  REQUIRE(rfc_commit.size() == 12);
  const std::string before = repository_state(repo);

  const std::string started = core::iso_now();
  auto r = run_kab({"compare", "--tree", repo.string(), "--base", "v6.1", "--candidate", "rfc", "--scenario",
                    "scenarios/quick.yaml", "--repetitions", "1", "--db", dir.db(), "--format", "json", "--out",
                    (dir.path / "report").string()},
                   3600, (dir.path / "compare.log").string());
  const std::string out = read(dir.path / "compare.log");
  INFO(out);
  REQUIRE((r.exit_code == 0 || r.exit_code == 1));   // a verdict, whichever
  json j = json::parse(read(dir.path / "report/comparison.json"));
  const json& kernels = j["context"]["kernels"];
  REQUIRE(kernels.size() == 2);
  CHECK(kernels[0]["arm"] == "base");
  CHECK(kernels[0]["source"].get<std::string>().rfind("v6.1 (", 0) == 0);
  CHECK(kernels[0]["patches"].empty());
  CHECK(kernels[1]["arm"] == "candidate");
  CHECK(kernels[1]["source"] == kernels[0]["source"]);   // built on the base
  REQUIRE(kernels[1]["patches"].size() == 1);
  CHECK(kernels[1]["patches"][0] == rfc_commit + " (\"" + k_rfc_subject + "\")");
  const std::string md = read(dir.path / "report/comparison.md");
  CHECK(md.find("patches " + rfc_commit + " (\"" + k_rfc_subject + "\")") != std::string::npos);
  // Both arms sampled, the guest really ran the candidate: the RFC's mechanism.
  json samples = show(dir.db(), 1);
  REQUIRE(samples.size() == 2);
  for (const auto& s : samples) {
    INFO(s.dump());
    CHECK(s["status"] == "ok");
    const bool temp_pages = s["writeback_tmp_peak_kb"].get<double>() > 0 || s["nr_writeback_temp_peak"].get<double>() > 0;
    CHECK(temp_pages == (s["arm"] == "base"));
  }
  // The candidate is the base plus one commit, in the base's lane: only what
  // the commit touches recompiles.
  json k = kernels_table(dir.db());
  REQUIRE(k.size() == 2);
  // A build this test made compiled the commit's objects. On a machine that
  // ran this test before, the candidate comes from the cache, recorded as
  // whichever build made it last (the --force rebuild below: from whatever
  // the lane then held), so the count says nothing about this run.
  REQUIRE(k[1]["built_at"].get<std::string>().size() == 20);   // 2026-12-03T15:04:05Z, the build's own time
  if (k[1]["built_at"].get<std::string>() >= started) {
    CHECK(k[1]["objects_compiled"].get<int>() > 0);
    CHECK(k[1]["objects_compiled"].get<int>() < 40);
  } else
    WARN("the candidate came from the kernel cache (built " << k[1]["built_at"].get<std::string>()
                                                            << "): its recompile count is not checked");
  CHECK(json::parse(k[1]["patch_hashes_json"].get<std::string>())[0].get<std::string>().rfind("patch-id:", 0) == 0);
  // The user's tree: work tree, index, branches, HEAD as they were.
  CHECK(repository_state(repo) == before);

  // The comparison's bundle, the recipe the reports name: the base as its
  // commit, the candidate as that commit and its change as an mbox.
  const fs::path bundle = dir.path / "report/kab-bundle-run1.tar.gz";
  REQUIRE(fs::exists(bundle));
  CHECK(j["context"]["command"] == "kab compare --bundle kab-bundle-run1.tar.gz");
  {
    const fs::path unpacked = dir.path / "unpacked";
    fs::create_directories(unpacked);
    REQUIRE(proc::capture({"tar", "-C", unpacked.string(), "-xzf", bundle.string()}).first);
    const std::string cand = kernels[1]["kernel"];
    const YAML::Node def = YAML::LoadFile((unpacked / "kab-bundle/kernels" / (cand + ".yaml")).string());
    CHECK(def["source"]["ref"].as<std::string>() == git(repo, {"rev-parse", "v6.1^{commit}"}).substr(0, 40));
    CHECK(def["series"].as<std::string>() == cand + ".mbox");
    // (format-patch folds the subject after "is")
    CHECK(read(unpacked / "kab-bundle/kernels/patches" / (cand + ".mbox"))
              .find("Subject: [PATCH] fuse: use page cache pages for writeback io when virtio_fs is\n in use\n") !=
          std::string::npos);
  }
  // kab bundle of the run, later: the definitions the command made were
  // kept with the run, so the same bundle, file for file.
  {
    const fs::path later = dir.path / "later.tar.gz";
    auto b = run_kab({"bundle", "1", "-o", later.string(), "--db", dir.db()}, 600);
    INFO(b.output);
    REQUIRE(b.ok());
    for (const auto& [name, file] : {std::pair{"a", bundle}, std::pair{"b", later}}) {
      fs::create_directories(dir.path / name);
      REQUIRE(proc::capture({"tar", "-C", (dir.path / name).string(), "-xzf", file.string()}).first);
    }
    auto [same, diff] = proc::capture({"diff", "-r", (dir.path / "a").string(), (dir.path / "b").string()});
    INFO(diff);
    CHECK(same);
    CHECK(fs::exists(dir.path / "b/kab-bundle/kernels/patches" / (kernels[1]["kernel"].get<std::string>() + ".mbox")));
  }
  // Rerun elsewhere: another clone, another database. The same builds (by
  // key, so from the cache here) and the same plan.
  const fs::path elsewhere = dir.path / "elsewhere";
  git(dir.path, {"clone", "-q", "--shared", cached.string(), elsewhere.string()});
  const std::string rerun_db = (dir.path / "rerun.db").string();
  auto rerun = run_kab({"compare", "--bundle", bundle.string(), "--tree", elsewhere.string(), "--db", rerun_db,
                        "--format", "json", "--out", (dir.path / "rerun").string()},
                       3600, (dir.path / "rerun.log").string());
  {
    INFO(read(dir.path / "rerun.log"));
    REQUIRE((rerun.exit_code == 0 || rerun.exit_code == 1));
    json again = kernels_table(rerun_db), first = kernels_table(dir.db());
    REQUIRE(again.size() == 2);
    CHECK(again[0]["build_key"] == first[0]["build_key"]);
    CHECK(again[1]["build_key"] == first[1]["build_key"]);
    CHECK(show(rerun_db, 1).size() == 2);
  }
  // A clone that lacks the commit: refused, nothing built or run.
  const fs::path empty = dir.path / "empty";
  git(dir.path, {"init", "-q", empty.string()});
  auto lacking = run_kab({"compare", "--bundle", bundle.string(), "--tree", empty.string(), "--db",
                          (dir.path / "lacking.db").string()}, 120);
  CHECK(lacking.exit_code == 2);
  CHECK(lacking.output.find("--tree " + empty.string() + " does not hold commit " +
                            git(repo, {"rev-parse", "v6.1^{commit}"}).substr(0, 12)) != std::string::npos);
  CHECK_FALSE(fs::exists(dir.path / "lacking.db"));

  // The same change as a mailed series, in a kernel definition: the same
  // build (by patch-id), taken from the cache; then as commits: the same again.
  const fs::path defs = dir.path / "kernels";
  fs::create_directories(defs / "patches");
  std::ofstream(defs / "patches/rfc.mbox") << git(repo, {"format-patch", "--stdout", "--thread", "--base=v6.1", "v6.1..rfc"});
  const std::string cfg = stock_config();
  std::ofstream(defs / "series.yaml") << "source: {git: " << repo.string() << ", ref: v6.1}\nseries: rfc.mbox\n" << cfg;
  std::ofstream(defs / "commits.yaml") << "source: {git: " << repo.string() << "}\ncommits: v6.1..rfc\n" << cfg;
  const Env env = {{"KAB_KERNELS", defs.string()}};
  for (const char* name : {"series", "commits"}) {
    auto b = run_kab({"kernel", "build", name, "--json"}, 1800, (dir.path / (std::string(name) + ".log")).string(), env);
    const std::string log = read(dir.path / (std::string(name) + ".log"));
    INFO(log);
    REQUIRE(b.ok());
    json a = last_json(log);
    CHECK(a["key"] == k[1]["build_key"]);
    CHECK(a["fresh"] == false);
    // Named as asked for: the series carries its base-commit (format-patch --base), the commits do not.
    const std::string base_name = k[0]["source_name"];
    CHECK(a["source_name"] == (std::string(name) == "series" ? base_name + ", the series' base-commit" : base_name));
  }

  // A series that does not apply: the patch and the hunk, before any guest.
  std::string mbox = read(defs / "patches/rfc.mbox");
  // A line the patch removes, no longer as the tree has it.
  const std::string removed = "\n-\tstruct page *tmp_page;";
  const auto at = mbox.find(removed);
  REQUIRE(at != std::string::npos);
  mbox.replace(at, removed.size(), "\n-\tstruct page *tmp_pages;");
  std::ofstream(defs / "patches/broken.mbox") << mbox;
  std::ofstream(defs / "broken.yaml") << "source: {git: " << repo.string() << ", ref: v6.1}\nseries: broken.mbox\n" << cfg;
  auto broken = run_kab({"kernel", "build", "broken"}, 600, (dir.path / "broken.log").string(), env);
  const std::string blog = read(dir.path / "broken.log");
  INFO(blog);
  CHECK(broken.exit_code == 3);
  CHECK(blog.find("fuse-use-page-cache-pages-for-writeback-io-when-virtio_fs-is-in-use.patch does not apply") !=
        std::string::npos);
  CHECK(blog.find("FAILED at line") != std::string::npos);
  // Neither the compare nor the builds from commits and mails wrote to the user's tree.
  CHECK(repository_state(repo) == before);

  // A commit that does not compile, in the lane: the build fails in fs/fuse,
  // and what it left half built is still counted right by the next build.
  git(repo, {"checkout", "-q", "-b", "uncompilable", "rfc"});
  std::ofstream(repo / "fs/fuse/file.c", std::ios::app) << "\nthis line is not C;\n";
  git(repo, {"commit", "-q", "-a", "-m", "fuse: a commit that does not compile"});
  git(repo, {"checkout", "-q", "main"});
  std::ofstream(defs / "uncompilable.yaml") << "source: {git: " << repo.string() << "}\ncommits: v6.1..uncompilable\n" << cfg;
  auto failed = run_kab({"kernel", "build", "uncompilable"}, 1800, (dir.path / "uncompilable.log").string(), env);
  {
    INFO(read(dir.path / "uncompilable.log"));
    CHECK(failed.exit_code == 3);
    CHECK(read(dir.path / "uncompilable.log").find("fs/fuse/file.c") != std::string::npos);
  }

  // The branch moves (a commit outside fs/): a new build, and why. First the
  // lane is put back to the RFC: from the failed build above, or whatever a
  // rerun of this test left there.
  REQUIRE(run_kab({"kernel", "build", "commits", "--force", "--json"}, 1800, (dir.path / "again.log").string(), env).ok());
  {
    // The switch recompiles only what differs and what the failed compile
    // left undone, counted in advance.
    json again = last_json(read(dir.path / "again.log"));
    INFO(again.dump());
    CHECK(again["objects_compiled"].get<int>() > 0);
    CHECK(again["objects_compiled"].get<int>() < 40);
    CHECK(again["objects_expected"] == again["objects_compiled"]);
  }
  git(repo, {"checkout", "-q", "rfc"});
  std::ofstream(repo / "README", std::ios::app) << "\nkab test\n";
  git(repo, {"commit", "-q", "-a", "-m", "README: a line for kab's test"});
  git(repo, {"checkout", "-q", "main"});
  // --force: a rerun of this test finds the build in the cache; only the
  // README differs from what the lane holds.
  auto moved = run_kab({"kernel", "build", "commits", "--explain", "--force"}, 1800, (dir.path / "moved.log").string(), env);
  const std::string mlog = read(dir.path / "moved.log");
  INFO(mlog);
  REQUIRE(moved.ok());
  CHECK(mlog.find("patch README: a line for kab's test added") != std::string::npos);
  CHECK(mlog.find(" 0 objects compiled (0 expected)") != std::string::npos);   // a README compiles nothing

  // The work tree as it is (ref WORKTREE): HEAD (v6.1) plus the uncommitted
  // edit, in v6.1's lane, so the edit recompiles what it touches; reverted,
  // it is v6.1's own build again, from the cache.
  std::ofstream(defs / "worktree.yaml") << "source: {git: " << repo.string() << ", ref: WORKTREE}\n" << cfg;
  git(repo, {"checkout", "-q", "--", "MAINTAINERS"});
  auto clean = run_kab({"kernel", "build", "worktree", "--json"}, 1800, (dir.path / "clean.log").string(), env);
  INFO(read(dir.path / "clean.log"));
  REQUIRE(clean.ok());
  CHECK(last_json(read(dir.path / "clean.log"))["key"] == k[0]["build_key"]);   // nothing uncommitted: v6.1 itself
  const fs::path file_c = repo / "fs/fuse/file.c";
  const std::string original = read(file_c);
  std::ofstream(file_c, std::ios::app) << "\n/* kab: an uncommitted edit */\nint kab_worktree_edit;\n";
  // --force: a rerun of this test finds the edit's build in the cache.
  auto edited = run_kab({"kernel", "build", "worktree", "--json", "--force"}, 1800, (dir.path / "worktree.log").string(), env);
  const std::string wlog = read(dir.path / "worktree.log");
  INFO(wlog);
  REQUIRE(edited.ok());
  json w = last_json(wlog);
  CHECK(w["key"] != k[0]["build_key"]);
  CHECK(w["fresh"] == true);
  CHECK(w["explain"].get<std::string>().find("patch uncommitted changes added") != std::string::npos);
  CHECK(w["patch_labels"] == json::array({"uncommitted changes (fs/fuse/file.c)"}));
  CHECK(w["objects_compiled"].get<int>() < 40);
  CHECK(w["objects_compiled"].get<int>() > 0);
  std::ofstream(file_c, std::ios::trunc) << original;
  auto reverted = run_kab({"kernel", "build", "worktree", "--json"}, 1800, (dir.path / "reverted.log").string(), env);
  const std::string rlog = read(dir.path / "reverted.log");
  INFO(rlog);
  REQUIRE(reverted.ok());
  json rv = last_json(rlog);
  CHECK(rv["key"] == k[0]["build_key"]);
  CHECK(rv["fresh"] == false);

  // A new base commit (branch next: v6.1 and a commit in fs/fuse) is built
  // in the lane every git source shares, rewriting only the files the commits
  // differ in: a handful of objects, counted before the compile began.
  git(repo, {"checkout", "-q", "-b", "next", "v6.1"});
  std::ofstream(repo / "fs/fuse/dir.c", std::ios::app) << "\n/* kab: a commit on another base */\nint kab_next_commit;\n";
  git(repo, {"commit", "-q", "-a", "-m", "fuse: a commit on another base, for kab's test"});
  git(repo, {"checkout", "-q", "main"});
  std::ofstream(defs / "next.yaml") << "source: {git: " << repo.string() << ", ref: next}\n" << cfg;
  // --force: a rerun of this test finds it in the cache.
  auto next = run_kab({"kernel", "build", "next", "--json", "--force"}, 1800, (dir.path / "next.log").string(), env);
  const std::string nlog = read(dir.path / "next.log");
  INFO(nlog);
  REQUIRE(next.ok());
  json n = last_json(nlog);
  CHECK(n["fresh"] == true);
  CHECK(nlog.find("kab: kernel: switch work tree from git commit ") != std::string::npos);
  CHECK(nlog.find("files differ)") != std::string::npos);   // named by git, not found by comparing every file
  CHECK(lane_of(n) == lane_of(w));   // (v6.1's own build may come from an earlier lane, on a machine that ran this before)
  CHECK(n["objects_compiled"].get<int>() > 0);
  CHECK(n["objects_compiled"].get<int>() < 40);
  // Known in advance, from Kbuild's records of what each object includes.
  CHECK(n["objects_expected"] == n["objects_compiled"]);
  check_no_leftovers();
}

TEST_CASE("kernel: a plain directory source keeps its lane: an edited file rebuilds only what uses it",
          "[integration][git]") {
  TestDir dir("plain-source");
  // A tree that is not a git work tree: the test repository's files, linked.
  const fs::path tree = dir.path / "linux";
  REQUIRE(proc::capture({"cp", "-al", test_repository().string(), tree.string()}, 600).first);
  fs::remove_all(tree / ".git");
  const fs::path defs = dir.path / "kernels";
  fs::create_directories(defs);
  std::ofstream(defs / "plain.yaml") << "source: " << tree.string() << "\n" << stock_config();
  const Env env = {{"KAB_KERNELS", defs.string()}};
  auto first = run_kab({"kernel", "build", "plain", "--arch", "um", "--json"}, 1800, (dir.path / "first.log").string(), env);
  INFO(read(dir.path / "first.log"));
  REQUIRE(first.ok());
  json a = last_json(read(dir.path / "first.log"));

  // Edits as an editor saves them (a new file renamed over the old), with
  // text no earlier run wrote; the test repository's own file stays as it was.
  const fs::path file_c = tree / "fs/fuse/file.c";
  const fs::path shared = test_repository() / "fs/fuse/file.c";
  const std::string original = read(shared);
  json b;
  for (int edit = 1; edit <= 2; ++edit) {
    std::ofstream(file_c.string() + ".new") << read(file_c) << "\n/* kab: edit " << edit << " at " << core::iso_now()
                                            << " by " << ::getpid() << " */\nint kab_plain_edit" << edit << ";\n";
    fs::rename(file_c.string() + ".new", file_c);
    const fs::path log_file = dir.path / ("edit" + std::to_string(edit) + ".log");
    auto built = run_kab({"kernel", "build", "plain", "--arch", "um", "--json", "--explain"}, 1800, log_file.string(), env);
    const std::string log = read(log_file);
    INFO(log);
    REQUIRE(built.ok());
    b = last_json(log);
    CHECK(b["fresh"] == true);
    CHECK(b["key"] != a["key"]);
    CHECK(b["explain"].get<std::string>().find("source file fs/fuse/file.c changed") != std::string::npos);
    CHECK(log.find("kab: kernel: switch work tree from tree:" + tree.string()) != std::string::npos);
    CHECK(lane_of(b) == lane_of(a));
    CHECK(b["objects_compiled"].get<int>() > 0);
    CHECK(b["objects_compiled"].get<int>() < 40);
    // Known before the compile: file.o, and the link's own objects as the
    // last incremental link compiled them (the first edit after a cold build
    // may know only the objects, if no UML build relinked on this machine yet).
    CHECK(b["objects_expected"].get<int>() >= 1);
    CHECK(b["objects_expected"].get<int>() <= b["objects_compiled"].get<int>());
    if (edit == 2) CHECK(b["objects_expected"] == b["objects_compiled"]);
  }
  CHECK(read(shared) == original);
  // Unchanged: the build from the cache, nothing compiled.
  auto third = run_kab({"kernel", "build", "plain", "--arch", "um", "--json"}, 1800, (dir.path / "third.log").string(), env);
  REQUIRE(third.ok());
  json c = last_json(read(dir.path / "third.log"));
  CHECK(c["key"] == b["key"]);
  CHECK(c["fresh"] == false);
  check_no_leftovers();
}

TEST_CASE("nightly: two nights of a moving branch, a planted delay on the second: an alert, every artefact, the history",
          "[integration][git][nightly]") {
  TestDir dir("nightly");
  const fs::path repo = dir.path / "linux";
  git(dir.path, {"clone", "-q", "--shared", test_repository().string(), repo.string()});
  git(repo, {"checkout", "-q", "-b", "next", "v6.1"});
  const fs::path suite = dir.path / "fuse-it.yaml";
  std::ofstream(suite) << "# the branch next, built on v6.1 in its lane\ntree: {git: " << repo.string()
                       << ", ref: next, base: v6.1}\nscenarios: [quick.yaml]\nrepetitions: 5\nbaseline: {nights: 3}\n";
  auto night = [&](const std::string& name) {
    const std::string log = (dir.path / (name + ".log")).string();
    auto r = run_kab({"nightly", suite.string(), "--night", name, "--db", dir.db(), "--out", (dir.path / name).string()},
                     3600, log);
    return std::make_pair(r, read(log));
  };

  // A suite whose ref does not resolve: exit 2 before anything is built.
  {
    std::ofstream(dir.path / "bad.yaml") << "tree: {git: " << repo.string() << ", ref: no-such-branch}\n"
                                         << "scenarios: [quick.yaml]\n";
    auto bad = run_kab({"nightly", (dir.path / "bad.yaml").string(), "--db", dir.db()}, 120);
    INFO(bad.output);
    CHECK(bad.exit_code == 2);
    CHECK(bad.output.find("bad.yaml: tree.ref no-such-branch: ") != std::string::npos);
    CHECK_FALSE(fs::exists(dir.db()));
  }

  // Night 1 as the shipped systemd unit runs it (docs/nightly): its ExecStart
  // with this suite and database: v6.1 itself, the suite's first night.
  std::vector<std::string> unit_args;
  {
    const std::string unit = read(k_root + "/docs/nightly/kab-nightly@.service");
    const auto at = unit.find("\nExecStart=");
    REQUIRE(at != std::string::npos);
    std::istringstream words(unit.substr(at + 11, unit.find('\n', at + 1) - at - 11));
    std::string binary;
    words >> binary;
    CHECK(binary == "/opt/kab/build/harness/kab");   // where the unit's comment says to install kab
    for (std::string w; words >> w;) unit_args.push_back(w);
    REQUIRE(unit_args.size() >= 2);
    CHECK(unit_args[0] == "nightly");
    CHECK(unit_args[1] == "/etc/kab/nightly/%i.yaml");
    unit_args[1] = suite.string();
    auto db_at = std::find(unit_args.begin(), unit_args.end(), "--db");
    REQUIRE(db_at + 1 < unit_args.end());
    *(db_at + 1) = dir.db();
    CHECK(std::find(unit_args.begin(), unit_args.end(), "--bisect") != unit_args.end());
    const std::string timer = read(k_root + "/docs/nightly/kab-nightly@.timer");
    CHECK(timer.find("\nOnCalendar=*-*-* 01:00:00\n") != std::string::npos);
    CHECK(timer.find("\nUnit=kab-nightly@%i.service\n") != std::string::npos);
  }
  // --keep-sources: night 1 removes no source tree (night 2, without it, does).
  unit_args.insert(unit_args.end(), {"--night", "n1", "--keep-sources", "--out", (dir.path / "n1").string()});
  const auto r1 = run_kab(unit_args, 3600, (dir.path / "n1.log").string());
  const std::string log1 = read(dir.path / "n1.log");
  INFO(log1);
  REQUIRE(r1.exit_code == 0);
  const std::string v61 = git(repo, {"rev-parse", "v6.1"}).substr(0, 12);
  CHECK(log1.find("kab: nightly fuse-it, night n1: next at " + v61 + " (\"Linux 6.1 (Debian linux-source-6.1)\"), built "
                  "as v6.1 itself; 1 scenario; baseline the last 3 night(s) that did not regress\n") != std::string::npos);
  CHECK(log1.find("kab: nightly fuse-it, night n1, quick (run 1): no earlier night to compare with: this night is the "
                  "baseline's first\n") != std::string::npos);
  CHECK(log1.find("kab: nightly: removed") == std::string::npos);
  json s1 = json::parse(read(dir.path / "n1" / "nightly.json"));
  CHECK(s1["exit_code"] == 0);
  REQUIRE(s1["scenarios"].size() == 1);
  CHECK(s1["scenarios"][0]["verdict"] == "first");
  CHECK(s1["scenarios"][0]["history"]["nights"].size() == 1);
  CHECK(read(dir.path / "n1" / "nightly.junit.xml").find("tests=\"1\" failures=\"0\"") != std::string::npos);
  CHECK_FALSE(fs::exists(dir.path / "n1" / "quick"));   // no comparison on a first night
  // A night is judged once.
  auto [again, again_log] = night("n1");
  CHECK(again.exit_code == 2);
  CHECK(again_log.find("night n1 of suite fuse-it already ran quick (run 1, first): name another with --night") !=
        std::string::npos);

  // The branch moves by five commits; the third delays every FUSE write by
  // 20 ms, the others change documentation only.
  auto doc_commit = [&](const std::string& line) {
    std::ofstream(repo / "Documentation/filesystems/fuse.rst", std::ios::app) << "\n.. " << line << "\n";
    git(repo, {"commit", "-q", "-a", "-m", "Documentation: fuse: " + line});
    return git(repo, {"rev-parse", "HEAD"}).substr(0, 12);
  };
  doc_commit("first note");
  const std::string c2 = doc_commit("second note");
  git(repo, {"am", "-q", k_root + "/kernels/patches/testing/0001-TESTING-fuse-add-fixed-delay-to-writeback.patch"});
  const std::string delay = git(repo, {"rev-parse", "HEAD"}).substr(0, 12);
  doc_commit("fourth note");
  const std::string slow = doc_commit("fifth note");
  // A source tree no lane holds (as an earlier night's exported head leaves
  // one: night 2 builds its commits as patches in v6.1's lane and exports
  // none): the night removes it.
  const char* cache_env = std::getenv("KAB_CACHE_DIR");
  const fs::path stale = fs::path(cache_env ? cache_env : std::string(std::getenv("HOME")) + "/.cache/kab") / "src" /
                         "0bad0bad0bad0bad";
  fs::create_directories(stale);
  std::ofstream(stale / "Makefile") << std::string(3 << 20, 'x');
  const std::string log2_path = (dir.path / "n2.log").string();
  auto r2 = run_kab({"nightly", suite.string(), "--night", "n2", "--bisect", "--db", dir.db(), "--out",
                     (dir.path / "n2").string()},
                    3600, log2_path);
  const std::string log2 = read(log2_path);
  INFO(log2);
  CHECK(r2.exit_code == 1);   // an alert (persist 1)
  CHECK(log2.find("next at " + slow + " (\"Documentation: fuse: fifth note\"), built as v6.1 + 5 commit(s), in "
                  "v6.1's lane") != std::string::npos);
  CHECK(log2.find("kab: nightly fuse-it, night n2, quick (run 2): regression, bandwidth -") != std::string::npos);
  CHECK(log2.find(" against 1 night(s): ALERT: a regression 1 night(s) in a row (the suite's alert needs 1); first "
                  "bad commit: ") != std::string::npos);
  json s2 = json::parse(read(dir.path / "n2" / "nightly.json"));
  INFO(s2.dump(2));
  CHECK(s2["exit_code"] == 1);
  CHECK(s2["commit"].get<std::string>().rfind(slow, 0) == 0);
  const json& q = s2["scenarios"][0];
  CHECK(q["verdict"] == "regression");
  CHECK(q["alert"] == true);
  CHECK(q["baseline_runs"] == json::array({1}));
  // --bisect: the regression confirmed against night 1's commit (v6.1), then
  // two midpoints: the second note (good), the delay (bad), found in 2 steps.
  const json& b = q["bisect"];
  CHECK(b["first_bad"].get<std::string>().rfind(delay, 0) == 0);
  CHECK(b["first_bad_subject"] == "TESTING: fuse: add fixed delay to writeback");
  CHECK(b["commits"] == 5);
  REQUIRE(b["steps"].size() == 3);
  CHECK(b["steps"][0]["decision"] == "regression");
  CHECK(b["steps"][0]["commit"].get<std::string>().rfind(slow, 0) == 0);
  CHECK(b["steps"][1]["commit"].get<std::string>().rfind(c2, 0) == 0);
  CHECK(b["steps"][1]["decision"] == "good");
  CHECK(b["steps"][2]["commit"].get<std::string>().rfind(delay, 0) == 0);
  CHECK(b["steps"][2]["decision"] == "bad");
  for (const auto& st : b["steps"]) {
    const json shown_run = show(dir.db(), st["run"].get<long long>());
    CHECK(shown_run.size() == 10);   // good and tested, 5 each, interleaved in the step's own run
  }
  CHECK(log2.find("first bad commit: " + delay + " (\"TESTING: fuse: add fixed delay to writeback\"), 2 step(s) over 5 "
                  "commit(s)") != std::string::npos);
  CHECK(read(dir.path / "n2" / "quick" / "bisect.txt").find("step 2: " + delay) != std::string::npos);
  // Source trees no lane holds are removed at the night's end: the stale one
  // (3 MiB) at least.
  {
    std::smatch m;
    REQUIRE(std::regex_search(log2, m, std::regex("kab: nightly: removed ([0-9]+) source tree\\(s\\) no lane holds, "
                                                  "([0-9.]+) MiB \\(--keep-sources keeps them\\)\n")));
    CHECK(std::stoi(m[1]) >= 1);
    CHECK(std::stod(m[2]) >= 3.0);
    CHECK_FALSE(fs::exists(stale));
  }
  CHECK(read(dir.path / "n2" / "nightly.junit.xml").find("tests=\"1\" failures=\"1\"") != std::string::npos);
  // The trend page: both nights charted, night 2 linked to its comparison (night 1 had none).
  const std::string page = read(dir.path / "n2" / "nightly.html");
  CHECK(page.find("<svg") != std::string::npos);
  CHECK(page.find("<td>n1</td>") != std::string::npos);
  CHECK(page.find("<a href=\"quick/comparison.html\">n2</a>") != std::string::npos);
  CHECK(read(dir.path / "n2" / "nightly.md").find("regression") != std::string::npos);
  // The comparison's reports: the head against the first night's samples, in every format.
  for (const char* f : {"comparison.txt", "comparison.md", "comparison.json", "comparison.junit.xml", "comparison.html",
                        "comparison.mail.txt"})
    CHECK(fs::exists(dir.path / "n2" / "quick" / f));
  json c = json::parse(read(dir.path / "n2" / "quick" / "comparison.json"));
  CHECK(c["comparison"]["verdict"] == "regression");
  CHECK(c["comparison"]["base"]["arm"] == "baseline");
  CHECK(c["comparison"]["candidate"]["arm"] == "head");
  CHECK(c["comparison"]["candidate"]["kernel"] == "next-" + slow);
  bool pooled_warning = false;
  for (const auto& w : c["comparison"]["warnings"]) pooled_warning |= w["kind"] == "baseline_pooled";
  CHECK(pooled_warning);
  // The head was the base plus the commit, in the base's lane: only what it touches recompiled.
  json k = kernels_table(dir.db());
  INFO(k.dump(2));
  CHECK(k.size() == 4);   // v6.1, the head, the two midpoints
  int heads = 0;
  for (const auto& row : k)
    if (row["name"] == "next-" + slow) {
      ++heads;
      CHECK(row["objects_compiled"].get<int>() > 0);
      CHECK(row["objects_compiled"].get<int>() < 40);
    }
  CHECK(heads == 1);

  // The history: two nights, the second's median far below the first's.
  auto h = run_kab({"history", suite.string(), "--db", dir.db(), "--json"}, 120);
  INFO(h.output);
  REQUIRE(h.ok());
  json hist = last_json(h.output);
  REQUIRE(hist.size() == 1);
  const json& nights = hist[0]["nights"];
  REQUIRE(nights.size() == 2);
  CHECK(nights[0]["night"] == "n1");
  CHECK(nights[1]["verdict"] == "regression");
  CHECK(nights[1]["alert"] == true);
  const std::string column = hist[0]["columns"][0];
  CHECK(nights[0]["cells"][column]["n"].get<int>() >= 4);   // of 5: a sample may fail on the platform
  // The baseline was exactly the first night's ok samples.
  CHECK(c["comparison"]["base"]["included"] == nights[0]["cells"][column]["n"]);
  CHECK(nights[1]["cells"][column]["median"].get<double>() < 0.5 * nights[0]["cells"][column]["median"].get<double>());
  auto text = run_kab({"history", "fuse-it", "--db", dir.db()}, 120);
  INFO(text.output);
  CHECK(text.ok());
  const auto line = text.output.find("\nn2 ");
  REQUIRE(line != std::string::npos);
  const std::string n2 = text.output.substr(line + 1, text.output.find('\n', line + 1) - line - 1);
  CHECK(n2.find(" " + slow + " ") != std::string::npos);
  CHECK(n2.size() > std::string("regression (ALERT)").size());
  CHECK(n2.substr(n2.size() - 18) == "regression (ALERT)");
  // A pinned reference instead of history: v6.1 interleaved with the head in
  // the night's own run. An alert needs 2 nights in a row: this first
  // regression is said, not alerted (exit 0); the suite's min_effect is the test's.
  const fs::path pinned = dir.path / "pinned.yaml";
  std::ofstream(pinned) << "tree: {git: " << repo.string() << ", ref: next, base: v6.1}\nscenarios: [quick.yaml]\n"
                        << "repetitions: 4\nbaseline: {reference: v6.1}\nalert: {min_effect: 10%, persist: 2}\n";
  const std::string plog = (dir.path / "p1.log").string();
  // --format json: the night's comparison on stdout as JSON (the text summary stays on stderr).
  auto p1 = run_kab({"nightly", pinned.string(), "--night", "p1", "--db", dir.db(), "--out", (dir.path / "p1").string(),
                     "--format", "json"},
                    3600, plog);
  const std::string ptext = read(plog);
  INFO(ptext);
  CHECK(p1.exit_code == 0);
  const long long prun = json::parse(read(dir.path / "p1" / "nightly.json"))["scenarios"][0]["run"];
  CHECK(prun == 6);   // after the two nights and the bisection's three runs
  CHECK(ptext.find("baseline the reference v6.1 (" + v61 + ") in each night's run\n") != std::string::npos);
  CHECK(ptext.find("kab: nightly pinned, night p1, quick (run " + std::to_string(prun) + "): regression, bandwidth -") !=
        std::string::npos);
  CHECK(ptext.find(" against the reference v6.1: a regression, 1 of the 2 night(s) in a row an alert needs\n") !=
        std::string::npos);
  json pc = json::parse(read(dir.path / "p1" / "quick" / "comparison.json"));
  CHECK(pc["comparison"]["base"]["arm"] == "reference");
  CHECK(pc["comparison"]["base"]["kernel"] == "reference-v6.1");
  CHECK(pc["comparison"]["min_effect"] == Approx(0.10));
  CHECK(pc["comparison"]["run_ids"] == json::array({prun}));
  json pshow = show(dir.db(), prun);
  CHECK(pshow.size() == 8);   // 4 + 4, interleaved in one run
  CHECK(json::parse(read(dir.path / "p1" / "nightly.json"))["scenarios"][0]["alert"] == false);
  {
    // The JSON on stdout is the comparison written beside it (one value, then stderr's lines).
    const auto at = ptext.find("\n{");
    REQUIRE(at != std::string::npos);
    std::istringstream in(ptext.substr(at + 1));
    json printed;
    in >> printed;
    CHECK(printed["comparison"]["run_ids"] == json::array({prun}));
    CHECK(printed["comparison"]["base"]["arm"] == "reference");
    CHECK(printed["comparison"]["verdict"] == pc["comparison"]["verdict"]);
    CHECK(ptext.find(" samples; candidate ") == std::string::npos);   // no text report on stdout
  }

  // kab bisect on its own: refs checked first; a range of one commit is that
  // commit once the regression is confirmed (4 + 4 samples).
  auto backwards = run_kab({"bisect", suite.string(), "--good", delay, "--bad", c2, "--db", dir.db()}, 120);
  CHECK(backwards.exit_code == 2);
  CHECK(backwards.output.find("--good " + delay + " is not an ancestor of --bad " + c2) != std::string::npos);
  const std::string blog = (dir.path / "bisect.log").string();
  auto one = run_kab({"bisect", suite.string(), "--good", c2, "--bad", delay, "--repetitions", "4", "--db", dir.db(),
                      "--out", (dir.path / "bisect").string()},
                     3600, blog);
  INFO(read(blog));
  CHECK(one.exit_code == 0);
  json bj = json::parse(read(dir.path / "bisect" / "bisect.json"));
  CHECK(bj["first_bad"].get<std::string>().rfind(delay, 0) == 0);
  CHECK(bj["commits"] == 1);
  REQUIRE(bj["steps"].size() == 1);
  CHECK(bj["steps"][0]["decision"] == "regression");
  CHECK(bj["steps"][0]["change"].get<double>() < -0.3);
  CHECK(read(blog).find("first bad commit: " + delay) != std::string::npos);

  // A midpoint that does not build is skipped (git bisect skip), and the
  // bisection goes on with the nearest commit that builds; --cell names the
  // cell. Off c2: a commit that breaks fs/fuse, its revert, the delay.
  git(repo, {"checkout", "-q", "-b", "skip", c2});
  std::ofstream(repo / "fs/fuse/file.c", std::ios::app) << "\nthis line is not C;\n";
  git(repo, {"commit", "-q", "-a", "-m", "fuse: a commit that does not build"});
  const std::string broken = git(repo, {"rev-parse", "HEAD"}).substr(0, 12);
  git(repo, {"revert", "--no-edit", "HEAD"});
  const std::string fixed = git(repo, {"rev-parse", "HEAD"}).substr(0, 12);
  git(repo, {"am", "-q", k_root + "/kernels/patches/testing/0001-TESTING-fuse-add-fixed-delay-to-writeback.patch"});
  const std::string delay2 = git(repo, {"rev-parse", "HEAD"}).substr(0, 12);
  git(repo, {"checkout", "-q", "next"});
  const std::string slog = (dir.path / "bisect-skip.log").string();
  auto skip = run_kab({"bisect", suite.string(), "--good", c2, "--bad", delay2, "--cell", "virtiofsd (default)",
                       "--repetitions", "4", "--db", dir.db(), "--out", (dir.path / "bisect-skip").string()},
                      3600, slog);
  INFO(read(slog));
  CHECK(skip.exit_code == 0);
  json sj = json::parse(read(dir.path / "bisect-skip" / "bisect.json"));
  CHECK(sj["commits"] == 3);
  CHECK(sj["cell"] == "virtiofsd (default)");
  CHECK(sj["first_bad"].get<std::string>().rfind(delay2, 0) == 0);
  REQUIRE(sj["steps"].size() == 3);
  CHECK(sj["steps"][0]["decision"] == "regression");
  // The first midpoint is the broken commit: skipped, no run; then its revert, good.
  CHECK(sj["steps"][1]["commit"].get<std::string>().rfind(broken, 0) == 0);
  CHECK(sj["steps"][1]["decision"] == "skipped");
  CHECK(sj["steps"][1]["run"] == 0);
  CHECK(sj["steps"][1]["why"].get<std::string>() != "");
  CHECK(sj["steps"][2]["commit"].get<std::string>().rfind(fixed, 0) == 0);
  CHECK(sj["steps"][2]["decision"] == "good");
  CHECK(read(slog).find("kab: bisect step 1: " + broken + " (\"fuse: a commit that does not build\") did not build, "
                        "skipped: ") != std::string::npos);
  CHECK(read(slog).find("first bad commit: " + delay2 + " (\"TESTING: fuse: add fixed delay to writeback\"), 1 "
                        "step(s) over 3 commit(s); each decision wrong with at most 2.5%, so with 97.5% or more; 1 "
                        "commit(s) skipped: they did not build") != std::string::npos);

  // The user's branch is where they left it.
  CHECK(git(repo, {"rev-parse", "--abbrev-ref", "HEAD"}) == "next\n");
  check_no_leftovers();
}

TEST_CASE("kernel: kab kernel clean --sources removes the exported commits no lane holds, kab kernel clean the rest",
          "[integration][git]") {
  TestDir dir("clean-sources");
  // A cache of its own, so what is removed is known; the test repository is
  // only read (kab never writes to a source repository).
  const fs::path cache = dir.path / "cache";
  const fs::path repo = test_repository();
  const fs::path defs = dir.path / "kernels";
  fs::create_directories(defs);
  std::ofstream(defs / "base.yaml") << "source: {git: " << repo.string() << ", ref: v6.1}\n" << stock_config();
  std::ofstream(defs / "rfc.yaml") << "source: {git: " << repo.string() << ", ref: rfc}\n" << stock_config();
  const Env env = {{"KAB_KERNELS", defs.string()}, {"KAB_CACHE_DIR", cache.string()}};
  auto build = [&](const std::string& name, const std::string& log, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"kernel", "build", name, "--arch", "um", "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = run_kab(args, 1800, (dir.path / log).string(), env);
    INFO(read(dir.path / log));
    REQUIRE(r.ok());
    return last_json(read(dir.path / log));
  };
  auto sources = [&] {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(cache / "src"))
      if (e.is_directory()) names.push_back(read(e.path() / ".kab-complete"));
    std::sort(names.begin(), names.end());
    return names;
  };
  json base = build("base", "base.log");
  {
    // Where a first build's time went: each stage, together nearly all of it
    // (resolving the inputs, under 0.05 s here, and storing the artifact are the rest).
    INFO(base.dump());
    double sum = 0;
    for (const char* step : {"source", "work tree", "config", "compile"}) {
      INFO(step);
      REQUIRE(base["steps"].contains(step));
      sum += base["steps"][step].get<double>();
    }
    CHECK(base["steps"]["source"].get<double>() > 1);   // exported from the repository, once
    CHECK(sum <= base["wall_s"].get<double>());
    CHECK(sum >= 0.9 * base["wall_s"].get<double>());
  }
  // The RFC commit in the same lane: the work tree switched, not made again.
  json rfc = build("rfc", "rfc.log");
  CHECK(lane_of(rfc) == lane_of(base));
  CHECK(rfc["objects_compiled"].get<int>() < 40);
  CHECK(read(dir.path / "rfc.log").find("kab: kernel: switch work tree from git commit ") != std::string::npos);
  CHECK(rfc["steps"]["compile"].get<double>() < base["steps"]["compile"].get<double>());
  const std::string base_commit = base["source_identity"], rfc_commit = rfc["source_identity"];
  std::vector<std::string> both = {base_commit + "\n", rfc_commit + "\n"};
  std::sort(both.begin(), both.end());
  REQUIRE(sources() == both);   // each commit exported once

  auto cleaned = run_kab({"kernel", "clean", "--sources"}, 600, (dir.path / "clean.log").string(), env);
  INFO(read(dir.path / "clean.log"));
  REQUIRE(cleaned.ok());
  CHECK(read(dir.path / "clean.log").find("removed 1 source tree(s) no lane holds and the patch files") != std::string::npos);
  CHECK(sources() == std::vector<std::string>{rfc_commit + "\n"});   // the one the lane holds
  // Both builds are still there; the removed commit is exported again when a build needs it.
  CHECK(build("base", "cached.log")["fresh"] == false);
  json again = build("base", "again.log", {"--force"});
  CHECK(again["key"] == base["key"]);
  CHECK(read(dir.path / "again.log").find("kab: kernel: export ") != std::string::npos);
  CHECK(sources().size() == 2);

  auto all = run_kab({"kernel", "clean"}, 600, (dir.path / "all.log").string(), env);
  INFO(read(dir.path / "all.log"));
  REQUIRE(all.ok());
  for (const char* d : {"kernels", "lanes", "src", "index", "last-inputs"}) {
    INFO(d);
    CHECK((!fs::exists(cache / d) || fs::is_empty(cache / d)));
  }
}
