#pragma once
// DI-Norm: integer RMSNorm of one token (docs/method.md §5.2–§5.4, §9.1). Integer-only.
// Exact definition: docs/integer-semantics.md "## DI-Norm".
#include <cstdint>
#include <span>

#include "kernels/dyadic.h"
#include "kernels/quantized_model.h"
#include "kernels/quantized_tensor.h"
#include "kernels/requant.h"
#include "kernels/trip_requant.h"

namespace illm {

// Default mode (§5.4, per token): the int16 residual codes h_c with the token's dyadic scale (m_h, k_h), zero
// point 0, go in directly: Z_c = h_c · m_h, K = k_h (real x_c = Z_c / 2^K). Then the common core:
//   sh = msb(max_c |Z_c|) − 23 ;  Z_c ← rshr(Z_c, sh) ;  K ← K − sh        (max |Z| ∈ [2^23, 2^24])
//   S = Σ_c Z_c² (int64) ;  ms = rdiv(S, C)
//   ε^I = rshr(eps.m, eps.k − 2K), saturated at 2^61 ;  r = isqrt(ms + ε^I)
//   Rinv = rdiv(2^(F+30), r) ;  Y_c = rshr(Z_c · Rinv, 30)                  (real x_c/rms = Y_c / 2^F)
//   W_c = Y_c · G_c  (γ_c ≈ G_c / 2^Kγ: gamma.mantissa, gamma.exponent)
//   result = DI_REQUANT(W, m_in = 1, k_in = F + Kγ, out_bits, b_m = settings.mantissa_bits)
// F = settings.norm_frac_bits. An all-zero row gives all-zero codes, zero point 0, scale (1, 0).
// Requires gamma.mantissa.size() == C == codes_out.size(), 1 <= C <= 32768, |G_c| < 2^31, 1 <= F <= 20,
// 1 <= m_h < 2^32, eps.m >= 0; throws illm::Error otherwise.
DiRequantResult di_norm_row(std::span<const int16_t> residual_codes, Dyadic residual_scale,
                            const ChannelVector& gamma, Dyadic eps, const IntegerSettings& settings, int out_bits,
                            std::span<uint8_t> codes_out, RequantClip clip = {});
DiRequantResult di_norm_row(std::span<const int16_t> residual_codes, Dyadic residual_scale,
                            const ChannelVector& gamma, Dyadic eps, const IntegerSettings& settings, int out_bits,
                            std::span<int32_t> codes_out, RequantClip clip = {});

// Steps of the common core, for kernels that run its element loops themselves (the optimized DI-Norm):
// Z is brought to max |Z| ∈ [2^23, 2^24] (sh = msb(max |Z|) − kDiNormNormalizedMsb), and from S = Σ Z², the
// channel count and the exponent K of the normalized Z, Rinv = rdiv(2^(F+30), isqrt(rdiv(S, C) + ε^I)).
inline constexpr int kDiNormNormalizedMsb = 23;
inline constexpr int kDiNormRinvFracBits = 30;
int64_t di_norm_inverse_rms(int64_t sum_squares, int64_t channels, int64_t k_norm, Dyadic eps, int frac_bits);

// The operator `rms_norm` (kernels/kernel_set.h): di_norm_row (out_bits <= 16) of every row of the residual stream,
// codes, zero points and scales written to out; `clip` clips the final DI_REQUANT (sites attn_in, ffn_in).
void di_norm_rows(const ResidualStream& h, const ChannelVector& gamma, Dyadic eps, const IntegerSettings& settings,
                  int out_bits, QuantizedActivation& out, RequantClip clip = {});
// With TRIP factors (sites attn_in, ffn_in; kernels/trip_requant.h): the final DI_REQUANT is di_requant_trip, the
// codes are out_bits + trip_extra_bits(trip) wide. Trip off: di_norm_row / di_norm_rows bit for bit.
DiRequantResult di_norm_row_trip(std::span<const int16_t> residual_codes, Dyadic residual_scale,
                                 const ChannelVector& gamma, Dyadic eps, const IntegerSettings& settings, int out_bits,
                                 std::span<uint16_t> codes_out, RequantClip clip, TripFactors trip);
void di_norm_rows_trip(const ResidualStream& h, const ChannelVector& gamma, Dyadic eps,
                       const IntegerSettings& settings, int out_bits, QuantizedActivation& out, RequantClip clip,
                       TripFactors trip);
// Token t of di_norm_rows into row t of `out` (already shaped: resize_activation).
void di_norm_token(const ResidualStream& h, int32_t t, const ChannelVector& gamma, Dyadic eps,
                   const IntegerSettings& settings, int out_bits, QuantizedActivation& out, RequantClip clip = {});

// Paper mode (§5.1, §9.1 conformance): 8-bit codes X_c with static per-channel zero points z_c and dyadic scales
// (m_c, k_c). Channels are aligned exactly to K = max_c k_c (μ_c = m_c · 2^(K − k_c)) when every μ_c < 2^40,
// otherwise by the paper's lossy rule K = min_c k_c, μ_c = rshr(m_c, k_c − K). Z_c = (X_c − z_c) · μ_c, then the
// common core above. Same requirements, plus 1 <= m_c < 2^32.
DiRequantResult di_norm_row_per_channel(std::span<const uint8_t> codes, std::span<const int32_t> zero_points,
                                        std::span<const Dyadic> channel_scales, const ChannelVector& gamma,
                                        Dyadic eps, const IntegerSettings& settings, int out_bits,
                                        std::span<uint8_t> codes_out);
DiRequantResult di_norm_row_per_channel(std::span<const uint8_t> codes, std::span<const int32_t> zero_points,
                                        std::span<const Dyadic> channel_scales, const ChannelVector& gamma,
                                        Dyadic eps, const IntegerSettings& settings, int out_bits,
                                        std::span<int32_t> codes_out);

// The paper mode's input step (§5.4): the int16 residual (h_c, per-token (m_h, k_h)) requantized with the static
// per-channel scales: X_c = sat(rdiv(h_c · m_h · 2^k_c, m_c · 2^k_h) + z_c, 0, 2^bits − 1) (128-bit exact rdiv).
void norm_input_per_channel(std::span<const int16_t> residual_codes, Dyadic residual_scale,
                            std::span<const int32_t> zero_points, std::span<const Dyadic> channel_scales, int bits,
                            std::span<uint8_t> codes_out);

}  // namespace illm
