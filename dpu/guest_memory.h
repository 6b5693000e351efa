// Guest memory as announced by the vhost-user front-end (SET_MEM_TABLE).
//
// Every guest-physical address (descriptors) and every front-end virtual address (ring
// addresses) goes through this table before it is dereferenced. A range is accepted only when
// it lies completely inside mapped regions; arithmetic overflow counts as "outside".
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <string>
#include <vector>

namespace kab::dpu {

struct MemoryRegion {
  uint64_t guest_phys_addr = 0;
  uint64_t size = 0;
  uint64_t user_addr = 0;  // the front-end's virtual address of the region
  uint8_t* host = nullptr; // our mapping of guest_phys_addr
  void* map_base = nullptr;  // non-null when we own an mmap
  size_t map_len = 0;
};

class GuestMemory {
public:
  GuestMemory() = default;
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;
  ~GuestMemory();

  // Adds a region backed by memory the caller owns (tests, fuzzers). Returns false when it
  // overlaps an existing region or wraps around.
  bool add_region(uint64_t gpa, uint64_t size, uint64_t user_addr, uint8_t* host);
  // mmaps `size + mmap_offset` bytes of fd (shared) and adds the region. Does not take the fd.
  // Returns an empty string on success, else a message naming the cause.
  std::string map_region(uint64_t gpa, uint64_t size, uint64_t user_addr, uint64_t mmap_offset,
                         int fd);

  // Host pointer for [gpa, gpa+len) when it lies inside one region, else nullptr.
  uint8_t* gpa_to_host(uint64_t gpa, uint64_t len) const;
  // Same for the front-end's virtual addresses (vring addresses).
  uint8_t* uaddr_to_host(uint64_t uaddr, uint64_t len) const;
  // Appends iovecs for [gpa, gpa+len), splitting at region boundaries. Returns false (and
  // appends nothing) if any byte is unmapped.
  bool gpa_to_iovecs(uint64_t gpa, uint64_t len, std::vector<iovec>& out) const;

  size_t region_count() const { return m_regions.size(); }
  const std::vector<MemoryRegion>& regions() const { return m_regions; }

private:
  std::vector<MemoryRegion> m_regions;
};

} // namespace kab::dpu
