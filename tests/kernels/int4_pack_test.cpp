// int4 packing: hand-derived bytes, range edges and random round trips (docs/method.md §9.1).
#include "kernels/int4_pack.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "kernels/error.h"

namespace illm {
namespace {

TEST(Int4Pack, HandDerivedSignedAndUnsigned) {
  const std::vector<uint8_t> u = {0, 15, 1, 14, 7};
  const std::vector<uint8_t> packed = pack_int4_unsigned(u);
  ASSERT_EQ(packed, (std::vector<uint8_t>{0xF0, 0xE1, 0x07}));  // low nibble first, zero padding
  EXPECT_EQ(unpack_int4_unsigned(packed, u.size()), u);
  const std::vector<int8_t> s = {-8, 7, -1, 0, 1};
  const std::vector<uint8_t> ps = pack_int4_signed(s);
  ASSERT_EQ(ps, (std::vector<uint8_t>{0x78, 0x0F, 0x01}));
  EXPECT_EQ(unpack_int4_signed(ps, s.size()), s);
  EXPECT_TRUE(pack_int4_unsigned({}).empty());
  EXPECT_THROW(pack_int4_unsigned(std::vector<uint8_t>{16}), Error);
  EXPECT_THROW(pack_int4_signed(std::vector<int8_t>{8}), Error);
  EXPECT_THROW(pack_int4_signed(std::vector<int8_t>{-9}), Error);
  EXPECT_THROW(unpack_int4_unsigned(std::vector<uint8_t>{0xF0}, 1), Error);  // non-zero padding
  EXPECT_THROW(unpack_int4_unsigned(std::vector<uint8_t>{0x00, 0x00}, 5), Error);
}

TEST(Int4Pack, RandomRoundTrip) {
  std::mt19937 rng(11);
  for (size_t n : {size_t{1}, size_t{2}, size_t{171}, size_t{172}, size_t{513}}) {
    std::vector<uint8_t> u(n);
    std::vector<int8_t> s(n);
    for (size_t i = 0; i < n; ++i) {
      u[i] = static_cast<uint8_t>(rng() % 16);
      s[i] = static_cast<int8_t>(static_cast<int>(rng() % 16) - 8);
    }
    const auto pu = pack_int4_unsigned(u);
    const auto ps = pack_int4_signed(s);
    ASSERT_EQ(pu.size(), (n + 1) / 2);
    for (size_t i = 0; i < n; ++i) {  // nibble layout checked independently of the unpacker
      const int nib_u = i % 2 == 0 ? (pu[i / 2] & 15) : (pu[i / 2] >> 4);
      ASSERT_EQ(nib_u, u[i]);
      const int nib_s = i % 2 == 0 ? (ps[i / 2] & 15) : (ps[i / 2] >> 4);
      ASSERT_EQ(nib_s, (s[i] + 16) % 16);
    }
    EXPECT_EQ(unpack_int4_unsigned(pu, n), u);
    EXPECT_EQ(unpack_int4_signed(ps, n), s);
  }
}

}  // namespace
}  // namespace illm
