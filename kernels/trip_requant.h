#pragma once
// TRIP channel factors at an activation site (docs/integer-semantics.md "## TRIP channel factors"): the site's
// DI_REQUANT keeps the row's range, zero point z and multiplier A, and quantizes channel c with a 2^(K − α_c) finer
// step; the consumer (a DI-MatMul) reads the centered, re-aligned codes X̃_c = (Y_c − z)·2^(α_c − α_min) stored as
// ordinary unsigned codes with zero point z·2^E, E = K − α_min bits wider, scale (m_y, k_y + E). Integer-only.
#include <cstdint>
#include <span>

#include "kernels/requant.h"

namespace illm {

// Static exponents of one site: α_c ∈ [0, K] per channel, K = max_shift <= 8. Empty alpha = TRIP off.
struct TripFactors {
  std::span<const int8_t> alpha;
  int32_t max_shift = 0;
  bool enabled() const { return !alpha.empty(); }
};
inline constexpr int32_t kMaxTripShift = 8;

// Throws illm::Error naming `what` unless trip is off or 1 <= K <= 8, alpha has `channels` entries in [0, K].
void check_trip_factors(TripFactors trip, size_t channels, const char* what);
// E = K − min_c α_c: the extra code bits of the consumer's input (0 when off or when every α_c = K, in which case
// the site is the plain DI_REQUANT bit for bit).
int32_t trip_extra_bits(TripFactors trip);

// Codes of one row from the plan of its DI_REQUANT (plan_requant with the site's out_bits and clip), s_c = K − α_c:
//   Y_c = sat(rshr(sat(rshr(v_c, normalize), input_min, input_max) · A, F − s_c) + z, 0, Q_o)
//   X_c = (Y_c − z)·2^(α_c − α_min) + z·2^E                                   ∈ [0, Q_o·2^E]
// Returns zero point z·2^E and scale (m_y, k_y + E). Requires codes_out.size() == v.size() == alpha.size().
DiRequantResult trip_codes(const RequantPlan& plan, std::span<const int64_t> v, TripFactors trip,
                           std::span<uint16_t> codes_out);

// DI_REQUANT of row v with TRIP factors: plan_requant of the row's range, then trip_codes. The consumer's codes are
// out_bits + trip_extra_bits(trip) wide (<= 16 required). Trip off: exactly di_requant.
DiRequantResult di_requant_trip(std::span<const int64_t> v, int64_t m_in, int32_t k_in, int out_bits,
                                int mantissa_bits, std::span<uint16_t> codes_out, RequantClip clip, TripFactors trip);

}  // namespace illm
