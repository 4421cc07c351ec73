#pragma once
// The inner loop of the one-pass DI-MatMul of per-group activations (kernels/reference/act_group_matmul.h): for a
// tile of activation rows t and weight rows j, one pass over K gives every activation group a and weight group h,
//   T_(t,j,h) = Σ_(a in h) λ_(t,a)·C'_(t,j,a) − z2_(j,h)·D_(t,h)        C'_(t,j,a) = Σ_(k in a) W_jk·(X_tk − z_(t,a))
//   D_(t,h)   = Σ_(a in h) λ_(t,a)·Σ_(k in a) (X_tk − z_(t,a))            (per call, from the caller)
//   out_tj    = Σ_h rshr(T_(t,j,h), b_m)·μ_(j,h)                          = the reference's P'_tj
// since P_(t,j,a) = C'_(t,j,a) − z2_(j,h)·Σ_(k in a)(X_tk − z_(t,a)) term for term. The caller centres the codes:
// for activations of <= 7 bits X − z fits a signed byte, so the ISA's u8·s8 dot instruction takes the weight codes
// (any stored format, as unsigned bytes or nibbles) against the centred codes, with no zero-point or offset term.
// A 64-byte weight step's int32 lanes each cover 4 weight bytes (8 packed codes or 4 byte codes), inside one
// activation group for A a multiple of 8: each lane is multiplied by its group's λ and summed in 64-bit lanes
// (wrapping, exact: the true T and P' fit int64). Implementations (Isa::act_groups): act_group_dot_avx512vnni.cpp
// (vpdpbusd) and act_group_dot_avx2.cpp (a step as two 32-byte halves, lanes 0..7 and 8..15: vpmaddubsw for
// nibbles, byte weights widened to int16 since two byte products can saturate vpmaddubsw's int16);
// kActGroupDotNone on the portable path, which runs the one-dot-block-per-group kernel of linear.cpp. Plain data
// only, like dot_block.h (the ISA files export a table, no code symbol: tests/kernels/integer_only_audit_test.cpp).
#include <cstddef>
#include <cstdint>

#include "kernels/optimized/dot_block.h"

namespace illm::optimized {

constexpr int32_t kActGroupStepBytes = 64;  // weight bytes per step: 128 packed codes or 64 byte codes
constexpr int32_t kActGroupLanes = 16;      // int32 lanes per step (λ per lane)
constexpr int32_t kActGroupQuads = 4;       // 128-bit quads per step (the per-group weight terms per quad)

struct ActGroupDotArgs {
  // Centred codes X − z of the activation rows, from column 0, as signed bytes: per step, packed weights read 64
  // even-indexed codes then the 64 odd-indexed ones (128 codes), byte weights 64 codes; zero past K.
  const int8_t* x = nullptr;
  size_t x_stride = 0;
  const int32_t* lambdas = nullptr;  // per row, per step: 16 int32, lane l = λ of the group of the lane's codes
  size_t lambdas_stride = 0;         // int32 per row
  // Per-row weight: D_t, one per row (stride 1). Per-group weight: per row, per step, 8 int64, lane 2q + c =
  // D_(t,h) of the weight group of quad q (c = 0, 1 repeat it).
  const int64_t* token_terms = nullptr;
  size_t token_terms_stride = 0;
  int32_t rows = 0;
  const uint8_t* w = nullptr;  // weight row j0 in storage layout (j0 a multiple of 4)
  size_t w_stride = 0;
  int32_t cols = 0;
  int32_t k = 0;
  int32_t act_group = 0;  // A: a multiple of 8 (a lane's codes); a multiple of 16 lets two lanes share one λ
  WeightFormat format{};
  int32_t weight_group = 0;  // 0: per-row weight; else G ∈ {32, 64, 128}
  // Per-row weight: z2_j and μ_j from j0. Per-group weight: PreparedLinear::group_terms of the block of j0
  // (per block of 4 weight rows, per group, 4 × (μ | z << 24)).
  const int32_t* zero_points = nullptr;
  const int64_t* mantissas = nullptr;
  const uint32_t* terms = nullptr;
  int32_t mantissa_bits = 0;  // b_m, 1..24
  int64_t* out = nullptr;     // out[t·out_stride + j]
  size_t out_stride = 0;
};

// One block of 4 weight rows of a call, as both ISA kernels walk them: row pointers (rows past `cols` repeat the
// last one) and their terms.
constexpr int32_t kActGroupBlockRows = 4;
struct ActGroupColumnBlock {
  const uint8_t* w[kActGroupBlockRows];
  const int32_t* zero_points = nullptr;  // per-row weights: z2_j and μ_j from j0
  const int64_t* mantissas = nullptr;
  const uint32_t* terms = nullptr;       // per-group weights: the block's group terms
  int64_t* out = nullptr;                // column j0 of activation row 0
  int32_t cols = 0;                      // 1..4 stored
};

// Baseline code the ISA kernels call (act_group_linear.cpp, compiled without ISA flags): the block of weight rows
// j0.. (a multiple of 4), and a per-row weight's epilogue out_tj = rshr(T_tj − z2_j·D_t, b_m)·μ_j of row t for the
// block's stored rows (wrapping to the exact T; sums[c] = T of row j0 + c).
ActGroupColumnBlock act_group_column_block(const ActGroupDotArgs& args, int32_t j0);
void act_group_store_per_row(const int64_t (&sums)[kActGroupBlockRows], const ActGroupColumnBlock& block,
                             const ActGroupDotArgs& args, int32_t t);

struct ActGroupDotIsa {
  const char* name;
  void (*act_group_dot)(const ActGroupDotArgs& args);  // null: the path has no one-pass kernel
};

extern const ActGroupDotIsa kActGroupDotNone;  // act_group_linear.cpp
#if defined(__x86_64__)
extern const ActGroupDotIsa kActGroupDotAvx2;
extern const ActGroupDotIsa kActGroupDotAvx512Vnni;
#endif

}  // namespace illm::optimized
