// SHA-256 (FIPS 180-4), for content-addressed cache keys and provenance hashes;
// FNV-1a 64, for cheap non-cryptographic fingerprints (scenario text, seeds).
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

// FNV-1a 64-bit of `data`, starting from `seed` (the FNV offset basis by
// default; pass an earlier result or any value to chain or key the stream).
// Not cryptographic. fnv1a64("a") == 0xaf63dc4c8601ec8c.
std::uint64_t fnv1a64(std::string_view data, std::uint64_t seed = 0xcbf29ce484222325ULL);
// fnv1a64(data) as 16 lower-case hex digits, zero-padded.
std::string fnv1a64_hex(std::string_view data);

}  // namespace kab::core
