#include "kernel/builder.h"
#include "kernel/git_source.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <unordered_map>

#include "core/hash.h"
#include "core/system.h"
#include "core/text.h"
#include "proc/runner.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace kab::kernel {

namespace {

void write_text(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  fs::path tmp = p;
  tmp += ".tmp" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) throw BuildError("cannot write " + tmp.string());
  }
  fs::rename(tmp, p);
}

std::string compiler_identity() {
  auto [ok, out] = proc::capture({"gcc", "--version"});
  return ok ? core::trim(core::split(out, '\n')[0]) : "unknown";
}

int nproc() {
  long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

std::string short_hash(const std::string& h) { return h.substr(0, 16); }

// Counts compile steps in a Kbuild log ("  CC      fs/fuse/file.o").
int count_compiled(const std::string& log_text) {
  int n = 0;
  std::istringstream ss(log_text);
  std::string line;
  while (std::getline(ss, line))
    if (core::starts_with(line, "  CC ") || core::starts_with(line, "  AS ")) ++n;
  return n;
}

// An exclusive lock for the life of a build (on its lane) or an extraction (on
// its source): two kab processes — a nightly job and a developer — must never
// run Kbuild in one tree or extract into one directory at once. The kernel
// drops the lock when the holder dies, so a killed kab leaves none.
class FileLock {
 public:
  FileLock(const fs::path& lock_file, const std::function<void()>& on_wait) {
    m_fd = ::open(lock_file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (m_fd < 0) return;
    if (::flock(m_fd, LOCK_EX | LOCK_NB) == 0) return;
    on_wait();
    while (::flock(m_fd, LOCK_EX) != 0 && errno == EINTR) {
    }
  }
  ~FileLock() {
    if (m_fd >= 0) ::close(m_fd);
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int m_fd = -1;
};

}  // namespace

std::string BuildInputs::hash() const {
  core::Sha256 h;
  h.field("kab-kernel-inputs-v1").field(source_identity).field(arch).field(config_base).field(compiler);
  // Only when present, so kernels without plumbing keep their keys.
  for (const auto& [n, d] : plumbing) h.field("plumbing").field(n).field(d);
  for (const auto& [n, d] : patches) h.field("patch").field(n).field(d);
  for (const auto& [n, d] : fragments) h.field("fragment").field(n).field(d);
  return h.hex();
}

std::vector<std::string> BuildInputs::differences(const BuildInputs& b) const {
  std::vector<std::string> out;
  if (source_identity != b.source_identity) {
    const std::string commit = "git commit ";
    if (!source_ref.empty() && source_ref == b.source_ref && core::starts_with(source_identity, commit) &&
        core::starts_with(b.source_identity, commit)) {
      // "REPO ref REF": the same ref, another commit.
      const std::string repo = source_ref.substr(0, source_ref.rfind(" ref "));
      const std::string ref = source_ref.substr(source_ref.rfind(" ref ") + 5);
      const std::string was = b.source_identity.substr(commit.size()), is = source_identity.substr(commit.size());
      out.push_back("ref " + ref + " moved from " + was.substr(0, 12) + " to " + is.substr(0, 12) + " (" + repo + ")");
      auto [ok, names] = proc::capture({"git", "-C", repo, "diff", "--name-only", "-z", was, is}, 600);
      std::vector<std::string> files;
      if (ok)
        for (const auto& n : core::split(names, '\0'))
          if (!n.empty()) files.push_back(n);
      for (std::size_t i = 0; i < files.size() && i < 20; ++i)
        out.push_back("source file " + files[i] + " differs between the commits");
      if (files.size() > 20) out.push_back("… and " + std::to_string(files.size() - 20) + " more source files");
    } else {
      out.push_back("source changed: " + b.source_identity + " -> " + source_identity);
      for (auto& line : source_differences(*this, b)) out.push_back(std::move(line));
    }
  }
  if (arch != b.arch) out.push_back("arch changed: " + b.arch + " -> " + arch);
  if (config_base != b.config_base) out.push_back("config base changed: " + b.config_base + " -> " + config_base);
  if (compiler != b.compiler) out.push_back("compiler changed: " + b.compiler + " -> " + compiler);
  auto diff_list = [&](const char* what, const auto& now, const auto& before) {
    std::map<std::string, std::string> a(now.begin(), now.end()), o(before.begin(), before.end());
    for (const auto& [n, d] : a) {
      auto it = o.find(n);
      if (it == o.end()) out.push_back(std::string(what) + " " + n + " added");
      else if (it->second != d) out.push_back(std::string(what) + " " + n + " changed");
    }
    for (const auto& [n, d] : o)
      if (!a.count(n)) out.push_back(std::string(what) + " " + n + " removed");
    if (out.empty() && now != before) out.push_back(std::string(what) + " order changed");
  };
  diff_list("plumbing patch", plumbing, b.plumbing);
  diff_list("patch", patches, b.patches);
  diff_list("fragment", fragments, b.fragments);
  return out;
}

static json inputs_json(const BuildInputs& in) {
  json j;
  j["source_identity"] = in.source_identity;
  if (!in.source_ref.empty()) j["source_ref"] = in.source_ref;
  if (!in.source_name.empty()) j["source_name"] = in.source_name;
  if (!in.patch_labels.empty()) j["patch_labels"] = in.patch_labels;
  if (!in.source_files.empty()) {
    j["source_files"] = json::object();
    for (const auto& [n, d] : in.source_files) j["source_files"][n] = d;
  }
  j["arch"] = in.arch;
  j["config_base"] = in.config_base;
  j["compiler"] = in.compiler;
  if (!in.plumbing.empty()) {
    j["plumbing"] = json::array();
    for (const auto& [n, d] : in.plumbing) j["plumbing"].push_back({{"name", n}, {"sha256", d}});
  }
  j["patches"] = json::array();
  for (const auto& [n, d] : in.patches) j["patches"].push_back({{"name", n}, {"sha256", d}});
  j["fragments"] = json::array();
  for (const auto& [n, d] : in.fragments) j["fragments"].push_back({{"name", n}, {"sha256", d}});
  return j;
}

static BuildInputs inputs_from_json(const json& j) {
  BuildInputs in;
  in.source_identity = j.value("source_identity", "");
  in.source_ref = j.value("source_ref", "");
  in.source_name = j.value("source_name", "");
  in.patch_labels = j.value("patch_labels", std::vector<std::string>{});
  // Bound to a name: items() of the temporary value() returns would dangle.
  const json files = j.value("source_files", json::object());
  for (const auto& [n, d] : files.items()) in.source_files.emplace_back(n, d.get<std::string>());
  in.arch = j.value("arch", "");
  in.config_base = j.value("config_base", "");
  in.compiler = j.value("compiler", "");
  for (const auto& p : j.value("plumbing", json::array())) in.plumbing.emplace_back(p["name"], p["sha256"]);
  for (const auto& p : j.value("patches", json::array())) in.patches.emplace_back(p["name"], p["sha256"]);
  for (const auto& p : j.value("fragments", json::array())) in.fragments.emplace_back(p["name"], p["sha256"]);
  return in;
}

std::string source_identity(const std::string& source) {
  if (core::starts_with(source, "linux-source-")) {
    auto [ok, out] = proc::capture({"dpkg-query", "-W", "-f=${Version}", source});
    if (!ok || core::trim(out).empty())
      throw BuildError("kernel source package " + source + " is not installed (make deps installs it)");
    return source + "=" + core::trim(out);
  }
  if (fs::is_directory(source)) return tree_identity(source);
  return "tarball:" + source + " sha256:" + core::sha256_file(source);
}

TreeState tree_state(const std::string& dir) {
  TreeState st;
  // A git work tree: the commit, and what differs from it (tracked changes
  // and untracked files, by content).
  auto [is_git, top] = proc::capture({"git", "-C", dir, "rev-parse", "--show-toplevel"});
  if (is_git) {
    auto [head_ok, head] = proc::capture({"git", "-C", dir, "rev-parse", "--verify", "HEAD"});
    auto [names_ok, names] =
        proc::capture({"git", "-C", dir, "diff", "HEAD", "--name-only", "--relative", "-z", "--", "."}, 600);
    auto [ls_ok, untracked] =
        proc::capture({"git", "-C", dir, "ls-files", "--others", "--exclude-standard", "-z", "--", "."}, 600);
    if (head_ok && names_ok && ls_ok) {
      // What differs, by content: each changed tracked file and each untracked one.
      std::size_t files = 0;
      auto content = [&](const std::string& name) {
        const fs::path p = fs::path(dir) / name;
        return fs::exists(p) ? core::sha256_file(p.string()) : std::string("deleted");
      };
      for (const auto& name : core::split(untracked, '\0')) {
        if (name.empty()) continue;
        st.files.emplace_back(name, content(name));
        ++files;
      }
      for (const auto& name : core::split(names, '\0'))
        if (!name.empty()) st.files.emplace_back(name, content(name));
      std::sort(st.files.begin(), st.files.end());
      core::Sha256 h;
      for (const auto& [name, sha] : st.files) h.field(name).field(sha);
      const bool clean = st.files.empty();
      st.identity = "git:" + dir + " commit " + core::trim(head) +
                    (clean ? " clean" : " changes " + short_hash(h.hex()) + " (" + std::to_string(files) + " untracked)");
      return st;
    }
  }
  // Any other directory: every file's path, size and modification time.
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (!it->is_regular_file(ec)) continue;
    const auto rel = fs::relative(it->path(), dir, ec).string();
    const auto mtime = it->last_write_time(ec).time_since_epoch().count();
    st.files.emplace_back(rel, std::to_string(it->file_size(ec)) + "\t" + std::to_string(mtime));
  }
  std::sort(st.files.begin(), st.files.end());
  core::Sha256 h;
  for (const auto& [rel, size_mtime] : st.files) h.field(rel + "\t" + size_mtime);
  st.identity = "tree:" + dir + " manifest " + short_hash(h.hex()) + " (" + std::to_string(st.files.size()) + " files)";
  return st;
}

std::string tree_identity(const std::string& dir) { return tree_state(dir).identity; }

std::vector<std::string> source_differences(const BuildInputs& now, const BuildInputs& before) {
  std::vector<std::string> out;
  if (now.source_identity == before.source_identity) return out;
  // "git:DIR commit SHA …" → {DIR, SHA}; "" when not a git source.
  auto git_of = [](const std::string& id) -> std::pair<std::string, std::string> {
    if (!core::starts_with(id, "git:")) return {};
    auto at = id.find(" commit ");
    if (at == std::string::npos) return {};
    auto sha = id.substr(at + 8);
    return {id.substr(4, at - 4), sha.substr(0, sha.find(' '))};
  };
  const auto [dir_now, commit_now] = git_of(now.source_identity);
  const auto [dir_before, commit_before] = git_of(before.source_identity);
  std::vector<std::string> lines;
  if (!dir_now.empty() && dir_now == dir_before && commit_now != commit_before) {
    out.push_back("source commit changed: " + commit_before.substr(0, 12) + " -> " + commit_now.substr(0, 12));
    auto [ok, names] = proc::capture({"git", "-C", dir_now, "diff", "--name-only", "--relative", "-z", commit_before,
                                      commit_now, "--", "."}, 600);
    if (ok)
      for (const auto& n : core::split(names, '\0'))
        if (!n.empty()) lines.push_back("source file " + n + " differs between the commits");
    // And what is not committed, now or then.
    for (const auto& [n, d] : now.source_files) lines.push_back("source file " + n + " differs from the commit");
  } else {
    const bool git = !dir_now.empty();
    std::map<std::string, std::string> a(now.source_files.begin(), now.source_files.end()),
        o(before.source_files.begin(), before.source_files.end());
    for (const auto& [n, d] : a) {
      auto it = o.find(n);
      if (it == o.end()) lines.push_back("source file " + n + (git ? " changed" : " added"));
      else if (it->second != d) lines.push_back("source file " + n + " changed");
    }
    for (const auto& [n, d] : o)
      if (!a.count(n)) lines.push_back("source file " + n + (git ? " changed back to the commit" : " removed"));
  }
  constexpr std::size_t k_most = 20;
  for (std::size_t i = 0; i < lines.size() && i < k_most; ++i) out.push_back(lines[i]);
  if (lines.size() > k_most) out.push_back("… and " + std::to_string(lines.size() - k_most) + " more source files");
  return out;
}

std::vector<std::string> patched_files(const std::string& patch_text) {
  std::vector<std::string> out;
  std::istringstream ss(patch_text);
  std::string line;
  while (std::getline(ss, line)) {
    if (!core::starts_with(line, "+++ ")) continue;
    std::string p = line.substr(4);
    auto tab = p.find('\t');
    if (tab != std::string::npos) p = p.substr(0, tab);
    p = core::trim(p);
    if (p == "/dev/null") continue;
    auto slash = p.find('/');
    if (slash != std::string::npos) p = p.substr(slash + 1);
    if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
  }
  return out;
}

namespace {

// The header and first lines of hunk `number` (1-based) of `file` in a patch.
std::string hunk_text(const std::string& patch_text, const std::string& file, int number) {
  std::istringstream ss(patch_text);
  std::string line, out;
  bool in_file = false;
  int hunk = 0, shown = 0;
  while (std::getline(ss, line)) {
    if (core::starts_with(line, "+++ ")) {
      auto files = patched_files(line + "\n");
      in_file = !files.empty() && files[0] == file;
      hunk = 0;
      continue;
    }
    if (!in_file) continue;
    if (core::starts_with(line, "@@")) {
      ++hunk;
      if (hunk == number) {
        out += "      " + line + "\n";
        shown = 1;
        continue;
      }
      if (hunk > number) break;
    }
    if (hunk == number && shown > 0 && shown < 8 && !core::starts_with(line, "diff ")) {
      out += "      " + line + "\n";
      ++shown;
    }
  }
  return out;
}

void copy_file_fresh(const fs::path& from, const fs::path& to) {
  // A new inode with a new mtime: Kbuild must see the change, and the
  // pristine file the work tree's hard link points at must stay untouched.
  std::error_code ec;
  fs::remove(to, ec);
  fs::create_directories(to.parent_path());
  fs::copy_file(from, to, fs::copy_options::overwrite_existing);
}

bool same_content(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  if (!fs::is_regular_file(a, ec) || !fs::is_regular_file(b, ec) || fs::file_size(a, ec) != fs::file_size(b, ec))
    return false;
  return core::read_text(a.string()) == core::read_text(b.string());
}

// Whether work tree entry `b` is what pristine entry `a` is: the same inode (a
// hard link made by the lane), the same bytes, or a symlink to the same
// target; both absent counts as the same.
bool same_entry(const fs::path& a, const fs::path& b) {
  struct stat sa {}, sb {};
  const bool has_a = ::lstat(a.c_str(), &sa) == 0, has_b = ::lstat(b.c_str(), &sb) == 0;
  if (!has_a || !has_b) return has_a == has_b;
  if (sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino) return true;
  if (S_ISLNK(sa.st_mode) && S_ISLNK(sb.st_mode)) return fs::read_symlink(a) == fs::read_symlink(b);
  if (S_ISREG(sa.st_mode) && S_ISREG(sb.st_mode)) return sa.st_size == sb.st_size && same_content(a, b);
  return false;
}

// Makes work tree entry `dir/rel` what `pristine/rel` is (a fresh copy: a new
// inode with mtime now, so Kbuild recompiles what uses it), or removes it.
void install_entry(const fs::path& pristine, const fs::path& dir, const std::string& rel) {
  const fs::path from = pristine / rel, to = dir / rel;
  std::error_code ec;
  const auto st = fs::symlink_status(from, ec);
  if (ec || !fs::exists(st)) {
    fs::remove(to, ec);
    return;
  }
  if (fs::is_directory(st)) return;
  if (fs::is_symlink(st)) {
    fs::remove(to, ec);
    fs::create_directories(to.parent_path());
    fs::create_symlink(fs::read_symlink(from), to);
    return;
  }
  copy_file_fresh(from, to);
}

// Relative paths of the non-directories under `root`.
std::vector<std::string> tree_entries(const fs::path& root) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (it->is_directory(ec) && !it->is_symlink(ec)) continue;
    out.push_back(it->path().lexically_relative(root).string());
  }
  return out;
}

}  // namespace

std::vector<std::string> sync_work_tree(const std::string& pristine, const std::string& dir,
                                        const std::optional<std::vector<std::string>>& only,
                                        const std::set<std::string>& skip) {
  std::vector<std::string> changed;
  auto visit = [&](const std::string& rel) {
    if (skip.count(rel) || same_entry(fs::path(pristine) / rel, fs::path(dir) / rel)) return;
    install_entry(pristine, dir, rel);
    changed.push_back(rel);
  };
  if (only) {
    for (const auto& rel : *only) visit(rel);
  } else {
    // What the pristine tree holds, then what the work tree holds beyond it.
    std::set<std::string> seen;
    for (auto& rel : tree_entries(pristine)) {
      visit(rel);
      seen.insert(std::move(rel));
    }
    for (const auto& rel : tree_entries(dir))
      if (!seen.count(rel)) visit(rel);
  }
  std::sort(changed.begin(), changed.end());
  return changed;
}

int objects_out_of_date(const std::string& out_dir, const std::set<std::string>& changed_options) {
  // Make's own rule, asked before make runs: a target older than a
  // prerequisite, or missing, is remade; a prerequisite that does not exist
  // (fixdep gives each an empty rule) counts as remade. Kbuild names the
  // sources relative to O= (../src/fs/fuse/file.c) or absolutely.
  const std::string wildcard = "$(wildcard include/config/";
  std::unordered_map<std::string, std::optional<struct timespec>> mtimes;
  auto mtime = [&](const std::string& path) -> const std::optional<struct timespec>& {
    auto [it, fresh] = mtimes.try_emplace(path);
    if (fresh) {
      struct stat sb {};
      if (::stat(path.c_str(), &sb) == 0) it->second = sb.st_mtim;
    }
    return it->second;
  };
  auto newer = [](const struct timespec& a, const struct timespec& b) {
    return a.tv_sec != b.tv_sec ? a.tv_sec > b.tv_sec : a.tv_nsec > b.tv_nsec;
  };
  int n = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(out_dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    // Not the host tools (out/tools: objtool and the libraries it links, made
    // by their own makefiles, which name files from directories of their own):
    // a kernel change does not rebuild them.
    if (it.depth() == 0 && name == "tools" && it->is_directory()) {
      it.disable_recursion_pending();
      continue;
    }
    if (name.size() < 7 || name[0] != '.' || name.compare(name.size() - 6, 6, ".o.cmd") != 0) continue;
    const auto target = mtime((it->path().parent_path() / name.substr(1, name.size() - 5)).string());
    bool hit = !target, gone = false, sourced = false;
    auto check = [&](std::string path) {
      path = core::trim(path);
      if (!path.empty() && path.back() == '\\') path = core::trim(path.substr(0, path.size() - 1));
      if (path.empty()) return;
      if (core::starts_with(path, wildcard)) {
        hit = hit || changed_options.count(path.substr(wildcard.size(), path.size() - wildcard.size() - 1));
        return;
      }
      const auto& t = mtime(path[0] == '/' ? path : out_dir + "/" + path);
      hit = hit || !t || newer(*t, *target);   // (a missing target is a hit already)
    };
    std::ifstream in(it->path());
    std::string line;
    bool in_deps = false;
    while (!(hit && sourced) && !gone && std::getline(in, line)) {
      if (core::starts_with(line, "source_")) {
        // The object of a source no longer in the tree (a file a patch set
        // or commit added, switched away since) is not built: its record
        // stays, make never reads it.
        auto at = line.find(":= ");
        if (at == std::string::npos) continue;
        sourced = true;
        std::string source = core::trim(line.substr(at + 3));
        gone = !mtime(source[0] == '/' ? source : out_dir + "/" + source);
        if (!gone) check(source);
      } else if (core::starts_with(line, "deps_")) {
        in_deps = true;
      } else if (in_deps) {
        check(line);
        if (line.empty() || line.back() != '\\') in_deps = false;
      }
    }
    if (hit && !gone) ++n;
  }
  return n;
}

std::set<std::string> changed_options(const std::string& before, const std::string& after) {
  // "CONFIG_X=v" and "# CONFIG_X is not set" lines by option.
  auto options = [](const std::string& text) {
    std::map<std::string, std::string> m;
    std::istringstream ss(text);
    std::string line;
    while (std::getline(ss, line)) {
      if (core::starts_with(line, "CONFIG_")) {
        auto eq = line.find('=');
        if (eq == std::string::npos) continue;
        // A string as .config quotes it ("gcc (Debian …)", backslash
        // escapes) and as include/config/auto.conf writes it (bare): one value.
        std::string v = line.substr(eq + 1);
        if (v.size() >= 2 && v.front() == '"' && v.back() == '"') {
          std::string bare;
          for (std::size_t i = 1; i + 1 < v.size(); ++i) {
            if (v[i] == '\\' && i + 2 < v.size()) ++i;
            bare += v[i];
          }
          v = bare;
        }
        m[line.substr(7, eq - 7)] = v;
      } else if (core::starts_with(line, "# CONFIG_") && line.find(" is not set") != std::string::npos) {
        m[line.substr(9, line.find(' ', 9) - 9)] = "n";
      }
    }
    return m;
  };
  const auto a = options(before), b = options(after);
  std::set<std::string> out;
  for (const auto& [k, v] : a) {
    auto it = b.find(k);
    if (it == b.end() ? v != "n" : it->second != v) out.insert(k);
  }
  for (const auto& [k, v] : b)
    if (!a.count(k) && v != "n") out.insert(k);
  return out;
}

namespace {

enum class PatchMode { apply, strict, dry_run };

// patch(1) on `dir`: as written (the fuzz patch allows), strictly (no fuzz:
// a patch on its own preimage), or to see whether it applies.
proc::Result run_patch(const std::string& dir, const std::string& patch_file, PatchMode mode) {
  proc::Options o;
  o.argv = {"patch", "-p1", "--forward", "--batch", "--no-backup-if-mismatch", "-r", "-", "-d", dir, "-i", patch_file};
  if (mode == PatchMode::strict) o.argv.push_back("--fuzz=0");
  if (mode == PatchMode::dry_run) o.argv.push_back("--dry-run");
  return proc::run(o);
}

// A git diff split by file: "diff --git a/X b/X" up to the next one.
struct FileDiff {
  std::string path, pre_blob, text;   // pre_blob: the "index A..B" line's A, "" when absent
  bool created = false, deleted = false;
};

std::vector<FileDiff> split_git_diff(const std::string& patch_text) {
  std::vector<FileDiff> out;
  std::istringstream ss(patch_text);
  std::string line;
  std::regex index_re(R"(^index ([0-9a-f]+)\.\.([0-9a-f]+))");
  while (std::getline(ss, line)) {
    if (core::starts_with(line, "diff --git ")) {
      out.emplace_back();
      out.back().text = line + "\n";
      continue;
    }
    if (out.empty()) continue;
    if (line == "-- " || core::starts_with(line, "-- \r")) break;   // the mail's signature
    FileDiff& f = out.back();
    f.text += line + "\n";
    std::smatch m;
    if (std::regex_search(line, m, index_re)) f.pre_blob = m[1].str();
    if (core::starts_with(line, "new file mode")) f.created = true;
    if (core::starts_with(line, "deleted file mode")) f.deleted = true;
    if (core::starts_with(line, "+++ ") && f.path.empty()) {
      auto files = patched_files(line + "\n");
      if (!files.empty()) f.path = files[0];
    }
    if (core::starts_with(line, "--- a/") && f.path.empty()) f.path = line.substr(6);
  }
  for (auto& f : out)
    if (std::all_of(f.pre_blob.begin(), f.pre_blob.end(), [](char c) { return c == '0'; })) f.pre_blob.clear();
  return out;
}

// Applies a git patch to the staged files as `git am -3` would when its
// context no longer matches: for each file, the blob the patch was made
// against (its "index" line) is read from `repo`, the patch applied to it
// strictly, and the result merged with the staged file (git merge-file).
// Returns "" when every file merged cleanly (the staged files then hold the
// result), else why not (the staged files as they were).
std::string apply_three_way(const std::string& repo, const std::string& patch_file, const std::string& staging_dir,
                            const fs::path& work) {
  const auto diffs = split_git_diff(core::read_text(patch_file));
  if (diffs.empty()) return "not a git diff";
  std::vector<std::pair<fs::path, std::optional<std::string>>> results;   // staged path → new content (nullopt: remove)
  int n = 0;
  for (const auto& d : diffs) {
    const fs::path dir = work / std::to_string(n++);
    fs::create_directories(dir);
    const fs::path staged = fs::path(staging_dir) / d.path;
    write_text(dir / "file.patch", d.text);
    if (d.created) {
      if (fs::exists(staged)) return d.path + " exists already";
      if (!run_patch(dir.string(), (dir / "file.patch").string(), PatchMode::strict).ok())
        return d.path + ": a new file that does not apply";
      results.emplace_back(staged, core::read_text((dir / d.path).string()));
      continue;
    }
    if (d.pre_blob.empty()) return d.path + ": no \"index\" line names the file the patch was made against";
    // The file as the patch's author had it, then as the patch makes it.
    proc::Options cat;
    cat.argv = {"bash", "-c", "git -C \"$1\" cat-file blob \"$2\" > \"$3\"", "kab", repo, d.pre_blob,
                (dir / "pre").string()};
    if (!proc::run(cat).ok()) return d.path + ": its preimage " + d.pre_blob + " is not in " + repo;
    const std::string pre = core::read_text((dir / "pre").string());
    if (!fs::exists(staged)) return d.path + " is not in the source";
    if (d.deleted) {
      if (core::read_text(staged.string()) != pre) return d.path + " is deleted by the patch but changed in the source";
      results.emplace_back(staged, std::nullopt);
      continue;
    }
    write_text(dir / d.path, pre);
    if (!run_patch(dir.string(), (dir / "file.patch").string(), PatchMode::strict).ok())
      return d.path + ": the patch does not apply to its own preimage " + d.pre_blob;
    // git merge-file writes into its first file: a copy, so a conflict leaves the staged file as it was.
    fs::copy_file(staged, dir / "ours");
    proc::Options merge;
    merge.argv = {"git", "merge-file", "-q", (dir / "ours").string(), (dir / "pre").string(), (dir / d.path).string()};
    proc::Result r = proc::run(merge);
    if (!r.ok()) return d.path + ": the three-way merge conflicts (" + r.describe() + ")";
    results.emplace_back(staged, core::read_text((dir / "ours").string()));
  }
  for (const auto& [path, content] : results) {
    std::error_code ec;
    fs::remove(path, ec);
    if (content) write_text(path, *content);
  }
  return "";
}

}  // namespace

std::vector<std::string> apply_patches_staged(const std::string& base_dir, const std::vector<std::string>& patches,
                                              const std::string& staging_dir, const std::string& repo) {
  std::vector<std::string> notes;
  fs::remove_all(staging_dir);
  fs::create_directories(staging_dir);
  std::set<std::string> files;
  for (const auto& p : patches)
    for (const auto& f : patched_files(core::read_text(p))) files.insert(f);
  for (const auto& f : files) {
    fs::path src = fs::path(base_dir) / f;
    if (fs::exists(src)) copy_file_fresh(src, fs::path(staging_dir) / f);
  }
  for (const auto& p : patches) {
    // With a repository to merge from, tried first without changing anything,
    // so a three-way merge starts from the staged files as they were.
    std::string three_way;
    if (!repo.empty() && !run_patch(staging_dir, p, PatchMode::dry_run).ok()) {
      const fs::path work = fs::path(staging_dir).parent_path() / (fs::path(staging_dir).filename().string() + ".3way");
      fs::remove_all(work);
      three_way = apply_three_way(repo, p, staging_dir, work);
      fs::remove_all(work);
      if (three_way.empty()) {
        std::string merged;
        for (const auto& f : patched_files(core::read_text(p))) merged += (merged.empty() ? "" : ", ") + f;
        notes.push_back("patch " + fs::path(p).filename().string() +
                        " did not apply as written; applied by a three-way merge with its preimage from " + repo +
                        " (as git am -3): " + merged);
        continue;
      }
    }
    proc::Result r = run_patch(staging_dir, p, PatchMode::apply);
    if (r.ok()) continue;
    std::string text = core::read_text(p);
    std::string msg = "patch " + fs::path(p).filename().string() + " does not apply to the source:\n";
    std::istringstream ss(r.output);
    std::string line, current;
    std::regex failed(R"(Hunk #(\d+) FAILED at (\d+))");
    int hunks = 0;
    while (std::getline(ss, line)) {
      if (core::starts_with(line, "patching file ")) current = core::trim(line.substr(14));
      std::smatch m;
      if (std::regex_search(line, m, failed)) {
        ++hunks;
        msg += "  " + current + ": hunk #" + m[1].str() + " FAILED at line " + m[2].str() + "\n" +
               hunk_text(text, current, std::stoi(m[1].str()));
      }
      if (line.find("can't find file") != std::string::npos || line.find("No file to patch") != std::string::npos ||
          line.find("malformed patch") != std::string::npos || line.find("Only garbage") != std::string::npos) {
        msg += "  " + core::trim(line) + "\n";
        ++hunks;
      }
    }
    if (!hunks) msg += core::trim(r.output) + "\n";
    if (!three_way.empty()) msg += "  a three-way merge (as git am -3) did not help either: " + three_way + "\n";
    fs::remove_all(staging_dir);
    if (!msg.empty() && msg.back() == '\n') msg.pop_back();
    throw BuildError(msg);
  }
  return notes;
}

std::vector<Wanted> read_fragment(const std::string& text, const std::string& fragment_name) {
  std::vector<Wanted> out;
  std::istringstream ss(text);
  std::string line;
  std::regex set(R"(^(CONFIG_[A-Za-z0-9_]+)=(.*)$)");
  std::regex unset(R"(^# (CONFIG_[A-Za-z0-9_]+) is not set$)");
  while (std::getline(ss, line)) {
    line = core::trim(line);
    std::smatch m;
    if (std::regex_match(line, m, set)) out.push_back({m[1].str(), m[2].str(), fragment_name});
    else if (std::regex_match(line, m, unset)) out.push_back({m[1].str(), "n", fragment_name});
  }
  return out;
}

std::vector<DroppedOption> dropped_options(const std::vector<Wanted>& wanted, const std::string& final_config) {
  std::map<std::string, std::string> final_values;
  for (const auto& w : read_fragment(final_config, "")) final_values[w.option] = w.value;
  // Later fragments override earlier ones: check only the last request of each option.
  std::map<std::string, Wanted> last;
  std::vector<std::string> order;
  for (const auto& w : wanted) {
    if (!last.count(w.option)) order.push_back(w.option);
    last[w.option] = w;
  }
  std::vector<DroppedOption> out;
  for (const auto& opt : order) {
    const Wanted& w = last[opt];
    auto it = final_values.find(opt);
    std::string got = it == final_values.end() ? "n" : it->second;
    if (got != w.value) out.push_back({w, got, ""});
  }
  return out;
}

std::string kconfig_depends(const std::string& src_dir, const std::string& option) {
  std::string sym = core::starts_with(option, "CONFIG_") ? option.substr(7) : option;
  std::regex head("^(menu)?config " + sym + "\\s*$");
  std::string found;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(src_dir, ec); it != fs::recursive_directory_iterator(); ++it) {
    if (!core::starts_with(it->path().filename().string(), "Kconfig")) continue;
    std::ifstream in(it->path());
    std::string line;
    bool in_block = false;
    while (std::getline(in, line)) {
      if (std::regex_match(line, head)) {
        in_block = true;
        continue;
      }
      if (!in_block) continue;
      if (!line.empty() && !std::isspace(static_cast<unsigned char>(line[0]))) {
        in_block = false;
        continue;
      }
      std::string t = core::trim(line);
      if (core::starts_with(t, "depends on")) found += (found.empty() ? "" : "; ") + t;
    }
    if (!found.empty()) break;
  }
  return found;
}

Builder::Builder(Options options) : m_options(std::move(options)) {
  if (m_options.jobs <= 0) m_options.jobs = nproc();
}

std::optional<BuildInputs> Builder::built_inputs(const std::string& key) const {
  const fs::path meta = fs::path(m_options.cache_dir) / "kernels" / key / "meta.json";
  if (key.empty() || !fs::exists(meta)) return std::nullopt;
  const json j = json::parse(core::read_text(meta.string()));
  if (!j.contains("inputs")) return std::nullopt;
  return inputs_from_json(j["inputs"]);
}

BuildInputs Builder::inputs_of(const core::KernelSpec& spec, const std::string& arch, const std::string& variant) const {
  BuildInputs in;
  // A commit of a repository: identified by the commit id alone, wherever the
  // repository is; the range's base when the change is given as commits.
  std::optional<WorktreeChange> worktree;
  std::string base_commit;   // the git source's resolved commit, "" for other sources
  if (!spec.git_repo.empty()) {
    // WORKTREE: HEAD's commit, and what the work tree changes as a patch on it.
    const bool wt = spec.git_ref == "WORKTREE";
    if (wt) worktree = worktree_patch(spec.git_repo, (fs::path(m_options.cache_dir) / "patches" / "worktree").string());
    std::string commit = wt                    ? git_commit(spec.git_repo, "HEAD")
                         : spec.commits.empty() ? git_commit(spec.git_repo, spec.git_ref)
                                                : git_range_base(spec.git_repo, spec.commits);
    if (!spec.commits.empty() && !spec.git_ref.empty() && git_commit(spec.git_repo, spec.git_ref) != commit)
      throw BuildError("kernel " + spec.name + ": ref " + spec.git_ref + " is not the base of commits " + spec.commits +
                       " (leave ref out: the range's base is the source)");
    in.source_identity = "git commit " + commit;
    base_commit = commit;
    const std::string ref = wt ? "HEAD" : spec.commits.empty() ? spec.git_ref : spec.commits.substr(0, spec.commits.find(".."));
    in.source_ref = spec.git_repo + " ref " + ref;
    const std::string name = git_describe(spec.git_repo, ref, commit);
    in.source_name = name == commit.substr(0, 12) ? name : name + " (" + commit.substr(0, 12) + ")";
  } else if (fs::is_directory(spec.source)) {
    TreeState tree = tree_state(spec.source);
    in.source_identity = std::move(tree.identity);
    in.source_files = std::move(tree.files);
  } else {
    in.source_identity = source_identity(spec.source);
  }
  in.arch = arch;
  in.config_base = spec.config_base;
  in.compiler = compiler_identity();
  // The source's kernel version picks the plumbing made for it.
  std::string makefile;
  if (!base_commit.empty())
    makefile = git_file(spec.git_repo, base_commit, "Makefile");
  else if (fs::is_directory(spec.source))
    makefile = core::read_text((fs::path(spec.source) / "Makefile").string());
  const std::string version = core::starts_with(spec.source, "linux-source-") ? spec.source.substr(13)
                                                                                : kernel_version(makefile);
  for (const auto& p : plumbing_patches(arch, version)) {
    in.plumbing.emplace_back(fs::path(p).filename().string(), core::sha256_file(p));
    in.plumbing_paths.push_back(p);
  }
  // The change under test: commits or a series, by patch-id (the same change
  // as commits or as mails is the same build), then the definition's files.
  auto add_git = [&](const std::vector<GitPatch>& list) {
    for (const auto& p : list) {
      in.patches.emplace_back(p.subject, "patch-id:" + p.patch_id);
      in.patch_paths.push_back(p.file);
      in.patch_labels.push_back(p.label + (p.message_id.empty() ? "" : " " + p.message_id));
    }
  };
  const fs::path cache(m_options.cache_dir);
  if (worktree && !worktree->file.empty()) {
    in.patches.emplace_back("uncommitted changes", "sha256:" + worktree->hash);
    in.patch_paths.push_back(worktree->file);
    std::string files;
    for (std::size_t i = 0; i < worktree->files.size() && i < 5; ++i) files += (i ? ", " : "") + worktree->files[i];
    if (worktree->files.size() > 5) files += ", … (" + std::to_string(worktree->files.size()) + " files)";
    in.patch_labels.push_back("uncommitted changes (" + files + ")");
  }
  if (!spec.commits.empty()) add_git(git_range_patches(spec.git_repo, spec.commits, (cache / "patches" / "commits").string()));
  if (!spec.series.empty()) {
    Series s = mbox_patches(spec.series, (cache / "patches" / "series" / short_hash(core::sha256_file(spec.series))).string());
    add_git(s.patches);
    // The base the series says it was written on (git format-patch --base),
    // beside the base it is applied to.
    if (!s.base_commit.empty()) {
      if (base_commit == s.base_commit)
        in.source_name += ", the series' base-commit";
      else
        in.source_name += (in.source_name.empty() ? "" : "; ") + std::string("the series names base-commit ") +
                          s.base_commit.substr(0, 12) + (base_commit.empty() ? "" : ", not this base");
    }
  }
  for (const auto& p : spec.patches) {
    in.patches.emplace_back(fs::path(p).filename().string(), core::sha256_file(p));
    in.patch_paths.push_back(p);
    in.patch_labels.push_back(fs::path(p).filename().string());
  }
  auto add_frags = [&](const std::vector<std::string>& list) {
    for (const auto& f : list) in.fragments.emplace_back(fs::path(f).filename().string(), core::sha256_file(f));
  };
  add_frags(spec.fragments);
  for (const auto& [a, list] : spec.arch_fragments)
    if (a == arch) add_frags(list);
  if (!variant.empty()) {
    bool found = false;
    for (const auto& [v, list] : spec.variants)
      if (v == variant) {
        add_frags(list);
        found = true;
      }
    if (!found) {
      std::vector<std::string> names;
      for (const auto& [v, l] : spec.variants) names.push_back(v);
      std::string msg = "kernel " + spec.name + " has no variant '" + variant + "'";
      if (auto s = core::suggest(variant, names)) msg += ", did you mean '" + *s + "'?";
      throw BuildError(msg);
    }
  }
  return in;
}

std::vector<std::string> Builder::plumbing_patches(const std::string& arch, const std::string& version) const {
  std::vector<std::string> out;
  if (arch != "um" || m_options.harness_patch_dir.empty()) return out;
  const fs::path dir = fs::path(m_options.harness_patch_dir) / "uml";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().extension() == ".patch") out.push_back(e.path().string());
  if (!version.empty())
    for (const auto& e : fs::directory_iterator(dir / version, ec))
      if (e.path().extension() == ".patch") out.push_back(e.path().string());
  std::sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) {
    const fs::path fa = fs::path(a).filename(), fb = fs::path(b).filename();
    return fa != fb ? fa < fb : a < b;   // (the every-version one first, by path)
  });
  return out;
}

std::string kernel_version(const std::string& makefile) {
  std::string version, patchlevel;
  for (const auto& line : core::split(makefile, '\n')) {
    const auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = core::trim(line.substr(0, eq)), value = core::trim(line.substr(eq + 1));
    if (key == "VERSION" && version.empty()) version = value;
    if (key == "PATCHLEVEL" && patchlevel.empty()) patchlevel = value;
    if (!version.empty() && !patchlevel.empty()) break;
  }
  const auto digits = [](const std::string& v) { return !v.empty() && v.find_first_not_of("0123456789") == std::string::npos; };
  return digits(version) && digits(patchlevel) ? version + "." + patchlevel : "";
}

std::string debian_source_tarball(const std::string& package) {
  std::string found;
  for (const char* ext : {".tar.xz", ".tar.bz2", ".tar.gz"}) {
    std::string cand = "/usr/src/" + package + ext;
    if (fs::exists(cand)) found = cand;
  }
  return found;
}

// A source's directory under src/ (extracted tarball, exported commit), by its identity.
static std::string source_dir_name(const std::string& identity) { return short_hash(core::sha256_hex(identity)); }

std::string Builder::pristine_source(const core::KernelSpec& spec, const std::string& identity) {
  const bool commit = core::starts_with(identity, "git commit ");
  const std::string& source = commit ? spec.git_repo : spec.source;
  if (!commit && fs::is_directory(source)) return source;
  fs::path dir = fs::path(m_options.cache_dir) / "src" / source_dir_name(identity);
  if (fs::exists(dir / ".kab-complete")) return dir.string();
  fs::create_directories(dir.parent_path());
  fs::path lock_file = dir;
  lock_file += ".lock";
  FileLock lock(lock_file, [&] {
    if (m_options.progress) m_options.progress({"wait for another kab extracting " + source, 0, 0, 0});
  });
  if (fs::exists(dir / ".kab-complete")) return dir.string();
  fs::path tmp = dir;
  tmp += ".tmp" + std::to_string(::getpid());
  fs::remove_all(tmp);
  if (commit) {
    if (m_options.progress) m_options.progress({"export " + identity.substr(11, 12) + " of " + source, 0, 0, 0});
    try {
      git_export(source, identity.substr(11), tmp.string());
    } catch (...) {
      fs::remove_all(tmp);
      throw;
    }
    write_text(tmp / ".kab-complete", identity + "\n");
    fs::remove_all(dir);
    fs::rename(tmp, dir);
    return dir.string();
  }
  std::string tarball = source;
  if (core::starts_with(source, "linux-source-")) {
    tarball = debian_source_tarball(source);
    if (tarball.empty()) throw BuildError("no tarball of " + source + " under /usr/src (make deps installs it)");
  }
  if (m_options.progress) m_options.progress({"extract " + tarball, 0, 0, 0});
  fs::create_directories(tmp);
  proc::Options o;
  o.argv = {"tar", "-xf", tarball, "-C", tmp.string(), "--strip-components=1"};
  proc::Result r = proc::run(o);
  if (!r.ok()) {
    fs::remove_all(tmp);
    throw BuildError("cannot extract " + tarball + ": tar " + r.describe() + "\n" + r.tail);
  }
  write_text(tmp / ".kab-complete", identity + "\n");
  fs::remove_all(dir);
  fs::rename(tmp, dir);
  return dir.string();
}

// One build as it goes through the stages of Builder::build.
struct Builder::BuildState {
  BuildState(const core::KernelSpec& spec, const std::string& arch, const std::string& variant)
      : spec(spec), arch(arch), variant(variant) {}

  const core::KernelSpec& spec;
  std::string arch, variant;
  double t0 = 0;                  // core::now_s() when the build began
  BuildInputs in;
  std::string input_hash;
  std::string label;              // "name+variant (arch)"
  std::string explain;            // why it is (or is not) built
  fs::path cache, last_inputs_file, index_file;
  std::string pristine;           // the extracted source the lane links to
  fs::path lane, src, out, log;
  std::vector<std::pair<std::string, std::string>> env;   // Kbuild environment
  std::vector<std::string> make_base;                     // make -C … O=… ARCH=… [CC=ccache gcc]
  std::string config_hash, key;   // of the final .config; the artifact's cache key
  fs::path art;                   // cache/kernels/<key>
  double cpu_s = 0;               // of the compile
  int objects = 0;                // compile steps of this build
  int expected = -1;              // compile steps known in advance (an incremental build), -1 when not known
  // Wall seconds of each stage, in order ("inputs", "source", "work tree",
  // "patch", "config", "compile"; "wait" for the lane's lock), at least 0.05 s each.
  std::vector<std::pair<std::string, double>> steps;
  std::string step_name;
  double step_t0 = 0;
  void step(const std::string& next) {   // ends the current stage, begins `next` ("" : none)
    const double now = core::now_s();
    if (!step_name.empty() && now - step_t0 >= 0.05) steps.emplace_back(step_name, now - step_t0);
    step_name = next;
    step_t0 = now;
  }
};

core::KernelArtifact Builder::build(const core::KernelSpec& spec, const std::string& arch, const std::string& variant) {
  BuildState st = resolve_inputs(spec, arch, variant);
  core::KernelArtifact a = build_stages(st);
  // What this kernel was last asked to be, built now or found: the next
  // --explain compares with it.
  if (!a.fresh) write_text(st.last_inputs_file, inputs_json(st.in).dump(2));
  // Named as this definition names them: the same build may have been made
  // from commits and is now asked for as a series.
  a.source_name = st.in.source_name;
  a.patch_labels = st.in.patch_labels;
  return a;
}

core::KernelArtifact Builder::build_stages(BuildState& st) {
  const core::KernelSpec& spec = st.spec;
  // Fast path: these inputs were built before (checked again once the lane is
  // ours: another kab may have built them while this one waited).
  if (auto a = find_built_inputs(st, st.explain)) return *a;
  st.step("source");   // extracted or exported once, then found
  st.pristine = pristine_source(spec, st.in.source_identity);
  enter_lane(st);
  // Kbuild must never run twice in one tree: the lane stays locked until
  // build returns (or kab dies).
  st.step("wait");
  FileLock lock(st.lane / ".lock",
                [&] { report(st, "wait for another kab building in lane " + st.lane.filename().string()); });
  if (auto a = find_built_inputs(st, "built by another kab while this one waited")) return *a;
  st.step("work tree");   // linked once per lane, then switched
  prepare_lane(st);
  switch_source(st);
  st.step("patch");
  switch_patch_set(st);
  st.step("config");
  configure(st);
  if (auto a = find_built_config(st)) return *a;
  st.step("compile");
  compile(st);
  st.step("");
  return publish(st);
}

void Builder::report(const BuildState& st, const std::string& step, int done, int expected) const {
  if (m_options.progress) m_options.progress({step, done, expected, core::now_s() - st.t0});
}

Builder::BuildState Builder::resolve_inputs(const core::KernelSpec& spec, const std::string& arch,
                                            const std::string& variant) const {
  BuildState st(spec, arch, variant);
  st.t0 = core::now_s();
  st.step("inputs");   // resolved: refs, commits and mails as patches, a tree's files
  st.cache = m_options.cache_dir;
  st.in = inputs_of(spec, arch, variant);
  st.input_hash = st.in.hash();
  st.label = spec.name + (variant.empty() ? "" : "+" + variant) + " (" + arch + ")";
  st.last_inputs_file =
      st.cache / "last-inputs" / (spec.name + "-" + arch + (variant.empty() ? "" : "-" + variant) + ".json");
  st.index_file = st.cache / "index" / st.input_hash;
  st.explain = explain_inputs(st);
  return st;
}

std::string Builder::explain_inputs(const BuildState& st) const {
  if (!fs::exists(st.last_inputs_file)) return "no earlier build of " + st.label + " in " + st.cache.string();
  auto diffs = st.in.differences(inputs_from_json(json::parse(core::read_text(st.last_inputs_file))));
  if (diffs.empty()) return "inputs are those of the last build of " + st.label;
  std::string explain = "inputs changed since the last build of " + st.label + ":";
  for (const auto& d : diffs) explain += "\n  " + d;
  return explain;
}

std::optional<core::KernelArtifact> Builder::find_built_inputs(const BuildState& st, const std::string& why) const {
  if (m_options.force || !fs::exists(st.index_file)) return std::nullopt;
  std::string key = core::trim(core::read_text(st.index_file));
  if (!fs::exists(st.cache / "kernels" / key / "meta.json")) return std::nullopt;
  for (auto a : cached())
    if (a.key == key) {
      a.fresh = false;
      a.explain = "cached: " + why + "; artifact " + key.substr(0, 12) + " is up to date";
      return a;
    }
  return std::nullopt;
}

static std::string lane_source(const BuildInputs& in, const core::KernelSpec& spec) {
  // Every commit of every git repository shares a lane (a kernel is a kernel:
  // switching from one commit to another rewrites the files they differ in);
  // a plain directory has one lane wherever its content goes; a tarball or a
  // Debian package version is its own.
  if (core::starts_with(in.source_identity, "git commit ")) return "git";
  if (core::starts_with(in.source_identity, "tree:")) {
    std::error_code ec;
    auto dir = fs::weakly_canonical(spec.source, ec);
    return "tree " + (ec ? spec.source : dir.string());
  }
  return in.source_identity;
}

void Builder::enter_lane(BuildState& st) const {
  // The lane: one work tree and O= directory per (source's lane, arch, config inputs).
  core::Sha256 lh;
  lh.field(lane_source(st.in, st.spec)).field(st.arch).field(st.in.config_base);
  for (const auto& [n, d] : st.in.fragments) lh.field(n).field(d);
  st.lane = st.cache / "lanes" / short_hash(lh.hex());
  st.src = st.lane / "src";
  st.out = st.lane / "out";
  fs::create_directories(st.lane);
}

void Builder::prepare_lane(const BuildState& st) const {
  if (fs::exists(st.lane / ".src-complete")) return;
  report(st, "link work tree");
  fs::remove_all(st.src);
  fs::remove_all(st.out);
  fs::create_directories(st.lane);
  proc::Options o;
  o.argv = {"cp", "-al", st.pristine, st.src.string()};
  proc::Result r = proc::run(o);
  if (!r.ok()) {
    // Another file system (a directory source elsewhere): copies instead of links.
    fs::remove_all(st.src);
    report(st, "copy work tree");
    o.argv = {"cp", "-a", "--reflink=auto", st.pristine, st.src.string()};
    r = proc::run(o);
  }
  if (!r.ok()) throw BuildError("cannot make a work tree from " + st.pristine + ": " + r.describe() + "\n" + r.tail);
  write_text(st.lane / ".src-complete", "");
  write_text(st.lane / "state.json",
             json{{"source", st.in.source_identity}, {"patches", json::array()}, {"files", json::array()}}.dump());
}

void Builder::switch_source(BuildState& st) const {
  json state = json::parse(core::read_text(st.lane / "state.json"));
  // A lane from before lanes were shared holds its one source.
  if (!state.contains("source")) state["source"] = st.in.source_identity;
  const std::string was = state["source"].get<std::string>();
  if (was == st.in.source_identity) return;
  // The files the patch set changed are switch_patch_set's to put right.
  std::set<std::string> skip = {".kab-complete"};
  for (const auto& f : state["files"]) skip.insert(f.get<std::string>());
  // Two commits: the files git says they differ in. Anything else, or a
  // switch that was interrupted (source ""): every file compared.
  std::optional<std::vector<std::string>> only;
  const std::string commit = "git commit ";
  if (core::starts_with(was, commit) && core::starts_with(st.in.source_identity, commit) && !st.spec.git_repo.empty()) {
    auto [ok, names] = proc::capture({"git", "-C", st.spec.git_repo, "diff", "--name-only", "--no-renames", "-z",
                                      was.substr(commit.size()), st.in.source_identity.substr(commit.size())}, 600);
    if (ok) {
      only.emplace();
      for (const auto& n : core::split(names, '\0'))
        if (!n.empty()) only->push_back(n);
    }
  }
  const std::string from = was.empty() ? "an interrupted switch" : was;
  report(st, "switch work tree from " + from + (only ? " (" + std::to_string(only->size()) + " files differ)"
                                                      : " (comparing every file)"));
  // Until the switch is complete the lane says it holds no known source, and
  // no known patch set.
  state["source"] = "";
  state["patches"] = nullptr;
  write_text(st.lane / "state.json", state.dump());
  sync_work_tree(st.pristine, st.src.string(), only, skip);
  state["source"] = st.in.source_identity;
  write_text(st.lane / "state.json", state.dump());
}

void Builder::switch_patch_set(BuildState& st) const {
  // Plumbing first, then the definition's.
  std::vector<std::string> all_patches = st.in.plumbing_paths;
  all_patches.insert(all_patches.end(), st.in.patch_paths.begin(), st.in.patch_paths.end());
  json state = json::parse(core::read_text(st.lane / "state.json"));
  json want_patches = json::array();
  for (const auto& [n, d] : st.in.plumbing) want_patches.push_back(d);
  for (const auto& [n, d] : st.in.patches) want_patches.push_back(d);
  if (state["patches"] == want_patches) return;
  report(st, "patch");
  fs::path staging = st.lane / "staging";
  // Throws, leaving the tree as it was. A git source's patches (commits, a
  // series, the work tree's changes) may merge three-way, as git am -3.
  for (const auto& note : apply_patches_staged(st.pristine, all_patches, staging.string(), st.spec.git_repo)) {
    report(st, note);
    st.explain += "\n  " + note;
  }
  std::set<std::string> new_files;
  for (const auto& p : all_patches)
    for (const auto& f : patched_files(core::read_text(p))) new_files.insert(f);
  // Until the switch is complete the lane's state names every file it may
  // have touched, with no known patch set: an interrupted switch is undone
  // by the next.
  {
    json touched = state["files"];
    for (const auto& f : new_files) touched.push_back(f);
    write_text(st.lane / "state.json", json{{"source", state.value("source", st.in.source_identity)},
                                            {"patches", nullptr}, {"files", touched}}.dump());
  }
  // Restore what the previous patch set changed, then install the new files.
  for (const auto& f : state["files"]) {
    std::string rel = f.get<std::string>();
    if (new_files.count(rel)) continue;
    if (same_content(fs::path(st.pristine) / rel, st.src / rel)) continue;
    if (fs::exists(fs::path(st.pristine) / rel)) copy_file_fresh(fs::path(st.pristine) / rel, st.src / rel);
    else fs::remove(st.src / rel);
  }
  for (const auto& rel : new_files) {
    fs::path staged = staging / rel;
    // A file the lane already holds as staged keeps its mtime: another patch
    // set that leaves it as it is recompiles nothing there.
    if (fs::exists(staged) && same_content(staged, st.src / rel)) continue;
    if (fs::exists(staged)) copy_file_fresh(staged, st.src / rel);
    else fs::remove(st.src / rel);   // deleted by the patch
  }
  fs::remove_all(staging);
  json files = json::array();
  for (const auto& f : new_files) files.push_back(f);
  write_text(st.lane / "state.json",
             json{{"source", state.value("source", st.in.source_identity)}, {"patches", want_patches}, {"files", files}}.dump());
}

double Builder::run_make(const BuildState& st, const std::vector<std::string>& extra, const std::string& step,
                         int expected) const {
  proc::Options o;
  o.argv = st.make_base;
  o.argv.insert(o.argv.end(), extra.begin(), extra.end());
  o.env = st.env;
  o.output_path = st.log.string();
  std::size_t log_start = fs::file_size(st.log);
  proc::Child child(o);
  while (!child.wait(0.5)) {
    if (proc::interrupted_flag()) {
      child.stop();
      throw BuildError("interrupted while building " + st.label);
    }
    if (m_options.progress && expected >= 0) {
      std::ifstream f(st.log);
      f.seekg(static_cast<std::streamoff>(log_start));
      std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      report(st, step, count_compiled(text), expected);
    }
  }
  if (!child.result().ok())
    throw BuildError("building " + st.label + " failed (" + step + ", make " + child.result().describe() +
                     "); last lines of " + st.log.string() + ":\n" + proc::tail_file(st.log.string(), 30));
  return child.result().usage.user_s + child.result().usage.sys_s;
}

void Builder::configure(BuildState& st) const {
  // Kbuild environment: reproducible version strings, ccache shared across lanes.
  st.env = {{"KBUILD_BUILD_TIMESTAMP", "kab"}, {"KBUILD_BUILD_USER", "kab"}, {"KBUILD_BUILD_HOST", "kab"},
            {"LC_ALL", "C"}};
  st.make_base = {"make", "-C", st.src.string(), "O=" + st.out.string(), "ARCH=" + st.arch};
  if (m_options.use_ccache && !proc::which("ccache").empty()) {
    st.make_base.push_back("CC=ccache gcc");
    st.make_base.push_back("HOSTCC=ccache gcc");
    st.env.push_back({"CCACHE_BASEDIR", (st.cache / "lanes").string()});
    st.env.push_back({"CCACHE_NOHASHDIR", "1"});
    st.env.push_back({"CCACHE_SLOPPINESS", "time_macros"});
  }
  st.log = st.lane / "build.log";
  fs::create_directories(st.out);
  { std::ofstream(st.log, std::ios::trunc) << "kab: building " << st.label << "\n"; }

  // Base target, fragments in order, olddefconfig, then check. Made beside
  // the lane's .config, which is replaced only when it differs: an unchanged
  // .config keeps its mtime, and Kbuild rebuilds nothing for it (UML
  // regenerates arch/um/kernel/config.c, and relinks, whenever it is newer).
  report(st, "config");
  const std::string next_config = ".config.kab-next";
  const std::string kconfig = "KCONFIG_CONFIG=" + next_config;
  fs::remove(st.out / next_config);
  run_make(st, {kconfig, st.spec.config_base}, "config", -1);
  std::vector<Wanted> wanted;
  {
    std::ofstream cfg(st.out / next_config, std::ios::app);
    std::vector<std::string> frag_paths = st.spec.fragments;
    for (const auto& [a, list] : st.spec.arch_fragments)
      if (a == st.arch) frag_paths.insert(frag_paths.end(), list.begin(), list.end());
    for (const auto& [v, list] : st.spec.variants)
      if (v == st.variant) frag_paths.insert(frag_paths.end(), list.begin(), list.end());
    for (const auto& f : frag_paths) {
      std::string text = core::read_text(f);
      cfg << "\n# kab: fragment " << fs::path(f).filename().string() << "\n" << text << "\n";
      auto w = read_fragment(text, fs::path(f).filename().string());
      wanted.insert(wanted.end(), w.begin(), w.end());
    }
  }
  run_make(st, {kconfig, "olddefconfig"}, "config", -1);
  const std::string final_config = core::read_text(st.out / next_config);
  if (fs::exists(st.out / ".config") && core::read_text(st.out / ".config") == final_config) {
    fs::remove(st.out / next_config);
  } else {
    fs::rename(st.out / next_config, st.out / ".config");
  }
  fs::remove(st.out / (next_config + ".old"));
  auto dropped = dropped_options(wanted, final_config);
  if (!dropped.empty()) {
    std::string msg = "the configuration of " + st.label + " lost options its fragments asked for:";
    for (const auto& d : dropped) {
      msg += "\n  " + d.wanted.option + "=" + d.wanted.value + " (from " + d.wanted.fragment + ") is " +
             (d.got == "n" ? std::string("not set") : "=" + d.got);
      std::string dep = kconfig_depends(st.src.string(), d.wanted.option);
      if (!dep.empty()) msg += "; Kconfig: " + dep;
    }
    throw BuildError(msg);
  }
  st.config_hash = core::sha256_hex(final_config);
  st.key = core::Sha256().field(st.input_hash).field(st.config_hash).hex();
  st.art = st.cache / "kernels" / st.key;
}

std::optional<core::KernelArtifact> Builder::find_built_config(const BuildState& st) const {
  if (m_options.force || !fs::exists(st.art / "meta.json")) return std::nullopt;
  write_text(st.index_file, st.key + "\n");
  for (auto c : cached())
    if (c.key == st.key) {
      c.explain = "cached: " + st.explain + "; the final .config matches artifact " + st.key.substr(0, 12);
      return c;
    }
  return std::nullopt;
}

void Builder::compile(BuildState& st) const {
  const fs::path lane_objects = st.lane / "objects";
  const fs::path arch_objects = st.cache / ("expected-objects-" + st.arch);
  const fs::path built_config = st.lane / "built.config";
  int expected = 0;
  if (fs::exists(built_config)) {
    // The lane holds a build, complete or cut short since: what make will
    // find out of date (a source the switch rewrote, an object a failed
    // compile left missing) or reading an option that changed recompiles,
    // and nothing else.
    // Options as Kbuild last applied them (include/config/auto.conf, written
    // by syncconfig also in a compile that failed after it), else as the
    // last complete build had them.
    const fs::path applied = st.out / "include/config/auto.conf";
    st.expected = objects_out_of_date(
        st.out.string(), changed_options(core::read_text(fs::exists(applied) ? applied : built_config),
                                         core::read_text(st.out / ".config")));
    // An object that changes relinks vmlinux: the link's own objects
    // (kallsyms, version stamp, bzImage's), as many as the last incremental
    // link here compiled, or of this arch anywhere (a cold build compiles all
    // of arch/x86/boot after vmlinux.o, a relink only some).
    if (st.expected > 0) {
      const fs::path lane_link = st.lane / "link-objects", arch_link = st.cache / ("link-objects-" + st.arch);
      st.expected += std::atoi(core::read_text(fs::exists(lane_link) ? lane_link : arch_link).c_str());
    }
    expected = st.expected;
  } else if (fs::exists(lane_objects)) {
    // Otherwise (a cold build) the count of the last cold build here, or of this arch.
    expected = std::stoi(core::trim(core::read_text(lane_objects)));
  } else if (fs::exists(arch_objects)) {
    expected = std::stoi(core::trim(core::read_text(arch_objects)));
  }
  std::vector<std::string> targets = st.arch == "um" ? std::vector<std::string>{"linux"}
                                                     : std::vector<std::string>{"vmlinux", "bzImage"};
  std::vector<std::string> args = {"-j" + std::to_string(m_options.jobs)};
  args.insert(args.end(), targets.begin(), targets.end());
  std::size_t log_before = fs::file_size(st.log);
  st.cpu_s = run_make(st, args, "compile", expected);
  std::string compile_log;
  {
    std::ifstream f(st.log);
    f.seekg(static_cast<std::streamoff>(log_before));
    compile_log.assign((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  }
  st.objects = count_compiled(compile_log);
  if (auto link = compile_log.find("\n  LD      vmlinux.o\n"); link != std::string::npos && st.expected >= 0) {
    const std::string n = std::to_string(count_compiled(compile_log.substr(link))) + "\n";
    write_text(st.lane / "link-objects", n);
    write_text(st.cache / ("link-objects-" + st.arch), n);
  }
  // A cold build's count is the best estimate for the next cold build of this arch.
  if (st.expected < 0 && (!fs::exists(lane_objects) || st.objects > expected))
    write_text(lane_objects, std::to_string(std::max(st.objects, expected)) + "\n");
  fs::copy_file(st.out / ".config", built_config, fs::copy_options::overwrite_existing);
  if (!fs::exists(arch_objects) && st.objects > 100) write_text(arch_objects, std::to_string(st.objects) + "\n");
}

core::KernelArtifact Builder::publish(const BuildState& st) const {
  auto [rok, release] = proc::capture(
      {"make", "-s", "-C", st.src.string(), "O=" + st.out.string(), "ARCH=" + st.arch, "kernelrelease"});

  // Atomically: a temp directory renamed into place.
  report(st, "store artifact");
  fs::path tmp = st.cache / "kernels" / (".tmp-" + st.key.substr(0, 12) + "-" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  core::KernelArtifact a;
  a.key = st.key;
  a.name = st.spec.name;
  a.variant = st.variant;
  a.arch = st.arch;
  a.dir = st.art.string();
  a.config_hash = st.config_hash;
  a.source_identity = st.in.source_identity;
  a.source_name = st.in.source_name;
  a.patch_labels = st.in.patch_labels;
  a.release = rok ? core::trim(release) : "";
  for (const auto& [n, d] : st.in.patches) a.patch_hashes.push_back(d);
  for (const auto& [n, d] : st.in.plumbing) a.plumbing_patches.push_back(n + " " + d);
  a.fresh = true;
  a.wall_s = core::now_s() - st.t0;
  a.cpu_s = st.cpu_s;
  a.objects_compiled = st.objects;
  a.objects_expected = st.expected;
  a.steps = st.steps;
  a.built_at = core::iso_now();
  a.explain = "built: " + st.explain;
  if (st.arch == "um") {
    fs::copy_file(st.out / "linux", tmp / "linux");
  } else {
    fs::copy_file(st.out / "vmlinux", tmp / "vmlinux");
    fs::copy_file(st.out / "arch/x86/boot/bzImage", tmp / "bzImage");
  }
  fs::copy_file(st.out / ".config", tmp / "config");
  fs::copy_file(st.log, tmp / "build.log");
  json meta;
  meta["key"] = st.key;
  meta["name"] = st.spec.name;
  meta["variant"] = st.variant;
  meta["arch"] = st.arch;
  meta["release"] = a.release;
  meta["config_hash"] = st.config_hash;
  meta["inputs"] = inputs_json(st.in);
  meta["inputs"].erase("source_files");   // a plain tree's manifest: last-inputs keeps it for --explain
  meta["built_at"] = a.built_at;
  meta["wall_s"] = a.wall_s;
  meta["cpu_s"] = a.cpu_s;
  meta["objects_compiled"] = st.objects;
  meta["objects_expected"] = st.expected;
  meta["steps"] = json::array();
  for (const auto& [name, s] : st.steps) meta["steps"].push_back({{"step", name}, {"wall_s", s}});
  meta["lane"] = st.lane.filename().string();
  write_text(tmp / "meta.json", meta.dump(2));
  fs::remove_all(st.art);
  fs::rename(tmp, st.art);
  write_text(st.index_file, st.key + "\n");
  write_text(st.last_inputs_file, inputs_json(st.in).dump(2));
  a.dir = st.art.string();
  a.config_path = (st.art / "config").string();
  if (st.arch == "um") a.uml_binary = (st.art / "linux").string();
  else {
    a.vmlinux = (st.art / "vmlinux").string();
    a.bzimage = (st.art / "bzImage").string();
  }
  report(st, "done", st.objects, st.objects);
  return a;
}

std::vector<core::KernelArtifact> Builder::cached() const {
  std::vector<core::KernelArtifact> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(fs::path(m_options.cache_dir) / "kernels", ec)) {
    fs::path meta = e.path() / "meta.json";
    if (!fs::exists(meta)) continue;
    json j = json::parse(core::read_text(meta), nullptr, false);
    if (j.is_discarded()) continue;
    core::KernelArtifact a;
    a.key = j.value("key", "");
    a.name = j.value("name", "");
    a.variant = j.value("variant", "");
    a.arch = j.value("arch", "");
    a.release = j.value("release", "");
    a.dir = e.path().string();
    a.config_hash = j.value("config_hash", "");
    a.config_path = (e.path() / "config").string();
    a.wall_s = j.value("wall_s", 0.0);
    a.cpu_s = j.value("cpu_s", 0.0);
    a.objects_compiled = j.value("objects_compiled", 0);
    a.objects_expected = j.value("objects_expected", -1);
    for (const auto& s : j.value("steps", json::array())) a.steps.emplace_back(s.value("step", ""), s.value("wall_s", 0.0));
    a.built_at = j.value("built_at", "");
    if (j.contains("inputs")) {
      a.source_identity = j["inputs"].value("source_identity", "");
      for (const auto& p : j["inputs"].value("patches", json::array())) a.patch_hashes.push_back(p["sha256"]);
      for (const auto& p : j["inputs"].value("plumbing", json::array()))
        a.plumbing_patches.push_back(p["name"].get<std::string>() + " " + p["sha256"].get<std::string>());
    }
    if (a.arch == "um") a.uml_binary = (e.path() / "linux").string();
    else {
      a.vmlinux = (e.path() / "vmlinux").string();
      a.bzimage = (e.path() / "bzImage").string();
    }
    out.push_back(a);
  }
  std::sort(out.begin(), out.end(), [](const auto& x, const auto& y) { return x.name + x.key < y.name + y.key; });
  return out;
}

int Builder::clean(const std::string& name) {
  int removed = 0;
  for (const auto& a : cached())
    if (name.empty() || a.name == name) {
      fs::remove_all(a.dir);
      ++removed;
    }
  fs::path cache = m_options.cache_dir;
  if (name.empty()) {
    for (const char* d : {"lanes", "index", "last-inputs", "src", "patches"}) fs::remove_all(cache / d);
  } else {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(cache / "index", ec)) {
      std::string key = core::trim(core::read_text(e.path()));
      if (!fs::exists(cache / "kernels" / key)) fs::remove(e.path());
    }
  }
  return removed;
}

SourcesCleaned Builder::clean_sources() {
  SourcesCleaned done;
  const fs::path cache = m_options.cache_dir;
  // The sources lanes hold now (a lane switching away from one no longer needs it).
  std::set<std::string> held;
  std::error_code ec;
  for (const auto& lane : fs::directory_iterator(cache / "lanes", ec)) {
    json state = json::parse(core::read_text((lane.path() / "state.json").string()), nullptr, false);
    if (state.is_object() && state.contains("source") && state["source"].is_string())
      held.insert(source_dir_name(state["source"].get<std::string>()));
    else if (!state.is_discarded())
      held.insert("*");   // a lane from before lanes named their source: keep every source
  }
  auto size_of = [](const fs::path& dir) {
    std::uintmax_t bytes = 0;
    std::error_code e;
    for (auto it = fs::recursive_directory_iterator(dir, e); !e && it != fs::recursive_directory_iterator(); it.increment(e))
      if (it->is_regular_file(e) && !it->is_symlink(e)) bytes += it->file_size(e);
    return bytes;
  };
  if (!held.count("*"))
    for (const auto& e : fs::directory_iterator(cache / "src", ec)) {
      const std::string n = e.path().filename().string();
      if (!e.is_directory() || n.find('.') != std::string::npos || held.count(n)) continue;
      // Not while another kab extracts or exports it.
      const int fd = ::open((e.path().string() + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
      if (fd < 0) continue;
      if (::flock(fd, LOCK_EX | LOCK_NB) == 0) {
        done.bytes += size_of(e.path());
        fs::remove_all(e.path());
        fs::remove(e.path().string() + ".lock");
        ++done.sources;
      }
      ::close(fd);
    }
  if (fs::exists(cache / "patches")) {
    done.bytes += size_of(cache / "patches");
    fs::remove_all(cache / "patches");
  }
  return done;
}

}  // namespace kab::kernel
