// vhost-user wire protocol (QEMU docs/interop/vhost-user.rst): message layout, request codes,
// feature bits, and reading/writing messages with their file descriptors over a unix socket.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace kab::dpu::vhost {

enum Request : uint32_t {
  GET_FEATURES = 1,
  SET_FEATURES = 2,
  SET_OWNER = 3,
  RESET_OWNER = 4,
  SET_MEM_TABLE = 5,
  SET_LOG_BASE = 6,
  SET_LOG_FD = 7,
  SET_VRING_NUM = 8,
  SET_VRING_ADDR = 9,
  SET_VRING_BASE = 10,
  GET_VRING_BASE = 11,
  SET_VRING_KICK = 12,
  SET_VRING_CALL = 13,
  SET_VRING_ERR = 14,
  GET_PROTOCOL_FEATURES = 15,
  SET_PROTOCOL_FEATURES = 16,
  GET_QUEUE_NUM = 17,
  SET_VRING_ENABLE = 18,
  SEND_RARP = 19,
  NET_SET_MTU = 20,
  SET_BACKEND_REQ_FD = 21,
  IOTLB_MSG = 22,
  SET_VRING_ENDIAN = 23,
  GET_CONFIG = 24,
  SET_CONFIG = 25,
  GET_INFLIGHT_FD = 31,
  SET_INFLIGHT_FD = 32,
  RESET_DEVICE = 34,
  GET_MAX_MEM_SLOTS = 36,
  ADD_MEM_REG = 37,
  REM_MEM_REG = 38,
  SET_STATUS = 39,
  GET_STATUS = 40,
};
const char* request_name(uint32_t r);

inline constexpr uint32_t k_flag_version = 0x1;
inline constexpr uint32_t k_flag_version_mask = 0x3;
inline constexpr uint32_t k_flag_reply = 0x4;
inline constexpr uint32_t k_flag_need_reply = 0x8;
inline constexpr uint64_t k_vring_idx_mask = 0xff;
inline constexpr uint64_t k_vring_nofd = 0x100;

// virtio / vhost feature bits
inline constexpr int k_f_indirect_desc = 28;
inline constexpr int k_f_event_idx = 29;
inline constexpr int k_f_protocol_features = 30;
inline constexpr int k_f_version_1 = 32;
// protocol feature bits
inline constexpr int k_pf_mq = 0;
inline constexpr int k_pf_reply_ack = 3;
inline constexpr int k_pf_backend_req = 5;  // a.k.a. SLAVE_REQ
inline constexpr int k_pf_config = 9;
inline constexpr int k_pf_reset_device = 13;

inline constexpr size_t k_header_size = 12;
inline constexpr size_t k_max_payload = 4096;
inline constexpr size_t k_max_fds = 8;
inline constexpr size_t k_max_mem_regions = 8;
inline constexpr size_t k_config_header = 12;  // offset, size, flags
inline constexpr size_t k_max_config_size = 256;

struct MemRegionWire {
  uint64_t guest_phys_addr;
  uint64_t memory_size;
  uint64_t userspace_addr;
  uint64_t mmap_offset;
};
struct VringStateWire {
  uint32_t index;
  uint32_t num;
};
struct VringAddrWire {
  uint32_t index;
  uint32_t flags;
  uint64_t desc_user_addr;
  uint64_t used_user_addr;
  uint64_t avail_user_addr;
  uint64_t log_guest_addr;
};
static_assert(sizeof(VringAddrWire) == 40);

struct Message {
  uint32_t request = 0;
  uint32_t flags = 0;
  uint32_t size = 0;
  uint8_t payload[k_max_payload];
  std::vector<int> fds;  // owned: the receiver must close or keep each

  // Copies a T from the payload when it holds at least sizeof(T) bytes.
  template <class T> bool get(T& out) const {
    if (size < sizeof(T))
      return false;
    std::memcpy(&out, payload, sizeof(T));
    return true;
  }
  void close_fds();
};

enum class RecvStatus { ok, eof, error };
// Reads one message (header with its SCM_RIGHTS fds, then the payload). On `error`, `err` says
// why (short read, payload larger than k_max_payload, truncated control data, bad version).
RecvStatus recv_message(int fd, Message& msg, std::string& err);
// Sends a message with optional fds. Returns false on a socket error.
bool send_message(int fd, uint32_t request, uint32_t flags, const void* payload, size_t size,
                  const int* fds = nullptr, size_t nfds = 0);

} // namespace kab::dpu::vhost
