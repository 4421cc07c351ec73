#pragma once
// int4 packing (docs/method.md §9.1; docs/integer-semantics.md "## int4 packing"): two 4-bit codes per byte,
// element 2i in the low nibble, element 2i+1 in the high nibble; an odd length is padded with a zero code.
// Unsigned codes are in [0, 15]; signed codes in [−8, 7] are stored as their 4-bit two's complement.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace illm {

// Bytes needed for `count` int4 codes: ⌈count / 2⌉.
constexpr inline size_t int4_packed_size(size_t count) { return count / 2 + count % 2; }

// Throw illm::Error (naming `what` and the index) on a code outside the 4-bit range.
std::vector<uint8_t> pack_int4_unsigned(std::span<const uint8_t> codes, const char* what = "int4 pack");
std::vector<uint8_t> pack_int4_signed(std::span<const int8_t> codes, const char* what = "int4 pack");

// Throw illm::Error when packed.size() != int4_packed_size(count) or the padding nibble is not zero.
std::vector<uint8_t> unpack_int4_unsigned(std::span<const uint8_t> packed, size_t count,
                                          const char* what = "int4 unpack");
std::vector<int8_t> unpack_int4_signed(std::span<const uint8_t> packed, size_t count,
                                       const char* what = "int4 unpack");

}  // namespace illm
