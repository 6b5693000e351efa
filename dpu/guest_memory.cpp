#include "guest_memory.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

namespace kab::dpu {

GuestMemory::~GuestMemory() {
  for (auto& r : m_regions)
    if (r.map_base)
      munmap(r.map_base, r.map_len);
}

static bool wraps(uint64_t a, uint64_t len) { return len != 0 && a + (len - 1) < a; }

bool GuestMemory::add_region(uint64_t gpa, uint64_t size, uint64_t user_addr, uint8_t* host) {
  if (size == 0 || wraps(gpa, size) || wraps(user_addr, size))
    return false;
  for (const auto& r : m_regions) {
    bool disjoint = gpa + (size - 1) < r.guest_phys_addr || r.guest_phys_addr + (r.size - 1) < gpa;
    if (!disjoint)
      return false;
  }
  m_regions.push_back(MemoryRegion{gpa, size, user_addr, host, nullptr, 0});
  return true;
}

std::string GuestMemory::map_region(uint64_t gpa, uint64_t size, uint64_t user_addr,
                                    uint64_t mmap_offset, int fd) {
  if (size == 0 || wraps(gpa, size) || wraps(user_addr, size) || wraps(mmap_offset, size))
    return "region size 0 or address range wraps";
  uint64_t len = mmap_offset + size;
  // A mapping past the end of its file would kill the daemon with SIGBUS on first access.
  struct stat st;
  if (fstat(fd, &st) != 0)
    return std::string("fstat of the region's fd failed: ") + std::strerror(errno);
  if (!S_ISREG(st.st_mode))
    return "the region's fd is not a memory file (memfd, shm or hugetlbfs file)";
  if (uint64_t(st.st_size) < len)
    return "region ends at byte " + std::to_string(len) + " of its fd, which holds only " +
           std::to_string(st.st_size);
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
  if (p == MAP_FAILED)
    return std::string("mmap of ") + std::to_string(len) + " bytes failed: " + std::strerror(errno);
  if (!add_region(gpa, size, user_addr, static_cast<uint8_t*>(p) + mmap_offset)) {
    munmap(p, len);
    return "region overlaps another";
  }
  m_regions.back().map_base = p;
  m_regions.back().map_len = len;
  return {};
}

uint8_t* GuestMemory::gpa_to_host(uint64_t gpa, uint64_t len) const {
  for (const auto& r : m_regions) {
    if (gpa < r.guest_phys_addr)
      continue;
    uint64_t off = gpa - r.guest_phys_addr;
    if (off >= r.size || len > r.size - off)
      continue;
    return r.host + off;
  }
  return nullptr;
}

uint8_t* GuestMemory::uaddr_to_host(uint64_t uaddr, uint64_t len) const {
  for (const auto& r : m_regions) {
    if (uaddr < r.user_addr)
      continue;
    uint64_t off = uaddr - r.user_addr;
    if (off >= r.size || len > r.size - off)
      continue;
    return r.host + off;
  }
  return nullptr;
}

bool GuestMemory::gpa_to_iovecs(uint64_t gpa, uint64_t len, std::vector<iovec>& out) const {
  size_t start = out.size();
  while (len > 0) {
    const MemoryRegion* hit = nullptr;
    for (const auto& r : m_regions)
      if (gpa >= r.guest_phys_addr && gpa - r.guest_phys_addr < r.size) {
        hit = &r;
        break;
      }
    if (!hit) {
      out.resize(start);
      return false;
    }
    uint64_t off = gpa - hit->guest_phys_addr;
    uint64_t n = std::min<uint64_t>(len, hit->size - off);
    out.push_back(iovec{hit->host + off, static_cast<size_t>(n)});
    len -= n;
    if (len > 0 && gpa + n < gpa) { // wrapped past 2^64
      out.resize(start);
      return false;
    }
    gpa += n;
  }
  return true;
}

} // namespace kab::dpu
