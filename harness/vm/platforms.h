// The platforms a guest runs on, registered in one table: a scenario's
// guest.platform names one. Adding a platform is its Hypervisor file pair in
// vm/ and one entry in platforms.cpp; nothing outside vm/ tests for a name.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/ports.h"

namespace kab::vm {

struct Platform {
  const char* name;           // guest.platform
  const char* summary;        // one line for help and doctor
  bool boots_disk;            // can boot guest.image: disk
  const char* memory_backing; // what backs guest memory (recorded with every run)
  // The platform's pinning plan for a host (the same its Hypervisor returns),
  // without constructing the hypervisor: kab doctor asks it.
  core::PinningPlan (*pinning)(int host_cpus, int vcpus);
  std::unique_ptr<core::Hypervisor> (*make)();
};

const std::vector<Platform>& platforms();
// The registered platform called `name`, nullptr when there is none.
const Platform* find_platform(std::string_view name);

}  // namespace kab::vm
