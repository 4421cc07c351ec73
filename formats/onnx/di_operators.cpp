// Each operator follows its kernel line by line; comments name the kernel's quantity and give the 64-bit bound
// that replaces a 128-bit step of the C++ (docs/onnx-export.md).
#include "formats/onnx/di_operators.h"

#include <optional>
#include <string>
#include <vector>

#include "kernels/error.h"

namespace illm::formats::onnx_export {
namespace {

constexpr int64_t kAlignedMantissaBits = 24;  // μ < 2^24 (kernels/reference/di_matmul.cpp)
constexpr int64_t kMaskedLogit = int64_t{1} << 62;  // beyond every valid aligned logit (|v| < 2^55)
constexpr int64_t kMaskedExponent = int64_t{1} << 30;  // beyond every dyadic exponent, inside int32
constexpr int64_t kClipCap = int64_t{1} << 57;  // c^I above the logit range (< 2^56) clips nothing
constexpr int kClipCapMsb = 57;

}  // namespace

DiOperators::DiOperators(IntegerPrimitives& primitives, const IntegerSettings& settings)
    : p(primitives), g(primitives.g), settings_(settings) {}

// ------------------------------------------------------------------------------------------------ DI_REQUANT

Codes DiOperators::requant(const Value& v, const RowScale& in, int m_in_bits, int out_bits, int value_bits,
                           RequantClip clip, TripFactors trip) {
  return requant_row(v, std::nullopt, in, m_in_bits, out_bits, false, value_bits, clip, trip);
}

// rshr(x·m, k) of 0 <= x < 2^63 without 128 bits: x = q·2^k + r gives q·m + rshr(r·m, k) (r·m < 2^60, q·m <= x).
Value DiOperators::scale_by_ratio(const Value& x, RequantClip clip) {
  if (clip.k == 0) return g.mul(x, g.scalar(clip.m));  // m = 1
  const Value q = p.floor_div_pow2(x, clip.k);
  const Value r = g.sub(x, g.mul(q, g.scalar(int64_t{1} << clip.k)));
  return g.add(g.mul(q, g.scalar(clip.m)), p.rshr(g.mul(r, g.scalar(clip.m)), clip.k));
}

Codes DiOperators::requant_symmetric(const Value& v, const RowScale& in, int m_in_bits, int out_bits,
                                     int value_bits) {
  return requant_row(v, std::nullopt, in, m_in_bits, out_bits, true, value_bits);
}

Codes DiOperators::requant_row(const Value& v, const std::optional<Range>& known_range, const RowScale& in,
                               int m_in_bits, int out_bits, bool symmetric, int value_bits, RequantClip clip,
                               TripFactors trip) {
  using Magnitude = IntegerPrimitives::Magnitude;
  if (value_bits < 1 || value_bits > 62) throw Error("ONNX export: DI_REQUANT of values beyond 2^62");
  // v + 2^(L−1) (L <= 32) stays below 2^61 when |v| < 2^60: the cheaper biased floor division applies.
  const Magnitude signed_values = value_bits <= 60 ? Magnitude::kBelow2To61 : Magnitude::kAny;
  const int b_m = settings_.mantissa_bits;
  const char* what = symmetric ? "DI_REQUANT_SYM" : "DI_REQUANT";
  if (out_bits < (symmetric ? 2 : 1) || out_bits > 16 || b_m < 1 || b_m > 24 || m_in_bits < 1 || m_in_bits > 31)
    throw Error(std::string("ONNX export: ") + what + " with " + std::to_string(out_bits) + "-bit codes and " +
                std::to_string(b_m) + "-bit mantissas is not supported");
  const int64_t q_out = symmetric ? (int64_t{1} << (out_bits - 1)) - 1 : (int64_t{1} << out_bits) - 1;
  const int64_t max_mantissa = (int64_t{1} << b_m) - 1;
  const int64_t mantissa_by_steps = max_mantissa * q_out;  // the constant numerator of flog2_ratio (< 2^40)
  const int fraction_bits = 61 - out_bits;                 // F
  // The code multiplier A = rdiv128(m_in·2^(F+e), m_y) needs F + e >= 0, i.e. (2^b_m − 1)·Q·2^F >= m_in·R'
  // (< 2^62): true for every b_m >= 3 at the asymmetric widths; checked here for the setting at hand.
  if (static_cast<unsigned __int128>(mantissa_by_steps) << fraction_bits < (static_cast<unsigned __int128>(1) << 62))
    throw Error(std::string("ONNX export: unsupported setting: ") + what + " at " + std::to_string(out_bits) +
                " bits with mantissa_bits = " + std::to_string(b_m) +
                " needs a negative shift in its code multiplier (the graph supports (2^b_m − 1)·Q·2^(61 − bits) >= 2^62)");

  Value lo, hi, range;
  if (symmetric) {
    range = g.reduce_max(g.abs(v), -1);  // R = max |v_j| (< 2^62)
  } else {
    lo = known_range ? known_range->lo : g.min(g.reduce_min(v, -1), g.scalar(0));  // the range always contains 0
    hi = known_range ? known_range->hi : g.max(g.reduce_max(v, -1), g.scalar(0));
    if (clip.enabled()) {  // the clipped range, unless it is empty (then the row keeps its range)
      check_requant_clip(clip, "ONNX export: DI_REQUANT");
      const Value hi_c = scale_by_ratio(hi, clip), neg_lo_c = scale_by_ratio(g.neg(lo), clip);
      const Value empty = g.equal(g.add(hi_c, neg_lo_c), g.scalar(0));
      hi = g.where(empty, hi, hi_c);
      lo = g.where(empty, lo, g.neg(neg_lo_c));
    }
    range = g.sub(hi, lo);  // < 2^63 since |v| < 2^62
  }
  const Value all_zero = g.equal(range, g.scalar(0));
  // L = max(0, msb(R) − 30): the row brought below 2^31.
  const Value normalize = g.max(g.sub(p.msb(g.max(range, g.scalar(1))), g.scalar(30)), g.scalar(0));
  Value lo_n, range_n;
  if (symmetric) {
    range_n = g.max(p.rshr(range, normalize, Magnitude::kNonNegative), g.scalar(1));
  } else {
    lo_n = p.rshr(lo, normalize, signed_values);
    range_n = g.max(g.sub(p.rshr(hi, normalize, Magnitude::kNonNegative), lo_n), g.scalar(1));
  }
  const Value k_shifted = g.sub(in.k, normalize);
  const Value scaled_range = g.mul(in.m, range_n);  // m_in·R' < 2^31·(2^31 + 1) < 2^62
  const Value e = p.flog2_ratio(mantissa_by_steps, scaled_range);
  // m_y = cdiv(m_in·R'·2^e, Q) (e >= 0: the product is <= (2^b_m − 1)·Q < 2^40) or cdiv(m_in·R', Q·2^−e)
  // (e < 0: Q·2^−e < 2·m_in·R' < 2^63): both fit int64, so the 128-bit arithmetic of the C++ is not needed.
  const Value m_y = p.cdiv(g.mul(scaled_range, p.pow2(p.clamp(e, 0, 62))),
                           g.mul(g.scalar(q_out), p.pow2(p.clamp(g.neg(e), 0, 62))));
  // A = rdiv(m_in·2^(F+e), m_y) by long division (the numerator reaches 2^131; A < 2^62).
  const int max_shift = fraction_bits + constant_msb(static_cast<uint64_t>(mantissa_by_steps));
  const IntegerPrimitives::Division division =
      p.shifted_division(in.m, m_in_bits, g.add(e, g.scalar(fraction_bits)), max_shift, m_y, b_m);
  const Value multiplier = g.add(division.quotient,
                                 p.to_int64(g.greater_equal(g.mul(division.remainder, g.scalar(2)), m_y)));
  const auto convert = [&](const Value& x) { return p.rshr(g.mul(x, multiplier), fraction_bits); };  // |x·A| < 2^61

  Value codes, zero_point;
  if (symmetric) {
    codes = p.clamp(convert(p.rshr(v, normalize, signed_values)), -q_out, q_out);
    zero_point = g.scalar(0);
  } else {
    zero_point = g.neg(convert(lo_n));
    Value normalized = p.rshr(v, normalize, signed_values);
    if (clip.enabled()) {
      // The saturation window: y >= cdiv((Q − z)·2^F − 2^(F−1), A) codes Q, y <= fdiv((1 − z)·2^F − 2^(F−1) − 1, A)
      // codes 0; clamping to it changes no code and keeps |y·A| < 2^62 for values beyond the clipped range.
      const Value one = g.scalar(int64_t{1} << fraction_bits), half = g.scalar(int64_t{1} << (fraction_bits - 1));
      const Value y_max = p.cdiv(g.sub(g.mul(g.sub(g.scalar(q_out), zero_point), one), half), multiplier);
      const Value low = g.sub(g.sub(g.mul(g.sub(g.scalar(1), zero_point), one), half), g.scalar(1));
      const Value y_min = g.neg(p.cdiv(g.neg(low), multiplier));  // fdiv(low, A)
      normalized = g.min(g.max(normalized, y_min), y_max);
    }
    if (!trip.enabled()) {
      codes = p.clamp(g.add(convert(normalized), zero_point), 0, q_out);
    } else {
      // TRIP: channel c rounds at F − (K − α_c) (>= 37, a constant vector), then X_c = (Y_c − z)·2^(α_c − min α)
      // + z·2^E; the plan (range, z, A, window) is the plain one.
      const int32_t extra = trip_extra_bits(trip), alpha_min = trip.max_shift - extra;
      std::vector<int64_t> shifts, realign;
      for (const int8_t a : trip.alpha) {
        shifts.push_back(fraction_bits - (trip.max_shift - a));
        realign.push_back(int64_t{1} << (a - alpha_min));
      }
      const Value y = p.rshr(g.mul(normalized, multiplier), g.vector(shifts));  // |y·A| < 2^61
      const Value fine = p.clamp(g.add(y, zero_point), 0, q_out);
      const Value wide_zero_point = g.mul(zero_point, g.scalar(int64_t{1} << extra));
      codes = g.add(g.mul(g.sub(fine, zero_point), g.vector(realign)), wide_zero_point);
      zero_point = wide_zero_point;
    }
  }
  // An all-zero row (R = 0) already gives codes 0 and zero point 0 above (v = lo = 0); only its scale is special.
  Codes out;
  out.codes = codes;
  out.zero_point = zero_point;
  out.scale.m = g.where(all_zero, g.scalar(1), m_y);
  out.scale.k = g.where(all_zero, g.scalar(0), g.add(k_shifted, e));
  if (trip.enabled()) out.scale.k = g.add(out.scale.k, g.scalar(trip_extra_bits(trip)));  // (1, E) for R = 0 too
  return out;
}

// --------------------------------------------------------------------------------------------------- DI-Norm

Value DiOperators::norm_epsilon_units(Dyadic eps, const Value& k_norm) {
  // ε^I = rshr(ε_m, ε_k − 2K) for a non-negative shift (0 from shift 64 on; ε_m < 2^40, so the clamp at 62 changes
  // nothing), else ε_m·2^−shift, saturated at 2^61 when −shift >= 61 − msb(ε_m) (the C++ "−shift >= 62 or
  // msb(ε_m) − shift >= 61", as msb(ε_m) >= 0).
  const int eps_msb = constant_msb(static_cast<uint64_t>(eps.m));
  const Value shift = g.sub(g.scalar(eps.k), g.mul(k_norm, g.scalar(2)));
  const Value right = p.rshr(g.scalar(eps.m), p.clamp(shift, 0, 62), IntegerPrimitives::Magnitude::kNonNegative);
  const Value left_amount = g.neg(shift);
  const Value saturated = g.greater_equal(left_amount, g.scalar(61 - eps_msb));
  const Value left = g.where(saturated, g.scalar(int64_t{1} << 61),
                             g.mul(g.scalar(eps.m), p.pow2(p.clamp(left_amount, 0, 60 - eps_msb))));
  return g.where(g.greater_equal(shift, g.scalar(0)), right, left);
}

Codes DiOperators::norm(const Value& h, const RowScale& h_scale, const ChannelVector& gamma, Dyadic eps,
                        int out_bits, RequantClip clip, TripFactors trip) {
  const int64_t channels = static_cast<int64_t>(gamma.mantissa.size());
  if (channels < 1 || channels >= (int64_t{1} << 14))
    throw Error("ONNX export: DI-Norm over " + std::to_string(channels) + " channels (the graph supports 1 … 16383)");
  const int frac_bits = settings_.norm_frac_bits;
  const Value z = g.mul(h, h_scale.m);  // Z = h·m_h, |Z| < 2^15·2^31
  // sh = msb(max |Z|) − 23; Z ← rshr(Z, sh) (a left shift by up to 23 when sh < 0). An all-zero row keeps Z = 0,
  // and every later step then gives the C++'s early result (codes 0, z 0, scale (1, 0)).
  const Value max_abs = g.reduce_max(g.abs(z), -1);
  const Value sh = g.sub(p.msb(g.max(max_abs, g.scalar(1))), g.scalar(23));
  const Value zn = p.shift_round(z, sh, 23, 62, IntegerPrimitives::Magnitude::kBelow2To61);  // |Z| < 2^47
  const Value k_norm = g.sub(h_scale.k, sh);
  const Value sum_squares = g.reduce_sum(g.mul(zn, zn), -1);  // < 2^48·C < 2^62
  const Value mean_square = p.rdiv(sum_squares, channels);
  const Value radicand = eps.m > 0 ? g.add(mean_square, norm_epsilon_units(eps, k_norm)) : mean_square;
  const Value rms = g.max(p.isqrt(radicand), g.scalar(1));  // >= 2^23/√C for non-zero rows
  const Value inv_rms = p.rdiv(g.scalar(int64_t{1} << (frac_bits + 30)), rms);
  const Value y = p.rshr(g.mul(zn, inv_rms), 30);  // |Z·Rinv| <= 2^(F+31)·√C < 2^58
  const Value w = g.mul(y, g.vector(gamma.mantissa));  // |W| < 2^(F+1)·√C·2^31 < 2^59
  Codes out = requant(w, RowScale{g.scalar(1), g.scalar(int64_t{frac_bits} + gamma.exponent)}, 1, out_bits, 59, clip,
                      trip);
  // With TRIP an all-zero requantized row has scale (1, E), but an all-zero residual row keeps the C++'s early (1, 0).
  if (trip.enabled()) out.scale.k = g.where(g.equal(max_abs, g.scalar(0)), g.scalar(0), out.scale.k);
  return out;
}

// ---------------------------------------------------------------------------------------------------- DI-Exp

ExpFrame DiOperators::exp_frame(const RowScale& scale) {
  // A mantissa below 2^7 is widened exactly: w = max(0, 7 − msb(m)), m ← m·2^w, k ← k + w.
  const Value widen = g.max(g.sub(g.scalar(7), p.msb(scale.m, 40)), g.scalar(0));
  const Value m = g.mul(scale.m, p.pow2(widen));
  const Value k = g.add(scale.k, widen);
  const Value m_f = g.sub(g.add(m, g.div(m, g.scalar(2))), g.div(m, g.scalar(16)));  // m·1.4375, m >= 1
  const Value a = p.msb(m_f, 41);                                                     // m_f < 1.5·2^40
  const Value half = g.div(m_f, g.scalar(2));
  // steps = rdiv(2^k, m_f) (0 for k < 0) is only needed through "steps >= 1" and msb(steps):
  //   steps >= 1  ⇔ k >= 0 and 2^k + ⌊m_f/2⌋ >= m_f (always true from k = 42 on);
  //   with ρ = m_f − 2^a, steps ∈ [2^(k−a−1), 2^(k−a)] and steps = 2^(k−a) ⇔ ⌊m_f/2⌋ >= 2^(k−a)·ρ
  //   ⇔ ⌊⌊m_f/2⌋ / 2^(k−a)⌋ >= ρ, so msb(steps) = max(0, k − a − 1 + [that]) — no 2^k with k up to 99 is formed.
  const Value steps_positive =
      g.logical_and(g.greater_equal(k, g.scalar(0)),
                    g.greater_equal(g.add(p.pow2(p.clamp(k, 0, 42)), half), m_f));
  const Value k_minus_a = g.sub(k, a);
  const Value rho = g.sub(m_f, p.pow2(a));
  const Value reaches_top = p.to_int64(g.greater_equal(g.div(half, p.pow2(p.clamp(k_minus_a, 0, 62))), rho));
  const Value steps_msb = g.max(g.add(g.sub(k_minus_a, g.scalar(1)), reaches_top), g.scalar(0));
  ExpFrame frame;
  frame.promote = g.where(steps_positive, g.sub(g.scalar(14), steps_msb), g.sub(g.add(a, g.scalar(15)), k));
  // |t| = rdiv(2^(k+P), m_f) with k + P ∈ [13, 55].
  frame.abs_t = p.rdiv(p.pow2(p.clamp(g.add(k, frame.promote), 0, 62)), m_f);
  return frame;
}

Value DiOperators::promote(const Value& x, const ExpFrame& frame) {
  // P >= 0: shl(x, P) (P <= 40); P < 0: rshr(x, −P) (|x| < 2^61, so a right shift past 62 would give 0 too).
  // The promoted value is below 2^61 wherever the kernels accept it (DI-SwiGLU checks |a| < 2^(61 − max(P, 0))).
  return p.shift_round(x, g.neg(frame.promote), 40, 62, IntegerPrimitives::Magnitude::kBelow2To61);
}

Value DiOperators::exp(const Value& x, const ExpFrame& frame) {
  const Value abs_t = frame.abs_t;
  const Value q = g.div(g.neg(x), abs_t);  // −x >= 0: truncation = floor
  const Value r = g.add(x, g.mul(q, abs_t));  // ∈ (t, 0]
  Value e0;
  if (settings_.exp_quadratic) {
    // E0 = |t| + rdiv(r·(A·|t| + B·r), |t|·2^14): the numerator is <= 0, so rdiv = −⌊(−num + ⌊D/2⌋) / D⌋.
    const Value numerator = g.mul(r, g.add(g.mul(abs_t, g.scalar(11017)), g.mul(r, g.scalar(2821))));
    const Value denominator = g.mul(abs_t, g.scalar(int64_t{1} << 14));
    e0 = g.sub(abs_t, p.rdiv(g.neg(numerator), denominator));
    e0 = g.max(e0, g.div(abs_t, g.scalar(2)));
  } else {
    e0 = g.add(p.floor_div_pow2(r, 1), abs_t);  // asr(r, 1) + |t|
  }
  // E = asr(E0, q) with E0 ∈ (0, 2^16]: q >= 63 gives 0 in the C++, as does a shift by 62 here.
  return g.div(e0, p.pow2(g.min(q, g.scalar(62))));
}

// ------------------------------------------------------------------------------------------ DI-ClippedSoftmax

Value DiOperators::clip_in_logit_units(Dyadic clip, const RowScale& in) {
  // c^I = cdiv(c·2^(k_in − c_k), m_in) (or cdiv(c, m_in·2^(c_k − k_in))), but capped at 2^57 instead of 2^62: any
  // c^I above the logit range (< 2^56) gives lo = v_min, so the cap changes no output.
  const int clip_msb = constant_msb(static_cast<uint64_t>(clip.m));
  const Value e = g.sub(in.k, g.scalar(clip.k));
  const Value m_msb = p.msb(in.m, 31);
  // e >= 0: msb(c) + e − msb(m) >= 58 ⇒ c·2^e / m > 2^57; otherwise the quotient is < 2^59.
  const Value saturated = g.greater_equal(g.sub(g.add(e, g.scalar(clip_msb)), m_msb), g.scalar(kClipCapMsb + 1));
  const int max_shift = kClipCapMsb + 30 - clip_msb;
  const IntegerPrimitives::Division division =
      p.shifted_division(g.scalar(clip.m), clip_msb + 1, e, max_shift, in.m, 31);
  const Value ceiling = g.add(division.quotient, p.to_int64(g.greater(division.remainder, g.scalar(0))));
  const Value positive = g.where(saturated, g.scalar(kClipCap), g.min(ceiling, g.scalar(kClipCap)));
  // e < 0: m·2^−e > c once msb(m) − e >= msb(c) + 1, and then c^I = 1; otherwise m·2^−e < 2^(msb(c)+1).
  const Value left = g.neg(e);
  const Value is_one = g.greater_equal(g.add(m_msb, left), g.scalar(clip_msb + 1));
  const Value bounded_left = g.min(p.clamp(left, 0, 62), g.max(g.sub(g.scalar(clip_msb), m_msb), g.scalar(0)));
  const Value negative = g.where(is_one, g.scalar(1), p.cdiv(g.scalar(clip.m), g.mul(in.m, p.pow2(bounded_left))));
  return g.where(g.greater_equal(e, g.scalar(0)), positive, negative);
}

Value DiOperators::clipped_softmax(const Value& logits, const Value& mask, const RowScale& in, Dyadic clip) {
  const Value v_max = p.wide_max(g.where(mask, logits, g.scalar(-kMaskedLogit)), -1);
  const Value v_min = p.wide_min(g.where(mask, logits, g.scalar(kMaskedLogit)), -1);
  const Value lo = clip.m == 0 ? v_min : g.max(v_min, g.sub(v_max, clip_in_logit_units(clip, in)));
  // d_j = max(v_j, lo) − v_max on valid keys; 0 on masked keys. Its range is known without a reduction: the
  // smallest d is lo − v_max (lo >= v_min) and the largest is 0 (the maximum key).
  const Value shifted = g.where(mask, g.sub(g.max(logits, lo), v_max), g.scalar(0));
  const Codes input =
      requant_row(shifted, Range{g.sub(lo, v_max), g.scalar(0)}, in, 31, settings_.softmax_in_bits, false, 57);
  const ExpFrame frame = exp_frame(input.scale);
  const Value x = g.sub(input.codes, input.zero_point);  // <= 0
  const Value e = g.where(mask, exp(promote(x, frame), frame), g.scalar(0));
  const Value sum = g.reduce_sum(e, -1);  // >= |t| > 0: the maximum key has x = 0
  return g.div(g.mul(e, g.scalar(int64_t{1} << (settings_.prob_bits - 1))), sum);
}

// -------------------------------------------------------------------------------------------------- DI-SwiGLU

Codes DiOperators::swiglu(const Codes& gate, const Codes& up, const ChannelVector& inv_alpha, int out_bits,
                          RequantClip clip, TripFactors trip) {
  const Products products = swiglu_products(gate, up, inv_alpha);
  return requant(products.values, products.scale, settings_.mantissa_bits + 1, out_bits, 46, clip, trip);
}

DiOperators::Products DiOperators::swiglu_products(const Codes& gate, const Codes& up, const ChannelVector& inv_alpha) {
  const Value g_c = g.sub(gate.codes, gate.zero_point);
  const Value u_c = g.sub(up.codes, up.zero_point);
  const Value argument = g.mul(g_c, g.vector(inv_alpha.mantissa));  // |g·a| < 2^32
  const ExpFrame frame = exp_frame(RowScale{gate.scale.m, g.add(gate.scale.k, g.scalar(inv_alpha.exponent))});
  const Value x = promote(argument, frame);
  const Value one = g.scalar(int64_t{1} << (settings_.sigmoid_bits - 1));
  Value sigma;
  if (settings_.sigmoid_stable) {
    const Value e = exp(g.neg(g.abs(x)), frame);  // e^(−|x|)·|t|
    const Value numerator = g.where(g.greater_equal(x, g.scalar(0)), frame.abs_t, e);
    sigma = g.div(g.mul(numerator, one), g.add(frame.abs_t, e));
  } else {
    const Value shared_max = g.max(g.reduce_max(x, -1), g.scalar(0));
    const Value e = exp(g.sub(x, shared_max), frame);
    const Value e_neg_max = exp(g.neg(shared_max), frame);
    const Value denominator = g.add(e, e_neg_max);
    sigma = g.where(g.equal(denominator, g.scalar(0)), g.scalar(0),
                    g.div(g.mul(e, one), g.max(denominator, g.scalar(1))));
  }
  const Value product = g.mul(g.mul(g_c, sigma), u_c);  // |g·σ·u| < 2^16·2^(p_σ−1)
  // μ = rshr(m_g·m_u, L), L = max(0, msb(m_g·m_u) + 1 − b_m): μ <= 2^b_m.
  const Value mantissa_product = g.mul(gate.scale.m, up.scale.m);  // < 2^62
  const int b_m = settings_.mantissa_bits;
  const Value drop = g.max(g.sub(p.msb(mantissa_product), g.scalar(b_m - 1)), g.scalar(0));
  const Value m_in = p.rshr(mantissa_product, drop, IntegerPrimitives::Magnitude::kNonNegative);
  const Value k_in =
      g.sub(g.add(g.add(gate.scale.k, up.scale.k), g.scalar(settings_.sigmoid_bits - 1)), drop);
  return Products{product, RowScale{m_in, k_in}};
}

// ----------------------------------------------------------------------------------------------- residual add

Codes DiOperators::residual_add(const Value& h, const RowScale& h_scale, const Value& delta,
                                const RowScale& delta_scale) {
  const Value d_max = g.reduce_max(g.abs(delta), -1);
  const Value d_msb = p.msb(g.max(d_max, g.scalar(1)));
  const Value m_d_msb = p.msb(delta_scale.m, 31);
  // L = max(0, msb(D) − 39, msb(D) + msb(m_d) − 55) for D > 0, else 0.
  const Value by_value = g.sub(d_msb, g.scalar(39));
  const Value by_product = g.sub(g.add(d_msb, m_d_msb), g.scalar(55));
  const Value shift_d = g.where(g.greater(d_max, g.scalar(0)), g.max(g.max(by_value, by_product), g.scalar(0)),
                                g.scalar(0));
  const Value k_d = g.sub(delta_scale.k, shift_d);
  // Head rooms below 2^61 of both terms: |h|·m_h < 2^46 and (rshr(D, L) + 1)·m_d < 2^58, so no 128-bit product.
  const Value h_max = g.reduce_max(g.abs(h), -1);
  const Value headroom_h = g.sub(g.scalar(61), p.bit_length(g.mul(h_max, h_scale.m)));
  const Value headroom_d =
      g.sub(g.scalar(61), p.bit_length(g.mul(
                              g.add(p.rshr(d_max, shift_d, IntegerPrimitives::Magnitude::kNonNegative), g.scalar(1)),
                              delta_scale.m)));
  const Value k_common = g.min(g.max(h_scale.k, k_d),
                               g.min(g.add(h_scale.k, headroom_h), g.add(k_d, headroom_d)));
  // The C++ clamps these shifts to [−62, 64]; right shifts past 62 give 0 for both terms (< 2^58), so 62 is enough.
  // Both terms stay below 2^61 after their left shifts (the head rooms), and the delta is below 2^61 (the linear bound).
  using Magnitude = IntegerPrimitives::Magnitude;
  const Value a = p.shift_round(g.mul(h, h_scale.m), g.sub(h_scale.k, k_common), 62, 62, Magnitude::kBelow2To61);
  const Value b = p.shift_round(g.mul(p.rshr(delta, shift_d, Magnitude::kBelow2To61), delta_scale.m),
                                g.sub(k_d, k_common), 62, 62, Magnitude::kBelow2To61);
  return requant_symmetric(g.add(a, b), RowScale{g.scalar(1), k_common}, 1, 16);
}

// ------------------------------------------------------------------------------------------------------ RoPE

Value DiOperators::rope(const Value& x, int64_t head_dim, const Value& cos, const Value& sin, int frac_bits) {
  const int64_t half = head_dim / 2;
  const int64_t axis = -1;
  const Value x_lo = g.slice(x, axis, 0, half);
  const Value x_hi = g.slice(x, axis, half, head_dim);
  // Products of int16-range values and Q1.14 entries (< 2^30); results saturated to int32 like the kernel.
  const Value y_lo = p.clamp(p.rshr(g.sub(g.mul(x_lo, cos), g.mul(x_hi, sin)), frac_bits), INT32_MIN, INT32_MAX);
  const Value y_hi = p.clamp(p.rshr(g.add(g.mul(x_hi, cos), g.mul(x_lo, sin)), frac_bits), INT32_MIN, INT32_MAX);
  return g.concat({y_lo, y_hi}, axis);
}

// ------------------------------------------------------------------------------------------ attention helpers

DiOperators::Alignment DiOperators::align_prefix(const Value& m, const Value& k, const Value& mask) {
  // K2 = min(max_j k_j, min_j k_j + 24 − b_m) over the valid keys of the row; μ_j = rshr(m_j, k_j − K2), a left shift
  // by K2 − k_j <= 24 − b_m when k_j <= K2. Written as one right shift of a non-negative value:
  // rshr(m·2^a, s + a) = rshr(m, s) for s >= −a (a = 24 − b_m), so μ_j = (M_j + ⌊2^(σ−1)⌋) / 2^σ with
  // M_j = m_j·2^a (< 2^47, per key) and σ = k_j − K2 + a >= 0; σ is capped at 62 (m_j < 2^24: 0 either way) and
  // set to 0 on masked keys (the caller masks them).
  const int64_t spread = kAlignedMantissaBits - settings_.mantissa_bits;
  const Value k_max = g.reduce_max_int32(g.where(mask, k, g.scalar(-kMaskedExponent)), -1);  // exponents: int32
  const Value k_min = g.reduce_min_int32(g.where(mask, k, g.scalar(kMaskedExponent)), -1);
  Alignment a;
  a.exponent = g.min(k_max, g.add(k_min, g.scalar(spread)));
  const Value sigma = g.where(mask, g.sub(k, g.sub(a.exponent, g.scalar(spread))), g.scalar(0));
  const Value widened = g.mul(m, g.scalar(int64_t{1} << spread));
  a.mantissas = p.rshr(widened, g.min(sigma, g.scalar(62)), IntegerPrimitives::Magnitude::kNonNegative);
  return a;
}

Codes DiOperators::requantize_heads(const Value& values, const Value& exponents, int64_t heads, int64_t head_dim,
                                    int out_bits, RequantClip clip, TripFactors trip) {
  // E = min(max_h E_h, min over non-zero heads of E_h + 62 − bitlength(max |v_h|)); each head to E (shl for
  // E_h <= E, rshr otherwise; values < 2^55, so right shifts past 62 give 0 too), then one DI_REQUANT per row.
  const Value max_abs = g.reduce_max(g.abs(values), -1);
  const Value finest = g.reduce_max(exponents, -2);
  const Value head_cap = g.where(g.equal(max_abs, g.scalar(0)), g.scalar(kMaskedExponent),
                                 g.sub(g.add(exponents, g.scalar(62)), p.bit_length(max_abs)));
  const Value common = g.min(finest, g.reduce_min(head_cap, -2));
  const Value aligned = p.shift_round(values, g.sub(exponents, common), 62, 62);
  const Value rows = g.reshape(aligned, std::vector<int64_t>{0, heads * head_dim});
  const Value common_row = g.squeeze(common, {2});  // [rows][1]
  return requant(rows, RowScale{g.scalar(1), common_row}, 1, out_bits, 62, clip, trip);
}

}  // namespace illm::formats::onnx_export
