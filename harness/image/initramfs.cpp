#include "image/initramfs.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include "core/hash.h"
#include "core/text.h"
#include "proc/runner.h"

namespace fs = std::filesystem;

namespace kab::image {

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string hex8(unsigned long v) {
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08lX", v);
  return buf;
}

}  // namespace

void CpioWriter::entry(const std::string& path, unsigned mode, const std::string& data) {
  std::string name = path;
  while (!name.empty() && name[0] == '/') name.erase(0, 1);
  std::string h = "070701";
  h += hex8(m_ino++);
  h += hex8(mode);
  h += hex8(0) + hex8(0);        // uid, gid
  h += hex8(1);                  // nlink
  h += hex8(0);                  // mtime: fixed, so the archive is reproducible
  h += hex8(data.size());
  h += hex8(0) + hex8(0) + hex8(0) + hex8(0);   // dev, rdev
  h += hex8(name.size() + 1);
  h += hex8(0);                  // check
  m_out += h;
  m_out += name;
  m_out.push_back('\0');
  while (m_out.size() % 4) m_out.push_back('\0');
  m_out += data;
  while (m_out.size() % 4) m_out.push_back('\0');
}

void CpioWriter::directory(const std::string& path, unsigned mode) { entry(path, S_IFDIR | mode, ""); }
void CpioWriter::file(const std::string& path, const std::string& data, unsigned mode) { entry(path, S_IFREG | mode, data); }
void CpioWriter::symlink(const std::string& path, const std::string& target) { entry(path, S_IFLNK | 0777, target); }

std::string CpioWriter::finish() {
  entry("TRAILER!!!", 0, "");
  return std::move(m_out);
}

std::vector<std::string> InitramfsBuilder::libraries() const {
  // key() and tree() both need them: ldd runs once per builder.
  if (m_libraries) return *m_libraries;
  auto [ok, out] = proc::capture({"ldd", m_o.fio});
  if (!ok) throw std::runtime_error("ldd " + m_o.fio + " failed: " + core::trim(out) + " (install fio: make deps)");
  std::vector<std::string> libs;
  std::istringstream ss(out);
  std::string line;
  while (std::getline(ss, line)) {
    auto arrow = line.find("=> ");
    std::string path = arrow != std::string::npos ? line.substr(arrow + 3) : core::trim(line);
    path = path.substr(0, path.find(" ("));
    path = core::trim(path);
    if (!path.empty() && path[0] == '/') libs.push_back(path);
  }
  m_libraries = libs;
  return libs;
}

std::string InitramfsBuilder::key() const {
  core::Sha256 h;
  h.field("kab-initramfs-v2");   // v2: busybox applet links in the tree
  h.field(core::sha256_file(m_o.agent_path)).field(core::sha256_file(m_o.busybox)).field(core::sha256_file(m_o.fio));
  if (!m_o.append_tool.empty()) h.field("kab-append").field(core::sha256_file(m_o.append_tool));
  // Libraries by path, size and mtime: hashing ~100 MB on every run would cost seconds.
  for (const auto& l : libraries()) {
    struct stat st {};
    ::stat(l.c_str(), &st);
    h.field(l).field(std::to_string(st.st_size)).field(std::to_string(st.st_mtime));
  }
  return h.hex();
}

void InitramfsBuilder::require_inputs() const {
  for (const auto& f : {m_o.agent_path, m_o.busybox, m_o.fio})
    if (!fs::exists(f)) throw std::runtime_error("guest image: " + f + " is missing (make deps installs busybox-static and fio)");
  if (!m_o.append_tool.empty() && !fs::exists(m_o.append_tool))
    throw std::runtime_error("guest image: " + m_o.append_tool + " is missing (make kab builds it)");
}

std::vector<std::string> busybox_applets(const std::string& busybox) {
  auto [ok, out] = proc::capture({busybox, "--list"});
  if (!ok) throw std::runtime_error(busybox + " --list failed: " + core::trim(out));
  std::vector<std::string> names;
  std::istringstream ss(out);
  std::string line;
  while (std::getline(ss, line)) {
    line = core::trim(line);
    if (!line.empty() && line.find('/') == std::string::npos) names.push_back(line);
  }
  return names;
}

std::vector<TreeEntry> InitramfsBuilder::tree() const {
  require_inputs();
  std::vector<TreeEntry> t;
  std::set<std::string> dirs;
  auto dir = [&](const std::string& d) {
    if (dirs.insert(d).second) t.push_back({TreeEntry::Kind::directory, d, "", "", 0755});
  };
  auto ensure_dirs = [&](const std::string& p) {
    std::vector<std::string> chain;
    for (fs::path d = fs::path(p).parent_path(); !d.empty() && d != "/"; d = d.parent_path()) chain.push_back(d.string());
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) dir(*it);
  };
  for (const char* d : {"/bin", "/sbin", "/usr", "/usr/bin", "/usr/sbin", "/proc", "/sys", "/dev", "/tmp", "/mnt",
                        "/mnt/kab", "/kab", "/kab/sample", "/etc", "/root"})
    dir(d);
  t.push_back({TreeEntry::Kind::file, "/init", m_o.agent_path, "", 0755});
  t.push_back({TreeEntry::Kind::file, "/bin/busybox", m_o.busybox, "", 0755});
  // The applet links are part of the tree, not made by the agent: the disk
  // image's root is read-only in the guest.
  // Debian's busybox lists itself among its applets: never a link over the binary.
  for (const auto& a : busybox_applets(m_o.busybox))
    if ("/bin/" + a != "/bin/busybox") t.push_back({TreeEntry::Kind::symlink, "/bin/" + a, "", "busybox", 0777});
  t.push_back({TreeEntry::Kind::file, "/usr/bin/fio", m_o.fio, "", 0755});
  // Linked statically: no library of its own to carry.
  if (!m_o.append_tool.empty()) t.push_back({TreeEntry::Kind::file, "/usr/bin/kab-append", m_o.append_tool, "", 0755});
  for (const auto& lib : libraries()) {
    ensure_dirs(lib);
    t.push_back({TreeEntry::Kind::file, lib, fs::canonical(lib).string(), "", 0755});
  }
  t.push_back({TreeEntry::Kind::file, "/etc/passwd", "", "root:x:0:0:root:/root:/bin/sh\n", 0644});
  t.push_back({TreeEntry::Kind::file, "/etc/group", "", "root:x:0:\n", 0644});
  return t;
}

core::GuestImage InitramfsBuilder::build() {
  require_inputs();
  std::string k = key();
  fs::path dir = fs::path(m_o.cache_dir) / "images";
  fs::path path = dir / ("initramfs-" + k.substr(0, 16) + ".cpio");
  if (fs::exists(path)) return {path.string(), k, "initramfs"};
  fs::create_directories(dir);
  CpioWriter w;
  for (const auto& e : tree()) {
    switch (e.kind) {
      case TreeEntry::Kind::directory: w.directory(e.path, e.mode); break;
      case TreeEntry::Kind::file: w.file(e.path, e.source.empty() ? e.data : read_file(e.source), e.mode); break;
      case TreeEntry::Kind::symlink: w.symlink(e.path, e.data); break;
    }
  }
  std::string archive = w.finish();
  fs::path tmp = path;
  tmp += ".tmp" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(archive.data(), static_cast<std::streamsize>(archive.size()));
    if (!out) throw std::runtime_error("cannot write " + tmp.string());
  }
  fs::rename(tmp, path);
  return {path.string(), k, "initramfs"};
}

std::string sample_cpio(const std::vector<std::pair<std::string, std::string>>& env, const std::string& job_text) {
  CpioWriter w;
  w.directory("/kab");
  w.directory("/kab/sample");
  std::string env_text;
  for (const auto& [k, v] : env) {
    std::string quoted = "'";
    for (char c : v) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    env_text += k + "=" + quoted + "'\n";
  }
  w.file("/kab/sample/env", env_text);
  w.file("/kab/sample/job.fio", job_text);
  return w.finish();
}

std::string InitramfsBuilder::sample_image(const core::GuestImage& base, const core::SampleEnv& env,
                                          const std::string& job_text, const std::string& work_dir) {
  fs::create_directories(work_dir);
  const std::string path = work_dir + "/initrd.cpio";
  write_combined(base.path, sample_cpio(env, job_text), path);
  return path;
}

void write_sample_disk(const std::string& sample_archive, const std::string& out_path) {
  std::string padded = sample_archive;
  padded.resize((padded.size() + k_sector - 1) / k_sector * k_sector, '\0');
  std::ofstream out(out_path, std::ios::binary | std::ios::trunc);
  out.write(padded.data(), static_cast<std::streamsize>(padded.size()));
  if (!out) throw std::runtime_error("cannot write " + out_path);
}

void write_combined(const std::string& base_path, const std::string& sample_archive, const std::string& out_path) {
  std::ifstream in(base_path, std::ios::binary);
  std::ofstream out(out_path, std::ios::binary | std::ios::trunc);
  if (!in || !out) throw std::runtime_error("cannot combine " + base_path + " into " + out_path);
  out << in.rdbuf();
  out.write(sample_archive.data(), static_cast<std::streamsize>(sample_archive.size()));
  if (!out) throw std::runtime_error("cannot write " + out_path);
}

}  // namespace kab::image
