#include "kernels/reference/di_swiglu.h"

#include <type_traits>

#include <algorithm>
#include <string>
#include <vector>

#include "kernels/error.h"
#include "kernels/integer_math.h"
#include "kernels/reference/di_exp.h"

namespace illm {
namespace {
constexpr int64_t kMaxInvAlpha = int64_t{1} << 24;

int64_t promote_signed(int64_t a, const DiExpFrame& frame) {
  return frame.promote >= 0 ? shl(a, frame.promote) : rshr(a, -frame.promote);
}
}  // namespace

void di_sigmoid_row(std::span<const int64_t> a, Dyadic scale, const IntegerSettings& settings,
                    std::span<int32_t> sigma_out) {
  if (sigma_out.size() != a.size())
    throw Error("DI-SwiGLU sigmoid: " + std::to_string(sigma_out.size()) + " outputs for " + std::to_string(a.size()) +
                " inputs");
  const int p_bits = settings.sigmoid_bits;
  if (p_bits < 1 || p_bits > 30) throw Error("DI-SwiGLU: sigmoid_bits must be in [1, 30] (got " + std::to_string(p_bits) + ")");
  if (a.empty()) return;
  const DiExpFrame frame = di_exp_frame(scale.m, scale.k);
  const int64_t limit = int64_t{1} << (61 - std::max(frame.promote, 0));
  for (const int64_t v : a)
    if (v >= limit || v <= -limit) throw Error("DI-SwiGLU sigmoid: argument " + std::to_string(v) + " too large to promote");
  const int64_t abs_t = -frame.t;
  const int64_t one = int64_t{1} << (p_bits - 1);
  const bool quadratic = settings.exp_quadratic;
  if (settings.sigmoid_stable) {
    for (size_t c = 0; c < a.size(); ++c) {
      const int64_t x = promote_signed(a[c], frame);
      const int64_t e = di_exp(x < 0 ? x : -x, frame.t, quadratic);  // e^(−|x|) · |t|
      const int64_t numerator = x >= 0 ? abs_t : e;
      sigma_out[c] = static_cast<int32_t>(fdiv(numerator * one, abs_t + e));
    }
    return;
  }
  // Paper form: one shared frame at M = max(max_c A_c, 0); σ = e^(A−M) / (e^(A−M) + e^(−M)).
  int64_t shared_max = 0;
  for (const int64_t v : a) shared_max = std::max(shared_max, promote_signed(v, frame));
  const int64_t e_neg_max = di_exp(-shared_max, frame.t, quadratic);
  for (size_t c = 0; c < a.size(); ++c) {
    const int64_t e = di_exp(promote_signed(a[c], frame) - shared_max, frame.t, quadratic);
    sigma_out[c] = e + e_neg_max == 0 ? 0 : static_cast<int32_t>(fdiv(e * one, e + e_neg_max));
  }
}

Dyadic di_swiglu_products(const SwigluInput& gate, const SwigluInput& up, const ChannelVector& inv_alpha,
                          const IntegerSettings& settings, std::span<int64_t> products) {
  const size_t n = gate.codes.size();
  if (up.codes.size() != n || inv_alpha.mantissa.size() != n || products.size() != n)
    throw Error("DI-SwiGLU: gate (" + std::to_string(n) + "), up (" + std::to_string(up.codes.size()) +
                "), inv_alpha (" + std::to_string(inv_alpha.mantissa.size()) + ") and output (" +
                std::to_string(products.size()) + ") lengths differ");
  for (const Dyadic& s : {gate.scale, up.scale})
    if (s.m < 1 || s.m >= (int64_t{1} << 31))
      throw Error("DI-SwiGLU: input scale mantissa " + std::to_string(s.m) + " outside [1, 2^31)");
  for (const int64_t a : inv_alpha.mantissa)
    if (a < 0 || a >= kMaxInvAlpha) throw Error("DI-SwiGLU: inv_alpha mantissa " + std::to_string(a) + " outside [0, 2^24)");

  std::span<int64_t> row = products;  // A_c, then O_c
  std::vector<int32_t> sigma(n);
  for (size_t c = 0; c < n; ++c) row[c] = (static_cast<int64_t>(gate.codes[c]) - gate.zero_point) * inv_alpha.mantissa[c];
  di_sigmoid_row(std::span<const int64_t>(row.data(), n), Dyadic{gate.scale.m, gate.scale.k + inv_alpha.exponent},
                 settings, std::span<int32_t>(sigma.data(), n));
  for (size_t c = 0; c < n; ++c) {
    const int64_t g = static_cast<int64_t>(gate.codes[c]) - gate.zero_point;
    const int64_t u = static_cast<int64_t>(up.codes[c]) - up.zero_point;
    row[c] = g * sigma[c] * u;  // |g·u| ≤ 2^16 (8-bit codes), σ ≤ 2^(p_σ−1)
  }
  return swiglu_product_scale(gate.scale, up.scale, settings);
}

namespace {

template <typename Code>
DiRequantResult swiglu_row(const SwigluInput& gate, const SwigluInput& up, const ChannelVector& inv_alpha,
                           const IntegerSettings& settings, int out_bits, std::span<Code> codes_out, RequantClip clip,
                           TripFactors trip) {
  if (codes_out.size() != gate.codes.size())
    throw Error("DI-SwiGLU: gate (" + std::to_string(gate.codes.size()) + ") and output (" +
                std::to_string(codes_out.size()) + ") lengths differ");
  std::vector<int64_t> products(gate.codes.size());
  const Dyadic scale = di_swiglu_products(gate, up, inv_alpha, settings, std::span<int64_t>(products));
  if constexpr (std::is_same_v<Code, uint16_t>)
    return di_requant_trip(std::span<const int64_t>(products), scale.m, scale.k, out_bits, settings.mantissa_bits,
                           codes_out, clip, trip);
  return di_requant(std::span<const int64_t>(products), scale.m, scale.k, out_bits, settings.mantissa_bits,
                    codes_out, clip);
}

}  // namespace

DiRequantResult di_swiglu_row(const SwigluInput& gate, const SwigluInput& up, const ChannelVector& inv_alpha,
                              const IntegerSettings& settings, int out_bits, std::span<uint8_t> codes_out,
                              RequantClip clip) {
  return swiglu_row(gate, up, inv_alpha, settings, out_bits, codes_out, clip, TripFactors{});
}

DiRequantResult di_swiglu_row_trip(const SwigluInput& gate, const SwigluInput& up, const ChannelVector& inv_alpha,
                                   const IntegerSettings& settings, int out_bits, std::span<uint16_t> codes_out,
                                   RequantClip clip, TripFactors trip) {
  return swiglu_row(gate, up, inv_alpha, settings, out_bits, codes_out, clip, trip);
}

Dyadic swiglu_product_scale(Dyadic gate_scale, Dyadic up_scale, const IntegerSettings& settings) {
  const int64_t mantissa_product = gate_scale.m * up_scale.m;  // < 2^62
  const int drop = std::max(0, msb(static_cast<uint64_t>(mantissa_product)) + 1 - settings.mantissa_bits);
  return Dyadic{rshr(mantissa_product, drop), gate_scale.k + up_scale.k + settings.sigmoid_bits - 1 - drop};
}

void di_swiglu_token(const QuantizedActivation& gate, const QuantizedActivation& up, int32_t t,
                     const ChannelVector& inv_alpha, const IntegerSettings& settings, int out_bits,
                     QuantizedActivation& out, RequantClip clip) {
  const size_t n = static_cast<size_t>(gate.cols), offset = static_cast<size_t>(t) * n;
  std::vector<uint8_t> g, u;
  // The TRIP form with TRIP off is di_swiglu_row bit for bit, and writes the (up to 16-bit) codes in place.
  const DiRequantResult r =
      di_swiglu_row_trip(swiglu_input_row(gate, t, g), swiglu_input_row(up, t, u), inv_alpha, settings, out_bits,
                         std::span<uint16_t>(out.codes.data() + offset, n), clip, TripFactors{});
  out.zero_points[t] = static_cast<int32_t>(r.zero_point);
  out.scales[t] = r.scale;
}

SwigluInput swiglu_input_row(const QuantizedActivation& a, int32_t t, std::vector<uint8_t>& codes) {
  const size_t n = static_cast<size_t>(a.cols), offset = static_cast<size_t>(t) * n;
  codes.resize(n);
  for (size_t c = 0; c < n; ++c) codes[c] = static_cast<uint8_t>(a.codes[offset + c]);
  return SwigluInput{codes, a.zero_points[t], a.scales[t]};
}

void check_swiglu_shapes(const QuantizedActivation& gate, const QuantizedActivation& up) {
  if (gate.rows != up.rows || gate.cols != up.cols)
    throw Error("DI-SwiGLU: gate " + std::to_string(gate.rows) + "x" + std::to_string(gate.cols) + " and up " +
                std::to_string(up.rows) + "x" + std::to_string(up.cols) + " differ");
}

void di_swiglu_rows_trip(const QuantizedActivation& gate, const QuantizedActivation& up,
                         const ChannelVector& inv_alpha, const IntegerSettings& settings, int out_bits,
                         QuantizedActivation& out, RequantClip clip, TripFactors trip) {
  check_swiglu_shapes(gate, up);
  check_trip_factors(trip, static_cast<size_t>(gate.cols), "DI-SwiGLU");
  resize_activation(out, gate.rows, gate.cols, out_bits + trip_extra_bits(trip));
  const size_t n = static_cast<size_t>(gate.cols);
  std::vector<uint8_t> g, u;
  for (int32_t t = 0; t < gate.rows; ++t) {
    const size_t offset = static_cast<size_t>(t) * n;
    const DiRequantResult r = di_swiglu_row_trip(swiglu_input_row(gate, t, g), swiglu_input_row(up, t, u), inv_alpha,
                                                 settings, out_bits,
                                                 std::span<uint16_t>(out.codes.data() + offset, n), clip, trip);
    out.zero_points[t] = static_cast<int32_t>(r.zero_point);
    out.scales[t] = r.scale;
  }
}

void di_swiglu_rows(const QuantizedActivation& gate, const QuantizedActivation& up, const ChannelVector& inv_alpha,
                    const IntegerSettings& settings, int out_bits, QuantizedActivation& out, RequantClip clip) {
  check_swiglu_shapes(gate, up);
  resize_activation(out, gate.rows, gate.cols, out_bits);
  for (int32_t t = 0; t < gate.rows; ++t) di_swiglu_token(gate, up, t, inv_alpha, settings, out_bits, out, clip);
}

}  // namespace illm
