// Reading a request from, and writing a reply into, scattered guest buffers.
// Both classes only touch the iovecs they are given (already checked against guest memory).
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

namespace kab::dpu {

class IovReader {
public:
  // Reads at most `limit` bytes of `iov`.
  IovReader(std::span<const iovec> iov, uint64_t limit);
  uint64_t remaining() const { return m_remaining; }
  // Copies n bytes out and advances; false (nothing consumed) if fewer remain.
  bool read(void* dst, size_t n);
  template <class T> bool read(T& out) { return read(&out, sizeof out); }
  // Reads a NUL-terminated string of at most max_len bytes (without the NUL) and advances past
  // the NUL. False when there is no NUL within reach or the string is empty.
  bool read_cstring(std::string& out, size_t max_len);
  // Appends iovecs for the next n bytes without copying, and advances.
  bool take(size_t n, std::vector<iovec>& out);
  bool skip(size_t n);

private:
  std::span<const iovec> m_iov;
  size_t m_index = 0;
  size_t m_offset = 0;  // within m_iov[m_index]
  uint64_t m_remaining;
};

class IovWriter {
public:
  explicit IovWriter(std::span<const iovec> iov);
  uint64_t capacity() const { return m_capacity; }
  // Writes n bytes at byte offset `off`; false (nothing written) if it does not fit.
  bool write_at(uint64_t off, const void* src, size_t n);
  // Appends iovecs covering [off, off+n) of the buffers; false if out of range.
  bool slice(uint64_t off, uint64_t n, std::vector<iovec>& out) const;

private:
  std::span<const iovec> m_iov;
  uint64_t m_capacity = 0;
};

} // namespace kab::dpu
