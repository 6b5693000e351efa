#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "image/initramfs.h"
#include "proc/runner.h"

using namespace kab;
namespace fs = std::filesystem;

TEST_CASE("cpio archives are read back by the real cpio", "[image]") {
  fs::path dir = fs::temp_directory_path() / "kab-test-cpio";
  fs::remove_all(dir);
  fs::create_directories(dir / "x");
  std::string archive = image::sample_cpio({{"KAB_SAMPLE", "7"}, {"KAB_TAG", "it's"}}, "[global]\nbs=1M\n");
  { std::ofstream(dir / "a.cpio", std::ios::binary) << archive; }
  CHECK(archive.size() % 4 == 0);
  proc::Options o;
  o.argv = {"cpio", "-i", "-d", "-F", (dir / "a.cpio").string()};
  o.cwd = (dir / "x").string();
  auto r = proc::run(o);
  INFO(r.output);
  REQUIRE(r.ok());
  std::ifstream env(dir / "x/kab/sample/env"), job(dir / "x/kab/sample/job.fio");
  std::string env_text((std::istreambuf_iterator<char>(env)), {}), job_text((std::istreambuf_iterator<char>(job)), {});
  CHECK(env_text == "KAB_SAMPLE='7'\nKAB_TAG='it'\\''s'\n");
  CHECK(job_text == "[global]\nbs=1M\n");
  fs::remove_all(dir);
}
