// SHA-256 (FIPS 180-4), self-contained so the runtime needs no crypto library.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace padl {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, std::size_t size);
  // The digest of everything passed to update(); the object must not be updated afterwards.
  std::array<std::uint8_t, 32> finish();
  // finish() as 64 lowercase hex digits, the form manifest.json records.
  std::string hex_digest();

 private:
  void compress(const std::uint8_t* block);

  std::array<std::uint32_t, 8> state_;
  std::array<std::uint8_t, 64> buffer_;
  std::size_t buffered_ = 0;
  std::uint64_t total_bytes_ = 0;
};

// Hex SHA-256 of a whole file; throws std::runtime_error if it cannot be read.
std::string sha256_file(const std::string& path);

}  // namespace padl
