#include "fuse_io.h"

namespace kab::dpu {

IovReader::IovReader(std::span<const iovec> iov, uint64_t limit) : m_iov(iov) {
  uint64_t total = 0;
  for (const auto& v : iov)
    total += v.iov_len;
  m_remaining = std::min(total, limit);
}

bool IovReader::skip(size_t n) {
  if (n > m_remaining)
    return false;
  m_remaining -= n;
  while (n > 0) {
    size_t avail = m_iov[m_index].iov_len - m_offset;
    size_t k = std::min(avail, n);
    n -= k;
    m_offset += k;
    if (m_offset == m_iov[m_index].iov_len) {
      ++m_index;
      m_offset = 0;
    }
  }
  return true;
}

bool IovReader::read(void* dst, size_t n) {
  if (n > m_remaining)
    return false;
  auto* d = static_cast<uint8_t*>(dst);
  size_t i = m_index, off = m_offset, left = n;
  while (left > 0) {
    // Zero-length iovecs are skipped by the arithmetic below.
    size_t avail = m_iov[i].iov_len - off;
    size_t k = std::min(avail, left);
    std::memcpy(d, static_cast<const uint8_t*>(m_iov[i].iov_base) + off, k);
    d += k;
    left -= k;
    off += k;
    if (off == m_iov[i].iov_len) {
      ++i;
      off = 0;
    }
  }
  return skip(n);
}

bool IovReader::read_cstring(std::string& out, size_t max_len) {
  out.clear();
  size_t i = m_index, off = m_offset;
  uint64_t left = m_remaining;
  while (left > 0) {
    if (off == m_iov[i].iov_len) {
      ++i;
      off = 0;
      continue;
    }
    char c = static_cast<const char*>(m_iov[i].iov_base)[off];
    ++off;
    --left;
    if (c == '\0') {
      if (out.empty())
        return false;
      return skip(out.size() + 1);
    }
    if (out.size() == max_len)
      return false;
    out.push_back(c);
  }
  return false;
}

bool IovReader::take(size_t n, std::vector<iovec>& out) {
  if (n > m_remaining)
    return false;
  size_t i = m_index, off = m_offset, left = n;
  while (left > 0) {
    size_t avail = m_iov[i].iov_len - off;
    size_t k = std::min(avail, left);
    if (k)
      out.push_back(iovec{static_cast<uint8_t*>(m_iov[i].iov_base) + off, k});
    left -= k;
    off += k;
    if (off == m_iov[i].iov_len) {
      ++i;
      off = 0;
    }
  }
  return skip(n);
}

IovWriter::IovWriter(std::span<const iovec> iov) : m_iov(iov) {
  for (const auto& v : iov)
    m_capacity += v.iov_len;
}

bool IovWriter::slice(uint64_t off, uint64_t n, std::vector<iovec>& out) const {
  if (off > m_capacity || n > m_capacity - off)
    return false;
  for (const auto& v : m_iov) {
    if (n == 0)
      break;
    if (off >= v.iov_len) {
      off -= v.iov_len;
      continue;
    }
    size_t k = std::min<uint64_t>(v.iov_len - off, n);
    out.push_back(iovec{static_cast<uint8_t*>(v.iov_base) + off, k});
    n -= k;
    off = 0;
  }
  return true;
}

bool IovWriter::write_at(uint64_t off, const void* src, size_t n) {
  std::vector<iovec> parts;
  if (!slice(off, n, parts))
    return false;
  auto* s = static_cast<const uint8_t*>(src);
  for (const auto& p : parts) {
    std::memcpy(p.iov_base, s, p.iov_len);
    s += p.iov_len;
  }
  return true;
}

} // namespace kab::dpu
