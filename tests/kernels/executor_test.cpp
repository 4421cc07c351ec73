// The integer executor (issue #5, docs/method.md §7.7): prefill == token-by-token decode bit for bit, thread-count
// invariance, agreement with a float64 forward pass of the same (dequantized) model, model validation and bad input.
// The model is synthetic: random float weights quantized here by the test's own float rules (not by the code
// under test), RoPE tables from formats/rope_tables.h.
#include "kernels/executor.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kernels/error.h"
#include "kernels/optimized/parallel.h"
#include "kernels/reference/hadamard.h"
#include "kernels/weight_codes.h"
#include "tests/kernels/support/ideal_ops.h"
#include "formats/rope_tables.h"

namespace illm {
namespace {

constexpr double kRopeTheta = 10000.0;

// s ≈ m / 2^k with a 16-bit mantissa (test-side float rule).
Dyadic to_dyadic(double s, int mantissa_bits = 16) {
  const int k = mantissa_bits - 1 - static_cast<int>(std::floor(std::log2(s)));
  int64_t m = std::llround(std::ldexp(s, k));
  if (m >= (int64_t{1} << mantissa_bits)) return Dyadic{m / 2, k - 1};
  return Dyadic{m, k};
}
double value(Dyadic d) { return std::ldexp(static_cast<double>(d.m), -d.k); }

// Per-row asymmetric quantization of a float [out][in] matrix (range widened to include 0).
QuantizedLinear quantize_linear(const std::vector<double>& w, int out, int in, int bits, double scale_factor = 1.0) {
  QuantizedLinear q;
  q.out_features = out;
  q.in_features = in;
  q.bits = bits;
  std::vector<uint8_t> codes(static_cast<size_t>(out) * in);  // one per byte; packed into q.codes below
  const int qmax = (1 << bits) - 1;
  for (int r = 0; r < out; ++r) {
    double lo = 0, hi = 0;
    for (int c = 0; c < in; ++c) lo = std::min(lo, w[r * in + c]), hi = std::max(hi, w[r * in + c]);
    const double s = std::max(hi - lo, 1e-12) / qmax;
    const int z = std::clamp(static_cast<int>(std::lround(-lo / s)), 0, qmax);
    for (int c = 0; c < in; ++c)
      codes[r * in + c] = static_cast<uint8_t>(std::clamp(static_cast<int>(std::lround(w[r * in + c] / s)) + z, 0, qmax));
    q.zero_points.push_back(z);
    q.scales.push_back(to_dyadic(s * scale_factor));
  }
  q.codes = pack_weight_codes(bits, out, in, codes);  // the storage layout (4-bit codes two per byte)
  return q;
}

ChannelVector channel_vector(const std::vector<double>& v, int exponent) {
  ChannelVector c;
  c.exponent = exponent;
  for (double x : v) c.mantissa.push_back(std::llround(std::ldexp(x, exponent)));
  return c;
}

struct SyntheticConfig {
  int hidden = 32, heads = 4, kv_heads = 2, intermediate = 48, vocab = 50, layers = 2, max_positions = 64;
  int w_bits = 8, a_bits = 8;
  uint64_t seed = 1;
  bool hadamard_down = false, hadamard_qk = false;  // online Walsh–Hadamard transforms
};

// The explicit integer matrix H of size n as doubles, and its gain g (H·Hᵀ = g·I).
std::vector<double> hadamard_doubles(int n, double& gain) {
  const HadamardPlan plan = plan_hadamard(n);
  gain = static_cast<double>(plan.gain2);
  const std::vector<int32_t> h = hadamard_matrix(plan);
  return std::vector<double>(h.begin(), h.end());
}

// y = H·x for each of the len/n consecutive blocks of x (float64; exact for these magnitudes up to rounding).
void apply_hadamard(std::vector<double>& x, int n) {
  double gain = 0;
  const std::vector<double> h = hadamard_doubles(n, gain);
  for (size_t start = 0; start < x.size(); start += n) {
    std::vector<double> y(n, 0.0);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) y[i] += h[i * n + j] * x[start + j];
    std::copy(y.begin(), y.end(), x.begin() + static_cast<ptrdiff_t>(start));
  }
}

QuantizedModel synthetic_model(const SyntheticConfig& cfg) {
  std::mt19937_64 rng(cfg.seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  QuantizedModel m;
  const int d = cfg.hidden / cfg.heads;
  m.shape = ModelShape{cfg.hidden, cfg.intermediate, cfg.layers, cfg.heads, cfg.kv_heads, d, cfg.vocab,
                       cfg.max_positions, 1, 2};
  m.settings.w_bits = cfg.w_bits;
  m.settings.a_bits = cfg.a_bits;
  m.hadamard_down = cfg.hadamard_down;
  m.hadamard_qk = cfg.hadamard_qk;
  double down_gain = 1, qk_gain = 1;
  const std::vector<double> down_h = hadamard_doubles(cfg.intermediate, down_gain);
  hadamard_doubles(d, qk_gain);
  m.norm_eps = to_dyadic(1e-5);
  // Embedding rows: symmetric int16 with one dyadic per row.
  for (int v = 0; v < cfg.vocab; ++v) {
    std::vector<double> row(cfg.hidden);
    double amax = 0;
    for (double& x : row) x = normal(rng), amax = std::max(amax, std::abs(x));
    const Dyadic s = to_dyadic(amax / 32767.0);
    for (double x : row) m.embed_codes.push_back(static_cast<int16_t>(std::clamp<long>(std::lround(x / value(s)), -32767, 32767)));
    m.embed_scales.push_back(s);
  }
  const auto random_matrix = [&](int out, int in) {
    std::vector<double> w(static_cast<size_t>(out) * in);
    for (double& x : w) x = normal(rng) / std::sqrt(static_cast<double>(in));
    return w;
  };
  const auto gamma = [&](int n) {
    std::vector<double> g(n);
    for (double& x : g) x = 0.6 + 0.8 * uniform(rng);
    return channel_vector(g, 14);
  };
  for (int l = 0; l < cfg.layers; ++l) {
    QuantizedLayer L;
    L.attn_norm = gamma(cfg.hidden);
    L.ffn_norm = gamma(cfg.hidden);
    // 1/√d folded into q_proj's row scales (§7.4); a gain of 2 gives the attention non-trivial logits. With the q/k
    // Hadamard, q and k both carry √g: 1/g more.
    L.q_proj = quantize_linear(random_matrix(cfg.heads * d, cfg.hidden), cfg.heads * d, cfg.hidden, cfg.w_bits,
                               2.0 / std::sqrt(static_cast<double>(d)) / (cfg.hadamard_qk ? qk_gain : 1.0));
    L.k_proj = quantize_linear(random_matrix(cfg.kv_heads * d, cfg.hidden), cfg.kv_heads * d, cfg.hidden, cfg.w_bits, 2.0);
    L.v_proj = quantize_linear(random_matrix(cfg.kv_heads * d, cfg.hidden), cfg.kv_heads * d, cfg.hidden, cfg.w_bits);
    L.o_proj = quantize_linear(random_matrix(cfg.hidden, cfg.heads * d), cfg.hidden, cfg.heads * d, cfg.w_bits);
    L.gate_proj = quantize_linear(random_matrix(cfg.intermediate, cfg.hidden), cfg.intermediate, cfg.hidden, cfg.w_bits);
    L.up_proj = quantize_linear(random_matrix(cfg.intermediate, cfg.hidden), cfg.intermediate, cfg.hidden, cfg.w_bits);
    std::vector<double> down = random_matrix(cfg.hidden, cfg.intermediate);
    if (cfg.hadamard_down) {  // the stored weight is W·Ĥᵀ (Ĥ = H/√g) with 1/√g in its row scales
      const int n = cfg.intermediate;
      std::vector<double> rotated(down.size(), 0.0);
      for (int r = 0; r < cfg.hidden; ++r)
        for (int i = 0; i < n; ++i)
          for (int j = 0; j < n; ++j) rotated[r * n + i] += down[r * n + j] * down_h[i * n + j] / std::sqrt(down_gain);
      down = rotated;
    }
    L.down_proj = quantize_linear(down, cfg.hidden, cfg.intermediate, cfg.w_bits,
                                  cfg.hadamard_down ? 1.0 / std::sqrt(down_gain) : 1.0);
    std::vector<double> inv_alpha(cfg.intermediate);
    for (double& a : inv_alpha) a = 1.0 / (0.5 + 1.5 * uniform(rng));  // α ∈ [0.5, 2]
    L.swiglu_inv_alpha = channel_vector(inv_alpha, 20);
    L.softmax_clip = l == 0 ? Dyadic{15 << 11, 11} : Dyadic{0, 0};  // c = 15, then no clipping
    m.layers.push_back(L);
  }
  m.final_norm = gamma(cfg.hidden);
  m.lm_head = quantize_linear(random_matrix(cfg.vocab, cfg.hidden), cfg.vocab, cfg.hidden, m.settings.head_bits, 4.0);
  const RopeTables tables = build_rope_tables(rope_default_inv_freq(d, kRopeTheta), cfg.max_positions, 14);
  m.rope_frac_bits = tables.frac_bits;
  m.rope_cos = tables.cos;
  m.rope_sin = tables.sin;
  return m;
}

// ------------------------------------------------------------------------------------------------------------------
// Float64 forward pass of the dequantized model (the ideal the integer executor approximates).

std::vector<double> dequantize(const QuantizedLinear& w) {
  std::vector<double> out(static_cast<size_t>(w.out_features) * w.in_features);
  for (int r = 0; r < w.out_features; ++r)
    for (int c = 0; c < w.in_features; ++c)
      out[r * w.in_features + c] = value(w.scales[r]) * (weight_code(w, r, c) - w.zero_points[r]);
  return out;
}
std::vector<double> channel_values(const ChannelVector& v) {
  std::vector<double> out;
  for (int64_t m : v.mantissa) out.push_back(std::ldexp(static_cast<double>(m), -v.exponent));
  return out;
}
std::vector<double> matvec(const QuantizedLinear& w, const std::vector<double>& x) {
  const std::vector<double> wd = dequantize(w);
  std::vector<double> y(w.out_features, 0.0);
  for (int r = 0; r < w.out_features; ++r)
    for (int c = 0; c < w.in_features; ++c) y[r] += wd[r * w.in_features + c] * x[c];
  return y;
}

// Logits [T][vocab] of the whole sequence.
std::vector<std::vector<double>> float_forward(const QuantizedModel& m, const std::vector<int32_t>& ids) {
  const ModelShape& s = m.shape;
  const int d = s.head_dim, half = d / 2, T = static_cast<int>(ids.size()), group = s.n_heads / s.n_kv_heads;
  const std::vector<double> inv_freq = rope_default_inv_freq(d, kRopeTheta);
  const double eps = value(m.norm_eps);
  std::vector<std::vector<double>> h(T, std::vector<double>(s.hidden));
  for (int t = 0; t < T; ++t)
    for (int c = 0; c < s.hidden; ++c) h[t][c] = m.embed_codes[ids[t] * s.hidden + c] * value(m.embed_scales[ids[t]]);
  const auto rope = [&](std::vector<double>& x, int heads, int p) {
    for (int hh = 0; hh < heads; ++hh)
      for (int i = 0; i < half; ++i) {
        const double a = x[hh * d + i], b = x[hh * d + i + half], angle = p * inv_freq[i];
        x[hh * d + i] = a * std::cos(angle) - b * std::sin(angle);
        x[hh * d + i + half] = b * std::cos(angle) + a * std::sin(angle);
      }
  };
  for (const QuantizedLayer& L : m.layers) {
    std::vector<std::vector<double>> q(T), k(T), v(T);
    for (int t = 0; t < T; ++t) {
      const std::vector<double> x = ideal::rmsnorm(h[t], channel_values(L.attn_norm), eps);
      q[t] = matvec(L.q_proj, x), k[t] = matvec(L.k_proj, x), v[t] = matvec(L.v_proj, x);
      rope(q[t], s.n_heads, t);
      rope(k[t], s.n_kv_heads, t);
      if (m.hadamard_qk) {  // the integer model's real values: H·q and H·k per head (q_proj's scales carry 1/g)
        apply_hadamard(q[t], d);
        apply_hadamard(k[t], d);
      }
    }
    const double clip = L.softmax_clip.m == 0 ? 0.0 : value(L.softmax_clip);
    for (int t = 0; t < T; ++t) {
      std::vector<double> attended(s.n_heads * d, 0.0);
      for (int hh = 0; hh < s.n_heads; ++hh) {
        const int g = hh / group;
        std::vector<double> scores(t + 1);
        for (int j = 0; j <= t; ++j)
          for (int c = 0; c < d; ++c) scores[j] += q[t][hh * d + c] * k[j][g * d + c];
        const std::vector<double> p = ideal::softmax(scores, t + 1, clip);
        for (int j = 0; j <= t; ++j)
          for (int c = 0; c < d; ++c) attended[hh * d + c] += p[j] * v[j][g * d + c];
      }
      const std::vector<double> o = matvec(L.o_proj, attended);
      for (int c = 0; c < s.hidden; ++c) h[t][c] += o[c];
      const std::vector<double> x2 = ideal::rmsnorm(h[t], channel_values(L.ffn_norm), eps);
      const std::vector<double> g = matvec(L.gate_proj, x2), u = matvec(L.up_proj, x2);
      const std::vector<double> inv_alpha = channel_values(L.swiglu_inv_alpha);
      std::vector<double> mixed(s.intermediate);
      for (int c = 0; c < s.intermediate; ++c) mixed[c] = ideal::swiglu(g[c], u[c], 1.0 / inv_alpha[c]);
      if (m.hadamard_down) apply_hadamard(mixed, s.intermediate);  // H·y (down_proj's scales carry 1/√g)
      const std::vector<double> down = matvec(L.down_proj, mixed);
      for (int c = 0; c < s.hidden; ++c) h[t][c] += down[c];
    }
  }
  std::vector<std::vector<double>> logits(T);
  for (int t = 0; t < T; ++t) logits[t] = matvec(m.lm_head, ideal::rmsnorm(h[t], channel_values(m.final_norm), eps));
  return logits;
}

std::vector<double> dequantized_row(const IntegerLogits& logits, int t) {
  std::vector<double> row(logits.vocab);
  for (int v = 0; v < logits.vocab; ++v)
    row[v] = static_cast<double>(logits.values[static_cast<size_t>(t) * logits.vocab + v]) * value(logits.scales[t]);
  return row;
}

std::vector<double> log_softmax(const std::vector<double>& x) {
  const double mx = *std::max_element(x.begin(), x.end());
  double sum = 0;
  for (double v : x) sum += std::exp(v - mx);
  std::vector<double> out;
  for (double v : x) out.push_back(v - mx - std::log(sum));
  return out;
}

std::vector<int32_t> token_sequence(int n, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> ids(n);
  for (int32_t& id : ids) id = static_cast<int32_t>(rng() % vocab);
  return ids;
}

void expect_same_logits(const IntegerLogits& a, const IntegerLogits& b) {
  ASSERT_EQ(a.tokens, b.tokens);
  ASSERT_EQ(a.vocab, b.vocab);
  EXPECT_EQ(a.values, b.values);
  EXPECT_EQ(a.scales, b.scales);
}

// Concatenates the rows of several forward results.
IntegerLogits concat(const std::vector<IntegerLogits>& parts) {
  IntegerLogits out;
  out.vocab = parts.front().vocab;
  for (const IntegerLogits& p : parts) {
    out.tokens += p.tokens;
    out.values.insert(out.values.end(), p.values.begin(), p.values.end());
    out.scales.insert(out.scales.end(), p.scales.begin(), p.scales.end());
  }
  return out;
}

// ------------------------------------------------------------------------------------------------------------------

class ExecutorShapes : public ::testing::TestWithParam<int> {};  // intermediate size

TEST_P(ExecutorShapes, PrefillEqualsTokenByTokenDecode) {
  for (const auto& [w_bits, a_bits] : {std::pair{8, 8}, std::pair{4, 4}}) {
    SyntheticConfig cfg;
    cfg.intermediate = GetParam();
    cfg.w_bits = w_bits;
    cfg.a_bits = a_bits;
    const QuantizedModel model = synthetic_model(cfg);
    const std::vector<int32_t> ids = token_sequence(20, cfg.vocab, 7);
    Executor prefill(model);
    const IntegerLogits all = prefill.forward(ids);
    EXPECT_EQ(prefill.position(), 20);
    Executor decode(model);
    std::vector<IntegerLogits> steps;
    for (int32_t id : ids) steps.push_back(decode.forward(std::span<const int32_t>(&id, 1)));
    expect_same_logits(all, concat(steps));
    // Mixed: prefill 7, then 13 single steps, after a reset of the first executor.
    prefill.reset();
    EXPECT_EQ(prefill.position(), 0);
    std::vector<IntegerLogits> mixed{prefill.forward(std::span<const int32_t>(ids.data(), 7))};
    for (size_t t = 7; t < ids.size(); ++t) mixed.push_back(prefill.forward(std::span<const int32_t>(&ids[t], 1)));
    expect_same_logits(all, concat(mixed));
  }
}

// With both online Hadamards (C_f = 48: Paley(12) x Sylvester(4); 43: weighted blocks; d = 8: Sylvester).
TEST_P(ExecutorShapes, HadamardPrefillEqualsTokenByTokenDecode) {
  for (const auto& [down, qk] : {std::pair{true, false}, std::pair{false, true}, std::pair{true, true}}) {
    SyntheticConfig cfg;
    cfg.intermediate = GetParam();
    cfg.w_bits = cfg.a_bits = 4;
    cfg.hadamard_down = down;
    cfg.hadamard_qk = qk;
    const QuantizedModel model = synthetic_model(cfg);
    const std::vector<int32_t> ids = token_sequence(20, cfg.vocab, 7);
    for (const KernelSet* kernels : {&reference_kernels(), &optimized_kernels()}) {
      Executor prefill(model, *kernels);
      const IntegerLogits all = prefill.forward(ids);
      Executor decode(model, *kernels);
      std::vector<IntegerLogits> steps;
      for (int32_t id : ids) steps.push_back(decode.forward(std::span<const int32_t>(&id, 1)));
      expect_same_logits(all, concat(steps));
      // The transform is really applied: the logits differ from the same model without the flags.
      QuantizedModel plain = model;
      plain.hadamard_down = plain.hadamard_qk = false;
      Executor without(plain, *kernels);
      EXPECT_NE(without.forward(ids).values, all.values);
    }
  }
}

TEST_P(ExecutorShapes, ThreadCountDoesNotChangeTheResult) {
  SyntheticConfig cfg;
  cfg.intermediate = GetParam();
  const QuantizedModel model = synthetic_model(cfg);
  const std::vector<int32_t> ids = token_sequence(24, cfg.vocab, 11);
  const int saved = omp_get_max_threads();
  const int64_t saved_threshold = parallel_work_threshold();
  set_parallel_work_threshold(0);  // every OpenMP region on, even for this small model
  omp_set_num_threads(1);
  Executor one(model);
  const IntegerLogits a = one.forward(ids);
  omp_set_num_threads(2);
  Executor two(model);
  const IntegerLogits b = two.forward(ids);
  omp_set_num_threads(3);
  Executor three(model);
  std::vector<IntegerLogits> steps{three.forward(std::span<const int32_t>(ids.data(), 10))};
  for (size_t t = 10; t < ids.size(); ++t) steps.push_back(three.forward(std::span<const int32_t>(&ids[t], 1)));
  omp_set_num_threads(saved);
  set_parallel_work_threshold(saved_threshold);
  expect_same_logits(a, b);
  expect_same_logits(a, concat(steps));
}

INSTANTIATE_TEST_SUITE_P(Intermediate, ExecutorShapes, ::testing::Values(48, 43));

// Dequantized integer logits vs the float64 forward pass of the same dequantized model. The difference is the
// activation quantization of the integer pipeline (a_bits codes at matmul inputs, 8-bit SwiGLU inputs, int16
// residual, 16-bit softmax) plus the DI operators' approximations.
void compare_with_float(int w_bits, int a_bits, double max_rel_tolerance, double kl_tolerance,
                        bool hadamards = false, int32_t act_group = 0) {
  SyntheticConfig cfg;
  cfg.w_bits = w_bits;
  cfg.a_bits = a_bits;
  cfg.hadamard_down = cfg.hadamard_qk = hadamards;
  double worst_rel = 0, mean_kl = 0, worst_kl = 0;
  int rows = 0, top1 = 0;
  for (uint64_t seed : {1, 2, 3}) {
    cfg.seed = seed;
    QuantizedModel model = synthetic_model(cfg);
    model.act_group_size = act_group;  // the same weights; only the activation quantization changes
    const std::vector<int32_t> ids = token_sequence(32, cfg.vocab, 100 + seed);
    Executor executor(model);
    const IntegerLogits logits = executor.forward(ids);
    const std::vector<std::vector<double>> reference = float_forward(model, ids);
    for (int t = 0; t < logits.tokens; ++t) {
      const std::vector<double> got = dequantized_row(logits, t);
      const std::vector<double>& want = reference[t];
      const auto [lo, hi] = std::minmax_element(want.begin(), want.end());
      double max_abs = 0;
      for (int v = 0; v < cfg.vocab; ++v) max_abs = std::max(max_abs, std::abs(got[v] - want[v]));
      worst_rel = std::max(worst_rel, max_abs / (*hi - *lo));
      const std::vector<double> lp = log_softmax(want), lq = log_softmax(got);
      double kl = 0;
      for (int v = 0; v < cfg.vocab; ++v) kl += std::exp(lp[v]) * (lp[v] - lq[v]);
      mean_kl += kl;
      worst_kl = std::max(worst_kl, kl);
      top1 += argmax_row(logits, t) == static_cast<int>(std::max_element(want.begin(), want.end()) - want.begin());
      ++rows;
    }
  }
  mean_kl /= rows;
  std::printf("W%dA%d%s%s vs float64: max |Δlogit| / logit range = %.4f, KL mean %.2e max %.2e, top-1 %d/%d\n",
              w_bits, a_bits, hadamards ? " + online Hadamards" : "", act_group ? " + act groups" : "", worst_rel,
              mean_kl, worst_kl, top1, rows);
  EXPECT_LT(worst_rel, max_rel_tolerance);
  EXPECT_LT(mean_kl, kl_tolerance);
}

TEST(Executor, W8A8AgreesWithFloatForward) { compare_with_float(8, 8, 0.10, 0.01); }
TEST(Executor, W6A6AgreesWithFloatForward) { compare_with_float(6, 6, 0.30, 0.1); }
TEST(Executor, W4A4AgreesLooselyWithFloatForward) { compare_with_float(4, 4, 0.60, 0.5); }
// The online Hadamards change no function: the integer model with them agrees with the float64 forward pass that
// applies H at both sites (down_proj stored as W·Ĥᵀ with 1/√g in its scales, q_proj with 1/g), as closely as without.
TEST(Executor, W8A8WithHadamardsAgreesWithFloatForward) { compare_with_float(8, 8, 0.10, 0.01, true); }
TEST(Executor, W4A4WithHadamardsAgreesLooselyWithFloatForward) { compare_with_float(4, 4, 0.60, 0.5, true); }
// Per-group activations (G = 16 of hidden 32, intermediate 48) are a finer activation quantizer of the same model:
// the integer model agrees with the float64 forward pass within the per-token tolerances (W4A4 closer: KL 0.30 vs
// 0.45 when measured; W8A8 about as close, 1.9e-3 vs 1.8e-3: its error is not the activation ranges here).
TEST(Executor, W8A8WithActGroupsAgreesWithFloatForward) { compare_with_float(8, 8, 0.10, 0.01, false, 16); }
TEST(Executor, W4A4WithActGroupsAgreesLooselyWithFloatForward) { compare_with_float(4, 4, 0.60, 0.5, false, 16); }
TEST(Executor, W4A4WithActGroupsAndHadamardsAgreesLooselyWithFloatForward) {
  compare_with_float(4, 4, 0.60, 0.5, true, 16);
}

// qkv_bits: Q, K and V get their own code width; every other site keeps a_bits.
//  - W4A4 with 8-bit Q/K/V: the cache holds codes above 15 (a 4-bit cache cannot) and the logits are closer to the
//    float64 forward pass than with 4-bit Q/K/V (the only change is the attention operands' quantization);
//  - qkv_bits equal to a_bits is the model without it, bit for bit.
TEST(Executor, QkvBitsSetTheWidthOfTheCacheAndTheAttention) {
  SyntheticConfig cfg;
  cfg.w_bits = 4;
  cfg.a_bits = 4;
  double kl[2] = {0, 0};
  for (uint64_t seed : {1, 2, 3}) {
    cfg.seed = seed;
    const std::vector<int32_t> ids = token_sequence(32, cfg.vocab, 100 + seed);
    for (const int32_t qkv : {0, 8}) {
      QuantizedModel model = synthetic_model(cfg);
      model.settings.qkv_bits = qkv;
      Executor executor(model);
      const IntegerLogits logits = executor.forward(ids);
      int max_code = 0;
      for (int32_t l = 0; l < model.shape.n_layers; ++l)
        for (int32_t g = 0; g < model.shape.n_kv_heads; ++g)
          for (const KvHeadView& view : {executor.cache().keys(l, g), executor.cache().values(l, g)})
            for (uint8_t c : view.codes) max_code = std::max<int>(max_code, c);
      if (qkv == 0) EXPECT_LE(max_code, 15);
      else EXPECT_GT(max_code, 15);
      const std::vector<std::vector<double>> reference = float_forward(model, ids);
      for (int t = 0; t < logits.tokens; ++t) {
        const std::vector<double> lp = log_softmax(reference[t]), lq = log_softmax(dequantized_row(logits, t));
        for (int v = 0; v < cfg.vocab; ++v) kl[qkv / 8] += std::exp(lp[v]) * (lp[v] - lq[v]);
      }
    }
  }
  std::printf("W4A4 vs float64, KL summed over 3 models: Q/K/V 4-bit %.4f, 8-bit %.4f\n", kl[0], kl[1]);
  EXPECT_LT(kl[1], kl[0]);

  cfg.w_bits = cfg.a_bits = 8;
  cfg.seed = 4;
  const std::vector<int32_t> ids = token_sequence(24, cfg.vocab, 7);
  QuantizedModel plain = synthetic_model(cfg), same = plain;
  same.settings.qkv_bits = 8;
  Executor a(plain), b(same);
  expect_same_logits(a.forward(ids), b.forward(ids));
}

TEST(Executor, ArgmaxTiesGoToTheLowestId) {
  IntegerLogits logits;
  logits.tokens = 2;
  logits.vocab = 5;
  logits.values = {3, 9, 9, 1, 9, /* row 1 */ -4, -2, -7, -2, -3};
  logits.scales = {Dyadic{1, 0}, Dyadic{1, 0}};
  EXPECT_EQ(argmax_row(logits, 0), 1);
  EXPECT_EQ(Executor::argmax_last(logits), 1);
  EXPECT_THROW(argmax_row(logits, 2), Error);
}

TEST(Executor, GreedyDecodeIsDeterministic) {
  const QuantizedModel model = synthetic_model(SyntheticConfig{});
  std::vector<int32_t> generated[2];
  for (auto& out : generated) {
    Executor executor(model);
    std::vector<int32_t> prompt = {1, 5, 9};
    int32_t next = Executor::argmax_last(executor.forward(prompt));
    for (int i = 0; i < 10; ++i) {
      out.push_back(next);
      next = Executor::argmax_last(executor.forward(std::span<const int32_t>(&next, 1)));
    }
  }
  EXPECT_EQ(generated[0], generated[1]);
}

void expect_rejected(const QuantizedModel& model, const std::string& field) {
  try {
    Executor executor(model);
    ADD_FAILURE() << "accepted a model with a bad " << field;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
  }
}

TEST(Executor, RejectsBadModels) {
  const QuantizedModel good = synthetic_model(SyntheticConfig{});
  EXPECT_NO_THROW(Executor{good});
  QuantizedModel m = good;
  m.rope_cos.pop_back();
  expect_rejected(m, "rope_cos");
  m = good;
  m.settings.a_bits = 9;
  expect_rejected(m, "settings.a_bits");
  m = good;
  m.settings.w_bits = 1;
  expect_rejected(m, "settings.w_bits");
  m = good;
  m.layers[1].k_proj.bits = 4;
  expect_rejected(m, "layers[1].k_proj.bits");
  SyntheticConfig w6;
  w6.w_bits = w6.a_bits = 6;
  m = synthetic_model(w6);
  EXPECT_NO_THROW(Executor{m});
  m.layers[0].down_proj.codes[5] = 64;  // > 2^6 − 1 (6-bit codes are stored one per byte)
  expect_rejected(m, "layers[0].down_proj.codes[5]");
  SyntheticConfig w4;  // 4-bit codes are stored two per byte; odd rows end with a zero padding nibble
  w4.w_bits = w4.a_bits = 4;
  w4.intermediate = 43;
  m = synthetic_model(w4);
  EXPECT_NO_THROW(Executor{m});
  m.layers[0].down_proj.codes[21] |= 0x10;  // row 0 of down_proj is 22 bytes: the last high nibble is padding
  expect_rejected(m, "layers[0].down_proj.codes row 0 padding nibble");
  m = synthetic_model(w4);
  m.layers[0].up_proj.codes.pop_back();
  expect_rejected(m, "layers[0].up_proj.codes has");
  m = good;
  m.lm_head.bits = 4;
  expect_rejected(m, "lm_head.bits");
  m = good;
  m.embed_codes[7] = -32768;  // outside the symmetric int16 range
  expect_rejected(m, "embed_codes[7]");
  m = good;
  m.layers[0].gate_proj.zero_points[3] = 256;
  expect_rejected(m, "layers[0].gate_proj.zero_points[3]");
  m = good;
  m.embed_scales.pop_back();
  expect_rejected(m, "embed_scales");
  m = good;
  m.layers.pop_back();
  expect_rejected(m, "layers");
  m = good;
  m.layers[0].swiglu_inv_alpha.mantissa.push_back(1);
  expect_rejected(m, "layers[0].swiglu_inv_alpha.mantissa");
  m = good;
  m.shape.n_kv_heads = 3;
  expect_rejected(m, "shape.n_kv_heads");
  m = good;
  m.settings.prob_bits = 28;  // 2^27 · 255 > 2^31: the P·V accumulator bound
  expect_rejected(m, "settings.prob_bits");
  m = good;
  m.lm_head.scales[0].m = int64_t{1} << 25;
  expect_rejected(m, "lm_head.scales[0].m");
  // Per-group activations: a supported G (a width it does not divide ends in a short group), no TRIP, b_m >= 2.
  m = good;
  m.act_group_size = 16;
  EXPECT_NO_THROW(Executor{m});
  m.act_group_size = 64;  // hidden 32: one short group
  EXPECT_NO_THROW(Executor{m});
  m.act_group_size = 24;
  expect_rejected(m, "act_group_size = 24 is not one of 8, 16, 32, 64, 128");
  m.act_group_size = 4;
  expect_rejected(m, "act_group_size = 4 is not one of");
  m = good;
  m.act_group_size = 16;
  m.settings.mantissa_bits = 1;
  expect_rejected(m, "act_group_size is set with settings.mantissa_bits = 1");
  m = good;
  m.act_group_size = 16;
  m.layers[1].trip_max_shift = 2;
  m.layers[1].trip_alpha[kClipAttnIn].assign(static_cast<size_t>(m.shape.hidden), 2);
  expect_rejected(m, "layers[1].trip_alpha is set together with act_group_size");
}

TEST(KvCache, StoresInOrderAndRollsBack) {
  KvCache cache(2, 2, 4, 3);
  const std::vector<uint8_t> codes = {1, 2, 3, 4}, short_codes = {1, 2};
  const HeadCodes entry{codes, 7, Dyadic{3, 5}};
  EXPECT_THROW(cache.store(0, 0, 1, entry, entry), Error);  // position 0 comes first
  EXPECT_THROW(cache.store(2, 0, 0, entry, entry), Error);  // no layer 2
  EXPECT_THROW(cache.store(0, 0, 0, HeadCodes{short_codes, 0, Dyadic{1, 0}}, entry), Error);
  for (int layer = 0; layer < 2; ++layer)
    for (int head = 0; head < 2; ++head) cache.store(layer, head, 0, entry, entry);
  EXPECT_THROW(cache.commit(2), Error);  // nothing stored at position 1
  cache.commit(1);
  cache.store(1, 1, 1, entry, entry);
  EXPECT_EQ(cache.keys(1, 1).length, 2);
  cache.rollback();
  EXPECT_EQ(cache.keys(1, 1).length, 1);
  EXPECT_EQ(cache.values(1, 1).zero_points[0], 7);
  EXPECT_EQ(cache.keys(0, 1).scales[0], (Dyadic{3, 5}));
  EXPECT_EQ(cache.keys(0, 1).row(0)[3], 4);
  cache.reset();
  EXPECT_EQ(cache.length(), 0);
  EXPECT_EQ(cache.keys(0, 0).length, 0);
}

TEST(Executor, BadInputLeavesTheCacheUnchanged) {
  SyntheticConfig cfg;
  cfg.max_positions = 16;
  const QuantizedModel model = synthetic_model(cfg);
  Executor executor(model);
  const std::vector<int32_t> ids = token_sequence(10, cfg.vocab, 3);
  const IntegerLogits first = executor.forward(std::span<const int32_t>(ids.data(), 5));
  const std::vector<int32_t> bad = {3, cfg.vocab};
  EXPECT_THROW(executor.forward(bad), Error);
  const std::vector<int32_t> negative = {-1};
  EXPECT_THROW(executor.forward(negative), Error);
  const std::vector<int32_t> too_long(12, 1);
  EXPECT_THROW(executor.forward(too_long), Error);  // 5 + 12 > 16 positions
  EXPECT_EQ(executor.position(), 5);
  const IntegerLogits rest = executor.forward(std::span<const int32_t>(ids.data() + 5, 5));
  Executor fresh(model);
  expect_same_logits(fresh.forward(ids), concat({first, rest}));
  EXPECT_EQ(executor.forward(std::span<const int32_t>()).tokens, 0);
}

// Throughput on the synthetic model (informational; printed, not asserted).
TEST(Executor, SyntheticSpeed) {
  SyntheticConfig cfg;
  cfg.max_positions = 256;
  const QuantizedModel model = synthetic_model(cfg);
  const std::vector<int32_t> ids = token_sequence(128, cfg.vocab, 5);
  Executor executor(model);
  const auto t0 = std::chrono::steady_clock::now();
  executor.forward(ids);
  const auto t1 = std::chrono::steady_clock::now();
  for (int i = 0; i < 128; ++i) executor.forward(std::span<const int32_t>(&ids[i], 1));
  const auto t2 = std::chrono::steady_clock::now();
  const double prefill = std::chrono::duration<double>(t1 - t0).count(), decode = std::chrono::duration<double>(t2 - t1).count();
  std::printf("synthetic (hidden 32, 2 layers, %d threads): prefill 128 tokens %.0f tok/s, decode 128 steps (ctx 128..255) %.0f tok/s\n",
              omp_get_max_threads(), 128 / prefill, 128 / decode);
}

}  // namespace
}  // namespace illm
