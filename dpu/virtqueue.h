// Split virtqueue (virtio 1.x, section 2.7): the device side.
//
// The rings live in guest memory that the guest may change at any time, so every descriptor is
// copied once before it is checked and used, and indices read from the guest are validated.
#pragma once

#include "guest_memory.h"

#include <sys/uio.h>

#include <cstdint>
#include <optional>
#include <vector>

namespace kab::dpu {

inline constexpr uint16_t k_desc_f_next = 1;
inline constexpr uint16_t k_desc_f_write = 2;
inline constexpr uint16_t k_desc_f_indirect = 4;
inline constexpr uint16_t k_avail_f_no_interrupt = 1;
inline constexpr uint16_t k_used_f_no_notify = 1;
inline constexpr uint32_t k_max_queue_size = 32768;
// A chain may address at most this much guest memory in total (readable + writable).
inline constexpr uint64_t k_max_chain_bytes = 64ull << 20;

struct VringDesc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(VringDesc) == 16);

// One descriptor chain, translated to host memory: what the device reads, then what it writes.
struct Chain {
  uint16_t head = 0;
  std::vector<iovec> readable;
  std::vector<iovec> writable;
  uint64_t readable_len = 0;
  uint64_t writable_len = 0;
  void clear() {
    readable.clear();
    writable.clear();
    readable_len = writable_len = 0;
  }
};

enum class WalkError {
  none,
  head_out_of_range,
  next_out_of_range,
  bad_address,      // a buffer not fully inside guest memory
  loop,             // more descriptors than the table holds
  nested_indirect,
  bad_indirect,     // indirect table length 0, not a multiple of 16, or unmapped
  readable_after_writable,
  too_long,         // more than k_max_chain_bytes in total
};
const char* to_string(WalkError e);

// Walks the chain starting at `head` of the descriptor table `table` (num entries, host memory
// already checked to be inside guest memory). Fills `out` (cleared first). Never reads outside
// the table or an indirect table; never follows more than num (or table-length) descriptors.
WalkError walk_chain(const GuestMemory& mem, const uint8_t* table, uint32_t num, uint16_t head,
                     Chain& out);

// The rings of one queue. Not thread-safe: the owner serialises pop and push.
class Virtqueue {
public:
  // Returns false when num is not a power of two in [1, 32768] or a ring is not fully inside
  // guest memory. Ring addresses are the front-end's virtual addresses (vhost-user).
  bool configure(const GuestMemory* mem, uint32_t num, uint64_t desc_uaddr, uint64_t avail_uaddr,
                 uint64_t used_uaddr, bool event_idx);
  // Same, with host pointers already resolved (tests).
  bool configure_host(const GuestMemory* mem, uint32_t num, uint8_t* desc, uint8_t* avail,
                      uint8_t* used, bool event_idx);
  // The ring resumes at `idx` (SET_VRING_BASE). The used index resumes where the device left it
  // in guest memory: after requests the control plane stopped waiting for (never completed), it
  // is behind idx, and completions go on from there rather than skipping slots.
  void set_last_avail(uint16_t idx);
  uint16_t last_avail() const { return m_last_avail; }
  uint32_t num() const { return m_num; }
  bool configured() const { return m_desc != nullptr; }

  // Next available head, or nullopt when the ring is empty. Sets broken() and returns nullopt
  // when the guest publishes an index more than num ahead.
  std::optional<uint16_t> pop();
  WalkError walk(uint16_t head, Chain& out) const { return walk_chain(*m_mem, m_desc, m_num, head, out); }
  // Publishes a used element. Returns true when the driver wants a notification.
  bool push_used(uint16_t head, uint32_t len);
  // With event idx: tells the driver to kick for the next buffer after last_avail.
  // Returns true when more buffers arrived meanwhile (caller should keep popping).
  bool enable_kicks();
  bool broken() const { return m_broken; }
  // True when the driver has made buffers available beyond last_avail.
  bool has_pending() const { return m_desc && avail_idx() != m_last_avail; }
  uint16_t used_idx() const { return m_used_idx; }

private:
  uint16_t avail_idx() const;

  const GuestMemory* m_mem = nullptr;
  uint32_t m_num = 0;
  uint8_t* m_desc = nullptr;
  uint8_t* m_avail = nullptr;
  uint8_t* m_used = nullptr;
  bool m_event_idx = false;
  uint16_t m_last_avail = 0;
  uint16_t m_used_idx = 0;
  bool m_broken = false;
};

} // namespace kab::dpu
