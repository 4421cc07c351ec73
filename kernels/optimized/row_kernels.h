#pragma once
// Element loops of the optimized row operators (DI_REQUANT codes, DI-Exp and the softmax division, the attention
// logits and P·V), each exactly equal to the reference's per-element arithmetic within the stated bounds. One
// generic, branch-free source (row_kernels.inc) is compiled once per ISA (row_kernels_portable.cpp, _avx2.cpp,
// _avx512vnni.cpp) so that the compiler vectorizes it with that ISA's instructions; like dot_block.h this header
// holds plain data only.
#include <cstddef>
#include <cstdint>

namespace illm::optimized {

// The per-element part of a DI_REQUANT plan (kernels/requant.h RequantPlan):
//   code(v) = sat(rshr(rshr(v, normalize) · multiplier, fraction_bits) + zero_point, code_min, code_max)
// The element loops use 64-bit arithmetic: exact for |v| <= 2^62 (the caller checks the row range first).
// clamp_input: a clipped plan's saturation window [input_min, input_max] is applied to rshr(v, normalize).
struct RequantElements {
  int32_t normalize = 0;
  int32_t fraction_bits = 1;
  int64_t multiplier = 0;
  int64_t zero_point = 0;
  int64_t code_min = 0, code_max = 0;
  bool clamp_input = false;
  int64_t input_min = 0, input_max = 0;
};

// DI-ClippedSoftmax between the clipped row and the division (docs/integer-semantics.md): the input codes
// Y_j = requant.code(d_j), x_j = Y_j − zero_point ≤ 0, promoted by `promote` bits, E_j = DI-Exp(x_j; |t|). The loops
// divide by |t| with a multiply and one correction step, valid for |t| ∈ [2^13, 2^16) (the caller checks it).
struct SoftmaxExpElements {
  RequantElements requant;
  int32_t promote = 0;
  int64_t abs_t = 0;
  bool quadratic = true;
};

// DI-SwiGLU's stable sigmoid before its division (kernels/reference/di_swiglu.cpp): x_c = A_c promoted by `promote`
// bits (A_c = (g_c − z_g)·a_c), E_c = DI-Exp(−|x_c|; |t|), numerator_c = x_c >= 0 ? |t| : E_c. Same |t| bounds as
// SoftmaxExpElements; the caller checks |A_c| < 2^(61 − max(promote, 0)).
struct SigmoidElements {
  int32_t promote = 0;
  int64_t abs_t = 0;
  bool quadratic = true;
};

struct RowKernels {
  const char* name;
  // lo = min(0, min v), hi = max(0, max v).
  void (*range)(const int64_t* v, int32_t n, int64_t* lo, int64_t* hi);
  // max |v| (as unsigned: |INT64_MIN| fits).
  uint64_t (*max_abs)(const int64_t* v, int32_t n);
  // out[j] = code(v[j]) for |v[j]| <= 2^62.
  void (*requant_u8)(const int64_t* v, int32_t n, const RequantElements& p, uint8_t* out);
  void (*requant_u16)(const int64_t* v, int32_t n, const RequantElements& p, uint16_t* out);
  void (*requant_i16)(const int64_t* v, int32_t n, const RequantElements& p, int16_t* out);
  void (*requant_i32)(const int64_t* v, int32_t n, const RequantElements& p, int32_t* out);
  // e[j] = E_j of d_j (d_j <= 0, |d_j| <= 2^62); returns Σ_j e[j].
  int64_t (*softmax_exp)(const int64_t* d, int32_t n, const SoftmaxExpElements& p, int32_t* e);
  // e[j] ← fdiv(e[j] · 2^(p_out − 1), sum), for 0 <= e[j] <= 2^16, 2^13 <= sum < 2^47, 1 <= p_out <= 31.
  void (*softmax_divide)(int32_t* e, int32_t n, int64_t sum, int32_t p_out);
  // The Q·Kᵀ logits of one query row from raw dot products c_j = Σ_c q_c·(K_jc − offset):
  //   P_j = c_j + (offset − key_zero[j])·q_sum − q_zero·key_sum[j] + head_dim·q_zero·key_zero[j]   (|P_j| < 2^31)
  //   out[j] = P_j · mu[j]
  void (*attention_logits)(const int32_t* c, int32_t n, const int32_t* key_zero, const int32_t* key_sum,
                           const int64_t* mu, int32_t offset, int64_t q_sum, int32_t q_zero, int32_t head_dim,
                           int64_t* out);
  // acc[c] += Σ_j w[j] · v[j·v_stride + c] for c < d (int32; the caller bounds Σ_j w[j]·255 below 2^31).
  void (*weighted_rows)(const int32_t* w, int32_t n, const uint8_t* v, size_t v_stride, int32_t d, int32_t* acc);

  // The DI-MatMul epilogue (kernels/optimized/linear.h) of one row: in wrapping 64-bit arithmetic,
  //   out[j] = alpha[j]·c[j] − beta[j]·row_sum − gamma[j]·zero_point   (first K range)
  //   out[j] += alpha[j]·c[j]                                         (later K ranges)
  void (*linear_epilogue)(const int32_t* c, int32_t n, const uint64_t* alpha, const uint64_t* beta,
                          const uint64_t* gamma, uint64_t row_sum, uint64_t zero_point, bool first, int64_t* out);
  // The per-group-activation DI-MatMul's group step (linear_act_groups_accumulate): in wrapping 64-bit arithmetic,
  //   out[j] (+)= λ·(c[j] − z·cs[j])      (= on the first group), for |c[j]| + z·cs[j] < 2^31 and λ < 2^24
  void (*act_group_epilogue)(const int32_t* c, const int32_t* cs, int32_t n, int32_t zero_point, int64_t lambda,
                             bool first, int64_t* out);
  // The column alignment of align_columns for a given exponent K2 and scales m_j / 2^k_j (two arrays):
  // mu[j] = m_j·2^(K2 − k_j) when k_j <= K2, else rshr(m_j, k_j − K2) (0 <= m_j < 2^24, right shifts of 63 or more
  // give 0). Returns max_j mu[j]; *max_m = max_j m_j.
  int64_t (*align_mantissas)(const int64_t* m, const int32_t* k, int32_t n, int32_t exponent, int64_t* mu,
                             int64_t* max_m);
  // out[j] = v[j]·2^−s (s < 0, exact) or rshr(v[j], s) (s >= 0; s >= 63 gives 0), for |v| < 2^62.
  void (*shift_values)(const int64_t* v, int32_t n, int32_t s, int64_t* out);
  // DI-Norm: max |h|; z_c = rshr(h_c·m, shift) (shift < 0: exact left shift) returning Σ z_c² (|h·m| < 2^47,
  // |z| <= 2^24); w_c = rshr(z_c·inv_rms, 30)·gamma_c (|z·inv_rms| < 2^59, |w| < 2^62).
  int32_t (*max_abs_i16)(const int16_t* h, int32_t n);
  int64_t (*norm_scale)(const int16_t* h, int32_t n, int64_t m, int32_t shift, int64_t* z);
  void (*norm_apply)(const int64_t* z, int32_t n, int64_t inv_rms, const int64_t* gamma, int64_t* w);
  // Residual add (ResidualAddPlan): out_c = rshr(h_c·m_h, h_shift) + rshr(rshr(d_c, d_pre_shift)·m_d, d_shift),
  // shifts in [−62, 64] (negative: exact left shift), |h·m_h| < 2^47, |d| <= 2^62, |rshr(d, ·)·m_d| < 2^57.
  void (*residual_sum)(const int16_t* h, const int64_t* d, int32_t n, int64_t m_h, int32_t h_shift,
                       int32_t d_pre_shift, int64_t m_d, int32_t d_shift, int64_t* out);
  // DI-SwiGLU: E_c and numerator_c of the stable sigmoid (SigmoidElements); O_c = (g_c − z_g)·σ_c·(u_c − z_u).
  void (*sigmoid_exp)(const uint8_t* g, int32_t z_g, const int64_t* inv_alpha, int32_t n, const SigmoidElements& p,
                      int32_t* e, int32_t* numerator);
  void (*swiglu_products)(const uint8_t* g, int32_t z_g, const uint8_t* u, int32_t z_u, const int32_t* sigma,
                          int32_t n, int64_t* out);
};

extern const RowKernels kRowsPortable;
#if defined(__x86_64__)
extern const RowKernels kRowsAvx2;
extern const RowKernels kRowsAvx512Vnni;
#endif

}  // namespace illm::optimized
