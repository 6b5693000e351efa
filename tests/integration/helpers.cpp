#include "helpers.h"

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace kab::integration {

const std::string k_kab = KAB_BINARY;
const std::string k_root = KAB_SOURCE_DIR;

TestDir::TestDir(const std::string& name) {
  path = fs::temp_directory_path() / ("kab-it-" + name);
  fs::remove_all(path);
  fs::create_directories(path);
}

std::string TestDir::db() const { return (path / "kab.db").string(); }

proc::Options kab_options(const std::vector<std::string>& args, const std::string& log, Env env) {
  proc::Options o;
  o.argv = {k_kab};
  o.argv.insert(o.argv.end(), args.begin(), args.end());
  o.cwd = k_root;
  o.output_path = log;
  env.emplace_back("KAB_ROOT", k_root);
  o.env = std::move(env);
  return o;
}

proc::Result run_kab(const std::vector<std::string>& args, double timeout_s, const std::string& log, Env env) {
  proc::Options o = kab_options(args, log, std::move(env));
  o.timeout_s = timeout_s;
  return proc::run(o);
}

std::string read(const fs::path& p) {
  std::ifstream in(p);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

json last_json(const std::string& output) {
  for (std::size_t s = 0; s < output.size(); ++s) {
    if ((output[s] == '{' || output[s] == '[') && (s == 0 || output[s - 1] == '\n')) {
      auto j = json::parse(output.substr(s), nullptr, false);
      if (!j.is_discarded()) return j;
    }
  }
  FAIL("no JSON in kab's output:\n" << output);
  return {};
}

json show(const std::string& db, long long run) {
  auto r = run_kab({"show", std::to_string(run), "--db", db, "--json"}, 60);
  REQUIRE(r.ok());
  return last_json(r.output);
}

RunOutput run_ok(const TestDir& dir, const std::string& scenario, std::vector<std::string> extra) {
  std::vector<std::string> args = {"run", scenario, "--db", dir.db(), "--json"};
  args.insert(args.end(), extra.begin(), extra.end());
  auto r = run_kab(args, 1800, (dir.path / "kab.log").string());
  std::string out = read(dir.path / "kab.log");
  INFO(out);
  REQUIRE(r.ok());
  RunOutput o;
  o.result = last_json(out);
  o.samples = show(dir.db(), o.result["run"].get<long long>());
  return o;
}

void check_ok_with_mechanism(const json& s, double min_bw_bytes) {
  INFO(s.dump());
  CHECK(s["status"] == "ok");
  CHECK(s["bw_bytes"].get<double>() > min_bw_bytes);
  if (s["arm"] == "stock") CHECK(s["writeback_tmp_peak_kb"].get<double>() > 0);
  else CHECK(s["writeback_tmp_peak_kb"].get<double>() == 0);
}

void check_ok_with_mechanism_over_run(const json& samples, double min_bw_bytes) {
  int stock = 0, stock_seen = 0;
  for (const auto& s : samples) {
    INFO(s.dump());
    CHECK(s["status"] == "ok");
    CHECK(s["bw_bytes"].get<double>() > min_bw_bytes);
    const bool seen = s["writeback_tmp_peak_kb"].get<double>() > 0 || s["nr_writeback_temp_peak"].get<double>() > 0;
    if (s["arm"] == "stock") {
      ++stock;
      stock_seen += seen;
    } else {
      CHECK_FALSE(seen);
    }
  }
  CHECK(stock > 0);
  CHECK(stock_seen > 0);
}

void check_no_leftovers() {
  auto [ok, doms] = proc::capture({"virsh", "-c", "qemu:///system", "list", "--name"});
  INFO(doms);
  // No libvirtd (a test that boots no QEMU guest, run alone): no domain either.
  if (!ok) CHECK(doms.find("Failed to connect socket to '/var/run/libvirt/libvirt-sock'") != std::string::npos);
  CHECK(doms.find("kab-") == std::string::npos);
  auto [pok, ps] = proc::capture({"ps", "-eo", "comm="});
  CHECK(ps.find("virtiofsd") == std::string::npos);
  CHECK(ps.find("qemu-system") == std::string::npos);
  for (const auto& e : fs::directory_iterator("/dev/shm"))
    CHECK(e.path().filename().string().rfind("kab-share-", 0) != 0);
}

std::string flat_words(const std::string& text) {
  std::istringstream words(text);
  std::string flat;
  for (std::string word; words >> word;) flat += (flat.empty() ? "" : " ") + word;
  return flat;
}

void check_mail_columns(const std::string& mail) {
  std::istringstream lines(mail);
  for (std::string line; std::getline(lines, line);) {
    INFO(line);
    std::size_t cols = 0;
    for (unsigned char ch : line) cols += (ch & 0xC0) != 0x80;
    CHECK(cols <= 80);
  }
}

}  // namespace kab::integration
