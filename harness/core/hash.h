// SHA-256 (FIPS 180-4), for content-addressed cache keys and provenance hashes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kab::core {

class Sha256 {
 public:
  Sha256();
  Sha256& update(std::string_view data);
  // Length-prefixed, so ("ab","c") and ("a","bc") differ.
  Sha256& field(std::string_view data);
  std::string hex();   // finishes; the object is spent afterwards

 private:
  void block(const unsigned char* p);
  std::uint32_t m_h[8];
  unsigned char m_buf[64];
  std::size_t m_len = 0;
  std::uint64_t m_total = 0;
};

std::string sha256_hex(std::string_view data);
// Hash of a file's bytes; "" when it cannot be read.
std::string sha256_file(const std::string& path);

}  // namespace kab::core
