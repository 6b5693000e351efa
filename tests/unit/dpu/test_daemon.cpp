// The kab-dpu binary as an operator runs it (issue 16): the socket is never open to other local
// users, the statistics file is private, SIGTERM ends it at once.
#include "fake_front_end.h"

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <fcntl.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>

using namespace kab::dpu::test;
namespace fs = std::filesystem;

namespace {

pid_t spawn(const std::vector<std::string>& args) {
  std::vector<char*> argv;  // built before fork: the child only calls async-signal-safe functions
  for (const auto& a : args)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    umask(0);  // the worst case: a parent with no umask at all
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

bool wait_for(const std::function<bool()>& ok, int ms) {
  for (int i = 0; i < ms; i += 5) {
    if (ok())
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return ok();
}

} // namespace

TEST_CASE("kab-dpu's socket and statistics are its owner's only, and SIGTERM ends it", "[dpu][daemon][security]") {
  TempDir dir;
  fs::create_directory(dir.path / "export");
  std::string sock = (dir.path / "vu.sock").string();
  std::string stats = (dir.path / "stats.json").string();
  pid_t pid = spawn({KAB_DPU_BIN, "--socket", sock, "--shared-dir", (dir.path / "export").string(),
                     "--stats", stats, "--uid", "1234", "--gid", "1234", "--max-inodes", "3",
                     "--max-handles", "4", "--request-timeout", "2", "--log", (dir.path / "dpu.log").string()});
  for (const char* n : {"a", "b"})
    std::ofstream(dir.path / "export" / n) << n;
  REQUIRE(pid > 0);
  struct Reap {
    pid_t pid;
    ~Reap() {
      if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
      }
    }
  } reap{pid};
  REQUIRE(wait_for([&] { return fs::exists(sock); }, 5000));
  struct stat st;
  REQUIRE(stat(sock.c_str(), &st) == 0);
  CHECK(S_ISSOCK(st.st_mode));
  CHECK((st.st_mode & 0077) == 0);  // before: 0777 until a chmod to 0660 after listen

  REQUIRE(kill(pid, SIGUSR1) == 0);
  REQUIRE(wait_for([&] { return fs::exists(stats); }, 5000));
  REQUIRE(stat(stats.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);  // before: 0666 (umask 0)
  auto j = nlohmann::json::parse(std::ifstream(stats));
  CHECK(j["context"]["uid"] == 1234);
  CHECK(j["context"]["request_timeout_s"] == 2.0);
  CHECK(j["fuse"]["max_inodes"] == 3);
  CHECK(j["fuse"]["max_handles"] == 4);
  CHECK(j.contains("timed_out_requests"));
  CHECK(j.contains("abandoned_requests"));

  // A front-end connects, sets the device up and speaks FUSE: the options act through the
  // binary (--uid/--gid own what the guest creates, set-ID bits go, --max-inodes bounds LOOKUP).
  FakeFrontEnd fe;
  close(fe.sock);
  close(fe.server);
  fe.server = -1;
  fe.sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, sock.c_str(), sizeof addr.sun_path - 1);
  REQUIRE(connect(fe.sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(wait_for([&] { return !fs::exists(sock); }, 3000));  // unlinked once accepted
  fe.setup();
  fuse_init_in init{7, 38, 0, 0};
  Bytes ib;
  append(ib, init);
  REQUIRE(fe.fuse(FUSE_INIT, 0, ib).oh.error == 0);
  fuse_create_in ci{};
  ci.flags = O_RDWR;
  ci.mode = S_IFREG | 04755;
  Bytes cb;
  append(cb, ci);
  append_str(cb, "new");
  auto created = fe.fuse(FUSE_CREATE, FUSE_ROOT_ID, cb);
  REQUIRE(created.oh.error == 0);
  fuse_setattr_in sa{};
  sa.valid = FATTR_MODE;
  sa.mode = 04755;
  Bytes sb;
  append(sb, sa);
  CHECK(fe.fuse(FUSE_SETATTR, created.as<fuse_entry_out>().nodeid, sb).oh.error == 0);
  REQUIRE(stat((dir.path / "export" / "new").c_str(), &st) == 0);
  CHECK(st.st_uid == 1234u);
  CHECK(st.st_gid == 1234u);
  CHECK((st.st_mode & 07777) == 0755);
  // The root and "new" hold 2 of the 3 inodes: "a" takes the last, "b" is refused.
  CHECK(fe.fuse(FUSE_LOOKUP, FUSE_ROOT_ID, name_arg("a")).oh.error == 0);
  CHECK(fe.fuse(FUSE_LOOKUP, FUSE_ROOT_ID, name_arg("b")).oh.error == -ENFILE);
  auto t0 = std::chrono::steady_clock::now();
  REQUIRE(kill(pid, SIGTERM) == 0);
  int status = -1;
  REQUIRE(wait_for([&] { return waitpid(pid, &status, WNOHANG) == pid; }, 3000));
  reap.pid = -1;
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(1));
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  j = nlohmann::json::parse(std::ifstream(stats));   // written again at exit
  CHECK(j["fuse"]["limit_refusals"] == 1);
  CHECK(j["requests"]["LOOKUP"] == 2);
  std::ifstream log(dir.path / "dpu.log");
  std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  CHECK(text.find("front-end connected") != std::string::npos);
  CHECK(text.find("stopping on signal 15") != std::string::npos);
}
