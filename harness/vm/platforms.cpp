#include "vm/platforms.h"

#include "vm/libvirt_hypervisor.h"
#include "vm/uml_hypervisor.h"

namespace kab::vm {

const std::vector<Platform>& platforms() {
  static const std::vector<Platform> table = {
      {"qemu", "QEMU through libvirt (KVM when /dev/kvm is usable, TCG otherwise)", true,
       "memfd, shared (libvirt memoryBacking: vhost-user maps guest memory), 4 KiB pages", qemu_pinning,
       [] { return std::unique_ptr<core::Hypervisor>(std::make_unique<LibvirtHypervisor>()); }},
      {"uml", "User-Mode Linux: the ARCH=um kernel as a host process", false,
       "a file on /dev/shm (UML's physical memory, mapped shared by the backend)", uml_pinning,
       [] { return std::unique_ptr<core::Hypervisor>(std::make_unique<UmlHypervisor>()); }},
  };
  return table;
}

const Platform* find_platform(std::string_view name) {
  for (const auto& p : platforms())
    if (name == p.name) return &p;
  return nullptr;
}

}  // namespace kab::vm
