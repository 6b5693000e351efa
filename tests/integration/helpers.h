// Helpers shared by the integration tests: the kab binary under test, run in
// the source tree; each test's directory under /tmp; kab's --json output; the
// checks every platform makes on stored samples. Catch2 assertions inside
// report failures in the calling test.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "proc/runner.h"

namespace kab::integration {

extern const std::string k_kab;    // the kab binary under test (KAB_BINARY)
extern const std::string k_root;   // the source tree: scenarios, kernels, tests/data (KAB_SOURCE_DIR)

using Env = std::vector<std::pair<std::string, std::string>>;

// A test's own directory, /tmp/kab-it-NAME, emptied on construction. It is
// kept for inspection; the next run of the test starts it afresh.
struct TestDir {
  std::filesystem::path path;
  explicit TestDir(const std::string& name);
  std::string db() const;   // PATH/kab.db
};

// kab with ARGS, in the source tree with KAB_ROOT set (after ENV); output
// appended to LOG, or captured in memory when LOG is "". No timeout.
proc::Options kab_options(const std::vector<std::string>& args, const std::string& log = "", Env env = {});

// Runs kab (kab_options) to its end, stopping it after TIMEOUT_S.
proc::Result run_kab(const std::vector<std::string>& args, double timeout_s = 3600, const std::string& log = "",
                     Env env = {});

// The whole file, "" when it cannot be read.
std::string read(const std::filesystem::path& p);

// The JSON document at the end of kab's output (progress lines go before it):
// the first top-level document, starting a line, that parses to the end.
// FAILs the test when there is none.
nlohmann::json last_json(const std::string& output);

// TEXT's words joined by single spaces: prose as one line, whatever the wrapping.
std::string flat_words(const std::string& text);

// Every line of a mail within 80 columns (UTF-8 code points), checked line by line.
void check_mail_columns(const std::string& mail);

// `kab show RUN --db DB --json`: the stored samples of a run. REQUIREs success.
nlohmann::json show(const std::string& db, long long run);

// `kab run SCENARIO --db DB --json EXTRA…` with its log in DIR/kab.log, which
// must succeed (REQUIRE): kab's result and the stored samples.
struct RunOutput {
  nlohmann::json result, samples;
};
RunOutput run_ok(const TestDir& dir, const std::string& scenario, std::vector<std::string> extra = {});

// A healthy sample that wrote (more than MIN_BW_BYTES per second), with the
// RFC's mechanism visible: temporary pages in writeback on the stock kernel,
// none with the patch.
void check_ok_with_mechanism(const nlohmann::json& sample, double min_bw_bytes = 1e6);

// The same over a run's samples, for a guest whose temporary pages live for
// microseconds (UML writes back in small requests a fast backend answers at
// once): a sampler tick often finds none in flight, so one stock sample in the
// run must show them (meminfo's WritebackTmp or vmstat's nr_writeback_temp,
// the same counter read twice a tick) and no RFC sample may.
void check_ok_with_mechanism_over_run(const nlohmann::json& samples, double min_bw_bytes);

// No kab domain in libvirt, no virtiofsd or QEMU process, no share left on /dev/shm.
void check_no_leftovers();

}  // namespace kab::integration
