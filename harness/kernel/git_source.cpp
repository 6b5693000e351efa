#include "kernel/git_source.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "core/hash.h"
#include "core/system.h"
#include "core/text.h"
#include "kernel/builder.h"
#include "proc/runner.h"

namespace fs = std::filesystem;

namespace kab::kernel {

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  if (!f.flush()) throw BuildError("cannot write " + path);
}

// git with ARGS; GIT_OPTIONAL_LOCKS=0: not even the index's stat cache of
// the user's repository is rewritten. Returns the result, stdout apart.
proc::Result git_run(const std::vector<std::string>& args, const std::string& input_path = "") {
  proc::Options o;
  o.input_path = input_path;
  o.argv = {"git"};
  o.argv.insert(o.argv.end(), args.begin(), args.end());
  o.env = {{"GIT_OPTIONAL_LOCKS", "0"}};
  o.timeout_s = 600;
  o.error_path = "/dev/null";
  return proc::run(o);
}

std::string git_out(const std::vector<std::string>& args, const std::string& what) {
  proc::Result r = git_run(args);
  if (!r.ok()) throw BuildError(what + ": git " + r.describe());
  return r.output;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream ss(text);
  for (std::string line; std::getline(ss, line);)
    if (!core::trim(line).empty()) out.push_back(core::trim(line));
  return out;
}

// A mail header's value, folded lines joined ("" when absent).
std::string header(const std::string& mail, const std::string& name) {
  std::istringstream ss(mail);
  std::string line, value;
  bool in = false;
  const std::string want = lower(name) + ":";
  while (std::getline(ss, line)) {
    if (line.empty() || line == "\r") break;   // end of the headers
    if (in && (line[0] == ' ' || line[0] == '\t')) {
      value += " " + core::trim(line);
      continue;
    }
    if (in) break;
    if (core::starts_with(lower(line), want)) {
      value = core::trim(line.substr(want.size()));
      in = true;
    }
  }
  return value;
}

// "fuse: use page cache" → "fuse-use-page-cache": a file name as git
// format-patch makes one from a subject.
std::string slug(const std::string& subject) {
  std::string out;
  for (char c : subject) {
    const bool keep = std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.';
    if (keep) out += c;
    else if (!out.empty() && out.back() != '-') out += '-';
  }
  while (!out.empty() && (out.back() == '-' || out.back() == '.')) out.pop_back();
  return out.substr(0, 80);
}

}  // namespace

std::string git_commit(const std::string& repo, const std::string& ref) {
  if (!fs::is_directory(repo)) throw BuildError("git repository " + repo + " does not exist");
  proc::Result r = git_run({"-C", repo, "rev-parse", "--verify", "--quiet", "--end-of-options", ref + "^{commit}"});
  const std::string out = r.output;
  if (!r.ok() || core::trim(out).size() != 40)
    throw BuildError("ref '" + ref + "' is not a commit in the git repository " + repo);
  return core::trim(out);
}

std::string git_describe(const std::string& repo, const std::string& ref, const std::string& commit) {
  if (core::starts_with(commit, ref) && ref.size() >= 7) return commit.substr(0, 12);
  for (const char* kind : {"refs/tags/", "refs/heads/", "refs/remotes/"})
    if (git_run({"-C", repo, "show-ref", "--verify", "--quiet", kind + ref}).ok()) return ref;
  return commit.substr(0, 12);
}

std::string git_file(const std::string& repo, const std::string& commit, const std::string& file) {
  proc::Result r = git_run({"-C", repo, "show", "--end-of-options", commit + ":" + file});
  return r.ok() ? r.output : std::string();
}

void git_export(const std::string& repo, const std::string& commit, const std::string& dir) {
  fs::create_directories(dir);
  proc::Options o;
  o.argv = {"bash", "-c", "set -o pipefail; git -C \"$1\" archive --format=tar \"$2\" | tar -xf - -C \"$3\"", "kab",
            repo, commit, dir};
  proc::Result r = proc::run(o);
  if (!r.ok())
    throw BuildError("cannot export commit " + commit.substr(0, 12) + " of " + repo + ": " + r.describe() + "\n" +
                     r.tail);
}

std::string patch_id(const std::string& file) {
  proc::Options o;
  o.argv = {"bash", "-c", "git patch-id --stable < \"$1\"", "kab", file};
  proc::Result r = proc::run(o);
  if (!r.ok()) throw BuildError("git patch-id failed on " + file + ": " + r.describe() + "\n" + r.tail);
  auto words = lines_of(r.output);
  if (words.empty()) return "";
  return words[0].substr(0, words[0].find(' '));
}

std::string git_range_base(const std::string& repo, const std::string& range) {
  auto dots = range.find("..");
  if (dots == std::string::npos || range.find("...") != std::string::npos || dots == 0 || dots + 2 >= range.size())
    throw BuildError("commits '" + range + "' is not a range BASE..HEAD");
  return git_commit(repo, range.substr(0, dots));
}

std::string mail_subject(const std::string& mail);

std::vector<GitPatch> git_range_patches(const std::string& repo, const std::string& range, const std::string& dir) {
  const std::string base = git_range_base(repo, range);
  const std::string head = git_commit(repo, range.substr(range.find("..") + 2));
  std::vector<GitPatch> out;
  fs::create_directories(dir);
  for (const auto& line : lines_of(git_out({"-C", repo, "rev-list", "--reverse", "--parents", base + ".." + head},
                                           "cannot list the commits " + range + " of " + repo))) {
    std::vector<std::string> ids;
    std::istringstream ss(line);
    for (std::string id; ss >> id;) ids.push_back(id);
    const std::string& c = ids.at(0);
    if (ids.size() > 2)
      throw BuildError("commits " + range + " of " + repo + " include the merge commit " + c.substr(0, 12) +
                       ": a merge is not a patch; name a range of the commits on one side");
    GitPatch p;
    p.subject = core::trim(git_out({"-C", repo, "log", "-1", "--format=%s", c}, "cannot read commit " + c));
    p.label = c.substr(0, 12) + " (\"" + p.subject + "\")";
    p.file = (fs::path(dir) / (c + ".patch")).string();
    if (!fs::exists(p.file)) {
      std::string text = git_out({"-C", repo, "format-patch", "-1", "--stdout", "--no-signature", c},
                                 "cannot write commit " + c.substr(0, 12) + " as a patch");
      write_file(p.file + ".tmp", text);
      fs::rename(p.file + ".tmp", p.file);
    }
    p.patch_id = patch_id(p.file);
    if (p.patch_id.empty())
      throw BuildError("commit " + p.label + " of " + repo + " changes no file (an empty commit is not a patch)");
    // Hashed as the same commit's mail is (git mailinfo drops a leading
    // "[tag]"), so the commits and their series are one build.
    p.subject = mail_subject(p.file);
    out.push_back(std::move(p));
  }
  if (out.empty()) throw BuildError("commits " + range + " of " + repo + " is empty: HEAD has nothing BASE has not");
  return out;
}

// A mail's subject as git am would commit it: git mailinfo unfolds and decodes
// it (RFC 2047 "=?UTF-8?q?…?=", any charset, to UTF-8) and drops the leading
// bracketed tags ("[RFC PATCH v2 3/7]"). The message and patch it splits off
// are not needed here.
std::string mail_subject(const std::string& mail) {
  proc::Result r = git_run({"mailinfo", "/dev/null", "/dev/null"}, mail);
  if (!r.ok()) throw BuildError("cannot read the mail " + mail + ": git mailinfo " + r.describe());
  for (const auto& line : lines_of(r.output))
    if (core::starts_with(line, "Subject:")) return core::trim(line.substr(8));
  return "";
}

Series mbox_patches(const std::string& mbox, const std::string& dir) {
  if (!fs::is_regular_file(mbox)) throw BuildError("series " + mbox + " does not exist");
  fs::remove_all(dir);
  fs::create_directories(dir);
  git_out({"mailsplit", "-o" + dir, mbox}, "cannot split the mbox " + mbox);
  std::vector<fs::path> mails;
  for (const auto& e : fs::directory_iterator(dir)) mails.push_back(e.path());
  std::sort(mails.begin(), mails.end());
  Series s;
  std::regex base_re(R"((^|\n)base-commit: ([0-9a-f]{40}))");
  for (const auto& m : mails) {
    std::string text = core::read_text(m.string());
    std::smatch bm;
    if (std::regex_search(text, bm, base_re)) s.base_commit = bm[2].str();
    GitPatch p;
    p.patch_id = patch_id(m.string());
    if (p.patch_id.empty()) continue;   // a cover letter
    p.subject = mail_subject(m.string());
    // Named as format-patch names it, so that an error names the mail.
    p.file = (m.parent_path() / (m.filename().string() + "-" + slug(p.subject) + ".patch")).string();
    fs::rename(m, p.file);
    p.label = p.subject;
    p.message_id = header(text, "Message-Id");
    s.patches.push_back(std::move(p));
  }
  if (s.patches.empty()) throw BuildError("series " + mbox + " holds no patch (no mail in it carries a diff)");
  return s;
}

WorktreeChange worktree_patch(const std::string& repo, const std::string& dir) {
  WorktreeChange w;
  // Tracked changes, staged or not, against HEAD; then each untracked file
  // git would show (not ignored) as a new file.
  std::string diff = git_out({"-C", repo, "diff", "HEAD", "--no-color", "--no-ext-diff", "--full-index", "--no-renames"},
                             "cannot diff the work tree of " + repo);
  for (const auto& f : lines_of(git_out({"-C", repo, "diff", "HEAD", "--name-only", "--no-renames"}, "git diff")))
    w.files.push_back(f);
  for (const auto& f : lines_of(git_out({"-C", repo, "ls-files", "--others", "--exclude-standard"}, "git ls-files"))) {
    // --no-index exits 1 when the files differ, as a new file always does.
    proc::Result r = git_run({"-C", repo, "diff", "--no-index", "--no-color", "--no-ext-diff", "--", "/dev/null", f});
    if (r.exit_code != 1) throw BuildError("cannot diff the untracked file " + f + " of " + repo + ": git " + r.describe());
    diff += r.output;
    w.files.push_back(f);
  }
  if (diff.empty()) return w;
  if (diff.find("\nGIT binary patch\n") != std::string::npos || diff.find("\nBinary files ") != std::string::npos)
    throw BuildError("the work tree of " + repo + " has a binary change, which kab cannot apply as a patch; commit it");
  w.hash = core::sha256_hex(diff);
  fs::create_directories(dir);
  w.file = (fs::path(dir) / (w.hash.substr(0, 16) + "-uncommitted.patch")).string();
  if (!fs::exists(w.file)) {
    write_file(w.file + ".tmp", diff);
    fs::rename(w.file + ".tmp", w.file);
  }
  return w;
}

}  // namespace kab::kernel
