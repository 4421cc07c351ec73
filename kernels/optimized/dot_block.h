#pragma once
// The integer inner loop of every optimized DI-MatMul (linear layers, and Q·Kᵀ in attention): raw dot products
//   C[i][j] (+)= Σ_k x[i][k] · (w[j][k] − offset)        int32, exact (the caller bounds K·max x·max|w − offset|)
// of `rows` packed activation rows against `cols` weight rows in their storage layout. One implementation per ISA
// (dot_block_portable.cpp, dot_block_avx2.cpp, dot_block_avx512vnni.cpp); the ISA files are compiled with their
// own -m flags and are only called after run-time detection, so this header holds plain data only (no inline code
// that an ISA file could emit for everyone).
#include <cstddef>
#include <cstdint>

namespace illm::optimized {

// How the bytes of a weight row are read.
enum class WeightFormat : int32_t {
  kBytes7,    // one code per byte, codes <= 127: used as signed bytes directly (offset 0)
  kBytes8,    // one code per byte, codes up to 255 (offset: DotIsa::byte8_offset)
  kPacked4,   // two codes per byte, code 2i in the low nibble of byte i (offset 0)
};

// The packed activation rows a DotIsa reads: codes as bytes, each row zero-padded to a multiple of `block` codes.
// For kPacked4 weights, when int4_even_odd is set, every block of `block4` codes is stored as its even-indexed codes
// followed by its odd-indexed codes (so the low and high nibbles of block4/2 weight bytes meet their activations).
struct ActivationLayout {
  int32_t block = 1;    // codes per block for byte weights
  int32_t block4 = 2;   // codes per block for packed 4-bit weights
  bool int4_even_odd = false;
};

struct DotBlockArgs {
  const uint8_t* x = nullptr;  // packed activation rows (ActivationLayout), first code of this K range
  size_t x_stride = 0;         // bytes between activation rows
  int32_t rows = 0;
  const uint8_t* w = nullptr;  // weight rows, first byte of this K range
  size_t w_stride = 0;         // bytes between weight rows
  int32_t cols = 0;
  int32_t k = 0;               // codes in this K range (a multiple of the layout block unless it ends the row)
  int32_t x_bits = 8;          // activation code width (AVX2: decides whether vpmaddubsw provably cannot saturate)
  int32_t w_bits = 8;          // weight code width
  WeightFormat format = WeightFormat::kBytes8;
  int32_t* c = nullptr;        // C[i][j] at c[i·c_stride + j]
  size_t c_stride = 0;
  bool accumulate = false;     // C += (true) or C = (false)
};

struct DotIsa {
  const char* name;
  ActivationLayout layout;
  int32_t byte8_offset;  // offset subtracted from kBytes8 weights (128 with vpdpbusd's signed bytes, else 0)
  void (*dot_block)(const DotBlockArgs& args);
};

// The implementations; the ISA ones exist only on x86-64 builds.
extern const DotIsa kDotPortable;
#if defined(__x86_64__)
extern const DotIsa kDotAvx2;
extern const DotIsa kDotAvx512Vnni;
#endif

}  // namespace illm::optimized
