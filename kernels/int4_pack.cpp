#include "kernels/int4_pack.h"

#include <string>

#include "kernels/error.h"

namespace illm {
namespace {

void check_packed_size(std::span<const uint8_t> packed, size_t count, const char* what) {
  if (packed.size() != int4_packed_size(count))
    throw Error(std::string(what) + ": " + std::to_string(packed.size()) + " bytes for " + std::to_string(count) +
                " int4 codes, expected " + std::to_string(int4_packed_size(count)));
  if (count % 2 == 1 && (packed.back() >> 4) != 0)
    throw Error(std::string(what) + ": padding nibble of the last byte is not zero");
}

// Nibble i of the packed stream (low nibble first).
uint8_t nibble(std::span<const uint8_t> packed, size_t i) {
  const uint8_t byte = packed[i / 2];
  return i % 2 == 0 ? static_cast<uint8_t>(byte & 0x0F) : static_cast<uint8_t>(byte >> 4);
}

}  // namespace

std::vector<uint8_t> pack_int4_unsigned(std::span<const uint8_t> codes, const char* what) {
  std::vector<uint8_t> packed(int4_packed_size(codes.size()), 0);
  for (size_t i = 0; i < codes.size(); ++i) {
    if (codes[i] > 15)
      throw Error(std::string(what) + ": code " + std::to_string(codes[i]) + " at index " + std::to_string(i) +
                  " outside [0, 15]");
    packed[i / 2] |= static_cast<uint8_t>(codes[i] << (i % 2 == 0 ? 0 : 4));
  }
  return packed;
}

std::vector<uint8_t> pack_int4_signed(std::span<const int8_t> codes, const char* what) {
  std::vector<uint8_t> packed(int4_packed_size(codes.size()), 0);
  for (size_t i = 0; i < codes.size(); ++i) {
    if (codes[i] < -8 || codes[i] > 7)
      throw Error(std::string(what) + ": code " + std::to_string(codes[i]) + " at index " + std::to_string(i) +
                  " outside [-8, 7]");
    const uint8_t two_complement = static_cast<uint8_t>(static_cast<uint8_t>(codes[i]) & 0x0F);
    packed[i / 2] |= static_cast<uint8_t>(two_complement << (i % 2 == 0 ? 0 : 4));
  }
  return packed;
}

std::vector<uint8_t> unpack_int4_unsigned(std::span<const uint8_t> packed, size_t count, const char* what) {
  check_packed_size(packed, count, what);
  std::vector<uint8_t> codes(count);
  for (size_t i = 0; i < count; ++i) codes[i] = nibble(packed, i);
  return codes;
}

std::vector<int8_t> unpack_int4_signed(std::span<const uint8_t> packed, size_t count, const char* what) {
  check_packed_size(packed, count, what);
  std::vector<int8_t> codes(count);
  for (size_t i = 0; i < count; ++i) {
    const int n = nibble(packed, i);
    codes[i] = static_cast<int8_t>(n >= 8 ? n - 16 : n);  // sign-extend the 4-bit two's complement
  }
  return codes;
}

}  // namespace illm
