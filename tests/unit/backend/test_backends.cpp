// The backend launchers: which virtio-fs daemon kab finds, how it spells each
// daemon's options, and a scenario's own binary.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "backend/backends.h"

namespace fs = std::filesystem;
using namespace kab;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    std::string t = (fs::temp_directory_path() / "kab-backends-XXXXXX").string();
    path = ::mkdtemp(t.data());
  }
  ~TempDir() { fs::remove_all(path); }
};

fs::path script(const fs::path& p, const std::string& body) {
  std::ofstream(p) << "#!/bin/sh\n" << body;
  fs::permissions(p, fs::perms::owner_all);
  return p;
}

core::BackendSpec spec() {
  core::BackendSpec s;
  s.cache = "none";
  s.writeback = true;
  s.sandbox = "none";
  s.thread_pool_size = 4;
  return s;
}

}  // namespace

TEST_CASE("virtiofsd options in each daemon's spelling", "[backend]") {
  using V = std::vector<std::string>;
  CHECK(backend::virtiofsd_arguments(backend::VirtiofsdFlavour::qemu_c, spec(), "/s.sock", "/share") ==
        V{"--socket-path=/s.sock", "-o", "source=/share", "-o", "cache=none", "-o", "writeback", "-o",
          "sandbox=chroot", "--thread-pool-size=4"});
  CHECK(backend::virtiofsd_arguments(backend::VirtiofsdFlavour::rust, spec(), "/s.sock", "/share") ==
        V{"--socket-path=/s.sock", "--shared-dir=/share", "--cache=never", "--writeback", "--sandbox=none",
          "--thread-pool-size=4"});
  auto s = spec();
  s.cache = "auto";
  s.writeback = false;
  s.sandbox = "namespace";
  s.thread_pool_size = 0;
  CHECK(backend::virtiofsd_arguments(backend::VirtiofsdFlavour::rust, s, "/s.sock", "/share") ==
        V{"--socket-path=/s.sock", "--shared-dir=/share", "--cache=auto", "--sandbox=namespace"});
  CHECK(backend::virtiofsd_arguments(backend::VirtiofsdFlavour::qemu_c, s, "/s.sock", "/share") ==
        V{"--socket-path=/s.sock", "-o", "source=/share", "-o", "cache=auto", "-o", "no_writeback", "-o",
          "sandbox=namespace"});
}

TEST_CASE("which daemon a binary is, from its --help", "[backend]") {
  TempDir d;
  // The Rust daemon's --help lists --shared-dir; QEMU's C daemon's lists -o source=.
  auto rust = script(d.path / "rust-virtiofsd", "echo 'Usage: virtiofsd [OPTIONS] --shared-dir <shared-dir>'\n");
  auto c = script(d.path / "c-virtiofsd", "echo 'usage: virtiofsd [options]'; echo '    -o source=PATH'\n");
  CHECK(backend::virtiofsd_flavour(rust.string()) == backend::VirtiofsdFlavour::rust);
  CHECK(backend::virtiofsd_flavour(c.string()) == backend::VirtiofsdFlavour::qemu_c);
  // The daemon Debian 12 installs is QEMU's.
  if (fs::exists("/usr/lib/qemu/virtiofsd"))
    CHECK(backend::virtiofsd_flavour("/usr/lib/qemu/virtiofsd") == backend::VirtiofsdFlavour::qemu_c);

  SECTION("a backend runs the scenario's binary, in its spelling") {
    backend::ProcessBackend b(*backend::find_launcher("virtiofsd"));
    auto s = spec();
    s.binary = rust.string();
    auto argv = b.command(s, "/s.sock", "/share", "/stats.json");
    REQUIRE(argv.size() > 2);
    CHECK(argv[0] == rust.string());
    CHECK(argv[2] == "--shared-dir=/share");
    s.binary.clear();
    argv = b.command(s, "/s.sock", "/share", "/stats.json");
    CHECK(argv[0] == backend::default_virtiofsd());
  }
}

TEST_CASE("where kab looks for virtiofsd, and why a binary cannot run", "[backend]") {
  TempDir d;
  auto good = script(d.path / "virtiofsd", "exit 0\n");
  std::ofstream(d.path / "plain") << "data";
  fs::permissions(d.path / "plain", fs::perms::owner_read | fs::perms::owner_write);
  CHECK(backend::executable_problem(good.string()) == "");
  CHECK(backend::executable_problem((d.path / "missing").string()) == "does not exist");
  CHECK(backend::executable_problem((d.path / "plain").string()) == "is not executable");
  CHECK(backend::executable_problem(d.path.string()) == "is a directory");
  CHECK(backend::executable_problem("sh") == "");
  CHECK(backend::executable_problem("no-such-daemon-kab") == "is not on PATH");

  // PATH first, then the Rust daemon's place, then QEMU's.
  const char* old = std::getenv("PATH");
  const std::string saved = old ? old : "";
  ::setenv("PATH", (d.path.string() + ":" + saved).c_str(), 1);
  auto cands = backend::virtiofsd_candidates();
  CHECK(cands == std::vector<std::string>{good.string(), "/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd"});
  CHECK(backend::default_virtiofsd() == good.string());
  ::setenv("PATH", saved.c_str(), 1);
  cands = backend::virtiofsd_candidates();
  CHECK(cands.back() == "/usr/lib/qemu/virtiofsd");
  // Debian 12: neither on PATH nor the Rust daemon, QEMU's is the one.
  if (cands.size() == 2 && !fs::exists("/usr/libexec/virtiofsd") && fs::exists("/usr/lib/qemu/virtiofsd"))
    CHECK(backend::default_virtiofsd() == "/usr/lib/qemu/virtiofsd");
}
