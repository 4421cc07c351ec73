// Every optimized kernel path equals the reference kernels bit for bit (kernels/kernel_set.h): each operator of the
// kernel set on randomized shapes (odd sizes, K not a multiple of any tile or block, K beyond the int32 chunk of the
// dot blocks, extreme codes and zero points, rows beyond the 64-bit fast range of the requantization loops), and the
// whole-model forward of the shared test models (both fixtures, W4A4/W4A8/W8A8; prefill and token-by-token decode).
// A path this CPU cannot run is skipped with a message naming it: it is not verified on this machine.
#include <gtest/gtest.h>
#include <omp.h>

#include <climits>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "formats/illm_file.h"
#include "kernels/error.h"
#include "kernels/executor.h"
#include "kernels/kernel_set.h"
#include "kernels/optimized/act_group_linear.h"
#include "kernels/optimized/grouped_linear.h"
#include "kernels/optimized/linear.h"
#include "kernels/optimized/parallel.h"
#include "kernels/reference/act_group_matmul.h"
#include "kernels/reference/hadamard_sites.h"
#include "kernels/weight_codes.h"

namespace illm {
namespace {

using Rng = std::mt19937_64;

// Clip ratios of the site requantizations: off, the calibration grid's 15/16, 13/16 and 10/16, a tiny 1/64 (most
// values beyond the range: the saturation window) and a 16-bit mantissa.
constexpr RequantClip kTestClips[] = {{0, 0}, {15, 4}, {13, 4}, {10, 4}, {1, 6}, {52429, 16}};
std::string clip_name(RequantClip c) {
  return c.enabled() ? " clip " + std::to_string(c.m) + "/2^" + std::to_string(c.k) : "";
}

int64_t uniform(Rng& rng, int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); }

// A DI_REQUANT-like scale: a b_m-bit mantissa and an exponent spread over `spread` values.
Dyadic random_scale(Rng& rng, int mantissa_bits, int32_t k_base, int32_t spread) {
  const int64_t lo = int64_t{1} << (mantissa_bits - 1);
  return Dyadic{uniform(rng, lo, 2 * lo - 1), k_base + static_cast<int32_t>(uniform(rng, 0, spread))};
}

// Codes with extremes mixed in: 1/4 of the rows all at the maximum, 1/8 all zero, zero points at both ends.
QuantizedActivation random_activation(Rng& rng, int32_t rows, int32_t cols, int32_t bits) {
  QuantizedActivation x;
  x.rows = rows;
  x.cols = cols;
  x.bits = bits;
  const int64_t q = (int64_t{1} << bits) - 1;
  for (int32_t r = 0; r < rows; ++r) {
    const int64_t kind = uniform(rng, 0, 7);
    for (int32_t c = 0; c < cols; ++c)
      x.codes.push_back(static_cast<uint16_t>(kind < 2 ? q : (kind == 2 ? 0 : uniform(rng, 0, q))));
    x.zero_points.push_back(static_cast<int32_t>(kind == 3 ? 0 : (kind == 4 ? q : uniform(rng, 0, q))));
    x.scales.push_back(random_scale(rng, 16, 10, 20));
  }
  return x;
}

QuantizedLinear random_linear(Rng& rng, int32_t out, int32_t in, int32_t bits, int mantissa_bits) {
  const int64_t q = (int64_t{1} << bits) - 1;
  std::vector<uint8_t> codes;
  std::vector<int32_t> zero_points;
  std::vector<Dyadic> scales;
  for (int32_t r = 0; r < out; ++r) {
    const int64_t kind = uniform(rng, 0, 7);
    for (int32_t c = 0; c < in; ++c)
      codes.push_back(static_cast<uint8_t>(kind == 0 ? q : (kind == 1 ? 0 : uniform(rng, 0, q))));
    zero_points.push_back(static_cast<int32_t>(kind == 2 ? 0 : (kind == 3 ? q : uniform(rng, 0, q))));
    scales.push_back(random_scale(rng, mantissa_bits, 5, 20));  // spread: the §9.1 cap and rshr branch
  }
  return make_quantized_linear(out, in, bits, codes, std::move(zero_points), std::move(scales));
}

// Values of magnitude up to 2^max_bits (some rows all zero, one value, or, if `beyond`, a value above 2^62).
AlignedAccumulator random_accumulator(Rng& rng, int32_t rows, int32_t cols, int max_bits, bool beyond = true) {
  AlignedAccumulator a;
  a.rows = rows;
  a.cols = cols;
  for (int32_t r = 0; r < rows; ++r) {
    const int64_t kind = uniform(rng, 0, 9);
    const int bits = kind == 0 ? 62 : static_cast<int>(uniform(rng, 1, max_bits));
    for (int32_t c = 0; c < cols; ++c) {
      int64_t v = uniform(rng, -(int64_t{1} << bits) + 1, (int64_t{1} << bits) - 1);
      if (kind == 1) v = 0;
      if (kind == 2) v = c == 0 ? v : 0;
      if (kind == 3) v = v < 0 ? -v : v;  // one-sided
      if (kind == 0 && c == 0 && beyond) v = (int64_t{1} << 62) + 5;  // beyond the 64-bit fast range
      a.values.push_back(v);
    }
    a.scales.push_back(random_scale(rng, 16, 20, 20));
  }
  return a;
}

ResidualStream random_residual(Rng& rng, int32_t rows, int32_t cols) {
  ResidualStream h;
  h.rows = rows;
  h.cols = cols;
  for (int32_t r = 0; r < rows; ++r) {
    const int64_t kind = uniform(rng, 0, 7);
    for (int32_t c = 0; c < cols; ++c)
      h.codes.push_back(static_cast<int16_t>(kind == 0 ? 0 : (kind == 1 ? 32767 : uniform(rng, -32767, 32767))));
    h.scales.push_back(random_scale(rng, 16, 10, 20));
  }
  return h;
}

ChannelVector random_channels(Rng& rng, int32_t n, int64_t lo, int64_t hi, int32_t exponent) {
  ChannelVector v;
  v.exponent = exponent;
  for (int32_t c = 0; c < n; ++c) v.mantissa.push_back(uniform(rng, lo, hi));
  return v;
}

void expect_equal(const QuantizedActivation& a, const QuantizedActivation& b, const std::string& what) {
  ASSERT_EQ(a.rows, b.rows) << what;
  ASSERT_EQ(a.cols, b.cols) << what;
  EXPECT_EQ(a.bits, b.bits) << what;
  EXPECT_EQ(a.codes, b.codes) << what;
  EXPECT_EQ(a.zero_points, b.zero_points) << what;
  EXPECT_EQ(a.scales, b.scales) << what;
}
void expect_equal(const AlignedAccumulator& a, const AlignedAccumulator& b, const std::string& what) {
  ASSERT_EQ(a.rows, b.rows) << what;
  ASSERT_EQ(a.cols, b.cols) << what;
  EXPECT_EQ(a.values, b.values) << what;
  EXPECT_EQ(a.scales, b.scales) << what;
}
void expect_equal(const PerHeadActivation& a, const PerHeadActivation& b, const std::string& what) {
  ASSERT_EQ(a.rows, b.rows) << what;
  ASSERT_EQ(a.heads, b.heads) << what;
  EXPECT_EQ(a.codes, b.codes) << what;
  EXPECT_EQ(a.zero_points, b.zero_points) << what;
  EXPECT_EQ(a.scales, b.scales) << what;
}
void expect_equal(const WideRows& a, const WideRows& b, const std::string& what) {
  ASSERT_EQ(a.rows, b.rows) << what;
  ASSERT_EQ(a.cols, b.cols) << what;
  EXPECT_EQ(a.values, b.values) << what;
  EXPECT_EQ(a.scales, b.scales) << what;
}
void expect_equal(const ResidualStream& a, const ResidualStream& b, const std::string& what) {
  ASSERT_EQ(a.rows, b.rows) << what;
  EXPECT_EQ(a.bits, b.bits) << what;
  EXPECT_EQ(a.codes, b.codes) << what;
  EXPECT_EQ(a.scales, b.scales) << what;
}

IntegerSettings settings_variant(int variant, int a_bits) {
  IntegerSettings s;
  s.a_bits = a_bits;
  if (variant == 1) s = paper_conformance_settings(s);  // 8-bit mantissas, linear DI-Exp, shared-max sigmoid
  if (variant == 2) s.prob_bits = 20;                   // wider probabilities than int16
  return s;
}

class KernelPaths : public ::testing::TestWithParam<KernelPath> {
 protected:
  void SetUp() override {
    if (!cpu_supports(GetParam()))
      GTEST_SKIP() << "kernel path '" << kernel_path_name(GetParam()) << "' NOT VERIFIED on this machine: the CPU lacks "
                   << missing_cpu_features(GetParam());
  }
  const KernelSet& ref() const { return reference_kernels(); }
  const KernelSet& opt() const { return kernels_for(GetParam()); }
};

TEST_P(KernelPaths, LinearEqualsReference) {
  Rng rng(11);
  int cases = 0;
  for (const int32_t k : {1, 2, 31, 63, 64, 65, 127, 129, 192, 255, 513, 2100})
    for (const auto& [a_bits, w_bits] : {std::pair{4, 4}, std::pair{8, 4}, std::pair{8, 8}, std::pair{8, 7},
                                         std::pair{8, 6}, std::pair{7, 7}, std::pair{6, 5}, std::pair{3, 2}}) {
      const int32_t rows = static_cast<int32_t>(uniform(rng, 1, 9)) + (cases % 5 == 0 ? 130 : 0);
      const int32_t n = static_cast<int32_t>(uniform(rng, 1, 13)) + (cases % 3 == 0 ? 64 : 0);
      const int b_m = cases % 2 == 0 ? 16 : 8;
      const QuantizedActivation x = random_activation(rng, rows, k, a_bits);
      const QuantizedLinear w = random_linear(rng, n, k, w_bits, b_m);
      const PreparedLinear p = prepare_linear(w, b_m);
      AlignedAccumulator want, got;
      ref().linear(x, p, want);
      opt().linear(x, p, got);
      expect_equal(want, got, "K " + std::to_string(k) + " A" + std::to_string(a_bits) + "W" + std::to_string(w_bits));
      ++cases;
    }
  EXPECT_EQ(cases, 96);
}

// Per-group weights (G = 32, 64, 128; G = in as the per-row path): groups start inside the ISA blocks (64 bytes,
// 128 packed codes in even/odd order) and inside a packed row's bytes; odd row and column counts, decode (1 row)
// and prefill (> 128 rows), 4-bit packed and byte weights.
QuantizedLinear random_grouped_linear(Rng& rng, int32_t out, int32_t in, int32_t bits, int32_t group, int b_m) {
  QuantizedLinear w = random_linear(rng, out, in, bits, b_m);
  w.group_size = group;
  w.zero_points.clear();
  w.scales.clear();
  const int64_t q = (int64_t{1} << bits) - 1;
  for (int64_t i = 0; i < int64_t{out} * (in / group); ++i) {
    const int64_t kind = uniform(rng, 0, 5);
    w.zero_points.push_back(static_cast<int32_t>(kind == 0 ? 0 : (kind == 1 ? q : uniform(rng, 0, q))));
    w.scales.push_back(random_scale(rng, b_m, 5, 20));
  }
  return w;
}

TEST_P(KernelPaths, LinearPerGroupEqualsReference) {
  Rng rng(17);
  int cases = 0;
  for (const int32_t group : {32, 64, 128})
    for (const int32_t groups : {1, 3, 7})
      for (const auto& [a_bits, w_bits] : {std::pair{4, 4}, std::pair{8, 4}, std::pair{8, 8}, std::pair{8, 7},
                                           std::pair{6, 5}}) {
        const int32_t rows = cases % 4 == 0 ? 1 : static_cast<int32_t>(uniform(rng, 2, 9)) + (cases % 5 == 0 ? 130 : 0);
        const int32_t n = static_cast<int32_t>(uniform(rng, 1, 13)) + (cases % 3 == 0 ? 40 : 0);
        const int b_m = cases % 2 == 0 ? 16 : 8;
        const QuantizedActivation x = random_activation(rng, rows, group * groups, a_bits);
        const QuantizedLinear w = random_grouped_linear(rng, n, group * groups, w_bits, group, b_m);
        const PreparedLinear p = prepare_linear(w, b_m);
        AlignedAccumulator want, got;
        ref().linear(x, p, want);
        opt().linear(x, p, got);
        expect_equal(want, got, "G " + std::to_string(group) + " groups " + std::to_string(groups) + " A" +
                                    std::to_string(a_bits) + "W" + std::to_string(w_bits) + " rows " +
                                    std::to_string(rows));
        ++cases;
      }
  EXPECT_EQ(cases, 45);
}

// Inputs wider than 8 bits (TRIP sites, a 16-bit LM head input): the optimized paths split the codes into bytes and
// run two 8-bit DI-MatMuls; against the reference's direct int64 sums, with per-row and per-group weights, codes and
// zero points at 0 and 2^bits − 1, decode and prefill row counts.
TEST_P(KernelPaths, LinearWideInputsEqualReference) {
  Rng rng(23);
  int cases = 0;
  for (const int32_t a_bits : {9, 12, 16})
    for (const int32_t group : {0, 32, 64})
      for (const int32_t w_bits : {4, 8}) {
        const int32_t k = group > 0 ? group * 3 : 190 + cases;
        const int32_t rows = cases % 3 == 0 ? 1 : static_cast<int32_t>(uniform(rng, 2, 9)) + (cases % 4 == 0 ? 130 : 0);
        const int32_t n = static_cast<int32_t>(uniform(rng, 1, 13)) + (cases % 2 == 0 ? 40 : 0);
        const QuantizedActivation x = random_activation(rng, rows, k, a_bits);
        const QuantizedLinear w = group > 0 ? random_grouped_linear(rng, n, k, w_bits, group, 16)
                                            : random_linear(rng, n, k, w_bits, 16);
        const PreparedLinear p = prepare_linear(w, 16);
        AlignedAccumulator want, got;
        ref().linear(x, p, want);
        opt().linear(x, p, got);
        expect_equal(want, got, "A" + std::to_string(a_bits) + "W" + std::to_string(w_bits) + " G " +
                                    std::to_string(group) + " rows " + std::to_string(rows));
        ++cases;
      }
  EXPECT_EQ(cases, 18);
}

// The path's linear_act_groups on x and w, prepared with x's group size, equals the reference.
void expect_act_group_linear_equals_reference(const KernelSet& path, const QuantizedActivation& x,
                                              const QuantizedLinear& w, int b_m, const std::string& what) {
  const PreparedLinear p = prepare_linear(w, b_m, "w", x.group_size);
  ASSERT_EQ(p.act_group_size, x.group_size) << what;
  AlignedAccumulator want, got;
  reference_kernels().linear_act_groups(x, p, want);
  path.linear_act_groups(x, p, got);
  expect_equal(want, got, what);
}

// Per-group activations (linear_act_groups; G = 8 … 128, weights per row): G·groups not a multiple of the ISA
// blocks, decode (1 row) and prefill (> 128 rows), all-zero groups (scale (1, 0)), 4-bit packed and byte weights,
// 8- and 16-bit mantissas; the weight prepared with the group size (the optimized kernel) and without (its reference).
TEST_P(KernelPaths, LinearActGroupsEqualsReference) {
  EXPECT_NE(opt().linear_act_groups, ref().linear_act_groups);
  Rng rng(23);
  int cases = 0;
  for (const int32_t group : {8, 16, 32, 64, 128})
    for (const int32_t groups : {1, 3, 5})
      for (const auto& [a_bits, w_bits] : {std::pair{4, 4}, std::pair{8, 4}, std::pair{8, 8}, std::pair{8, 7},
                                           std::pair{6, 5}}) {
        const int32_t rows = cases % 4 == 0 ? 1 : static_cast<int32_t>(uniform(rng, 2, 9)) + (cases % 5 == 0 ? 130 : 0);
        const int32_t n = static_cast<int32_t>(uniform(rng, 1, 13)) + (cases % 3 == 0 ? 40 : 0);
        const int b_m = cases % 2 == 0 ? 16 : 8;
        QuantizedActivation x = random_activation(rng, rows * groups, group, a_bits);  // one row per (token, group)
        for (size_t tg = 0; tg < x.scales.size(); ++tg) {
          x.scales[tg] = random_scale(rng, b_m, 5, 25);
          if (uniform(rng, 0, 6) == 0) {  // an all-zero group, as DI_REQUANT emits it
            std::fill_n(x.codes.begin() + static_cast<ptrdiff_t>(tg * group), group, uint16_t{0});
            x.zero_points[tg] = 0;
            x.scales[tg] = Dyadic{1, 0};
          }
        }
        x.rows = rows;
        x.cols = group * groups;
        x.group_size = group;
        const QuantizedLinear w = random_linear(rng, n, group * groups, w_bits, b_m);
        const std::string what = "G " + std::to_string(group) + " groups " + std::to_string(groups) + " A" +
                                 std::to_string(a_bits) + "W" + std::to_string(w_bits) + " rows " +
                                 std::to_string(rows);
        expect_act_group_linear_equals_reference(opt(), x, w, b_m, what);
        AlignedAccumulator want, got;
        ref().linear_act_groups(x, prepare_linear(w, b_m, "w", group), want);
        opt().linear_act_groups(x, prepare_linear(w, b_m), got);  // no group code sums: the reference kernel
        expect_equal(want, got, what + " (unprepared)");
        ++cases;
      }
  EXPECT_EQ(cases, 75);
}

// A short last activation group (G does not divide the width, docs/integer-semantics.md "Groups of a width"): widths
// of whole groups plus 2 … G − 2 columns, and widths below G (one short group, e.g. hidden 64 at G 128); an odd
// tail with packed 4-bit weights (the optimized kernel hands it to the reference); decode and prefill rows,
// all-zero groups.
TEST_P(KernelPaths, LinearActGroupsWithAShortLastGroupEqualsReference) {
  Rng rng(31);
  int cases = 0;
  for (const auto& [group, k] : {std::pair{8, 172}, std::pair{8, 12}, std::pair{16, 172}, std::pair{16, 37},
                                 std::pair{32, 172}, std::pair{32, 94}, std::pair{64, 200}, std::pair{128, 64},
                                 std::pair{128, 300}})
    for (const auto& [a_bits, w_bits] : {std::pair{4, 4}, std::pair{8, 4}, std::pair{8, 8}, std::pair{6, 5}}) {
      const int32_t rows = cases % 4 == 0 ? 1 : static_cast<int32_t>(uniform(rng, 2, 9)) + (cases % 5 == 0 ? 130 : 0);
      const int32_t n = static_cast<int32_t>(uniform(rng, 1, 13)) + (cases % 3 == 0 ? 40 : 0);
      const int b_m = cases % 2 == 0 ? 16 : 8;
      const int32_t groups = (k + group - 1) / group;
      ASSERT_NE(k % group, 0);
      QuantizedActivation x = random_activation(rng, rows, k, a_bits);
      x.group_size = group;
      x.zero_points.resize(static_cast<size_t>(rows) * groups);
      x.scales.resize(x.zero_points.size());
      for (size_t tg = 0; tg < x.scales.size(); ++tg) {
        x.zero_points[tg] = static_cast<int32_t>(uniform(rng, 0, (1 << a_bits) - 1));
        x.scales[tg] = random_scale(rng, b_m, 5, 25);
        if (uniform(rng, 0, 6) == 0) {  // an all-zero group (the short one too), as DI_REQUANT emits it
          const size_t t = tg / groups, g = tg % groups, begin = t * k + g * group;
          std::fill(x.codes.begin() + static_cast<ptrdiff_t>(begin),
                    x.codes.begin() + static_cast<ptrdiff_t>(std::min(begin + group, (t + 1) * k)), uint16_t{0});
          x.zero_points[tg] = 0;
          x.scales[tg] = Dyadic{1, 0};
        }
      }
      const QuantizedLinear w = random_linear(rng, n, k, w_bits, b_m);
      const std::string what = "G " + std::to_string(group) + " k " + std::to_string(k) + " A" +
                               std::to_string(a_bits) + "W" + std::to_string(w_bits) + " rows " + std::to_string(rows);
      expect_act_group_linear_equals_reference(opt(), x, w, b_m, what);
      ++cases;
    }
  EXPECT_EQ(cases, 36);
}

// Per-group activations with per-group weights (A divides the weight's G; docs/integer-semantics.md "## Per-group
// activations with per-group weights"): A 8…128, G = A…128 (1 to 16 activation groups per weight group), 1 to 3
// weight groups, decode and prefill rows, all-zero activation groups, packed and byte weights, 8- and 16-bit mantissas.
TEST_P(KernelPaths, LinearActAndWeightGroupsEqualsReference) {
  Rng rng(29);
  int cases = 0;
  for (const int32_t act_group : {8, 16, 32, 64, 128})
    for (const int32_t w_group : {32, 64, 128}) {
      if (w_group < act_group) continue;
      for (const int32_t w_groups : {1, 3})
        for (const auto& [a_bits, w_bits] : {std::pair{4, 4}, std::pair{8, 4}, std::pair{8, 8}, std::pair{6, 5}}) {
          const int32_t rows = cases % 4 == 0 ? 1 : static_cast<int32_t>(uniform(rng, 2, 9)) + (cases % 5 == 0 ? 130 : 0);
          const int32_t n = static_cast<int32_t>(uniform(rng, 1, 13)) + (cases % 3 == 0 ? 40 : 0);
          const int b_m = cases % 2 == 0 ? 16 : 8;
          const int32_t k = w_group * w_groups, groups = k / act_group;
          QuantizedActivation x = random_activation(rng, rows * groups, act_group, a_bits);
          for (size_t tg = 0; tg < x.scales.size(); ++tg) {
            x.scales[tg] = random_scale(rng, b_m, 5, 25);
            if (uniform(rng, 0, 6) == 0) {
              std::fill_n(x.codes.begin() + static_cast<ptrdiff_t>(tg * act_group), act_group, uint16_t{0});
              x.zero_points[tg] = 0;
              x.scales[tg] = Dyadic{1, 0};
            }
          }
          x.rows = rows;
          x.cols = k;
          x.group_size = act_group;
          const QuantizedLinear w = random_grouped_linear(rng, n, k, w_bits, w_group, b_m);
          const std::string what = "A " + std::to_string(act_group) + " G " + std::to_string(w_group) + " x" +
                                   std::to_string(w_groups) + " A" + std::to_string(a_bits) + "W" +
                                   std::to_string(w_bits) + " rows " + std::to_string(rows);
          expect_act_group_linear_equals_reference(opt(), x, w, b_m, what);
          ++cases;
        }
    }
  EXPECT_EQ(cases, 96);
}

// The one-pass per-group DI-MatMul kernels (kernels/optimized/grouped_dot.h, the paths with an Isa::grouped kernel)
// against the reference per-group DI-MatMul: random shapes (K = G·groups, not a multiple of the 64-byte step or of
// 128 packed codes, odd weight-row counts, 1..9 and > 128 activation rows, every G, 2..8-bit weights and
// activations, 8- and 16-bit mantissas), all-extreme codes against a hand-derived value, thread-count invariance.
struct GroupedPath {
  KernelPath path;
  optimized::Isa isa;
};

// The paths with a one-pass per-group kernel (Isa::grouped), as kernel_sets.cpp ships them; each runs on its own,
// skipped where the CPU lacks it.
std::vector<GroupedPath> grouped_paths() {
#if defined(__x86_64__)
  return {GroupedPath{KernelPath::kAvx2, optimized::Isa{optimized::kDotAvx2, optimized::kRowsAvx2,
                                                        optimized::kGroupedDotAvx2, optimized::kActGroupDotAvx2}},
          GroupedPath{KernelPath::kAvx512Vnni, optimized::Isa{optimized::kDotAvx512Vnni, optimized::kRowsAvx512Vnni,
                                                              optimized::kGroupedDotAvx512Vnni,
                                                              optimized::kActGroupDotAvx512Vnni}}};
#else
  return {};
#endif
}

class OnePassPerGroup : public ::testing::TestWithParam<GroupedPath> {
 protected:
  void SetUp() override {
    if (!cpu_supports(GetParam().path))
      GTEST_SKIP() << "one-pass per-group kernel of '" << kernel_path_name(GetParam().path)
                   << "' NOT VERIFIED on this machine: the CPU lacks " << missing_cpu_features(GetParam().path);
  }
};

TEST_P(OnePassPerGroup, RandomShapesEqualTheReference) {
  const GroupedPath& p = GetParam();
  Rng rng(29);
  int cases = 0;
  for (const int32_t group : {32, 64, 128})
    for (const int32_t groups : {2, 3, 5, 7, 12})  // one group is the per-row operator
      for (const int32_t w_bits : {2, 3, 4, 5, 6, 7, 8}) {
        const int32_t a_bits = cases % 3 == 0 ? 8 : static_cast<int32_t>(uniform(rng, 2, 8));
        const int32_t rows = cases % 4 == 0 ? 1 : static_cast<int32_t>(uniform(rng, 2, 9)) + (cases % 7 == 0 ? 130 : 0);
        const int32_t n = 2 * static_cast<int32_t>(uniform(rng, 0, 20)) + 1 + (cases % 5 == 0 ? 40 : 0);  // odd
        const int b_m = cases % 2 == 0 ? 16 : 8;
        const int32_t k = group * groups;
        const QuantizedActivation x = random_activation(rng, rows, k, a_bits);
        const QuantizedLinear w = random_grouped_linear(rng, n, k, w_bits, group, b_m);
        const PreparedLinear prepared = prepare_linear(w, b_m);
        const std::string what = std::string(kernel_path_name(p.path)) + " G " + std::to_string(group) +
                                 " groups " + std::to_string(groups) + " A" + std::to_string(a_bits) + "W" +
                                 std::to_string(w_bits) + " rows " + std::to_string(rows) + " n " + std::to_string(n);
        ASSERT_TRUE(optimized::grouped_linear_applies(p.isa, x, prepared)) << what;
        AlignedAccumulator want, got, through_set;
        reference_kernels().linear(x, prepared, want);
        optimized::linear_accumulate(p.isa, x, prepared, got);
        expect_equal(want, got, what);
        kernels_for(p.path).linear(x, prepared, through_set);
        expect_equal(want, through_set, what + " (kernel set)");
        ++cases;
      }
  EXPECT_EQ(cases, 3 * 5 * 7);
}

// Every code at its extreme: with x = 255, z1 = 0, w = 255 and z = 0 in one row, z = 255 with w = 0 in another, each
// group gives P = ±G·255·255 (the largest |D| per group); 24-bit mantissas of equal exponents are their own μ.
// P'_tj = Σ_g ±G·255²·m_(j,g), derived by hand.
TEST_P(OnePassPerGroup, ExtremeCodesGiveTheHandDerivedSums) {
  const GroupedPath& p = GetParam();
  for (const int32_t group : {32, 64, 128}) {
    const int32_t groups = 3, k = group * groups, n = 3;
    QuantizedActivation x;
    x.rows = 2;
    x.cols = k;
    x.bits = 8;
    x.codes.assign(static_cast<size_t>(2 * k), 255);
    x.zero_points = {0, 0};
    x.scales = {Dyadic{40000, 20}, Dyadic{50000, 21}};
    std::vector<uint8_t> codes(static_cast<size_t>(n) * k, 255);
    std::fill(codes.begin() + k, codes.begin() + 2 * k, 0);  // row 1: all codes 0
    std::vector<int32_t> zero_points(static_cast<size_t>(n) * groups, 0);
    for (int32_t g = 0; g < groups; ++g) zero_points[static_cast<size_t>(groups + g)] = 255;  // row 1: z = 255
    for (int32_t g = 0; g < groups; ++g) zero_points[static_cast<size_t>(2 * groups + g)] = g == 1 ? 255 : 0;
    std::vector<Dyadic> scales;
    for (int32_t i = 0; i < n * groups; ++i) scales.push_back(Dyadic{(int64_t{1} << 24) - 1 - i, 30});
    const QuantizedLinear w = make_quantized_linear(n, k, 8, codes, zero_points, scales, group);
    const PreparedLinear prepared = prepare_linear(w, 24);
    AlignedAccumulator got, want;
    optimized::linear_accumulate(p.isa, x, prepared, got);
    reference_kernels().linear(x, prepared, want);
    expect_equal(want, got, "G " + std::to_string(group));
    const int64_t per_group = int64_t{group} * 255 * 255;
    for (int32_t t = 0; t < 2; ++t)
      for (int32_t j = 0; j < n; ++j) {
        int64_t expected = 0;
        for (int32_t g = 0; g < groups; ++g) {
          // Row 2's middle group has codes 255 and z = 255: P = 0.
          const int64_t sign = j == 0 ? 1 : (j == 1 ? -1 : (g == 1 ? 0 : 1));
          expected += sign * per_group * ((int64_t{1} << 24) - 1 - (j * groups + g));
        }
        EXPECT_EQ(got.values[static_cast<size_t>(t) * n + j], expected) << "G " << group << " t " << t << " j " << j;
      }
  }
}

// `run` gives `want` with 1 and with 2 threads, every parallel region forced on.
template <typename Run>
void expect_thread_count_invariant(const AlignedAccumulator& want, Run run) {
  const int64_t threshold = parallel_work_threshold();
  AlignedAccumulator one, two;
  set_parallel_work_threshold(0);
  omp_set_num_threads(1);
  run(one);
  omp_set_num_threads(2);
  run(two);
  set_parallel_work_threshold(threshold);
  expect_equal(want, one, "1 thread");
  expect_equal(want, two, "2 threads");
}

// Same result with 1 and 2 threads and with every parallel region forced on.
TEST_P(OnePassPerGroup, ThreadCountDoesNotChangeTheResult) {
  const GroupedPath& p = GetParam();
  Rng rng(31);
  const QuantizedActivation x = random_activation(rng, 150, 64 * 5, 8);
  const QuantizedLinear w = random_grouped_linear(rng, 77, 64 * 5, 4, 64, 16);
  const PreparedLinear prepared = prepare_linear(w, 16);
  AlignedAccumulator want;
  reference_kernels().linear(x, prepared, want);
  expect_thread_count_invariant(want,
                                [&](AlignedAccumulator& out) { optimized::linear_accumulate(p.isa, x, prepared, out); });
}

INSTANTIATE_TEST_SUITE_P(Paths, OnePassPerGroup, ::testing::ValuesIn(grouped_paths()),
                         [](const ::testing::TestParamInfo<GroupedPath>& info) {
                           return std::string(kernel_path_name(info.param.path));
                         });

// The one-pass kernels of per-group activations (kernels/optimized/act_group_dot.h, the paths with an
// Isa::act_groups kernel) against the reference kernel, bit for bit, with the one-pass kernel asserted to be the
// one that ran (act_group_linear_applies, and act_group_linear_accumulate called directly not declining): A = 8 …
// 128, per-row weights and weight groups 32/64/128, packed 2..4-bit and 5..8-bit byte weights, activations of 2..7
// bits (8 bits: the one-dot-block-per-group fallback), short last groups of 1..A−1 columns (odd widths too), 1..9
// and > 128 rows, weight-row counts off the 4-row tile and the 32-row task, extreme codes, λ near 2^24.
// Per-group activations of `rows` × k in groups of A: one zero point and scale per (token, group), 1/7 of the
// groups all zero with scale (1, 0) as DI_REQUANT emits them.
QuantizedActivation random_group_activation(Rng& rng, int32_t rows, int32_t k, int32_t group, int32_t bits, int b_m) {
  QuantizedActivation x = random_activation(rng, rows, k, bits);
  const int32_t groups = (k + group - 1) / group;
  x.group_size = group;
  x.zero_points.resize(static_cast<size_t>(rows) * groups);
  x.scales.resize(x.zero_points.size());
  const int64_t q = (int64_t{1} << bits) - 1;
  for (size_t tg = 0; tg < x.scales.size(); ++tg) {
    const int64_t kind = uniform(rng, 0, 6);
    x.zero_points[tg] = static_cast<int32_t>(kind == 1 ? 0 : (kind == 2 ? q : uniform(rng, 0, q)));
    x.scales[tg] = random_scale(rng, b_m, 5, 25);
    if (kind == 0) {
      const size_t t = tg / groups, g = tg % groups, begin = t * k + g * group;
      std::fill(x.codes.begin() + static_cast<ptrdiff_t>(begin),
                x.codes.begin() + static_cast<ptrdiff_t>(std::min(begin + group, (t + 1) * k)), uint16_t{0});
      x.zero_points[tg] = 0;
      x.scales[tg] = Dyadic{1, 0};
    }
  }
  return x;
}

// The paths with a one-pass kernel of per-group activations (Isa::act_groups); each runs on its own, skipped
// where the CPU lacks it.
std::vector<GroupedPath> act_group_paths() {
#if defined(__x86_64__)
  return {GroupedPath{KernelPath::kAvx2, optimized::Isa{optimized::kDotAvx2, optimized::kRowsAvx2,
                                                        optimized::kGroupedDotAvx2, optimized::kActGroupDotAvx2}},
          GroupedPath{KernelPath::kAvx512Vnni, optimized::Isa{optimized::kDotAvx512Vnni, optimized::kRowsAvx512Vnni,
                                                              optimized::kGroupedDotAvx512Vnni,
                                                              optimized::kActGroupDotAvx512Vnni}}};
#else
  return {};
#endif
}

class OnePassActGroups : public ::testing::TestWithParam<GroupedPath> {
 protected:
  void SetUp() override {
    if (!cpu_supports(GetParam().path))
      GTEST_SKIP() << "one-pass per-group-activation kernel of '" << kernel_path_name(GetParam().path)
                   << "' NOT VERIFIED on this machine: the CPU lacks " << missing_cpu_features(GetParam().path);
  }
  // The reference against the one-pass kernel (through linear_act_groups_accumulate, the kernel set, and the
  // driver called directly) for x (bits <= 7) or the fallback (8 bits).
  void expect_one_pass_equals_reference(const QuantizedActivation& x, const QuantizedLinear& w, int b_m,
                                        const std::string& what) const {
    const GroupedPath& p = GetParam();
    const PreparedLinear prepared = prepare_linear(w, b_m, "w", x.group_size);
    ASSERT_EQ(prepared.act_group_size, x.group_size) << what;
    AlignedAccumulator want, got, through_set;
    reference_kernels().linear_act_groups(x, prepared, want);
    const bool one_pass = x.bits <= 7;
    ASSERT_EQ(optimized::act_group_linear_applies(p.isa, x, prepared), one_pass) << what;
    optimized::linear_act_groups_accumulate(p.isa, x, prepared, got);
    expect_equal(want, got, what);
    kernels_for(p.path).linear_act_groups(x, prepared, through_set);
    expect_equal(want, through_set, what + " (kernel set)");
    if (!one_pass) return;
    // The driver itself: it must not decline these codes, and gives the same values.
    const int32_t groups = (x.cols + x.group_size - 1) / x.group_size;
    std::vector<int64_t> lambdas(static_cast<size_t>(x.rows) * groups);
    for (int32_t t = 0; t < x.rows; ++t)
      align_activation_groups(std::span<const Dyadic>(x.scales.data() + static_cast<size_t>(t) * groups, groups),
                              std::span<int64_t>(lambdas.data() + static_cast<size_t>(t) * groups, groups));
    AlignedAccumulator direct;
    direct.values.assign(want.values.size(), -1);
    ASSERT_TRUE(optimized::act_group_linear_accumulate(p.isa, x, prepared, lambdas, direct)) << what;
    EXPECT_EQ(want.values, direct.values) << what << " (direct)";
  }
};

TEST_P(OnePassActGroups, PerRowWeightsEqualTheReference) {
  Rng rng(37);
  int cases = 0;
  for (const int32_t group : {8, 16, 32, 64, 128})
    for (const int32_t w_bits : {2, 3, 4, 5, 6, 7, 8}) {
      // Whole groups (K off the 128-code step), a short last group of an odd and an even width, and K below A.
      const int32_t tail = static_cast<int32_t>(uniform(rng, 1, group - 1));
      for (const int32_t k :
           {group * 5, group * 3 + tail, group * 2 + (tail | 1), group * 4 + 1, group - 1 - (tail % 4)}) {
        const int32_t a_bits = cases % 7 == 6 ? 8 : 2 + cases % 6;  // 2..7, and the 8-bit fallback
        const int32_t rows = cases % 4 == 0 ? 1 : static_cast<int32_t>(uniform(rng, 2, 9)) + (cases % 9 == 0 ? 130 : 0);
        const int32_t n = static_cast<int32_t>(uniform(rng, 1, 13)) + (cases % 3 == 0 ? 40 : 0);
        const int b_m = cases % 3 == 0 ? 24 : (cases % 3 == 1 ? 16 : 8);
        const QuantizedActivation x = random_group_activation(rng, rows, k, group, a_bits, b_m);
        const QuantizedLinear w = random_linear(rng, n, k, w_bits, b_m);
        expect_one_pass_equals_reference(x, w, b_m,
                                         "A " + std::to_string(group) + " k " + std::to_string(k) + " A" +
                                             std::to_string(a_bits) + "W" + std::to_string(w_bits) + " rows " +
                                             std::to_string(rows) + " n " + std::to_string(n));
        ++cases;
      }
    }
  EXPECT_EQ(cases, 5 * 7 * 5);
}

// Every short last group: K = 2·A + r for r = 1 … A − 1 at every A, packed 4-bit and byte weights, rows 1 … 9.
TEST_P(OnePassActGroups, EveryShortLastGroupEqualsTheReference) {
  Rng rng(53);
  int cases = 0;
  for (const int32_t group : {8, 16, 32, 64, 128})
    for (int32_t tail = 1; tail < group; ++tail)
      for (const int32_t w_bits : {4, 8}) {
        const int32_t rows = 1 + cases % 9, n = 1 + cases % 6, a_bits = 2 + cases % 6, b_m = cases % 2 == 0 ? 16 : 24;
        const int32_t k = 2 * group + tail;
        const QuantizedActivation x = random_group_activation(rng, rows, k, group, a_bits, b_m);
        const QuantizedLinear w = random_linear(rng, n, k, w_bits, b_m);
        expect_one_pass_equals_reference(x, w, b_m, "A " + std::to_string(group) + " k " + std::to_string(k) + " W" +
                                                        std::to_string(w_bits) + " rows " + std::to_string(rows));
        ++cases;
      }
  EXPECT_EQ(cases, 2 * (7 + 15 + 31 + 63 + 127));
}

TEST_P(OnePassActGroups, PerGroupWeightsEqualTheReference) {
  Rng rng(41);
  int cases = 0;
  for (const int32_t group : {8, 16, 32, 64, 128})
    for (const int32_t w_group : {32, 64, 128}) {
      if (w_group % group != 0) continue;
      for (const int32_t w_groups : {2, 3, 5, 9})
        for (const int32_t w_bits : {2, 4, 5, 8}) {
          const int32_t a_bits = cases % 7 == 6 ? 8 : 2 + cases % 6;
          const int32_t rows = cases % 4 == 0 ? 1 : static_cast<int32_t>(uniform(rng, 2, 9)) + (cases % 9 == 0 ? 130 : 0);
          const int32_t n = static_cast<int32_t>(uniform(rng, 1, 13)) + (cases % 3 == 0 ? 40 : 0);
          const int b_m = cases % 3 == 0 ? 24 : (cases % 3 == 1 ? 16 : 8);
          const int32_t k = w_group * w_groups;
          const QuantizedActivation x = random_group_activation(rng, rows, k, group, a_bits, b_m);
          const QuantizedLinear w = random_grouped_linear(rng, n, k, w_bits, w_group, b_m);
          expect_one_pass_equals_reference(x, w, b_m,
                                           "A " + std::to_string(group) + " G " + std::to_string(w_group) + " x" +
                                               std::to_string(w_groups) + " A" + std::to_string(a_bits) + "W" +
                                               std::to_string(w_bits) + " rows " + std::to_string(rows) + " n " +
                                               std::to_string(n));
          ++cases;
        }
    }
  EXPECT_EQ(cases, (3 + 3 + 3 + 2 + 1) * 4 * 4);
}

// All codes at their extremes (x = 127 or 0 against z = 0 or 127, weights all 0 or all max against z2 at the other
// end) with 24-bit mantissas of one exponent, so every λ is its mantissa, just below 2^24: the largest |C'| and
// λ·C' per lane. A short last group for the per-row weight.
TEST_P(OnePassActGroups, ExtremeCodesAndLambdasNear2To24EqualTheReference) {
  for (const int32_t group : {8, 16, 32, 64, 128})
    for (const int32_t w_group : {0, 32, 64, 128}) {
      if (w_group != 0 && w_group % group != 0) continue;
      for (const int32_t w_bits : {4, 8}) {
        const int32_t k = w_group == 0 ? group * 5 + 3 : w_group * 3, groups = (k + group - 1) / group;
        const int32_t rows = 6, n = 7;
        QuantizedActivation x;
        x.rows = rows;
        x.cols = k;
        x.bits = 7;
        x.group_size = group;
        for (int32_t t = 0; t < rows; ++t)
          for (int32_t c = 0; c < k; ++c) x.codes.push_back(static_cast<uint16_t>(t % 2 == 0 ? 127 : 0));
        for (int32_t t = 0; t < rows; ++t)
          for (int32_t g = 0; g < groups; ++g) {
            x.zero_points.push_back(t % 2 == 0 ? (t % 4 == 0 ? 0 : 127) : (t % 3 == 0 ? 127 : 0));
            x.scales.push_back(Dyadic{(int64_t{1} << 24) - 1 - g - t, 30});
          }
        const int32_t q = (1 << w_bits) - 1, w_groups = w_group == 0 ? 1 : k / w_group;
        std::vector<uint8_t> codes;
        std::vector<int32_t> zero_points;
        std::vector<Dyadic> scales;
        for (int32_t j = 0; j < n; ++j) {
          for (int32_t c = 0; c < k; ++c) codes.push_back(static_cast<uint8_t>(j % 2 == 0 ? q : 0));
          for (int32_t h = 0; h < w_groups; ++h) {
            zero_points.push_back(j % 2 == 0 ? (j % 4 == 0 ? 0 : q) : q);
            scales.push_back(Dyadic{(int64_t{1} << 24) - 1 - j - h, 30});
          }
        }
        const QuantizedLinear w = make_quantized_linear(n, k, w_bits, codes, zero_points, scales, w_group);
        expect_one_pass_equals_reference(x, w, 24,
                                         "extreme A " + std::to_string(group) + " G " + std::to_string(w_group) +
                                             " W" + std::to_string(w_bits));
      }
    }
}

// Codes whose centred value does not fit a signed byte (a zero point outside the codes' range; no model makes
// them): the driver declines before writing anything, and the operator falls back to the other kernel, still exact.
TEST_P(OnePassActGroups, CentredCodesBeyondASignedByteFallBack) {
  Rng rng(47);
  const GroupedPath& p = GetParam();
  QuantizedActivation x = random_group_activation(rng, 3, 64, 8, 7, 16);
  x.zero_points[5] = 200;  // X − z down to −200
  const QuantizedLinear w = random_linear(rng, 5, 64, 4, 16);
  const PreparedLinear prepared = prepare_linear(w, 16, "w", 8);
  ASSERT_TRUE(optimized::act_group_linear_applies(p.isa, x, prepared));
  std::vector<int64_t> lambdas(x.scales.size(), 1);
  AlignedAccumulator direct, want, got;
  direct.values.assign(3 * 5, -1);
  EXPECT_FALSE(optimized::act_group_linear_accumulate(p.isa, x, prepared, lambdas, direct));
  EXPECT_EQ(direct.values, std::vector<int64_t>(3 * 5, -1));
  reference_kernels().linear_act_groups(x, prepared, want);
  optimized::linear_act_groups_accumulate(p.isa, x, prepared, got);
  expect_equal(want, got, "z = 200 at 7 bits");
}

// Same result with 1 and 2 threads and with every parallel region forced on (more than one row and column task).
TEST_P(OnePassActGroups, ThreadCountDoesNotChangeTheResult) {
  Rng rng(43);
  const GroupedPath& p = GetParam();
  for (const int32_t w_group : {0, 32}) {
    const QuantizedActivation x = random_group_activation(rng, 150, 64 * 5, 8, 4, 16);
    const QuantizedLinear w = w_group == 0 ? random_linear(rng, 77, 64 * 5, 4, 16)
                                           : random_grouped_linear(rng, 77, 64 * 5, 4, w_group, 16);
    const PreparedLinear prepared = prepare_linear(w, 16, "w", 8);
    ASSERT_TRUE(optimized::act_group_linear_applies(p.isa, x, prepared));
    AlignedAccumulator want;
    reference_kernels().linear_act_groups(x, prepared, want);
    expect_thread_count_invariant(
        want, [&](AlignedAccumulator& out) { optimized::linear_act_groups_accumulate(p.isa, x, prepared, out); });
  }
}

INSTANTIATE_TEST_SUITE_P(Paths, OnePassActGroups, ::testing::ValuesIn(act_group_paths()),
                         [](const ::testing::TestParamInfo<GroupedPath>& info) {
                           return std::string(kernel_path_name(info.param.path));
                         });

// K beyond the int32-exact chunk of every dot block (33025 for 8x8-bit widened products, 65793 for vpdpbusd's
// signed bytes): the tiles are folded into int64 chunk by chunk. All codes at the extremes: P = ±K·Q·Q.
TEST_P(KernelPaths, LinearBeyondTheInt32ChunkEqualsReference) {
  Rng rng(12);
  for (const int32_t k : {40000, 70000}) {
    QuantizedActivation x = random_activation(rng, 2, k, 8);
    std::fill(x.codes.begin(), x.codes.end(), 255);
    x.zero_points = {0, 255};
    QuantizedLinear w = random_linear(rng, 3, k, 8, 16);
    w.codes.assign(w.codes.size(), 255);
    w.zero_points = {0, 0, 255};
    const PreparedLinear p = prepare_linear(w, 16);
    AlignedAccumulator want, got;
    ref().linear(x, p, want);
    opt().linear(x, p, got);
    expect_equal(want, got, "K " + std::to_string(k));
    EXPECT_EQ(got.values[0], int64_t{k} * 255 * 255 * p.alignment.mantissas[0]);
  }
  // 16-bit inputs (never a linear input in the executor) still give the reference result.
  const QuantizedActivation x16 = random_activation(rng, 3, 100, 16);
  const QuantizedLinear w8 = random_linear(rng, 5, 100, 8, 16);
  const PreparedLinear p8 = prepare_linear(w8, 16);
  AlignedAccumulator want, got;
  ref().linear(x16, p8, want);
  opt().linear(x16, p8, got);
  expect_equal(want, got, "16-bit input");
}

TEST_P(KernelPaths, RowOperatorsEqualReference) {
  Rng rng(13);
  for (int variant = 0; variant < 3; ++variant)
    for (const int32_t cols : {1, 2, 17, 64, 192, 1000}) {
      const std::string what = "variant " + std::to_string(variant) + " cols " + std::to_string(cols);
      const int32_t rows = static_cast<int32_t>(uniform(rng, 1, 12));
      const IntegerSettings s = settings_variant(variant, variant == 1 ? 8 : 4);
      const int b_m = s.mantissa_bits;

      const AlignedAccumulator acc = random_accumulator(rng, rows, cols, 50);
      QuantizedActivation want, got;
      for (const int out_bits : {4, 8, 16})
        for (const RequantClip clip : kTestClips) {
          ref().requantize(acc, out_bits, b_m, want, clip);
          opt().requantize(acc, out_bits, b_m, got, clip);
          expect_equal(want, got, "requantize " + what + clip_name(clip));
        }

      const ResidualStream h = random_residual(rng, rows, cols);
      const ChannelVector gamma = random_channels(rng, cols, -(int64_t{1} << 20), int64_t{1} << 20, 14);
      const Dyadic eps{uniform(rng, 0, 1 << 16), static_cast<int32_t>(uniform(rng, 20, 40))};
      for (const int out_bits : {4, 8})
        for (const RequantClip clip : kTestClips) {
          ref().rms_norm(h, gamma, eps, s, out_bits, want, clip);
          opt().rms_norm(h, gamma, eps, s, out_bits, got, clip);
          expect_equal(want, got, "rms_norm " + what + clip_name(clip));
        }

      const AlignedAccumulator delta = random_accumulator(rng, rows, cols, 56, /*beyond=*/false);  // |d| <= 2^62
      ResidualStream h_want, h_got = h;
      ref().residual_add(h, delta, b_m, 16, h_want);
      opt().residual_add(h_got, delta, b_m, 16, h_got);  // in place, as the executor calls it
      expect_equal(h_want, h_got, "residual_add " + what);

      const QuantizedActivation gate = random_activation(rng, rows, cols, 8), up = random_activation(rng, rows, cols, 8);
      const ChannelVector inv_alpha = random_channels(rng, cols, 0, (int64_t{1} << 24) - 1, 20);
      for (const RequantClip clip : kTestClips) {
        ref().swiglu(gate, up, inv_alpha, s, 4, want, clip);
        opt().swiglu(gate, up, inv_alpha, s, 4, got, clip);
        expect_equal(want, got, "swiglu " + what + clip_name(clip));
      }
    }
}

// Random Q1.14 RoPE tables of max_positions × head_dim / 2 entries into cos_table and sin_table, and their view.
RopeTableView random_rope(Rng& rng, int32_t max_positions, int32_t head_dim, std::vector<int16_t>& cos_table,
                          std::vector<int16_t>& sin_table) {
  for (int32_t i = 0; i < max_positions * head_dim / 2; ++i) {
    cos_table.push_back(static_cast<int16_t>(uniform(rng, -16384, 16384)));
    sin_table.push_back(static_cast<int16_t>(uniform(rng, -16384, 16384)));
  }
  return RopeTableView{cos_table, sin_table, max_positions, head_dim / 2, 14};
}

TEST_P(KernelPaths, HeadOperatorsEqualReference) {
  Rng rng(14);
  for (const auto& [heads, head_dim] : {std::pair{1, 2}, std::pair{3, 32}, std::pair{4, 34}, std::pair{2, 128}}) {
    const int32_t rows = static_cast<int32_t>(uniform(rng, 1, 9)), max_positions = 40;
    const AlignedAccumulator acc = random_accumulator(rng, rows, heads * head_dim, 50);
    std::vector<int16_t> cos_table, sin_table;
    const RopeTableView rope = random_rope(rng, max_positions, head_dim, cos_table, sin_table);
    for (const int bits : {4, 8})
      for (const RequantClip clip : kTestClips) {
        IntegerSettings s;
        PerHeadActivation want, got;
        ref().rope_heads(acc, heads, head_dim, 7, rope, s, bits, want, clip);
        opt().rope_heads(acc, heads, head_dim, 7, rope, s, bits, got, clip);
        expect_equal(want, got, "rope_heads d " + std::to_string(head_dim) + clip_name(clip));
        ref().split_heads(acc, heads, head_dim, s, bits, want, clip);
        opt().split_heads(acc, heads, head_dim, s, bits, got, clip);
        expect_equal(want, got, "split_heads d " + std::to_string(head_dim) + clip_name(clip));
      }
  }
}

// A cache of `length` random tokens for one layer (codes at the extremes for some tokens, exponents spread).
KvCache random_cache(Rng& rng, int32_t kv_heads, int32_t head_dim, int32_t length, int32_t bits, int mantissa_bits) {
  KvCache cache(1, kv_heads, head_dim, length);
  const int64_t q = (int64_t{1} << bits) - 1;
  std::vector<uint8_t> key(head_dim), value(head_dim);
  for (int32_t t = 0; t < length; ++t) {
    for (int32_t g = 0; g < kv_heads; ++g) {
      const int64_t kind = uniform(rng, 0, 7);
      for (int32_t c = 0; c < head_dim; ++c) {
        key[c] = static_cast<uint8_t>(kind == 0 ? q : uniform(rng, 0, q));
        value[c] = static_cast<uint8_t>(kind == 1 ? 0 : uniform(rng, 0, q));
      }
      const HeadCodes k{key, static_cast<int32_t>(kind == 2 ? q : uniform(rng, 0, q)),
                        random_scale(rng, mantissa_bits, 8, 12)};
      const HeadCodes v{value, static_cast<int32_t>(uniform(rng, 0, q)), random_scale(rng, mantissa_bits, 8, 12)};
      cache.store(0, g, t, k, v);
    }
  }
  cache.commit(length);
  return cache;
}

TEST_P(KernelPaths, AttentionEqualsReference) {
  Rng rng(15);
  int cases = 0;
  for (const auto& [heads, kv_heads, head_dim] :
       {std::tuple{1, 1, 2}, std::tuple{6, 2, 32}, std::tuple{4, 4, 34}, std::tuple{2, 1, 128}})
    for (const int bits : {4, 8})
      for (int variant = 0; variant < 3; ++variant) {
        const IntegerSettings s = settings_variant(variant, bits);
        const int32_t first = static_cast<int32_t>(uniform(rng, 0, 20)), rows = cases % 4 == 0 ? 1 : 19;
        const KvCache cache = random_cache(rng, kv_heads, head_dim, first + rows, bits, s.mantissa_bits);
        PerHeadActivation q;
        q.rows = rows;
        q.heads = heads;
        q.head_dim = head_dim;
        q.bits = bits;
        for (int32_t i = 0; i < rows * heads * head_dim; ++i)
          q.codes.push_back(static_cast<uint8_t>(uniform(rng, 0, (1 << bits) - 1)));
        for (int32_t i = 0; i < rows * heads; ++i) {
          q.zero_points.push_back(static_cast<int32_t>(uniform(rng, 0, (1 << bits) - 1)));
          q.scales.push_back(random_scale(rng, s.mantissa_bits, 8, 10));
        }
        for (const Dyadic clip : {Dyadic{0, 0}, Dyadic{15 << 11, 11}, Dyadic{1, 30}}) {
          const RequantClip out_clip = kTestClips[(cases + clip.k) % std::size(kTestClips)];
          QuantizedActivation want, got;
          ref().attention(q, cache, 0, first, clip, s, bits, want, out_clip);
          opt().attention(q, cache, 0, first, clip, s, bits, got, out_clip);
          expect_equal(want, got, "attention case " + std::to_string(cases) + " clip m " + std::to_string(clip.m) +
                                      clip_name(out_clip));
        }
        ++cases;
      }
  EXPECT_EQ(cases, 24);
}

// Token pruning's scored attention: the same outputs and the same received attention as the reference, with earlier
// tokens in the cache (first > 0), several token blocks, clipping, 1 and 2 threads with every parallel region on.
TEST_P(KernelPaths, ScoredAttentionEqualsReference) {
  Rng rng(17);
  const int64_t saved_threshold = parallel_work_threshold();
  const int saved_threads = omp_get_max_threads();
  int cases = 0;
  for (const auto& [heads, kv_heads, head_dim] : {std::tuple{6, 2, 32}, std::tuple{4, 4, 34}})
    for (const int bits : {4, 8}) {
      const IntegerSettings s = settings_variant(cases % 3, bits);
      const int32_t first = cases % 2 == 0 ? 0 : static_cast<int32_t>(uniform(rng, 1, 20)), rows = 37;
      const KvCache cache = random_cache(rng, kv_heads, head_dim, first + rows, bits, s.mantissa_bits);
      PerHeadActivation q;
      q.rows = rows, q.heads = heads, q.head_dim = head_dim, q.bits = bits;
      for (int32_t i = 0; i < rows * heads * head_dim; ++i)
        q.codes.push_back(static_cast<uint8_t>(uniform(rng, 0, (1 << bits) - 1)));
      for (int32_t i = 0; i < rows * heads; ++i) {
        q.zero_points.push_back(static_cast<int32_t>(uniform(rng, 0, (1 << bits) - 1)));
        q.scales.push_back(random_scale(rng, s.mantissa_bits, 8, 10));
      }
      const Dyadic clip = cases % 2 == 0 ? Dyadic{0, 0} : Dyadic{15 << 11, 11};
      const RequantClip out_clip = cases < 2 ? RequantClip{} : RequantClip{13, 4};  // attn_out clipped in two cases
      QuantizedActivation want, plain;
      std::vector<int64_t> want_received(rows);
      ref().attention_scored(q, cache, 0, first, clip, s, bits, want, out_clip, want_received);
      ref().attention(q, cache, 0, first, clip, s, bits, plain, out_clip);
      expect_equal(want, plain, "scored attention's output is the attention's, case " + std::to_string(cases));
      // Each query row's probabilities sum to at most 2^(p_out−1) (floor divisions), so the call's keys received at
      // most heads · rows · 2^(p_out−1); the last token is seen by its own query only.
      const int64_t one = int64_t{1} << (s.prob_bits - 1);
      int64_t total = 0;
      for (const int64_t r : want_received) total += r;
      EXPECT_LE(total, int64_t{heads} * rows * one);
      EXPECT_LE(want_received[rows - 1], int64_t{heads} * one);
      EXPECT_GT(want_received[0], 0);
      for (const int threads : {1, 2}) {
        set_parallel_work_threshold(threads == 1 ? saved_threshold : 0);
        omp_set_num_threads(threads);
        QuantizedActivation got;
        std::vector<int64_t> received(rows, -1);
        opt().attention_scored(q, cache, 0, first, clip, s, bits, got, out_clip, received);
        expect_equal(want, got, "scored attention case " + std::to_string(cases));
        EXPECT_EQ(received, want_received) << "received attention, case " << cases << ", " << threads << " threads";
      }
      omp_set_num_threads(saved_threads);
      set_parallel_work_threshold(saved_threshold);
      ++cases;
    }
  EXPECT_EQ(cases, 4);
}

// One query at slot 0 sees only itself: each head gives it probability exactly 2^(p_out−1).
TEST_P(KernelPaths, ScoredAttentionOfASingleTokenIsOnePerHead) {
  Rng rng(18);
  const IntegerSettings s;
  const KvCache cache = random_cache(rng, 2, 16, 1, 8, s.mantissa_bits);
  PerHeadActivation q;
  q.rows = 1, q.heads = 4, q.head_dim = 16, q.bits = 8;
  for (int i = 0; i < 4 * 16; ++i) q.codes.push_back(static_cast<uint8_t>(uniform(rng, 0, 255)));
  for (int i = 0; i < 4; ++i) {
    q.zero_points.push_back(static_cast<int32_t>(uniform(rng, 0, 255)));
    q.scales.push_back(random_scale(rng, 16, 8, 10));
  }
  for (const KernelSet* k : {&ref(), &opt()}) {
    QuantizedActivation out;
    std::vector<int64_t> received(1);
    k->attention_scored(q, cache, 0, 0, Dyadic{0, 0}, s, 8, out, RequantClip{}, received);
    EXPECT_EQ(received[0], 4 * (int64_t{1} << (s.prob_bits - 1))) << k->name;
  }
}

// The Walsh–Hadamard rows at the sizes of interest (head_dim 8, 32, 128; C_f 172, 11008; hidden 64, 192, 4096) and a
// few odd ones, with values up to the precondition's bound max|x| = (2^31 − 1) / row_l1 (and rows at the bound).
TEST_P(KernelPaths, HadamardRowsEqualReference) {
  Rng rng(17);
  for (const int64_t n : {1, 2, 4, 8, 12, 32, 43, 48, 64, 128, 172, 192, 4096, 11008}) {
    const HadamardPlan plan = plan_hadamard(n);
    const int64_t limit = INT32_MAX / plan.row_l1;
    const int32_t rows = n >= 4096 ? 2 : 5;
    std::vector<int32_t> x(static_cast<size_t>(rows * n));
    for (size_t i = 0; i < x.size(); ++i) {
      const int64_t row = static_cast<int64_t>(i) / n;
      x[i] = static_cast<int32_t>(row == 0 ? (uniform(rng, 0, 1) ? limit : -limit)  // the extremes
                                           : uniform(rng, -limit, limit));
    }
    std::vector<int32_t> want = x, got = x;
    ref().hadamard_rows(plan, rows, want);
    opt().hadamard_rows(plan, rows, got);
    ASSERT_EQ(got, want) << plan.describe();
    if (n > 1) {  // (size 1 is the identity)
      EXPECT_NE(want, x) << plan.describe();
    }
  }
  // The precondition is checked on every path, before any row changes.
  const HadamardPlan plan = plan_hadamard(192);
  std::vector<int32_t> x(2 * 192, 1);
  x[192 + 7] = static_cast<int32_t>(INT32_MAX / plan.row_l1 + 1);
  const std::vector<int32_t> before = x;
  EXPECT_THROW(opt().hadamard_rows(plan, 2, x), Error);
  EXPECT_EQ(x, before);
  EXPECT_THROW(opt().hadamard_rows(plan, 3, x), Error);  // size mismatch
}

// The online Hadamard sites as the executor runs them (kernels/reference/hadamard_sites.h): the kernel set's halves
// before the transform (swiglu_symmetric, rope_symmetric) on random rows (odd lengths, every settings variant: the
// paper variant takes the reference products, accumulator rows beyond the 64-bit fast range, consecutive and pruned
// positions), then hadamard_rows, widen_rows and the plain sites' requantization (requantize, split_heads) with every
// clip: each step equals the reference's.
TEST_P(KernelPaths, HadamardSitesEqualReference) {
  Rng rng(18);
  for (int variant = 0; variant < 3; ++variant)
    for (const int32_t cols : {1, 3, 43, 172, 512, 1000}) {
      const std::string what = "hadamard_down variant " + std::to_string(variant) + " C_f " + std::to_string(cols);
      const int32_t rows = static_cast<int32_t>(uniform(rng, 1, 12));
      const IntegerSettings s = settings_variant(variant, variant == 1 ? 8 : 4);
      const QuantizedActivation gate = random_activation(rng, rows, cols, 8), up = random_activation(rng, rows, cols, 8);
      const ChannelVector inv_alpha = random_channels(rng, cols, 0, (int64_t{1} << 24) - 1, 20);
      WideRows want, got;
      ref().swiglu_symmetric(gate, up, inv_alpha, s, want);
      opt().swiglu_symmetric(gate, up, inv_alpha, s, got);
      expect_equal(want, got, "swiglu_symmetric " + what);
      const HadamardPlan plan = plan_hadamard(cols);
      ref().hadamard_rows(plan, want.rows, want.values);
      opt().hadamard_rows(plan, got.rows, got.values);
      expect_equal(want, got, "hadamard_rows " + what);
      AlignedAccumulator wide_want, wide_got;
      widen_rows(want, wide_want);
      widen_rows(got, wide_got);
      for (const int out_bits : {4, 8})
        for (const RequantClip clip : kTestClips) {
          QuantizedActivation codes_want, codes_got;
          ref().requantize(wide_want, out_bits, s.mantissa_bits, codes_want, clip);
          opt().requantize(wide_got, out_bits, s.mantissa_bits, codes_got, clip);
          expect_equal(codes_want, codes_got, "requantize " + what + clip_name(clip));
        }
    }
  for (const auto& [heads, head_dim] : {std::pair{1, 2}, std::pair{3, 8}, std::pair{5, 6}, std::pair{4, 34},
                                        std::pair{2, 128}}) {
    const int32_t rows = static_cast<int32_t>(uniform(rng, 1, 9)), max_positions = 40;
    const AlignedAccumulator acc = random_accumulator(rng, rows, heads * head_dim, 50);
    std::vector<int16_t> cos_table, sin_table;
    const RopeTableView rope = random_rope(rng, max_positions, head_dim, cos_table, sin_table);
    std::vector<int32_t> consecutive, pruned;
    for (int32_t t = 0; t < rows; ++t) {
      consecutive.push_back(7 + t);
      pruned.push_back((t == 0 ? 0 : pruned.back() + 1) + static_cast<int32_t>(uniform(rng, 0, 3)));
    }
    for (const bool is_pruned : {false, true}) {
      const std::vector<int32_t>& positions = is_pruned ? pruned : consecutive;
      const std::string what = "hadamard_qk " + std::to_string(heads) + " heads of " + std::to_string(head_dim) +
                               (is_pruned ? " pruned" : "");
      const IntegerSettings s;
      WideRows want, got;
      ref().rope_symmetric(acc, heads, head_dim, positions, rope, s, want);
      opt().rope_symmetric(acc, heads, head_dim, positions, rope, s, got);
      expect_equal(want, got, "rope_symmetric " + what);
      const HadamardPlan plan = plan_hadamard(head_dim);
      ref().hadamard_rows(plan, want.rows * heads, want.values);
      opt().hadamard_rows(plan, got.rows * heads, got.values);
      expect_equal(want, got, "hadamard_rows " + what);
      AlignedAccumulator wide_want, wide_got;
      widen_rows(want, wide_want);
      widen_rows(got, wide_got);
      for (const int bits : {4, 8})
        for (const RequantClip clip : kTestClips) {
          PerHeadActivation codes_want, codes_got;
          ref().split_heads(wide_want, heads, head_dim, s, bits, codes_want, clip);
          opt().split_heads(wide_got, heads, head_dim, s, bits, codes_got, clip);
          expect_equal(codes_want, codes_got, "split_heads " + what + clip_name(clip));
        }
    }
  }
  // Shape errors on every path.
  const AlignedAccumulator acc = random_accumulator(rng, 2, 12, 20);
  const std::vector<int16_t> table(40 * 3, 0);
  const RopeTableView rope{table, table, 40, 3, 14};
  WideRows out;
  const std::vector<int32_t> two{0, 1}, one{0};
  EXPECT_THROW(opt().rope_symmetric(acc, 3, 6, two, rope, IntegerSettings{}, out), Error);  // 18 != 12 columns
  EXPECT_THROW(opt().rope_symmetric(acc, 2, 6, one, rope, IntegerSettings{}, out), Error);  // 1 position, 2 rows
}

// Every parallel region forced on, 1 and 2 threads: the same bits (no reduction is split across threads).
TEST_P(KernelPaths, ThreadCountDoesNotChangeTheResult) {
  Rng rng(16);
  const int64_t saved_threshold = parallel_work_threshold();
  const int saved_threads = omp_get_max_threads();
  set_parallel_work_threshold(0);
  const QuantizedActivation x = random_activation(rng, 37, 300, 8);
  const QuantizedLinear w = random_linear(rng, 150, 300, 4, 16);
  const PreparedLinear p = prepare_linear(w, 16);
  const KvCache cache = random_cache(rng, 2, 32, 40, 8, 16);
  PerHeadActivation q;
  q.rows = 20, q.heads = 4, q.head_dim = 32, q.bits = 8;
  for (int i = 0; i < 20 * 4 * 32; ++i) q.codes.push_back(static_cast<uint8_t>(uniform(rng, 0, 255)));
  for (int i = 0; i < 20 * 4; ++i) {
    q.zero_points.push_back(static_cast<int32_t>(uniform(rng, 0, 255)));
    q.scales.push_back(random_scale(rng, 16, 8, 10));
  }
  const QuantizedActivation gate = random_activation(rng, 37, 300, 8), up = random_activation(rng, 37, 300, 8);
  const ChannelVector inv_alpha = random_channels(rng, 300, 0, (int64_t{1} << 24) - 1, 20);
  const AlignedAccumulator qk = random_accumulator(rng, 37, 4 * 32, 40);
  std::vector<int16_t> table(40 * 16, 8192);
  const RopeTableView rope{table, table, 40, 16, 14};
  std::vector<int32_t> positions(37);
  for (int32_t t = 0; t < 37; ++t) positions[t] = t;
  AlignedAccumulator acc1, acc2;
  QuantizedActivation att1, att2;
  WideRows down1, down2, rotated1, rotated2;
  omp_set_num_threads(1);
  opt().linear(x, p, acc1);
  opt().attention(q, cache, 0, 20, Dyadic{0, 0}, IntegerSettings{}, 8, att1, RequantClip{13, 4});
  opt().swiglu_symmetric(gate, up, inv_alpha, IntegerSettings{}, down1);
  opt().rope_symmetric(qk, 4, 32, positions, rope, IntegerSettings{}, rotated1);
  omp_set_num_threads(2);
  opt().linear(x, p, acc2);
  opt().attention(q, cache, 0, 20, Dyadic{0, 0}, IntegerSettings{}, 8, att2, RequantClip{13, 4});
  opt().swiglu_symmetric(gate, up, inv_alpha, IntegerSettings{}, down2);
  opt().rope_symmetric(qk, 4, 32, positions, rope, IntegerSettings{}, rotated2);
  omp_set_num_threads(saved_threads);
  set_parallel_work_threshold(saved_threshold);
  expect_equal(acc1, acc2, "linear");
  expect_equal(att1, att2, "attention");
  expect_equal(down1, down2, "swiglu_symmetric");
  expect_equal(rotated1, rotated2, "rope_symmetric");
}

// ------------------------------------------------------------------------------------------------------------------
// Whole model: the shared test models (tests/fixtures/make_test_models.sh), prefill and token-by-token decode.

// "<model>-<bits>" is a shared test model; "+clip" after it: the same model with every activation site's
// requantization clipped (ratios varying by site and layer); "+had": with both online Hadamards on; "+trip" with TRIP
// factors at the four TRIP sites (K = 3, seeded random α with α_min = 0: 3 extra code bits), "+tripK" with α ≡ K = 3
// at every TRIP site.
void add_trip_factors(QuantizedModel& model, bool alpha_equal_k) {
  Rng rng(77);
  const int32_t channels[kNumClipSites] = {model.shape.hidden, 0, 0, 0, model.shape.n_heads * model.shape.head_dim,
                                           model.shape.hidden, model.shape.intermediate};
  for (QuantizedLayer& L : model.layers) {
    L.trip_max_shift = 3;
    for (int site = 0; site < kNumClipSites; ++site) {
      if (!trip_capable_site(site)) continue;
      std::vector<int8_t>& alpha = L.trip_alpha[site];
      alpha.resize(static_cast<size_t>(channels[site]));
      for (int8_t& a : alpha) a = alpha_equal_k ? int8_t{3} : static_cast<int8_t>(uniform(rng, 0, 3));
      if (!alpha_equal_k) alpha[0] = 0;
    }
  }
}

const formats::LoadedIllm& test_model(const std::string& name) {
  static std::map<std::string, formats::LoadedIllm> models;
  auto it = models.find(name);
  if (it == models.end()) {
    const std::string file = name.substr(0, name.find('+'));
    formats::LoadedIllm loaded = formats::read_illm(std::filesystem::path(ILLM_TEST_MODELS_DIR) / (file + ".illm"));
    if (name.find("+had") != std::string::npos) loaded.model.hadamard_down = loaded.model.hadamard_qk = true;
    if (name.find("+trip") != std::string::npos)
      add_trip_factors(loaded.model, name.find("+tripK") != std::string::npos);
    if (name.find("+clip") != std::string::npos) {
      const RequantClip ratios[] = {{15, 4}, {13, 4}, {14, 4}, {12, 4}, {10, 4}, {52429, 16}, {15, 4}};
      for (size_t l = 0; l < loaded.model.layers.size(); ++l)
        for (int site = 0; site < kNumClipSites; ++site)
          loaded.model.layers[l].act_clip[site] = ratios[(site + l) % std::size(ratios)];
    }
    it = models.emplace(name, std::move(loaded)).first;
  }
  return it->second;
}

constexpr int32_t kPrefillTokens = 28, kDecodeTokens = 8;  // 28 > the 16-token attention block

std::vector<int32_t> token_ids(int32_t vocab, int32_t count, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> ids{1};
  while (static_cast<int32_t>(ids.size()) < count) ids.push_back(static_cast<int32_t>(uniform(rng, 0, vocab - 1)));
  return ids;
}

// The reference logits of a model's prefill (computed once per model and shared by the paths).
const IntegerLogits& reference_logits(const std::string& name) {
  static std::map<std::string, IntegerLogits> cache;
  auto it = cache.find(name);
  if (it == cache.end()) {
    const QuantizedModel& model = test_model(name).model;
    Executor executor(model, reference_kernels());
    it = cache.emplace(name, executor.forward(token_ids(model.shape.vocab, kPrefillTokens, 5))).first;
  }
  return it->second;
}

class WholeModel : public ::testing::TestWithParam<std::tuple<KernelPath, std::string>> {};

// Prefill of `ids` on `kernels` equals `want`; so does decode: the first tokens as a short prefill, then one token
// per call, row t equal to want's row t.
void expect_prefill_and_decode(const QuantizedModel& model, const KernelSet& kernels, const std::vector<int32_t>& ids,
                               const IntegerLogits& want, const std::string& name) {
  Executor executor(model, kernels);
  const IntegerLogits prefill = executor.forward(ids);
  EXPECT_EQ(prefill.values, want.values) << name << " prefill";
  EXPECT_EQ(prefill.scales, want.scales) << name << " prefill";
  executor.reset();
  const int32_t start = kPrefillTokens - kDecodeTokens;
  executor.forward(std::span<const int32_t>(ids.data(), static_cast<size_t>(start)));
  for (int32_t t = start; t < kPrefillTokens; ++t) {
    const IntegerLogits step = executor.forward(std::span<const int32_t>(&ids[t], 1));
    const size_t v = static_cast<size_t>(model.shape.vocab);
    ASSERT_TRUE(std::equal(step.values.begin(), step.values.end(), want.values.begin() + static_cast<ptrdiff_t>(t * v)))
        << name << " decode step at position " << t;
    EXPECT_EQ(step.scales[0], want.scales[t]) << name << " decode step at position " << t;
  }
}

// The executor runs a Hadamard model's sites through the kernel set it was given: with both transforms on, every
// layer calls swiglu_symmetric once and rope_symmetric twice (q, k) instead of swiglu / rope_heads, hadamard_rows
// three times, and requantizes after the transforms with requantize / split_heads; on an optimized path those entries
// are that path's own kernels, not the reference's. (Counted through a copy of the path's table whose entries count
// and forward; the logits are the path's.)
struct SiteCalls {
  int swiglu = 0, swiglu_symmetric = 0, rope_heads = 0, rope_symmetric = 0, hadamard_rows = 0, requantize = 0,
      split_heads = 0;
};
SiteCalls g_site_calls;
const KernelSet* g_counted = nullptr;

KernelSet counting_kernels(const KernelSet& inner) {
  g_counted = &inner;
  KernelSet k = inner;
  k.swiglu = [](const QuantizedActivation& gate, const QuantizedActivation& up, const ChannelVector& inv_alpha,
                const IntegerSettings& settings, int out_bits, QuantizedActivation& out, RequantClip clip) {
    ++g_site_calls.swiglu;
    g_counted->swiglu(gate, up, inv_alpha, settings, out_bits, out, clip);
  };
  k.swiglu_symmetric = [](const QuantizedActivation& gate, const QuantizedActivation& up,
                          const ChannelVector& inv_alpha, const IntegerSettings& settings, WideRows& out) {
    ++g_site_calls.swiglu_symmetric;
    g_counted->swiglu_symmetric(gate, up, inv_alpha, settings, out);
  };
  k.rope_heads = [](const AlignedAccumulator& acc, int32_t heads, int32_t head_dim, int32_t first_position,
                    const RopeTableView& rope, const IntegerSettings& settings, int out_bits, PerHeadActivation& out,
                    RequantClip clip) {
    ++g_site_calls.rope_heads;
    g_counted->rope_heads(acc, heads, head_dim, first_position, rope, settings, out_bits, out, clip);
  };
  k.rope_symmetric = [](const AlignedAccumulator& acc, int32_t heads, int32_t head_dim,
                        std::span<const int32_t> positions, const RopeTableView& rope, const IntegerSettings& settings,
                        WideRows& out) {
    ++g_site_calls.rope_symmetric;
    g_counted->rope_symmetric(acc, heads, head_dim, positions, rope, settings, out);
  };
  k.hadamard_rows = [](const HadamardPlan& plan, int32_t rows, std::span<int32_t> values) {
    ++g_site_calls.hadamard_rows;
    g_counted->hadamard_rows(plan, rows, values);
  };
  k.requantize = [](const AlignedAccumulator& acc, int out_bits, int mantissa_bits, QuantizedActivation& out,
                    RequantClip clip) {
    ++g_site_calls.requantize;
    g_counted->requantize(acc, out_bits, mantissa_bits, out, clip);
  };
  k.split_heads = [](const AlignedAccumulator& acc, int32_t heads, int32_t head_dim, const IntegerSettings& settings,
                     int out_bits, PerHeadActivation& out, RequantClip clip) {
    ++g_site_calls.split_heads;
    g_counted->split_heads(acc, heads, head_dim, settings, out_bits, out, clip);
  };
  return k;
}

TEST_P(KernelPaths, HadamardSitesRunThePathsKernels) {
  EXPECT_NE(opt().swiglu_symmetric, ref().swiglu_symmetric);
  EXPECT_NE(opt().rope_symmetric, ref().rope_symmetric);
  EXPECT_NE(opt().hadamard_rows, ref().hadamard_rows);
  EXPECT_NE(opt().requantize, ref().requantize);
  EXPECT_NE(opt().split_heads, ref().split_heads);
  QuantizedModel model = test_model("stories260K-w4a4").model;
  const std::vector<int32_t> ids = token_ids(model.shape.vocab, 5, 9);
  const int32_t layers = model.shape.n_layers;
  for (const bool on : {false, true}) {
    model.hadamard_down = model.hadamard_qk = on;
    const KernelSet counted = counting_kernels(opt());
    g_site_calls = SiteCalls{};
    Executor executor(model, counted);
    const IntegerLogits got = executor.forward(ids);
    const SiteCalls calls = g_site_calls;
    Executor path(model, opt());
    EXPECT_EQ(got.values, path.forward(ids).values);
    EXPECT_EQ(calls.swiglu, on ? 0 : layers);
    EXPECT_EQ(calls.swiglu_symmetric, on ? layers : 0);
    EXPECT_EQ(calls.rope_heads, on ? 0 : 2 * layers);
    EXPECT_EQ(calls.rope_symmetric, on ? 2 * layers : 0);
    EXPECT_EQ(calls.hadamard_rows, on ? 3 * layers : 0);
    EXPECT_EQ(calls.requantize, (on ? 3 : 2) * layers);  // gate, up (+ down_proj's input after the transform)
    EXPECT_EQ(calls.split_heads, (on ? 3 : 1) * layers);  // v (+ q and k after the transform)
  }
}

TEST_P(WholeModel, PrefillAndDecodeEqualReference) {
  const auto& [path, name] = GetParam();
  if (!cpu_supports(path))
    GTEST_SKIP() << "kernel path '" << kernel_path_name(path) << "' NOT VERIFIED on this machine: the CPU lacks "
                 << missing_cpu_features(path);
  const QuantizedModel& model = test_model(name).model;
  expect_prefill_and_decode(model, kernels_for(path), token_ids(model.shape.vocab, kPrefillTokens, 5),
                            reference_logits(name), name);
}

// The shared test models with both online Hadamards switched on (a different function, the same codes): every
// path equals the reference, prefill and decode (stories260K: C_f 172 weighted blocks, d 8; tinybible: C_f and d
// of its shape).
class WholeModelWithHadamards : public ::testing::TestWithParam<std::tuple<KernelPath, std::string>> {};

TEST_P(WholeModelWithHadamards, PrefillAndDecodeEqualReference) {
  const auto& [path, name] = GetParam();
  if (!cpu_supports(path))
    GTEST_SKIP() << "kernel path '" << kernel_path_name(path) << "' NOT VERIFIED on this machine: the CPU lacks "
                 << missing_cpu_features(path);
  QuantizedModel model = test_model(name).model;
  model.hadamard_down = model.hadamard_qk = true;
  const std::vector<int32_t> ids = token_ids(model.shape.vocab, kPrefillTokens, 5);
  Executor reference(model, reference_kernels());
  const IntegerLogits want = reference.forward(ids);
  EXPECT_NE(want.values, reference_logits(name).values) << name << ": the transforms change the logits";
  expect_prefill_and_decode(model, kernels_for(path), ids, want, name + " with online Hadamards");
}

// Clipping is on in the "+clip" models: their reference logits differ from the unclipped model's.
TEST(WholeModelClip, ClippedSitesChangeTheLogits) {
  for (const std::string name : {"stories260K-w4a4", "tinybible-w4a8"}) {
    const IntegerLogits& plain = reference_logits(name);
    const IntegerLogits& clipped = reference_logits(name + "+clip");
    EXPECT_NE(plain.values, clipped.values) << name;
  }
}

// Token pruning (docs/token-pruning.md): the pruned prefill and the decode steps after it are the reference's bit for
// bit (logits, scales, kept positions), at 1 thread and at 2 with every parallel region on. (One test per path, not
// per model: each test is a process that reads its models.)
TEST_P(KernelPaths, PrunedPrefillAndDecodeEqualReference) {
  // one small, one bigger model, and every part-2 operator at once (clipped sites, online Hadamards: hadamard_qk's
  // RoPE at the kept positions)
  for (const std::string name :
       {"stories260K-w4a4", "tinybible-w8a8", "stories260K-w4a4+clip+had", "stories260K-w4a4+trip"}) {
    const QuantizedModel& model = test_model(name).model;
    const std::vector<int32_t> ids = token_ids(model.shape.vocab, kPrefillTokens + 2, 6);
    const std::span<const int32_t> prompt(ids.data(), static_cast<size_t>(kPrefillTokens));
    const TokenPruning pruning{3, 10, 1};  // ρ = 0.3 from layer 1
    const auto run = [&](const KernelSet& kernels) {
      Executor executor(model, kernels);
      executor.set_token_pruning(pruning);
      std::vector<IntegerLogits> out{executor.forward(prompt)};
      for (int32_t t = kPrefillTokens; t < kPrefillTokens + 2; ++t)
        out.push_back(executor.forward(std::span<const int32_t>(&ids[t], 1)));
      return out;
    };
    const std::vector<IntegerLogits> want = run(ref());
    ASSERT_LT(want[0].tokens, kPrefillTokens) << "pruning removed nothing";
    const int64_t saved_threshold = parallel_work_threshold();
    const int saved_threads = omp_get_max_threads();
    for (const int threads : {1, 2}) {
      omp_set_num_threads(threads);
      set_parallel_work_threshold(threads == 1 ? saved_threshold : 0);
      const std::vector<IntegerLogits> got = run(opt());
      for (size_t i = 0; i < want.size(); ++i) {
        EXPECT_EQ(got[i].values, want[i].values) << name << " call " << i << ", " << threads << " threads";
        EXPECT_EQ(got[i].scales, want[i].scales) << name << " call " << i << ", " << threads << " threads";
        EXPECT_EQ(got[i].positions, want[i].positions) << name << " call " << i << ", " << threads << " threads";
      }
    }
    omp_set_num_threads(saved_threads);
    set_parallel_work_threshold(saved_threshold);
  }
}

// TRIP: α ≡ K is the plain model bit for bit; mixed α changes the logits (and widens the linears' inputs).
TEST(WholeModelTrip, AlphaEqualKIsThePlainModelAndMixedAlphaIsNot) {
  for (const std::string name : {"stories260K-w4a4", "tinybible-w4a8"}) {
    const IntegerLogits& plain = reference_logits(name);
    const IntegerLogits& same = reference_logits(name + "+tripK");
    EXPECT_EQ(plain.values, same.values) << name;
    EXPECT_EQ(plain.scales, same.scales) << name;
    EXPECT_NE(plain.values, reference_logits(name + "+trip").values) << name;
  }
}

const std::vector<KernelPath> kOptimizedPaths = {KernelPath::kPortable, KernelPath::kAvx2, KernelPath::kAvx512Vnni};

// A per-row model rewritten per group without changing its numbers must give the per-row logits bit for bit on every
// path: group_size = in_features (one group), and G = 32 with every group repeating its row's zero point and scale.
TEST(PerGroupWholeModel, GroupEqualToInAndRepeatedGroupScalesGiveThePerRowLogits) {
  const QuantizedModel& per_row = test_model("tinybible-w4a4").model;
  const IntegerLogits& want = reference_logits("tinybible-w4a4");
  const std::vector<int32_t> ids = token_ids(per_row.shape.vocab, kPrefillTokens, 5);
  for (const int32_t group : {0, 32}) {  // 0: group_size = in_features
    QuantizedModel model = per_row;
    for (QuantizedLayer& L : model.layers)
      for (QuantizedLinear* w : {&L.q_proj, &L.k_proj, &L.v_proj, &L.o_proj, &L.gate_proj, &L.up_proj, &L.down_proj}) {
        w->group_size = group == 0 ? w->in_features : group;
        const int32_t groups = weight_groups(*w);
        std::vector<int32_t> zero_points;
        std::vector<Dyadic> scales;
        for (int32_t r = 0; r < w->out_features; ++r)
          for (int32_t g = 0; g < groups; ++g) {
            zero_points.push_back(w->zero_points[r]);
            scales.push_back(w->scales[r]);
          }
        w->zero_points = zero_points;
        w->scales = scales;
      }
    ASSERT_EQ(model.layers[0].down_proj.scales.size(), group == 0 ? 192u : 192u * 512 / 32);
    std::vector<const KernelSet*> sets = {&reference_kernels()};
    for (const KernelPath path : kOptimizedPaths)
      if (cpu_supports(path)) sets.push_back(&kernels_for(path));
    for (const KernelSet* set : sets) {
      Executor executor(model, *set);
      const IntegerLogits got = executor.forward(ids);
      EXPECT_EQ(got.values, want.values) << "G " << group << " " << set->name;
      EXPECT_EQ(got.scales, want.scales) << "G " << group << " " << set->name;
    }
  }
}

std::string path_name(const ::testing::TestParamInfo<KernelPath>& info) { return kernel_path_name(info.param); }

// Per-group activations (act_group_size, docs/integer-semantics.md "## Per-group activations") on the tinybible test
// models (hidden 192, intermediate 512), also with both online Hadamards and with clipped sites: every path equals
// the reference, prefill and decode, and the groups change the logits.
class WholeModelWithActGroups : public ::testing::TestWithParam<std::tuple<KernelPath, std::string>> {};

// Test model `name` with act_group_size `group` (and both online Hadamards if asked) on `path` against the reference,
// prefill and decode; without the Hadamards the groups must change the logits.
void expect_act_group_model_equals_reference(KernelPath path, const std::string& name, int32_t group, bool hadamards) {
  QuantizedModel model = test_model(name).model;
  model.act_group_size = group;
  model.hadamard_down = model.hadamard_qk = hadamards;
  const std::string what = name + " act_group_size " + std::to_string(group) + (hadamards ? " + Hadamards" : "");
  const std::vector<int32_t> ids = token_ids(model.shape.vocab, kPrefillTokens, 5);
  Executor reference(model, reference_kernels());
  const IntegerLogits want = reference.forward(ids);
  if (!hadamards) {
    EXPECT_NE(want.values, reference_logits(name).values) << what << ": the groups change the logits";
  }
  expect_prefill_and_decode(model, kernels_for(path), ids, want, what);
}

TEST_P(WholeModelWithActGroups, PrefillAndDecodeEqualReference) {
  const auto& [path, name] = GetParam();
  if (!cpu_supports(path))
    GTEST_SKIP() << "kernel path '" << kernel_path_name(path) << "' NOT VERIFIED on this machine: the CPU lacks "
                 << missing_cpu_features(path);
  for (const int32_t group : {16, 64})
    for (const bool hadamards : {false, true})
      if (group != 64 || !hadamards)  // the Hadamard sites' grouping does not depend on G
        expect_act_group_model_equals_reference(path, name, group, hadamards);
}

// The executor calls linear_act_groups for the seven block linears of every layer and `linear` only for the LM head.
TEST(WholeModelActGroups, BlockLinearsUseThePerGroupOperator) {
  static int g_grouped = 0, g_plain = 0;
  KernelSet k = reference_kernels();
  k.linear = [](const QuantizedActivation& x, const PreparedLinear& w, AlignedAccumulator& out) {
    ++g_plain;
    reference_kernels().linear(x, w, out);
  };
  k.linear_act_groups = [](const QuantizedActivation& x, const PreparedLinear& w, AlignedAccumulator& out) {
    ++g_grouped;
    EXPECT_GT(x.group_size, 0);
    reference_kernels().linear_act_groups(x, w, out);
  };
  QuantizedModel model = test_model("tinybible-w4a4").model;
  model.act_group_size = 32;
  Executor executor(model, k);
  executor.forward(token_ids(model.shape.vocab, 4, 3));
  EXPECT_EQ(g_grouped, 7 * model.shape.n_layers);
  EXPECT_EQ(g_plain, 1);
}

// Weight groups must hold whole activation groups: G 32 weights with act_group_size 64 are refused at load, naming
// the field.
TEST(WholeModelActGroups, WeightGroupsSmallerThanTheActivationGroupsAreRefused) {
  QuantizedModel model = test_model("tinybible-w4a4-g32").model;
  model.act_group_size = 64;
  try {
    Executor executor(model);
    ADD_FAILURE() << "accepted G 32 weights with act_group_size 64";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layers[0].q_proj.group_size"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("is not a multiple of act_group_size = 64"), std::string::npos) << e.what();
  }
}

// Per-group activations with per-group weights on the whole tinybible W4A4 G 32 test model (A 16 and 32, also with
// both online Hadamards): every path equals the reference, prefill and decode; the activation groups change the
// logits of the per-group-weight model.
class WholeModelWithActAndWeightGroups : public ::testing::TestWithParam<KernelPath> {};

TEST_P(WholeModelWithActAndWeightGroups, PrefillAndDecodeEqualReference) {
  const KernelPath path = GetParam();
  if (!cpu_supports(path))
    GTEST_SKIP() << "kernel path '" << kernel_path_name(path) << "' NOT VERIFIED on this machine: the CPU lacks "
                 << missing_cpu_features(path);
  for (const auto& [group, hadamards] : {std::pair{16, false}, std::pair{32, false}, std::pair{16, true}})
    expect_act_group_model_equals_reference(path, "tinybible-w4a4-g32", group, hadamards);
}

INSTANTIATE_TEST_SUITE_P(Paths, WholeModelWithActAndWeightGroups, ::testing::ValuesIn(kOptimizedPaths), path_name);

// G = 8 and short last groups on whole models: stories260K (hidden 64, intermediate 172) at A 8 (21 groups of 8 and
// one of 4 at down_proj), 16, and 128 (one short group of 64 at every hidden-wide input), W4A4 also with both online
// Hadamards, W8A8 at A 8; tinybible W4A4 at A 8. Every path equals the reference, prefill and decode.
class WholeModelWithShortActGroups : public ::testing::TestWithParam<KernelPath> {};

TEST_P(WholeModelWithShortActGroups, PrefillAndDecodeEqualReference) {
  const KernelPath path = GetParam();
  if (!cpu_supports(path))
    GTEST_SKIP() << "kernel path '" << kernel_path_name(path) << "' NOT VERIFIED on this machine: the CPU lacks "
                 << missing_cpu_features(path);
  for (const int32_t group : {8, 16, 128})
    expect_act_group_model_equals_reference(path, "stories260K-w4a4", group, false);
  expect_act_group_model_equals_reference(path, "stories260K-w4a4", 8, true);
  expect_act_group_model_equals_reference(path, "stories260K-w8a8", 8, false);
  expect_act_group_model_equals_reference(path, "tinybible-w4a4", 8, false);
}

INSTANTIATE_TEST_SUITE_P(Paths, WholeModelWithShortActGroups, ::testing::ValuesIn(kOptimizedPaths), path_name);

// qkv_bits (Q, K, V codes of their own width): 8-bit attention operands in W4A4 models (per token, with 8-wide
// activation groups, with both Hadamards) and 4-bit ones in a W8A8 model, prefill and decode equal the reference.
class WholeModelWithQkvBits : public ::testing::TestWithParam<KernelPath> {};

TEST_P(WholeModelWithQkvBits, PrefillAndDecodeEqualReference) {
  const KernelPath path = GetParam();
  if (!cpu_supports(path))
    GTEST_SKIP() << "kernel path '" << kernel_path_name(path) << "' NOT VERIFIED on this machine: the CPU lacks "
                 << missing_cpu_features(path);
  const struct { const char* name; int32_t qkv, group; bool hadamards; } cases[] = {
      {"stories260K-w4a4", 8, 0, false}, {"stories260K-w4a4", 8, 8, true}, {"tinybible-w4a4", 8, 8, false},
      {"tinybible-w4a4-g32", 8, 8, true}, {"stories260K-w8a8", 4, 0, false}};
  for (const auto& c : cases) {
    QuantizedModel model = test_model(c.name).model;
    model.settings.qkv_bits = c.qkv;
    model.act_group_size = c.group;
    model.hadamard_down = model.hadamard_qk = c.hadamards;
    const std::string what = std::string(c.name) + " qkv_bits " + std::to_string(c.qkv) + " act_group_size " +
                             std::to_string(c.group) + (c.hadamards ? " + Hadamards" : "");
    const std::vector<int32_t> ids = token_ids(model.shape.vocab, kPrefillTokens, 6);
    Executor reference(model, reference_kernels());
    const IntegerLogits want = reference.forward(ids);
    if (c.group == 0 && !c.hadamards) {
      EXPECT_NE(want.values, reference_logits(c.name).values) << what << ": the Q/K/V width changes the logits";
    }
    expect_prefill_and_decode(model, kernels_for(path), ids, want, what);
  }
}

INSTANTIATE_TEST_SUITE_P(Paths, WholeModelWithQkvBits, ::testing::ValuesIn(kOptimizedPaths), path_name);

INSTANTIATE_TEST_SUITE_P(Paths, KernelPaths, ::testing::ValuesIn(kOptimizedPaths), path_name);
std::string model_case_name(const ::testing::TestParamInfo<std::tuple<KernelPath, std::string>>& info) {
  std::string name = std::string(kernel_path_name(std::get<0>(info.param))) + "_" + std::get<1>(info.param);
  for (char& c : name)
    if (c == '-' || c == '+') c = '_';
  return name;
}

INSTANTIATE_TEST_SUITE_P(
    Paths, WholeModel,
    ::testing::Combine(::testing::ValuesIn(kOptimizedPaths),
                       ::testing::Values("stories260K-w4a4", "stories260K-w4a8", "stories260K-w8a8", "tinybible-w4a4",
                                         "tinybible-w4a8", "tinybible-w8a8", "stories260K-w4a4+clip",
                                         "tinybible-w4a8+clip", "tinybible-w4a4-g32",
                                         "stories260K-w4a4+trip", "tinybible-w4a4+trip", "tinybible-w4a8+trip")),
    model_case_name);

INSTANTIATE_TEST_SUITE_P(
    Paths, WholeModelWithActGroups,
    ::testing::Combine(::testing::ValuesIn(kOptimizedPaths),
                       ::testing::Values("tinybible-w4a4", "tinybible-w8a8", "tinybible-w4a8+clip")),
    model_case_name);

INSTANTIATE_TEST_SUITE_P(
    Paths, WholeModelWithHadamards,
    ::testing::Combine(::testing::ValuesIn(kOptimizedPaths),
                       ::testing::Values("stories260K-w4a4", "tinybible-w4a4", "tinybible-w4a8+clip")),
    model_case_name);

}  // namespace
}  // namespace illm
