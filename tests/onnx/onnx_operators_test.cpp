// Each DI operator's ONNX subgraph (formats/onnx/di_operators.h, integer_primitives.h), run by ONNX Runtime, against
// the kernel it mirrors (kernels/), on random rows spanning the operator's input domain and on the edge cases:
// all-zero and one-element rows, extreme magnitudes, tiny and coarse scales, clipping on and off, both DI-Exp and
// sigmoid forms, 8- and 16-bit mantissas. The kernels are the specification: every output must be identical.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "formats/rope_tables.h"
#include "kernels/error.h"
#include "kernels/integer_math.h"
#include "kernels/reference/attention.h"
#include "kernels/reference/di_exp.h"
#include "kernels/reference/di_matmul.h"
#include "kernels/reference/di_norm.h"
#include "kernels/reference/di_softmax.h"
#include "kernels/reference/di_swiglu.h"
#include "kernels/reference/residual.h"
#include "kernels/reference/rope.h"
#include "kernels/requant.h"
#include "onnx/support/operator_graph.h"

namespace illm {
namespace {

namespace ox = formats::onnx_export;
using testing::OperatorGraph;
using testing::TensorPack;

using Rng = std::mt19937_64;

// A value with a uniformly drawn bit length in [0, max_bits] and a random sign (when `signed_values`).
int64_t random_magnitude(Rng& rng, int max_bits, bool signed_values = true) {
  const int bits = std::uniform_int_distribution<int>(0, max_bits)(rng);
  const int64_t v = bits == 0 ? 0 : static_cast<int64_t>(rng() >> (64 - bits));
  return signed_values && (rng() & 1) ? -v : v;
}

int64_t uniform(Rng& rng, int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); }

// The first index where ONNX Runtime's output differs from the kernel's, described; "" when identical.
std::string compare(const TensorPack& out, const std::string& name, const std::vector<int64_t>& expected) {
  const std::vector<int64_t>& got = testing::tensor_named(out, name).values;
  if (got.size() != expected.size())
    return name + ": " + std::to_string(got.size()) + " values, expected " + std::to_string(expected.size());
  size_t first = got.size(), count = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] != expected[i]) first = std::min(first, i), ++count;
  if (count == 0) return "";
  return name + "[" + std::to_string(first) + "]: onnx " + std::to_string(got[first]) + ", kernel " +
         std::to_string(expected[first]) + " (" + std::to_string(count) + " of " + std::to_string(got.size()) +
         " differ)";
}

// Rows of int64 values in one of eight patterns (by row index), |v| < 2^max_bits.
std::vector<int64_t> patterned_rows(Rng& rng, int64_t rows, int64_t cols, int max_bits) {
  std::vector<int64_t> v(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t top = std::min<int64_t>(max_bits, 1 + (r * 7) % max_bits);
    const int64_t constant = random_magnitude(rng, static_cast<int>(top));
    for (int64_t c = 0; c < cols; ++c) {
      int64_t& x = v[static_cast<size_t>(r * cols + c)];
      switch (r % 8) {
        case 0: x = 0; break;                                                  // all zero
        case 1: x = c == r % cols ? random_magnitude(rng, static_cast<int>(top)) : 0; break;  // one element
        case 2: x = random_magnitude(rng, static_cast<int>(top), false); break;  // one-sided, positive
        case 3: x = -random_magnitude(rng, static_cast<int>(top), false); break; // one-sided, negative
        case 4: x = random_magnitude(rng, max_bits); break;                      // full range
        case 5: x = uniform(rng, -1, 1); break;                                  // tiny
        case 6: x = random_magnitude(rng, static_cast<int>(top)); break;
        default: x = constant; break;                                            // constant row
      }
    }
  }
  return v;
}

TEST(OnnxPrimitives, MatchTheIntegerMathOfTheKernels) {
  Rng rng(11);
  const int64_t n = 4000;
  std::vector<int64_t> a(n), b(n), s(n), radicand(n), signed_shift(n), rounding_input(n);
  for (int64_t i = 0; i < n; ++i) {
    a[i] = std::max<int64_t>(1, random_magnitude(rng, 62, false));
    b[i] = std::max<int64_t>(1, random_magnitude(rng, 62, false));
    s[i] = uniform(rng, 0, 62);
    // 0 … 19, just below 2^62, k² − 1, k², k² + 1 for k up to 2^31, powers of two and their neighbours, random.
    const int64_t root = uniform(rng, 1, int64_t{1} << 31);
    if (i < 20) radicand[i] = i;
    else if (i < 40) radicand[i] = (int64_t{1} << 62) - (i - 20);
    else if (i < 1000) radicand[i] = root * root + (i % 3) - 1;
    else if (i < 1186) radicand[i] = (int64_t{1} << ((i - 1000) / 3)) + ((i - 1000) % 3) - 1;
    else radicand[i] = random_magnitude(rng, 62, false);
    signed_shift[i] = uniform(rng, -20, 62);
    rounding_input[i] = random_magnitude(rng, 40);
  }
  radicand[40] = int64_t{1} << 62;
  OperatorGraph graph;
  ox::GraphBuilder& g = graph.g();
  ox::IntegerPrimitives& p = graph.p();
  const ox::Value va = graph.input("a", {n}, a), vb = graph.input("b", {n}, b), vs = graph.input("s", {n}, s);
  const ox::Value vn = graph.input("n", {n}, radicand), vss = graph.input("ss", {n}, signed_shift);
  const ox::Value vr = graph.input("r", {n}, rounding_input);
  const int64_t constant_a = 255 * 65535;
  graph.output(p.msb(vb), "msb", {n});
  graph.output(p.bit_length(g.sub(vb, g.scalar(1))), "bit_length", {n});
  graph.output(p.flog2_ratio(constant_a, vb), "flog2", {n});
  graph.output(p.isqrt(vn), "isqrt", {n});
  graph.output(p.rshr(vr, vs), "rshr", {n});
  graph.output(p.shift_round(vr, vss, 20, 62), "shift_round", {n});
  graph.output(p.floor_div_pow2(vr, vs), "fdiv", {n});
  graph.output(p.rdiv_signed(vr, g.add(g.abs(g.div(vb, g.scalar(int64_t{1} << 40))), g.scalar(1))), "rdiv", {n});
  graph.output(p.cdiv(g.abs(vr), g.add(g.div(vb, g.scalar(int64_t{1} << 40)), g.scalar(1))), "cdiv", {n});
  // ⌊a·2^s / d⌋ with a < 2^31, d < 2^24 and s up to 93 (quotient < 2^62): the long division of the code multiplier.
  std::vector<int64_t> div_a(n), div_d(n), div_s(n);
  for (int64_t i = 0; i < n; ++i) {
    div_a[i] = std::max<int64_t>(1, random_magnitude(rng, 31, false) & ((int64_t{1} << 31) - 1));
    div_d[i] = std::max<int64_t>(1, random_magnitude(rng, 24, false) & ((int64_t{1} << 24) - 1));
    const int64_t room = 61 + msb(static_cast<uint64_t>(div_d[i])) - msb(static_cast<uint64_t>(div_a[i]));
    div_s[i] = uniform(rng, 0, std::min<int64_t>(93, room));
  }
  const auto division = p.shifted_division(graph.input("da", {n}, div_a), 31, graph.input("ds", {n}, div_s), 93,
                                           graph.input("dd", {n}, div_d), 24);
  graph.output(division.quotient, "div_q", {n});
  graph.output(division.remainder, "div_r", {n});
  const TensorPack out = graph.run(testing::test_scratch_dir("onnx_ops"));

  std::vector<int64_t> e_msb(n), e_bits(n), e_flog2(n), e_isqrt(n), e_rshr(n), e_shift(n), e_fdiv(n), e_rdiv(n),
      e_cdiv(n), e_q(n), e_r(n);
  for (int64_t i = 0; i < n; ++i) {
    e_msb[i] = msb(static_cast<uint64_t>(b[i]));
    e_bits[i] = b[i] == 1 ? 0 : msb(static_cast<uint64_t>(b[i] - 1)) + 1;
    e_flog2[i] = flog2_ratio(constant_a, b[i]);
    e_isqrt[i] = static_cast<int64_t>(isqrt(static_cast<uint64_t>(radicand[i])));
    e_rshr[i] = rshr(rounding_input[i], static_cast<int>(s[i]));
    e_shift[i] = rshr(rounding_input[i], static_cast<int>(signed_shift[i]));
    e_fdiv[i] = asr(rounding_input[i], static_cast<int>(s[i]));
    const int64_t d = b[i] / (int64_t{1} << 40) + 1;
    e_rdiv[i] = rdiv(rounding_input[i], d);
    e_cdiv[i] = cdiv(rounding_input[i] < 0 ? -rounding_input[i] : rounding_input[i], d);
    const unsigned __int128 numerator = static_cast<unsigned __int128>(div_a[i]) << div_s[i];
    const unsigned __int128 q = numerator / static_cast<unsigned __int128>(div_d[i]);
    ASSERT_LT(q, static_cast<unsigned __int128>(1) << 62);
    e_q[i] = static_cast<int64_t>(q);
    e_r[i] = static_cast<int64_t>(numerator - q * static_cast<unsigned __int128>(div_d[i]));
  }
  EXPECT_EQ(compare(out, "msb", e_msb), "");
  EXPECT_EQ(compare(out, "bit_length", e_bits), "");
  EXPECT_EQ(compare(out, "flog2", e_flog2), "");
  EXPECT_EQ(compare(out, "isqrt", e_isqrt), "");
  EXPECT_EQ(compare(out, "rshr", e_rshr), "");
  EXPECT_EQ(compare(out, "shift_round", e_shift), "");
  EXPECT_EQ(compare(out, "fdiv", e_fdiv), "");
  EXPECT_EQ(compare(out, "rdiv", e_rdiv), "");
  EXPECT_EQ(compare(out, "cdiv", e_cdiv), "");
  EXPECT_EQ(compare(out, "div_q", e_q), "");
  EXPECT_EQ(compare(out, "div_r", e_r), "");
}

// The ONNX Runtime kernels the graph relies on, on the value ranges it feeds them; in particular the ones next to
// the int64 defects of docs/onnx-export.md (row maxima of values that share their upper 32 bits) and the MatMul
// paths of DI-MatMul (int32, and int64 for long reductions, which the test models do not reach).
TEST(OnnxRuntimeKernels, MatMulReductionsAndCumSumAreExactWhereTheGraphUsesThem) {
  Rng rng(77);
  const auto matrix = [&](int64_t n, int64_t lo, int64_t hi) {
    std::vector<int64_t> v(static_cast<size_t>(n));
    for (int64_t& x : v) x = uniform(rng, lo, hi);
    return v;
  };
  const int64_t m = 7, k = 512, n = 9, k64 = 40;
  const std::vector<int64_t> a32 = matrix(m * k, -255, 255), b32 = matrix(k * n, -255, 255);
  const std::vector<int64_t> a64 = matrix(m * k64, -(int64_t{1} << 20), int64_t{1} << 20),
                             b64 = matrix(k64 * n, -(int64_t{1} << 20), int64_t{1} << 20);
  const int64_t rows = 300, cols = 37;
  std::vector<int64_t> wide(rows * cols);
  for (int64_t& x : wide) x = random_magnitude(rng, 35) + (rng() % 3 == 0 ? int64_t{3} << 32 : 0);  // shared high words
  OperatorGraph graph;
  ox::GraphBuilder& g = graph.g();
  const auto as32 = [&](const ox::Value& v) { return g.cast(v, ox::ElementType::kInt32); };
  const auto as64 = [&](const ox::Value& v) { return g.cast(v, ox::ElementType::kInt64); };
  graph.output(as64(g.matmul(as32(graph.input("a32", {m, k}, a32)), as32(graph.input("b32", {k, n}, b32)))), "mm32",
               {m, n});
  graph.output(g.matmul(graph.input("a64", {m, k64}, a64), graph.input("b64", {k64, n}, b64)), "mm64", {m, n});
  const ox::Value vw = graph.input("wide", {rows, cols}, wide);
  graph.output(g.reduce_max(vw, -1), "topk_max", {rows, 1});
  graph.output(g.reduce_min(vw, -1), "topk_min", {rows, 1});
  graph.output(graph.p().wide_max(vw, -1), "wide_max", {rows, 1});
  graph.output(graph.p().wide_min(vw, -1), "wide_min", {rows, 1});
  const ox::Value small = g.div(vw, g.scalar(int64_t{1} << 6));  // < 2^30: the int32 reductions' range
  graph.output(g.reduce_max_int32(small, -1), "max32", {rows, 1});
  graph.output(g.reduce_min_int32(small, -1), "min32", {rows, 1});
  graph.output(g.cumsum(vw, 1), "cumsum", {rows, cols});
  graph.output(g.mod(vw, g.scalar(1000003)), "mod", {rows, cols});
  const TensorPack out = graph.run(testing::test_scratch_dir("onnx_ops"));

  const auto naive = [](const std::vector<int64_t>& a, const std::vector<int64_t>& b, int64_t rows_a, int64_t inner,
                        int64_t cols_b) {
    std::vector<int64_t> c(static_cast<size_t>(rows_a * cols_b), 0);
    for (int64_t i = 0; i < rows_a; ++i)
      for (int64_t j = 0; j < cols_b; ++j)
        for (int64_t x = 0; x < inner; ++x) c[i * cols_b + j] += a[i * inner + x] * b[x * cols_b + j];
    return c;
  };
  EXPECT_EQ(compare(out, "mm32", naive(a32, b32, m, k, n)), "");
  EXPECT_EQ(compare(out, "mm64", naive(a64, b64, m, k64, n)), "");
  std::vector<int64_t> mx, mn, mx32, mn32, sums, mods;
  for (int64_t r = 0; r < rows; ++r) {
    const auto row = wide.begin() + r * cols;
    mx.push_back(*std::max_element(row, row + cols));
    mn.push_back(*std::min_element(row, row + cols));
    int64_t a = INT64_MIN, b = INT64_MAX, sum = 0;
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t v = row[c] / 64;  // truncation, as the graph's Div (the values may be negative here)
      a = std::max(a, v), b = std::min(b, v);
      sums.push_back(sum += row[c]);
      mods.push_back(((row[c] % 1000003) + 1000003) % 1000003);
    }
    mx32.push_back(a), mn32.push_back(b);
  }
  EXPECT_EQ(compare(out, "topk_max", mx), "");
  EXPECT_EQ(compare(out, "topk_min", mn), "");
  EXPECT_EQ(compare(out, "wide_max", mx), "");
  EXPECT_EQ(compare(out, "wide_min", mn), "");
  EXPECT_EQ(compare(out, "max32", mx32), "");
  EXPECT_EQ(compare(out, "min32", mn32), "");
  EXPECT_EQ(compare(out, "cumsum", sums), "");
  EXPECT_EQ(compare(out, "mod", mods), "");
}

TEST(OnnxDiRequant, AsymmetricAndSymmetricMatchTheKernelAtEveryWidth) {
  for (const int b_m : {8, 16}) {
    Rng rng(100 + b_m);
    const int64_t rows = 160, cols = 37;
    const std::vector<int64_t> v = patterned_rows(rng, rows, cols, 61);
    std::vector<int64_t> m(rows), k(rows);
    for (int64_t r = 0; r < rows; ++r) {
      m[r] = std::max<int64_t>(1, random_magnitude(rng, 31, false) & ((int64_t{1} << 31) - 1));
      k[r] = uniform(rng, -20, 90);
    }
    IntegerSettings settings;
    settings.mantissa_bits = b_m;
    OperatorGraph graph(settings);
    const ox::Value vv = graph.input("v", {rows, cols}, v);
    const ox::RowScale in{graph.input("m", {rows, 1}, m), graph.input("k", {rows, 1}, k)};
    struct Site {
      int bits;
      bool symmetric;
      RequantClip clip;  // clipped DI_REQUANT (asymmetric)
      std::string name() const {
        return (symmetric ? "sym" : "asym") + std::to_string(bits) +
               (clip.enabled() ? "_clip" + std::to_string(clip.m) + "_" + std::to_string(clip.k) : "");
      }
    };
    const std::vector<Site> sites{{4, false, {}},        {8, false, {}},        {16, false, {}},
                                  {8, true, {}},         {16, true, {}},        {4, false, {15, 4}},
                                  {8, false, {13, 4}},   {8, false, {1, 6}},    {4, false, {52429, 16}},
                                  {16, false, {10, 4}}};
    for (const Site& s : sites) {
      const ox::Codes c = s.symmetric ? graph.di().requant_symmetric(vv, in, 31, s.bits)
                                      : graph.di().requant(vv, in, 31, s.bits, 62, s.clip);
      const std::string name = s.name();
      graph.output(c.codes, name + "_codes", {rows, cols});
      graph.output(s.symmetric ? graph.g().mul(c.scale.m, graph.g().scalar(0)) : c.zero_point, name + "_z", {rows, 1});
      graph.output(c.scale.m, name + "_m", {rows, 1});
      graph.output(c.scale.k, name + "_k", {rows, 1});
    }
    const TensorPack out = graph.run(testing::test_scratch_dir("onnx_ops"));
    for (const Site& s : sites) {
      std::vector<int64_t> codes, z, sm, sk;
      for (int64_t r = 0; r < rows; ++r) {
        std::vector<int32_t> row_codes(cols);
        const std::span<const int64_t> row(v.data() + r * cols, static_cast<size_t>(cols));
        const DiRequantResult res =
            s.symmetric ? di_requant_symmetric(row, m[r], static_cast<int32_t>(k[r]), s.bits, b_m, row_codes)
                        : di_requant(row, m[r], static_cast<int32_t>(k[r]), s.bits, b_m, row_codes, s.clip);
        codes.insert(codes.end(), row_codes.begin(), row_codes.end());
        z.push_back(res.zero_point), sm.push_back(res.scale.m), sk.push_back(res.scale.k);
      }
      const std::string name = s.name();
      SCOPED_TRACE(name + " b_m " + std::to_string(b_m));
      EXPECT_EQ(compare(out, name + "_codes", codes), "");
      EXPECT_EQ(compare(out, name + "_z", z), "");
      EXPECT_EQ(compare(out, name + "_m", sm), "");
      EXPECT_EQ(compare(out, name + "_k", sk), "");
    }
  }
}

TEST(OnnxDiNorm, MatchesTheKernelWithAndWithoutEpsilon) {
  Rng rng(7);
  const int64_t rows = 96, channels = 72;
  std::vector<int64_t> h = patterned_rows(rng, rows, channels, 15);
  for (int64_t& x : h) x = std::clamp<int64_t>(x, -32767, 32767);
  std::vector<int64_t> m(rows), k(rows);
  for (int64_t r = 0; r < rows; ++r) m[r] = uniform(rng, 1, (int64_t{1} << 31) - 1), k[r] = uniform(rng, 0, 60);
  ChannelVector gamma;
  for (int64_t c = 0; c < channels; ++c) gamma.mantissa.push_back(uniform(rng, -(int64_t{1} << 20), int64_t{1} << 20));
  gamma.exponent = 16;
  const std::vector<Dyadic> epsilons{{42950, 32}, {0, 0}, {(int64_t{1} << 39) + 5, 3}};
  IntegerSettings settings;
  OperatorGraph graph(settings);
  const ox::Value vh = graph.input("h", {rows, channels}, h);
  const ox::RowScale scale{graph.input("m", {rows, 1}, m), graph.input("k", {rows, 1}, k)};
  for (size_t e = 0; e < epsilons.size(); ++e)
    for (const int bits : {4, 8}) {
      const ox::Codes c = graph.di().norm(vh, scale, gamma, epsilons[e], bits);
      const std::string name = "e" + std::to_string(e) + "b" + std::to_string(bits);
      graph.output(c.codes, name + "_codes", {rows, channels});
      graph.output(c.zero_point, name + "_z", {rows, 1});
      graph.output(c.scale.m, name + "_m", {rows, 1});
      graph.output(c.scale.k, name + "_k", {rows, 1});
    }
  const TensorPack out = graph.run(testing::test_scratch_dir("onnx_ops"));
  for (size_t e = 0; e < epsilons.size(); ++e)
    for (const int bits : {4, 8}) {
      std::vector<int64_t> codes, z, sm, sk;
      for (int64_t r = 0; r < rows; ++r) {
        std::vector<int16_t> row(channels);
        for (int64_t c = 0; c < channels; ++c) row[c] = static_cast<int16_t>(h[r * channels + c]);
        std::vector<int32_t> row_codes(channels);
        const DiRequantResult res =
            di_norm_row(row, Dyadic{m[r], static_cast<int32_t>(k[r])}, gamma, epsilons[e], settings, bits, row_codes);
        codes.insert(codes.end(), row_codes.begin(), row_codes.end());
        z.push_back(res.zero_point), sm.push_back(res.scale.m), sk.push_back(res.scale.k);
      }
      const std::string name = "e" + std::to_string(e) + "b" + std::to_string(bits);
      SCOPED_TRACE(name);
      EXPECT_EQ(compare(out, name + "_codes", codes), "");
      EXPECT_EQ(compare(out, name + "_z", z), "");
      EXPECT_EQ(compare(out, name + "_m", sm), "");
      EXPECT_EQ(compare(out, name + "_k", sk), "");
    }
}

TEST(OnnxDiExp, FrameAndBothPolynomialsMatchTheKernel) {
  // Frames: every exponent k ∈ [−64, 100) with mantissas from 1 up to 2^40 − 1.
  std::vector<int64_t> fm, fk, expected_promote, expected_t;
  Rng rng(3);
  for (int32_t k = -64; k < 100; ++k)
    for (int i = 0; i < 24; ++i) {
      const int64_t m = i < 8 ? i + 1 : (i < 12 ? 127 + i - 8 : std::max<int64_t>(1, random_magnitude(rng, 40, false) >> 1));
      try {
        const DiExpFrame f = di_exp_frame(m, k);
        fm.push_back(m), fk.push_back(k), expected_promote.push_back(f.promote), expected_t.push_back(-f.t);
      } catch (const Error&) {  // outside the kernel's domain (promotion above 40): no value to match
      }
    }
  const int64_t frames = static_cast<int64_t>(fm.size());
  ASSERT_GT(frames, 2500);  // of 3936 drawn; the rest are outside the kernel's domain
  // DI-Exp values: per |t| in a set of frames, promoted x from 0 down past 63 octaves, with octave boundaries.
  const std::vector<int64_t> abs_ts{12, 3039, 8192, 11397, 24315, 32768};
  const int64_t per_row = 400;
  std::vector<int64_t> xs, ts;
  for (const int64_t t : abs_ts) {
    ts.push_back(t);
    for (int64_t j = 0; j < per_row; ++j) {
      const int64_t q = j % 70;
      const int64_t r = j < 140 ? (j % 2 == 0 ? 0 : -(t - 1)) : uniform(rng, -(t - 1), 0);
      xs.push_back(j < 280 ? r - q * t : -random_magnitude(rng, 40, false));
    }
  }
  const int64_t exp_rows = static_cast<int64_t>(abs_ts.size());
  for (const bool quadratic : {true, false}) {
    IntegerSettings settings;
    settings.exp_quadratic = quadratic;
    OperatorGraph graph(settings);
    const ox::ExpFrame frame = graph.di().exp_frame(
        ox::RowScale{graph.input("m", {frames, 1}, fm), graph.input("k", {frames, 1}, fk)});
    graph.output(frame.promote, "promote", {frames, 1});
    graph.output(frame.abs_t, "abs_t", {frames, 1});
    const ox::ExpFrame given{graph.g().scalar(0), graph.input("t", {exp_rows, 1}, ts)};
    graph.output(graph.di().exp(graph.input("x", {exp_rows, per_row}, xs), given), "e", {exp_rows, per_row});
    const TensorPack out = graph.run(testing::test_scratch_dir("onnx_ops"));
    EXPECT_EQ(compare(out, "promote", expected_promote), "");
    EXPECT_EQ(compare(out, "abs_t", expected_t), "");
    std::vector<int64_t> e;
    for (int64_t r = 0; r < exp_rows; ++r)
      for (int64_t j = 0; j < per_row; ++j) e.push_back(di_exp(xs[r * per_row + j], -abs_ts[r], quadratic));
    EXPECT_EQ(compare(out, "e", e), "") << (quadratic ? "quadratic" : "linear");
  }
}

// Prefix masks [T][T] (key j valid for query t iff j <= t) as 0/1 values.
std::vector<int64_t> causal_mask(int64_t t) {
  std::vector<int64_t> mask(static_cast<size_t>(t * t));
  for (int64_t q = 0; q < t; ++q)
    for (int64_t j = 0; j < t; ++j) mask[q * t + j] = j <= q;
  return mask;
}

TEST(OnnxDiClippedSoftmax, MatchesTheKernelWithPrefixMasksClipsAndPaperSettings) {
  const int64_t heads = 4, t = 40;
  Rng rng(5);
  std::vector<int64_t> logits(static_cast<size_t>(heads * t * t)), m(heads * t), k(heads * t);
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t q = 0; q < t; ++q) {
      const int spread = static_cast<int>(4 + (h * t + q) * 5 % 50);  // logit magnitudes 2^4 … 2^54
      for (int64_t j = 0; j < t; ++j)
        logits[(h * t + q) * t + j] = (q % 11 == 3) ? 777 : random_magnitude(rng, spread);  // some all-equal rows
      // Real logits of magnitude up to 2^−20 … 2^6 (the query scale times the key alignment).
      m[h * t + q] = uniform(rng, int64_t{1} << 30, (int64_t{1} << 31) - 1);
      k[h * t + q] = spread + 31 - uniform(rng, -20, 6);
    }
  // Clips: none, c = 15, c = 15 in a fine encoding, a clip below one logit unit, and one far above the range.
  const std::vector<Dyadic> clips{{0, 0}, {15, 0}, {15 << 20, 20}, {1, 60}, {(int64_t{1} << 39) - 1, -30}};
  for (const bool paper : {false, true}) {
    const IntegerSettings settings = paper ? paper_conformance_settings() : IntegerSettings{};
    OperatorGraph graph(settings);
    const ox::Value vl = graph.input("logits", {heads, t, t}, logits);
    const ox::Value mask = graph.input_bool("mask", {t, t}, causal_mask(t));
    const ox::RowScale in{graph.input("m", {heads, t, 1}, m), graph.input("k", {heads, t, 1}, k)};
    for (size_t c = 0; c < clips.size(); ++c)
      graph.output(graph.di().clipped_softmax(vl, mask, in, clips[c]), "p" + std::to_string(c), {heads, t, t});
    const TensorPack out = graph.run(testing::test_scratch_dir("onnx_ops"));
    for (size_t c = 0; c < clips.size(); ++c) {
      std::vector<int64_t> expected;
      for (int64_t row = 0; row < heads * t; ++row) {
        std::vector<int32_t> probs(t);
        di_clipped_softmax_row(std::span<const int64_t>(logits.data() + row * t, static_cast<size_t>(t)), m[row],
                               static_cast<int32_t>(k[row]), static_cast<int>(row % t + 1), clips[c], settings, probs);
        expected.insert(expected.end(), probs.begin(), probs.end());
      }
      EXPECT_EQ(compare(out, "p" + std::to_string(c), expected), "")
          << (paper ? "paper" : "default") << " settings, clip " << clips[c].m << "/2^" << clips[c].k;
    }
  }
}

TEST(OnnxDiSwiGLU, MatchesTheKernelInStableAndPaperForms) {
  const int64_t rows = 48, channels = 96;
  for (const bool paper : {false, true}) {
    const IntegerSettings settings = paper ? paper_conformance_settings() : IntegerSettings{};
    Rng rng(paper ? 21 : 22);
    const int64_t max_m = (int64_t{1} << settings.mantissa_bits) - 1;
    std::vector<int64_t> gc(rows * channels), uc(rows * channels), zg(rows), zu(rows), mg(rows), kg(rows), mu(rows),
        ku(rows);
    for (int64_t r = 0; r < rows; ++r) {
      zg[r] = uniform(rng, 0, 255), zu[r] = uniform(rng, 0, 255);
      mg[r] = uniform(rng, max_m / 2, max_m), mu[r] = uniform(rng, 1, max_m);
      kg[r] = uniform(rng, settings.mantissa_bits - 2, settings.mantissa_bits + 12), ku[r] = uniform(rng, 0, 30);
      for (int64_t c = 0; c < channels; ++c)
        gc[r * channels + c] = r % 9 == 0 ? zg[r] : uniform(rng, 0, 255), uc[r * channels + c] = uniform(rng, 0, 255);
    }
    ChannelVector alpha;
    Rng arng(9);
    for (int64_t c = 0; c < channels; ++c) alpha.mantissa.push_back(uniform(arng, 0, (int64_t{1} << 24) - 1));
    alpha.exponent = 23;
    OperatorGraph graph(settings);
    const ox::Codes gate{graph.input("g", {rows, channels}, gc), graph.input("zg", {rows, 1}, zg),
                         ox::RowScale{graph.input("mg", {rows, 1}, mg), graph.input("kg", {rows, 1}, kg)}};
    const ox::Codes up{graph.input("u", {rows, channels}, uc), graph.input("zu", {rows, 1}, zu),
                       ox::RowScale{graph.input("mu", {rows, 1}, mu), graph.input("ku", {rows, 1}, ku)}};
    const ox::Codes c = graph.di().swiglu(gate, up, alpha, 8);
    graph.output(c.codes, "codes", {rows, channels});
    graph.output(c.zero_point, "z", {rows, 1});
    graph.output(c.scale.m, "m", {rows, 1});
    graph.output(c.scale.k, "k", {rows, 1});
    const TensorPack out = graph.run(testing::test_scratch_dir("onnx_ops"));
    std::vector<int64_t> codes, z, sm, sk;
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<uint8_t> g8(channels), u8(channels), o8(channels);
      for (int64_t ch = 0; ch < channels; ++ch)
        g8[ch] = static_cast<uint8_t>(gc[r * channels + ch]), u8[ch] = static_cast<uint8_t>(uc[r * channels + ch]);
      const DiRequantResult res = di_swiglu_row(SwigluInput{g8, zg[r], Dyadic{mg[r], static_cast<int32_t>(kg[r])}},
                                                SwigluInput{u8, zu[r], Dyadic{mu[r], static_cast<int32_t>(ku[r])}},
                                                alpha, settings, 8, o8);
      codes.insert(codes.end(), o8.begin(), o8.end());
      z.push_back(res.zero_point), sm.push_back(res.scale.m), sk.push_back(res.scale.k);
    }
    SCOPED_TRACE(paper ? "paper" : "default");
    EXPECT_EQ(compare(out, "codes", codes), "");
    EXPECT_EQ(compare(out, "z", z), "");
    EXPECT_EQ(compare(out, "m", sm), "");
    EXPECT_EQ(compare(out, "k", sk), "");
  }
}

TEST(OnnxResidualAdd, MatchesTheFusedKernel) {
  const int64_t rows = 120, channels = 40;
  Rng rng(31);
  std::vector<int64_t> h = patterned_rows(rng, rows, channels, 15);
  for (int64_t& x : h) x = std::clamp<int64_t>(x, -32767, 32767);
  std::vector<int64_t> d = patterned_rows(rng, rows, channels, 58);
  std::rotate(d.begin(), d.begin() + 3 * channels, d.end());  // other patterns than h's in each row
  std::vector<int64_t> mh(rows), kh(rows), md(rows), kd(rows);
  for (int64_t r = 0; r < rows; ++r) {
    mh[r] = uniform(rng, 1, (int64_t{1} << 31) - 1), kh[r] = uniform(rng, -5, 60);
    md[r] = uniform(rng, 1, (int64_t{1} << 31) - 1), kd[r] = uniform(rng, 0, 100);
  }
  OperatorGraph graph;
  const ox::Codes c = graph.di().residual_add(
      graph.input("h", {rows, channels}, h), ox::RowScale{graph.input("mh", {rows, 1}, mh), graph.input("kh", {rows, 1}, kh)},
      graph.input("d", {rows, channels}, d), ox::RowScale{graph.input("md", {rows, 1}, md), graph.input("kd", {rows, 1}, kd)});
  graph.output(c.codes, "codes", {rows, channels});
  graph.output(c.scale.m, "m", {rows, 1});
  graph.output(c.scale.k, "k", {rows, 1});
  const TensorPack out = graph.run(testing::test_scratch_dir("onnx_ops"));
  ResidualStream residual;
  residual.rows = static_cast<int32_t>(rows), residual.cols = static_cast<int32_t>(channels);
  for (const int64_t x : h) residual.codes.push_back(static_cast<int16_t>(x));
  AlignedAccumulator delta;
  delta.rows = residual.rows, delta.cols = residual.cols, delta.values = d;
  for (int64_t r = 0; r < rows; ++r) {
    residual.scales.push_back(Dyadic{mh[r], static_cast<int32_t>(kh[r])});
    delta.scales.push_back(Dyadic{md[r], static_cast<int32_t>(kd[r])});
  }
  const ResidualStream sum = residual_add(residual, delta, IntegerSettings{}.mantissa_bits, 16);
  std::vector<int64_t> codes(sum.codes.begin(), sum.codes.end()), sm, sk;
  for (const Dyadic& s : sum.scales) sm.push_back(s.m), sk.push_back(s.k);
  EXPECT_EQ(compare(out, "codes", codes), "");
  EXPECT_EQ(compare(out, "m", sm), "");
  EXPECT_EQ(compare(out, "k", sk), "");
}

TEST(OnnxRope, MatchesTheKernelAtEveryPosition) {
  const int64_t positions = 64, heads = 3, head_dim = 16, half = head_dim / 2;
  const RopeTables tables =
      build_rope_tables(rope_default_inv_freq(static_cast<int>(head_dim), 10000.0), positions, 14);
  Rng rng(41);
  std::vector<int64_t> x(positions * heads * head_dim), cos, sin;
  for (int64_t& v : x) v = uniform(rng, -32767, 32767);
  for (int64_t p = 0; p < positions; ++p)
    for (int64_t i = 0; i < half; ++i) cos.push_back(tables.cos[p * half + i]), sin.push_back(tables.sin[p * half + i]);
  OperatorGraph graph;
  const ox::Value rotated = graph.di().rope(graph.input("x", {positions, heads, head_dim}, x), head_dim,
                                            graph.input("cos", {positions, 1, half}, cos),
                                            graph.input("sin", {positions, 1, half}, sin), 14);
  graph.output(rotated, "y", {positions, heads, head_dim});
  const TensorPack out = graph.run(testing::test_scratch_dir("onnx_ops"));
  RopeTableView view{tables.cos, tables.sin, static_cast<int32_t>(positions), static_cast<int32_t>(half), 14};
  std::vector<int64_t> expected;
  for (int64_t p = 0; p < positions; ++p)
    for (int64_t h = 0; h < heads; ++h) {
      std::vector<int32_t> head(x.begin() + (p * heads + h) * head_dim, x.begin() + (p * heads + h + 1) * head_dim);
      rope_rotate_head(head, static_cast<int>(p), view);
      expected.insert(expected.end(), head.begin(), head.end());
    }
  EXPECT_EQ(compare(out, "y", expected), "");
}

TEST(OnnxAttentionHelpers, PrefixAlignmentAndHeadRequantMatchTheKernels) {
  Rng rng(51);
  const int64_t heads = 2, t = 30;
  std::vector<int64_t> km(heads * t), kk(heads * t);
  for (int64_t i = 0; i < heads * t; ++i)
    km[i] = uniform(rng, 1, (int64_t{1} << 16) - 1), kk[i] = i % 7 == 0 ? uniform(rng, -40, 90) : uniform(rng, 10, 30);
  const int64_t rows = 50, head_dim = 12, row_heads = 4;
  std::vector<int64_t> values(rows * row_heads * head_dim), exponents(rows * row_heads);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t h = 0; h < row_heads; ++h) {
      const bool zero_head = (r + h) % 5 == 0;
      const int bits = static_cast<int>(uniform(rng, 1, 54));
      for (int64_t c = 0; c < head_dim; ++c)
        values[(r * row_heads + h) * head_dim + c] = zero_head ? 0 : random_magnitude(rng, bits);
      exponents[r * row_heads + h] = uniform(rng, -10, 70);
    }
  IntegerSettings settings;
  OperatorGraph graph(settings);
  const ox::DiOperators::Alignment a = graph.di().align_prefix(
      graph.input("m", {heads, 1, t}, km), graph.input("k", {heads, 1, t}, kk), graph.input_bool("mask", {t, t}, causal_mask(t)));
  graph.output(a.mantissas, "mu", {heads, t, t});
  graph.output(a.exponent, "K2", {heads, t, 1});
  const ox::Codes c = graph.di().requantize_heads(graph.input("v", {rows, row_heads, head_dim}, values),
                                                  graph.input("e", {rows, row_heads, 1}, exponents), row_heads,
                                                  head_dim, 8);
  graph.output(c.codes, "codes", {rows, row_heads * head_dim});
  graph.output(c.zero_point, "z", {rows, 1});
  graph.output(c.scale.m, "sm", {rows, 1});
  graph.output(c.scale.k, "sk", {rows, 1});
  const TensorPack out = graph.run(testing::test_scratch_dir("onnx_ops"));

  std::vector<int64_t> mu, k2;
  const std::vector<int64_t>& got_mu = testing::tensor_named(out, "mu").values;
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t q = 0; q < t; ++q) {
      std::vector<Dyadic> scales;
      for (int64_t j = 0; j <= q; ++j) scales.push_back(Dyadic{km[h * t + j], static_cast<int32_t>(kk[h * t + j])});
      const ColumnAlignment al = align_columns(scales, settings.mantissa_bits);
      k2.push_back(al.exponent);
      for (int64_t j = 0; j < t; ++j)  // masked keys: whatever the graph holds (the caller masks them)
        mu.push_back(j <= q ? al.mantissas[j] : got_mu[(h * t + q) * t + j]);
    }
  EXPECT_EQ(compare(out, "mu", mu), "");
  EXPECT_EQ(compare(out, "K2", k2), "");
  std::vector<int64_t> codes, z, sm, sk;
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<int32_t> e32(exponents.begin() + r * row_heads, exponents.begin() + (r + 1) * row_heads);
    std::vector<uint16_t> row_codes(row_heads * head_dim);
    const DiRequantResult res = requantize_heads(
        std::span<const int64_t>(values.data() + r * row_heads * head_dim, static_cast<size_t>(row_heads * head_dim)),
        e32, 8, settings.mantissa_bits, row_codes);
    codes.insert(codes.end(), row_codes.begin(), row_codes.end());
    z.push_back(res.zero_point), sm.push_back(res.scale.m), sk.push_back(res.scale.k);
  }
  EXPECT_EQ(compare(out, "codes", codes), "");
  EXPECT_EQ(compare(out, "z", z), "");
  EXPECT_EQ(compare(out, "sm", sm), "");
  EXPECT_EQ(compare(out, "sk", sk), "");
}

}  // namespace
}  // namespace illm
