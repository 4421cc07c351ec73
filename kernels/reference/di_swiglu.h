#pragma once
// DI-SwiGLU (docs/method.md §6.2–§6.4, §9.1): g' · σ(g'/α) · u' of one token, integer-only, with the sigmoid built
// from DI-Exp. Exact definition: docs/integer-semantics.md "## DI-SwiGLU".
#include <cstdint>
#include <span>
#include <vector>

#include "kernels/dyadic.h"
#include "kernels/quantized_model.h"
#include "kernels/quantized_tensor.h"
#include "kernels/requant.h"
#include "kernels/trip_requant.h"

namespace illm {

// One per-token quantized input row: real value_c = (scale.m / 2^scale.k) · (codes[c] − zero_point).
struct SwigluInput {
  std::span<const uint8_t> codes;
  int64_t zero_point = 0;
  Dyadic scale;
};

// Sigmoid of one row a_c with dyadic scale (real argument a_c · m / 2^k), codes with scale 2^−(p_σ−1),
// p_σ = settings.sigmoid_bits. With f = di_exp_frame(m, k), A_c = di_exp_promote-style shift of a_c
// (shl by P, or rshr by −P), |t| = −f.t, Exp(x) = di_exp(x, f.t, settings.exp_quadratic):
//   stable (settings.sigmoid_stable, default):  E_c = Exp(−|A_c|) ; num = A_c ≥ 0 ? |t| : E_c ;
//                                               σ_c = fdiv(num · 2^(p_σ−1), |t| + E_c)
//   paper (shared max):  M = max(max_c A_c, 0) ; E_c = Exp(A_c − M) ; E_M = Exp(−M) ;
//                        σ_c = E_c + E_M == 0 ? 0 : fdiv(E_c · 2^(p_σ−1), E_c + E_M)
// Requires sigma_out.size() == a.size(), 1 <= p_σ <= 30, |a_c| < 2^(61 − max(P, 0)); throws illm::Error otherwise.
void di_sigmoid_row(std::span<const int64_t> a, Dyadic scale, const IntegerSettings& settings,
                    std::span<int32_t> sigma_out);

// DI-SwiGLU of one token. g_c = gate.codes[c] − gate.zero_point, u_c = up.codes[c] − up.zero_point,
// a_c = inv_alpha.mantissa[c] (a_c ≈ 2^k_a / α_c, k_a = inv_alpha.exponent):
//   σ = di_sigmoid_row(g_c · a_c, (m_g, k_g + k_a), settings)                  (real σ(g'_c / α_c) = σ_c / 2^(p_σ−1))
//   O_c = g_c · σ_c · u_c (int64)
//   m_gu = m_g · m_u ; L = max(0, msb(m_gu) + 1 − b_m) ; μ = rshr(m_gu, L)
//   result = DI_REQUANT(O, m_in = μ, k_in = k_g + k_u + p_σ − 1 − L, out_bits, b_m = settings.mantissa_bits)
// Requires equal lengths of gate, up, inv_alpha and codes_out, 1 <= a_c < 2^24 (a_c >= 0 allowed: 0 = σ(0)),
// 1 <= m_g, m_u < 2^31; throws illm::Error otherwise.
DiRequantResult di_swiglu_row(const SwigluInput& gate, const SwigluInput& up, const ChannelVector& inv_alpha,
                              const IntegerSettings& settings, int out_bits, std::span<uint8_t> codes_out,
                              RequantClip clip = {});

// The products O_c of di_swiglu_row before its requantization (same requirements; products.size() == the length)
// and their scale (μ, k_in). di_swiglu_row = DI_REQUANT of these; the online Hadamard of down_proj's input
// (kernels/reference/hadamard_sites.h) requantizes them symmetrically to 16 bits instead.
Dyadic di_swiglu_products(const SwigluInput& gate, const SwigluInput& up, const ChannelVector& inv_alpha,
                          const IntegerSettings& settings, std::span<int64_t> products);
// With TRIP factors (site down_in, kernels/trip_requant.h): the output DI_REQUANT is di_requant_trip, the codes are
// out_bits + trip_extra_bits(trip) wide. Trip off: di_swiglu_row / di_swiglu_rows bit for bit.
DiRequantResult di_swiglu_row_trip(const SwigluInput& gate, const SwigluInput& up, const ChannelVector& inv_alpha,
                                   const IntegerSettings& settings, int out_bits, std::span<uint16_t> codes_out,
                                   RequantClip clip, TripFactors trip);
void di_swiglu_rows_trip(const QuantizedActivation& gate, const QuantizedActivation& up,
                         const ChannelVector& inv_alpha, const IntegerSettings& settings, int out_bits,
                         QuantizedActivation& out, RequantClip clip, TripFactors trip);

// The dyadic (μ, k_in) of the products O_c: m_g·m_u reduced to b_m bits (L = max(0, msb + 1 − b_m)),
// k_in = k_g + k_u + p_σ − 1 − L.
Dyadic swiglu_product_scale(Dyadic gate_scale, Dyadic up_scale, const IntegerSettings& settings);

// The operator `swiglu` (kernels/kernel_set.h): di_swiglu_row of every row (8-bit gate and up codes) → out;
// `clip` clips the output DI_REQUANT (site down_in).
void di_swiglu_rows(const QuantizedActivation& gate, const QuantizedActivation& up, const ChannelVector& inv_alpha,
                    const IntegerSettings& settings, int out_bits, QuantizedActivation& out, RequantClip clip = {});
// Token t of di_swiglu_rows into row t of `out` (already shaped: resize_activation); the shape check of both.
void di_swiglu_token(const QuantizedActivation& gate, const QuantizedActivation& up, int32_t t,
                     const ChannelVector& inv_alpha, const IntegerSettings& settings, int out_bits,
                     QuantizedActivation& out, RequantClip clip = {});
void check_swiglu_shapes(const QuantizedActivation& gate, const QuantizedActivation& up);
// Row t of the 8-bit codes `a` (gate or up) as a SwigluInput over `codes` (resized to a.cols, filled): the row
// view every rows-level DI-SwiGLU kernel passes to its row function.
SwigluInput swiglu_input_row(const QuantizedActivation& a, int32_t t, std::vector<uint8_t>& codes);

}  // namespace illm
