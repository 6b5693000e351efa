#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "scenario/suite.h"

namespace fs = std::filesystem;
using namespace kab;

namespace {

// A directory with a git repository (only its .git folder: the parser checks
// no more) and a scenario beside the suite.
struct SuiteDir {
  fs::path dir;
  SuiteDir() {
    dir = fs::temp_directory_path() / ("kab-suite-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir / "linux" / ".git");
    std::ofstream(dir / "mine.yaml") << "name: mine\n";
  }
  ~SuiteDir() { fs::remove_all(dir); }
  scenario::Parsed<scenario::Suite> parse(const std::string& text) {
    return scenario::parse_suite((dir / "fuse.yaml").string(), text, KAB_SOURCE_DIR "/scenarios");
  }
  std::string errors(const std::string& text) {
    std::string out = scenario::format_errors(parse(text).errors);
    for (std::size_t p; (p = out.find(dir.string() + "/")) != std::string::npos;) out.erase(p, dir.string().size() + 1);
    return out;
  }
};

}  // namespace

TEST_CASE("suite: the defaults, paths resolved beside the suite then in scenarios/", "[scenario][suite]") {
  SuiteDir d;
  auto s = d.parse("tree: {git: linux, ref: fuse-next}\nscenarios: [mine.yaml, quick.yaml]\n");
  INFO(scenario::format_errors(s.errors));
  REQUIRE(s.value);
  CHECK(s.value->name == "fuse");   // the file's stem
  CHECK(s.value->tree == (d.dir / "linux").string());
  CHECK(s.value->ref == "fuse-next");
  CHECK(s.value->base.empty());
  CHECK(s.value->kernel == "stock-6.1");
  REQUIRE(s.value->scenarios.size() == 2);
  CHECK(s.value->scenarios[0] == (d.dir / "mine.yaml").string());
  CHECK(s.value->scenarios[1] == fs::path(KAB_SOURCE_DIR "/scenarios/quick.yaml").lexically_normal().string());
  CHECK(s.value->nights == 5);
  CHECK(s.value->reference.empty());
  CHECK(s.value->persist == 1);
  CHECK(s.value->min_effect < 0);   // the scenario's
  CHECK(s.value->alpha < 0);
  CHECK(s.value->repetitions == 0);
}

TEST_CASE("suite: every key read", "[scenario][suite]") {
  SuiteDir d;
  auto s = d.parse(
      "name: fuse-next\ntree:\n  git: " + (d.dir / "linux").string() +
      "/\n  ref: next\n  base: v6.1\nkernel: rfc-6.1\nscenarios: quick.yaml\nrepetitions: 6\n"
      "baseline: {reference: v6.1}\nalert: {min_effect: 5%, alpha: 0.01, persist: 2}\n");
  INFO(scenario::format_errors(s.errors));
  REQUIRE(s.value);
  CHECK(s.value->name == "fuse-next");
  CHECK(s.value->tree == (d.dir / "linux").string());   // no trailing slash
  CHECK(s.value->base == "v6.1");
  CHECK(s.value->kernel == "rfc-6.1");
  CHECK(s.value->scenarios.size() == 1);
  CHECK(s.value->repetitions == 6);
  CHECK(s.value->reference == "v6.1");
  CHECK(s.value->min_effect == Approx(0.05));
  CHECK(s.value->alpha == Approx(0.01));
  CHECK(s.value->persist == 2);
}

TEST_CASE("suite: each mistake at its line and column", "[scenario][suite]") {
  SuiteDir d;
  CHECK(d.errors("tree: {git: nowhere, ref: x}\nscenarios: [quick.yaml]\n") ==
        "fuse.yaml:1:13: 'nowhere' is not a git repository (no nowhere/.git)\ntree: {git: nowhere, ref: x}\n            ^ near here\n");
  CHECK(d.errors("tree: {git: linux, ref: x}\nscenarios: [nothing.yaml]\n").find(
            "fuse.yaml:2:12: scenario 'nothing.yaml' does not exist") == 0);
  CHECK(d.errors("tree: {git: linux, ref: x}\nscenarios: [quick.yaml]\nbaseline: {nights: 0}\n").find(
            "fuse.yaml:3:20: 'nights' must be between 1 and 100") == 0);
  CHECK(d.errors("tree: {git: linux, ref: x}\nscenarios: [quick.yaml]\nbaseline: {nights: 3, reference: v6.1}\n")
            .find("fuse.yaml:3:11: the baseline is either the last 'nights' or a pinned 'reference', not both") == 0);
  CHECK(d.errors("tree: {git: linux, ref: x}\nscenarios: [quick.yaml]\nalert: {persist: 0, alpha: 0.7}\n").find(
            "fuse.yaml:3:18: 'persist' must be between 1 and 30 nights") != std::string::npos);
  CHECK(d.errors("tree: {git: linux, ref: x}\nscenarios: [quick.yaml]\nalert: {persist: 0, alpha: 0.7}\n").find(
            "fuse.yaml:3:28: 'alpha' must be between 0 and 0.5") != std::string::npos);
  CHECK(d.errors("tree: {git: linux}\nscenarios: [quick.yaml]\n").find("fuse.yaml:1:7: missing required key 'ref' in tree") == 0);
  CHECK(d.errors("tree: {git: linux, ref: x}\nscenario: [quick.yaml]\n").find("unknown key 'scenario', did you mean "
                                                                               "'scenarios'?") != std::string::npos);
  CHECK(d.errors("name: a b\ntree: {git: linux, ref: x}\nscenarios: [quick.yaml]\n").find(
            "fuse.yaml:1:7: 'name' may hold letters, digits") == 0);
}
