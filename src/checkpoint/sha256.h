// SHA-256 (FIPS 180-4) of files and byte ranges, for checkpoint checksums that `sha256sum` reproduces.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace sp {

class Sha256 {
public:
  Sha256();
  void update(const void* data, size_t n);
  std::string hex_digest();  // finishes the hash; call once

private:
  void block(const uint8_t* p);
  std::array<uint32_t, 8> h_;
  std::array<uint8_t, 64> buf_{};
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

// Hex SHA-256 of a whole file; an Error names the file if it cannot be read.
std::string sha256_file(const std::string& path);

}  // namespace sp
