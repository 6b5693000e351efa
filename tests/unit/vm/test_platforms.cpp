// The platform table and each platform's pinning plan: a pure function of the
// host's CPUs, the one a run applies and kab doctor reports.
#include <catch2/catch.hpp>

#include <set>

#include "vm/libvirt_hypervisor.h"
#include "vm/platforms.h"

using namespace kab;

TEST_CASE("platforms: registered once each, found by name", "[vm][platforms]") {
  std::set<std::string> names;
  for (const auto& p : vm::platforms()) CHECK(names.insert(p.name).second);
  CHECK(names == std::set<std::string>{"qemu", "uml"});
  REQUIRE(vm::find_platform("qemu"));
  CHECK(vm::find_platform("qemu")->boots_disk);
  CHECK_FALSE(vm::find_platform("uml")->boots_disk);
  CHECK(vm::find_platform("kvmtool") == nullptr);
  // The table's hypervisors say what the run needs to know, unconnected.
  auto uml = vm::find_platform("uml")->make();
  CHECK(uml->kernel_arch() == "um");
  CHECK(uml->report_device() == "/dev/ttyS0");
  auto qemu = vm::find_platform("qemu")->make();   // connects only when used
  CHECK(qemu->kernel_arch() == "x86_64");
  CHECK(qemu->report_device() == "/dev/ttyS1");
  CHECK(qemu->pinning(16, 2).vcpu_cpus == vm::qemu_pinning(16, 2).vcpu_cpus);
}

TEST_CASE("platforms: QEMU pinning for 1, 2, 4 and 16 host CPUs", "[vm][platforms]") {
  const auto& pin = *vm::find_platform("qemu")->pinning;
  for (int cpus : {1, 2}) {
    auto p = pin(cpus, 1);
    CHECK(p.vcpu_cpus.empty());
    CHECK(p.emulator_cpus.empty());
    CHECK(p.backend_cpus.empty());
    CHECK_FALSE(p.raise_priority);
    CHECK(p.noise == "not pinned (host has " + std::to_string(cpus) + " CPUs, need 3)");
    CHECK(p.warning == "warning: host has " + std::to_string(cpus) +
                           " CPUs: vCPUs, emulator and backend are not pinned apart");
  }
  auto four = pin(4, 1);
  CHECK(four.vcpu_cpus == std::vector<int>{2});
  CHECK(four.emulator_cpus == std::vector<int>{1});
  CHECK(four.backend_cpus.empty());   // free on 0
  CHECK(four.noise == "vcpus pinned to 2-2, emulator to 1, backend free on 0");
  CHECK(four.warning.empty());
  CHECK(pin(4, 2).vcpu_cpus == std::vector<int>{2, 3});
  CHECK_FALSE(pin(4, 3).warning.empty());   // 3 vCPUs need 5 CPUs
  auto sixteen = pin(16, 4);
  CHECK(sixteen.vcpu_cpus == std::vector<int>{2, 3, 4, 5});
  CHECK(sixteen.noise == "vcpus pinned to 2-5, emulator to 1, backend free on 0");
}

TEST_CASE("platforms: UML pinning for 1, 2, 4 and 16 host CPUs", "[vm][platforms]") {
  const auto& pin = *vm::find_platform("uml")->pinning;
  for (int cpus : {1, 2, 4, 16}) {
    auto p = pin(cpus, 1);
    const int last = cpus - 1;
    CHECK(p.vcpu_cpus == std::vector<int>{last});
    CHECK(p.backend_cpus == std::vector<int>{last});
    CHECK(p.emulator_cpus.empty());
    CHECK(p.raise_priority);
    CHECK(p.caveat == "uml: uniprocessor, syscalls via ptrace");
    CHECK(p.noise == "UML and backend pinned to host CPU " + std::to_string(last));
    CHECK(p.warning.empty());
  }
}
