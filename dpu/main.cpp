// kab-dpu: an emulated DPU virtio-fs device, served as a vhost-user back-end.
#include "dpu_model.h"
#include "fuse_server.h"
#include "log.h"
#include "stats.h"
#include "vhost_user_server.h"
#include "virtio_fs_device.h"

#include <CLI/CLI.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <iostream>

using namespace kab::dpu;

int main(int argc, char** argv) {
  CLI::App app{"kab-dpu: emulated DPU virtio-fs device (vhost-user-fs back-end)"};
  std::string socket_path, shared_dir, tag = "kab", stats_path, log_path, core_cpus;
  bool writeback = false, debug = false;
  unsigned request_queues = 1;
  DpuModelConfig model;
  uint32_t max_write_kib = 1024;
  double timeout_s = 1.0;
#ifndef KAB_GIT_REV
#define KAB_GIT_REV "unknown"
#endif
  app.set_version_flag("--version", std::string("kab-dpu ") + KAB_GIT_REV);
  app.add_option("--socket", socket_path, "vhost-user unix socket to listen on")->required();
  app.add_option("--shared-dir", shared_dir, "host directory to export")->required();
  app.add_option("--tag", tag, "virtio-fs tag in the config space (max 36 bytes)");
  app.add_option("--request-queues", request_queues, "request queues announced")
      ->check(CLI::Range(1u, 16u));
  app.add_flag("--writeback", writeback, "offer FUSE_WRITEBACK_CACHE");
  app.add_option("--max-write-kib", max_write_kib, "FUSE max_write in KiB")
      ->check(CLI::Range(4u, 16384u));
  app.add_option("--cache-timeout", timeout_s, "entry/attribute validity in seconds");
  app.add_option("--cores", model.cores, "DPU worker threads (0: serve on the queue threads)");
  app.add_option("--core-cpus", core_cpus, "host CPUs for the workers, e.g. 0,1 or 2-3");
  app.add_option("--latency-us", model.latency_us, "added latency per request in µs")
      ->check(CLI::Range(0.0, 1e7));
  app.add_option("--bandwidth-mbps", model.bandwidth_mbps, "DMA bandwidth cap in MB/s (10^6)")
      ->check(CLI::Range(0.0, 1e9));
  app.add_option("--queue-depth", model.queue_depth, "requests in flight per queue (0: ring size)");
  app.add_option("--cpu-duty", model.cpu_duty,
                 "DPU core speed as a fraction of a host core (duty-cycle model, 1: off)")
      ->check(CLI::Range(0.01, 1.0));
  app.add_option("--stats", stats_path, "JSON statistics file (SIGUSR1 and exit)");
  app.add_option("--log", log_path, "log file (default stderr)");
  app.add_flag("--debug", debug, "log every vhost-user message");
  int64_t owner_uid = -1, owner_gid = -1;
  bool allow_setid = false;
  uint64_t max_inodes = 0, max_handles = 0;
  double request_timeout_s = 30;
  app.add_option("--uid", owner_uid, "owner of every entry the guest creates (as root); chown to "
                                     "any other uid is refused")
      ->check(CLI::Range(int64_t(0), int64_t(UINT32_MAX - 1)));
  app.add_option("--gid", owner_gid, "group of every entry the guest creates; chgrp to any other "
                                     "gid is refused")
      ->check(CLI::Range(int64_t(0), int64_t(UINT32_MAX - 1)));
  app.add_flag("--allow-setid", allow_setid,
               "keep set-user-ID/set-group-ID bits in modes the guest sets (default: removed)");
  app.add_option("--max-inodes", max_inodes,
                 "inodes the guest may hold looked up (0: from RLIMIT_NOFILE); past it ENFILE");
  app.add_option("--max-handles", max_handles,
                 "files the guest may hold open (0: from RLIMIT_NOFILE); past it EMFILE");
  app.add_option("--request-timeout", request_timeout_s,
                 "seconds a request may run before it is interrupted and fails with ETIMEDOUT "
                 "(0: never)")
      ->check(CLI::Range(0.0, 86400.0));
  bool no_event_idx = false, no_indirect = false;
  app.add_flag("--no-event-idx", no_event_idx, "do not offer VIRTIO_RING_F_EVENT_IDX");
  app.add_flag("--no-indirect", no_indirect, "do not offer VIRTIO_RING_F_INDIRECT_DESC");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // usage errors exit 2, like the other checks below
  }

  if (tag.empty() || tag.size() > 36) {
    std::cerr << "kab-dpu: error: --tag must be 1 to 36 bytes\n";
    return 2;
  }
  if (!parse_cpu_list(core_cpus, model.core_cpus)) {
    std::cerr << "kab-dpu: error: --core-cpus '" << core_cpus << "' is not a CPU list\n";
    return 2;
  }
  if (!log_open(log_path, debug ? LogLevel::debug : LogLevel::info)) {
    std::cerr << "kab-dpu: error: cannot open log " << log_path << ": " << std::strerror(errno)
              << "\n";
    return 2;
  }
  // Every inode the guest knows holds an O_PATH fd: allow as many as the hard limit permits, and
  // as root as many as the kernel allows a process (fs.nr_open), as virtiofsd does. The FUSE
  // server's limits on inodes and handles are taken from what this leaves (FuseOptions).
  rlimit nofile;
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
    rlimit want = nofile;
    if (geteuid() == 0) {
      unsigned long nr_open = 0;
      if (FILE* f = std::fopen("/proc/sys/fs/nr_open", "re")) {
        if (std::fscanf(f, "%lu", &nr_open) != 1)
          nr_open = 0;
        std::fclose(f);
      }
      if (nr_open > want.rlim_max)
        want.rlim_max = nr_open;
    }
    want.rlim_cur = want.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &want) != 0 && nofile.rlim_cur < nofile.rlim_max) {
      nofile.rlim_cur = nofile.rlim_max;
      setrlimit(RLIMIT_NOFILE, &nofile);
    }
  }

  // Signals are read from a signalfd by the control thread; every thread inherits the mask.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGUSR1);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);
  int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);

  nlohmann::json context = {
      {"tool", "kab-dpu"},
      {"shared_dir", shared_dir},
      {"tag", tag},
      {"writeback", writeback},
      {"request_queues", request_queues},
      {"max_write", max_write_kib * 1024},
      {"cores", model.cores},
      {"core_cpus", model.core_cpus},
      {"latency_us", model.latency_us},
      {"bandwidth_mbps", model.bandwidth_mbps},
      {"queue_depth", model.queue_depth},
      {"cpu_duty", model.cpu_duty},
      {"pid", getpid()},
      {"version", KAB_GIT_REV},
      {"uid", owner_uid},
      {"gid", owner_gid},
      {"allow_setid", allow_setid},
      {"request_timeout_s", request_timeout_s},
  };
  unsigned workers = model.cores ? model.cores : request_queues + 1;
  Stats stats(workers);
  auto write_stats = [&] {
    if (!stats_path.empty() && !stats.write_file(stats_path, context))
      log_msg(LogLevel::error, "cannot write statistics to " + stats_path);
  };

  DmaThrottle throttle(model.bandwidth_mbps);
  std::unique_ptr<FuseServer> fuse;
  try {
    FuseOptions fo;
    fo.shared_dir = shared_dir;
    fo.writeback = writeback;
    fo.max_write = max_write_kib * 1024;
    fo.timeout_s = timeout_s;
    fo.owner_uid = owner_uid;
    fo.owner_gid = owner_gid;
    fo.allow_setid = allow_setid;
    fo.max_inodes = max_inodes;
    fo.max_handles = max_handles;
    fuse = std::make_unique<FuseServer>(fo, throttle.enabled() ? &throttle : nullptr);
  } catch (const std::exception& e) {
    std::cerr << "kab-dpu: error: " << e.what() << "\n";
    return 1;
  }

  stats.set_extra([&] {
    return nlohmann::json{{"fuse", {{"inodes", fuse->inode_count()},
                                    {"handles", fuse->handle_count()},
                                    {"max_inodes", fuse->max_inodes()},
                                    {"max_handles", fuse->max_handles()},
                                    {"limit_refusals", fuse->limit_refusals()},
                                    {"inits", fuse->init_count()}}}};
  });
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path) {
    std::cerr << "kab-dpu: error: socket path " << socket_path << " is too long\n";
    return 2;
  }
  std::strcpy(addr.sun_path, socket_path.c_str());
  // The socket is created 0600 (umask 0177 around bind): no moment in which another local user
  // could connect and become the front-end.
  int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  unlink(socket_path.c_str());
  mode_t old_umask = umask(0177);
  int bound = bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  int bind_errno = errno;
  umask(old_umask);
  if (bound != 0 || listen(lfd, 1) != 0) {
    std::cerr << "kab-dpu: error: socket " << socket_path << ": "
              << std::strerror(bound != 0 ? bind_errno : errno) << "\n";
    return 1;
  }
  umask(0);  // from here on: the guest already applied its umask to the modes it sends
  log_msg(LogLevel::info, "listening on " + socket_path + ", exporting " + shared_dir);

  // Wait for the front-end, still answering signals.
  int cfd = -1;
  for (;;) {
    pollfd p[2] = {{lfd, POLLIN, 0}, {sfd, POLLIN, 0}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    if (p[1].revents & POLLIN) {
      signalfd_siginfo si;
      if (read(sfd, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGUSR1) {
          write_stats();
        } else {
          log_msg(LogLevel::info, "signal " + std::to_string(si.ssi_signo) + " before connect");
          write_stats();
          unlink(socket_path.c_str());
          return 0;
        }
      }
    }
    if (p[0].revents & POLLIN) {
      cfd = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
      if (cfd >= 0)
        break;
    }
  }
  close(lfd);
  unlink(socket_path.c_str());
  if (cfd < 0) {
    std::cerr << "kab-dpu: error: accept: " << std::strerror(errno) << "\n";
    return 1;
  }
  log_msg(LogLevel::info, "front-end connected");

  VirtioFsDevice device(*fuse, stats, model.latency_us, model.cpu_duty,
                        std::chrono::milliseconds(int64_t(request_timeout_s * 1000)));
  ServerOptions so;
  so.tag = tag;
  so.request_queues = request_queues;
  so.max_queues = 1 + std::max(request_queues, 16u);
  so.model = model;
  so.event_idx = !no_event_idx;
  so.indirect = !no_indirect;
  int rc;
  {
    VhostUserServer server(so, device, stats);
    rc = server.serve(cfd, sfd, [&] {
      signalfd_siginfo si;
      if (read(sfd, &si, sizeof si) != sizeof si)
        return true;
      if (si.ssi_signo == SIGUSR1) {
        write_stats();
        return true;
      }
      log_msg(LogLevel::info, "stopping on signal " + std::to_string(si.ssi_signo));
      return false;
    });
  }
  close(cfd);
  write_stats();
  log_msg(LogLevel::info, "exiting with status " + std::to_string(rc));
  // A request stuck in a system call may still be running inside the FUSE server: exit without
  // destroying it (or anything else) under that thread's feet.
  std::fflush(nullptr);
  _exit(rc);
}
