// kab history over a stored history: nights written into a database as kab
// nightly stores them (a run per night with its nightly.* facts, the head's
// samples), no guest booted. Twelve nights, the head 12% slower from the
// eighth on, at a CV of 4%: the table and the step in it.
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/stats.h"
#include "helpers.h"
#include "store/store.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace kab;
using namespace kab::integration;

TEST_CASE("history: the nights of a suite as stored, the step in them found and dated", "[integration][nightly]") {
  TestDir dir("history");
  {
    auto db = store::ResultStore::open(dir.db());
    core::SplitMix64 rng(42);
    auto noise = [&] {   // normal, Box–Muller
      const double u1 = (static_cast<double>(rng.next() >> 11) + 0.5) / 9007199254740992.0;
      const double u2 = (static_cast<double>(rng.next() >> 11) + 0.5) / 9007199254740992.0;
      return std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2);
    };
    // One night of SCENARIO of SUITE: a run with its nightly.* facts and SAMPLES head samples
    // around MIB_S (CV 4%), its verdict and alert facts.
    auto add_night = [&](const std::string& suite, const std::string& scenario, const std::string& hash, int night,
                         const std::string& commit, int samples, double mib_s, const std::string& verdict,
                         bool alert) {
      store::RunInfo info;
      info.scenario_name = scenario;
      info.scenario_text = "name: " + scenario + "\n";
      info.plan_size = samples;
      info.extra = {{"nightly.suite", suite},
                    {"nightly.scenario", scenario},
                    {"nightly.night", "n" + std::to_string(night)},
                    {"nightly.commit", commit},
                    {"nightly.scenario_hash", hash},
                    {"nightly.subject", "night " + std::to_string(night)}};
      const auto run = db.begin_run(info);
      for (int i = 0; i < samples; ++i) {
        core::Sample s;
        s.run_id = run;
        s.plan_index = i;
        s.arm = "head";
        s.kernel = "next-" + commit.substr(0, 12);
        s.backend = "virtiofsd";
        s.fio.bw_bytes = mib_s * 1048576 * (1 + 0.04 * noise());
        s.fio.bytes = 1e9;
        db.add_sample(s);
      }
      db.finish_run(run, store::RunStatus::complete);
      db.set_run_fact(run, "nightly.verdict", verdict);
      db.set_run_fact(run, "nightly.alert", alert ? "yes" : "no");
      return run;
    };
    for (int night = 1; night <= 12; ++night) {
      const auto run = add_night("fuse-next", "quick", "h", night, std::string(40, static_cast<char>('a' + night % 6)),
                                 4, night >= 8 ? 88.0 : 100.0,
                                 night == 1 ? "first" : night == 8 ? "regression" : "inconclusive", night == 8);
      if (night == 12) {   // judged against nights 9-11; its reports beside the database
        db.set_run_fact(run, "nightly.baseline", "9,10,11");
        fs::create_directories(dir.path / "n12" / "quick");
        std::ofstream(dir.path / "n12" / "quick" / "comparison.html") << "<html></html>\n";
        db.set_run_fact(run, "nightly.reports", (dir.path / "n12" / "quick").string());
      }
    }
    // A second scenario of the suite (4 nights) and a second suite (3 nights), stored after
    // the first scenario's runs: --scenario and --suite pick them out.
    auto other_night = [&](const std::string& suite, const std::string& scenario, int night, int samples) {
      add_night(suite, scenario, "h-" + suite + "-" + scenario, night, std::string(40, 'f'), samples, 50.0,
                night == 1 ? "first" : "inconclusive", false);
    };
    for (int night = 1; night <= 4; ++night) other_night("fuse-next", "meta", night, 2);
    for (int night = 1; night <= 3; ++night) other_night("other", "quick", night, 4);
  }
  auto r = run_kab({"history", "fuse-next", "--db", dir.db(), "--json"}, 60);
  INFO(r.output);
  REQUIRE(r.ok());
  json h = last_json(r.output);
  REQUIRE(h.size() == 2);   // each scenario of the suite, in the order they first ran
  CHECK(h[0]["scenario"] == "quick");
  CHECK(h[1]["scenario"] == "meta");
  CHECK(h[1]["nights"].size() == 4);
  REQUIRE(h[0]["nights"].size() == 12);
  CHECK(h[0]["nights"][7]["night"] == "n8");
  CHECK(h[0]["nights"][7]["alert"] == true);
  CHECK(h[0]["nights"][7]["cells"]["virtiofsd (default)"]["n"] == 4);
  REQUIRE(h[0]["change_points"].size() == 1);
  const json& cp = h[0]["change_points"][0];
  CHECK(cp["kind"] == "step");
  CHECK(cp["night"] == "n8");
  CHECK(cp["p"].get<double>() < 0.01);
  CHECK(cp["change"].get<double>() == Approx(-0.12).margin(0.03));

  // --scenario: that scenario only; one the suite never ran is refused.
  auto one = run_kab({"history", "fuse-next", "--scenario", "meta", "--db", dir.db(), "--json"}, 60);
  INFO(one.output);
  REQUIRE(one.ok());
  json m = last_json(one.output);
  REQUIRE(m.size() == 1);
  CHECK(m[0]["scenario"] == "meta");
  CHECK(m[0]["nights"].size() == 4);
  CHECK(m[0]["nights"][0]["cells"]["virtiofsd (default)"]["n"] == 2);
  auto nope = run_kab({"history", "fuse-next", "--scenario", "quik", "--db", dir.db()}, 60);
  CHECK(nope.exit_code == 2);
  CHECK(nope.output.find("suite fuse-next ran no scenario quik") != std::string::npos);

  auto text = run_kab({"history", "fuse-next", "--db", dir.db(), "--metric", "bandwidth"}, 60);
  INFO(text.output);
  CHECK(text.ok());
  CHECK(text.output.find("kab history: suite fuse-next, scenario quick: bandwidth (MiB/s), median of each night's head "
                         "samples (n)\n") != std::string::npos);
  CHECK(text.output.find("change point: virtiofsd (default): a step from night n8 (cccccccccccc), bandwidth -1") !=
        std::string::npos);
  CHECK(text.output.find("inconclusive\n") != std::string::npos);
  CHECK(text.output.find("regression (ALERT)\n") != std::string::npos);
  // The trend page: the chart (gnuplot SVG) with the baseline band and the
  // change point, and the table linking night 12 to its comparison.
  auto page = run_kab({"history", "fuse-next", "--db", dir.db(), "--html", (dir.path / "trend" / "index.html").string()},
                      60);
  INFO(page.output);
  REQUIRE(page.ok());
  const std::string html = read(dir.path / "trend" / "index.html");
  CHECK(html.find("<svg") != std::string::npos);
  CHECK(html.find("baseline band") != std::string::npos);
  CHECK(html.find("change point") != std::string::npos);
  CHECK(html.find("<a href=\"../n12/quick/comparison.html\">n12</a>") != std::string::npos);
  CHECK(html.find("<td>n11</td>") != std::string::npos);   // no reports: no link
  CHECK(html.find("regression (alert)") != std::string::npos);
  CHECK(html.find("Change point: virtiofsd (default): a step from night n8") != std::string::npos);

  // --suite: only that suite's nights go; fuse-next keeps all of its own.
  auto other = run_kab({"db", "prune", "--keep-nights", "1", "--suite", "other", "--db", dir.db()}, 60);
  INFO(other.output);
  CHECK(other.ok());
  CHECK(other.output.find("kab: db prune: suite other, scenario quick: deleted 2 of 3 nights: n1 (run 17), n2 (run 18)\n") !=
        std::string::npos);
  CHECK(other.output.find("suite fuse-next") == std::string::npos);
  CHECK(other.output.find("kab: db prune: 2 runs, 8 samples deleted from " + dir.db()) != std::string::npos);
  CHECK(last_json(run_kab({"history", "fuse-next", "--db", dir.db(), "--json"}, 60).output)[0]["nights"].size() == 12);
  CHECK(run_kab({"db", "prune", "--keep-nights", "1", "--suite", "othr", "--db", dir.db()}, 60).exit_code == 2);

  // Retention: 3 nights kept, and night 8 (the alert) with its baseline
  // (nights 5-7, as recorded here: none) and night 12's baseline (9-11).
  auto dry = run_kab({"db", "prune", "--keep-nights", "3", "--db", dir.db(), "--dry-run"}, 60);
  INFO(dry.output);
  CHECK(dry.ok());
  CHECK(dry.output.find("kab: db prune: suite fuse-next, scenario quick: would delete 7 of 12 nights: n1 (run 1), n2 "
                        "(run 2), n3 (run 3), n4 (run 4), n5 (run 5), n6 (run 6), n7 (run 7)\n") != std::string::npos);
  auto pruned = run_kab({"db", "prune", "--keep-nights", "3", "--db", dir.db()}, 60);
  INFO(pruned.output);
  CHECK(pruned.ok());
  // quick: 7 of 12 (28 samples); meta: 1 of 4 (2 samples); other: none left to delete
  CHECK(pruned.output.find("kab: db prune: suite fuse-next, scenario meta: deleted 1 of 4 nights: n1 (run 13)\n") !=
        std::string::npos);
  CHECK(pruned.output.find("kab: db prune: suite other, scenario quick: deleted 0 of 1 nights\n") != std::string::npos);
  CHECK(pruned.output.find("kab: db prune: 8 runs, 30 samples deleted from " + dir.db()) != std::string::npos);
  json after = last_json(run_kab({"history", "fuse-next", "--db", dir.db(), "--json"}, 60).output);
  REQUIRE(after[0]["nights"].size() == 5);
  CHECK(after[0]["nights"][0]["night"] == "n8");
  CHECK(after[0]["nights"][4]["night"] == "n12");
  {
    auto [ok, count] = proc::capture({"sqlite3", dir.db(), "SELECT count(*) FROM samples; PRAGMA integrity_check;"});
    CHECK(count == "30\nok\n");   // quick 5 nights x 4, meta 3 x 2, other 1 x 4
  }

  // Bad input: a suite it never ran, a metric that does not exist.
  auto none = run_kab({"history", "fuse-nxt", "--db", dir.db()}, 60);
  CHECK(none.exit_code == 2);
  CHECK(none.output.find("no night of suite fuse-nxt in " + dir.db() + ", did you mean 'fuse-next'?") !=
        std::string::npos);
  auto metric = run_kab({"history", "fuse-next", "--db", dir.db(), "--metric", "bandwith"}, 60);
  CHECK(metric.exit_code == 2);
  CHECK(metric.output.find("--metric bandwith: no such metric, did you mean 'bandwidth'?") != std::string::npos);
}
