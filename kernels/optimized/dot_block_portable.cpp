// Portable C++ dot blocks (any CPU): 4×4 register tiles of int32 dot products, written so that the compiler
// vectorizes the reduction for the build's baseline ISA. Activations are plain bytes (no special layout).
#include "kernels/optimized/dot_block.h"

namespace illm::optimized {
namespace {

constexpr int kTileRows = 4, kTileCols = 4;

int32_t dot_bytes(const uint8_t* x, const uint8_t* w, int32_t k) {
  int32_t sum = 0;
  for (int32_t i = 0; i < k; ++i) sum += int32_t{x[i]} * int32_t{w[i]};
  return sum;
}

// Code 2i of the row pairs with the low nibble of byte i, code 2i + 1 with the high nibble.
int32_t dot_packed4(const uint8_t* x, const uint8_t* w, int32_t k) {
  const int32_t bytes = k / 2;
  int32_t sum = 0;
  for (int32_t i = 0; i < bytes; ++i)
    sum += int32_t{x[2 * i]} * int32_t{w[i] & 0x0F} + int32_t{x[2 * i + 1]} * int32_t{w[i] >> 4};
  if (k % 2 == 1) sum += int32_t{x[k - 1]} * int32_t{w[bytes] & 0x0F};
  return sum;
}

void dot_block(const DotBlockArgs& a) {
  const bool packed = a.format == WeightFormat::kPacked4;
  for (int32_t j0 = 0; j0 < a.cols; j0 += kTileCols) {
    const int32_t j_end = j0 + kTileCols < a.cols ? j0 + kTileCols : a.cols;
    for (int32_t i0 = 0; i0 < a.rows; i0 += kTileRows) {
      const int32_t i_end = i0 + kTileRows < a.rows ? i0 + kTileRows : a.rows;
      for (int32_t i = i0; i < i_end; ++i)
        for (int32_t j = j0; j < j_end; ++j) {
          const uint8_t* x = a.x + static_cast<size_t>(i) * a.x_stride;
          const uint8_t* w = a.w + static_cast<size_t>(j) * a.w_stride;
          const int32_t dot = packed ? dot_packed4(x, w, a.k) : dot_bytes(x, w, a.k);
          int32_t& c = a.c[static_cast<size_t>(i) * a.c_stride + j];
          c = a.accumulate ? c + dot : dot;
        }
    }
  }
}

}  // namespace

const DotIsa kDotPortable{"portable", ActivationLayout{1, 2, false}, 0, dot_block};

}  // namespace illm::optimized
