#pragma once
// SHA-256 (FIPS 180-4), our own implementation: the model file's integrity hashes and the identity of
// source checkpoints. Incremental (update … finish) so large files are hashed in chunks.
#include <array>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

namespace illm::formats {

using Sha256Digest = std::array<uint8_t, 32>;

class Sha256 {
 public:
  Sha256();
  void update(std::span<const uint8_t> bytes);
  void update(std::string_view text);
  // Pads and returns the digest; the object must not be updated afterwards.
  Sha256Digest finish();

 private:
  void compress(const uint8_t* block);

  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_{};
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
};

// The compression function in use: "sha-ni" (x86 SHA extensions, chosen at run time when the CPU has them, ~10x
// faster) or "portable". Both give the same digests (tests/formats/sha256_test.cpp).
const char* sha256_implementation();
// Test hook: force the portable compression function (true) or restore the automatic choice (false).
void sha256_force_portable(bool on);

// Lower-case hexadecimal of any byte string (two characters per byte).
std::string to_hex(std::span<const uint8_t> bytes);

Sha256Digest sha256(std::span<const uint8_t> bytes);
std::string sha256_hex(std::span<const uint8_t> bytes);
std::string sha256_hex(std::string_view text);

// Hash of the bytes [offset, EOF) of a file; throws illm::Error naming the file when it cannot be read
// or is shorter than `offset`.
Sha256Digest sha256_of_file(const std::filesystem::path& file, uint64_t offset = 0);

}  // namespace illm::formats
