#include "kernels/trip_requant.h"

#include <algorithm>
#include <string>

#include "kernels/error.h"

namespace illm {

void check_trip_factors(TripFactors trip, size_t channels, const char* what) {
  if (!trip.enabled()) return;
  const std::string where = std::string(what) + ": TRIP ";
  if (trip.max_shift < 1 || trip.max_shift > kMaxTripShift)
    throw Error(where + "max shift K = " + std::to_string(trip.max_shift) + " outside [1, 8]");
  if (trip.alpha.size() != channels)
    throw Error(where + "has " + std::to_string(trip.alpha.size()) + " channel exponents for " +
                std::to_string(channels) + " channels");
  for (size_t c = 0; c < channels; ++c)
    if (trip.alpha[c] < 0 || trip.alpha[c] > trip.max_shift)
      throw Error(where + "alpha[" + std::to_string(c) + "] = " + std::to_string(trip.alpha[c]) + " outside [0, " +
                  std::to_string(trip.max_shift) + "]");
}

int32_t trip_extra_bits(TripFactors trip) {
  if (!trip.enabled()) return 0;
  return trip.max_shift - *std::min_element(trip.alpha.begin(), trip.alpha.end());
}

DiRequantResult trip_codes(const RequantPlan& plan, std::span<const int64_t> v, TripFactors trip,
                           std::span<uint16_t> codes_out) {
  if (v.size() != codes_out.size() || v.size() != trip.alpha.size())
    throw Error("TRIP requant: " + std::to_string(v.size()) + " values, " + std::to_string(trip.alpha.size()) +
                " channel exponents, " + std::to_string(codes_out.size()) + " outputs");
  const int32_t extra = trip_extra_bits(trip);
  const int32_t alpha_min = trip.max_shift - extra;
  const int64_t z = plan.zero_point;
  for (size_t c = 0; c < v.size(); ++c) {
    const int refine = trip.max_shift - trip.alpha[c];  // s_c; F − s_c >= 61 − 16 − 8 >= 1
    const int64_t y = sat(rshr(v[c], plan.normalize), plan.input_min, plan.input_max);
    const int64_t code = sat(rshr(y * plan.multiplier, plan.fraction_bits - refine) + z, plan.code_min, plan.code_max);
    codes_out[c] = static_cast<uint16_t>(shl(code - z, trip.alpha[c] - alpha_min) + shl(z, extra));
  }
  return DiRequantResult{shl(z, extra), Dyadic{plan.scale.m, plan.scale.k + extra}};
}

DiRequantResult di_requant_trip(std::span<const int64_t> v, int64_t m_in, int32_t k_in, int out_bits,
                                int mantissa_bits, std::span<uint16_t> codes_out, RequantClip clip, TripFactors trip) {
  if (!trip.enabled()) return di_requant(v, m_in, k_in, out_bits, mantissa_bits, codes_out, clip);
  check_trip_factors(trip, v.size(), "DI_REQUANT");
  if (out_bits + trip_extra_bits(trip) > 16)
    throw Error("DI_REQUANT: TRIP codes of " + std::to_string(out_bits) + " + " +
                std::to_string(trip_extra_bits(trip)) + " bits exceed 16");
  // Validates the plain arguments (and the clip) exactly as the plain DI_REQUANT does; its codes are overwritten.
  di_requant(v, m_in, k_in, out_bits, mantissa_bits, codes_out, clip);
  int64_t lo = 0, hi = 0;
  for (const int64_t x : v) {
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  return trip_codes(plan_requant(lo, hi, m_in, k_in, out_bits, mantissa_bits, clip), v, trip, codes_out);
}

}  // namespace illm
