// fio job files as kab runs them: parsing with positions, overrides in every
// job section, the share and group reporting in front, refusals with remedies.
#include <catch2/catch.hpp>

#include "core/fio_job.h"

using namespace kab::core;

TEST_CASE("fio job file: sections and options with their positions", "[fio_job]") {
  std::vector<Diagnostic> errors;
  auto f = parse_fio_job_file("j.fio", "; comment\nbs=4k\n[global]\n  size = 1G\n[a]\ntime_based\n# x\n[b]\nrw=read\n", errors);
  CHECK(errors.empty());
  REQUIRE(f.sections.size() == 4);
  CHECK(f.sections[0].name == "global");   // options before any section
  CHECK(f.sections[0].options[0].key == "bs");
  CHECK(f.sections[1].options[0].key == "size");
  CHECK(f.sections[1].options[0].value == "1G");
  CHECK(f.sections[1].options[0].line == 4);
  CHECK(f.sections[1].options[0].col == 3);
  CHECK(f.sections[1].options[0].value_col == 10);
  CHECK(f.sections[2].options[0].flag);
  CHECK(f.sections[3].line == 8);
  parse_fio_job_file("j.fio", "[\nrw=read\n", errors);
  REQUIRE(errors.size() == 1);
  CHECK(format_diagnostic(errors[0]) == "j.fio:1:1: a section header needs a name: [name]\n[\n^ near here\n");
}

TEST_CASE("fio job file as run: the share first, overrides in every job section", "[fio_job]") {
  std::vector<Diagnostic> errors;
  auto f = parse_fio_job_file("big.fio", "[global]\nruntime=900\nsize=10G\n[w]\nrw=write\nsize=1G\n[r]\nrw=read\n", errors);
  CHECK(fio_job_file_text(f, {{"runtime", "10"}, {"size", "64M"}}) ==
        "; big.fio as kab runs it (fio.override: runtime=10 size=64M)\n"
        "[global]\ndirectory=/mnt/kab\ngroup_reporting\n"
        "\n[global]\nruntime=900\nsize=10G\n"
        "\n[w]\nrw=write\nruntime=10\nsize=64M\n"
        "\n[r]\nrw=read\nruntime=10\nsize=64M\n");
  FioSpec spec;
  spec.job_file = "big.fio";
  spec.job_file_text = f.text;
  CHECK(fio_job_for(spec, {}) == fio_job_file_text(f, {}));
}

TEST_CASE("fio job file: paths outside the share and devices are refused with the remedy", "[fio_job]") {
  std::vector<Diagnostic> errors;
  auto f = parse_fio_job_file("t.fio",
                              "[a]\ndirectory=/mnt/kab/sub\nfilename=rel:/mnt/kab/x\n[b]\nfilename=/dev/sda\n"
                              "[c]\ndirectory=/mnt/kab/../etc\n[d]\nfilename=/srv/a\\:b\n",
                              errors);
  auto bad = check_fio_job_targets(f);
  REQUIRE(bad.size() == 3);
  CHECK(format_diagnostic(bad[0]) ==
        "t.fio:5:10: filename=/dev/sda is a device: kab measures files on the virtio-fs share; name a file instead "
        "(e.g. filename=testfile), which kab creates in the share\nfilename=/dev/sda\n         ^ near here\n");
  CHECK(bad[1].line == 7);
  CHECK(bad[1].message.find("directory=/mnt/kab/../etc is outside the share") == 0);
  CHECK(bad[2].message.find("filename=/srv/a:b is outside the share: kab runs every job in /mnt/kab; remove the line") == 0);
}

TEST_CASE("fio job file: relative names are in the share unless '..' leaves it", "[fio_job]") {
  std::vector<Diagnostic> errors;
  auto f = parse_fio_job_file("r.fio", "[a]\nfilename=data.bin\ndirectory=sub/../sub2\n[b]\nfilename=../../etc/passwd\n",
                              errors);
  auto bad = check_fio_job_targets(f);
  REQUIRE(bad.size() == 1);
  CHECK(bad[0].line == 5);
  CHECK(bad[0].message.find("filename=../../etc/passwd is outside the share") == 0);
}

TEST_CASE("fio job file: how long it can run", "[fio_job]") {
  std::vector<Diagnostic> errors;
  auto run = [&](const std::string& text) { return longest_run_s(parse_fio_job_file("t.fio", text, errors)); };
  CHECK(run("[a]\nrw=write\nsize=1M\n") == 0);   // bounded by its size only
  CHECK(run("[global]\nruntime=30\n[a]\n[b]\nruntime=1m\nramp_time=5\n") == 65);   // concurrent: the longest
  CHECK(run("[global]\nruntime=30\n[a]\n[b]\nstonewall\nruntime=10\n[c]\nramp_time=2\n") == 30 + 32);
  CHECK(run("[global-x]\nruntime=20\n[a]\nstartdelay=5\n") == 25);   // fio takes any [global…] section as global
}

TEST_CASE("fio job file: the most it lays out", "[fio_job]") {
  std::vector<Diagnostic> errors;
  auto size = [&](const std::string& text) { return total_size_bytes(parse_fio_job_file("t.fio", text, errors)); };
  CHECK(size("[global]\nsize=1G\n[a]\nnumjobs=4\n[b]\nsize=100M\n") == (4ull << 30) + (100ull << 20));
  CHECK(size("[a]\nfilesize=8M\nnrfiles=3\n") == 24ull << 20);
  CHECK(size("[a]\nsize=50%\n") == 0);
}
