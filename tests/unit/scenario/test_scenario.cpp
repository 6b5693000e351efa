#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "backend/backends.h"
#include "fio/catalog.h"
#include "core/fio_job.h"
#include "scenario/gate.h"
#include "scenario/scenario.h"
#include "vm/platforms.h"

using namespace kab;

namespace {

scenario::Context context() {
  static fio::Catalog catalog;   // the real, installed fio
  scenario::Context ctx;
  ctx.kernels = scenario::list_kernel_names(KAB_SOURCE_DIR "/kernels");
  ctx.fio_options = catalog.names();
  ctx.fio_knows = [](const std::string& o) { return catalog.knows(o); };
  ctx.fio_parse = [](const std::string& job) { return catalog.parse_only(job); };
  for (const auto& p : vm::platforms()) ctx.platforms.push_back({p.name, p.boots_disk});   // the real tables
  ctx.backend_types = backend::backend_types();
  ctx.check_binary = backend::executable_problem;
  return ctx;
}

std::string errors_of(const std::string& name) {
  std::string path = std::string(KAB_TEST_DATA) + "/scenarios/" + name;
  auto parsed = scenario::load_scenario(path, context());
  std::string out = scenario::format_errors(parsed.errors);
  // Messages start with the path; pin them relative to tests/data.
  std::string prefix = std::string(KAB_TEST_DATA) + "/";
  for (std::size_t p; (p = out.find(prefix)) != std::string::npos;) out.erase(p, prefix.size());
  return out;
}

}  // namespace

TEST_CASE("malformed scenarios give positioned messages", "[scenario]") {
  SECTION("bad-arms-list.yaml") {
    CHECK(errors_of("bad-arms-list.yaml") ==
          "scenarios/bad-arms-list.yaml:2:3: 'arms' must be a map of arm name to kernel, got a list\n"
          "  - stock-6.1\n"
          "  ^ near here\n");
  }
  SECTION("bad-backend-type.yaml") {
    CHECK(errors_of("bad-backend-type.yaml") ==
          "scenarios/bad-backend-type.yaml:5:11: unknown backend type 'virtiofs', did you mean 'virtiofsd'?\n"
          "  - type: virtiofs\n"
          "          ^ near here\n");
  }
  SECTION("bad-backend-binary.yaml: a binary that is not there, relative to the scenario") {
    CHECK(errors_of("bad-backend-binary.yaml") ==
          "scenarios/bad-backend-binary.yaml:6:13: backend binary './bin/virtiofsd' does not exist (leave 'binary' "
          "out to use the daemon kab finds; kab doctor names it)\n"
          "    binary: ./bin/virtiofsd\n"
          "            ^ near here\n");
    auto parsed = scenario::load_scenario(std::string(KAB_TEST_DATA) + "/scenarios/bad-backend-binary.yaml",
                                          scenario::Context{});
    REQUIRE(parsed.value);
    CHECK(parsed.value->backends[0].binary == std::string(KAB_TEST_DATA) + "/scenarios/bin/virtiofsd");
  }
  SECTION("bad-primary-metric.yaml") {
    CHECK(errors_of("bad-primary-metric.yaml") ==
          "scenarios/bad-primary-metric.yaml:4:17: unknown metric 'bandwith', did you mean 'bandwidth'?\n"
          "primary_metric: bandwith\n"
          "                ^ near here\n");
  }
  SECTION("bad-duplicate-arm.yaml") {
    CHECK(errors_of("bad-duplicate-arm.yaml") ==
          "scenarios/bad-duplicate-arm.yaml:3:3: duplicate arm name 'stock'\n"
          "  stock: rfc-6.1\n"
          "  ^ near here\n");
  }
  SECTION("bad-empty-axis.yaml") {
    CHECK(errors_of("bad-empty-axis.yaml") ==
          "scenarios/bad-empty-axis.yaml:7:9: matrix axis 'bs' is empty\n"
          "    bs: []\n"
          "        ^ near here\n");
  }
  SECTION("bad-exclude-axis.yaml") {
    CHECK(errors_of("bad-exclude-axis.yaml") ==
          "scenarios/bad-exclude-axis.yaml:10:16: exclude names 'numjob', which is not a matrix axis, did you mean 'numjobs'?\n"
          "    - {bs: 4k, numjob: 2}\n"
          "               ^ near here\n");
  }
  SECTION("bad-fio-option.yaml") {
    CHECK(errors_of("bad-fio-option.yaml") ==
          "scenarios/bad-fio-option.yaml:7:5: unknown fio option 'iodepht', did you mean 'iodepth'?\n"
          "    iodepht: 32\n"
          "    ^ near here\n");
  }
  SECTION("bad-many-errors.yaml") {
    CHECK(errors_of("bad-many-errors.yaml") ==
          "scenarios/bad-many-errors.yaml:4:8: arm 'rfc' names unknown kernel 'rfc-61', did you mean 'rfc-6.1'?\n"
          "  rfc: rfc-61\n"
          "       ^ near here\n"
          "scenarios/bad-many-errors.yaml:6:3: unknown key 'vcpu', did you mean 'vcpus'?\n"
          "  vcpu: 2\n"
          "  ^ near here\n"
          "scenarios/bad-many-errors.yaml:7:13: unknown platform 'qemm', did you mean 'qemu'?\n"
          "  platform: qemm\n"
          "            ^ near here\n"
          "scenarios/bad-many-errors.yaml:11:5: unknown fio option 'ramptime', did you mean 'ramp_time'?\n"
          "    ramptime: 2\n"
          "    ^ near here\n"
          "scenarios/bad-many-errors.yaml:14:14: 'repetitions' must be at least 1, got -1\n"
          "repetitions: -1\n"
          "             ^ near here\n"
          "scenarios/bad-many-errors.yaml:15:8: 'alpha' must be between 0 and 1, got 2\n"
          "alpha: 2\n"
          "       ^ near here\n");
  }
  SECTION("bad-memory-size.yaml") {
    CHECK(errors_of("bad-memory-size.yaml") ==
          "scenarios/bad-memory-size.yaml:5:11: 'memory' is not a size: '1 gigabyte' (expected e.g. 512M, 1G)\n"
          "  memory: 1 gigabyte\n"
          "          ^ near here\n");
  }
  SECTION("bad-missing-arms.yaml") {
    CHECK(errors_of("bad-missing-arms.yaml") ==
          "scenarios/bad-missing-arms.yaml:1:1: missing required key 'arms' in scenario\n"
          "fio:\n"
          "^ near here\n");
  }
  SECTION("bad-missing-fio.yaml") {
    CHECK(errors_of("bad-missing-fio.yaml") ==
          "scenarios/bad-missing-fio.yaml:1:1: missing required key 'fio' in scenario\n"
          "arms:\n"
          "^ near here\n");
  }
  SECTION("bad-not-a-map.yaml") {
    CHECK(errors_of("bad-not-a-map.yaml") ==
          "scenarios/bad-not-a-map.yaml:1:1: a scenario must be a map of keys (arms, backends, guest, fio, ...), got a list\n"
          "- arms\n"
          "^ near here\n");
  }
  SECTION("bad-one-arm.yaml") {
    CHECK(errors_of("bad-one-arm.yaml") ==
          "scenarios/bad-one-arm.yaml:2:3: a scenario needs at least two arms (base first, then candidates), got 1\n"
          "  stock: stock-6.1\n"
          "  ^ near here\n");
  }
  SECTION("bad-repetitions-type.yaml") {
    CHECK(errors_of("bad-repetitions-type.yaml") ==
          "scenarios/bad-repetitions-type.yaml:6:14: 'repetitions' must be an integer, got 'five'\n"
          "repetitions: five\n"
          "             ^ near here\n");
  }
  SECTION("bad-repetitions-zero.yaml") {
    CHECK(errors_of("bad-repetitions-zero.yaml") ==
          "scenarios/bad-repetitions-zero.yaml:6:14: 'repetitions' must be at least 1, got 0\n"
          "repetitions: 0\n"
          "             ^ near here\n");
  }
  SECTION("bad-syntax.yaml") {
    CHECK(errors_of("bad-syntax.yaml") ==
          "scenarios/bad-syntax.yaml:4:4: YAML syntax error: end of sequence flow not found\n"
          "fio:\n"
          "   ^ near here\n");
  }
  SECTION("bad-disk-uml.yaml") {
    CHECK(errors_of("bad-disk-uml.yaml") ==
          "scenarios/bad-disk-uml.yaml:6:10: 'image: disk' needs a platform that boots a root disk (qemu); platform "
          "uml boots its initramfs\n"
          "  image: disk\n"
          "         ^ near here\n");
  }
  SECTION("bad-timeout.yaml") {
    CHECK(errors_of("bad-timeout.yaml") ==
          "scenarios/bad-timeout.yaml:5:12: 'timeout' is not a duration: 'soon' (expected e.g. 30s, 2m)\n"
          "  timeout: soon\n"
          "           ^ near here\n");
  }
  SECTION("bad-unknown-kernel.yaml") {
    CHECK(errors_of("bad-unknown-kernel.yaml") ==
          "scenarios/bad-unknown-kernel.yaml:3:8: arm 'rfc' names unknown kernel 'rfc-6.2', did you mean 'rfc-6.1'?\n"
          "  rfc: rfc-6.2\n"
          "       ^ near here\n");
  }
  SECTION("bad-unknown-key.yaml") {
    CHECK(errors_of("bad-unknown-key.yaml") ==
          "scenarios/bad-unknown-key.yaml:4:1: unknown key 'repetitons', did you mean 'repetitions'?\n"
          "repetitons: 3\n"
          "^ near here\n");
  }
  SECTION("bad-writeback-type.yaml") {
    CHECK(errors_of("bad-writeback-type.yaml") ==
          "scenarios/bad-writeback-type.yaml:6:16: 'writeback' must be true or false, got 'maybe'\n"
          "    writeback: maybe\n"
          "               ^ near here\n");
  }
}

TEST_CASE("shipped scenarios are valid", "[scenario]") {
  for (const char* name : {"rfc-writeback.yaml", "quick.yaml", "matrix-example.yaml"}) {
    auto parsed = scenario::load_scenario(std::string(KAB_SOURCE_DIR "/scenarios/") + name, context());
    INFO(name << "\n" << scenario::format_errors(parsed.errors));
    CHECK(parsed.errors.empty());
  }
}

TEST_CASE("the RFC scenario holds the RFC's job exactly", "[scenario]") {
  auto parsed = scenario::load_scenario(KAB_SOURCE_DIR "/scenarios/rfc-writeback.yaml", context());
  REQUIRE(parsed.value);
  const auto& s = *parsed.value;
  core::FioOptions expected = {{"ioengine", "psync"}, {"fsync", "1"},      {"direct", "0"},
                               {"bs", "1M"},          {"rw", "randwrite"}, {"randrepeat", "0"},
                               {"iodepth", "1"},      {"size", "512M"},    {"runtime", "30"},
                               {"time_based", ""},    {"cpus_allowed", "0"}};
  CHECK(s.fio.job == expected);
  REQUIRE(s.arms.size() == 2);
  CHECK(s.arms[0].name == "stock");
  CHECK(s.arms[1].kernel == "rfc-6.1");
  CHECK(s.backends[0].writeback);
  CHECK(s.repetitions == 5);
}

TEST_CASE("a minimal scenario gets the defaults", "[scenario]") {
  auto parsed = scenario::load_scenario(std::string(KAB_TEST_DATA) + "/scenarios/good-minimal.yaml", context());
  REQUIRE(parsed.value);
  CHECK(parsed.value->name == "good-minimal");
  CHECK(parsed.value->backends.size() == 1);
  CHECK(parsed.value->backends[0].type == "virtiofsd");
  CHECK(parsed.value->guest.platform == "qemu");
  CHECK(parsed.value->repetitions == 5);
}

TEST_CASE("no input crashes the parser", "[scenario]") {
  for (const char* text : {"", "~", "[", "{", "arms: {a: b, c: d}\nfio: 3", "arms: !!binary x\n",
                           "arms:\n  a:\n    kernel: [x]\n  b: {}\nfio: {job: []}",
                           "fio: {job: {rw: [a, b]}, matrix: {bs: {x: y}}, exclude: [3]}",
                           "backends: [{type: dpu, dpu: [1]}, 7]\nguest: [1]\nseed: -4"}) {
    auto parsed = scenario::parse_scenario("t.yaml", text, context());
    CHECK_FALSE(parsed.errors.empty());
  }
}

namespace {

// A scenario beside the corpus (tests/data/fio) running one job file; errors
// with paths relative to tests/data.
std::pair<bool, std::string> job_file_scenario(const std::string& file, const std::string& extra = "",
                                               const std::string& timeout = "300s") {
  const std::string path = std::string(KAB_TEST_DATA) + "/fio/scenario.yaml";
  const std::string text = "arms: {stock: stock-6.1, rfc: rfc-6.1}\nguest: {timeout: " + timeout +
                           "}\nfio:\n  job_file: " + file + "\n" + extra;
  auto parsed = scenario::parse_scenario(path, text, context());
  std::string out = scenario::format_errors(parsed.errors);
  std::string prefix = std::string(KAB_TEST_DATA) + "/";
  for (std::size_t p; (p = out.find(prefix)) != std::string::npos;) out.erase(p, prefix.size());
  return {parsed.value.has_value(), out};
}

}  // namespace

TEST_CASE("fio job files as people write them: run, or refused at their line before anything boots",
          "[scenario][fio_job]") {
  SECTION("accepted as they are") {
    for (const char* f : {"numjobs4-no-group.fio", "stonewall-sections.fio", "randrw-mix.fio", "verify-job.fio",
                          "libaio-direct.fio", "falloc.fio", "ftruncate.fio", "share-absolute.fio"}) {
      auto [ok, errors] = job_file_scenario(f);
      INFO(f << "\n" << errors);
      CHECK(ok);
    }
  }
  SECTION("absolute directory outside the share") {
    CHECK(job_file_scenario("seq-write-abs-dir.fio").second ==
          "fio/seq-write-abs-dir.fio:4:11: directory=/mnt/scratch is outside the share: kab runs every job in "
          "/mnt/kab; remove the line (or give a relative directory)\n"
          "directory=/mnt/scratch\n          ^ near here\n");
  }
  SECTION("a file outside the share") {
    CHECK(job_file_scenario("outside-filename.fio").second.find(
              "fio/outside-filename.fio:2:10: filename=/root/fio-test.dat is outside the share") == 0);
  }
  SECTION("a raw device") {
    CHECK(job_file_scenario("raw-device.fio").second ==
          "fio/raw-device.fio:6:10: filename=/dev/nvme0n1 is a device: kab measures files on the virtio-fs share; "
          "name a file instead (e.g. filename=testfile), which kab creates in the share\n"
          "filename=/dev/nvme0n1\n         ^ near here\n");
  }
  SECTION("a value the installed fio rejects, at the job file's line") {
    CHECK(job_file_scenario("bad-value.fio").second ==
          "fio/bad-value.fio:6:4: fio rejects bs=banana (fio --parse-only: failed parsing bs=banana)\n"
          "bs=banana\n   ^ near here\n");
  }
  SECTION("a 15-minute job: refused against the guest's timeout, run shortened by fio.override") {
    CHECK(job_file_scenario("big-numjobs.fio").second ==
          "fio/scenario.yaml:2:18: fio may run 900 s (runtime + ramp_time) but guest.timeout is 300 s: raise "
          "guest.timeout (boot and teardown need ~30 s more) or shorten the job (fio.override: {runtime: …})\n"
          "guest: {timeout: 300s}\n                 ^ near here\n");
    auto [ok, errors] = job_file_scenario("big-numjobs.fio", "  override: {runtime: 10, size: 64M}\n");
    INFO(errors);
    CHECK(ok);
  }
  SECTION("an override value fio rejects, at the scenario's line") {
    CHECK(job_file_scenario("falloc.fio", "  override: {bs: huge}\n").second ==
          "fio/scenario.yaml:5:18: fio rejects bs=huge (fio --parse-only: failed parsing bs=huge)\n"
          "  override: {bs: huge}\n                 ^ near here\n");
    CHECK(job_file_scenario("falloc.fio", "  override: {runtme: 10}\n").second.find(
              "unknown fio option 'runtme', did you mean 'runtime'?") != std::string::npos);
  }
}

TEST_CASE("fio.host_check: a job file for the host's fio, read and checked as the guest's, that runs no command",
          "[scenario][fio_job]") {
  SECTION("read beside the scenario, its text kept for the run") {
    auto parsed = scenario::parse_scenario(
        std::string(KAB_TEST_DATA) + "/fio/scenario.yaml",
        "arms: {stock: stock-6.1, rfc: rfc-6.1}\nfio:\n  job_file: falloc.fio\n  host_check: verify-job.fio\n",
        context());
    INFO(scenario::format_errors(parsed.errors));
    REQUIRE(parsed.value);
    CHECK(parsed.value->fio.host_check == std::string(KAB_TEST_DATA) + "/fio/verify-job.fio");
    CHECK(parsed.value->fio.host_check_text.find("verify=") != std::string::npos);   // verify-job.fio's, not
    CHECK(parsed.value->fio.job_file_text.find("verify=") == std::string::npos);     // falloc.fio's
  }
  SECTION("refused: a missing file, a path outside the share, a command") {
    CHECK(job_file_scenario("falloc.fio", "  host_check: nothing.fio\n").second.find(
              "fio/scenario.yaml:5:15: host_check 'nothing.fio' does not exist") == 0);
    const std::string outside = job_file_scenario("falloc.fio", "  host_check: outside-filename.fio\n").second;
    CHECK(outside.find("fio/outside-filename.fio:2:1: 'filename=/root/fio-test.dat' names a path outside the share "
                       "(a host check runs in the share's directory: give a relative name), and a host check runs on "
                       "the host: not allowed there") != std::string::npos);
    CHECK(outside.find("fio/outside-filename.fio:2:10: filename=/root/fio-test.dat is outside the share") !=
          std::string::npos);
    CHECK(job_file_scenario("falloc.fio", "  host_check: host-exec.fio\n").second ==
          "fio/host-exec.fio:4:1: 'exec_prerun' runs a command, and a host check runs on the host: not allowed there\n"
          "exec_prerun=true\n^ near here\n"
          "fio/host-exec.fio:5:1: 'ioengine=exec' runs a command, and a host check runs on the host: not allowed there\n"
          "ioengine=exec\n^ near here\n");
    // The same file as the guest's job: fio runs it there, in the guest.
    CHECK(job_file_scenario("host-exec.fio").first);
  }
}

TEST_CASE("generated jobs: every cell's values checked by the installed fio", "[scenario][fio_job]") {
  const std::string path = std::string(KAB_TEST_DATA) + "/scenarios/inline.yaml";
  auto errors_of_text = [&](const std::string& text) {
    auto parsed = scenario::parse_scenario(path, text, context());
    return scenario::format_errors(parsed.errors);
  };
  CHECK(errors_of_text("arms: {a: stock-6.1, b: rfc-6.1}\nfio:\n  job: {rw: write, size: 16M, runtime: five}\n")
            .find("inline.yaml:3:40: fio rejects runtime=five (fio --parse-only: failed parsing runtime=five)") !=
        std::string::npos);
  CHECK(errors_of_text("arms: {a: stock-6.1, b: rfc-6.1}\nfio:\n  job: {rw: write, size: 16M}\n  matrix: {bs: [4k, "
                       "banana]}\n")
            .find("inline.yaml:4:21: fio rejects bs=banana") != std::string::npos);
  CHECK(errors_of_text("arms: {a: stock-6.1, b: rfc-6.1}\nguest: {timeout: 60s}\nfio:\n  job: {rw: write, size: 16M, "
                       "runtime: 2m, ramp_time: 5}\n")
            .find("fio may run 125 s (runtime + ramp_time) but guest.timeout is 60 s") != std::string::npos);
}

TEST_CASE("the longest job is what a cell runs: job and cell merged, stonewall groups in sequence",
          "[scenario][fio_job]") {
  const std::string path = std::string(KAB_TEST_DATA) + "/fio/inline.yaml";
  auto errors_of_text = [&](const std::string& text) {
    return scenario::format_errors(scenario::parse_scenario(path, text, context()).errors);
  };
  // runtime in the job, ramp_time in one cell: 250 + 60 > 300.
  CHECK(errors_of_text("arms: {a: stock-6.1, b: rfc-6.1}\nfio:\n  job: {rw: write, size: 16M, runtime: 250}\n"
                       "  matrix: {ramp_time: [0, 60]}\n")
            .find("fio may run 310 s (runtime + ramp_time) but guest.timeout is 300 s") != std::string::npos);
  // Two stonewalled sections of 200 s each run 400 s.
  CHECK(errors_of_text("arms: {a: stock-6.1, b: rfc-6.1}\nfio:\n  job_file: stonewall-sections.fio\n"
                       "  override: {runtime: 200, time_based: }\n")
            .find("fio may run 400 s") != std::string::npos);
  CHECK(errors_of_text("arms: {a: stock-6.1, b: rfc-6.1}\nfio:\n  job_file: stonewall-sections.fio\n"
                       "  override: {runtime: 100, time_based: }\n") == "");
}

TEST_CASE("fio values cannot leave the share or add lines", "[scenario][fio_job]") {
  const std::string path = std::string(KAB_TEST_DATA) + "/fio/inline.yaml";
  auto errors_of_text = [&](const std::string& text) {
    std::string out = scenario::format_errors(scenario::parse_scenario(path, text, context()).errors);
    std::string prefix = std::string(KAB_TEST_DATA) + "/";
    for (std::size_t p; (p = out.find(prefix)) != std::string::npos;) out.erase(p, prefix.size());
    return out;
  };
  CHECK(errors_of_text("arms: {a: stock-6.1, b: rfc-6.1}\nfio:\n  job_file: falloc.fio\n  override: {filename: /dev/vda}\n")
            .find("fio/inline.yaml:4:24: filename=/dev/vda is a device") == 0);
  CHECK(errors_of_text("arms: {a: stock-6.1, b: rfc-6.1}\nfio:\n  job_file: falloc.fio\n  override: {directory: ../..}\n")
            .find("fio/inline.yaml:4:25: directory=../.. is outside the share") == 0);
  CHECK(errors_of_text("arms: {a: stock-6.1, b: rfc-6.1}\nfio:\n  job: {rw: write, size: 16M, bs: \"4k\\nfilename=/dev/vda\"}\n")
            .find("fio/inline.yaml:3:35: a fio value is one line: 'bs' has a line break") == 0);
}

TEST_CASE("a job that cannot fit the share's store is refused with the numbers", "[scenario][fio_job]") {
  scenario::Context ctx = context();
  std::vector<std::string> asked;
  ctx.store_free_bytes = [&](const std::string& store) -> std::optional<std::uint64_t> {
    asked.push_back(store);
    return 1ull << 30;   // 1 GiB free
  };
  const std::string path = std::string(KAB_TEST_DATA) + "/fio/inline.yaml";
  auto errors_of_text = [&](const std::string& text) {
    return scenario::format_errors(scenario::parse_scenario(path, text, ctx).errors);
  };
  CHECK(errors_of_text("arms: {a: stock-6.1, b: rfc-6.1}\nfio:\n  job_file: big-numjobs.fio\n  override: {runtime: 10}\n")
            .find("the job lays out up to 40.0 GiB (size × numjobs over its sections) but the share's store (tmpfs, "
                  "/dev/shm) has 1.0 GiB free") != std::string::npos);
  CHECK(asked == std::vector<std::string>{"tmpfs"});
  CHECK(errors_of_text("arms: {a: stock-6.1, b: rfc-6.1}\nfio:\n  job_file: big-numjobs.fio\n"
                       "  override: {runtime: 10, size: 200M}\n") == "");
}

TEST_CASE("stop: sampling until decided, and what it cannot be combined with", "[scenario][sequential]") {
  const std::string head = "arms: {stock: stock-6.1, rfc: rfc-6.1}\nfio:\n  job: {rw: write, size: 16M}\n";
  auto parse = [](const std::string& text) { return scenario::parse_scenario("t.yaml", text, context()); };
  SECTION("the key and its default cap") {
    auto p = parse(head + "stop: {until_decided: true}\n");
    REQUIRE(p.value);
    CHECK(p.value->stop.until_decided);
    CHECK(p.value->stop.max_samples == 40);
    auto q = parse(head + "stop:\n  until_decided: true\n  max_samples: 24\n");
    REQUIRE(q.value);
    CHECK(q.value->stop.max_samples == 24);
    auto fixed = parse(head);
    REQUIRE(fixed.value);
    CHECK_FALSE(fixed.value->stop.until_decided);
  }
  SECTION("an odd cap, a cap too small, an unknown key, both repetitions and stop") {
    CHECK(scenario::format_errors(parse(head + "stop: {until_decided: true, max_samples: 7}\n").errors) ==
          "t.yaml:4:42: 'max_samples' must be an even number from 4 to 1000 (whole ABBA blocks of 2 samples per "
          "arm), got 7\n"
          "stop: {until_decided: true, max_samples: 7}\n"
          "                                         ^ near here\n");
    CHECK_FALSE(parse(head + "stop: {until_decided: true, max_samples: 2}\n").value);
    CHECK(scenario::format_errors(parse(head + "stop: {until_decidd: true}\n").errors).find("did you mean 'until_decided'") !=
          std::string::npos);
    CHECK(scenario::format_errors(parse(head + "repetitions: 5\nstop: {until_decided: true}\n").errors) ==
          "t.yaml:4:14: 'repetitions' fixes the samples per arm, 'stop: {until_decided: true}' samples until decided: "
          "keep one (max_samples caps the sequential run)\n"
          "repetitions: 5\n"
          "             ^ near here\n");
  }
  SECTION("three arms cannot be decided between") {
    auto p = parse("arms: {a: stock-6.1, b: rfc-6.1, c: rfc-6.1}\nfio:\n  job: {rw: write, size: 16M}\n"
                   "stop: {until_decided: true}\n");
    CHECK(scenario::format_errors(p.errors).find("decides between two arms; this scenario has 3") != std::string::npos);
  }
}

// Kernel definitions from git: source: {git, ref}, commits:, series:, each
// mistake named at its line and column before anything is built.
TEST_CASE("kernel definitions from git: parsed, or refused at their line", "[scenario][git]") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("kab-kdef-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "linux/.git");
  fs::create_directories(dir / "patches");
  std::ofstream(dir / "patches/fix.mbox") << "From x\n";
  auto parse = [&](const std::string& text) { return scenario::parse_kernel("k.yaml", text, dir.string()); };
  // The first line of the first message: file:line:col: what (the excerpt and caret follow it).
  auto errors = [&](const std::string& text) {
    std::string all = scenario::format_errors(parse(text).errors);
    return all.substr(0, all.find('\n') + 1);
  };

  auto ok = parse("source: {git: linux, ref: v6.1}\n");
  REQUIRE(ok.value);
  CHECK(ok.value->git_repo == (dir / "linux").string());
  CHECK(ok.value->git_ref == "v6.1");
  auto range = parse("source: {git: linux}\ncommits: v6.1..rfc\n");
  REQUIRE(range.value);
  CHECK(range.value->commits == "v6.1..rfc");
  auto worktree = parse("source: {git: linux, ref: WORKTREE}\n");
  REQUIRE(worktree.value);
  CHECK(worktree.value->git_ref == "WORKTREE");
  auto plain = parse("source: linux\n");   // a directory that is a git work tree
  REQUIRE(plain.value);
  CHECK(plain.value->git_repo == (dir / "linux").string());
  CHECK(plain.value->git_ref == "WORKTREE");
  auto mbox = parse("source: {git: linux, ref: v6.1}\nseries: fix.mbox\n");
  REQUIRE(mbox.value);
  CHECK(mbox.value->series == (dir / "patches/fix.mbox").string());

  CHECK(errors("source: {git: linux}\n") ==
        "k.yaml:1:9: a git source needs ref: (a tag, branch or commit, or WORKTREE for the tree as it is on disk)\n");
  CHECK(errors("source: {git: nowhere, ref: v1}\n") ==
        "k.yaml:1:15: git repository 'nowhere' does not exist (looked for " + (dir / "nowhere").string() + ")\n");
  CHECK(errors("source: {git: patches, ref: v1}\n") ==
        "k.yaml:1:15: 'patches' is not a git repository (no .git in " + (dir / "patches").string() + ")\n");
  CHECK(errors("source: {git: linux, ref: v1, branch: x}\n").find("k.yaml:1:31: unknown key 'branch'") == 0);
  CHECK(errors("source: linux-source-6.1\ncommits: v1..v2\n") ==
        "k.yaml:2:10: commits: needs a git source (source: {git: REPO})\n");
  CHECK(errors("source: {git: linux}\ncommits: v1\n") == "k.yaml:2:10: commits 'v1' is not a range BASE..HEAD\n");
  CHECK(errors("source: {git: linux, ref: WORKTREE}\ncommits: a..b\n") ==
        "k.yaml:2:10: commits: is a range of commits; the WORKTREE source has none\n");
  CHECK(errors("source: {git: linux, ref: v1}\nseries: lost.mbox\n") ==
        "k.yaml:2:9: series file 'lost.mbox' does not exist (looked for " + (dir / "patches/lost.mbox").string() + ")\n");
  fs::remove_all(dir);
}

TEST_CASE("the gate's families are scenarios fio accepts, one arm each, with the backends asked for", "[scenario][gate]") {
  auto def = scenario::load_gate(KAB_SOURCE_DIR "/scenarios/gate/gate.yaml");
  INFO(scenario::format_errors(def.errors));
  REQUIRE(def.value);
  std::vector<std::string> names;
  for (const auto& f : def.value->families) names.push_back(f.name);
  CHECK(names == std::vector<std::string>{"writeback", "lifecycle", "mmap", "mixed", "append", "pressure"});
  CHECK(def.value->backends == std::vector<std::string>{"writeback", "always", "none", "dpu"});
  scenario::Context ctx = context();
  ctx.min_arms = 1;
  for (const auto& f : def.value->families) {
    scenario::GateRun run;
    run.kernel = "stock-6.1";
    run.variant = "debug";
    run.backends = {"none", "writeback"};
    run.runtime_s = 7;
    run.timeout_s = 621;
    run.platform = f.name == "append" ? "uml" : "";   // kab gate --platform uml; "" the definition's
    const std::string text = scenario::gate_scenario_text(*def.value, f, run);
    INFO(text);
    auto parsed = scenario::parse_scenario("gate-" + f.name + ".yaml", text, ctx);   // fio --parse-only on the job file
    INFO(scenario::format_errors(parsed.errors));
    REQUIRE(parsed.value);
    const core::Scenario& s = *parsed.value;
    CHECK(s.name == "gate-" + f.name);
    REQUIRE(s.arms.size() == 1);
    CHECK(s.arms[0].kernel == "stock-6.1");
    CHECK(s.arms[0].variant == "debug");
    CHECK(s.guest.platform == (f.name == "append" ? "uml" : "qemu"));
    // Every family ends with the host check of gate.yaml, read with the scenario.
    CHECK(s.fio.host_check == KAB_SOURCE_DIR "/scenarios/gate/host-check.fio");
    CHECK(s.fio.host_check_text.find("verify_only=1") != std::string::npos);
    if (f.name == "mmap") {   // no shared mapping of a FOPEN_DIRECT_IO file (cache=none)
      CHECK(f.backends == std::vector<std::string>{"writeback", "always", "dpu"});
      continue;
    }
    CHECK(f.backends.empty());
    REQUIRE(s.backends.size() == 2);   // in the definition's order, as configured there
    CHECK(s.backends[0].name == "writeback");
    CHECK(s.backends[0].cache == "auto");
    CHECK(s.backends[0].writeback);
    CHECK(s.backends[1].name == "none");
    CHECK(s.backends[1].cache == "none");
    CHECK_FALSE(s.backends[1].writeback);
    CHECK(s.repetitions == 1);
    CHECK(s.guest.timeout_s == 621);
    CHECK(s.guest.memory_bytes == (f.name == "pressure" ? 384ull << 20 : 1024ull << 20));
    CHECK(s.fio.job_file == f.job_file);
    CHECK(s.fio.override == core::FioOptions{{"runtime", "7"}});
    // Every family ends by reading a file back from the backend, the cache dropped.
    const std::string job = core::fio_job_for(s.fio, {});
    CHECK(job.find("[check-read]") != std::string::npos);
    CHECK(job.find("verify_only=1") != std::string::npos);
    // fio runs exec_prerun as "CMD > JOB.prerun.txt 2>&1": a redirection of
    // CMD's own would lose to that one, so the caches are dropped by sysctl.
    CHECK(job.find("exec_prerun=sysctl -w vm.drop_caches=3") != std::string::npos);
  }
  // A comparison still needs two arms.
  auto one = scenario::parse_scenario("one.yaml", scenario::gate_scenario_text(*def.value, def.value->families[0], {"stock-6.1", "debug", "", {"writeback"}, 5, 600}), context());
  REQUIRE_FALSE(one.value);
  CHECK(scenario::format_errors(one.errors).find("at least two arms") != std::string::npos);
}

// The errors of a gate definition that must not parse, FILE beside gate.yaml.
static std::string gate_errors(const std::string& file, const std::string& text) {
  auto parsed = scenario::parse_gate(std::string(KAB_SOURCE_DIR "/scenarios/gate/") + file, text);
  CHECK_FALSE(parsed.value);
  return scenario::format_errors(parsed.errors);
}

TEST_CASE("a gate definition's mistakes are positioned", "[scenario][gate]") {
  const std::string e =
      gate_errors("bad.yaml", "families:\n  writeback: {job_file: nowhere.fio, sumary: x}\nbackends:\n  - {type: dpu}\n");
  INFO(e);
  CHECK(e.find("bad.yaml:2:25: job file") != std::string::npos);
  CHECK(e.find("job file 'nowhere.fio' does not exist") != std::string::npos);
  CHECK(e.find("unknown key 'sumary', did you mean 'summary'?") != std::string::npos);
  CHECK(e.find("bad.yaml:4:5: ") != std::string::npos);
  CHECK(e.find("each backend is a map with a name") != std::string::npos);
  const std::string n =
      gate_errors("none.yaml", "families:\n  writeback: {job_file: writeback.fio, backends: [wb]}\nbackends: []\n");
  INFO(n);
  CHECK(n.find("none.yaml:3:11: a gate needs at least one backend") != std::string::npos);
  // A family's name names files of a bundle and a word of a command.
  const std::string f = gate_errors("name.yaml", "families:\n  ../x: {job_file: writeback.fio}\nbackends:\n  - {name: dpu, type: dpu}\n");
  INFO(f);
  CHECK(f.find("name.yaml:2:3: a family's name may hold letters, digits, '-' and '_', got '../x'") != std::string::npos);
  CHECK(scenario::gate_family_name_ok("sync_file-range2"));
  CHECK_FALSE(scenario::gate_family_name_ok("a.b"));
  CHECK_FALSE(scenario::gate_family_name_ok(""));
}

TEST_CASE("guest.memory_cgroup: fio's memory cgroup limit, below the guest's memory", "[scenario]") {
  auto parse = [](const std::string& guest) {
    return scenario::parse_scenario(
        "s.yaml", "arms: {stock: stock-6.1, rfc: rfc-6.1}\nfio:\n  job: {rw: write, size: 16M}\nguest:\n" + guest,
        context());
  };
  auto ok = parse("  memory: 384M\n  memory_cgroup: 96M\n");
  INFO(scenario::format_errors(ok.errors));
  REQUIRE(ok.value);
  CHECK(ok.value->guest.memory_cgroup_bytes == 96ull << 20);
  CHECK(parse("  memory: 384M\n").value->guest.memory_cgroup_bytes == 0);
  // Not below the guest's memory, or too small for fio: refused at its value.
  CHECK(scenario::format_errors(parse("  memory: 384M\n  memory_cgroup: 512M\n").errors).find(
            "s.yaml:6:18: 'memory_cgroup' is fio's memory cgroup limit: at least 16M and below the guest's memory "
            "(384M)\n") == 0);
  CHECK(scenario::format_errors(parse("  memory_cgroup: 8M\n").errors).find("s.yaml:5:18: 'memory_cgroup' is fio's") == 0);
  // The gate's pressure family asks for one.
  auto gate = scenario::load_gate(KAB_SOURCE_DIR "/scenarios/gate/gate.yaml");
  REQUIRE(gate.value);
  bool found = false;
  for (const auto& f : gate.value->families)
    if (f.name == "pressure") {
      found = true;
      CHECK(f.memory_cgroup == "48M");
    }
  CHECK(found);
}
