#pragma once
// The inner loop of the fast per-group DI-MatMul (docs/integer-semantics.md "## Per-group DI-MatMul"): for a tile of
// activation rows t and weight rows j it computes every group of the pair in one pass over K,
//   out_tj = Σ_g μ_(j,g)·D_(t,j,g) − z1_t·Γ_j        D_(t,j,g) = Σ_(k in g) X_tk·(W_jk − z_(j,g))   (int32, exact)
//   Γ_j    = Σ_g μ_(j,g)·(CS_(j,g) − G·z_(j,g))       (PreparedLinear::group_gamma)
// = Σ_g μ_(j,g)·P_(t,j,g), the reference's P'_tj, in wrapping 64-bit arithmetic (exact: the true P' fits int64).
// The weight bytes of a row are cut into quads of 16 bytes (16 byte codes or 32 packed 4-bit codes); every quad lies
// inside one group (G ∈ {32, 64, 128}), so D is summed quad by quad:
//   D_quad = C_quad − (z_(j,g) − o)·RS_(t,quad)     C_quad = Σ X·(W − o) from the ISA's dot instruction
// with RS_(t,quad) = Σ of the activation codes of the quad (from the caller) and o the ISA's byte8 weight offset.
// Implementations (Isa::grouped): grouped_dot_avx512vnni.cpp (vpdpbusd, o = 128) and grouped_dot_avx2.cpp (a step as
// two 32-byte halves of 2 quads each: vpmaddubsw for packed 4-bit codes, byte codes widened to int16 for vpmaddwd;
// o = 0); kGroupedDotNone on the portable path, which runs the one-dot-block-per-group kernel of linear.cpp. Like
// dot_block.h this header holds plain data and declarations only (the ISA files export a table, no code symbol:
// tests/kernels/integer_only_audit_test.cpp).
#include <cstddef>
#include <cstdint>

#include "kernels/optimized/dot_block.h"

namespace illm::optimized {

constexpr int32_t kGroupedQuadBytes = 16;  // weight bytes per quad
constexpr int32_t kGroupedQuadsPerStep = 4;  // quads per 64-byte step; quad_sums holds 16 int32 per step

struct GroupedDotArgs {
  const uint8_t* x = nullptr;          // packed activation rows (the ISA's ActivationLayout), from column 0
  size_t x_stride = 0;
  // Per activation row, per 64-byte weight step s: 16 int32, lane q·4 + c = RS of quad 4s + q (c = 0..3 repeat it;
  // 0 past the row's end).
  const int32_t* quad_sums = nullptr;
  size_t quad_sums_stride = 0;         // int32 per activation row
  const int32_t* zero_points = nullptr;  // z1_t of the rows
  int32_t rows = 0;
  const uint8_t* w = nullptr;          // weight row j0 in storage layout (j0 a multiple of 4)
  size_t w_stride = 0;
  int32_t cols = 0;
  // PreparedLinear::group_terms from weight row j0: per block of 4 weight rows, per group, 4 × (μ | z << 24).
  const uint32_t* terms = nullptr;
  const uint64_t* gamma = nullptr;     // Γ_j from j0
  int32_t k = 0;                       // codes per row (a multiple of group)
  int32_t group = 0;                   // 32, 64 or 128
  WeightFormat format{};
  int64_t* out = nullptr;              // out[t·out_stride + j]
  size_t out_stride = 0;
};

// One block of 4 weight rows of a call, as both ISA kernels walk them: row pointers (rows past `cols` repeat the
// last one; their terms are zero) and their terms.
constexpr int32_t kGroupedBlockRows = 4;
struct GroupedColumnBlock {
  const uint8_t* w[kGroupedBlockRows];
  const uint32_t* terms = nullptr;
  const uint64_t* gamma = nullptr;
  int64_t* out = nullptr;  // column j0 of activation row 0
  int32_t cols = 0;        // 1..4 stored
};

// Baseline code the ISA kernels call (grouped_linear.cpp, compiled without ISA flags): the block of weight rows
// j0.. (a multiple of 4), and out[c] = sums[c] − Γ_c·z1 (wrapping) of one activation row for the stored rows.
GroupedColumnBlock grouped_column_block(const GroupedDotArgs& args, int32_t j0);
void grouped_store_row(const uint64_t (&sums)[kGroupedBlockRows], const GroupedColumnBlock& block, int32_t zero_point,
                       int64_t* out);

struct GroupedDotIsa {
  const char* name;
  void (*grouped_dot)(const GroupedDotArgs& args);  // null: the path has no one-pass kernel
};

extern const GroupedDotIsa kGroupedDotNone;  // grouped_linear.cpp
#if defined(__x86_64__)
extern const GroupedDotIsa kGroupedDotAvx2;
extern const GroupedDotIsa kGroupedDotAvx512Vnni;
#endif

}  // namespace illm::optimized
