#include "kernels/optimized/row_operators.h"

#include <algorithm>
#include <span>
#include <string>
#include <vector>

#include "kernels/error.h"
#include "kernels/integer_math.h"
#include "kernels/reference/di_exp.h"
#include "kernels/optimized/parallel.h"
#include "kernels/optimized/requant_rows.h"
#include "kernels/reference/di_norm.h"
#include "kernels/reference/di_swiglu.h"
#include "kernels/reference/hadamard_sites.h"
#include "kernels/reference/head_requant.h"
#include "kernels/reference/residual.h"
#include "kernels/requant.h"

namespace illm::optimized {
namespace {

constexpr int kRopeInputBits = 16;  // q/k requantized to int16 symmetric before the rotation (§7.4)
constexpr int kWideBits = 16;       // the symmetric codes an online Hadamard transforms
constexpr int64_t kMinT = int64_t{1} << 13, kMaxT = int64_t{1} << 16;  // |t| range of the fast DI-Exp loops

void check_heads(const AlignedAccumulator& acc, int32_t heads, int32_t head_dim, const char* op) {
  if (heads < 1 || head_dim < 1 || acc.cols != heads * head_dim)
    throw Error(std::string(op) + ": accumulator of " + std::to_string(acc.cols) + " columns for " +
                std::to_string(heads) + " heads of " + std::to_string(head_dim));
}

// DI_REQUANT of token t's heads (values: heads × head_dim of one row, one scale) into out's (t, h) codes.
void requant_token_heads(const RowKernels& k, const int64_t* values, int64_t t, Dyadic scale,
                         const IntegerSettings& settings, int out_bits, PerHeadActivation& out, RequantClip clip) {
  const int32_t heads = out.heads, head_dim = out.head_dim;
  for (int32_t h = 0; h < heads; ++h) {
    const size_t index = static_cast<size_t>(t) * heads + h;
    const DiRequantResult r = requant_row(k, values + static_cast<size_t>(h) * head_dim, head_dim, scale.m, scale.k,
                                          out_bits, settings.mantissa_bits, out.codes.data() + index * head_dim, clip);
    out.zero_points[index] = static_cast<int32_t>(r.zero_point);
    out.scales[index] = r.scale;
  }
}

// q/k of token t before its per-head codes (§7.4): DI_REQUANT_SYM of the accumulator row to 16 bits into `row`
// (acc.cols values), RoPE of every head at `position`. Returns the 16-bit scale.
Dyadic rope_token_symmetric(const RowKernels& k, const AlignedAccumulator& acc, int64_t t, int32_t head_dim,
                            int32_t position, const RopeTableView& rope, const IntegerSettings& settings,
                            int32_t* row) {
  const size_t offset = static_cast<size_t>(t) * acc.cols;
  const DiRequantResult q16 = requant_row_symmetric(k, acc.values.data() + offset, acc.cols, acc.scales[t].m,
                                                    acc.scales[t].k, kRopeInputBits, settings.mantissa_bits, row);
  rope_rotate_row(std::span<int32_t>(row, static_cast<size_t>(acc.cols)), head_dim, position, rope);
  return q16.scale;
}

void check_swiglu_inputs(const QuantizedActivation& gate, const QuantizedActivation& up,
                         const ChannelVector& inv_alpha) {
  check_swiglu_shapes(gate, up);
  if (inv_alpha.mantissa.size() != static_cast<size_t>(gate.cols))
    throw Error("DI-SwiGLU: inv_alpha has " + std::to_string(inv_alpha.mantissa.size()) + " entries for " +
                std::to_string(gate.cols) + " channels");
}

// DI-SwiGLU's products O of token t and their scale (μ, k_in) (§6.2, di_swiglu_products) into `products` (gate.cols
// values), the stable sigmoid's element loops in the row kernels; other settings (the paper's shared-max sigmoid)
// and promotions outside the fast loop's bounds use the reference's products.
Dyadic swiglu_token_products(const RowKernels& k, const QuantizedActivation& gate, const QuantizedActivation& up,
                             int64_t t, const ChannelVector& inv_alpha, const IntegerSettings& settings,
                             int64_t* products) {
  const int32_t n = gate.cols;
  thread_local std::vector<uint8_t> g, u;
  const SwigluInput gate_row = swiglu_input_row(gate, static_cast<int32_t>(t), g);
  const SwigluInput up_row = swiglu_input_row(up, static_cast<int32_t>(t), u);
  const Dyadic sigmoid_scale{gate.scales[t].m, gate.scales[t].k + inv_alpha.exponent};
  const DiExpFrame frame = di_exp_frame(sigmoid_scale.m, sigmoid_scale.k);
  const int64_t abs_t = -frame.t;
  // |A_c| <= 255·max a_c < 2^32: the promotion limit 2^(61 − P) holds for P <= 28.
  if (!settings.sigmoid_stable || abs_t < kMinT || abs_t >= kMaxT || frame.promote > 28 || frame.promote < -40)
    return di_swiglu_products(gate_row, up_row, inv_alpha, settings,
                              std::span<int64_t>(products, static_cast<size_t>(n)));
  thread_local std::vector<int32_t> e, numerator;
  e.resize(n), numerator.resize(n);
  const int64_t one = int64_t{1} << (settings.sigmoid_bits - 1);
  SigmoidElements p;
  p.promote = frame.promote;
  p.abs_t = abs_t;
  p.quadratic = settings.exp_quadratic;
  k.sigmoid_exp(g.data(), gate.zero_points[t], inv_alpha.mantissa.data(), n, p, e.data(), numerator.data());
  // σ_c = fdiv(numerator·2^(p_σ−1), |t| + E_c): non-negative operands, so C++ division is the floor; in 32 bits
  // (faster) when numerator·2^(p_σ−1) <= |t|·2^(p_σ−1) fits.
  if (abs_t * one <= int64_t{UINT32_MAX}) {
    const uint32_t one32 = static_cast<uint32_t>(one), t32 = static_cast<uint32_t>(abs_t);
    for (int32_t c = 0; c < n; ++c)
      e[c] = static_cast<int32_t>(static_cast<uint32_t>(numerator[c]) * one32 / (t32 + static_cast<uint32_t>(e[c])));
  } else {
    for (int32_t c = 0; c < n; ++c) e[c] = static_cast<int32_t>(int64_t{numerator[c]} * one / (abs_t + e[c]));
  }
  k.swiglu_products(g.data(), gate.zero_points[t], u.data(), up.zero_points[t], e.data(), n, products);
  return swiglu_product_scale(gate.scales[t], up.scales[t], settings);
}

}  // namespace

// DI-Norm per token (§5.4) with the element loops in the row kernels; the per-row scalars are the reference's
// (kDiNormNormalizedMsb, di_norm_inverse_rms). max |Z| = max |h|·m_h since m_h >= 1.
void rms_norm(const RowKernels& k, const ResidualStream& h, const ChannelVector& gamma, Dyadic eps,
              const IntegerSettings& settings, int out_bits, QuantizedActivation& out, RequantClip clip) {
  if (gamma.mantissa.size() != static_cast<size_t>(h.cols))
    throw Error("DI-Norm: gamma has " + std::to_string(gamma.mantissa.size()) + " entries for " +
                std::to_string(h.cols) + " channels");
  resize_activation(out, h.rows, h.cols, out_bits);
  const int frac_bits = settings.norm_frac_bits;
  parallel_for(h.rows, int64_t{h.cols} * 16, [&](int64_t t) {
    thread_local std::vector<int64_t> z, w;
    z.resize(h.cols);
    w.resize(h.cols);
    const size_t offset = static_cast<size_t>(t) * h.cols;
    const int16_t* codes = h.codes.data() + offset;
    const Dyadic scale = h.scales[t];
    const int64_t max_abs = int64_t{k.max_abs_i16(codes, h.cols)} * scale.m;
    if (max_abs == 0) {
      std::fill_n(out.codes.begin() + static_cast<ptrdiff_t>(offset), h.cols, uint16_t{0});
      out.zero_points[t] = 0;
      out.scales[t] = Dyadic{1, 0};
      return;
    }
    const int shift = msb(static_cast<uint64_t>(max_abs)) - kDiNormNormalizedMsb;
    const int64_t sum_squares = k.norm_scale(codes, h.cols, scale.m, shift, z.data());
    const int64_t inv_rms = di_norm_inverse_rms(sum_squares, h.cols, int64_t{scale.k} - shift, eps, frac_bits);
    k.norm_apply(z.data(), h.cols, inv_rms, gamma.mantissa.data(), w.data());
    const DiRequantResult r = requant_row(k, w.data(), h.cols, 1, frac_bits + gamma.exponent, out_bits,
                                          settings.mantissa_bits, out.codes.data() + offset, clip);
    out.zero_points[t] = static_cast<int32_t>(r.zero_point);
    out.scales[t] = r.scale;
  });
}

void requantize(const RowKernels& k, const AlignedAccumulator& acc, int out_bits, int mantissa_bits,
                QuantizedActivation& out, RequantClip clip) {
  resize_activation(out, acc.rows, acc.cols, out_bits);
  parallel_for(acc.rows, int64_t{acc.cols} * 8, [&](int64_t t) {
    const size_t offset = static_cast<size_t>(t) * acc.cols;
    const DiRequantResult r = requant_row(k, acc.values.data() + offset, acc.cols, acc.scales[t].m, acc.scales[t].k,
                                          out_bits, mantissa_bits, out.codes.data() + offset, clip);
    out.zero_points[t] = static_cast<int32_t>(r.zero_point);
    out.scales[t] = r.scale;
  });
}

void rope_heads(const RowKernels& k, const AlignedAccumulator& acc, int32_t heads, int32_t head_dim,
                int32_t first_position, const RopeTableView& rope, const IntegerSettings& settings, int out_bits,
                PerHeadActivation& out, RequantClip clip) {
  check_heads(acc, heads, head_dim, "rope_heads");
  resize_per_head(out, acc.rows, heads, head_dim, out_bits);
  parallel_for(acc.rows, int64_t{acc.cols} * 16, [&](int64_t t) {
    thread_local std::vector<int32_t> rotated;
    thread_local std::vector<int64_t> wide;
    rotated.resize(acc.cols);
    wide.resize(acc.cols);
    const Dyadic q16 = rope_token_symmetric(k, acc, t, head_dim, first_position + static_cast<int32_t>(t), rope,
                                            settings, rotated.data());
    std::copy(rotated.begin(), rotated.end(), wide.begin());
    requant_token_heads(k, wide.data(), t, q16, settings, out_bits, out, clip);
  });
}

void split_heads(const RowKernels& k, const AlignedAccumulator& acc, int32_t heads, int32_t head_dim,
                 const IntegerSettings& settings, int out_bits, PerHeadActivation& out, RequantClip clip) {
  check_heads(acc, heads, head_dim, "split_heads");
  resize_per_head(out, acc.rows, heads, head_dim, out_bits);
  parallel_for(acc.rows, int64_t{acc.cols} * 8, [&](int64_t t) {
    requant_token_heads(k, acc.values.data() + static_cast<size_t>(t) * acc.cols, t, acc.scales[t], settings,
                        out_bits, out, clip);
  });
}

void rope_symmetric(const RowKernels& k, const AlignedAccumulator& acc, int32_t heads, int32_t head_dim,
                    std::span<const int32_t> positions, const RopeTableView& rope, const IntegerSettings& settings,
                    WideRows& out) {
  check_rope_symmetric_shapes(acc, heads, head_dim, positions);
  resize_wide_rows(out, acc.rows, acc.cols);
  parallel_for(acc.rows, int64_t{acc.cols} * 16, [&](int64_t t) {
    out.scales[t] = rope_token_symmetric(k, acc, t, head_dim, positions[static_cast<size_t>(t)], rope, settings,
                                         out.values.data() + static_cast<size_t>(t) * acc.cols);
  });
}

// DI-SwiGLU (§6.2): the products of swiglu_token_products, DI_REQUANT to out_bits.
void swiglu(const RowKernels& k, const QuantizedActivation& gate, const QuantizedActivation& up,
            const ChannelVector& inv_alpha, const IntegerSettings& settings, int out_bits, QuantizedActivation& out,
            RequantClip clip) {
  check_swiglu_inputs(gate, up, inv_alpha);
  resize_activation(out, gate.rows, gate.cols, out_bits);
  const int32_t n = gate.cols;
  parallel_for(gate.rows, int64_t{n} * 32, [&](int64_t t) {
    thread_local std::vector<int64_t> products;
    products.resize(n);
    const Dyadic scale = swiglu_token_products(k, gate, up, t, inv_alpha, settings, products.data());
    const size_t offset = static_cast<size_t>(t) * n;
    const DiRequantResult r = requant_row(k, products.data(), n, scale.m, scale.k, out_bits, settings.mantissa_bits,
                                          out.codes.data() + offset, clip);
    out.zero_points[t] = static_cast<int32_t>(r.zero_point);
    out.scales[t] = r.scale;
  });
}

// hadamard_down before the transform: the same products, DI_REQUANT_SYM to 16 bits (int32 rows).
void swiglu_symmetric(const RowKernels& k, const QuantizedActivation& gate, const QuantizedActivation& up,
                      const ChannelVector& inv_alpha, const IntegerSettings& settings, WideRows& out) {
  check_swiglu_inputs(gate, up, inv_alpha);
  resize_wide_rows(out, gate.rows, gate.cols);
  const int32_t n = gate.cols;
  parallel_for(gate.rows, int64_t{n} * 32, [&](int64_t t) {
    thread_local std::vector<int64_t> products;
    products.resize(n);
    const Dyadic scale = swiglu_token_products(k, gate, up, t, inv_alpha, settings, products.data());
    out.scales[t] = requant_row_symmetric(k, products.data(), n, scale.m, scale.k, kWideBits, settings.mantissa_bits,
                                          out.values.data() + static_cast<size_t>(t) * n)
                        .scale;
  });
}

// Residual add (§7.2) with the reference's per-row plan (plan_residual_add) and the row kernels.
void residual_add(const RowKernels& k, const ResidualStream& h, const AlignedAccumulator& delta, int mantissa_bits,
                  int out_bits, ResidualStream& out) {
  if (delta.rows != h.rows || delta.cols != h.cols)
    throw Error("residual add: delta shape " + std::to_string(delta.rows) + "x" + std::to_string(delta.cols) +
                " differs from the residual " + std::to_string(h.rows) + "x" + std::to_string(h.cols));
  if (out_bits < 2 || out_bits > 16) throw Error("residual add: out_bits must be in [2, 16]");
  if (&out != &h) {
    out.codes.resize(h.codes.size());
    out.scales.resize(h.rows);
  }
  out.rows = h.rows;
  out.cols = h.cols;
  out.bits = out_bits;
  parallel_for(h.rows, int64_t{h.cols} * 16, [&](int64_t t) {
    thread_local std::vector<int64_t> sum;
    sum.resize(h.cols);
    const size_t offset = static_cast<size_t>(t) * h.cols;
    const int16_t* codes = h.codes.data() + offset;
    const int64_t* d = delta.values.data() + offset;
    const uint64_t d_max = k.max_abs(d, h.cols);
    if (d_max > (uint64_t{1} << 62)) {  // the reference names the offending column
      residual_add_row(std::span<const int16_t>(codes, h.cols), h.scales[t], std::span<const int64_t>(d, h.cols),
                       delta.scales[t], mantissa_bits, out_bits, std::span<int16_t>(out.codes.data() + offset, h.cols));
      return;
    }
    const Dyadic s_h = h.scales[t], s_d = delta.scales[t];
    const ResidualAddPlan plan = plan_residual_add(k.max_abs_i16(codes, h.cols), s_h, d_max, s_d);
    k.residual_sum(codes, d, h.cols, s_h.m, plan.residual_shift, plan.delta_shift, s_d.m, plan.delta_term_shift,
                   sum.data());
    out.scales[t] = requant_row_symmetric(k, sum.data(), h.cols, 1, plan.exponent, out_bits, mantissa_bits,
                                          out.codes.data() + offset).scale;
  });
}

}  // namespace illm::optimized
