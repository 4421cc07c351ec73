#include "kernels/reference/di_norm.h"

#include <type_traits>

#include <algorithm>
#include <string>
#include <vector>

#include "kernels/error.h"
#include "kernels/integer_math.h"

namespace illm {
namespace {
constexpr int kMaxChannels = 1 << 15;       // ⇒ Σ Z² < 2^63 (max |Z| brought to [2^23, 2^24] ⇒ Σ Z² < 2^48 · C)
constexpr int64_t kEpsCap = int64_t{1} << 61;
constexpr int kMaxAlignedMantissaMsb = 40;  // μ_c < 2^40 ⇒ |(X − z)·μ| < 2^48

void check_common(const char* op, size_t channels, const ChannelVector& gamma, Dyadic eps,
                  const IntegerSettings& settings, size_t n_out) {
  const std::string where = std::string(op) + ": ";
  if (channels < 1 || channels > static_cast<size_t>(kMaxChannels))
    throw Error(where + "channel count " + std::to_string(channels) + " outside [1, 32768]");
  if (gamma.mantissa.size() != channels)
    throw Error(where + "gamma has " + std::to_string(gamma.mantissa.size()) + " entries for " +
                std::to_string(channels) + " channels");
  if (n_out != channels)
    throw Error(where + std::to_string(n_out) + " output codes for " + std::to_string(channels) + " channels");
  if (settings.norm_frac_bits < 1 || settings.norm_frac_bits > 20)
    throw Error(where + "norm_frac_bits must be in [1, 20] (got " + std::to_string(settings.norm_frac_bits) + ")");
  if (eps.m < 0) throw Error(where + "eps mantissa must be >= 0");
  for (const int64_t g : gamma.mantissa)
    if (g <= -(int64_t{1} << 31) || g >= (int64_t{1} << 31))
      throw Error(where + "gamma mantissa " + std::to_string(g) + " outside (-2^31, 2^31)");
}

// The common core of §5.2 on Z (real x_c = Z_c / 2^K), in place; writes codes via DI_REQUANT.
}  // namespace

int64_t di_norm_inverse_rms(int64_t sum_squares, int64_t channels, int64_t k_norm, Dyadic eps, int frac_bits) {
  const int64_t mean_square = rdiv(sum_squares, channels);
  // ε in the units of Z² (2^−2K): rshr(ε_m, ε_k − 2K), saturated (a huge ε^I only arises for rows far below √ε).
  int64_t eps_units = 0;
  if (eps.m > 0) {
    const int64_t shift = static_cast<int64_t>(eps.k) - 2 * k_norm;
    if (shift >= 0) {
      eps_units = shift >= 64 ? 0 : rshr(eps.m, static_cast<int>(shift));
    } else {
      eps_units = (-shift >= 62 || msb(static_cast<uint64_t>(eps.m)) - shift >= 61) ? kEpsCap
                                                                                    : shl(eps.m, static_cast<int>(-shift));
    }
  }
  const uint64_t rms = isqrt(static_cast<uint64_t>(mean_square) + static_cast<uint64_t>(eps_units));  // ≥ 2^23/√C
  return rdiv128(static_cast<__int128>(1) << (frac_bits + kDiNormRinvFracBits), static_cast<__int128>(rms));
}

namespace {

template <typename Code>
DiRequantResult norm_core(std::span<int64_t> z, int32_t k, const ChannelVector& gamma, Dyadic eps,
                          const IntegerSettings& settings, int out_bits, std::span<Code> codes_out, RequantClip clip,
                          TripFactors trip = {}) {
  uint64_t max_abs = 0;
  for (const int64_t v : z) max_abs = std::max<uint64_t>(max_abs, v < 0 ? -static_cast<uint64_t>(v) : v);
  if (max_abs == 0) {
    std::fill(codes_out.begin(), codes_out.end(), Code{0});
    return DiRequantResult{0, Dyadic{1, 0}};
  }
  const int sh = msb(max_abs) - kDiNormNormalizedMsb;
  for (int64_t& v : z) v = rshr(v, sh);
  const int64_t k_norm = static_cast<int64_t>(k) - sh;

  int64_t sum_squares = 0;
  for (const int64_t v : z) sum_squares += v * v;  // ≤ 2^48 · 2^15
  const int frac_bits = settings.norm_frac_bits;
  const int64_t inv_rms = di_norm_inverse_rms(sum_squares, static_cast<int64_t>(z.size()), k_norm, eps, frac_bits);
  for (size_t c = 0; c < z.size(); ++c) {
    const int64_t normalized = rshr(z[c] * inv_rms, kDiNormRinvFracBits);  // |Z·Rinv| ≤ 2^24 · 2^(F+30)·√C / 2^23
    z[c] = normalized * gamma.mantissa[c];
  }
  if constexpr (std::is_same_v<Code, uint16_t>)
    return di_requant_trip(std::span<const int64_t>(z.data(), z.size()), 1, frac_bits + gamma.exponent, out_bits,
                           settings.mantissa_bits, codes_out, clip, trip);
  return di_requant(std::span<const int64_t>(z.data(), z.size()), 1, frac_bits + gamma.exponent, out_bits,
                    settings.mantissa_bits, codes_out, clip);
}

template <typename Code>
DiRequantResult norm_per_token(std::span<const int16_t> residual_codes, Dyadic residual_scale,
                               const ChannelVector& gamma, Dyadic eps, const IntegerSettings& settings, int out_bits,
                               std::span<Code> codes_out, RequantClip clip, TripFactors trip = {}) {
  check_common("DI-Norm", residual_codes.size(), gamma, eps, settings, codes_out.size());
  if (residual_scale.m < 1 || residual_scale.m >= (int64_t{1} << 32))
    throw Error("DI-Norm: residual scale mantissa " + std::to_string(residual_scale.m) + " outside [1, 2^32)");
  std::vector<int64_t> z(residual_codes.size());
  for (size_t c = 0; c < z.size(); ++c) z[c] = static_cast<int64_t>(residual_codes[c]) * residual_scale.m;
  return norm_core(std::span<int64_t>(z), residual_scale.k, gamma, eps, settings, out_bits, codes_out, clip, trip);
}

void check_channel_scales(const char* op, size_t channels, std::span<const int32_t> zero_points,
                          std::span<const Dyadic> channel_scales) {
  const std::string where = std::string(op) + ": ";
  if (zero_points.size() != channels || channel_scales.size() != channels)
    throw Error(where + "per-channel zero points / scales must have one entry per channel (" +
                std::to_string(channels) + ")");
  for (const Dyadic& s : channel_scales)
    if (s.m < 1 || s.m >= (int64_t{1} << 32))
      throw Error(where + "channel scale mantissa " + std::to_string(s.m) + " outside [1, 2^32)");
}

template <typename Code>
DiRequantResult norm_per_channel(std::span<const uint8_t> codes, std::span<const int32_t> zero_points,
                                        std::span<const Dyadic> channel_scales, const ChannelVector& gamma,
                                        Dyadic eps, const IntegerSettings& settings, int out_bits,
                                        std::span<Code> codes_out) {
  check_common("DI-Norm (per-channel)", codes.size(), gamma, eps, settings, codes_out.size());
  check_channel_scales("DI-Norm (per-channel)", codes.size(), zero_points, channel_scales);
  int32_t k_max = channel_scales[0].k, k_min = channel_scales[0].k;
  for (const Dyadic& s : channel_scales) {
    k_max = std::max(k_max, s.k);
    k_min = std::min(k_min, s.k);
  }
  // Exact alignment to k_max if every μ_c = m_c · 2^(k_max − k_c) stays below 2^40; else the paper's rule.
  bool exact = true;
  for (const Dyadic& s : channel_scales)
    if (static_cast<int64_t>(k_max) - s.k + msb(static_cast<uint64_t>(s.m)) >= kMaxAlignedMantissaMsb) exact = false;
  const int32_t k_common = exact ? k_max : k_min;
  std::vector<int64_t> z(codes.size());
  for (size_t c = 0; c < codes.size(); ++c) {
    const Dyadic& s = channel_scales[c];
    const int64_t aligned = exact ? shl(s.m, k_common - s.k) : rshr(s.m, s.k - k_common);
    z[c] = (static_cast<int64_t>(codes[c]) - zero_points[c]) * aligned;
  }
  return norm_core(std::span<int64_t>(z), k_common, gamma, eps, settings, out_bits, codes_out, RequantClip{});
}

}  // namespace

DiRequantResult di_norm_row(std::span<const int16_t> residual_codes, Dyadic residual_scale,
                            const ChannelVector& gamma, Dyadic eps, const IntegerSettings& settings, int out_bits,
                            std::span<uint8_t> codes_out, RequantClip clip) {
  return norm_per_token(residual_codes, residual_scale, gamma, eps, settings, out_bits, codes_out, clip);
}

DiRequantResult di_norm_row(std::span<const int16_t> residual_codes, Dyadic residual_scale,
                            const ChannelVector& gamma, Dyadic eps, const IntegerSettings& settings, int out_bits,
                            std::span<int32_t> codes_out, RequantClip clip) {
  return norm_per_token(residual_codes, residual_scale, gamma, eps, settings, out_bits, codes_out, clip);
}

DiRequantResult di_norm_row_per_channel(std::span<const uint8_t> codes, std::span<const int32_t> zero_points,
                                        std::span<const Dyadic> channel_scales, const ChannelVector& gamma,
                                        Dyadic eps, const IntegerSettings& settings, int out_bits,
                                        std::span<uint8_t> codes_out) {
  return norm_per_channel(codes, zero_points, channel_scales, gamma, eps, settings, out_bits, codes_out);
}

DiRequantResult di_norm_row_per_channel(std::span<const uint8_t> codes, std::span<const int32_t> zero_points,
                                        std::span<const Dyadic> channel_scales, const ChannelVector& gamma,
                                        Dyadic eps, const IntegerSettings& settings, int out_bits,
                                        std::span<int32_t> codes_out) {
  return norm_per_channel(codes, zero_points, channel_scales, gamma, eps, settings, out_bits, codes_out);
}

void di_norm_token(const ResidualStream& h, int32_t t, const ChannelVector& gamma, Dyadic eps,
                   const IntegerSettings& settings, int out_bits, QuantizedActivation& out, RequantClip clip) {
  const size_t offset = static_cast<size_t>(t) * h.cols;
  // The TRIP form with TRIP off is di_norm_row bit for bit, and writes the (up to 16-bit) codes in place.
  const DiRequantResult r =
      di_norm_row_trip(std::span<const int16_t>(h.codes.data() + offset, h.cols), h.scales[t], gamma, eps, settings,
                       out_bits, std::span<uint16_t>(out.codes.data() + offset, static_cast<size_t>(h.cols)), clip,
                       TripFactors{});
  out.zero_points[t] = static_cast<int32_t>(r.zero_point);
  out.scales[t] = r.scale;
}

DiRequantResult di_norm_row_trip(std::span<const int16_t> residual_codes, Dyadic residual_scale,
                                 const ChannelVector& gamma, Dyadic eps, const IntegerSettings& settings, int out_bits,
                                 std::span<uint16_t> codes_out, RequantClip clip, TripFactors trip) {
  return norm_per_token(residual_codes, residual_scale, gamma, eps, settings, out_bits, codes_out, clip, trip);
}

void di_norm_rows_trip(const ResidualStream& h, const ChannelVector& gamma, Dyadic eps,
                       const IntegerSettings& settings, int out_bits, QuantizedActivation& out, RequantClip clip,
                       TripFactors trip) {
  check_trip_factors(trip, static_cast<size_t>(h.cols), "DI-Norm");
  resize_activation(out, h.rows, h.cols, out_bits + trip_extra_bits(trip));
  for (int32_t t = 0; t < h.rows; ++t) {
    const size_t offset = static_cast<size_t>(t) * h.cols;
    const DiRequantResult r = di_norm_row_trip(
        std::span<const int16_t>(h.codes.data() + offset, h.cols), h.scales[t], gamma, eps, settings, out_bits,
        std::span<uint16_t>(out.codes.data() + offset, static_cast<size_t>(h.cols)), clip, trip);
    out.zero_points[t] = static_cast<int32_t>(r.zero_point);
    out.scales[t] = r.scale;
  }
}

void di_norm_rows(const ResidualStream& h, const ChannelVector& gamma, Dyadic eps, const IntegerSettings& settings,
                  int out_bits, QuantizedActivation& out, RequantClip clip) {
  resize_activation(out, h.rows, h.cols, out_bits);
  for (int32_t t = 0; t < h.rows; ++t) di_norm_token(h, t, gamma, eps, settings, out_bits, out, clip);
}

void norm_input_per_channel(std::span<const int16_t> residual_codes, Dyadic residual_scale,
                            std::span<const int32_t> zero_points, std::span<const Dyadic> channel_scales, int bits,
                            std::span<uint8_t> codes_out) {
  const size_t channels = residual_codes.size();
  check_channel_scales("DI-Norm input requant", channels, zero_points, channel_scales);
  if (codes_out.size() != channels) throw Error("DI-Norm input requant: output size differs from the channel count");
  if (bits < 1 || bits > 8) throw Error("DI-Norm input requant: bits must be in [1, 8]");
  if (residual_scale.m < 1 || residual_scale.m >= (int64_t{1} << 32))
    throw Error("DI-Norm input requant: residual scale mantissa outside [1, 2^32)");
  const int64_t q_max = (int64_t{1} << bits) - 1;
  for (size_t c = 0; c < channels; ++c) {
    const Dyadic& s = channel_scales[c];
    // h·m_h·2^k_c / (m_c·2^k_h): put the power of two on the side where it is positive; beyond 2^70 saturate.
    const int64_t e = static_cast<int64_t>(s.k) - residual_scale.k;
    __int128 numerator = static_cast<__int128>(residual_codes[c]) * residual_scale.m;
    __int128 denominator = s.m;
    int64_t code;
    if (e > 70) {
      code = numerator == 0 ? 0 : (numerator > 0 ? q_max + 1 : -q_max - 1);
    } else if (e < -70) {
      code = 0;
    } else {
      if (e >= 0) numerator <<= e; else denominator <<= -e;
      __int128 q = numerator / denominator;
      const __int128 r = numerator % denominator;
      if ((r < 0 ? -r : r) * 2 >= denominator) q += numerator < 0 ? -1 : 1;  // rdiv: half away from zero
      code = q > q_max + 1 ? q_max + 1 : (q < -q_max - 1 ? -q_max - 1 : static_cast<int64_t>(q));
    }
    codes_out[c] = static_cast<uint8_t>(sat(code + zero_points[c], 0, q_max));
  }
}

}  // namespace illm
