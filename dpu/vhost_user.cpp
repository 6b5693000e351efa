#include "vhost_user.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace kab::dpu::vhost {

const char* request_name(uint32_t r) {
  switch (r) {
  case GET_FEATURES: return "GET_FEATURES";
  case SET_FEATURES: return "SET_FEATURES";
  case SET_OWNER: return "SET_OWNER";
  case RESET_OWNER: return "RESET_OWNER";
  case SET_MEM_TABLE: return "SET_MEM_TABLE";
  case SET_LOG_BASE: return "SET_LOG_BASE";
  case SET_LOG_FD: return "SET_LOG_FD";
  case SET_VRING_NUM: return "SET_VRING_NUM";
  case SET_VRING_ADDR: return "SET_VRING_ADDR";
  case SET_VRING_BASE: return "SET_VRING_BASE";
  case GET_VRING_BASE: return "GET_VRING_BASE";
  case SET_VRING_KICK: return "SET_VRING_KICK";
  case SET_VRING_CALL: return "SET_VRING_CALL";
  case SET_VRING_ERR: return "SET_VRING_ERR";
  case GET_PROTOCOL_FEATURES: return "GET_PROTOCOL_FEATURES";
  case SET_PROTOCOL_FEATURES: return "SET_PROTOCOL_FEATURES";
  case GET_QUEUE_NUM: return "GET_QUEUE_NUM";
  case SET_VRING_ENABLE: return "SET_VRING_ENABLE";
  case SEND_RARP: return "SEND_RARP";
  case NET_SET_MTU: return "NET_SET_MTU";
  case SET_BACKEND_REQ_FD: return "SET_BACKEND_REQ_FD";
  case IOTLB_MSG: return "IOTLB_MSG";
  case SET_VRING_ENDIAN: return "SET_VRING_ENDIAN";
  case GET_CONFIG: return "GET_CONFIG";
  case SET_CONFIG: return "SET_CONFIG";
  case GET_INFLIGHT_FD: return "GET_INFLIGHT_FD";
  case SET_INFLIGHT_FD: return "SET_INFLIGHT_FD";
  case RESET_DEVICE: return "RESET_DEVICE";
  case GET_MAX_MEM_SLOTS: return "GET_MAX_MEM_SLOTS";
  case ADD_MEM_REG: return "ADD_MEM_REG";
  case REM_MEM_REG: return "REM_MEM_REG";
  case SET_STATUS: return "SET_STATUS";
  case GET_STATUS: return "GET_STATUS";
  default: return "UNKNOWN";
  }
}

void Message::close_fds() {
  for (int f : fds)
    if (f >= 0)
      ::close(f);
  fds.clear();
}

RecvStatus recv_message(int fd, Message& msg, std::string& err) {
  msg.fds.clear();
  uint8_t hdr[k_header_size];
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * k_max_fds)];
  iovec iov{hdr, sizeof hdr};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = control;
  mh.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n == 0)
    return RecvStatus::eof;
  if (n < 0) {
    if (errno == ECONNRESET)
      return RecvStatus::eof;
    err = std::string("recvmsg: ") + std::strerror(errno);
    return RecvStatus::error;
  }
  for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
      continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int f;
      std::memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof f);
      msg.fds.push_back(f);
    }
  }
  if (mh.msg_flags & MSG_CTRUNC) {
    msg.close_fds();
    err = "control data truncated (too many fds)";
    return RecvStatus::error;
  }
  // The rest of the header, if the socket delivered it in pieces.
  size_t got = size_t(n);
  while (got < sizeof hdr) {
    ssize_t m = ::read(fd, hdr + got, sizeof hdr - got);
    if (m < 0 && errno == EINTR)
      continue;
    if (m <= 0) {
      msg.close_fds();
      err = "short header";
      return RecvStatus::error;
    }
    got += size_t(m);
  }
  std::memcpy(&msg.request, hdr, 4);
  std::memcpy(&msg.flags, hdr + 4, 4);
  std::memcpy(&msg.size, hdr + 8, 4);
  if ((msg.flags & k_flag_version_mask) != k_flag_version) {
    msg.close_fds();
    err = "unsupported protocol version " + std::to_string(msg.flags & k_flag_version_mask);
    return RecvStatus::error;
  }
  if (msg.size > k_max_payload) {
    msg.close_fds();
    err = "payload of " + std::to_string(msg.size) + " bytes is too large";
    return RecvStatus::error;
  }
  got = 0;
  while (got < msg.size) {
    ssize_t m = ::read(fd, msg.payload + got, msg.size - got);
    if (m < 0 && errno == EINTR)
      continue;
    if (m <= 0) {
      msg.close_fds();
      err = "short payload";
      return RecvStatus::error;
    }
    got += size_t(m);
  }
  return RecvStatus::ok;
}

bool send_message(int fd, uint32_t request, uint32_t flags, const void* payload, size_t size,
                  const int* fds, size_t nfds) {
  uint8_t hdr[k_header_size];
  uint32_t sz = uint32_t(size);
  std::memcpy(hdr, &request, 4);
  std::memcpy(hdr + 4, &flags, 4);
  std::memcpy(hdr + 8, &sz, 4);
  iovec iov[2] = {{hdr, sizeof hdr}, {const_cast<void*>(payload), size}};
  msghdr mh{};
  mh.msg_iov = iov;
  mh.msg_iovlen = size ? 2 : 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * k_max_fds)];
  if (nfds > 0 && nfds <= k_max_fds) {
    mh.msg_control = control;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    std::memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  size_t total = sizeof hdr + size;
  ssize_t n;
  do {
    n = sendmsg(fd, &mh, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0)
    return false;
  if (size_t(n) == total)
    return true;
  // Finish a partial send without fds.
  std::vector<uint8_t> all(total);
  std::memcpy(all.data(), hdr, sizeof hdr);
  if (size)
    std::memcpy(all.data() + sizeof hdr, payload, size);
  size_t off = size_t(n);
  while (off < total) {
    ssize_t m = ::send(fd, all.data() + off, total - off, MSG_NOSIGNAL);
    if (m < 0 && errno == EINTR)
      continue;
    if (m <= 0)
      return false;
    off += size_t(m);
  }
  return true;
}

} // namespace kab::dpu::vhost
