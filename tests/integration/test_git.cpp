// Integration tests of kernels from git, on a repository made from Debian's
// linux-source-6.1 tarball: one commit tagged v6.1, a branch rfc with the RFC
// patch committed on it. Made once (about a minute) and kept under
// ~/.cache/kab-test; with fixed dates and names its commit ids are the same
// on every machine. Each test works on a clone of it, the user's tree.
// Listed after the other integration tests: ccache then holds stock-6.1's
// objects, so the build from the tag is mostly cache hits (~5 min, not 14).
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>

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

json kernels_table(const std::string& db) {
  auto [ok, out] = proc::capture({"sqlite3", "-json", db,
                                  "SELECT name, build_key, objects_compiled, source_name, patch_labels_json, "
                                  "patch_hashes_json FROM kernels ORDER BY id"});
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
  CHECK(k[1]["objects_compiled"].get<int>() < 40);
  CHECK(k[1]["objects_compiled"].get<int>() > 0);
  CHECK(json::parse(k[1]["patch_hashes_json"].get<std::string>())[0].get<std::string>().rfind("patch-id:", 0) == 0);
  // The user's tree: work tree, index, branches, HEAD as they were.
  CHECK(repository_state(repo) == before);

  // The same change as a mailed series, in a kernel definition: the same
  // build (by patch-id), taken from the cache; then as commits: the same again.
  const fs::path defs = dir.path / "kernels";
  fs::create_directories(defs / "patches");
  std::ofstream(defs / "patches/rfc.mbox") << git(repo, {"format-patch", "--stdout", "--thread", "--base=v6.1", "v6.1..rfc"});
  const std::string config = read(k_root + "/kernels/stock-6.1.yaml").substr(read(k_root + "/kernels/stock-6.1.yaml").find("config:"));
  std::string cfg = config;
  for (std::string::size_type at; (at = cfg.find("[virtio-guest.config]")) != std::string::npos;)
    cfg.replace(at, 21, "[" + k_root + "/kernels/configs/virtio-guest.config]");
  for (const char* f : {"disk-root.config", "uml-guest.config", "debug.config"}) {
    const std::string name = std::string("[") + f + "]";
    for (std::string::size_type at; (at = cfg.find(name)) != std::string::npos;)
      cfg.replace(at, name.size(), "[" + k_root + "/kernels/configs/" + f + "]");
  }
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

  // The branch moves (a commit outside fs/): a new build, and why. First the
  // lane is put back to the RFC (on a fresh machine it holds it already; a
  // rerun of this test may have left another patch set there).
  REQUIRE(run_kab({"kernel", "build", "commits", "--force"}, 1800, (dir.path / "again.log").string(), env).ok());
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
  CHECK(mlog.find(" 0 objects compiled") != std::string::npos);   // a README compiles nothing

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
  check_no_leftovers();
}
