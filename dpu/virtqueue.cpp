#include "virtqueue.h"

#include <atomic>
#include <cstring>

namespace kab::dpu {

const char* to_string(WalkError e) {
  switch (e) {
  case WalkError::none: return "ok";
  case WalkError::head_out_of_range: return "head index out of range";
  case WalkError::next_out_of_range: return "next index out of range";
  case WalkError::bad_address: return "buffer outside guest memory";
  case WalkError::loop: return "descriptor loop (chain longer than its table)";
  case WalkError::nested_indirect: return "nested or chained indirect descriptor";
  case WalkError::bad_indirect: return "bad indirect table";
  case WalkError::readable_after_writable: return "readable descriptor after a writable one";
  case WalkError::too_long: return "chain addresses too many bytes";
  }
  return "?";
}

static VringDesc load_desc(const uint8_t* table, uint32_t i) {
  VringDesc d;
  // A plain copy: the guest may be writing concurrently, we only use our snapshot.
  std::memcpy(&d, table + size_t(i) * sizeof(VringDesc), sizeof d);
  return d;
}

// Appends one buffer; returns none or an error.
static WalkError add_buffer(const GuestMemory& mem, const VringDesc& d, Chain& out) {
  if (d.len == 0)
    return WalkError::none;
  bool writable = d.flags & k_desc_f_write;
  if (!writable && !out.writable.empty())
    return WalkError::readable_after_writable;
  if (out.readable_len + out.writable_len + d.len > k_max_chain_bytes)
    return WalkError::too_long;
  auto& v = writable ? out.writable : out.readable;
  if (!mem.gpa_to_iovecs(d.addr, d.len, v))
    return WalkError::bad_address;
  (writable ? out.writable_len : out.readable_len) += d.len;
  return WalkError::none;
}

WalkError walk_chain(const GuestMemory& mem, const uint8_t* table, uint32_t num, uint16_t head,
                     Chain& out) {
  out.clear();
  out.head = head;
  if (head >= num)
    return WalkError::head_out_of_range;
  uint32_t i = head;
  uint32_t seen = 0;
  for (;;) {
    if (++seen > num)
      return WalkError::loop;
    VringDesc d = load_desc(table, i);
    if (d.flags & k_desc_f_indirect) {
      if (d.flags & k_desc_f_next)
        return WalkError::nested_indirect;
      if (d.len == 0 || d.len % sizeof(VringDesc) != 0)
        return WalkError::bad_indirect;
      uint32_t n = d.len / sizeof(VringDesc);
      // A chain is no longer than the queue (virtio 1.x 2.7.5.3.1): nor is an indirect table.
      if (n > num)
        return WalkError::bad_indirect;
      const uint8_t* itable = mem.gpa_to_host(d.addr, d.len);
      if (!itable)
        return WalkError::bad_indirect;
      uint32_t j = 0, iseen = 0;
      for (;;) {
        if (++iseen > n)
          return WalkError::loop;
        VringDesc e = load_desc(itable, j);
        if (e.flags & k_desc_f_indirect)
          return WalkError::nested_indirect;
        if (auto err = add_buffer(mem, e, out); err != WalkError::none)
          return err;
        if (!(e.flags & k_desc_f_next))
          break;
        if (e.next >= n)
          return WalkError::next_out_of_range;
        j = e.next;
      }
      // An indirect descriptor ends the chain (it may not carry NEXT).
      return WalkError::none;
    }
    if (auto err = add_buffer(mem, d, out); err != WalkError::none)
      return err;
    if (!(d.flags & k_desc_f_next))
      return WalkError::none;
    if (d.next >= num)
      return WalkError::next_out_of_range;
    i = d.next;
  }
}

bool Virtqueue::configure(const GuestMemory* mem, uint32_t num, uint64_t desc_uaddr,
                          uint64_t avail_uaddr, uint64_t used_uaddr, bool event_idx) {
  if (num == 0 || num > k_max_queue_size || (num & (num - 1)))
    return false;
  uint8_t* desc = mem->uaddr_to_host(desc_uaddr, uint64_t(num) * 16);
  uint8_t* avail = mem->uaddr_to_host(avail_uaddr, 6 + uint64_t(num) * 2);
  uint8_t* used = mem->uaddr_to_host(used_uaddr, 6 + uint64_t(num) * 8);
  return configure_host(mem, num, desc, avail, used, event_idx);
}

bool Virtqueue::configure_host(const GuestMemory* mem, uint32_t num, uint8_t* desc,
                               uint8_t* avail, uint8_t* used, bool event_idx) {
  if (num == 0 || num > k_max_queue_size || (num & (num - 1)) || !desc || !avail || !used)
    return false;
  // The rings need 2- and 4-byte alignment for the atomic accesses below.
  if ((reinterpret_cast<uintptr_t>(avail) & 1) || (reinterpret_cast<uintptr_t>(used) & 3))
    return false;
  m_mem = mem;
  m_num = num;
  m_desc = desc;
  m_avail = avail;
  m_used = used;
  m_event_idx = event_idx;
  m_broken = false;
  return true;
}

static uint16_t load16(uint8_t* p, std::memory_order o) {
  return std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(p)).load(o);
}
static void store16(uint8_t* p, uint16_t v, std::memory_order o) {
  std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(p)).store(v, o);
}

void Virtqueue::set_last_avail(uint16_t idx) {
  m_last_avail = idx;
  m_used_idx = m_used ? load16(m_used + 2, std::memory_order_acquire) : idx;
  // A used index ahead of the available one, or more than a ring behind, is not one this
  // device left: start from the base as the front-end says.
  if (uint16_t(idx - m_used_idx) > m_num)
    m_used_idx = idx;
}

uint16_t Virtqueue::avail_idx() const { return load16(m_avail + 2, std::memory_order_acquire); }

std::optional<uint16_t> Virtqueue::pop() {
  if (m_broken || !m_desc)
    return std::nullopt;
  uint16_t idx = avail_idx();
  uint16_t pending = uint16_t(idx - m_last_avail);
  if (pending == 0)
    return std::nullopt;
  if (pending > m_num) {
    m_broken = true;
    return std::nullopt;
  }
  uint16_t head = load16(m_avail + 4 + 2 * (m_last_avail % m_num), std::memory_order_relaxed);
  ++m_last_avail;
  return head;
}

bool Virtqueue::push_used(uint16_t head, uint32_t len) {
  uint16_t old = m_used_idx;
  uint8_t* elem = m_used + 4 + 8 * size_t(old % m_num);
  uint32_t id = head;
  std::memcpy(elem, &id, 4);
  std::memcpy(elem + 4, &len, 4);
  m_used_idx = uint16_t(old + 1);
  store16(m_used + 2, m_used_idx, std::memory_order_release);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (m_event_idx) {
    uint16_t used_event = load16(m_avail + 4 + 2 * m_num, std::memory_order_relaxed);
    return uint16_t(m_used_idx - used_event - 1) < uint16_t(m_used_idx - old);
  }
  return !(load16(m_avail, std::memory_order_relaxed) & k_avail_f_no_interrupt);
}

bool Virtqueue::enable_kicks() {
  if (!m_desc)
    return false;
  if (m_event_idx)
    store16(m_used + 4 + 8 * m_num, m_last_avail, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return avail_idx() != m_last_avail;
}

} // namespace kab::dpu
