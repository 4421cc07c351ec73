// Prints the error tables of the non-linear integer operators (docs/integer-semantics.md) as markdown:
// each integer kernel against its float64 ideal on inputs of the ranges that occur in LLaMA activations.
// Usage: build-*/bench/kernel_error_tables > tables.md   (fixed seeds: the output is reproducible)
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "tests/kernels/support/ideal_ops.h"
#include "formats/rope_tables.h"
#include "kernels/quantized_model.h"
#include "kernels/reference/di_exp.h"
#include "kernels/reference/di_norm.h"
#include "kernels/reference/di_softmax.h"
#include "kernels/reference/di_swiglu.h"
#include "kernels/reference/rope.h"

namespace {
using namespace illm;

double real_of(Dyadic d) { return std::ldexp(static_cast<double>(d.m), -d.k); }

// Float → dyadic with a b-bit mantissa (docs/method.md §1.4).
Dyadic dyadic_of(double s, int bits = 16) {
  int32_t k = bits - 1 - static_cast<int32_t>(std::floor(std::log2(s)));
  int64_t m = std::llround(std::ldexp(s, k));
  if (m == (int64_t{1} << bits)) { m >>= 1; --k; }
  return Dyadic{m, k};
}

IntegerSettings paper_settings() { return paper_conformance_settings(); }

// ---------------------------------------------------------------------------------------------- DI-Exp
void di_exp_table() {
  std::printf("### DI-Exp: E/|t| against e^x on x ∈ [−15, 0] (every input code of an n-bit row clipped at c = 15)\n\n");
  std::printf("| input bits | 2^u form | promotion P | abs(t) | max rel. err (e^x > 1e−2) | max rel. err (e^x > 1e−3) | max abs err | mean abs err |\n");
  std::printf("| --- | --- | --- | --- | --- | --- | --- | --- |\n");
  for (int bits : {8, 16}) {
    for (bool quadratic : {false, true}) {
      const int64_t q_in = (int64_t{1} << bits) - 1;
      const Dyadic s = dyadic_of(15.0 / static_cast<double>(q_in), bits == 8 ? 8 : 16);
      const DiExpFrame f = di_exp_frame(s.m, s.k);
      double rel2 = 0, rel3 = 0, abs_max = 0, abs_sum = 0;
      for (int64_t x = 0; x >= -q_in; --x) {
        const double exact = std::exp(static_cast<double>(x) * real_of(s));
        const double got = static_cast<double>(di_exp(di_exp_promote(x, f), f.t, quadratic)) / static_cast<double>(-f.t);
        const double err = std::fabs(got - exact);
        abs_max = std::max(abs_max, err);
        abs_sum += err;
        if (exact > 1e-2) rel2 = std::max(rel2, err / exact);
        if (exact > 1e-3) rel3 = std::max(rel3, err / exact);
      }
      std::printf("| %d | %s | %d | %lld | %.2f %% | %.2f %% | %.4f | %.5f |\n", bits, quadratic ? "quadratic" : "linear (paper)",
                  f.promote, static_cast<long long>(-f.t), 100 * rel2, 100 * rel3, abs_max, abs_sum / (q_in + 1));
    }
  }
  std::printf("\n(8-bit rows use an 8-bit scale mantissa, 16-bit rows a 16-bit one.)\n\n");
}

// ------------------------------------------------------------------------------------------ Softmax
constexpr int64_t kMIn = 39487;  // aligned-logit unit ≈ 3.7e−5 of a logit (a DI-MatMul accumulator's resolution)
constexpr int32_t kKIn = 30;

void softmax_table() {
  std::printf("### DI-ClippedSoftmax against float64 softmax (unclipped) of the same logits\n\n");
  std::printf("64 rows per cell, N(0, std²) logits, row lengths uniform in [16, 512], all keys valid. L1 = Σ_j |P_j − p_j| per row;\n");
  std::printf("max = max_j |P_j − p_j| over all rows. Default: n_s = 16, p_out = 16, quadratic DI-Exp, b_m = 16;\n");
  std::printf("paper: n_s = 8, p_out = 8, linear DI-Exp, b_m = 8.\n\n");
  std::printf("| settings | c | std 1: mean L1 | max L1 | max | std 3: mean L1 | max L1 | max | std 8: mean L1 | max L1 | max |\n");
  std::printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
  const double step = std::ldexp(static_cast<double>(kMIn), -kKIn);
  for (int paper = 0; paper < 2; ++paper) {
    const IntegerSettings settings = paper ? paper_settings() : IntegerSettings{};
    for (int c : {8, 10, 12, 15, 20, 0}) {
      std::printf("| %s | %s |", paper ? "paper" : "default", c ? std::to_string(c).c_str() : "none");
      for (double sd : {1.0, 3.0, 8.0}) {
        std::mt19937_64 rng(1000 + static_cast<int>(sd));  // same rows for every c and settings
        std::normal_distribution<double> normal(0.0, sd);
        double l1_sum = 0, l1_max = 0, max_abs = 0;
        const int rows = 64;
        for (int r = 0; r < rows; ++r) {
          const int n = 16 + static_cast<int>(rng() % 497);
          std::vector<int64_t> v(n);
          std::vector<double> real(n);
          for (int j = 0; j < n; ++j) {
            v[j] = std::llround(normal(rng) / step);
            real[j] = static_cast<double>(v[j]) * step;
          }
          std::vector<int32_t> p(n);
          di_clipped_softmax_row(v, kMIn, kKIn, n, Dyadic{c, 0}, settings, p);
          const std::vector<double> exact = ideal::softmax(real, n);
          double l1 = 0;
          for (int j = 0; j < n; ++j) {
            const double d = std::fabs(p[j] / std::ldexp(1.0, settings.prob_bits - 1) - exact[j]);
            l1 += d;
            max_abs = std::max(max_abs, d);
          }
          l1_sum += l1;
          l1_max = std::max(l1_max, l1);
        }
        std::printf(" %.4f | %.4f | %.4f |", l1_sum / rows, l1_max, max_abs);
      }
      std::printf("\n");
    }
  }
  std::printf("\n");
}

// ------------------------------------------------------------------------------------------ DI-Norm
struct Residual {
  std::vector<int16_t> codes;
  Dyadic scale;
  std::vector<double> real;
};

[[maybe_unused]] Residual llama_like_residual(std::mt19937_64& rng, int channels) {
  std::normal_distribution<double> normal(0.0, 0.3);
  std::vector<double> x(channels);
  for (auto& v : x) v = normal(rng);
  for (int i = 0; i < std::max(1, channels / 500); ++i) x[rng() % channels] *= 80.0;  // massive-activation channels
  double max_abs = 1e-30;
  for (double v : x) max_abs = std::max(max_abs, std::fabs(v));
  Residual r;
  r.scale = dyadic_of(max_abs / 32767.0);
  for (double v : x) r.codes.push_back(static_cast<int16_t>(std::clamp<long long>(std::llround(v / real_of(r.scale)), -32767, 32767)));
  for (int16_t c : r.codes) r.real.push_back(c * real_of(r.scale));
  return r;
}

void norm_table() {
  std::printf("### DI-Norm against float64 RMSNorm (ε = 1e−5)\n\n");
  std::printf("32 tokens per line, N(0, 0.3²) channels with C/500 outlier channels ×80 (same channels in every token),\n");
  std::printf("γ ∈ [0.2, 2.2] as 16-bit mantissas. Reference: float64 RMSNorm of the dequantized int16 residual. Paper mode:\n");
  std::printf("static per-channel 8-bit input scales calibrated on the 32 tokens (range [−max, max] per channel, z = 128).\n");
  std::printf("Errors of the dequantized output: max over tokens of max_c abs(err) / max_c abs(ideal), and mean over tokens of\n");
  std::printf("‖err‖₂/‖ideal‖₂. With 8-bit output codes the output step (range/255) dominates.\n\n");
  std::printf("| mode | C | output bits | max err / max abs | mean rel. L2 err |\n| --- | --- | --- | --- | --- |\n");
  const Dyadic eps{21475, 31};
  for (int per_channel = 0; per_channel < 2; ++per_channel) {
    for (int channels : {288, 4096}) {
      for (int out_bits : {8, 16}) {
        std::mt19937_64 rng(77 + channels);
        std::normal_distribution<double> normal(0.0, 0.3);
        std::vector<int> outliers;
        for (int i = 0; i < std::max(1, channels / 500); ++i) outliers.push_back(static_cast<int>(rng() % channels));
        ChannelVector gamma;
        gamma.exponent = 14;
        std::vector<double> g;
        for (int c = 0; c < channels; ++c) {
          gamma.mantissa.push_back(std::llround(std::ldexp(0.2 + (rng() % 2000) / 1000.0, 14)));
          g.push_back(std::ldexp(static_cast<double>(gamma.mantissa.back()), -14));
        }
        std::vector<Residual> tokens;
        for (int token = 0; token < 32; ++token) {
          std::vector<double> x(channels);
          for (auto& v : x) v = normal(rng);
          for (int o : outliers) x[o] *= 80.0;
          double max_abs = 1e-30;
          for (double v : x) max_abs = std::max(max_abs, std::fabs(v));
          Residual r;
          r.scale = dyadic_of(max_abs / 32767.0);
          for (double v : x)
            r.codes.push_back(static_cast<int16_t>(std::clamp<long long>(std::llround(v / real_of(r.scale)), -32767, 32767)));
          for (int16_t c : r.codes) r.real.push_back(c * real_of(r.scale));
          tokens.push_back(r);
        }
        std::vector<Dyadic> scales(channels);
        std::vector<int32_t> zero_points(channels, 128);
        for (int c = 0; c < channels; ++c) {
          double m = 1e-6;
          for (const Residual& r : tokens) m = std::max(m, std::fabs(r.real[c]));
          scales[c] = dyadic_of(2 * m / 255.0);
        }
        double worst = 0, l2_sum = 0;
        for (const Residual& r : tokens) {
          std::vector<int32_t> out(channels);
          DiRequantResult q;
          if (!per_channel) {
            q = di_norm_row(r.codes, r.scale, gamma, eps, IntegerSettings{}, out_bits, out);
          } else {
            std::vector<uint8_t> codes(channels);
            norm_input_per_channel(r.codes, r.scale, zero_points, scales, 8, codes);
            q = di_norm_row_per_channel(codes, zero_points, scales, gamma, eps, IntegerSettings{}, out_bits, out);
          }
          const std::vector<double> want = ideal::rmsnorm(r.real, g, real_of(eps));
          double err_max = 0, ref_max = 1e-30, err2 = 0, ref2 = 0;
          for (int c = 0; c < channels; ++c) {
            const double d = real_of(q.scale) * (out[c] - q.zero_point) - want[c];
            err_max = std::max(err_max, std::fabs(d));
            ref_max = std::max(ref_max, std::fabs(want[c]));
            err2 += d * d;
            ref2 += want[c] * want[c];
          }
          worst = std::max(worst, err_max / ref_max);
          l2_sum += std::sqrt(err2 / ref2);
        }
        std::printf("| %s | %d | %d | %.2e | %.2e |\n",
                    per_channel ? "paper (static per-channel 8-bit input)" : "default (int16 residual, per token)", channels,
                    out_bits, worst, l2_sum / 32);
      }
    }
  }
  std::printf("\n");
}

// --------------------------------------------------------------------------------- sigmoid, SiLU, SwiGLU
void sigmoid_table() {
  std::printf("### DI-SwiGLU sigmoid and SiLU against float64\n\n");
  std::printf("Isolated: each argument on a grid of [−16, 16] (step 1/4096·37) as its own one-element row. LLaMA-like rows:\n");
  std::printf("64 rows of C = 11008 gates N(0, 1.5²) with 4 gates in [8, 14] (the shared max of the paper form).\n");
  std::printf("Errors are max |σ_int/2^(p_σ−1) − σ| and max |x·σ_int − x·σ(x)| (SiLU, isolated, x ∈ [−16, 16]).\n\n");
  std::printf("| sigmoid form | 2^u | p_σ | σ max abs err, isolated | SiLU max abs err, isolated | σ max abs err, LLaMA-like rows |\n");
  std::printf("| --- | --- | --- | --- | --- | --- |\n");
  const Dyadic arg_scale{32768, 27};  // 1/4096
  struct Variant { bool stable; bool quadratic; int bits; };
  for (const Variant v : {Variant{true, true, 15}, Variant{true, false, 15}, Variant{false, true, 15},
                          Variant{false, false, 8}, Variant{true, false, 8}}) {
    IntegerSettings s;
    s.sigmoid_stable = v.stable;
    s.exp_quadratic = v.quadratic;
    s.sigmoid_bits = v.bits;
    const double one = std::ldexp(1.0, v.bits - 1);
    double iso = 0, silu = 0;
    for (int64_t a = -16 * 4096; a <= 16 * 4096; a += 37) {
      std::vector<int64_t> row = {a};
      std::vector<int32_t> out(1);
      di_sigmoid_row(row, arg_scale, s, out);
      const double x = a / 4096.0;
      iso = std::max(iso, std::fabs(out[0] / one - ideal::sigmoid(x)));
      silu = std::max(silu, std::fabs(x * out[0] / one - ideal::silu(x)));
    }
    std::mt19937_64 rng(5);
    std::normal_distribution<double> normal(0.0, 1.5);
    double rows = 0;
    for (int r = 0; r < 64; ++r) {
      std::vector<int64_t> row(11008);
      for (auto& x : row) x = std::llround(normal(rng) * 4096);
      for (int i = 0; i < 4; ++i) row[rng() % row.size()] = (8 + static_cast<int64_t>(rng() % 7)) * 4096;
      std::vector<int32_t> out(row.size());
      di_sigmoid_row(row, arg_scale, s, out);
      for (size_t i = 0; i < row.size(); ++i)
        rows = std::max(rows, std::fabs(out[i] / one - ideal::sigmoid(row[i] / 4096.0)));
    }
    std::printf("| %s | %s | %d | %.4f | %.4f | %.4f |\n", v.stable ? "stable (default)" : "shared max (paper)",
                v.quadratic ? "quadratic" : "linear", v.bits, iso, silu, rows);
  }
  std::printf("\n");

  std::printf("### DI-SwiGLU row (8-bit output codes) against float64 g·σ(g/α)·u of the dequantized 8-bit inputs\n\n");
  std::printf("32 rows of C = 11008, gate codes uniform in [0, 255] with z = 160 and scale 8/255 (g ∈ [−5, 3]), up z = 128,\n");
  std::printf("scale 4/255, α ∈ [0.5, 2] (a_c with 24-bit mantissas). Error relative to the row's max |ideal|.\n\n");
  std::printf("| settings | max err / max abs | mean rel. L2 err |\n| --- | --- | --- |\n");
  for (int paper = 0; paper < 2; ++paper) {
    const IntegerSettings s = paper ? paper_settings() : IntegerSettings{};
    std::mt19937_64 rng(9);
    double worst = 0, l2 = 0;
    const int n = 11008;
    for (int r = 0; r < 32; ++r) {
      std::vector<uint8_t> gate(n), up(n), out(n);
      ChannelVector inv_alpha;
      inv_alpha.exponent = 22;
      std::vector<double> alpha(n);
      for (int i = 0; i < n; ++i) {
        gate[i] = static_cast<uint8_t>(rng() % 256);
        up[i] = static_cast<uint8_t>(rng() % 256);
        inv_alpha.mantissa.push_back(std::llround(std::ldexp(1.0 / (0.5 + (rng() % 1500) / 1000.0), 22)));
        alpha[i] = std::ldexp(1.0, 22) / static_cast<double>(inv_alpha.mantissa.back());
      }
      const Dyadic gs = dyadic_of(8.0 / 255, s.mantissa_bits), us = dyadic_of(4.0 / 255, s.mantissa_bits);
      const DiRequantResult q = di_swiglu_row(SwigluInput{gate, 160, gs}, SwigluInput{up, 128, us}, inv_alpha, s, 8, out);
      double e_max = 0, ref_max = 1e-30, e2 = 0, ref2 = 0;
      for (int i = 0; i < n; ++i) {
        const double want = ideal::swiglu(real_of(gs) * (gate[i] - 160), real_of(us) * (up[i] - 128), alpha[i]);
        const double d = real_of(q.scale) * (out[i] - q.zero_point) - want;
        e_max = std::max(e_max, std::fabs(d));
        ref_max = std::max(ref_max, std::fabs(want));
        e2 += d * d;
        ref2 += want * want;
      }
      worst = std::max(worst, e_max / ref_max);
      l2 += std::sqrt(e2 / ref2);
    }
    std::printf("| %s | %.2e | %.2e |\n", paper ? "paper" : "default", worst, l2 / 32);
  }
  std::printf("\n");
}

// ------------------------------------------------------------------------------------------------ RoPE
void rope_table() {
  std::printf("### RoPE: Q1.14 tables and the integer rotation against float64 (θ = 10000, 512 positions)\n\n");
  std::printf("| head_dim | max table err (cos, sin) | max rotation err (int16-range inputs), LSB of x |\n| --- | --- | --- |\n");
  for (int head_dim : {64, 128}) {
    const std::vector<double> inv_freq = rope_default_inv_freq(head_dim, 10000.0);
    const RopeTables t = build_rope_tables(inv_freq, 512);
    const int half = head_dim / 2;
    double table_err = 0;
    for (int p = 0; p < 512; ++p)
      for (int i = 0; i < half; ++i) {
        table_err = std::max(table_err, std::fabs(t.cos[p * half + i] / 16384.0 - std::cos(p * inv_freq[i])));
        table_err = std::max(table_err, std::fabs(t.sin[p * half + i] / 16384.0 - std::sin(p * inv_freq[i])));
      }
    std::mt19937_64 rng(3);
    const RopeTableView view{t.cos, t.sin, t.max_positions, t.half_dim, t.frac_bits};
    double rot_err = 0;
    for (int trial = 0; trial < 2000; ++trial) {
      const int p = static_cast<int>(rng() % 512);
      std::vector<int32_t> x(head_dim);
      for (auto& v : x) v = static_cast<int32_t>(rng() % 65535) - 32767;
      std::vector<int32_t> y = x;
      rope_rotate_head(y, p, view);
      for (int i = 0; i < half; ++i) {
        const double c = std::cos(p * inv_freq[i]), s = std::sin(p * inv_freq[i]);
        rot_err = std::max(rot_err, std::fabs(y[i] - (x[i] * c - x[i + half] * s)));
        rot_err = std::max(rot_err, std::fabs(y[i + half] - (x[i + half] * c + x[i] * s)));
      }
    }
    std::printf("| %d | %.2e (2^−15 = %.2e) | %.3f |\n", head_dim, table_err, std::ldexp(1.0, -15), rot_err);
  }
  std::printf("\n");
}

}  // namespace

int main() {
  std::printf("<!-- generated by build-*/bench/kernel_error_tables; fixed seeds -->\n\n");
  di_exp_table();
  softmax_table();
  norm_table();
  sigmoid_table();
  rope_table();
  return 0;
}
